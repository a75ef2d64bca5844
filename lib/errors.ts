/**
 * Typed errors. Every error wsflow throws on purpose is a {@link WsfError} with a `code` from {@link WsfErrorCode};
 * native code builds the same class (it is handed to the addon at load time), so native failures carry codes too.
 */

/** The closed set of error codes. */
export type WsfErrorCode =
  | 'ERR_SHAPE' // a size or length does not match what was declared
  | 'ERR_DTYPE' // wrong element type or kind of value
  | 'ERR_DISPOSED' // a handle was used after dispose()
  | 'ERR_CONTEXT_BUSY' // a context is running another call
  | 'ERR_NO_CUDA' // CUDA asked for but not compiled in, or no usable device
  | 'ERR_CUDA' // a CUDA runtime error
  | 'ERR_OOM' // out of memory (device or host)
  | 'ERR_NUMERIC' // NaN/Inf or a singular configuration
  | 'ERR_INVALID' // any other invalid argument or option
  | 'ERR_IO' // a file is missing, truncated, corrupt or of the wrong format
  | 'ERR_NO_BINARY' // the native addon could not be loaded
  | 'ERR_INTERRUPTED'; // long work was stopped (signal or abort); what finished is kept

/** An error with a stable machine-readable `code`. */
export class WsfError extends Error {
  readonly code: WsfErrorCode;

  constructor(message: string, code: WsfErrorCode = 'ERR_INVALID', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WsfError';
    this.code = code;
  }
}

/**
 * Thrown when no native binary can be loaded; `tried` lists every candidate with the reason it failed, `fix` what
 * builds one here.
 */
export class NoBinaryFoundError extends WsfError {
  readonly tried: readonly string[];
  readonly fix: string;

  constructor(message: string, tried: readonly string[], fix = '') {
    super(message, 'ERR_NO_BINARY');
    this.name = 'NoBinaryFoundError';
    this.tried = tried;
    this.fix = fix;
  }
}

/**
 * Whether `e` is a WsfError that a bad option or input can cause — every code but ERR_NO_BINARY (an addon that does
 * not load is the installation's fault, not the option's): what the CLI reports as an option's error.
 */
export function isInputError(e: unknown): e is WsfError {
  return isWsfError(e) && e.code !== 'ERR_NO_BINARY';
}

/**
 * An error's message on one line (the CLI prints one): the first line of the message, except for a
 * {@link NoBinaryFoundError}, whose candidates and fix are what the reader needs, folded into the line.
 */
export function messageLine(e: Error): string {
  if (e instanceof NoBinaryFoundError) {
    return `could not load the native addon (tried ${e.tried.join('; ')})${e.fix !== '' ? `. ${e.fix}` : ''}`;
  }
  return e.message.split('\n')[0] ?? String(e);
}

/**
 * Thrown when earlier output stands in the way of a build: `situation` says what is there, `remedy` names the option
 * that resolves it (`overwrite`: replace the finished output; `fresh`: discard a partial build made with other
 * options), so a caller can give the advice in its own terms; the message gives it in the library's.
 */
export class OutputConflictError extends WsfError {
  readonly situation: string;
  readonly remedy: 'overwrite' | 'fresh';

  constructor(situation: string, remedy: 'overwrite' | 'fresh') {
    super(
      `${situation}; ${remedy === 'overwrite' ? 'pass overwrite: true to replace it, or choose another `out`' : 'rerun with the same options to resume, pass resume: false to discard them, or delete the folder'}`,
      'ERR_INVALID',
    );
    this.name = 'OutputConflictError';
    this.situation = situation;
    this.remedy = remedy;
  }
}

/**
 * An error raised while building an object from a file's contents, recast as the file's fault: ERR_SHAPE, ERR_DTYPE,
 * ERR_INVALID, ERR_NUMERIC and errors that are not wsflow's (a TypeError from a malformed entry) become ERR_IO naming
 * the file, with the original as `cause`; device, memory, busy and other errors pass through unchanged.
 */
export function asFileError(file: string, e: unknown): unknown {
  const code = isWsfError(e) ? e.code : undefined;
  if (code !== undefined && !['ERR_SHAPE', 'ERR_DTYPE', 'ERR_INVALID', 'ERR_NUMERIC'].includes(code)) return e;
  const msg = e instanceof Error ? messageLine(e) : String(e);
  return new WsfError(msg.startsWith(`${file}:`) ? msg : `${file}: damaged or foreign file (${msg})`, 'ERR_IO', { cause: e });
}

/** Thrown when a disposed handle is used. */
export class DisposedError extends WsfError {
  constructor(what: string) {
    super(`${what} has been disposed`, 'ERR_DISPOSED');
    this.name = 'DisposedError';
  }
}

/** True when `e` is a {@link WsfError} (also across realms: checks `name` and `code`). */
export function isWsfError(e: unknown): e is WsfError {
  if (e instanceof WsfError) return true;
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('ERR_') && (e as Error).name.startsWith('Wsf');
}
