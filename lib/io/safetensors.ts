/**
 * safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor names to
 * `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the end of the header) plus an optional
 * `__metadata__` object of string → string, then the raw little-endian tensor bytes. Python's `safetensors`
 * package opens these files. Writes are atomic: a temporary file in the same folder, fsync, then rename.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WsfError } from '../errors.js';

/** Supported element types. */
export type SafeDType = 'F32' | 'F64' | 'I32' | 'I64' | 'U8';

/** A tensor to write or one that was read. */
export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

const BYTES: Record<SafeDType, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1 };
/** Largest header we accept when reading (the format's own limit is 100 MB). */
const MAX_HEADER = 100_000_000;

function dtypeOf(data: SafeTensor['data']): SafeDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof BigInt64Array) return 'I64';
  return 'U8';
}

/** Convenience: an F32 tensor. */
export function f32(data: Float32Array, shape?: number[]): SafeTensor {
  return { dtype: 'F32', shape: shape ?? [data.length], data };
}

/** Convenience: an I32 tensor. */
export function i32(data: Int32Array, shape?: number[]): SafeTensor {
  return { dtype: 'I32', shape: shape ?? [data.length], data };
}

/** Serialises tensors (in the given order) and string metadata into one buffer. */
export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new WsfError(`safetensors metadata values must be strings; \`${k}\` is ${typeof v}`, 'ERR_INVALID');
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new WsfError('a tensor may not be named __metadata__', 'ERR_INVALID');
    const dt = dtypeOf(t.data);
    if (dt !== t.dtype) throw new WsfError(`tensor \`${name}\`: dtype ${t.dtype} does not match its ${t.data.constructor.name}`, 'ERR_DTYPE');
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new WsfError(`tensor \`${name}\`: shape [${t.shape.join(', ')}] holds ${count} elements but the data has ${t.data.length}`, 'ERR_SHAPE');
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces to a multiple of 8 bytes so the data is aligned (allowed by the format).
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const hb = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return Buffer.concat([len, hb, ...parts]);
}

/** Parsed contents of a safetensors buffer. */
export interface SafetensorsFile {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/**
 * Parses a safetensors buffer, validating the header length, JSON, dtypes, shapes and offsets.
 * @param source a name for messages (usually the file path)
 * @throws WsfError ERR_IO on any malformed, truncated or inconsistent input
 */
export function decodeSafetensors(buf: Uint8Array, source = 'buffer'): SafetensorsFile {
  const bad = (why: string): WsfError => new WsfError(`${source}: not a valid safetensors file: ${why}`, 'ERR_IO');
  if (buf.length < 8) throw bad(`only ${buf.length} bytes (a header length needs 8)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER) || Number(n) + 8 > buf.length) throw bad(`header length ${n} exceeds the file size ${buf.length}`);
  const hlen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, hlen).toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw bad(`header is not JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + hlen;
  const dataLen = buf.length - dataStart;
  const tensors: Record<string, SafeTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object') throw bad('__metadata__ is not an object');
      metadata = Object.fromEntries(Object.entries(entry as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry \`${name}\` is not an object`);
    const dtype = e.dtype as SafeDType;
    if (!(dtype in BYTES)) throw bad(`tensor \`${name}\` has unsupported dtype ${String(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) throw bad(`tensor \`${name}\` has an invalid shape`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && (o as number) >= 0)) throw bad(`tensor \`${name}\` has invalid data_offsets`);
    const [b0, b1] = offs as [number, number];
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    if (b1 < b0 || b1 > dataLen) throw bad(`tensor \`${name}\` data [${b0}, ${b1}) lies outside the ${dataLen} data bytes (truncated file?)`);
    if (b1 - b0 !== count * BYTES[dtype]) throw bad(`tensor \`${name}\` has ${b1 - b0} bytes but shape [${(e.shape as number[]).join(', ')}] of ${dtype} needs ${count * BYTES[dtype]}`);
    // Copy into an aligned buffer (the data section need not be aligned in files from other writers).
    const bytes = new Uint8Array(b1 - b0);
    bytes.set(buf.subarray(dataStart + b0, dataStart + b1));
    const ab = bytes.buffer;
    const data =
      dtype === 'F32' ? new Float32Array(ab) : dtype === 'F64' ? new Float64Array(ab) : dtype === 'I32' ? new Int32Array(ab) : dtype === 'I64' ? new BigInt64Array(ab) : new Uint8Array(ab);
    tensors[name] = { dtype, shape: e.shape as number[], data };
  }
  return { tensors, metadata };
}

/**
 * Reads a whole file.
 * @throws WsfError ERR_IO naming the file when it is missing or unreadable
 */
export function readFileOrThrow(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new WsfError(`cannot read ${file}: ${(e as Error).message}`, 'ERR_IO');
  }
}

/**
 * Creates folder `dir` and any missing parents, one level at a time (`fs.mkdirSync(…, { recursive: true })` loops
 * forever where mkdir keeps answering ENOENT, as under /proc).
 * @throws WsfError ERR_IO naming the folder that cannot be created and why
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let p = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(p);
    } catch {
      st = undefined;
    }
    if (st !== undefined) {
      if (!st.isDirectory()) throw new WsfError(`cannot create the folder ${dir}: ${p} exists and is not a folder`, 'ERR_IO');
      break;
    }
    missing.push(p);
    const up = path.dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const m of missing.reverse()) {
    try {
      fs.mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && fs.statSync(m).isDirectory()) continue; // made meanwhile
      throw new WsfError(`cannot create the folder ${m}: ${code ?? (e as Error).message}`, 'ERR_IO');
    }
  }
}

/**
 * Writes `data` to `file` atomically (temp file in the same folder, fsync, rename). Creates the folder. On failure
 * the temp file is removed and `file` is as it was.
 * @throws WsfError ERR_IO naming the file and the system's reason
 */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const dir = path.dirname(file);
  makeDirs(dir);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? `not writable (${code})` : (code ?? (e as Error).message);
    throw new WsfError(`cannot write ${file}: ${why}`, 'ERR_IO');
  }
}

/** Writes a safetensors file atomically. */
export function writeSafetensors(file: string, tensors: Record<string, SafeTensor>, metadata: Record<string, string> = {}): void {
  writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

/**
 * Reads a safetensors file.
 * @throws WsfError ERR_IO when the file is missing, unreadable or malformed
 */
export function readSafetensors(file: string): SafetensorsFile {
  return decodeSafetensors(readFileOrThrow(file), file);
}

/** Fetches a tensor by name with an expected dtype, or throws ERR_IO naming the file. */
export function requireTensor<T extends SafeTensor['data']>(f: SafetensorsFile, name: string, dtype: SafeDType, source = 'file'): { data: T; shape: number[] } {
  const t = f.tensors[name];
  if (t === undefined) throw new WsfError(`${source}: missing tensor \`${name}\``, 'ERR_IO');
  if (t.dtype !== dtype) throw new WsfError(`${source}: tensor \`${name}\` is ${t.dtype}, expected ${dtype}`, 'ERR_IO');
  return { data: t.data as T, shape: t.shape };
}
