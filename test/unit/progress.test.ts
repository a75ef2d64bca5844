import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../lib/index.js';

/** A stream that records what is written; `isTTY`/`columns` make it look like a terminal. */
function sink(tty: boolean): Writable & { text: () => string } {
  const chunks: string[] = [];
  const s = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  }) as Writable & { text: () => string; isTTY?: boolean; columns?: number };
  if (tty) Object.assign(s, { isTTY: true, columns: 120 });
  s.text = () => chunks.join('');
  return s;
}

describe('progress', () => {
  it('writes JSON lines off a TTY: start, throttled progress with rate/ETA and fields, log, done', () => {
    const out = sink(false);
    const p = createProgress({ label: 'zoo', total: 10, unit: 'steps', stream: out, silent: false, intervalMs: 0 });
    expect(p.mode).toBe('json');
    for (let i = 0; i < 10; i++) p.tick(1, { loss: 1 / (i + 1) });
    p.log('hello', { backend: 'wasm' });
    p.done({ acc: 0.9 });
    p.done(); // idempotent
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ event: 'start', label: 'zoo', done: 0, total: 10 });
    const prog = lines.filter((l) => l.event === 'progress');
    expect(prog.length).toBe(10);
    expect(prog[9]).toMatchObject({ done: 10, total: 10, loss: 0.1, eta_s: 0 });
    expect(typeof prog[9]!.rate).toBe('number');
    expect(lines.find((l) => l.event === 'log')).toMatchObject({ message: 'hello', backend: 'wasm' });
    expect(lines[lines.length - 1]).toMatchObject({ event: 'done', done: 10, acc: 0.9 });
    expect(lines.filter((l) => l.event === 'done').length).toBe(1);
  });

  it('resumeAt: work done before a resume moves the count but not the rate or the ETA', () => {
    const out = sink(false);
    const p = createProgress({ label: 'train', total: 10000, stream: out, silent: false, intervalMs: 0 });
    p.resumeAt(9000);
    expect(p.value).toBe(9000);
    const t = performance.now();
    while (performance.now() - t < 30) {
      /* let time pass so the rate is finite and small */
    }
    p.update(9010);
    const last = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).at(-1)!;
    expect(last).toMatchObject({ event: 'progress', done: 9010, total: 10000 });
    // 10 steps since the resume: rate × elapsed ≈ 10 (not 9010), and the ETA is the 990 left at that rate.
    expect(Math.abs(last.rate! * last.elapsed_s! - 10)).toBeLessThan(0.5);
    expect(last.eta_s!).toBeCloseTo(990 / last.rate!, 0);
  });

  it('draws a bar on a TTY with percentage, rate, ETA and custom fields, and keeps log lines above it', () => {
    const out = sink(true);
    const p = createProgress({ label: 'train', total: 200, initial: 50, stream: out, silent: false, intervalMs: 0 });
    expect(p.mode).toBe('bar');
    p.update(100, { loss: 0.123456, acc: 0.5 });
    p.log('a message');
    p.done();
    const text = out.text();
    expect(text).toMatch(/train +50% \[█+░+\] 100\/200 it/);
    expect(text).toMatch(/ETA \d+:\d\d/);
    expect(text).toMatch(/loss=0\.1235 {2}acc=0\.5000/);
    expect(text).toContain('train: a message\n');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('is silent when asked, with WSF_QUIET=1 by default, and JSON on a TTY with json: true', () => {
    const out = sink(true);
    const quiet = createProgress({ total: 5, stream: out }); // vitest sets WSF_QUIET=1
    expect(quiet.mode).toBe(process.env.WSF_QUIET === '1' ? 'silent' : 'bar');
    const s = createProgress({ total: 5, stream: out, silent: true });
    s.tick(3);
    s.log('x');
    s.done();
    expect(s.value).toBe(3);
    if (process.env.WSF_QUIET === '1') expect(out.text()).toBe('');
    expect(createProgress({ stream: sink(true), json: true, silent: false }).mode).toBe('json');
  });
});
