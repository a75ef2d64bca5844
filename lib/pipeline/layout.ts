/**
 * The on-disk layout of the pipeline's folders (what `wsflow zoo/align/train/sample` write and read).
 *
 * Zoo folder (`wsflow zoo --out zoos/wdbc`):
 * - `zoo.safetensors`      the trained networks (Zoo.ts format); `zoo.safetensors.partial/` while building
 * - `aligned.safetensors`  the same networks permutation-aligned to one reference (`wsflow align`), metadata
 *                          `aligned_to` (reference index and source file), extra tensor `perms` (n × hidden); it keeps
 *                          the source's metadata, whose `created` and `fingerprint` tell the build it was aligned from
 *                          (an aligned file of an earlier build is refused, and removed when `wsflow zoo` rebuilds)
 *
 * Flow folder (`wsflow train --out flows/wdbc-geo`):
 * - `flow.safetensors`        the trained flow (FlowMatcher format; loads with `FlowMatcher.load`)
 * - `checkpoint.safetensors`  the resumable training state (written every `--checkpoint-every` steps, at the end
 *                             and on Ctrl-C; a re-run with the same options resumes from it)
 * - `train-log.json`          the configuration, the loss log and the result
 *
 * Samples (`wsflow sample --out s.safetensors`): one safetensors file with `weights` F32 [n, P] (flat layout)
 * and metadata (format `wsflow-samples`, flow file, geometry, semantics, steps, solver, seed, arch, task, …).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WsfError } from '../errors.js';
import { readZooMetadata } from '../zoo/Zoo.js';

export const ZOO_FILE = 'zoo.safetensors';
export const ALIGNED_FILE = 'aligned.safetensors';
/** `wsflow reproduce` keeps the zoo aligned by run beside the thesis' per-checkpoint alignment under this name. */
export const ALIGNED_BY_RUN_FILE = 'aligned-by-run.safetensors';
export const FLOW_FILE = 'flow.safetensors';
export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const TRAIN_LOG_FILE = 'train-log.json';

/** Which networks of a zoo folder to use. */
export type ZooData = 'auto' | 'aligned' | 'raw';

/** A zoo file chosen from a folder (or given directly). */
export interface ZooLocation {
  /** The zoo file. */
  readonly file: string;
  /** True for the aligned zoo. */
  readonly aligned: boolean;
  /** The zoo folder (the file's folder). */
  readonly dir: string;
}

/**
 * Resolves `--zoo`: a zoo folder (uses `aligned.safetensors` when present and `data` is 'auto' or 'aligned', else
 * `zoo.safetensors`) or a zoo file.
 * @throws WsfError ERR_IO when the wanted file does not exist, or is an aligned file of an earlier build of the zoo
 *   ({@link staleAligned})
 */
export function locateZoo(p: string, data: ZooData = 'auto'): ZooLocation {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (st === undefined) throw new WsfError(`${p} does not exist`, 'ERR_IO');
  if (st.isFile()) {
    refuseStale(p);
    return { file: p, aligned: path.basename(p) === ALIGNED_FILE, dir: path.dirname(p) };
  }
  const aligned = path.join(p, ALIGNED_FILE);
  const raw = path.join(p, ZOO_FILE);
  if (data !== 'raw' && fs.existsSync(aligned)) {
    refuseStale(aligned);
    return { file: aligned, aligned: true, dir: p };
  }
  if (data === 'aligned') throw new WsfError(`${p} has no ${ALIGNED_FILE}; run 'wsflow align --zoo ${p}' first`, 'ERR_IO');
  if (fs.existsSync(raw)) return { file: raw, aligned: false, dir: p };
  throw new WsfError(`${p} holds no ${ZOO_FILE}; build one with 'wsflow zoo --out ${p}'`, 'ERR_IO');
}

/**
 * Why an aligned file of a zoo folder (`aligned.safetensors`, `aligned-by-run.safetensors`) no longer belongs to the
 * folder's `zoo.safetensors`, or null when it does or that cannot be told (another file name, no such source beside
 * it, a zoo that records no build). The aligned file keeps its source's metadata, so its `created` and `fingerprint`
 * name the build it was aligned from; a rebuilt zoo has another `created` (and, with other options, `fingerprint`).
 * @throws WsfError ERR_IO when a file's header is unreadable
 */
export function staleAligned(file: string): string | null {
  if (path.basename(file) !== ALIGNED_FILE && path.basename(file) !== ALIGNED_BY_RUN_FILE) return null;
  const md = readZooMetadata(file);
  let source: unknown;
  try {
    source = (JSON.parse(md.aligned_to ?? 'null') as { source?: unknown } | null)?.source;
  } catch {
    return null;
  }
  const src = path.join(path.dirname(file), ZOO_FILE);
  if (source !== ZOO_FILE || !fs.existsSync(src)) return null;
  const now = readZooMetadata(src);
  if (now.created === undefined && now.fingerprint === undefined) return null;
  if (now.created === md.created && now.fingerprint === md.fingerprint) return null;
  return `${file} was aligned from an earlier build of ${src} (built ${md.created ?? 'at an unrecorded time'}; the zoo now is of ${now.created ?? 'an unrecorded time'})`;
}

function refuseStale(file: string): void {
  const why = staleAligned(file);
  if (why !== null) throw new WsfError(`${why}; run 'wsflow align --zoo ${path.dirname(file)}' again, or use the raw zoo (--data raw)`, 'ERR_IO');
}

/**
 * Resolves `--flow`: a flow folder (its `flow.safetensors`) or a flow/checkpoint file.
 * @throws WsfError ERR_IO when there is no trained flow
 */
export function locateFlow(p: string): string {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (st === undefined) throw new WsfError(`${p} does not exist`, 'ERR_IO');
  if (st.isFile()) return p;
  const f = path.join(p, FLOW_FILE);
  if (fs.existsSync(f)) return f;
  const ck = path.join(p, CHECKPOINT_FILE);
  if (fs.existsSync(ck)) throw new WsfError(`${p} holds a training checkpoint but no ${FLOW_FILE}: finish training (rerun the same 'wsflow train'), or pass ${ck} to sample from it`, 'ERR_IO');
  throw new WsfError(`${p} holds no ${FLOW_FILE}; train one with 'wsflow train --out ${p}'`, 'ERR_IO');
}
