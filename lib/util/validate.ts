/**
 * Argument validation shared by the facade: precise messages ("Expected Float32Array of length 802 for `x` but
 * received Float64Array of length 12") and typed errors, before any native code runs.
 */
import { WsfError } from '../errors.js';

/** Describes a value's kind for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) {
    const name = v.constructor.name;
    return 'length' in v ? `${name} of length ${(v as unknown as { length: number }).length}` : name;
  }
  if (Array.isArray(v)) return `Array of length ${v.length}`;
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : `number ${v}`;
  if (typeof v === 'string') return `string '${v.length > 40 ? v.slice(0, 40) + '…' : v}'`;
  return typeof v;
}

/** Checks `v` is a plain object (an options or data argument), naming what it should hold. */
export function checkObject(name: string, v: unknown, holds: string): void {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) {
    throw new WsfError(`Expected an object ${holds} for \`${name}\` but received ${describe(v)}`, 'ERR_INVALID');
  }
}

/** Builds the standard invalid-argument error. */
export function invalidArgument(
  name: string,
  expected: string,
  actual: unknown,
  code: 'ERR_SHAPE' | 'ERR_DTYPE' | 'ERR_INVALID' = 'ERR_INVALID',
): WsfError {
  return new WsfError(`Expected ${expected} for \`${name}\` but received ${describe(actual)}`, code);
}

/** Checks `v` is a Float32Array, optionally of exactly `length` elements. */
export function checkF32(name: string, v: unknown, length?: number): Float32Array {
  if (!(v instanceof Float32Array)) {
    throw invalidArgument(name, length === undefined ? 'Float32Array' : `Float32Array of length ${length}`, v, 'ERR_DTYPE');
  }
  if (length !== undefined && v.length !== length) {
    throw invalidArgument(name, `Float32Array of length ${length}`, v, 'ERR_SHAPE');
  }
  return v;
}

/** Checks `v` is a Float32Array whose length is a positive multiple of `rowLength`; returns the row count. */
export function checkRows(name: string, v: unknown, rowLength: number, what = 'P'): number {
  if (!(v instanceof Float32Array)) {
    throw invalidArgument(name, `Float32Array of length B·${what} (${what} = ${rowLength})`, v, 'ERR_DTYPE');
  }
  if (v.length === 0 || v.length % rowLength !== 0) {
    throw invalidArgument(name, `Float32Array of length B·${what} (${what} = ${rowLength})`, v, 'ERR_SHAPE');
  }
  return v.length / rowLength;
}

/** Index of the first NaN or infinite element of `v`, or −1 when all are finite. */
export function firstNonFinite(v: ArrayLike<number>): number {
  for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return i;
  return -1;
}

/** Checks every element is finite; names the first offending index. */
export function checkFinite(name: string, v: ArrayLike<number>): void {
  const i = firstNonFinite(v);
  if (i >= 0) throw new WsfError(`Expected finite values in \`${name}\` but element ${i} is ${v[i]}`, 'ERR_NUMERIC');
}

/**
 * Checks every float tensor read from `source` is finite (a damaged file, or one written by a diverged run, would
 * otherwise load and spread NaN); names the file, the tensor and the first offending element.
 * @throws WsfError ERR_IO
 */
export function checkFiniteTensors(source: string, tensors: Readonly<Record<string, { dtype: string; data: ArrayLike<number | bigint> }>>): void {
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'F32' && t.dtype !== 'F64') continue;
    const d = t.data as ArrayLike<number>;
    const i = firstNonFinite(d);
    if (i >= 0) throw new WsfError(`${source}: tensor \`${name}\` holds a non-finite value (${d[i]} at element ${i}); the file is damaged or was written by a diverged run`, 'ERR_IO');
  }
}

/** Checks an integer within [lo, hi]. */
export function checkInt(name: string, v: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalidArgument(name, `an integer in [${lo}, ${hi === Number.MAX_SAFE_INTEGER ? '∞' : hi}]`, v);
  }
  return v;
}

/** Checks a finite number within [lo, hi]. */
export function checkNumber(name: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    throw invalidArgument(name, `a finite number in [${lo}, ${hi}]`, v);
  }
  return v;
}

/** Checks `v` is one of `choices`. */
export function checkChoice<T extends string>(name: string, v: unknown, choices: readonly T[]): T {
  if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
    throw invalidArgument(name, `one of ${choices.map((c) => `'${c}'`).join(', ')}`, v);
  }
  return v as T;
}

/**
 * The complete list of an options type's keys, checked at compile time: `optionKeys<Opts>()(['a', 'b'] as const)`
 * fails to type-check when a key of Opts is missing from the list (the error names it), so the runtime check of
 * {@link checkOptionKeys} cannot drift from the interface.
 */
export function optionKeys<T>() {
  return <const K extends readonly (keyof T & string)[]>(keys: K & ([Exclude<keyof T & string, K[number]>] extends [never] ? unknown : { missingKeys: Exclude<keyof T & string, K[number]> })): readonly string[] => keys;
}

/** Levenshtein distance, for "did you mean" hints. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/**
 * Rejects an options object with a key its function does not take (a misspelt option would otherwise be ignored and
 * its default used without a word): ERR_INVALID naming the key, the nearest known one and the list.
 * @param where the function, e.g. 'FlowMatcher.fit'
 */
export function checkOptionKeys(where: string, opts: unknown, keys: readonly string[]): void {
  if (opts === undefined || opts === null || typeof opts !== 'object') return;
  for (const k of Object.keys(opts)) {
    if (keys.includes(k)) continue;
    // The nearest key by edit distance, or failing a close one, the key sharing the longest prefix (≥ 5 letters:
    // geometry → geometries).
    let near = '';
    let best = Infinity;
    for (const c of keys) {
      const dist = editDistance(k, c);
      if (dist < best) [best, near] = [dist, c];
    }
    if (best > Math.max(2, Math.floor(k.length / 3))) {
      const prefix = (c: string): number => {
        let i = 0;
        while (i < k.length && i < c.length && k[i]!.toLowerCase() === c[i]!.toLowerCase()) i++;
        return i;
      };
      near = keys.reduce((a, c) => (prefix(c) > prefix(a) ? c : a), keys[0] ?? '');
      if (prefix(near) < 5) near = '';
    }
    const hint = near !== '' ? ` (did you mean \`${near}\`?)` : '';
    throw new WsfError(`${where}: unknown option \`${k}\`${hint}; it takes ${keys.join(', ')}`, 'ERR_INVALID');
  }
}
