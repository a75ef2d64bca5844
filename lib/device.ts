/**
 * Device selection. `'cpu'` always works. `'cuda'` needs a CUDA-enabled build and a usable device, and is an
 * error (`ERR_NO_CUDA`) otherwise — never a silent fallback. `'auto'` (the default, or `WSF_DEVICE`) picks CUDA
 * when a device works, checked once in a child process so a broken driver cannot take the caller down, and logs
 * the active backend once (to stderr; silence with `WSF_QUIET=1`).
 */
import { spawnSync } from 'node:child_process';
import { WsfError } from './errors.js';
import { binding } from './native/binding.js';
import type { NativeCudaInfo } from './native/types.js';

/** Where computation runs. */
export type Device = 'cpu' | 'cuda';
/** What callers may ask for. */
export type DeviceRequest = Device | 'auto';

let probed: { ok: boolean; reason: string } | undefined;
let announced = false;

/** Probes the CUDA path in a child process (once per process). */
function probeCuda(): { ok: boolean; reason: string } {
  if (probed !== undefined) return probed;
  const b = binding();
  const info = b.cudaInfo();
  if (!info.compiled) return (probed = { ok: false, reason: info.error });
  if (process.env.WSF_SKIP_PROBE === '1') {
    return (probed = info.deviceCount > 0 ? { ok: true, reason: '' } : { ok: false, reason: info.error });
  }
  const script = `const b=require(${JSON.stringify(b.__path ?? '')});process.stdout.write(JSON.stringify(b.cudaInfo()))`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    return (probed = { ok: false, reason: `CUDA probe process failed (status ${String(r.status)}, signal ${String(r.signal)}): ${(r.stderr || '').trim().slice(0, 300)}` });
  }
  try {
    const child = JSON.parse(r.stdout) as NativeCudaInfo;
    return (probed = child.deviceCount > 0 ? { ok: true, reason: '' } : { ok: false, reason: child.error || 'no CUDA device' });
  } catch {
    return (probed = { ok: false, reason: `CUDA probe printed unreadable output: ${r.stdout.slice(0, 200)}` });
  }
}

/** Parses a device request (from options or `WSF_DEVICE`). */
export function parseDeviceRequest(v: unknown, source = 'device'): DeviceRequest {
  if (v === 'cpu' || v === 'cuda' || v === 'auto') return v;
  throw new WsfError(`Expected 'auto', 'cpu' or 'cuda' for \`${source}\` but received ${JSON.stringify(v)}`, 'ERR_INVALID');
}

/**
 * Resolves a request to a concrete device.
 * @param request 'auto' | 'cpu' | 'cuda'; defaults to `WSF_DEVICE` or 'auto'.
 * @throws WsfError ERR_NO_CUDA when 'cuda' is asked for and unavailable; ERR_INVALID for an unknown request.
 */
export function resolveDevice(request?: DeviceRequest): Device {
  const env = process.env.WSF_DEVICE;
  const req = request !== undefined ? parseDeviceRequest(request) : env !== undefined && env !== '' ? parseDeviceRequest(env, 'WSF_DEVICE') : 'auto';
  if (req === 'cpu') return 'cpu';
  const p = probeCuda();
  if (req === 'cuda') {
    if (!p.ok) throw new WsfError(`CUDA was requested but is not available: ${p.reason}`, 'ERR_NO_CUDA');
    return 'cuda';
  }
  const dev: Device = p.ok ? 'cuda' : 'cpu';
  if (!announced && process.env.WSF_QUIET !== '1') {
    announced = true;
    const why = p.ok ? '' : ` (CUDA unavailable: ${p.reason})`;
    process.stderr.write(`wsflow: using ${dev === 'cuda' ? 'CUDA device ' + binding().cudaInfo().name : 'CPU'} backend${why}\n`);
  }
  return dev;
}

/** True when a usable CUDA device exists (probed once). */
export function cudaAvailable(): boolean {
  return probeCuda().ok;
}

/** @internal Resets the cached probe (tests). */
export function _resetDeviceProbe(): void {
  probed = undefined;
  announced = false;
}
