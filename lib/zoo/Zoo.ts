/**
 * The zoo file: a set of flat base-MLP weight vectors (checkpoints of many training runs) with their provenance,
 * as one safetensors file that Python's `safetensors` package also opens.
 *
 * Tensors (n checkpoints, P parameters, R runs):
 * - `weights`   F32 [n, P]  flat layout (METHOD.md §1.2: weights (in, out) layer by layer, then biases)
 * - `run`       I32 [n]     training run of each checkpoint, 0 … R−1
 * - `epoch`     I32 [n]     epoch of the checkpoint (0-based)
 * - `iter`      I32 [n]     global optimiser step: the checkpoint holds the weights after `iter` updates
 * - `test_acc`  F32 [n]     accuracy on the task's test split
 * - `test_loss` F32 [n]     mean cross-entropy (natural log) on the task's test split
 * - `init`      F32 [R, P]  each run's initial weights (optional: derived zoos may omit it)
 * - any further tensors (kept as `extra`), e.g. an aligned zoo's permutations.
 *
 * `__metadata__` (string → string; structured values JSON-encoded): `format` = 'wsflow-zoo', `format_version`,
 * `arch` (JSON widths), `task` (name), and by convention `task_spec`, `optimizer`, `init`, `schedule`, `seed`,
 * `runs`, `backend`, `created`, `wsflow_version`, `fingerprint`, and for derived zoos e.g. `aligned_to`.
 */
import * as fs from 'node:fs';
import { type Architecture, mlp } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { type SafeTensor, type SafetensorsFile, f32, i32, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { version } from '../version.js';

/** Value of the `format` metadata key. */
export const ZOO_FORMAT = 'wsflow-zoo';
/** Current `format_version`; readers accept this and older versions. */
export const ZOO_FORMAT_VERSION = 1;
/** Tensor names with a fixed meaning (everything else is `extra`). */
export const ZOO_TENSORS = Object.freeze(['weights', 'run', 'epoch', 'iter', 'test_acc', 'test_loss', 'init'] as const);

/** A zoo in memory. Arrays are row-major; `weights` holds `n` flat networks of `arch.numParams` values. */
export interface Zoo {
  readonly arch: Architecture;
  /** Task name (metadata `task`). */
  readonly task: string;
  /** Number of checkpoints n. */
  readonly n: number;
  /** n × P, flat layout. */
  readonly weights: Float32Array;
  /** n run indices. */
  readonly run: Int32Array;
  /** n epochs (0-based). */
  readonly epoch: Int32Array;
  /** n global steps (updates applied before the checkpoint). */
  readonly iter: Int32Array;
  /** n test accuracies. */
  readonly testAcc: Float32Array;
  /** n test losses. */
  readonly testLoss: Float32Array;
  /** R × P initial weights, or null when the file has none. */
  readonly init: Float32Array | null;
  /** All metadata, as stored (strings). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensors other than the standard ones. */
  readonly extra: Readonly<Record<string, SafeTensor>>;
}

/** What {@link writeZoo} needs: a {@link Zoo} without `n`, with optional init/metadata/extra. */
export interface ZooInput {
  readonly arch: Architecture;
  readonly task: string;
  readonly weights: Float32Array;
  readonly run: Int32Array;
  readonly epoch: Int32Array;
  readonly iter: Int32Array;
  readonly testAcc: Float32Array;
  readonly testLoss: Float32Array;
  readonly init?: Float32Array | null;
  /** Extra metadata (strings); `format`, `format_version`, `arch` and `task` are always set by writeZoo. */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly extra?: Readonly<Record<string, SafeTensor>>;
}

function checkLen(name: string, v: { length: number }, n: number): void {
  if (v.length !== n) throw new WsfError(`Expected \`${name}\` of length ${n} (one per checkpoint) but received length ${v.length}`, 'ERR_SHAPE');
}

/**
 * Encodes a zoo into safetensors tensors and metadata (what {@link writeZoo} writes).
 * @throws WsfError ERR_DTYPE / ERR_SHAPE for arrays of the wrong type or length, ERR_INVALID for a metadata value
 *   that is not a string or an extra tensor named like a standard one
 */
export function encodeZoo(z: ZooInput): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  const P = z.arch.numParams;
  if (!(z.weights instanceof Float32Array)) throw new WsfError('Expected Float32Array for `weights`', 'ERR_DTYPE');
  if (z.weights.length % P !== 0) throw new WsfError(`Expected \`weights\` of length n·P (P = ${P} for ${z.arch.key}) but received length ${z.weights.length}`, 'ERR_SHAPE');
  const n = z.weights.length / P;
  for (const [name, v, T] of [
    ['run', z.run, Int32Array],
    ['epoch', z.epoch, Int32Array],
    ['iter', z.iter, Int32Array],
    ['testAcc', z.testAcc, Float32Array],
    ['testLoss', z.testLoss, Float32Array],
  ] as const) {
    if (!(v instanceof T)) throw new WsfError(`Expected ${T.name} for \`${name}\``, 'ERR_DTYPE');
    checkLen(name, v, n);
  }
  const tensors: Record<string, SafeTensor> = {
    weights: f32(z.weights, [n, P]),
    run: i32(z.run),
    epoch: i32(z.epoch),
    iter: i32(z.iter),
    test_acc: f32(z.testAcc),
    test_loss: f32(z.testLoss),
  };
  if (z.init !== undefined && z.init !== null) {
    if (!(z.init instanceof Float32Array) || z.init.length % P !== 0) throw new WsfError(`Expected Float32Array of length R·P (P = ${P}) for \`init\``, 'ERR_SHAPE');
    tensors.init = f32(z.init, [z.init.length / P, P]);
  }
  for (const [name, t] of Object.entries(z.extra ?? {})) {
    if ((ZOO_TENSORS as readonly string[]).includes(name)) throw new WsfError(`Extra tensor \`${name}\` clashes with a standard zoo tensor`, 'ERR_INVALID');
    tensors[name] = t;
  }
  const metadata: Record<string, string> = { wsflow_version: version };
  for (const [k, v] of Object.entries(z.metadata ?? {})) {
    if (typeof v !== 'string') throw new WsfError(`Zoo metadata values must be strings (JSON-encode structured values); \`${k}\` is ${typeof v}`, 'ERR_INVALID');
    metadata[k] = v;
  }
  Object.assign(metadata, { format: ZOO_FORMAT, format_version: String(ZOO_FORMAT_VERSION), arch: JSON.stringify(z.arch.widths), task: z.task });
  return { tensors, metadata };
}

/**
 * Writes a zoo file atomically (temporary file, fsync, rename). Metadata keys `format`, `format_version`, `arch`
 * and `task` are set from the input; `wsflow_version` defaults to this package's version; everything else in
 * `metadata` is stored as given (e.g. `aligned_to` for an aligned zoo).
 * @param file destination path (folders are created)
 * @returns the zoo as written (sharing the input arrays), as {@link readZoo} would return it
 * @throws WsfError as {@link encodeZoo}; ERR_IO when the file cannot be written
 */
export function writeZoo(file: string, z: ZooInput): Zoo {
  const { tensors, metadata } = encodeZoo(z);
  try {
    writeSafetensors(file, tensors, metadata);
  } catch (e) {
    if (e instanceof WsfError) throw e;
    throw new WsfError(`cannot write the zoo ${file}: ${(e as Error).message}`, 'ERR_IO');
  }
  const extra = Object.fromEntries(Object.entries(tensors).filter(([k]) => !(ZOO_TENSORS as readonly string[]).includes(k)));
  return Object.freeze({
    arch: z.arch,
    task: z.task,
    n: z.testAcc.length,
    weights: z.weights,
    run: z.run,
    epoch: z.epoch,
    iter: z.iter,
    testAcc: z.testAcc,
    testLoss: z.testLoss,
    init: z.init ?? null,
    metadata: Object.freeze(metadata),
    extra: Object.freeze(extra),
  });
}

/**
 * Validates a parsed safetensors file as a zoo.
 * @throws WsfError ERR_IO for a file that is not a zoo, an unsupported format version, missing or mistyped
 *   tensors, shapes that disagree with each other or with the architecture, or out-of-range run indices
 */
export function decodeZoo(f: SafetensorsFile, source = 'zoo'): Zoo {
  const bad = (why: string): WsfError => new WsfError(`${source}: not a valid wsflow zoo: ${why}`, 'ERR_IO');
  const md = f.metadata;
  if (md.format !== ZOO_FORMAT) throw bad(`metadata \`format\` is ${md.format === undefined ? 'missing' : `'${md.format}'`}, expected '${ZOO_FORMAT}'`);
  const ver = Number(md.format_version);
  if (!Number.isInteger(ver) || ver < 1 || ver > ZOO_FORMAT_VERSION) throw bad(`format_version '${md.format_version}' is not supported (this wsflow reads 1…${ZOO_FORMAT_VERSION})`);
  let arch: Architecture;
  try {
    arch = mlp(JSON.parse(md.arch ?? '') as number[]);
  } catch {
    throw bad(`metadata \`arch\` is '${md.arch}', expected widths like [30,16,16,2]`);
  }
  if (typeof md.task !== 'string' || md.task === '') throw bad('metadata `task` is missing');
  const P = arch.numParams;
  const get = (name: string, dtype: 'F32' | 'I32', required: boolean): SafeTensor | undefined => {
    const t = f.tensors[name];
    if (t === undefined) {
      if (required) throw bad(`tensor \`${name}\` is missing`);
      return undefined;
    }
    if (t.dtype !== dtype) throw bad(`tensor \`${name}\` is ${t.dtype}, expected ${dtype}`);
    return t;
  };
  const w = get('weights', 'F32', true)!;
  if (w.shape.length !== 2 || w.shape[1] !== P) throw bad(`tensor \`weights\` has shape [${w.shape.join(', ')}], expected [n, ${P}] for architecture ${arch.key}`);
  const n = w.shape[0]!;
  const vec = (name: string, dtype: 'F32' | 'I32'): SafeTensor => {
    const t = get(name, dtype, true)!;
    if (t.shape.length !== 1 || t.shape[0] !== n) throw bad(`tensor \`${name}\` has shape [${t.shape.join(', ')}], expected [${n}] (one per checkpoint)`);
    return t;
  };
  const run = vec('run', 'I32').data as Int32Array;
  const epoch = vec('epoch', 'I32').data as Int32Array;
  const iter = vec('iter', 'I32').data as Int32Array;
  const testAcc = vec('test_acc', 'F32').data as Float32Array;
  const testLoss = vec('test_loss', 'F32').data as Float32Array;
  const it = get('init', 'F32', false);
  let init: Float32Array | null = null;
  if (it !== undefined) {
    if (it.shape.length !== 2 || it.shape[1] !== P) throw bad(`tensor \`init\` has shape [${it.shape.join(', ')}], expected [runs, ${P}]`);
    init = it.data as Float32Array;
    const R = it.shape[0]!;
    for (let i = 0; i < n; i++) if (run[i]! < 0 || run[i]! >= R) throw bad(`checkpoint ${i} has run ${run[i]}, outside the ${R} runs of \`init\``);
  }
  const extra: Record<string, SafeTensor> = {};
  for (const [k, t] of Object.entries(f.tensors)) if (!(ZOO_TENSORS as readonly string[]).includes(k)) extra[k] = t;
  return Object.freeze({ arch, task: md.task, n, weights: w.data as Float32Array, run, epoch, iter, testAcc, testLoss, init, metadata: Object.freeze({ ...md }), extra: Object.freeze(extra) });
}

/**
 * Reads and validates a zoo file.
 * @returns the zoo, with `arch` rebuilt from the metadata and every tensor's shape checked against it
 * @throws WsfError ERR_IO when the file is missing, truncated, corrupt, not a zoo, or inconsistent (see {@link decodeZoo})
 */
export function readZoo(file: string): Zoo {
  return decodeZoo(readSafetensors(file), file);
}

/** Parses a JSON-encoded metadata value, or returns undefined when absent or not JSON. */
export function zooMeta<T = unknown>(zoo: Pick<Zoo, 'metadata'>, key: string): T | undefined {
  const v = zoo.metadata[key];
  if (v === undefined) return undefined;
  try {
    return JSON.parse(v) as T;
  } catch {
    return undefined;
  }
}

/**
 * Reads only the metadata of a zoo (or any safetensors) file: the 8-byte header length and the JSON header, without
 * the tensor data. Cheap for large zoos.
 * @throws WsfError ERR_IO when the file is missing or its header is malformed
 */
export function readZooMetadata(file: string): Record<string, string> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new WsfError(`cannot read ${file}: ${(e as Error).message}`, 'ERR_IO');
  }
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw new WsfError(`${file}: not a valid safetensors file: shorter than 8 bytes`, 'ERR_IO');
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(Math.min(size - 8, 100_000_000))) throw new WsfError(`${file}: not a valid safetensors file: header length ${n} exceeds the file size ${size}`, 'ERR_IO');
    const hb = Buffer.alloc(Number(n));
    fs.readSync(fd, hb, 0, hb.length, 8);
    let header: unknown;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (e) {
      throw new WsfError(`${file}: not a valid safetensors file: header is not JSON (${(e as Error).message})`, 'ERR_IO');
    }
    const md = (header as { __metadata__?: unknown } | null)?.__metadata__;
    if (md === undefined) return {};
    if (md === null || typeof md !== 'object') throw new WsfError(`${file}: not a valid safetensors file: __metadata__ is not an object`, 'ERR_IO');
    return Object.fromEntries(Object.entries(md as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
  } finally {
    fs.closeSync(fd);
  }
}
