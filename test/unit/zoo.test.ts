import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BuildZooOptions,
  type Task,
  type Zoo,
  WsfError,
  buildZoo,
  fromTfModel,
  loadTask,
  loadTf,
  mlp,
  readZoo,
  toTfModel,
  writeZoo,
  zooRunInit,
  zooRunOrder,
} from '../../lib/index.js';
import { encodeSafetensors } from '../../lib/io/safetensors.js';

type Tensor = import('@tensorflow/tfjs').Tensor;
type Variable = import('@tensorflow/tfjs').Variable;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-zoo-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = (name: string): string => path.join(tmp, name);

// A small WDBC build: 4 runs in chunks of 2, 3 epochs of 8 steps, checkpoints in epochs 1–2 at steps 0 and 4.
const small: Omit<BuildZooOptions, 'out'> = {
  task: 'wdbc',
  runs: 4,
  epochs: 3,
  chunkSize: 2,
  schedule: { skipEpochs: 1, everyIters: 4 },
  seed: 11,
  created: '2026-01-01T00:00:00.000Z',
  progress: false,
};

/** Independent minimal safetensors reader: u64 LE header length, JSON header, raw little-endian data. */
function parseSafetensors(buf: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; metadata: Record<string, string>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  const json = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = (json.__metadata__ ?? {}) as Record<string, string>;
  delete json.__metadata__;
  return { header: json as never, metadata, data: buf.subarray(8 + n) };
}
function f32At(data: Buffer, offsets: [number, number]): Float32Array {
  const out = new Float32Array((offsets[1] - offsets[0]) / 4);
  for (let i = 0; i < out.length; i++) out[i] = data.readFloatLE(offsets[0] + 4 * i);
  return out;
}

function expectCode(e: unknown, code: string): void {
  expect(e).toBeInstanceOf(WsfError);
  expect((e as WsfError).code).toBe(code);
}

function oneHot(y: Int32Array, C: number): Float32Array {
  const o = new Float32Array(y.length * C);
  y.forEach((v, k) => (o[k * C + v] = 1));
  return o;
}

describe('buildZoo', () => {
  let zoo: Zoo;
  let task: Task;
  beforeAll(async () => {
    task = loadTask('wdbc');
    zoo = (await buildZoo({ ...small, out: file('small.safetensors') })).zoo;
  });

  it('keeps checkpoints on the schedule: epoch ≥ skipEpochs and batch index % everyIters == 0', () => {
    expect(zoo.n).toBe(4 * 4);
    expect(zoo.arch.key).toBe('30-16-16-2');
    expect(Array.from(zoo.run)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    expect(Array.from(zoo.epoch.subarray(0, 4))).toEqual([1, 1, 2, 2]);
    expect(Array.from(zoo.iter.subarray(0, 4))).toEqual([8, 12, 16, 20]); // 8 steps per epoch (455 / 64, last batch 7)
    expect(zoo.init?.length).toBe(4 * 802);
    expect(Array.from(zoo.init!.subarray(802, 1604))).toEqual(Array.from(zooRunInit(zoo.arch, { scheme: 'normal', std: 0.1 }, 11, 1)));
    const sched = JSON.parse(zoo.metadata.schedule!) as Record<string, unknown>;
    expect(sched).toMatchObject({ skip_epochs: 1, every_iters: 4, iters_per_epoch: 8, snapshots_per_run: 4 });
  });

  it('writes a file that an independent safetensors reader parses: names, dtypes, shapes, offsets, metadata', () => {
    const { header, metadata, data } = parseSafetensors(fs.readFileSync(file('small.safetensors')));
    expect(header.weights).toMatchObject({ dtype: 'F32', shape: [16, 802] });
    expect(header.init).toMatchObject({ dtype: 'F32', shape: [4, 802] });
    for (const k of ['run', 'epoch', 'iter']) expect(header[k]).toMatchObject({ dtype: 'I32', shape: [16] });
    for (const k of ['test_acc', 'test_loss']) expect(header[k]).toMatchObject({ dtype: 'F32', shape: [16] });
    const spans = Object.values(header).map((t) => t.data_offsets).sort((a, b) => a[0] - b[0]);
    expect(spans[0]![0]).toBe(0);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBe(spans[i - 1]![1]); // contiguous, no overlap
    expect(spans[spans.length - 1]![1]).toBe(data.length);
    expect(Array.from(f32At(data, header.weights!.data_offsets))).toEqual(Array.from(zoo.weights));
    expect(Array.from(f32At(data, header.test_acc!.data_offsets))).toEqual(Array.from(zoo.testAcc));
    expect(metadata).toMatchObject({ format: 'wsflow-zoo', format_version: '1', arch: '[30,16,16,2]', task: 'wdbc', runs: '4', seed: '11', backend: expect.any(String), created: '2026-01-01T00:00:00.000Z' });
    expect(JSON.parse(metadata.optimizer!)).toEqual({ name: 'adam', lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    expect(JSON.parse(metadata.init!)).toEqual({ scheme: 'normal', std: 0.1 });
    expect(JSON.parse(metadata.task_spec!)).toMatchObject({ name: 'wdbc', seed: 42, sizes: [455, 57, 57], standardize: 'train', hash: task.spec!.hash });
    for (const k of ['wsflow_version', 'fingerprint', 'seeding', 'layout']) expect(metadata[k]).toBeTypeOf('string');
  });

  it('records test accuracy and loss equal to a fresh TF.js model on the test split', async () => {
    const { tf } = await loadTf();
    for (const k of [0, 5, 15]) {
      const model = toTfModel(tf, zoo.arch, zoo.weights, k);
      const logits = (model.predict(tf.tensor2d(task.test.x, [task.test.n, 30])) as Tensor).dataSync();
      let correct = 0;
      let ce = 0;
      for (let i = 0; i < task.test.n; i++) {
        const [a, b] = [logits[2 * i]!, logits[2 * i + 1]!];
        if ((b > a ? 1 : 0) === task.test.y[i]) correct++;
        const m = Math.max(a, b);
        ce += m + Math.log(Math.exp(a - m) + Math.exp(b - m)) - (task.test.y[i] === 0 ? a : b);
      }
      expect(zoo.testAcc[k]).toBe(Math.fround(correct / task.test.n));
      // Same f32 logits up to matMul summation order; the f64 mean CE then agrees to ~1e-6.
      expect(zoo.testLoss[k]).toAllClose(ce / task.test.n, { atol: 1e-6, rtol: 1e-5 });
      model.dispose();
    }
    const last = Array.from(zoo.testAcc.filter((_, k) => k % 4 === 3));
    expect(Math.min(...last)).toBeGreaterThan(0.7); // 20 Adam steps already beat the 63 % majority class
  });

  it('trains each run exactly like plain TF.js layers + optimizer, checkpoints holding the pre-update weights', async () => {
    const { tf } = await loadTf();
    const cases = [
      { firstLayer: 'stacked' as const, optimizer: { name: 'adam' as const, lr: 1e-3 } },
      { firstLayer: 'per-run' as const, optimizer: { name: 'sgd' as const, lr: 0.05, momentum: 0.9, weightDecay: 1e-3 } },
    ];
    for (const c of cases) {
      const z = (await buildZoo({ task: 'wdbc', runs: 2, epochs: 1, chunkSize: 2, schedule: { skipEpochs: 0, everyIters: 1 }, seed: 3, progress: false, out: file(`step-${c.firstLayer}.safetensors`), ...c })).zoo;
      expect(z.n).toBe(16);
      const P = z.arch.numParams;
      const r = 1;
      expect(Array.from(z.weights.subarray(8 * P, 9 * P))).toEqual(Array.from(z.init!.subarray(P, 2 * P))); // checkpoint 0 = init
      const model = toTfModel(tf, z.arch, z.init!, r);
      const vars = model.trainableWeights.map((w) => w.read() as Variable);
      const opt = c.optimizer.name === 'adam' ? tf.train.adam(1e-3, 0.9, 0.999, 1e-8) : tf.train.momentum(0.05, 0.9);
      const order = zooRunOrder(3, r, 1, task.train.n)[0]!;
      for (let i = 0; i < 7; i++) {
        const idx = order.subarray(i * 64, Math.min(455, (i + 1) * 64));
        const xb = new Float32Array(idx.length * 30);
        const yb = new Int32Array(idx.length);
        idx.forEach((j, k) => {
          xb.set(task.train.x.subarray(j * 30, j * 30 + 30), k * 30);
          yb[k] = task.train.y[j]!;
        });
        opt.minimize(() => {
          const ce = tf.losses.softmaxCrossEntropy(tf.tensor2d(oneHot(yb, 2), [yb.length, 2]), model.apply(tf.tensor2d(xb, [yb.length, 30])) as Tensor);
          if (c.optimizer.name === 'adam') return ce as import('@tensorflow/tfjs').Scalar;
          // PyTorch-style weight decay on every parameter: ∇(λ/2 ‖θ‖²) = λθ.
          return tf.add(ce, tf.mul(0.5e-3, tf.addN(vars.map((v) => tf.sum(tf.square(v)))))) as import('@tensorflow/tfjs').Scalar;
        }, false, vars);
        const got = z.weights.subarray((8 + i + 1) * P, (8 + i + 2) * P);
        // f32 TF.js autograd + f32 optimizer vs our explicit backward + f64-computed update stored in f32: measured
        // max |diff| 3e-7 (Adam) / 9e-8 (SGD) after 23 steps, far below the ~1e-3 change per step.
        expect(got).toAllClose(fromTfModel(model).flat, { atol: 2e-6, rtol: 1e-5 });
      }
      model.dispose();
      opt.dispose();
    }
  });

  it("gives a run the same trajectory whatever chunk it is trained in (runs don't interact)", async () => {
    const a = (await buildZoo({ ...small, runs: 3, chunkSize: 3, out: file('c3.safetensors') })).zoo;
    const b = (await buildZoo({ ...small, runs: 3, chunkSize: 1, out: file('c1.safetensors') })).zoo;
    // Same per-run arithmetic in the same order; only the batched kernels' batch dimension differs: bit-identical.
    expect(Array.from(b.weights)).toEqual(Array.from(a.weights));
    expect(Array.from(b.testLoss)).toEqual(Array.from(a.testLoss));
    expect(Array.from(b.init!)).toEqual(Array.from(a.init!));
  });

  it('resumes an interrupted build to a bit-identical file, and retrains a corrupt partial chunk', async () => {
    const ref = fs.readFileSync(file('small.safetensors'));
    const out = file('resumed.safetensors');
    const ac = new AbortController();
    let err: unknown;
    try {
      await buildZoo({
        ...small,
        out,
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === 'train' && p.chunk === 1 && p.epoch === 1) ac.abort(); // mid-chunk, after chunk 0 finished
        },
      });
    } catch (e) {
      err = e;
    }
    expectCode(err, 'ERR_INTERRUPTED');
    expect((err as Error).message).toMatch(/1 of 2 chunks/);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(`${out}.partial`).filter((f) => f.endsWith('.safetensors'))).toEqual(['chunk-00000.safetensors']);
    const res = await buildZoo({ ...small, out });
    expect([res.chunksResumed, res.chunksTrained]).toEqual([1, 1]);
    expect(fs.readFileSync(out).equals(ref)).toBe(true);
    expect(fs.existsSync(`${out}.partial`)).toBe(false);
    const again = await buildZoo({ ...small, out });
    expect(again.alreadyBuilt).toBe(true);

    // A damaged partial chunk (e.g. from a crash of some other tool) is retrained, not trusted.
    const out2 = file('damaged.safetensors');
    fs.mkdirSync(`${out2}.partial`, { recursive: true });
    fs.writeFileSync(path.join(`${out2}.partial`, 'chunk-00001.safetensors'), Buffer.from('not a safetensors file'));
    await buildZoo({ ...small, out: out2 });
    expect(fs.readFileSync(out2).equals(ref)).toBe(true);
  });

  it('refuses to mix options: partial results or an existing zoo built differently', async () => {
    const out = file('mixed.safetensors');
    const ac = new AbortController();
    // Aborted after the first chunk is saved: the build stops before the second with ERR_INTERRUPTED.
    await expect(buildZoo({ ...small, out, signal: ac.signal, onProgress: (p) => p.phase === 'chunk-done' && ac.abort() })).rejects.toThrowError(
      expect.objectContaining({ code: 'ERR_INTERRUPTED', message: expect.stringMatching(/interrupted: 1 of 2 chunks are finished/) }),
    );
    await expect(buildZoo({ ...small, seed: 12, out })).rejects.toThrow(/differs in: seed/);
    // Other epochs give chunks of other sizes: still a build with other options, refused with the chunk kept (not
    // taken for an unreadable chunk and deleted).
    const chunk0 = path.join(`${out}.partial`, 'chunk-00000.safetensors');
    const saved = fs.readFileSync(chunk0);
    await expect(buildZoo({ ...small, epochs: 4, out })).rejects.toThrow(/differs in: epochs, schedule\)/);
    // The advice is data too, so a caller (the CLI) can give it in its own terms.
    await expect(buildZoo({ ...small, epochs: 4, out })).rejects.toMatchObject({
      name: 'OutputConflictError', code: 'ERR_INVALID', remedy: 'fresh', situation: expect.stringMatching(/holds results of a build with other options \(differs in: epochs, schedule\)$/),
    });
    expect(fs.readFileSync(chunk0).equals(saved)).toBe(true);
    const fresh = await buildZoo({ ...small, seed: 12, out, resume: false });
    expect(fresh.chunksResumed).toBe(0);
    await expect(buildZoo({ ...small, out })).rejects.toThrow(/already exists.*differs in: seed.*overwrite: true/);
    await expect(buildZoo({ ...small, out })).rejects.toMatchObject({ name: 'OutputConflictError', remedy: 'overwrite', situation: expect.stringMatching(/already exists and was built with other options \(differs in: seed\)$/) });
  });

  it('validates options with typed errors', async () => {
    const bad: [Partial<BuildZooOptions>, RegExp][] = [
      [{ runs: 0 }, /`runs`/],
      [{ arch: [31, 16, 2] }, /start with 30 inputs and end with 2 classes/],
      [{ schedule: { skipEpochs: 3 } }, /`schedule.skipEpochs`/],
      [{ optimizer: { name: 'rmsprop' } as never }, /'adam', 'sgd'/],
      [{ init: { scheme: 'normal', std: -1 } }, /`init.std`/],
      [{ task: 'nope' as never }, /task name/],
      [{ out: '' }, /`out`/],
    ];
    for (const [o, msg] of bad) {
      let err: unknown;
      try {
        await buildZoo({ ...small, out: file('bad.safetensors'), ...o } as BuildZooOptions);
      } catch (e) {
        err = e;
      }
      expectCode(err, 'ERR_INVALID');
      expect((err as Error).message).toMatch(msg);
    }
  });
});

describe('init schemes', () => {
  it("'normal' draws N(0, std²) weights and zero biases; 'uniform' is PyTorch's U(±1/√fan_in) for both", () => {
    const a = mlp([784, 10, 10]);
    const w = zooRunInit(a, { scheme: 'normal', std: 0.1 }, 0, 0);
    const ws = w.subarray(0, a.numWeights);
    const mean = ws.reduce((s, v) => s + v, 0) / ws.length;
    const sd = Math.sqrt(ws.reduce((s, v) => s + (v - mean) ** 2, 0) / ws.length);
    expect(Math.abs(mean)).toBeLessThan(0.01); // 7,940 draws: 5σ of the mean ≈ 0.0056
    expect(Math.abs(sd - 0.1)).toBeLessThan(0.005);
    expect(w.subarray(a.numWeights).every((v) => v === 0)).toBe(true);
    const u = zooRunInit(a, { scheme: 'uniform' }, 0, 0);
    for (let l = 1; l <= 2; l++) {
      const bound = 1 / Math.sqrt(a.widths[l - 1]!);
      const block = [...u.subarray(a.weightOffset(l), a.weightOffset(l) + a.widths[l - 1]! * a.widths[l]!), ...u.subarray(a.biasOffset(l), a.biasOffset(l) + a.widths[l]!)];
      expect(Math.max(...block.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...block.map(Math.abs))).toBeGreaterThan(0.8 * bound);
    }
    expect(Array.from(zooRunInit(a, { scheme: 'uniform' }, 0, 1))).not.toEqual(Array.from(u));
  });
});

describe('readZoo / writeZoo', () => {
  const arch = mlp([3, 2, 2]); // P = 14
  const n = 3;
  const base = {
    arch,
    task: 'toy',
    weights: Float32Array.from({ length: n * 14 }, (_, i) => i / 10),
    run: new Int32Array([0, 0, 1]),
    epoch: new Int32Array([1, 2, 1]),
    iter: new Int32Array([4, 8, 4]),
    testAcc: new Float32Array([0.5, 0.75, 1]),
    testLoss: new Float32Array([0.7, 0.5, 0.1]),
    init: new Float32Array(2 * 14),
  };

  it('round-trips, keeping extra tensors and metadata such as aligned_to', () => {
    const f = file('rt.safetensors');
    writeZoo(f, { ...base, metadata: { aligned_to: JSON.stringify({ run: 0, iter: 8 }) }, extra: { perm: { dtype: 'I32', shape: [3, 2], data: new Int32Array([1, 0, 0, 1, 1, 0]) } } });
    const z = readZoo(f);
    expect(z.n).toBe(3);
    expect(Array.from(z.weights)).toEqual(Array.from(base.weights));
    expect(Array.from(z.iter)).toEqual([4, 8, 4]);
    expect(z.metadata.aligned_to).toBe('{"run":0,"iter":8}');
    expect(Array.from(z.extra.perm!.data as Int32Array)).toEqual([1, 0, 0, 1, 1, 0]);
    const noInit = file('noinit.safetensors');
    writeZoo(noInit, { ...base, init: null });
    expect(readZoo(noInit).init).toBeNull();
  });

  it('rejects truncated, corrupt and inconsistent files with ERR_IO, never a crash', () => {
    const good = file('good.safetensors');
    writeZoo(good, base);
    const bytes = fs.readFileSync(good);
    const md = { format: 'wsflow-zoo', format_version: '1', arch: '[3,2,2]', task: 'toy' };
    const t = {
      weights: { dtype: 'F32' as const, shape: [n, 14], data: base.weights },
      run: { dtype: 'I32' as const, shape: [n], data: base.run },
      epoch: { dtype: 'I32' as const, shape: [n], data: base.epoch },
      iter: { dtype: 'I32' as const, shape: [n], data: base.iter },
      test_acc: { dtype: 'F32' as const, shape: [n], data: base.testAcc },
      test_loss: { dtype: 'F32' as const, shape: [n], data: base.testLoss },
    };
    const variants: [string, Uint8Array, RegExp][] = [
      ['truncated', bytes.subarray(0, bytes.length - 9), /truncated|outside/],
      ['header only', bytes.subarray(0, 20), /exceeds|outside|JSON/],
      ['empty', new Uint8Array(0), /8/],
      ['garbage header', Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{not json at all')]), /JSON/],
      ['not a zoo', encodeSafetensors(t, { ...md, format: 'other' }), /format/],
      ['future version', encodeSafetensors(t, { ...md, format_version: '99' }), /format_version/],
      ['P mismatch', encodeSafetensors(t, { ...md, arch: '[3,4,2]' }), /expected \[n, 26\]/],
      ['bad arch', encodeSafetensors(t, { ...md, arch: 'wide' }), /arch/],
      ['missing tensor', encodeSafetensors(Object.fromEntries(Object.entries(t).filter(([k]) => k !== 'test_acc')), md), /test_acc` is missing/],
      ['wrong dtype', encodeSafetensors({ ...t, run: { dtype: 'F32', shape: [n], data: new Float32Array(n) } }, md), /`run` is F32/],
      ['length mismatch', encodeSafetensors({ ...t, iter: { dtype: 'I32', shape: [2], data: new Int32Array(2) } }, md), /expected \[3\]/],
      ['run out of range', encodeSafetensors({ ...t, init: { dtype: 'F32', shape: [1, 14], data: new Float32Array(14) } }, md), /run 1, outside/],
    ];
    for (const [name, buf, msg] of variants) {
      const f = file(`bad-${name.replace(/ /g, '-')}.safetensors`);
      fs.writeFileSync(f, buf);
      let err: unknown;
      try {
        readZoo(f);
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(WsfError);
      expect((err as WsfError).code, name).toBe('ERR_IO');
      expect((err as Error).message, name).toMatch(msg);
    }
    let missing: unknown;
    try {
      readZoo(file('does-not-exist.safetensors'));
    } catch (e) {
      missing = e;
    }
    expectCode(missing, 'ERR_IO');
  });

  it('validates what it writes', () => {
    expect(() => writeZoo(file('x.safetensors'), { ...base, weights: new Float32Array(15) })).toThrow(/length n·P \(P = 14/);
    expect(() => writeZoo(file('x.safetensors'), { ...base, run: new Int32Array(2) })).toThrow(/`run` of length 3/);
    expect(() => writeZoo(file('x.safetensors'), { ...base, metadata: { seed: 3 as never } })).toThrow(/must be strings/);
  });
});
