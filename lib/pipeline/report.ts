/**
 * The demo's `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external assets) with the
 * results table, the training-loss curves, accuracy against Euler steps, the model-averaging curve and a
 * histogram of sample accuracies against the trained networks'.
 */
import type { DemoDetails, DemoSummary } from './demo.js';
import type { MeanStd } from './evaluate.js';
import { PALETTE, esc, histogram, lineChart } from './svg.js';

const COLORS: Record<string, string> = { euclidean: PALETTE[0]!, normalized: PALETTE[2]!, geometric: PALETTE[1]! };

function pm(v: MeanStd, d = 4): string {
  return Number.isFinite(v.mean) ? `${v.mean.toFixed(d)} ± ${v.std.toFixed(d)}` : '—';
}

function secs(s: number): string {
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
}

/** The report page. */
export function demoReportHtml(s: DemoSummary, d: DemoDetails): string {
  const rows: string[] = [];
  const head = s.flows[0]!;
  for (const space of new Set(s.flows.map((f) => f.space))) {
    const f = s.flows.find((x) => x.space === space)!;
    rows.push(`<tr><td>trained networks (${space === 'canonical' ? 'canonicalised' : 'raw weights'})</td><td>${pm(f.trainedAccuracy)}</td><td>${pm(f.trainedLoss)}</td></tr>`);
  }
  for (const f of s.flows) rows.push(`<tr class="flow"><td>${esc(f.geometry)} flow samples</td><td>${pm(f.sampleAccuracy)}</td><td>${pm(f.sampleLoss)}</td></tr>`);
  for (const f of s.flows) {
    const tag = s.flows.length > 1 ? ` (${esc(f.geometry)} space)` : '';
    rows.push(`<tr><td>trained + noise at the samples' NN distance${f.baselines.noise.reached ? '' : ' (beyond reach: the farthest noise)'}${tag}</td><td>${pm(f.baselines.noise.accuracy)}</td><td>${pm(f.baselines.noise.loss)}</td></tr>`);
    rows.push(`<tr><td>averages of ${f.baselines.average.k} trained networks${tag}</td><td>${pm(f.baselines.average.accuracy)}</td><td>${pm(f.baselines.average.loss)}</td></tr>`);
    rows.push(`<tr><td>Gaussian fitted to the zoo (mean, covariance of ${f.baselines.gaussian.members})${tag}</td><td>${pm(f.baselines.gaussian.accuracy)}</td><td>${pm(f.baselines.gaussian.loss)}</td></tr>`);
    const mix = f.baselines.mixture;
    if (mix !== undefined) rows.push(`<tr><td>the flow's mixture prior without the flow (${mix.components} clusters of the zoo${mix.scale !== 1 ? `, spread ${mix.scale}` : ''})${tag}</td><td>${pm(mix.accuracy)}</td><td>${pm(mix.loss)}</td></tr>`);
  }
  const memo = s.flows
    .map((f) => `<li><b>${esc(f.geometry)}</b>: samples' distance to the nearest trained network ${pm(f.memorisation.sampleNN, 3)} vs the zoo's own leave-one-out ${pm(f.memorisation.zooLooNN, 3)} (ratio ${f.memorisation.ratio.toFixed(2)}; ≪ 1 would suggest copies)</li>`)
    .join('');
  const lossPlot = lineChart({
    title: 'Training loss',
    xLabel: 'step',
    yLabel: 'loss (running mean)',
    logY: true,
    series: s.flows.map((f) => ({ name: f.geometry, points: (d.loss[f.geometry] ?? []).map((r) => [r.step, r.loss] as const), color: COLORS[f.geometry] ?? PALETTE[3]!, markers: false })),
  });
  const trainedAcc = head.trainedAccuracy.mean;
  const stepsPlot = lineChart({
    title: 'Sample accuracy vs Euler steps',
    xLabel: 'Euler steps',
    yLabel: 'test accuracy (mean ± std)',
    logX: true,
    yMax: 1,
    xTicks: head.stepSweep.map((p) => p.steps),
    legend: 'left',
    series: [
      ...s.flows.map((f) => ({ name: f.geometry, points: f.stepSweep.map((p) => [p.steps, p.accuracy.mean] as const), band: f.stepSweep.map((p) => p.accuracy.std), color: COLORS[f.geometry] ?? PALETTE[3]! })),
      { name: 'trained', points: head.stepSweep.map((p) => [p.steps, trainedAcc] as const), color: '#555', dashed: true, markers: false },
    ],
  });
  const bmaPlot = lineChart({
    title: 'Model averaging',
    xLabel: 'networks averaged (n)',
    yLabel: 'test accuracy',
    logX: true,
    yMax: 1,
    xTicks: head.bma.map((p) => p.n),
    legend: 'left',
    series: [
      ...s.flows.map((f) => ({ name: `${f.geometry} samples`, points: f.bma.map((p) => [p.n, p.accuracy.mean] as const), band: f.bma.map((p) => p.accuracy.std), color: COLORS[f.geometry] ?? PALETTE[3]! })),
      { name: 'trained networks', points: head.trainedBma.map((p) => [p.n, p.accuracy.mean] as const), color: '#555', dashed: true },
    ],
  });
  const hist = histogram({
    title: 'Test accuracy of individual networks',
    xLabel: 'test accuracy',
    bins: 24,
    series: [
      { name: 'trained', values: d.trainedAccuracies[head.geometry] ?? [], color: '#777' },
      ...s.flows.map((f) => ({ name: `${f.geometry} samples`, values: d.sampleAccuracies[f.geometry] ?? [], color: COLORS[f.geometry] ?? PALETTE[3]! })),
    ],
  });
  const bmaHead = head.bma.map((p) => `<th>n=${p.n}</th>`).join('');
  const bmaRows = [
    ...s.flows.map((f) => `<tr><td>${esc(f.geometry)} samples</td>${f.bma.map((p) => `<td>${p.accuracy.mean.toFixed(4)}</td>`).join('')}</tr>`),
    `<tr><td>trained networks</td>${head.bma.map((p) => `<td>${head.trainedBma.find((q) => q.n === p.n)?.accuracy.mean.toFixed(4) ?? '—'}</td>`).join('')}</tr>`,
  ].join('');
  const c = s.config;
  const trainRows = s.flows
    .map((f) => `<tr><td>${esc(f.geometry)}</td><td>${f.train.steps}${f.train.resumedFrom > 0 ? ` (resumed at ${f.train.resumedFrom})` : ''}</td><td>${f.train.finalLoss.toPrecision(4)}</td><td>${f.train.stepsPerS.toFixed(2)}</td><td>${secs(f.train.seconds)}</td><td>${secs(f.sampleSeconds)}</td></tr>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsflow demo — ${esc(s.task)} ${esc(s.geometry)} flow</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:3px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}td:first-child,th:first-child{text-align:left}
tr.flow td{font-weight:600}.muted{color:#666;font-size:.92em}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid svg{border:1px solid #eee}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px}
</style></head><body>
<h1>wsflow demo: generating ${esc(s.task.toUpperCase())} classifiers with flow matching</h1>
<p class="muted">wsflow ${esc(s.wsflow)} · ${esc(s.date)} · ${esc(s.scale)} scale · backend ${esc(s.backend)} (${esc(s.machine.cpus)}, ${s.threads} threads, load average ${s.machine.loadAverage.start.join(' / ')} at start) · ${secs(s.seconds)} in all</p>
<p>A zoo of ${s.zoo.networks} trained ${esc(s.arch.join('-'))} networks (${s.zoo.runs} runs × ${s.zoo.epochs} epochs; test accuracy ${pm(s.zoo.testAccuracy)}) was aligned by weight matching
(mean distance to the reference ${s.alignment.distanceBefore.toFixed(3)} → ${s.alignment.distanceAfter.toFixed(3)}). A flow learned the distribution of the aligned networks and generated new ones,
judged on the test split against the trained networks and three baselines, in the space each flow works in (raw weights for the Euclidean flow; canonicalised networks for the Normalized and Geometric flows: same accuracy, rescaled logits).</p>
<h2>Results (test split)</h2>
<table><tr><th>networks</th><th>accuracy</th><th>loss</th></tr>${rows.join('')}</table>
<h2>Model averaging (accuracy of the averaged predictive)</h2>
<table><tr><th></th>${bmaHead}</tr>${bmaRows}</table>
<h2>Memorisation</h2><ul>${memo}</ul>
<h2>Plots</h2>
<div class="grid">${lossPlot}${stepsPlot}${bmaPlot}${hist}</div>
<h2>Training</h2>
<table><tr><th>flow</th><th>steps</th><th>final loss</th><th>steps/s</th><th>train time</th><th>sample time</th></tr>${trainRows}</table>
<p class="muted">Vector field: sparse relational transformer, D=${c.d}, ${c.layers} layers, ${c.heads} head(s), ${esc(c.graph)} graph; batch ${c.batch}, Adam lr ${c.lr}, ${esc(c.time)} training times, ${c.ema > 0 ? `EMA ${c.ema} of the parameters for sampling` : 'no EMA'}; ${c.samples} samples with ${c.sampleSteps} Euler steps; seed ${c.seed}.
Timings: ${Object.entries(s.timings).map(([k, v]) => `${esc(k)} ${secs(v)}`).join(', ')}.</p>
<p class="muted">Command: <code>${esc(s.command ?? 'runDemo()')}</code>. Files: <code>summary.json</code>, <code>zoo/</code>, <code>flows/</code>, <code>samples/</code> beside this page.</p>
</body></html>
`;
}
