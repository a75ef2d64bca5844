import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, f32, i32, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
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
