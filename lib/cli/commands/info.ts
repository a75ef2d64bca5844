/** `wsflow info`: backend, device, build flags and versions. */
import { mlp } from '../../arch/Architecture.js';
import { resolveDevice } from '../../device.js';
import { GRAPH_MODES, VectorField, type GraphMode, type MemoryPlan } from '../../engine/VectorField.js';
import { WsfError } from '../../errors.js';
import { runtimeInfo, type RuntimeInfo } from '../../info.js';
import type { NativeCudaInfo } from '../../native/types.js';
import { type CommandSpec, parseCommand } from '../args.js';
import { checked } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'info',
  summary: 'backend, device, build flags and versions',
  usage: ['wsflow info [--json]', 'wsflow info --memory ARCH [--batch N] [--d N] [--layers N] [--heads N] [--graph sparse|dense|hybrid|virtual] [--device auto|cpu|cuda] [--json]'],
  description: `Prints the wsflow and Node versions, the loaded native binary and its build flags (CUDA on/off, architectures),
the CUDA device (or why there is none), the backend that 'auto' selects, how flow steps run (WSF_FUSED_STEP,
WSF_DEVICE_PRIOR), CPU threads and kernels (AVX-512, AVX2 or portable; whether bf16 products, --matmul bf16, are
available) and the TF.js backend.

With --memory ARCH: what training a vector field on batches of ARCH networks would hold — in the default mode, in
recompute mode and in chunked recompute mode per chunk size — and what sampling adds per network, counted by the
engine without allocating activations (it does build the batch's weight graph on the host: 6.8 GB for --batch 65536
of 30-16-16-2 networks, measured; for the device planned for: the CPU keeps some pair-sized arrays in its fused ops' block
scratch, so its default mode and sampling hold less; a GPU adds its kernels' scratch, tens of MiB),
with the memory free on the device and the mode that 'auto' (wsflow train's default) would pick there.`,
  options: {
    json: { type: 'boolean', description: 'print one JSON object instead of a table' },
    memory: { type: 'string', metavar: 'ARCH', description: "plan the memory of training on networks of this architecture, e.g. 784-128-128-10" },
    batch: { needs: 'memory', type: 'int', min: 1, max: 1 << 20, default: 32, metavar: 'N', description: 'with --memory: networks per training step' },
    d: { needs: 'memory', type: 'int', min: 1, max: 4096, default: 32, metavar: 'N', description: 'with --memory: embedding width D of the vector field' },
    layers: { needs: 'memory', type: 'int', min: 0, max: 64, default: 5, metavar: 'N', description: 'with --memory: relational-transformer layers' },
    heads: { needs: 'memory', type: 'int', min: 1, max: 4096, default: 1, metavar: 'N', description: 'with --memory: attention heads (must divide D)' },
    graph: { needs: 'memory', type: 'string', choices: GRAPH_MODES, default: 'sparse', description: 'with --memory: weight graph of the field' },
    device: { needs: 'memory', type: 'string', choices: ['auto', 'cpu', 'cuda'], description: "with --memory: whose free memory to plan against (default: WSF_DEVICE, else auto)" },
  },
  examples: ['wsflow info', 'WSF_DEVICE=cpu wsflow info --json', 'wsflow info --memory 784-128-128-10 --batch 8', 'wsflow info --memory 784-10-10 --graph dense --batch 8 --json'],
} as const satisfies CommandSpec;

/** The CUDA kernel settings in effect, with any environment value that did not take effect named. */
function kernelsRow(k: NonNullable<NativeCudaInfo['kernels']>): string {
  const asked: [string, string | undefined, string][] = [
    ['WSF_GEMM', process.env.WSF_GEMM, k.gemm],
    ['WSF_SPLITK_ROWS', process.env.WSF_SPLITK_ROWS, String(k.splitkRows)],
    ['WSF_ATTN_WARPS', process.env.WSF_ATTN_WARPS, String(k.attentionWarps)],
    ['WSF_CUDA_GRAPH', process.env.WSF_CUDA_GRAPH, { plain: '0', sync: 'sync', graph: '1' }[k.flowStep]],
  ];
  const ignored = asked.filter(([, v, used]) => v !== undefined && v !== '' && v !== used).map(([name, v, used]) => `${name}=${v} not used: ${used}`);
  return `GEMM ${k.gemm}, ≥ ${k.splitkRows} rows per weight-gradient split, ${k.attentionWarps} attention warps, flow step ${k.flowStep}${ignored.length > 0 ? ` (${ignored.join('; ')})` : ''}`;
}

/** The CPU engine's float kernels in words, e.g. 'avx512 kernels' or 'portable kernels (NEON)'. */
function cpuKernelsText(k: RuntimeInfo['cpuKernels'], platform: string): string {
  const what = k.active === 'portable' ? `portable kernels (${platform.endsWith('arm64') ? 'NEON' : 'generic vectors'})` : `${k.active} kernels`;
  const bf16 = k.bf16 ? ', bf16 products available (--matmul bf16)' : '';
  return (k.active === k.detected ? what : `${what}; this CPU allows ${k.detected}`) + bf16;
}

export const infoCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values } = parseCommand(spec, argv);
    ctx.json = values.json === true;
    if (values.memory !== undefined) return memoryPlanCommand(ctx, values);
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
      ['cpu', `${info.cpus.model} × ${info.cpus.count}, ${info.threads} worker threads, ${cpuKernelsText(info.cpuKernels, info.platform)}`],
      ['tfjs', info.tfjs ?? 'not loaded'],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    ctx.result(info, () => rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n'));
    return 0;
  },
};

/** `wsflow info --memory ARCH`: the field's training and sampling memory per mode, and what 'auto' would pick. */
function memoryPlanCommand(
  ctx: Parameters<CliCommand['run']>[0],
  v: { memory?: string | undefined; batch: number; d: number; layers: number; heads: number; graph: string; device?: string | undefined },
): number {
  let arch;
  try {
    arch = mlp(v.memory ?? '');
  } catch (e) {
    throw new WsfError(`--memory: expected an architecture such as 784-128-128-10, got '${v.memory}' (${(e as Error).message})`, 'ERR_INVALID');
  }
  if (v.d % v.heads !== 0) throw new WsfError(`--heads ${v.heads} must divide --d ${v.d}`, 'ERR_INVALID');
  const device = v.device !== undefined ? checked(`--device ${v.device}`, () => resolveDevice(v.device as 'auto' | 'cpu' | 'cuda')) : resolveDevice(undefined);
  // The counts do not depend on the device (both store f32): a CPU field counts, the device's free memory decides.
  const field = VectorField.create({ arch, D: v.d, layers: v.layers, heads: v.heads, graph: v.graph as GraphMode, device: 'cpu' });
  let plan: MemoryPlan;
  try {
    plan = field.memoryPlan(v.batch, { device });
  } finally {
    field.dispose();
  }
  const size = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
  const rows: [string, string][] = [
    ['default', size(plan.training.default)],
    ['recompute', size(plan.training.recompute)],
    ...plan.training.chunked.map((c): [string, string] => [`chunked, ${c.chunkRows.toLocaleString('en-US')} pairs`, size(c.bytes)]),
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  const a = plan.auto;
  const mode = a.chunkRows > 0 ? `chunked recompute mode, ${a.chunkRows.toLocaleString('en-US')} pairs per chunk` : a.recompute ? 'recompute mode' : 'the default mode';
  ctx.result({ arch: arch.key, D: v.d, layers: v.layers, heads: v.heads, graph: v.graph, ...plan }, () =>
    [
      `training a D=${v.d} × ${v.layers}-layer ${v.graph} field on batches of ${plan.networks} × ${arch.key} (${plan.pairs.toLocaleString('en-US')} pairs, ${plan.nodes.toLocaleString('en-US')} nodes):`,
      ...rows.map(([k, x]) => `  ${k.padEnd(w)}  ${x}`),
      `sampling: ${size(plan.inferencePerNetwork)} per network of a batch, plus the parameters`,
      `${a.device}: ${size(a.freeBytes)} free; 'auto' would train in ${mode} (${size(a.bytes)}${a.fits ? '' : ', more than is free: use a smaller --batch'})`,
    ].join('\n'),
  );
  return 0;
}
