/**
 * The demo (`wsflow demo`): the whole pipeline on the embedded WDBC task — build a small zoo, align it, train a
 * Geometric flow (or all three flows), sample networks, evaluate them against the trained networks and the two
 * baselines — and write a report folder:
 *   summary.json   everything measured (the `--json` summary plus curves and per-network accuracies)
 *   report.html    a self-contained page with inline SVG plots (training loss, accuracy vs Euler steps,
 *                  model averaging, histogram of sample vs trained accuracies)
 *   zoo/, flows/<geometry>/, samples/<geometry>.safetensors   the pipeline's files (see layout.ts)
 * Re-running with the same settings reuses the zoo and the trained flows (their checkpoints) and samples again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveDevice, type Device, type DeviceRequest } from '../device.js';
import { WsfError, isWsfError } from '../errors.js';
import { evaluateNetworks } from '../eval/evaluate.js';
import { summarize } from '../eval/stats.js';
import { TIME_DISTRIBUTIONS } from '../flow/time.js';
import type { PriorSpec } from '../flow/prior.js';
import type { GeometryKind } from '../geometry/Geometry.js';
import { canonicalize } from '../geometry/canonicalize.js';
import { makeDirs, writeFileAtomic } from '../io/safetensors.js';
import { binding } from '../native/binding.js';
import { loadTask } from '../tasks/loadTask.js';
import { createProgress, type ProgressOptions } from '../util/progress.js';
import { version } from '../version.js';
import { buildZooReusing } from './zoo.js';
import { type Zoo, readZoo, writeZoo } from '../zoo/Zoo.js';
import { alignZoo } from './align.js';
import { type BmaEntry, type MeanStd, evaluateSamples } from './evaluate.js';
import { ALIGNED_FILE, ZOO_FILE } from './layout.js';
import { DEMO_PRESETS, type DemoPreset, type DemoScale } from './presets.js';
import { demoReportHtml } from './report.js';
import { sampleFlow, writeSamples } from './sample.js';
import { trainFlow } from './train.js';
import { checkOptionKeys, optionKeys } from '../util/validate.js';

/** Options of {@link runDemo}; unset sizes come from the preset. */
export interface DemoOptions {
  /** 'quick' (default) or 'paper' (thesis sizes, for a GPU). */
  readonly scale?: DemoScale;
  /** Report folder (default './wsflow-demo'). */
  readonly out?: string;
  /** Flows to train (default ['geometric']); the first is the headline one. */
  readonly geometries?: readonly GeometryKind[];
  /** Preset overrides. */
  readonly overrides?: Partial<DemoPreset>;
  readonly seed?: number;
  readonly device?: DeviceRequest;
  /** Stops between steps; what finished stays on disk (zoo chunks, flow checkpoints). */
  readonly signal?: AbortSignal;
  /** Progress bars' base options (stream, json); false: silent. Default: auto. */
  readonly progress?: ProgressOptions | false;
  /** Called with stage messages. */
  readonly log?: (message: string) => void;
  /** Recorded in the summary. */
  readonly command?: string;
}

/** Results of one flow in the demo. */
export interface DemoFlowResult {
  readonly geometry: GeometryKind;
  readonly train: { readonly steps: number; readonly resumedFrom: number; readonly seconds: number; readonly stepsPerS: number; readonly finalLoss: number };
  readonly sampleAccuracy: MeanStd;
  readonly sampleLoss: MeanStd;
  readonly trainedAccuracy: MeanStd;
  readonly trainedLoss: MeanStd;
  readonly bma: readonly BmaEntry[];
  readonly trainedBma: readonly BmaEntry[];
  readonly baselines: { readonly noise: { accuracy: MeanStd; loss: MeanStd; sigma: number; distance: number; reached: boolean }; readonly average: { accuracy: MeanStd; loss: MeanStd; k: number }; readonly gaussian: { accuracy: MeanStd; loss: MeanStd; members: number }; readonly mixture?: { accuracy: MeanStd; loss: MeanStd; components: number; scale: number } };
  readonly memorisation: { readonly sampleNN: MeanStd; readonly zooLooNN: MeanStd; readonly ratio: number };
  readonly stepSweep: readonly { readonly steps: number; readonly n: number; readonly accuracy: MeanStd; readonly loss: MeanStd }[];
  readonly space: 'raw' | 'canonical';
  readonly sampleSeconds: number;
  readonly files: { readonly flow: string; readonly samples: string };
}

/** What {@link runDemo} returns (and `wsflow demo --json` prints). The headline fields are the first flow's. */
export interface DemoSummary {
  readonly wsflow: string;
  readonly backend: Device;
  readonly threads: number;
  readonly scale: DemoScale;
  readonly task: string;
  readonly arch: readonly number[];
  readonly geometry: GeometryKind;
  readonly trainedAccuracy: MeanStd;
  readonly sampleAccuracy: MeanStd;
  readonly sampleLoss: MeanStd;
  /** Model-averaging accuracy of the samples by ensemble size. */
  readonly bmaAccuracy: Readonly<Record<string, number>>;
  readonly baselines: DemoFlowResult['baselines'];
  readonly memorisation: DemoFlowResult['memorisation'];
  readonly flows: readonly DemoFlowResult[];
  readonly zoo: { readonly networks: number; readonly runs: number; readonly epochs: number; readonly testAccuracy: MeanStd; readonly seconds: number; readonly reused: boolean };
  readonly alignment: { readonly distanceBefore: number; readonly distanceAfter: number; readonly seconds: number };
  readonly config: DemoPreset & { readonly seed: number; readonly geometries: readonly GeometryKind[] };
  readonly seconds: number;
  readonly timings: Readonly<Record<string, number>>;
  readonly machine: { readonly cpus: string; readonly cores: number; readonly loadAverage: { readonly start: readonly number[]; readonly end: readonly number[] } };
  readonly files: { readonly dir: string; readonly summary: string; readonly report: string };
  readonly command: string | null;
  readonly date: string;
}

/** Curves and per-network values kept in summary.json and the report, not in the printed summary. */
export interface DemoDetails {
  readonly loss: Readonly<Record<string, readonly { step: number; loss: number }[]>>;
  readonly sampleAccuracies: Readonly<Record<string, readonly number[]>>;
  readonly trainedAccuracies: Readonly<Record<string, readonly number[]>>;
}

const ms = (m: { mean: number; std: number }): MeanStd => ({ mean: m.mean, std: m.std });

function resolvePreset(scale: DemoScale, o: Partial<DemoPreset> | undefined): DemoPreset {
  const p = { ...DEMO_PRESETS[scale], ...(o ?? {}) };
  const bad = (name: string, v: unknown, what: string): WsfError => new WsfError(`Expected ${what} for demo option \`${name}\` but received ${String(v)}`, 'ERR_INVALID');
  for (const k of ['runs', 'epochs', 'd', 'layers', 'heads', 'batch', 'samples', 'sampleSteps', 'sweepSamples'] as const) {
    if (!Number.isInteger(p[k]) || p[k] < 1) throw bad(k, p[k], 'a positive integer');
  }
  if (!Number.isInteger(p.steps) || p.steps < 0) throw bad('steps', p.steps, 'an integer ≥ 0');
  if (!(p.lr > 0)) throw bad('lr', p.lr, 'a positive number');
  if (!(TIME_DISTRIBUTIONS as readonly string[]).includes(p.time)) throw bad('time', p.time, `${TIME_DISTRIBUTIONS.slice(0, -1).map((x) => `'${x}'`).join(', ')} or '${TIME_DISTRIBUTIONS.at(-1)}'`);
  if (!(p.ema >= 0 && p.ema < 1)) throw bad('ema', p.ema, 'a number in [0, 1)');
  if (p.d % p.heads !== 0) throw bad('heads', p.heads, `a divisor of d = ${p.d}`);
  const bma = p.bma.filter((n) => n <= p.samples);
  return { ...p, bma: bma.length > 0 ? bma : [1] };
}

/**
 * Runs the demo (see the module doc).
 * @throws WsfError ERR_INVALID for bad options, ERR_INTERRUPTED when `signal` aborts, and the pipeline's errors
 */
/** The flow prior of a demo preset; a mixture has one component per zoo run. */
function demoPrior(p: DemoPreset): PriorSpec {
  if (p.prior === 'mixture') return { kind: 'mixture', by: 'run', ...(p.priorScale !== 1 ? { scale: p.priorScale } : {}) };
  return p.prior === 'zoo' ? { kind: 'zoo' } : { kind: 'gaussian', std: 0.1 };
}

const DEMO_KEYS = optionKeys<DemoOptions>()(['scale', 'out', 'geometries', 'overrides', 'seed', 'device', 'signal', 'progress', 'log', 'command'] as const);

export async function runDemo(opts: DemoOptions = {}): Promise<{ summary: DemoSummary; details: DemoDetails }> {
  checkOptionKeys('runDemo', opts, DEMO_KEYS);
  const t0 = performance.now();
  const date = new Date().toISOString();
  const loadStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const scale = opts.scale ?? 'quick';
  if (!(scale in DEMO_PRESETS)) throw new WsfError(`Expected scale 'quick' or 'paper' but received '${String(scale)}'`, 'ERR_INVALID');
  const p = resolvePreset(scale, opts.overrides);
  const geometries = opts.geometries ?? ['geometric'];
  if (geometries.length === 0) throw new WsfError('Expected at least one geometry', 'ERR_INVALID');
  const seed = opts.seed ?? 0;
  const dir = opts.out ?? 'wsflow-demo';
  const device = resolveDevice(opts.device);
  const log = opts.log ?? ((): void => undefined);
  const base: ProgressOptions = opts.progress === false ? { silent: true } : (opts.progress ?? {});
  const prog = (label: string, total: number, unit: string): ProgressOptions => ({ ...base, label, total, unit });
  const interrupted = (): never => {
    throw new WsfError('demo interrupted; the zoo and flow checkpoints finished so far are kept and a re-run resumes from them', 'ERR_INTERRUPTED');
  };
  const timings: Record<string, number> = {};
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const s = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = (timings[name] ?? 0) + (performance.now() - s) / 1000;
    }
  };
  makeDirs(dir);

  // 1. Zoo.
  const task = loadTask('wdbc');
  const zooDir = path.join(dir, 'zoo');
  log(`building a WDBC zoo: ${p.runs} runs × ${p.epochs} epochs`);
  const zr = await time('zoo', () =>
    buildZooReusing({ task, out: path.join(zooDir, ZOO_FILE), runs: p.runs, epochs: p.epochs, seed, ...(opts.signal !== undefined ? { signal: opts.signal } : {}), progress: base }),
  );
  const zoo = zr.zoo;
  const arch = zoo.arch;

  // 2. Alignment (reused when the aligned file belongs to this zoo).
  const alignedFile = path.join(zooDir, ALIGNED_FILE);
  let aligned: Zoo | undefined;
  let alignInfo = { distanceBefore: NaN, distanceAfter: NaN, seconds: 0 };
  if (fs.existsSync(alignedFile)) {
    try {
      const a = readZoo(alignedFile);
      if (a.metadata.fingerprint === zoo.metadata.fingerprint && a.metadata.aligned_to !== undefined && a.n === zoo.n) {
        aligned = a;
        const st = JSON.parse(a.metadata.alignment ?? '{}') as { distance_before?: { mean: number }; distance_after?: { mean: number }; seconds?: number };
        alignInfo = { distanceBefore: st.distance_before?.mean ?? NaN, distanceAfter: st.distance_after?.mean ?? NaN, seconds: st.seconds ?? 0 };
      }
    } catch {
      aligned = undefined;
    }
  }
  if (aligned === undefined) {
    log(`aligning ${zoo.n} networks`);
    const bar = createProgress(prog('align', zoo.n, 'networks'));
    const r = await time('align', () => alignZoo(zoo, { seed, ...(opts.signal !== undefined ? { signal: opts.signal } : {}), progress: bar, source: ZOO_FILE }));
    bar.done();
    aligned = writeZoo(alignedFile, r.zoo);
    alignInfo = { distanceBefore: r.distanceBefore.mean, distanceAfter: r.distanceAfter.mean, seconds: r.seconds };
  }
  const alignedZoo = aligned;

  // 3–5. Flows: train, sample, evaluate.
  const flows: DemoFlowResult[] = [];
  const details: { loss: Record<string, { step: number; loss: number }[]>; sampleAccuracies: Record<string, number[]>; trainedAccuracies: Record<string, number[]> } = { loss: {}, sampleAccuracies: {}, trainedAccuracies: {} };
  for (const g of geometries) {
    if (opts.signal?.aborted === true) interrupted();
    const flowDir = path.join(dir, 'flows', g);
    log(`training the ${g} flow: D=${p.d}, ${p.layers} layers, ${p.graph}, ${p.steps} steps of batch ${p.batch}`);
    const trainOpts = {
      zoo: alignedZoo,
      zooFile: alignedFile,
      out: flowDir,
      flow: { geometry: g, seed, time: p.time, prior: demoPrior(p), field: { D: p.d, layers: p.layers, heads: p.heads, graph: p.graph, hiddenIdentity: p.hiddenIdentity } },
      train: { steps: p.steps, batchSize: p.batch, lr: p.lr, ema: p.ema, checkpointEvery: Math.max(50, Math.round(p.steps / 10)), logEvery: Math.max(1, Math.round(p.steps / 100)) },
      device,
      ...(opts.signal !== undefined ? { signal: opts.signal } : {}),
      ...(opts.command !== undefined ? { command: opts.command } : {}),
    };
    const tr = await time('train', async () => {
      const bar = createProgress(prog(`train ${g}`, p.steps, 'steps'));
      try {
        return await trainFlow({ ...trainOpts, progress: bar });
      } catch (e) {
        // A checkpoint from a run with other settings: start this flow over.
        if (isWsfError(e) && e.code === 'ERR_INVALID' && /written with other options|was trained on/.test(e.message)) {
          log(`${flowDir}: the checkpoint has other settings; training from scratch`);
          return trainFlow({ ...trainOpts, progress: createProgress(prog(`train ${g}`, p.steps, 'steps')), restart: true });
        }
        throw e;
      } finally {
        bar.done();
      }
    });
    const fm = tr.flow;
    try {
      details.loss[g] = tr.log.map((l) => ({ step: l.step, loss: l.loss }));
      log(`sampling ${p.samples} networks with ${p.sampleSteps} Euler steps`);
      const s0 = performance.now();
      const sr = await time('sample', () => sampleFlow(fm, { n: p.samples, steps: p.sampleSteps, seed: seed + 1, batch: p.samples, ...(opts.signal !== undefined ? { signal: opts.signal } : {}), progress: createProgress(prog(`sample ${g}`, p.samples, 'networks')) }));
      if (!sr.complete) interrupted();
      const sampleSeconds = (performance.now() - s0) / 1000;
      const samplesFile = path.join(dir, 'samples', `${g}.safetensors`);
      const canonical = g !== 'euclidean';
      writeSamples(samplesFile, arch, sr.weights, {
        flow: tr.flowFile,
        task: task.name,
        geometry: g,
        semantics: 'corrected',
        canonical: String(canonical),
        steps: String(p.sampleSteps),
        solver: 'euler',
        seed: String(seed + 1),
        batch: String(p.samples),
        noise: 'none',
        guidance: 'none',
        zoo_file: alignedFile,
        zoo_aligned: 'true',
        device,
      });
      log(`evaluating the ${g} samples against ${alignedZoo.n} trained networks and the baselines`);
      const ev = await time('eval', () => evaluateSamples({ task, arch, samples: sr.weights, canonical, bma: p.bma, zoo: alignedZoo.weights, refCount: p.samples, seed, device, ...(p.prior === 'mixture' ? { mixture: { runs: alignedZoo.run, scale: p.priorScale } } : {}) }));
      // Accuracy against Euler steps (the same prior draws at every step count).
      const sweep: { steps: number; n: number; accuracy: MeanStd; loss: MeanStd }[] = [];
      for (const steps of p.stepSweep) {
        if (opts.signal?.aborted === true) interrupted();
        if (steps === p.sampleSteps) {
          sweep.push({ steps, n: ev.samples.count, accuracy: ms(ev.samples.accuracy), loss: ms(ev.samples.loss) });
          continue;
        }
        const w = await time('sample', () => sampleFlow(fm, { n: p.sweepSamples, steps, seed: seed + 1, batch: p.sweepSamples }));
        const e = await time('eval', () => evaluateNetworks(task, arch, canonical ? canonicalize(arch, w.weights) : w.weights));
        sweep.push({ steps, n: p.sweepSamples, accuracy: ms(e.accuracySummary), loss: ms(e.lossSummary) });
      }
      if (!p.stepSweep.includes(p.sampleSteps)) sweep.push({ steps: p.sampleSteps, n: ev.samples.count, accuracy: ms(ev.samples.accuracy), loss: ms(ev.samples.loss) });
      sweep.sort((a, b) => a.steps - b.steps);
      details.sampleAccuracies[g] = [...ev.samples.accuracies];
      details.trainedAccuracies[g] = [...(ev.trained?.accuracies ?? [])];
      const b = ev.baselines!;
      const m = ev.memorisation!;
      flows.push({
        geometry: g,
        train: { steps: tr.step, resumedFrom: tr.resumedFrom, seconds: tr.seconds, stepsPerS: tr.stepsPerS, finalLoss: tr.loss },
        sampleAccuracy: ms(ev.samples.accuracy),
        sampleLoss: ms(ev.samples.loss),
        trainedAccuracy: ms(ev.trained!.accuracy),
        trainedLoss: ms(ev.trained!.loss),
        bma: ev.bma ?? [],
        trainedBma: ev.trained?.bma ?? [],
        baselines: {
          noise: { accuracy: ms(b.noise.accuracy), loss: ms(b.noise.loss), sigma: b.noise.sigma, distance: b.noise.distance, reached: b.noise.reached },
          average: { accuracy: ms(b.average.accuracy), loss: ms(b.average.loss), k: b.average.k },
          gaussian: { accuracy: ms(b.gaussian.accuracy), loss: ms(b.gaussian.loss), members: b.gaussian.members },
          ...(b.mixture !== undefined ? { mixture: { accuracy: ms(b.mixture.accuracy), loss: ms(b.mixture.loss), components: b.mixture.components, scale: b.mixture.scale } } : {}),
        },
        memorisation: { sampleNN: ms(m.sampleNN), zooLooNN: ms(m.zooLooNN), ratio: m.ratio },
        stepSweep: sweep,
        space: ev.space,
        sampleSeconds,
        files: { flow: tr.flowFile, samples: samplesFile },
      });
    } finally {
      fm.dispose();
    }
  }

  const head = flows[0]!;
  const fin = summarize(Array.from(zoo.testAcc));
  const summary: DemoSummary = {
    wsflow: version,
    backend: device,
    threads: binding().numThreads(),
    scale,
    task: task.name,
    arch: arch.widths,
    geometry: head.geometry,
    trainedAccuracy: head.trainedAccuracy,
    sampleAccuracy: head.sampleAccuracy,
    sampleLoss: head.sampleLoss,
    bmaAccuracy: Object.fromEntries(head.bma.map((e) => [String(e.n), e.accuracy.mean])),
    baselines: head.baselines,
    memorisation: head.memorisation,
    flows,
    zoo: { networks: zoo.n, runs: p.runs, epochs: p.epochs, testAccuracy: ms(fin), seconds: timings.zoo ?? 0, reused: zr.alreadyBuilt },
    alignment: alignInfo,
    config: { ...p, seed, geometries },
    seconds: (performance.now() - t0) / 1000,
    timings,
    machine: { cpus: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`, cores: os.cpus().length, loadAverage: { start: loadStart, end: os.loadavg().map((x) => Math.round(x * 100) / 100) } },
    files: { dir, summary: path.join(dir, 'summary.json'), report: path.join(dir, 'report.html') },
    command: opts.command ?? null,
    date,
  };
  writeFileAtomic(summary.files.summary, JSON.stringify({ ...summary, details }, null, 1) + '\n');
  writeFileAtomic(summary.files.report, demoReportHtml(summary, details));
  return { summary, details };
}
