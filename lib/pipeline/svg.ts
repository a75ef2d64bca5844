/**
 * Small self-contained SVG plots (no external assets, no scripts) for reports: line charts (optionally with a
 * log-scaled x axis and ±std bands) and overlaid histograms. Output is a string of inline `<svg>` markup.
 */

/** One line of a {@link lineChart}. */
export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
  /** Optional ±band per point (same order as `points`). */
  readonly band?: readonly number[];
  readonly color?: string;
  readonly dashed?: boolean;
  /** Draw point markers (default: when there are at most 20 points). */
  readonly markers?: boolean;
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly logX?: boolean;
  readonly logY?: boolean;
  readonly width?: number;
  readonly height?: number;
  /** Fixed y range (default: from the data, padded). */
  readonly yRange?: readonly [number, number];
  /** Upper limit of the automatic y range (e.g. 1 for accuracies). */
  readonly yMax?: number;
  /** Tick positions on the x axis (default: chosen from the range). */
  readonly xTicks?: readonly number[];
  /** Legend corner (default 'right'). */
  readonly legend?: 'right' | 'left';
}

/** A palette that stays readable for colour-blind readers (Okabe–Ito). */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

/** Escapes text for SVG/HTML. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function ticks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, target);
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  }
  return out.length >= 2 ? out : [lo, hi];
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

interface Frame {
  readonly w: number;
  readonly h: number;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

function frame(width: number, height: number): Frame {
  return { w: width, h: height, left: 62, right: width - 14, top: 30, bottom: height - 44 };
}

function header(f: Frame, title: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${f.w} ${f.h}" width="${f.w}" height="${f.h}" role="img" aria-label="${esc(title)}" font-family="system-ui, sans-serif" font-size="11"><title>${esc(title)}</title><rect width="${f.w}" height="${f.h}" fill="#fff"/><text x="${f.w / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">${esc(title)}</text>`;
}

function axes(f: Frame, xs: number[], ys: number[], sx: (v: number) => number, sy: (v: number) => number, xLabel: string, yLabel: string): string {
  let s = `<g stroke="#ddd" stroke-width="1">`;
  for (const y of ys) s += `<line x1="${f.left}" x2="${f.right}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}"/>`;
  s += `</g><g fill="#333">`;
  for (const y of ys) s += `<text x="${f.left - 5}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`;
  for (const x of xs) s += `<text x="${sx(x).toFixed(1)}" y="${f.bottom + 15}" text-anchor="middle">${fmt(x)}</text>`;
  s += `</g><rect x="${f.left}" y="${f.top}" width="${f.right - f.left}" height="${f.bottom - f.top}" fill="none" stroke="#888"/>`;
  s += `<text x="${(f.left + f.right) / 2}" y="${f.h - 8}" text-anchor="middle" fill="#333">${esc(xLabel)}</text>`;
  s += `<text transform="translate(14 ${(f.top + f.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`;
  return s;
}

function legend(f: Frame, items: readonly { name: string; color: string; dashed?: boolean }[], corner: 'right' | 'left' = 'right'): string {
  if (items.length === 0) return '';
  const w = Math.max(...items.map((it) => it.name.length)) * 6.3 + 34;
  const x0 = corner === 'right' ? f.right - w - 6 : f.left + 6;
  let s = `<rect x="${x0}" y="${f.top + 4}" width="${w}" height="${items.length * 14 + 6}" fill="#fff" fill-opacity="0.85" stroke="#ddd"/>`;
  let y = f.top + 16;
  for (const it of items) {
    s += `<line x1="${x0 + 6}" x2="${x0 + 24}" y1="${y - 4}" y2="${y - 4}" stroke="${it.color}" stroke-width="2.5"${it.dashed === true ? ' stroke-dasharray="5 3"' : ''}/>`;
    s += `<text x="${x0 + 29}" y="${y}" fill="#222">${esc(it.name)}</text>`;
    y += 14;
  }
  return `<g>${s}</g>`;
}

/** A line chart as inline SVG. Non-finite points are skipped. */
export function lineChart(o: LineChartOptions): string {
  const f = frame(o.width ?? 520, o.height ?? 300);
  const pts = o.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0)));
  if (pts.length === 0) return `${header(f, o.title)}<text x="${f.w / 2}" y="${f.h / 2}" text-anchor="middle">no data</text></svg>`;
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let y0: number;
  let y1: number;
  if (o.yRange !== undefined) [y0, y1] = o.yRange;
  else {
    const lo: number[] = [];
    const hi: number[] = [];
    for (const s of o.series) {
      s.points.forEach(([, y], i) => {
        if (!Number.isFinite(y)) return;
        const b = s.band?.[i] ?? 0;
        lo.push(y - b);
        hi.push(y + b);
      });
    }
    y0 = Math.min(...lo);
    y1 = Math.max(...hi);
    const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.05 || 1;
    y0 -= pad;
    y1 += pad;
    if (o.yMax !== undefined) y1 = Math.min(y1, o.yMax);
    if (o.logY) y0 = Math.max(y0, Math.min(...pts.map((p) => p[1])) * 0.8);
  }
  if (x1 === x0) [x0, x1] = o.logX ? [x0 / 2, x0 * 2] : [x0 - 1, x1 + 1];
  const tx = (v: number): number => (o.logX ? Math.log(v) : v);
  const ty = (v: number): number => (o.logY ? Math.log(v) : v);
  const sx = (v: number): number => f.left + ((tx(v) - tx(x0)) / (tx(x1) - tx(x0))) * (f.right - f.left);
  const sy = (v: number): number => f.bottom - ((ty(Math.min(Math.max(v, y0), y1)) - ty(y0)) / (ty(y1) - ty(y0))) * (f.bottom - f.top);
  const xt = o.xTicks !== undefined ? o.xTicks.filter((v) => v >= x0 && v <= x1) : o.logX ? logTicks(x0, x1) : ticks(x0, x1);
  const yt = o.logY ? logTicks(y0, y1) : ticks(y0, y1);
  let s = header(f, o.title) + axes(f, xt, yt, sx, sy, o.xLabel, o.yLabel);
  o.series.forEach((ser, k) => {
    const color = ser.color ?? PALETTE[k % PALETTE.length]!;
    const good = ser.points.map((p, i) => [p, i] as const).filter(([[x, y]]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0) && (!o.logY || y > 0));
    if (ser.band !== undefined && good.length > 1) {
      const upper = good.map(([[x, y], i]) => `${sx(x).toFixed(1)},${sy(y + (ser.band![i] ?? 0)).toFixed(1)}`);
      const lower = good.map(([[x, y], i]) => `${sx(x).toFixed(1)},${sy(y - (ser.band![i] ?? 0)).toFixed(1)}`).reverse();
      s += `<polygon points="${[...upper, ...lower].join(' ')}" fill="${color}" fill-opacity="0.15" stroke="none"/>`;
    }
    const d = good.map(([[x, y]], i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    s += `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${ser.dashed === true ? ' stroke-dasharray="5 3"' : ''}/>`;
    if (ser.markers ?? good.length <= 20) for (const [[x, y]] of good) s += `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${color}"/>`;
  });
  s += legend(
    f,
    o.series.map((ser, k) => ({ name: ser.name, color: ser.color ?? PALETTE[k % PALETTE.length]!, ...(ser.dashed !== undefined ? { dashed: ser.dashed } : {}) })),
    o.legend,
  );
  return s + '</svg>';
}

/** Options of {@link histogram}. */
export interface HistogramOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly series: readonly { readonly name: string; readonly values: readonly number[]; readonly color?: string }[];
  /** Number of bins (default 20). */
  readonly bins?: number;
  /** Range (default: the data's). */
  readonly range?: readonly [number, number];
  readonly width?: number;
  readonly height?: number;
}

/** Overlaid histograms (fractions of each series per bin) as inline SVG. */
export function histogram(o: HistogramOptions): string {
  const f = frame(o.width ?? 520, o.height ?? 300);
  const all = o.series.flatMap((s) => s.values.filter(Number.isFinite));
  if (all.length === 0) return `${header(f, o.title)}<text x="${f.w / 2}" y="${f.h / 2}" text-anchor="middle">no data</text></svg>`;
  let [lo, hi] = o.range ?? [Math.min(...all), Math.max(...all)];
  if (hi <= lo) [lo, hi] = [lo - 0.5 * (Math.abs(lo) || 1) * 0.01, hi + 0.5 * (Math.abs(hi) || 1) * 0.01];
  const nb = o.bins ?? 20;
  const width = (hi - lo) / nb;
  const counts = o.series.map((s) => {
    const c = new Array<number>(nb).fill(0);
    const v = s.values.filter(Number.isFinite);
    for (const x of v) c[Math.min(nb - 1, Math.max(0, Math.floor((x - lo) / width)))]! += 1 / v.length;
    return c;
  });
  const ymax = Math.max(...counts.flat()) * 1.08 || 1;
  const sx = (v: number): number => f.left + ((v - lo) / (hi - lo)) * (f.right - f.left);
  const sy = (v: number): number => f.bottom - (v / ymax) * (f.bottom - f.top);
  let s = header(f, o.title) + axes(f, ticks(lo, hi), ticks(0, ymax), sx, sy, o.xLabel, 'fraction of networks');
  counts.forEach((c, k) => {
    const color = o.series[k]!.color ?? PALETTE[k % PALETTE.length]!;
    for (let b = 0; b < nb; b++) {
      if (c[b]! <= 0) continue;
      const x = sx(lo + b * width);
      const w = Math.max(1, sx(lo + (b + 1) * width) - x - 1);
      s += `<rect x="${x.toFixed(1)}" y="${sy(c[b]!).toFixed(1)}" width="${w.toFixed(1)}" height="${(f.bottom - sy(c[b]!)).toFixed(1)}" fill="${color}" fill-opacity="0.45" stroke="${color}" stroke-width="0.8"/>`;
    }
  });
  s += legend(
    f,
    o.series.map((ser, k) => ({ name: `${ser.name} (n=${ser.values.length})`, color: ser.color ?? PALETTE[k % PALETTE.length]! })),
    'left',
  );
  return s + '</svg>';
}
