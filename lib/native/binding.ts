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
    const b = loadBinding();
    b.init(WsfError as unknown as new (message: string, code: string) => Error);
    cached = b;
  }
  return cached;
}

/** True when the addon is already loaded (does not load it). */
export function bindingLoaded(): boolean {
  return cached !== undefined;
}
