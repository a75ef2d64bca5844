/**
 * The lazily loaded native addon singleton. The first call loads the binary and hands {@link WsfError} to native
 * code, so native failures are thrown as WsfError with a code.
 */
import { WsfError } from '../errors.js';
import { loadBinding } from './loadBinding.js';
import type { NativeBinding } from './types.js';

let cached: NativeBinding | undefined;

/** Returns the loaded addon, loading it on first use. @throws NoBinaryFoundError (ERR_NO_BINARY) */
export function binding(): NativeBinding {
  if (cached === undefined) {
    checkThreadsEnv();
    const b = loadBinding();
    b.init(WsfError as unknown as new (message: string, code: string) => Error);
    cached = b;
  }
  return cached;
}

/**
 * WSF_NUM_THREADS, read by the native thread pool when it starts: a value it would ignore (not a whole number in
 * [1, 1024]) is an error here rather than a silent fall-back to all cores.
 * @throws WsfError ERR_INVALID
 */
function checkThreadsEnv(): void {
  const v = process.env.WSF_NUM_THREADS;
  if (v === undefined || v === '') return;
  const n = Number(v.trim());
  if (!/^\s*\d+\s*$/.test(v) || !Number.isInteger(n) || n < 1 || n > 1024) {
    throw new WsfError(`Expected a whole number in [1, 1024] for WSF_NUM_THREADS but received '${v}'`, 'ERR_INVALID');
  }
}

/** True when the addon is already loaded (does not load it). */
export function bindingLoaded(): boolean {
  return cached !== undefined;
}
