/**
 * Task-loss gradients for guidance (METHOD.md §6.5, §13.5): ∇_θ of each network's mean cross-entropy on its
 * mini-batch, for a batch of B networks in one call, written directly in the flat layout — weights in (in, out)
 * order, W_l[j,i] at `weightOffset(l) + i·n_l + j`. (The published code flattened PyTorch's (out, in) gradients
 * into the (in, out) flow layout, so its weight guidance landed on the wrong coordinates; METHOD.md §12 item 3.)
 *
 * Analytic backward, f64 accumulation: with a_0 = x, z_l = a_{l−1}W_l + b_l, a_l = ReLU(z_l), logits s·z_L,
 *   δ_L = s·(softmax(s·z_L) − onehot(y)) / m,  ∂W_l = a_{l−1}ᵀδ_l,  ∂b_l = Σ_rows δ_l,  δ_{l−1} = (δ_l W_lᵀ) ⊙ [z_{l−1} > 0].
 * The ReLU derivative at exactly 0 is taken as 0 (as TF.js and PyTorch do).
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import type { Split, Task } from '../tasks/Task.js';
import { Rng } from '../util/rng.js';
import { checkInt, checkNumber, invalidArgument } from '../util/validate.js';
import { addScaledRows } from './forward.js';

/**
 * A mini-batch of examples: rows of standardised features `x` (n × d, row-major) and labels `y` (n).
 * Without `rowsPerNetwork` every network uses all n rows; with it the rows are B consecutive groups of
 * `rowsPerNetwork` (n = B·rowsPerNetwork), group g for network g (what {@link BatchStream.next} returns).
 */
export interface MiniBatch {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly n: number;
  readonly rowsPerNetwork?: number;
}

/** Result of {@link taskGradient}. */
export interface TaskGradient {
  /** ∇ of each network's mean cross-entropy, Float32Array B×P in the flat layout. */
  readonly grad: Float32Array;
  /** Each network's mean cross-entropy on its rows (nats), Float64Array of length B. */
  readonly loss: Float64Array;
}

/** Scratch buffers for one network's forward/backward, grown on demand. */
class Work {
  acts: Float64Array[] = [];
  deltas: Float64Array[] = [];
  accW = new Float64Array(0);
  accB = new Float64Array(0);
  vals = new Float64Array(0);
  offs = new Int32Array(0);
  wt = new Float64Array(0);
  ensure(arch: Architecture, m: number): void {
    const L = arch.numLayers;
    if (this.acts.length !== L + 1) {
      this.acts = new Array<Float64Array>(L + 1).fill(new Float64Array(0));
      this.deltas = new Array<Float64Array>(L + 1).fill(new Float64Array(0));
    }
    let maxBlock = 0;
    let maxW = 0;
    for (let l = 0; l <= L; l++) {
      const need = m * arch.widths[l]!;
      if (this.acts[l]!.length < need) {
        this.acts[l] = new Float64Array(need);
        this.deltas[l] = new Float64Array(need);
      }
      if (l > 0) maxBlock = Math.max(maxBlock, arch.widths[l - 1]! * arch.widths[l]!);
      maxW = Math.max(maxW, arch.widths[l]!);
    }
    if (this.accW.length < maxBlock) this.accW = new Float64Array(maxBlock);
    const gather = Math.max(m, maxW);
    if (this.vals.length < gather) {
      this.vals = new Float64Array(gather);
      this.offs = new Int32Array(gather);
    }
    if (this.accB.length < maxW) this.accB = new Float64Array(maxW);
  }
}
const work = new Work();

/**
 * Mean cross-entropy and (optionally) its gradient for one network, f64 throughout. `w` holds the network at
 * offset `wo` (Float32Array or Float64Array); rows [r0, r0+m) of `x`/`y` are used. When `grad` is given, the
 * gradient is written (overwritten) at `grad[go … go+P)`.
 * @internal exported for the f64 finite-difference tests
 */
export function networkLossGrad(
  arch: Architecture,
  w: Float32Array | Float64Array,
  wo: number,
  x: Float32Array,
  y: Int32Array,
  r0: number,
  m: number,
  scale: number,
  grad?: Float32Array | Float64Array,
  go = 0,
): number {
  const L = arch.numLayers;
  const d = arch.widths[0]!;
  work.ensure(arch, m);
  const { acts, deltas, vals, offs } = work;
  // Forward: acts[l] holds z_l (pre-activation) for l = L and a_l = ReLU(z_l) for 1 ≤ l < L; acts[0] = x.
  const a0 = acts[0]!;
  for (let k = 0, e = m * d; k < e; k++) a0[k] = x[r0 * d + k]!;
  for (let l = 1; l <= L; l++) {
    const nIn = arch.widths[l - 1]!;
    const nOut = arch.widths[l]!;
    const src = acts[l - 1]!;
    const dst = acts[l]!;
    const wOff = wo + arch.weightOffset(l);
    const bOff = wo + arch.biasOffset(l);
    if (isNarrow(nIn, nOut)) {
      forwardNarrow(dst, src, w, wOff, bOff, m, nIn, nOut, l < L);
      continue;
    }
    for (let r = 0; r < m; r++) {
      const ob = r * nOut;
      for (let j = 0; j < nOut; j++) dst[ob + j] = w[bOff + j]!;
      const ib = r * nIn;
      let cnt = 0;
      for (let i = 0; i < nIn; i++) {
        const v = src[ib + i]!;
        if (v === 0) continue;
        vals[cnt] = v;
        offs[cnt++] = wOff + i * nOut;
      }
      addScaledRows(dst, ob, nOut, vals, offs, cnt, w);
      if (l < L) for (let j = 0; j < nOut; j++) if (dst[ob + j]! < 0) dst[ob + j] = 0;
    }
  }
  // Loss and δ_L = s·(softmax(s·z) − onehot)/m.
  const C = arch.widths[L]!;
  const zL = acts[L]!;
  const dL = deltas[L]!;
  let lossSum = 0;
  for (let r = 0; r < m; r++) {
    const zb = r * C;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, scale * zL[zb + c]!);
    let se = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(scale * zL[zb + c]! - max);
      dL[zb + c] = e;
      se += e;
    }
    const label = y[r0 + r]!;
    lossSum += Math.log(se) + max - scale * zL[zb + label]!;
    for (let c = 0; c < C; c++) dL[zb + c] = (scale * dL[zb + c]!) / se / m;
    dL[zb + label]! -= scale / m;
  }
  if (grad === undefined) return lossSum / m;
  // Backward, last layer first.
  for (let l = L; l >= 1; l--) {
    const nIn = arch.widths[l - 1]!;
    const nOut = arch.widths[l]!;
    const dz = deltas[l]!;
    const a = acts[l - 1]!;
    const gW = go + arch.weightOffset(l);
    const gB = go + arch.biasOffset(l);
    // Accumulate ∂W and ∂b in f64 before the (possibly f32) store.
    const accW = work.accW;
    const accB = work.accB;
    accW.fill(0, 0, nIn * nOut);
    accB.fill(0, 0, nOut);
    for (let r = 0; r < m; r++) {
      const db = r * nOut;
      for (let j = 0; j < nOut; j++) accB[j]! += dz[db + j]!;
    }
    if (isNarrow(nIn, nOut)) {
      // Transposed: ∂Wᵀ[j, :] = Σ_r δ[r, j]·a[r, :] (long contiguous rows), then stored in (in, out) order.
      for (let j = 0; j < nOut; j++) {
        let cnt = 0;
        for (let r = 0; r < m; r++) {
          const v = dz[r * nOut + j]!;
          if (v === 0) continue;
          vals[cnt] = v;
          offs[cnt++] = r * nIn;
        }
        addScaledRows(accW, j * nIn, nIn, vals, offs, cnt, a);
      }
      for (let i = 0; i < nIn; i++) for (let j = 0; j < nOut; j++) grad[gW + i * nOut + j] = accW[j * nIn + i]!;
    } else {
      // ∂W[i, :] = Σ_r a[r, i]·δ[r, :], over the rows where input i is active.
      for (let i = 0; i < nIn; i++) {
        let cnt = 0;
        for (let r = 0; r < m; r++) {
          const v = a[r * nIn + i]!;
          if (v === 0) continue;
          vals[cnt] = v;
          offs[cnt++] = r * nOut;
        }
        addScaledRows(accW, i * nOut, nOut, vals, offs, cnt, dz);
      }
      for (let k = 0; k < nIn * nOut; k++) grad[gW + k] = accW[k]!;
    }
    for (let j = 0; j < nOut; j++) grad[gB + j] = accB[j]!;
    if (l === 1) break;
    // δ_{l−1} = (δ_l W_lᵀ) ⊙ [a_{l−1} > 0].
    const dPrev = deltas[l - 1]!;
    const wOff = wo + arch.weightOffset(l);
    for (let r = 0; r < m; r++) {
      const ab = r * nIn;
      const db = r * nOut;
      for (let i = 0; i < nIn; i++) {
        if (a[ab + i]! <= 0) {
          dPrev[ab + i] = 0;
          continue;
        }
        const wr = wOff + i * nOut;
        let s = 0;
        for (let j = 0; j < nOut; j++) s += w[wr + j]! * dz[db + j]!;
        dPrev[ab + i] = s;
      }
    }
  }
  return lossSum / m;
}

/** Wide-input, narrow-output layers (e.g. MNIST's 784 → 10) use transposed, long-row kernels. */
function isNarrow(nIn: number, nOut: number): boolean {
  return nOut <= 16 && nIn >= 4 * nOut;
}

/**
 * dst[r, j] = b_j + Σ_i src[r, i]·W[i, j] (+ ReLU) for a narrow layer: Wᵀ is copied to f64 scratch once, then each
 * output is a contiguous dot product, four outputs at a time so every input value is loaded once per four.
 */
function forwardNarrow(dst: Float64Array, src: Float64Array, w: Float32Array | Float64Array, wOff: number, bOff: number, m: number, nIn: number, nOut: number, relu: boolean): void {
  if (work.wt.length < nIn * nOut) work.wt = new Float64Array(nIn * nOut);
  const wt = work.wt;
  for (let i = 0; i < nIn; i++) for (let j = 0; j < nOut; j++) wt[j * nIn + i] = w[wOff + i * nOut + j]!;
  for (let r = 0; r < m; r++) {
    const xb = r * nIn;
    const ob = r * nOut;
    let j = 0;
    for (; j + 4 <= nOut; j += 4) {
      const w0 = j * nIn;
      const w1 = w0 + nIn;
      const w2 = w1 + nIn;
      const w3 = w2 + nIn;
      let s0 = w[bOff + j]!;
      let s1 = w[bOff + j + 1]!;
      let s2 = w[bOff + j + 2]!;
      let s3 = w[bOff + j + 3]!;
      for (let i = 0; i < nIn; i++) {
        const v = src[xb + i]!;
        s0 += v * wt[w0 + i]!;
        s1 += v * wt[w1 + i]!;
        s2 += v * wt[w2 + i]!;
        s3 += v * wt[w3 + i]!;
      }
      dst[ob + j] = s0;
      dst[ob + j + 1] = s1;
      dst[ob + j + 2] = s2;
      dst[ob + j + 3] = s3;
    }
    for (; j < nOut; j++) {
      const w0 = j * nIn;
      let s0 = w[bOff + j]!;
      for (let i = 0; i < nIn; i++) s0 += src[xb + i]! * wt[w0 + i]!;
      dst[ob + j] = s0;
    }
    if (relu) for (let q = 0; q < nOut; q++) if (dst[ob + q]! < 0) dst[ob + q] = 0;
  }
}

/**
 * Gradients of the mean cross-entropy of every network on its mini-batch, in the flat layout (see the module doc).
 * One call covers all B networks; cost ≈ 3·m·E multiply-adds per network for m rows.
 * @param task the task the networks solve (checks n_0 and n_L)
 * @param arch the base MLP
 * @param weights Float32Array B×P (flat layout)
 * @param batch rows shared by all networks, or B groups of `rowsPerNetwork` rows (see {@link MiniBatch})
 * @param opts.logitScale multiplies the logits before the softmax (default 1, > 0)
 * @param opts.out Float32Array B×P to write the gradient into (allocated when omitted)
 * @returns the gradient (B×P) and each network's mean loss
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad weights or batch, ERR_INVALID for bad options/labels
 */
export function taskGradient(
  task: Task,
  arch: Architecture,
  weights: Float32Array,
  batch: MiniBatch,
  opts: { logitScale?: number; out?: Float32Array } = {},
): TaskGradient {
  const B = checkBatch(arch, 'weights', weights);
  const d = arch.widths[0]!;
  const C = arch.widths[arch.numLayers]!;
  if (task.numFeatures !== d || task.numClasses !== C) {
    throw new WsfError(`Expected a task with ${d} features and ${C} classes for ${arch.key} but '${task.name}' has ${task.numFeatures} and ${task.numClasses}`, 'ERR_SHAPE');
  }
  checkMiniBatch(batch, d, C);
  let m = batch.n;
  let perNet = false;
  if (batch.rowsPerNetwork !== undefined) {
    m = checkInt('batch.rowsPerNetwork', batch.rowsPerNetwork, 1);
    if (batch.n !== B * m) {
      throw new WsfError(`Expected a mini-batch of B·rowsPerNetwork = ${B}·${m} = ${B * m} rows (one group per network) but received ${batch.n} rows`, 'ERR_SHAPE');
    }
    perNet = true;
  }
  const scale = checkNumber('logitScale', opts.logitScale ?? 1, Number.MIN_VALUE);
  const P = arch.numParams;
  const grad = opts.out ?? new Float32Array(B * P);
  if (!(grad instanceof Float32Array) || grad.length !== B * P) throw invalidArgument('out', `Float32Array of length B·P = ${B * P}`, grad, 'ERR_SHAPE');
  const loss = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    loss[b] = networkLossGrad(arch, weights, b * P, batch.x, batch.y, perNet ? b * m : 0, m, scale, grad, b * P);
  }
  return { grad, loss };
}

function checkMiniBatch(batch: MiniBatch, d: number, C: number): void {
  if (batch === null || typeof batch !== 'object') throw invalidArgument('batch', 'a mini-batch {x, y, n}', batch);
  if (!Number.isInteger(batch.n) || batch.n < 1) throw invalidArgument('batch.n', 'a positive integer', batch.n);
  if (!(batch.x instanceof Float32Array)) throw invalidArgument('batch.x', `Float32Array of length n·d = ${batch.n}·${d}`, batch.x, 'ERR_DTYPE');
  if (batch.x.length !== batch.n * d) throw invalidArgument('batch.x', `Float32Array of length n·d = ${batch.n * d}`, batch.x, 'ERR_SHAPE');
  if (!(batch.y instanceof Int32Array)) throw invalidArgument('batch.y', `Int32Array of length n = ${batch.n}`, batch.y, 'ERR_DTYPE');
  if (batch.y.length !== batch.n) throw invalidArgument('batch.y', `Int32Array of length n = ${batch.n}`, batch.y, 'ERR_SHAPE');
  for (let r = 0; r < batch.n; r++) {
    const c = batch.y[r]!;
    if (c < 0 || c >= C) throw new WsfError(`Expected labels in 0…${C - 1} in \`batch.y\` but row ${r} has label ${c}`, 'ERR_INVALID');
  }
}

/** Checkpointable state of a {@link BatchStream}. */
export interface BatchStreamState {
  /** Rng state at the start of the current epoch (the epoch's order is regenerated from it). */
  readonly rngState: readonly number[];
  /** Completed epochs. */
  readonly epoch: number;
  /** Position within the current epoch's order. */
  readonly position: number;
  readonly batchSize: number;
  readonly n: number;
}

/**
 * A gradient in the flat layout rewritten as the published code added it to its flow (METHOD.md §6.5, §12 item 3):
 * each layer's weight gradient flattened in PyTorch's (out, in) order and laid over the flow's (in, out)
 * coordinates, so element p of layer l's weight block (n_{l−1}·n_l values) receives the gradient of W_l[⌊p/n_{l−1}⌋,
 * p mod n_{l−1}] — flat index (p mod n_{l−1})·n_l + ⌊p/n_{l−1}⌋ — instead of its own; biases are unchanged. The
 * weight part is a fixed permutation of the true gradient (a transpose for square layers). What `reference`
 * semantics guides with by default ({@link SampleGuidance.layout}), so the thesis' guided runs can be replayed.
 * @param arch the networks' architecture
 * @param grad Float32Array B×P in the flat layout
 * @returns a new Float32Array B×P
 * @throws WsfError ERR_DTYPE / ERR_SHAPE when `grad` is not B×P
 */
export function publishedGradientLayout(arch: Architecture, grad: Float32Array): Float32Array {
  const B = checkBatch(arch, 'grad', grad, { finite: false });
  const P = arch.numParams;
  const out = grad.slice();
  for (let b = 0; b < B; b++) {
    for (let l = 1; l <= arch.numLayers; l++) {
      const nin = arch.widths[l - 1]!;
      const nout = arch.widths[l]!;
      const off = b * P + arch.weightOffset(l);
      for (let p = 0; p < nin * nout; p++) out[off + p] = grad[off + (p % nin) * nout + Math.floor(p / nin)]!;
    }
  }
  return out;
}

/**
 * A persistent shuffled stream of example indices over one split: every example is drawn once per epoch, the order
 * is reshuffled (seeded) at each epoch boundary, and a mini-batch may straddle two epochs. Replaces building a new
 * shuffled loader iterator per guidance step (METHOD.md §12.C item 5). Copies rows into fresh arrays per call.
 */
export class BatchStream {
  /** Rows per network per call. */
  readonly batchSize: number;
  private readonly split: Split;
  private readonly d: number;
  private readonly rng: Rng;
  private order: Int32Array;
  private epochState: [number, number, number, number];
  private pos = 0;
  private epochs = 0;

  /**
   * @param split the split to draw from (x: n×d Float32Array, y: Int32Array n)
   * @param batchSize rows per network per draw (≥ 1; may exceed n, then it wraps into later epochs)
   * @param seed shuffling seed (default 0)
   * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_INVALID for a bad split or batch size
   */
  constructor(split: Split, batchSize: number, seed = 0) {
    if (split === null || typeof split !== 'object' || !Number.isInteger(split.n) || split.n < 1 || !(split.x instanceof Float32Array) || split.x.length % split.n !== 0) {
      throw invalidArgument('split', 'a split {x: Float32Array n×d, y: Int32Array n, n ≥ 1}', split);
    }
    this.d = split.x.length / split.n;
    if (!(split.y instanceof Int32Array) || split.y.length !== split.n) throw invalidArgument('split.y', `Int32Array of length n = ${split.n}`, split.y, 'ERR_SHAPE');
    this.split = split;
    this.batchSize = checkInt('batchSize', batchSize, 1);
    this.rng = new Rng(checkInt('seed', seed, -(2 ** 31), 2 ** 32 - 1));
    this.epochState = this.rng.state();
    this.order = this.rng.permutation(split.n);
  }

  /** Number of rows in the split. */
  get n(): number {
    return this.split.n;
  }

  /** Completed epochs. */
  get epoch(): number {
    return this.epochs;
  }

  /**
   * Draws `networks` consecutive mini-batches of `batchSize` rows, one per network (rowsPerNetwork = batchSize).
   * @param networks number of groups (default 1)
   * @throws WsfError ERR_INVALID for a bad count
   */
  next(networks = 1): MiniBatch {
    checkInt('networks', networks, 1);
    const rows = networks * this.batchSize;
    return { ...this.draw(rows), rowsPerNetwork: this.batchSize };
  }

  /** Draws one mini-batch of `batchSize` rows shared by every network (no rowsPerNetwork). */
  nextShared(): MiniBatch {
    return this.draw(this.batchSize);
  }

  /** The state to restore this stream later with {@link BatchStream.restore}. */
  state(): BatchStreamState {
    return { rngState: [...this.epochState], epoch: this.epochs, position: this.pos, batchSize: this.batchSize, n: this.split.n };
  }

  /**
   * Restores a state saved by {@link BatchStream.state} (same split size and batch size).
   * @throws WsfError ERR_INVALID when the state does not fit this stream
   */
  restore(s: BatchStreamState): void {
    if (s === null || typeof s !== 'object' || s.n !== this.split.n || s.batchSize !== this.batchSize || !Array.isArray(s.rngState) || s.rngState.length !== 4) {
      throw invalidArgument('state', `a BatchStream state for n = ${this.split.n}, batchSize = ${this.batchSize}`, s);
    }
    checkInt('state.position', s.position, 0, this.split.n - 1);
    checkInt('state.epoch', s.epoch, 0);
    this.rng.setState(s.rngState);
    this.epochState = this.rng.state();
    this.order = this.rng.permutation(this.split.n);
    this.pos = s.position;
    this.epochs = s.epoch;
  }

  private draw(rows: number): MiniBatch {
    const d = this.d;
    const x = new Float32Array(rows * d);
    const y = new Int32Array(rows);
    const sx = this.split.x;
    const sy = this.split.y;
    for (let r = 0; r < rows; r++) {
      const k = this.order[this.pos]!;
      x.set(sx.subarray(k * d, (k + 1) * d), r * d);
      y[r] = sy[k]!;
      this.pos++;
      if (this.pos === this.order.length) {
        this.epochs++;
        this.pos = 0;
        this.epochState = this.rng.state();
        this.order = this.rng.permutation(this.split.n);
      }
    }
    return { x, y, n: rows };
  }
}

/**
 * Plain SGD (no momentum, no weight decay) of every network from `x0` on its own mini-batches of `rows` training
 * examples: θ ← θ − lr·∇L, `steps` times — the baseline a guided sampler is compared with at equal gradient budget
 * (one gradient per network and step).
 * @throws WsfError ERR_NUMERIC when the weights become non-finite
 */
export function plainSgd(task: Task, arch: Architecture, x0: Float32Array, o: { steps: number; rows: number; lr: number; seed: number }): Float32Array {
  const w = x0.slice();
  const B = w.length / arch.numParams;
  const stream = new BatchStream(task.train, o.rows, o.seed);
  const grad = new Float32Array(w.length);
  for (let s = 0; s < o.steps; s++) {
    taskGradient(task, arch, w, stream.next(B), { out: grad });
    for (let i = 0; i < w.length; i++) w[i] = w[i]! - o.lr * grad[i]!;
  }
  if (!w.every(Number.isFinite)) throw new WsfError(`plain SGD at lr ${o.lr} diverged on ${task.name}`, 'ERR_NUMERIC');
  return w;
}
