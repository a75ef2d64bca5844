/** `wsflow export`: networks of a samples or zoo file as TF.js LayersModel files (model.json + weights.bin). */
import * as path from 'node:path';
import { mlp } from '../../arch/Architecture.js';
import { WsfError } from '../../errors.js';
import { loadTf } from '../../interop/tf.js';
import { toTfModel } from '../../interop/tfjs.js';
import { saveTfModelFiles } from '../../interop/tfjsFiles.js';
import { readWeightsFile } from '../../pipeline/sample.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { firstNonFinite } from '../../util/validate.js';
import { checked, checkWritableDir, duration } from '../common.js';
import { parseLogitScale, zooLogitScale } from './sample.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'export',
  summary: 'write networks of a samples or zoo file as TF.js models (model.json + weights.bin)',
  usage: ['wsflow export --weights FILE --out DIR [--index I] [--count N] [--logit-scale X|auto]'],
  description: `Writes network --index of --weights (a samples file from wsflow sample, or a zoo file) as a TF.js
LayersModel: DIR/model.json and DIR/weights.bin, a tf.Sequential of Dense layers with ReLU between them and a linear
last layer (logits), loadable with tf.loadLayersModel('file://DIR/model.json') under tfjs-node or over HTTP in a
browser. With --count N > 1, networks I … I+N−1 go to DIR/net-<index>/. Files are written atomically, weights first.
Canonicalised samples (Normalized and Geometric flows) hold the last layer at unit norm: the predicted classes are
the trained networks', the probabilities flatter; --logit-scale X multiplies the last layer's weights and biases by
X ('auto': the trained networks' own scale, from the zoo recorded in the samples file).`,
  options: {
    weights: { type: 'string', metavar: 'FILE', exists: 'file', required: true, description: 'samples or zoo file (tensor `weights` [n, P])' },
    out: { type: 'string', metavar: 'DIR', required: true, description: 'folder to write (created; existing model files in it are replaced)' },
    index: { type: 'int', min: 0, default: 0, metavar: 'I', description: 'first network to export' },
    count: { type: 'int', min: 1, default: 1, metavar: 'N', description: 'networks to export (N > 1: one folder per network)' },
    'logit-scale': { type: 'string', metavar: 'X|auto', description: "multiply the last layer by X (default 1; 'auto': the trained networks' scale, from the samples file's zoo)" },
    arch: { type: 'string', metavar: 'WIDTHS', description: "architecture when the file does not record one (default: the file's)" },
    json: COMMON.json,
  },
  examples: ['wsflow export --weights s.safetensors --out model', 'wsflow export --weights s.safetensors --index 4 --count 8 --logit-scale auto --out ensemble', 'wsflow export --weights zoos/wdbc/zoo.safetensors --index 99 --out trained'],
} as const satisfies CommandSpec;

export const exportCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.weights === undefined) throw new UsageError('--weights: expected a samples or zoo file (e.g. --weights s.safetensors)');
    if (v.out === undefined) throw new UsageError('--out: expected the folder to write (e.g. --out model)');
    checkWritableDir('--out', v.out);
    const scaleArg = v['logit-scale'] === undefined ? 1 : parseLogitScale(v['logit-scale'], '--logit-scale');
    const archOverride = v.arch !== undefined ? checked('--arch', () => mlp(v.arch!)) : undefined;
    const wf = checked('--weights', () => readWeightsFile(v.weights!, archOverride));
    if (v.index >= wf.n) throw new UsageError(`--index: ${v.index} is past the last network of ${v.weights} (it holds ${wf.n})`);
    if (v.index + v.count > wf.n) throw new UsageError(`--count: networks ${v.index} … ${v.index + v.count - 1} asked for; ${v.weights} holds ${wf.n}`);
    // 'auto' gives canonical networks (unit-norm last layer) back the trained networks' logit scale; raw networks
    // (Euclidean flows, zoo files) already have theirs.
    if (scaleArg === 'auto' && wf.metadata.canonical !== 'true') {
      throw new UsageError(`--logit-scale auto: ${v.weights} holds raw networks (not canonicalised), whose logits are already at their scale; leave the option out, or give a number`);
    }
    const scale = scaleArg === 'auto' ? zooLogitScale(wf.metadata.zoo_file, '--logit-scale') : scaleArg;
    const arch = wf.arch;
    const P = arch.numParams;
    const L = arch.numLayers;
    const [wL, bL, nW, nB] = [arch.weightOffset(L), arch.biasOffset(L), arch.widths[L - 1]! * arch.widths[L]!, arch.widths[L]!];
    // Every network checked before any is written: a non-finite weight (after scaling) refuses the whole export.
    const nets: Float32Array[] = [];
    for (let k = 0; k < v.count; k++) {
      const i = v.index + k;
      const net = wf.weights.slice(i * P, (i + 1) * P);
      if (scale !== 1) {
        for (let p = wL; p < wL + nW; p++) net[p]! *= scale;
        for (let p = bL; p < bL + nB; p++) net[p]! *= scale;
      }
      const bad = firstNonFinite(net);
      if (bad >= 0) throw new UsageError(`--weights: network ${i} of ${v.weights} has a non-finite weight (parameter ${bad}${scale !== 1 && Number.isFinite(wf.weights[i * P + bad]!) ? `, after --logit-scale ${scale}` : ''})`);
      nets.push(net);
    }
    const t0 = performance.now();
    const { tf } = await loadTf();
    const bar = ctx.progress({ label: 'export', total: v.count, unit: 'networks' });
    const models: { index: number; dir: string }[] = [];
    try {
      for (let k = 0; k < v.count; k++) {
        if (ctx.signal.aborted) break;
        const i = v.index + k;
        const net = nets[k]!;
        const dir = v.count === 1 ? v.out : path.join(v.out, `net-${String(i).padStart(String(v.index + v.count - 1).length, '0')}`);
        const model = toTfModel(tf, arch, net, 0);
        try {
          await saveTfModelFiles(tf, model, dir);
        } finally {
          model.dispose();
        }
        models.push({ index: i, dir });
        bar.tick(1);
      }
    } finally {
      bar.done();
    }
    if (models.length < v.count) throw new WsfError(`interrupted after ${models.length} of ${v.count} networks (those written are complete)`, 'ERR_INTERRUPTED');
    const res = { weights: v.weights, out: v.out, arch: arch.widths, logitScale: scale, models, seconds: (performance.now() - t0) / 1000 };
    ctx.result(res, () => `wrote ${models.length} TF.js model${models.length > 1 ? 's' : ''} of ${arch.key} to ${v.out}${scale !== 1 ? ` (last layer × ${scale.toPrecision(4)})` : ''} (${duration(res.seconds)})`);
    return 0;
  },
};
