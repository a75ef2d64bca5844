/** `wsflow info`: backend, device, build flags and versions. */
import { runtimeInfo } from '../../info.js';
import type { NativeCudaInfo } from '../../native/types.js';
import { type CommandSpec, parseCommand } from '../args.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'info',
  summary: 'backend, device, build flags and versions',
  usage: ['wsflow info [--json]'],
  description: `Prints the wsflow and Node versions, the loaded native binary and its build flags (CUDA on/off, architectures),
the CUDA device (or why there is none), the backend that 'auto' selects, how flow steps run (WSF_FUSED_STEP,
WSF_DEVICE_PRIOR), CPU threads and the TF.js backend.`,
  options: { json: { type: 'boolean', description: 'print one JSON object instead of a table' } },
  examples: ['wsflow info', 'WSF_DEVICE=cpu wsflow info --json'],
} as const satisfies CommandSpec;

/** The CUDA kernel settings in effect, with any environment value that did not take effect named. */
function kernelsRow(k: NonNullable<NativeCudaInfo['kernels']>): string {
  const asked: [string, string | undefined, string][] = [
    ['WSF_GEMM', process.env.WSF_GEMM, k.gemm],
    ['WSF_SPLITK_ROWS', process.env.WSF_SPLITK_ROWS, String(k.splitkRows)],
    ['WSF_ATTN_WARPS', process.env.WSF_ATTN_WARPS, String(k.attentionWarps)],
  ];
  const ignored = asked.filter(([, v, used]) => v !== undefined && v !== '' && v !== used).map(([name, v, used]) => `${name}=${v} not used: ${used}`);
  return `GEMM ${k.gemm}, ≥ ${k.splitkRows} rows per weight-gradient split, ${k.attentionWarps} attention warps${ignored.length > 0 ? ` (${ignored.join('; ')})` : ''}`;
}

export const infoCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values } = parseCommand(spec, argv);
    ctx.json = values.json === true;
    const info = await runtimeInfo({ tfjs: true });
    const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;
    const cuda =
      info.cuda.deviceCount > 0
        ? `${info.cuda.name} (sm_${info.cuda.ccMajor}${info.cuda.ccMinor}, ${gib(info.cuda.totalMem)}, ${info.cuda.multiprocessors} SMs), driver ${info.cuda.driverVersion}`
        : `none (${info.cuda.error})`;
    const rows: [string, string][] = [
      ['wsflow', info.wsflow],
      ['node', `${info.node} (${info.platform})`],
      ['binary', info.binding],
      ['build', `CUDA ${info.build.cuda ? `on (archs ${info.build.archs}, runtime ${info.cuda.runtimeVersion})` : 'off'}, ${info.build.compiler}, N-API ${info.build.napiVersion}, ${info.build.buildType}`],
      ['cuda device', cuda],
      ...(info.cuda.kernels !== undefined ? [['cuda kernels', kernelsRow(info.cuda.kernels)] as [string, string]] : []),
      ['backend', info.backend === 'cuda' ? 'cuda' : 'cpu'],
      [
        'flow steps',
        info.flowStep.fused
          ? `one native call per training step and sampled batch (training set and EMA on the device; prior drawn on the ${info.flowStep.devicePrior ? 'device' : 'host'})`
          : 'host-orchestrated (WSF_FUSED_STEP=0)',
      ],
      ['cpu', `${info.cpus.model} × ${info.cpus.count}, ${info.threads} worker threads`],
      ['tfjs', info.tfjs ?? 'not loaded'],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    ctx.result(info, () => rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    return 0;
  },
};
