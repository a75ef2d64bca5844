import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, f32, i32, makeDirs, readSafetensors, writeFileAtomic, writeSafetensors } from '../../lib/io/safetensors.js';
import type { WsfError } from '../../lib/errors.js';

// An independent minimal reader written from the format's rules (not using decodeSafetensors).
function minimalRead(buf: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; data: Buffer } {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  return { header, data: buf.subarray(8 + n) };
}

describe('safetensors', () => {
  it('writes the layout Python safetensors reads: u64 LE header length, JSON header, contiguous data', () => {
    const a = new Float32Array([1, -2.5, 3e-8, 4]);
    const b = new Int32Array([7, -8, 9]);
    const buf = encodeSafetensors({ a: f32(a, [2, 2]), b: i32(b) }, { arch: '3-4-2', format: '1' });
    const { header, data } = minimalRead(buf);
    expect(header.a).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] });
    expect(header.b).toEqual({ dtype: 'I32', shape: [3], data_offsets: [16, 28] });
    expect((header as unknown as { __metadata__: unknown }).__metadata__).toEqual({ arch: '3-4-2', format: '1' });
    expect(data.length).toBe(28);
    expect(data.readFloatLE(4)).toBe(-2.5);
    expect(data.readInt32LE(16 + 4)).toBe(-8);
    expect((8 + Number(buf.readBigUInt64LE(0))) % 8).toBe(0); // data aligned to 8 bytes
  });

  it('round-trips through a file written atomically', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-st-'));
    const file = path.join(dir, 'sub', 'x.safetensors');
    const x = new Float32Array(1000).map((_, i) => Math.sin(i));
    writeSafetensors(file, { x: f32(x, [10, 100]) }, { k: 'v' });
    const r = readSafetensors(file);
    expect(r.metadata).toEqual({ k: 'v' });
    expect(r.tensors.x?.shape).toEqual([10, 100]);
    expect(Array.from(r.tensors.x!.data as Float32Array)).toEqual(Array.from(x));
    expect(fs.readdirSync(path.dirname(file))).toEqual(['x.safetensors']); // no temp files left
  });

  it('rejects truncated, corrupt and inconsistent files with ERR_IO', () => {
    const good = encodeSafetensors({ a: f32(new Float32Array(8)) });
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, 5), /only 5 bytes/],
      [good.subarray(0, good.length - 4), /outside the .* data bytes/],
      [Buffer.concat([Buffer.from([255, 255, 255, 255, 0, 0, 0, 0]), good.subarray(8)]), /header length/],
      [(() => { const c = Buffer.from(good); c[9] = 0x7b; c[10] = 0x7b; return c; })(), /not JSON/],
    ];
    for (const [buf, re] of cases) {
      let err: WsfError | undefined;
      try {
        decodeSafetensors(buf, 'case');
      } catch (e) {
        err = e as WsfError;
      }
      expect(err?.code).toBe('ERR_IO');
      expect(err?.message).toMatch(re);
    }
    expect(() => readSafetensors('/nonexistent/file.safetensors')).toThrow(/cannot read/);
  });
});

describe('makeDirs and writeFileAtomic', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-io-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('creates nested folders, and refuses with ERR_IO where a parent is a file', () => {
    const deep = path.join(tmp, 'a', 'b', 'c');
    makeDirs(deep);
    expect(fs.statSync(deep).isDirectory()).toBe(true);
    makeDirs(deep); // existing: nothing to do
    fs.writeFileSync(path.join(tmp, 'file'), 'x');
    expect(() => makeDirs(path.join(tmp, 'file', 'sub'))).toThrow(expect.objectContaining({ code: 'ERR_IO', message: expect.stringMatching(/file exists and is not a folder/) }));
  });

  // Node's recursive mkdir loops forever when mkdir keeps answering ENOENT (as under /proc); ours gives up at once.
  it.runIf(fs.existsSync('/proc/self'))('fails at once where the system cannot create the folder (/proc)', () => {
    const t0 = performance.now();
    expect(() => makeDirs('/proc/wsflow-no/such')).toThrow(expect.objectContaining({ code: 'ERR_IO', message: expect.stringMatching(/^cannot create the folder \/proc\/wsflow-no: E[A-Z]+$/) }));
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('writing onto a folder fails with ERR_IO, leaves the folder as it was and no temp file behind', () => {
    const dir = path.join(tmp, 'target');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'keep'), 'k');
    expect(() => writeFileAtomic(dir, 'data')).toThrow(expect.objectContaining({ code: 'ERR_IO', message: `cannot write ${dir}: it is a folder` }));
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'keep'), 'utf8')).toBe('k');
    // A file that exists is replaced whole.
    const f = path.join(tmp, 'x.txt');
    writeFileAtomic(f, 'one');
    writeFileAtomic(f, 'two');
    expect(fs.readFileSync(f, 'utf8')).toBe('two');
  });
});
