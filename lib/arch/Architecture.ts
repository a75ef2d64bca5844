/**
 * The weight-space representation of a ReLU MLP: its widths, the flat interchange layout and its product
 * geometry.
 *
 * Flat layout (METHOD.md §1.2): all weights layer by layer, each layer in (in, out) order — the weight from
 * neuron i of layer l−1 to neuron j of layer l (PyTorch `W_l[j, i]`, TF.js Dense `kernel[i][j]`) sits at
 * `weightOffset(l) + i·n_l + j` — then all biases, layer by layer (`biasOffset(l) + j`). Layers are numbered
 * 1…L (layer l maps n_{l−1} → n_l), neurons 0-based.
 *
 * Product geometry (METHOD.md §3): the incoming weight vector of every hidden neuron is one sphere factor
 * (dimension n_{l−1}, strided by n_l in the flat layout); the whole last-layer matrix is one sphere factor
 * (dimension n_{L−1}·n_L, contiguous); biases stay Euclidean.
 */
import { WsfError } from '../errors.js';

/** Upper bound on parameters per network, so every flat index fits an int32. */
export const MAX_PARAMS = 2 ** 31 - 1;

/** An MLP architecture and its flat layout. Create with {@link mlp}. Immutable. */
export class Architecture {
  /** Layer widths n_0 (inputs), n_1, …, n_L (outputs). */
  readonly widths: readonly number[];
  /** Number of linear layers L. */
  readonly numLayers: number;
  /** Number of graph nodes (neurons, inputs included) N = Σ n_l. */
  readonly numNodes: number;
  /** Number of weights E = Σ n_{l−1}·n_l. */
  readonly numWeights: number;
  /** Number of biases Σ_{l≥1} n_l. */
  readonly numBiases: number;
  /** Parameters per network P = E + Σ_{l≥1} n_l. */
  readonly numParams: number;
  /** Sphere factors S: one per hidden neuron plus one for the whole last layer. */
  readonly numSpheres: number;
  /** Per sphere factor: flat offset of its first element. */
  readonly sphereOffset: Int32Array;
  /** Per sphere factor: flat stride between its elements (n_l for hidden neurons, 1 for the last layer). */
  readonly sphereStride: Int32Array;
  /** Per sphere factor: ambient dimension K (fan-in for hidden neurons, n_{L−1}·n_L for the last layer). */
  readonly sphereDim: Int32Array;
  /** Per sphere factor: its layer, 1…L. */
  readonly sphereLayer: Int32Array;
  private readonly wOff: number[];
  private readonly bOff: number[];

  /** @internal use {@link mlp} */
  constructor(widths: readonly number[]) {
    if (!Array.isArray(widths) || widths.length < 2) {
      throw new WsfError(
        `Expected an architecture with at least 2 widths (inputs and outputs), e.g. [30, 16, 16, 2], but received ${JSON.stringify(widths)}`,
        'ERR_INVALID',
      );
    }
    for (const [i, w] of widths.entries()) {
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 1 || w > 1_000_000) {
        throw new WsfError(`Expected width ${i} to be an integer in [1, 1000000] but received ${JSON.stringify(w)}`, 'ERR_INVALID');
      }
    }
    this.widths = Object.freeze([...widths]);
    const L = widths.length - 1;
    this.numLayers = L;
    this.numNodes = widths.reduce((a, b) => a + b, 0);
    const wOff: number[] = [];
    let e = 0;
    for (let l = 1; l <= L; l++) {
      wOff.push(e);
      e += widths[l - 1]! * widths[l]!;
    }
    const bOff: number[] = [];
    let b = e;
    for (let l = 1; l <= L; l++) {
      bOff.push(b);
      b += widths[l]!;
    }
    if (b > MAX_PARAMS) throw new WsfError(`Architecture ${widths.join('-')} has ${b} parameters; at most ${MAX_PARAMS} are supported`, 'ERR_INVALID');
    this.numWeights = e;
    this.numBiases = b - e;
    this.numParams = b;
    this.wOff = wOff;
    this.bOff = bOff;
    let hidden = 0;
    for (let l = 1; l < L; l++) hidden += widths[l]!;
    const S = hidden + 1;
    this.numSpheres = S;
    this.sphereOffset = new Int32Array(S);
    this.sphereStride = new Int32Array(S);
    this.sphereDim = new Int32Array(S);
    this.sphereLayer = new Int32Array(S);
    let s = 0;
    for (let l = 1; l < L; l++) {
      for (let j = 0; j < widths[l]!; j++, s++) {
        this.sphereOffset[s] = wOff[l - 1]! + j;
        this.sphereStride[s] = widths[l]!;
        this.sphereDim[s] = widths[l - 1]!;
        this.sphereLayer[s] = l;
      }
    }
    this.sphereOffset[s] = wOff[L - 1]!;
    this.sphereStride[s] = 1;
    this.sphereDim[s] = widths[L - 1]! * widths[L]!;
    this.sphereLayer[s] = L;
    Object.freeze(this);
  }

  /** "30-16-16-2". */
  get key(): string {
    return this.widths.join('-');
  }

  /** Flat offset of layer l's weight block (l in 1…L). */
  weightOffset(l: number): number {
    this.checkLayer(l);
    return this.wOff[l - 1]!;
  }

  /** Flat offset of layer l's bias block (l in 1…L). */
  biasOffset(l: number): number {
    this.checkLayer(l);
    return this.bOff[l - 1]!;
  }

  /** Flat index of the weight from neuron i of layer l−1 to neuron j of layer l. */
  weightIndex(l: number, i: number, j: number): number {
    return this.weightOffset(l) + i * this.widths[l]! + j;
  }

  /** Flat index of the bias of neuron j of layer l. */
  biasIndex(l: number, j: number): number {
    return this.biasOffset(l) + j;
  }

  /**
   * Views one flat network as per-layer blocks (no copy): `weights[l−1]` is layer l's (in, out) matrix, row-major,
   * `biases[l−1]` its bias vector. `flat` may hold a batch; `index` picks the network.
   */
  split(flat: Float32Array, index = 0): { weights: Float32Array[]; biases: Float32Array[] } {
    const P = this.numParams;
    if (flat.length < (index + 1) * P) {
      throw new WsfError(`Expected a flat vector of length ≥ ${(index + 1) * P} (network ${index} of ${this.key}) but received length ${flat.length}`, 'ERR_SHAPE');
    }
    const base = index * P;
    const weights: Float32Array[] = [];
    const biases: Float32Array[] = [];
    for (let l = 1; l <= this.numLayers; l++) {
      const o = base + this.wOff[l - 1]!;
      weights.push(flat.subarray(o, o + this.widths[l - 1]! * this.widths[l]!));
      const bo = base + this.bOff[l - 1]!;
      biases.push(flat.subarray(bo, bo + this.widths[l]!));
    }
    return { weights, biases };
  }

  /** Same widths. */
  equals(other: Architecture): boolean {
    return this.key === other.key;
  }

  toString(): string {
    return `Architecture(${this.key}, P=${this.numParams})`;
  }

  private checkLayer(l: number): void {
    if (!Number.isInteger(l) || l < 1 || l > this.numLayers) {
      throw new WsfError(`Expected a layer in 1…${this.numLayers} but received ${l}`, 'ERR_INVALID');
    }
  }
}

const cache = new Map<string, Architecture>();

/**
 * The architecture of a ReLU MLP with the given widths (inputs, hidden…, outputs).
 * @example mlp([30, 16, 16, 2]).numParams === 802
 * @throws WsfError ERR_INVALID for fewer than 2 widths or non-positive/non-integer widths.
 */
export function mlp(widths: readonly number[] | string): Architecture {
  const w = typeof widths === 'string' ? parseWidths(widths) : widths;
  const key = Array.isArray(w) ? w.join('-') : String(w);
  let a = cache.get(key);
  if (a === undefined) {
    a = new Architecture(w);
    cache.set(key, a);
  }
  return a;
}

/** Parses "30-16-16-2" (or "30,16,16,2", "30x16x2", "30 16 2"); an empty width ("30--2", "-30-2") is an error. */
export function parseWidths(s: string): number[] {
  const parts = s.trim().split(/\s*[-,x]\s*|\s+/);
  const out = parts.map((p) => (p === '' ? NaN : Number(p)));
  if (out.length < 2 || out.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new WsfError(`Expected an architecture like '30-16-16-2' but received '${s}'`, 'ERR_INVALID');
  }
  return out;
}

/**
 * An architecture argument: an {@link Architecture}, or its widths (an array like [30, 16, 16, 2] or a string like
 * '30-16-16-2', read by {@link mlp}).
 * @throws WsfError ERR_INVALID naming `name` for anything else
 */
export function toArchitecture(name: string, v: unknown): Architecture {
  if (v instanceof Architecture) return v;
  if (typeof v === 'string' || (Array.isArray(v) && v.every((w) => typeof w === 'number'))) return mlp(v as readonly number[] | string);
  throw new WsfError(`Expected an Architecture (mlp([30, 16, 16, 2])) or its widths for \`${name}\` but received ${v === null ? 'null' : Array.isArray(v) ? 'an Array of non-numbers' : typeof v}`, 'ERR_INVALID');
}

/**
 * Checks a batch of flat networks: a Float32Array of length B·P with finite values. Returns B.
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC naming `name`.
 */
export function checkBatch(arch: Architecture, name: string, flat: unknown, opts: { finite?: boolean } = {}): number {
  const P = arch.numParams;
  if (!(flat instanceof Float32Array)) {
    throw new WsfError(`Expected Float32Array of length B·P (P = ${P} for ${arch.key}) for \`${name}\` but received ${flat === null ? 'null' : typeof flat === 'object' ? (flat as object).constructor.name : typeof flat}`, 'ERR_DTYPE');
  }
  if (flat.length === 0 || flat.length % P !== 0) {
    throw new WsfError(`Expected Float32Array of length B·P (P = ${P} for ${arch.key}) for \`${name}\` but received length ${flat.length}`, 'ERR_SHAPE');
  }
  if (opts.finite !== false) {
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i]!)) {
        throw new WsfError(`Expected finite values in \`${name}\` but network ${Math.floor(i / P)}, parameter ${i % P} is ${flat[i]}`, 'ERR_NUMERIC');
      }
    }
  }
  return flat.length / P;
}
