/**
 * Progress reporting for long work (zoo building, training, sampling): a one-line progress bar on a TTY (done/total,
 * rate, ETA and custom fields such as loss or accuracy), structured JSON lines elsewhere (or with `json: true`),
 * or nothing (`silent: true`, or `WSF_QUIET=1` in auto mode). Writes go to stderr unless a stream is given, so
 * stdout stays free for results.
 *
 * JSON lines (one object per line): `{"event":"start"|"progress"|"done","label","done","total","elapsed_s","rate",
 * "eta_s",...fields}` and `{"event":"log","label","message",...data}`. `rate` is units per second since `start`
 * (work done before, e.g. resumed, is not counted); `eta_s` is null while unknown.
 */
import type { Writable } from 'node:stream';

/** A custom field shown after the rate/ETA: numbers are printed with 4 significant digits on the bar. */
export type ProgressFields = Readonly<Record<string, number | string | boolean | null>>;

/** Options of {@link createProgress}. */
export interface ProgressOptions {
  /** Short name shown first, e.g. 'zoo'. Default ''. */
  readonly label?: string;
  /** Units of work in all; 0 or omitted when unknown. */
  readonly total?: number;
  /** Units already done at start (resumed work). Default 0. */
  readonly initial?: number;
  /** Unit name for the rate, e.g. 'steps'. Default 'it'. */
  readonly unit?: string;
  /** Force JSON lines (also on a TTY). Default false. */
  readonly json?: boolean;
  /** Print nothing. Default: true when `WSF_QUIET=1`, else false. */
  readonly silent?: boolean;
  /** Where to write. Default `process.stderr`. */
  readonly stream?: Writable;
  /** Minimum milliseconds between redraws (bar) or progress lines (JSON). Default 100 (bar), 2000 (JSON). */
  readonly intervalMs?: number;
}

/** The output mode chosen for a {@link Progress}. */
export type ProgressMode = 'bar' | 'json' | 'silent';

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

function fmtValue(v: number | string | boolean | null): string {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toPrecision(4);
}

/** A progress reporter. Create with {@link createProgress}; call {@link Progress.done} at the end. */
export class Progress {
  /** 'bar', 'json' or 'silent'. */
  readonly mode: ProgressMode;
  private readonly label: string;
  private readonly unit: string;
  private readonly stream: Writable;
  private readonly interval: number;
  private total: number;
  private current: number;
  private initial: number;
  private t0 = performance.now();
  private lastEmit = -Infinity;
  private fields: ProgressFields = {};
  private lineShown = false;
  private finished = false;

  /** @internal use {@link createProgress} */
  constructor(opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    const quiet = process.env.WSF_QUIET === '1';
    const tty = (this.stream as Writable & { isTTY?: boolean }).isTTY === true;
    this.mode = (opts.silent ?? quiet) ? 'silent' : opts.json === true || !tty ? 'json' : 'bar';
    this.label = opts.label ?? '';
    this.unit = opts.unit ?? 'it';
    this.total = Math.max(0, opts.total ?? 0);
    this.initial = Math.max(0, opts.initial ?? 0);
    this.current = this.initial;
    this.interval = opts.intervalMs ?? (this.mode === 'bar' ? 100 : 2000);
    if (this.mode === 'json') this.writeJson('start', {});
  }

  /** Units done so far. */
  get value(): number {
    return this.current;
  }

  /** Sets the units done (absolute) and merges `fields`; redraws when the interval has passed. */
  update(done: number, fields?: ProgressFields): void {
    this.current = done;
    if (fields !== undefined) this.fields = { ...this.fields, ...fields };
    this.maybeEmit();
  }

  /** Adds `n` units (default 1) and merges `fields`. */
  tick(n = 1, fields?: ProgressFields): void {
    this.update(this.current + n, fields);
  }

  /**
   * Declares that `done` units were finished before this run (found out after creation, e.g. a checkpoint read):
   * the count moves to `done`, and rate and ETA count only the work from now on.
   */
  resumeAt(done: number): void {
    this.initial = Math.max(0, done);
    this.current = this.initial;
    this.t0 = performance.now();
  }

  /** Changes the total (e.g. once it is known). */
  setTotal(total: number): void {
    this.total = Math.max(0, total);
  }

  /** A message: on a bar, printed on its own line above the bar; in JSON, a `log` event carrying `data`. */
  log(message: string, data: Readonly<Record<string, unknown>> = {}): void {
    if (this.mode === 'silent') return;
    if (this.mode === 'json') {
      this.writeJson('log', { message, ...data });
      return;
    }
    this.clearLine();
    this.stream.write(`${this.label === '' ? '' : this.label + ': '}${message}\n`);
    if (!this.finished) this.draw();
  }

  /** Final report: a last bar (with newline) or a `done` event. Idempotent. */
  done(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields !== undefined) this.fields = { ...this.fields, ...fields };
    this.finished = true;
    if (this.mode === 'json') this.writeJson('done', this.stats());
    else if (this.mode === 'bar') {
      this.draw();
      this.stream.write('\n');
      this.lineShown = false;
    }
  }

  /** Elapsed seconds, rate (units/s since start) and ETA seconds (null when unknown). */
  stats(): { elapsed_s: number; rate: number; eta_s: number | null } {
    const elapsed = (performance.now() - this.t0) / 1000;
    const doneHere = this.current - this.initial;
    const rate = elapsed > 0 ? doneHere / elapsed : 0;
    const eta = this.total > 0 && rate > 0 ? Math.max(0, (this.total - this.current) / rate) : null;
    return { elapsed_s: round3(elapsed), rate: round3(rate), eta_s: eta === null ? null : round3(eta) };
  }

  private maybeEmit(): void {
    if (this.mode === 'silent' || this.finished) return;
    const now = performance.now();
    if (now - this.lastEmit < this.interval) return;
    this.lastEmit = now;
    if (this.mode === 'json') this.writeJson('progress', this.stats());
    else this.draw();
  }

  private writeJson(event: string, extra: Record<string, unknown>): void {
    const rec: Record<string, unknown> = { event, label: this.label, done: this.current, total: this.total === 0 ? null : this.total, ...extra };
    if (event !== 'log') Object.assign(rec, this.fields);
    this.stream.write(JSON.stringify(rec) + '\n');
  }

  private clearLine(): void {
    if (this.lineShown) this.stream.write('\r\x1b[2K');
    this.lineShown = false;
  }

  private draw(): void {
    const { rate, eta_s, elapsed_s } = this.stats();
    const cols = (this.stream as Writable & { columns?: number }).columns ?? 100;
    const parts: string[] = [];
    if (this.label !== '') parts.push(this.label);
    let bar = '';
    if (this.total > 0) {
      const frac = Math.min(1, this.current / this.total);
      parts.push(`${(frac * 100).toFixed(0).padStart(3)}%`);
      bar = `${this.current}/${this.total}`;
    } else bar = `${this.current}`;
    const tail = [`${bar} ${this.unit}`, `${fmtValue(rate)} ${this.unit}/s`, this.finished ? `${fmtTime(elapsed_s)}` : `ETA ${fmtTime(eta_s ?? NaN)}`];
    for (const [k, v] of Object.entries(this.fields)) tail.push(`${k}=${fmtValue(v)}`);
    const head = parts.join(' ');
    const rest = tail.join('  ');
    const width = Math.max(10, Math.min(40, cols - head.length - rest.length - 6));
    let barStr = '';
    if (this.total > 0) {
      const filled = Math.round(width * Math.min(1, this.current / this.total));
      barStr = ` [${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
    }
    const line = `${head}${barStr} ${rest}`.slice(0, Math.max(20, cols - 1));
    this.stream.write(`\r\x1b[2K${line}`);
    this.lineShown = true;
  }
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/**
 * A progress reporter: a bar on a TTY, JSON lines otherwise (or with `json: true`), nothing when silent.
 * @example const p = createProgress({ label: 'zoo', total: 400, unit: 'steps' }); p.tick(1, { loss: 0.31 }); p.done();
 */
export function createProgress(opts: ProgressOptions = {}): Progress {
  return new Progress(opts);
}
