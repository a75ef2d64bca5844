/**
 * What a running CLI command gets: its output streams (stdout for results, stderr for progress and messages), an
 * AbortSignal that Ctrl-C fires, the `--json` switch, and helpers for progress, messages and the final result.
 */
import type { Writable } from 'node:stream';
import { resolveDevice, type Device, type DeviceRequest } from '../device.js';
import { isInputError } from '../errors.js';
import { binding } from '../native/binding.js';
import { createProgress, type Progress, type ProgressOptions } from '../util/progress.js';
import { UsageError } from './args.js';

/** Streams a command writes to. */
export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
}

/** The context of one command run. */
export class CliContext {
  /** True with `--json`: results as one JSON object on stdout, progress as JSON lines on stderr. */
  json = false;

  constructor(
    readonly io: CliIo,
    readonly command: string,
    readonly signal: AbortSignal,
    /** The command line as typed (recorded in outputs). */
    readonly commandLine: string,
  ) {}

  /** A progress reporter on stderr (a bar on a TTY, JSON lines with --json or off a TTY, silent with WSF_QUIET=1). */
  progress(opts: ProgressOptions): Progress {
    return createProgress({ stream: this.io.stderr, ...(this.json ? { json: true } : {}), ...opts });
  }

  /** A message on stderr (a JSON `log` line with --json); silent with WSF_QUIET=1. */
  note(message: string, data: Record<string, unknown> = {}): void {
    if (process.env.WSF_QUIET === '1') return;
    if (this.json) this.io.stderr.write(JSON.stringify({ event: 'log', label: this.command, message, ...data }) + '\n');
    else this.io.stderr.write(`${message}\n`);
  }

  /** Prints the command's result: `value` as one line of JSON with --json (JSON lines), else `text()`. */
  result(value: unknown, text: () => string): void {
    const s = this.json ? JSON.stringify(value) : text();
    this.io.stdout.write(s.endsWith('\n') ? s : s + '\n');
  }

  /**
   * Applies `--threads` and checks `--device` before any work.
   * @returns the concrete device
   * @throws UsageError when CUDA is asked for and unavailable
   */
  setup(v: { device?: string | undefined; threads?: number | undefined }): Device {
    if (v.threads !== undefined) binding().setNumThreads(v.threads);
    // No --device: resolveDevice reads WSF_DEVICE, else 'auto'.
    const req = v.device as DeviceRequest | undefined;
    try {
      return resolveDevice(req);
    } catch (e) {
      // (without --device the error may come from WSF_DEVICE or from another variable read on the way, e.g.
      // WSF_NUM_THREADS, which its message names)
      if (isInputError(e)) {
        const env = process.env.WSF_DEVICE;
        throw new UsageError(req !== undefined ? `--device ${req}: ${e.message}` : env !== undefined && env !== '' && !/WSF_NUM_THREADS/.test(e.message) ? `WSF_DEVICE=${env}: ${e.message}` : e.message);
      }
      throw e;
    }
  }
}
