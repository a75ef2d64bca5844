/**
 * Training a flow on a zoo into a flow folder (what `wsflow train` does; also used by `wsflow demo` and
 * `wsflow reproduce`): resumes from the folder's checkpoint when one exists (same options and data), writes the
 * checkpoint every `checkpointEvery` steps, at the end and on interruption, saves the trained flow, and keeps a
 * JSON training log (configuration, loss records, result). See `layout.ts` for the folder's files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DeviceRequest } from '../device.js';
import { WsfError } from '../errors.js';
import { FlowMatcher, type FlowOptions, type TrainLog, type TrainOptions } from '../flow/FlowMatcher.js';
import { makeDirs, writeFileAtomic } from '../io/safetensors.js';
import type { Progress } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { checkObject, checkOptionKeys, describe, optionKeys } from '../util/validate.js';
import { version } from '../version.js';
import { type Zoo, readZooMetadata } from '../zoo/Zoo.js';
import { CHECKPOINT_FILE, FLOW_FILE, TRAIN_LOG_FILE } from './layout.js';

/** Options of {@link trainFlow}. */
export interface TrainFlowOptions {
  /** The training networks. */
  readonly zoo: Zoo;
  /** The zoo file (recorded in the log and the flow's metadata). */
  readonly zooFile: string;
  /** The flow folder. */
  readonly out: string;
  /** Flow options (the architecture comes from the zoo). */
  readonly flow?: Omit<FlowOptions, 'arch' | 'device'>;
  /** Training options (checkpointing, signal and logging are wired here). */
  readonly train: Omit<TrainOptions, 'checkpoint' | 'checkpointMetadata' | 'signal' | 'onLog' | 'onStart'>;
  readonly device?: DeviceRequest;
  /** Train on a seeded random subset of at most this many networks (default: all). */
  readonly maxNetworks?: number;
  /** Discard an existing checkpoint instead of resuming. */
  readonly restart?: boolean;
  readonly signal?: AbortSignal;
  readonly progress?: Progress;
  readonly onLog?: (log: TrainLog) => void;
  /** Recorded in the log (e.g. the command line). */
  readonly command?: string;
}

const TRAIN_FLOW_KEYS = optionKeys<TrainFlowOptions>()(['zoo', 'zooFile', 'out', 'flow', 'train', 'device', 'maxNetworks', 'restart', 'signal', 'progress', 'onLog', 'command']);

/** Result of {@link trainFlow}. */
export interface TrainFlowResult {
  /** The trained flow (caller disposes). */
  readonly flow: FlowMatcher;
  readonly flowFile: string;
  readonly checkpointFile: string;
  readonly logFile: string;
  /** Optimiser steps done in all, and the step training resumed from (0 for a fresh start; for a call that found the
   * training finished, the finished run's). */
  readonly step: number;
  readonly resumedFrom: number;
  /** Running training loss at the end. */
  readonly loss: number;
  /** Wall time of this call's training and its steps per second (a call that finds the training already finished
   * reports the finished run's, from its log). */
  readonly seconds: number;
  readonly stepsPerS: number;
  /** Loss records of the whole training (earlier runs' records kept on resume). */
  readonly log: readonly TrainLog[];
  /** Networks trained on. */
  readonly networks: number;
  /** Memory the vector field holds after training (parameters, optimiser state, the training batch's activations). */
  readonly fieldBytes: number;
  /** Whether training ran in recompute mode (forced, or chosen by 'auto' when memory was short). */
  readonly recompute: boolean;
  /** Pairs per chunk when training ran in chunked recompute mode (forced or chosen by 'auto'), else 0. */
  readonly chunkRows: number;
}

interface LogFile {
  format: 'wsflow-train-log/1';
  wsflow: string;
  command: string | null;
  zoo: { file: string; task: string; arch: readonly number[]; networks: number; aligned: boolean; fingerprint: string | null };
  device: string;
  /** Precision of the CPU engine's weight products in this run (VectorFieldOptions.matmul). */
  matmul: string;
  flow: unknown;
  field: unknown;
  train: unknown;
  records: TrainLog[];
  result: { status: 'running' | 'done' | 'interrupted' | 'failed'; step: number; loss: number | null; seconds: number; resumedFrom: number; stepsPerS: number; message?: string };
}

function differing(a: string, b: string): string {
  try {
    const x = JSON.parse(a) as Record<string, unknown>;
    const y = JSON.parse(b) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]));
    return keys.join(', ') || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** A seeded subset of at most `max` networks (sorted indices), with their runs. */
function subset(zoo: Zoo, max: number | undefined, seed: number): { weights: Float32Array; run: Int32Array; n: number } {
  const P = zoo.arch.numParams;
  if (max === undefined || max >= zoo.n) return { weights: zoo.weights, run: zoo.run, n: zoo.n };
  const idx = new Rng(seed * 31 + 7).permutation(zoo.n).slice(0, max).sort();
  const weights = new Float32Array(max * P);
  const run = new Int32Array(max);
  idx.forEach((k, i) => {
    weights.set(zoo.weights.subarray(k * P, (k + 1) * P), i * P);
    run[i] = zoo.run[k]!;
  });
  return { weights, run, n: max };
}

/**
 * Trains (or resumes training of) a flow on a zoo.
 * @throws WsfError ERR_INVALID when an existing checkpoint was written with other options or data (use `restart`),
 *   ERR_IO for an unreadable or corrupt checkpoint (a refused start: the folder's files are left as they were),
 *   ERR_INTERRUPTED on abort (after writing the checkpoint and the log), ERR_NUMERIC when training diverges
 */
export async function trainFlow(o: TrainFlowOptions): Promise<TrainFlowResult> {
  checkObject('options', o, 'holding `zoo`, `zooFile`, `out` and `train`');
  checkOptionKeys('trainFlow', o, TRAIN_FLOW_KEYS);
  checkObject('zoo', o.zoo, '(a Zoo, from loadZoo or buildZoo)');
  checkObject('train', o.train, 'of training options holding at least `steps`');
  if (typeof o.out !== 'string' || o.out === '') throw new WsfError(`Expected a folder path for \`out\` but received ${describe(o.out)}`, 'ERR_INVALID');
  const flowFile = path.join(o.out, FLOW_FILE);
  const checkpointFile = path.join(o.out, CHECKPOINT_FILE);
  const logFile = path.join(o.out, TRAIN_LOG_FILE);
  const seed = o.flow?.seed ?? 0;
  const data = subset(o.zoo, o.maxNetworks, seed);
  // The flow's options are checked (by create) before the folder is made.
  const fm = FlowMatcher.create({ ...(o.flow ?? {}), arch: o.zoo.arch, ...(o.device !== undefined ? { device: o.device } : {}) });
  try {
    makeDirs(o.out);
  } catch (e) {
    fm.dispose();
    throw e;
  }
  const zooRecord = { file: o.zooFile, task: o.zoo.task, arch: o.zoo.arch.widths, networks: data.n, aligned: o.zoo.metadata.aligned_to !== undefined, fingerprint: o.zoo.metadata.fingerprint ?? null };
  let previous: LogFile | undefined;
  let resumedFrom = 0;
  try {
    if (o.restart === true) {
      fs.rmSync(checkpointFile, { force: true });
      fs.rmSync(flowFile, { force: true });
    }
    if (fs.existsSync(checkpointFile)) {
      const md = readZooMetadata(checkpointFile);
      // Another architecture first: its slots would otherwise be reported as the options that differ.
      if (md.arch !== undefined && md.arch !== o.zoo.arch.key) {
        throw new WsfError(`${checkpointFile} was trained on networks of ${md.arch}; ${o.zooFile} holds ${o.zoo.arch.key}: use that zoo to resume, or pass --restart to start over`, 'ERR_INVALID');
      }
      const flowNow = JSON.stringify(fm.options);
      const cfgNow = JSON.stringify(fm.field.config);
      if (md.flow !== flowNow || md.config !== cfgNow) {
        const diff = md.flow !== flowNow ? differing(md.flow ?? '{}', flowNow) : differing(md.config ?? '{}', cfgNow);
        throw new WsfError(`${checkpointFile} was written with other options (differs in: ${diff}); rerun with the same options to resume, or pass --restart to start over`, 'ERR_INVALID');
      }
      if (fs.existsSync(logFile)) {
        try {
          previous = JSON.parse(fs.readFileSync(logFile, 'utf8')) as LogFile;
          if (typeof previous.zoo?.file !== 'string') throw new Error('no zoo record');
        } catch (e) {
          throw new WsfError(`${logFile}: not a training log written by wsflow (${(e as Error).message}); it is needed to check the zoo before resuming from ${checkpointFile} — restore it, or pass --restart to start over`, 'ERR_IO');
        }
        if (previous.zoo.file !== zooRecord.file || previous.zoo.networks !== zooRecord.networks || (previous.zoo.fingerprint ?? null) !== zooRecord.fingerprint) {
          throw new WsfError(`${checkpointFile} was trained on ${previous.zoo.file} (${previous.zoo.networks} networks${previous.zoo.fingerprint !== zooRecord.fingerprint ? ', another build' : ''}), not ${zooRecord.file} (${zooRecord.networks}); use the same zoo to resume, or pass --restart`, 'ERR_INVALID');
        }
      }
      resumedFrom = Number(md.step ?? '0');
    }
  } catch (e) {
    fm.dispose();
    throw e;
  }
  const steps = o.train.steps;
  const records: TrainLog[] = (previous?.records ?? []).filter((r) => r.step <= resumedFrom);
  const log: LogFile = {
    format: 'wsflow-train-log/1',
    wsflow: version,
    command: o.command ?? null,
    zoo: zooRecord,
    device: fm.field.device,
    matmul: fm.field.matmul,
    flow: fm.options,
    field: fm.field.config,
    train: { ...o.train, maxNetworks: o.maxNetworks ?? null },
    records,
    result: { status: 'running', step: resumedFrom, loss: null, seconds: 0, resumedFrom, stepsPerS: 0 },
  };
  // The task and zoo a flow learned from, recorded in the flow file and in every checkpoint (so a checkpoint can be
  // sampled and evaluated as the finished flow: `wsflow sample --flow checkpoint.safetensors --evaluate`).
  // (the zoo's absolute path: a relative one would be read against whatever folder a later command runs in)
  const provenance = { task: o.zoo.task, zoo_file: path.resolve(o.zooFile), zoo_aligned: String(zooRecord.aligned), train: JSON.stringify(log.train) };
  const writeLog = (): void => writeFileAtomic(logFile, JSON.stringify(log, null, 1) + '\n');
  const bar = o.progress;
  bar?.setTotal(steps);
  if (resumedFrom > 0) {
    bar?.resumeAt(resumedFrom);
    bar?.log(`resuming from ${checkpointFile} at step ${resumedFrom} of ${steps}`, { resumed_from: resumedFrom });
  }
  const t0 = performance.now();
  /** Steps of this run (from the resume point to `step`) per second of `seconds`. */
  const rateTo = (step: number, seconds: number): number => Math.max(0, step - resumedFrom) / Math.max(seconds, 1e-9);
  // A start refused by fit (an unreadable or corrupt checkpoint, bad data) trained nothing: the log stays as it was.
  let started = false;
  try {
    const r = await fm.fit(
      fm.options.coupling === 'trajectory' ? { weights: data.weights, run: data.run, ...(o.zoo.init !== null ? { init: o.zoo.init } : {}) } : { weights: data.weights, run: data.run },
      {
        ...o.train,
        checkpoint: checkpointFile,
        checkpointMetadata: provenance,
        ...(o.signal !== undefined ? { signal: o.signal } : {}),
        onStart: () => {
          started = true;
        },
        onLog: (l) => {
          records.push(l);
          bar?.update(l.step, { loss: l.loss });
          o.onLog?.(l);
        },
      },
    );
    // Nothing left to train (resumed at the last step): report the last recorded loss, and keep the finished run's
    // own time and rate rather than this no-op's.
    const loss = Number.isFinite(r.loss) ? r.loss : (records.at(-1)?.loss ?? NaN);
    const finished = r.step === resumedFrom && previous?.result.status === 'done' && previous.result.step === r.step ? previous.result : undefined;
    const seconds = finished?.seconds ?? (performance.now() - t0) / 1000;
    const stepsPerS = finished?.stepsPerS ?? rateTo(r.step, seconds);
    const from = finished?.resumedFrom ?? resumedFrom;
    fm.save(flowFile, provenance);
    log.result = { status: 'done', step: r.step, loss: Number.isFinite(loss) ? loss : null, seconds, resumedFrom: from, stepsPerS };
    writeLog();
    bar?.done({ loss });
    return { flow: fm, flowFile, checkpointFile, logFile, step: r.step, resumedFrom: from, loss, seconds, stepsPerS, log: records, networks: data.n, fieldBytes: fm.field.bytesHeld, recompute: fm.field.recomputing, chunkRows: fm.field.chunkRows };
  } catch (e) {
    if (started) {
      const interrupted = (e as WsfError).code === 'ERR_INTERRUPTED';
      const seconds = (performance.now() - t0) / 1000;
      log.result = { status: interrupted ? 'interrupted' : 'failed', step: fm.field.stepCount, loss: records.at(-1)?.loss ?? null, seconds, resumedFrom, stepsPerS: rateTo(fm.field.stepCount, seconds), message: (e as Error).message };
      writeLog();
    }
    bar?.done();
    fm.dispose();
    throw e;
  }
}
