// CUDA kernels of the relational-transformer ops (float). Every op implements the contract of rt_ops.h with the
// semantics of its CPU reference in rt_ops_cpu.cc (same argument order, same accumulate/overwrite rules); the
// parity tests (test/parity/*.gpu.test.ts, bench/gpu/engine.mjs) compare the two.
//
// Shape letters (common.h): N nodes, M pairs (CSR order by row node), D embedding width, H = D + 1 state width,
// C a generic row width, K/N the in/out widths of a linear layer (y = x·Wᵀ + b, W is N × K with leading
// dimension ldw). All element offsets are computed in int64 (dense MNIST batches have M·4D > 2³¹ elements).
//
// Families and their parallelisation (each kernel says more where it is defined):
//   GEMM        one tiled SGEMM (BM×BN output tile per block, BK-deep shared-memory stages, a TM×TN register
//               micro-tile per thread) for x·Wᵀ, dy·W and dyᵀ·x; the weight gradient reduces over a long rows
//               dimension with split-K into per-split partials and a second kernel that sums them in split order.
//   LayerNorm   one warp per row, two-pass statistics; γ/β gradients by a deterministic column reduction.
//   attention   one block (4 warps) per (row node, head): each warp an online softmax over a contiguous slice of
//               the row's pairs, the slices merged in warp order; backward pass 1 per row, pass 2 per column node
//               as a row sum over rev (no atomics).
//   reductions  column sums, CSR row sums, embedding-table gradients, loss sums: fixed partitions that depend on
//               the shapes only, summed in a fixed order. No float atomics anywhere: results are bitwise
//               reproducible run to run and across GPU models.
//   elementwise grid-stride loops (activations with exact erff/expf, adds, gathers/scatters, features, Adam).
//
// No fast-math: GELU uses erff and expf, LayerNorm 1/sqrtf (not rsqrtf), Adam sqrtf, as the CPU does.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/cuda_common.cuh"
#ifndef WSF_CUDA_EMU
#include <mma.h>
#endif
#include "core/device.h"
#include "core/rt_ops_cuda.h"

namespace wsf {
namespace {

constexpr int kThreads = 256;             // elementwise and row kernels
constexpr int64_t kMaxGridBlocks = 65536;  // grid-stride loops cap the grid here (shape-independent)

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

inline unsigned grid_for(int64_t n, int per_block = kThreads) {
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(b, kMaxGridBlocks)));
}

// Grid-stride loop over [0, n) with int64 indices.
#define WSF_GRID_LOOP(i, n)                                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);              \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ==============================================================================================================
// Elementwise kernels. Each thread owns whole elements (grid-stride); no element is touched by two threads, so
// in-place use (dx == dy, y == a) is safe.
// ==============================================================================================================

__device__ __forceinline__ float act_value(float x, int a) {
  if (a == static_cast<int>(Act::Gelu)) return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
  if (a == static_cast<int>(Act::Silu)) return x / (1.0f + expf(-x));
  return x > 0.0f ? x : 0.0f;  // ReLU
}

__device__ __forceinline__ float act_grad(float x, int a) {
  if (a == static_cast<int>(Act::Gelu)) {
    // d/dx [x Φ(x)] = Φ(x) + x φ(x)
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752440f));
    const float pdf = expf(-0.5f * x * x) * 0.39894228040143267794f;
    return cdf + x * pdf;
  }
  if (a == static_cast<int>(Act::Silu)) {
    const float s = 1.0f / (1.0f + expf(-x));
    return s * (1.0f + x * (1.0f - s));
  }
  return x > 0.0f ? 1.0f : 0.0f;
}

__global__ void act_forward_kernel(float* y, const float* x, int64_t n, int a) {
  WSF_GRID_LOOP(i, n) y[i] = act_value(x[i], a);
}

__global__ void act_backward_kernel(float* dx, const float* dy, const float* x, int64_t n, int a, bool acc) {
  WSF_GRID_LOOP(i, n) {
    const float v = dy[i] * act_grad(x[i], a);
    dx[i] = acc ? dx[i] + v : v;
  }
}

__global__ void add_kernel(float* y, const float* a, const float* b, int64_t n) {
  WSF_GRID_LOOP(i, n) y[i] = a[i] + b[i];
}

// x[i] = float(double(x[i])·s), exactly what the CPU reference computes.
__global__ void scale_kernel(float* x, int64_t n, double s) {
  WSF_GRID_LOOP(i, n) x[i] = static_cast<float>(static_cast<double>(x[i]) * s);
}

// ---- flow-matching step: the CPU reference's double arithmetic, operation for operation; the _rn intrinsics keep
// nvcc from contracting a·b + c into an FMA, so the results equal the CPU's bit for bit.
__global__ void flow_path_kernel(float* xt, const float* x0, const float* x1, const float* noise, const float* t,
                                 int64_t B, int64_t P) {
  WSF_GRID_LOOP(i, B * P) {
    const double tb = static_cast<double>(t[i / P]);
    double v = __dadd_rn(__dmul_rn(__dsub_rn(1.0, tb), static_cast<double>(x0[i])), __dmul_rn(tb, static_cast<double>(x1[i])));
    if (noise != nullptr) v = __dadd_rn(v, static_cast<double>(noise[i]));
    xt[i] = static_cast<float>(v);
  }
}

__global__ void flow_input_kernel(float* y, const float* x, const float* scale, int64_t B, int64_t P) {
  WSF_GRID_LOOP(i, B * P) y[i] = static_cast<float>(__ddiv_rn(static_cast<double>(x[i]), static_cast<double>(scale[i % P])));
}

__global__ void flow_to_x1_kernel(float* xhat, const float* F, const float* xt, const float* t, const float* scale,
                                  bool precondition, int64_t B, int64_t P) {
  WSF_GRID_LOOP(i, B * P) {
    const double s = scale == nullptr ? 1.0 : static_cast<double>(scale[i % P]);
    const double f = static_cast<double>(F[i]);
    xhat[i] = static_cast<float>(
        precondition ? __dadd_rn(static_cast<double>(xt[i]), __dmul_rn(__dmul_rn(__dsub_rn(1.0, static_cast<double>(t[i / P])), s), f))
                     : __dmul_rn(s, f));
  }
}

__global__ void flow_to_dF_kernel(float* d, const float* t, const float* scale, bool precondition, int64_t B, int64_t P) {
  WSF_GRID_LOOP(i, B * P) {
    const double s = scale == nullptr ? 1.0 : static_cast<double>(scale[i % P]);
    const double v = static_cast<double>(d[i]);
    d[i] = static_cast<float>(precondition ? __dmul_rn(__dmul_rn(v, __dsub_rn(1.0, static_cast<double>(t[i / P]))), s)
                                           : __dmul_rn(v, s));
  }
}

// core/random.h's fill_normal_counter on the device: pair j from splitmix64 outputs 2j+1 and 2j+2, Box–Muller in
// double (the device's log/cos/sin agree with the host's to an ulp or so in double; the float results almost always
// agree exactly).
__device__ inline uint64_t splitmix64_at_dev(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// seed_ptr (device, may be null): the seed is read there instead (a launch recorded once, replayed with new seeds).
__global__ void fill_normal_kernel(float* out, int64_t n, uint64_t seed_arg, const uint64_t* seed_ptr, double mean,
                                   double stddev) {
  const uint64_t seed = seed_ptr != nullptr ? *seed_ptr : seed_arg;
  const double kTwoPi = 6.283185307179586476925286766559;
  const double k2m53 = 1.0 / 9007199254740992.0;
  WSF_GRID_LOOP(j, (n + 1) / 2) {
    const uint64_t k = 2 * static_cast<uint64_t>(j);
    const double u1 = static_cast<double>((splitmix64_at_dev(seed, k + 1) >> 11) + 1) * k2m53;
    const double u2 = static_cast<double>(splitmix64_at_dev(seed, k + 2) >> 11) * k2m53;
    const double r = sqrt(__dmul_rn(-2.0, log(u1)));
    const double a = __dmul_rn(kTwoPi, u2);
    out[2 * j] = static_cast<float>(__dadd_rn(mean, __dmul_rn(__dmul_rn(stddev, r), cos(a))));
    if (2 * j + 1 < n) out[2 * j + 1] = static_cast<float>(__dadd_rn(mean, __dmul_rn(__dmul_rn(stddev, r), sin(a))));
  }
}

__global__ void flow_velocity_kernel(float* v, const float* xhat, const float* x, double inv, int64_t n) {
  WSF_GRID_LOOP(i, n) {
    const float d = static_cast<float>(__dsub_rn(static_cast<double>(xhat[i]), static_cast<double>(x[i])));
    v[i] = static_cast<float>(__dmul_rn(static_cast<double>(d), inv));
  }
}

__global__ void flow_axpy_kernel(float* y, const float* x, const float* v, double dt, int64_t n) {
  WSF_GRID_LOOP(i, n) y[i] = static_cast<float>(__dadd_rn(static_cast<double>(x[i]), __dmul_rn(dt, static_cast<double>(v[i]))));
}

__global__ void flow_rk4_combine_kernel(float* v, const float* k1, const float* k2, const float* k3, const float* k4,
                                        int64_t n) {
  WSF_GRID_LOOP(i, n) {
    const double s = __dadd_rn(__dadd_rn(__dadd_rn(static_cast<double>(k1[i]), __dmul_rn(2.0, static_cast<double>(k2[i]))),
                                         __dmul_rn(2.0, static_cast<double>(k3[i]))),
                               static_cast<double>(k4[i]));
    v[i] = static_cast<float>(__ddiv_rn(s, 6.0));
  }
}

// gate (device, may be null): skipped when gate[1] == 0 (a step that did not apply, see step_gate_kernel).
__global__ void ema_update_kernel(float* ema, const float* p, int64_t n, double decay, const float* gate) {
  if (gate != nullptr && gate[1] == 0.0f) return;
  WSF_GRID_LOOP(i, n) {
    ema[i] = static_cast<float>(__dadd_rn(__dmul_rn(decay, static_cast<double>(ema[i])),
                                          __dmul_rn(__dsub_rn(1.0, decay), static_cast<double>(p[i]))));
  }
}

// fill_normal_kernel per row: thread (row, pair) with the row's own seed.
__global__ void fill_normal_rows_kernel(float* out, int64_t rows, int64_t ld, const int32_t* counts, const int32_t* seeds,
                                        double mean, double stddev) {
  const double kTwoPi = 6.283185307179586476925286766559;
  const double k2m53 = 1.0 / 9007199254740992.0;
  const int64_t pairs = (ld + 1) / 2;
  WSF_GRID_LOOP(e, rows * pairs) {
    const int64_t r = e / pairs, j = e % pairs;
    const int64_t n = counts[r];
    if (2 * j >= n) continue;
    const uint64_t seed = (static_cast<uint64_t>(static_cast<uint32_t>(seeds[2 * r])) << 32) |
                          static_cast<uint64_t>(static_cast<uint32_t>(seeds[2 * r + 1]));
    const uint64_t k = 2 * static_cast<uint64_t>(j);
    const double u1 = static_cast<double>((splitmix64_at_dev(seed, k + 1) >> 11) + 1) * k2m53;
    const double u2 = static_cast<double>(splitmix64_at_dev(seed, k + 2) >> 11) * k2m53;
    const double rad = sqrt(__dmul_rn(-2.0, log(u1)));
    const double a = __dmul_rn(kTwoPi, u2);
    float* o = out + r * ld;
    o[2 * j] = static_cast<float>(__dadd_rn(mean, __dmul_rn(__dmul_rn(stddev, rad), cos(a))));
    if (2 * j + 1 < n) o[2 * j + 1] = static_cast<float>(__dadd_rn(mean, __dmul_rn(__dmul_rn(stddev, rad), sin(a))));
  }
}

// One thread per (row, parameter); the basis rows are read coalesced along p. The products of two floats are exact
// in double, so only the additions round, in k order, as on the CPU.
__global__ void gaussian_fit_draw_kernel(float* out, const float* eps, int64_t ld_eps, const int32_t* comp,
                                         const float* mean, const float* basis, const int32_t* row0, int64_t B,
                                         int64_t P) {
  WSF_GRID_LOOP(i, B * P) {
    const int64_t b = i / P, p = i % P;
    const int64_t c = comp == nullptr ? 0 : comp[b];
    const double mu = static_cast<double>(mean[c * P + p]);
    if (basis == nullptr) {
      out[i] = static_cast<float>(__dadd_rn(static_cast<double>(eps[b * ld_eps + p]), mu));
      continue;
    }
    double acc = mu;
    const int64_t k0 = row0[c], m = row0[c + 1] - k0;
    for (int64_t k = 0; k < m; ++k) {
      acc = __dadd_rn(acc, __dmul_rn(static_cast<double>(eps[b * ld_eps + k]), static_cast<double>(basis[(k0 + k) * P + p])));
    }
    out[i] = static_cast<float>(acc);
  }
}

// dst[r·ldd + c] (+)= src[r·lds + c], one thread per element.
__global__ void copy_cols_kernel(float* dst, int ldd, const float* src, int lds, int64_t rows, int cols, bool acc) {
  WSF_GRID_LOOP(e, rows * cols) {
    const int64_t r = e / cols;
    const int c = static_cast<int>(e % cols);
    const float v = src[r * lds + c];
    float* d = dst + r * ldd + c;
    *d = acc ? *d + v : v;
  }
}

// y[r·ld + c] += table[idx[r]·D + c], one thread per element (each y element is owned by one thread).
__global__ void embed_add_kernel(float* y, int ld, const float* table, const int32_t* idx, int64_t rows, int D) {
  WSF_GRID_LOOP(e, rows * D) {
    const int64_t r = e / D;
    const int c = static_cast<int>(e % D);
    y[r * ld + c] += table[static_cast<int64_t>(idx[r]) * D + c];
  }
}

__global__ void set_time_kernel(float* s, const float* t, const int32_t* graph, const int32_t* one_mask, int64_t rows,
                                int H) {
  WSF_GRID_LOOP(r, rows) s[r * H + H - 1] = (one_mask != nullptr && one_mask[r] != 0) ? 1.0f : t[graph[r]];
}

// y[i·C + c] = x[idx[i]·C + c]
__global__ void gather_rows_kernel(float* y, const float* x, const int32_t* idx, int64_t n, int C) {
  WSF_GRID_LOOP(e, n * C) {
    const int64_t i = e / C;
    const int c = static_cast<int>(e % C);
    y[e] = x[static_cast<int64_t>(idx[i]) * C + c];
  }
}

// dx[idx[i]·C + c] (+)= dy[i·C + c]; idx is unique (contract), so every target element has one writer.
__global__ void scatter_rows_kernel(float* dx, const float* dy, const int32_t* idx, int64_t n, int C, bool acc) {
  WSF_GRID_LOOP(e, n * C) {
    const int64_t i = e / C;
    const int c = static_cast<int>(e % C);
    float* d = dx + static_cast<int64_t>(idx[i]) * C + c;
    *d = acc ? *d + dy[e] : dy[e];
  }
}

__global__ void scatter_flat_kernel(float* flat, const float* v, const int32_t* param, int64_t n) {
  WSF_GRID_LOOP(i, n) flat[param[i]] = v[i];
}

__global__ void gather_flat_kernel(float* v, const float* flat, const int32_t* param, int64_t n) {
  WSF_GRID_LOOP(i, n) v[i] = flat[param[i]];
}

__global__ void edge_features_kernel(float* feat, const float* x, const float* t, const float* aux,
                                     const int32_t* param, const int32_t* dir, const int32_t* graph, int64_t M, int din,
                                     bool reverse_value, int aux_cols) {
  const int A = aux != nullptr ? aux_cols : 0;
  const bool time_col = din - A == 2;
  WSF_GRID_LOOP(k, M) {
    const bool has = dir[k] == 0 || (reverse_value && dir[k] == 1);
    feat[k * din] = has ? x[param[k]] : 0.0f;
    if (time_col) feat[k * din + 1] = t[graph[k]];
    for (int c = 0; c < A; ++c) feat[k * din + din - A + c] = has ? aux[static_cast<int64_t>(param[k]) * A + c] : 0.0f;
  }
}

__global__ void node_features_kernel(float* feat, const float* x, const float* t, const float* aux,
                                     const int32_t* param, const int32_t* graph, int64_t N, int din, int aux_cols) {
  const int A = aux != nullptr ? aux_cols : 0;
  const bool time_col = din - A == 2;
  WSF_GRID_LOOP(u, N) {
    feat[u * din] = param[u] >= 0 ? x[param[u]] : 0.0f;
    if (time_col) feat[u * din + 1] = t[graph[u]];
    for (int c = 0; c < A; ++c) feat[u * din + din - A + c] = param[u] >= 0 ? aux[static_cast<int64_t>(param[u]) * A + c] : 0.0f;
  }
}

// Input gradients of the feature ops: one thread per output element (a weight or a bias), which it alone writes;
// the forward and reverse pair contributions are added in the CPU's order.
__global__ void edge_features_backward_kernel(float* dx, const float* dfeat, const int32_t* idx, const int32_t* rev,
                                              const int32_t* param, int64_t n, int din, bool reverse_value) {
  WSF_GRID_LOOP(i, n) {
    const int64_t k = idx[i];
    float g = dfeat[k * din];
    if (reverse_value) g += dfeat[static_cast<int64_t>(rev[k]) * din];
    dx[param[i]] = g;
  }
}

__global__ void node_features_backward_kernel(float* dx, const float* dfeat, const int32_t* idx, const int32_t* param,
                                              int64_t n, int din) {
  WSF_GRID_LOOP(i, n) dx[param[i]] = dfeat[static_cast<int64_t>(idx[i]) * din];
}

// z[k·D + c] = Y1[k] + Y2[rev k] + S[row k] + T[col k] + bias, one thread per element, summed in the CPU's order.
__global__ void edge_combine_forward_kernel(float* z, const float* Y1, const float* Y2, const float* S, const float* Tn,
                                            const float* bias, const int32_t* row, const int32_t* col,
                                            const int32_t* rev, int64_t M, int D) {
  WSF_GRID_LOOP(e, M * D) {
    const int64_t k = e / D;
    const int c = static_cast<int>(e % D);
    z[e] = Y1[e] + Y2[static_cast<int64_t>(rev[k]) * D + c] + S[static_cast<int64_t>(row[k]) * D + c] +
           Tn[static_cast<int64_t>(col[k]) * D + c] + bias[c];
  }
}

// Adam/AdamW, the CPU reference's float formula step by step (bias corrections precomputed in double on the host).
// consts (device, may be null): the constants are read there (adam_constants' layout) instead of the arguments;
// gate (device, may be null): the gradient scale is gate[0], and nothing changes when gate[1] == 0.
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t n, float b1, float b2, float lr,
                            float eps, float wd, float gs, float ibc1, float isbc2, const double* consts,
                            const float* gate) {
  if (gate != nullptr) {
    if (gate[1] == 0.0f) return;
    gs = gate[0];
  }
  if (consts != nullptr) {
    b1 = static_cast<float>(consts[0]);
    b2 = static_cast<float>(consts[1]);
    lr = static_cast<float>(consts[2]);
    eps = static_cast<float>(consts[3]);
    wd = static_cast<float>(consts[4]);
    ibc1 = static_cast<float>(consts[5]);
    isbc2 = static_cast<float>(consts[6]);
  }
  WSF_GRID_LOOP(i, n) {
    const float gi = g[i] * gs;
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i];
    if (wd != 0.0f) pi -= lr * wd * pi;
    pi -= lr * (mi * ibc1) / (sqrtf(vi) * isbc2 + eps);
    p[i] = pi;
  }
}

// ==============================================================================================================
// GEMM: C(i, j) = Σ_p A(i, p)·B(p, j), with A(i,p) = A[i·sai + p·sap] and B(p,j) = B[p·sbp + j·sbj].
//
// A block owns one BM×BN tile of C (blockIdx.x over i — the long rows dimension — and blockIdx.y over j) and one
// split of the reduction (blockIdx.z, p in [z·k_chunk, min(K, (z+1)·k_chunk))). It walks that range in BK-deep
// stages: all threads load an A sub-tile (BK×BM) and a B sub-tile (BK×BN) into shared memory (out-of-range
// elements as 0), barrier, then every thread accumulates its TM×TN outputs — rows ty + m·(BM/TM), columns
// tx + n·(BN/TN) (strided so that a warp's stores are contiguous in j) — barrier, next stage. Each output element
// is written by exactly one thread, after a sum in a fixed order over p: deterministic.
//
// Loads are coalesced for every use: A_P_FAST/B_J_FAST pick which tile index varies fastest across threads, so
// consecutive threads read consecutive addresses (x·Wᵀ: A and B contiguous in p; dy·W: A in p, B in j;
// dyᵀ·x: A in i, B in j).
//
// Epilogue: without split-K, C[i·ldc + j] = (accumulate ? C : 0) + acc (+ bias[j]); with split-K, the raw sums go
// to partial[z][i][j] and gemm_splitk_reduce_kernel adds Σ_z partial (z in order) into C.
// ==============================================================================================================

struct GemmArgs {
  int64_t M = 0;            // rows of C (i)
  int N = 0;                // columns of C (j)
  int64_t K = 0;            // reduction length (p)
  const float* A = nullptr;
  int64_t sai = 0, sap = 0;
  const float* B = nullptr;
  int64_t sbp = 0, sbj = 0;
  float* C = nullptr;
  int64_t ldc = 0;
  const float* bias = nullptr;  // per column j, may be null
  bool accumulate = false;
  int64_t k_chunk = 0;          // reduction elements per split (blockIdx.z)
  float* partial = nullptr;     // split-K output (null: write C)
};

// The epilogue of both GEMM kernels for one output element (i, j): the split's raw sum to its partial slice, or
// C[i·ldc + j] = (accumulate ? C : 0) + sum (+ bias[j]).
__device__ __forceinline__ void gemm_store(const GemmArgs& g, int64_t i, int j, float sum) {
  if (g.partial != nullptr) {
    g.partial[static_cast<int64_t>(blockIdx.z) * g.M * g.N + i * g.N + j] = sum;
    return;
  }
  if (g.bias != nullptr) sum += g.bias[j];
  float* c = g.C + i * g.ldc + j;
  *c = g.accumulate ? *c + sum : sum;
}

template <int BM, int BN, int BK, int TM, int TN, bool A_P_FAST, bool B_J_FAST>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2) gemm_kernel(GemmArgs g) {
  constexpr int NT = (BM / TM) * (BN / TN);  // threads per block
  constexpr int RS = BM / TM;                // row stride of a thread's micro-tile
  constexpr int CS = BN / TN;                // column stride
  __shared__ float As[BK][BM + 1];           // +1: fewer bank conflicts on the transposing stores
  __shared__ float Bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % CS;
  const int ty = tid / CS;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int j0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t p_begin = static_cast<int64_t>(blockIdx.z) * g.k_chunk;
  const int64_t p_end = p_begin + g.k_chunk < g.K ? p_begin + g.k_chunk : g.K;

  float acc[TM][TN];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int n = 0; n < TN; ++n) acc[m][n] = 0.0f;

  for (int64_t p0 = p_begin; p0 < p_end; p0 += BK) {
    for (int e = tid; e < BK * BM; e += NT) {
      const int pp = A_P_FAST ? e % BK : e / BM;
      const int ii = A_P_FAST ? e / BK : e % BM;
      const int64_t i = i0 + ii, p = p0 + pp;
      As[pp][ii] = (i < g.M && p < p_end) ? g.A[i * g.sai + p * g.sap] : 0.0f;
    }
    for (int e = tid; e < BK * BN; e += NT) {
      const int pp = B_J_FAST ? e / BN : e % BK;
      const int jj = B_J_FAST ? e % BN : e / BK;
      const int64_t p = p0 + pp;
      const int j = j0 + jj;
      Bs[pp][jj] = (j < g.N && p < p_end) ? g.B[p * g.sbp + static_cast<int64_t>(j) * g.sbj] : 0.0f;
    }
    __syncthreads();
    // The last stage of a split is usually partial (K = H = D+1 is never a multiple of BK): its zero-padded tail
    // would only add 0·0, so it is skipped (same sums, bit for bit; ~30% fewer FMAs for K = 33). The condition is
    // uniform across the block, so there is no divergence.
    const int kmax = p_end - p0 < BK ? static_cast<int>(p_end - p0) : BK;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      if (kk < kmax) {
        float a[TM], b[TN];
#pragma unroll
        for (int m = 0; m < TM; ++m) a[m] = As[kk][ty + m * RS];
#pragma unroll
        for (int n = 0; n < TN; ++n) b[n] = Bs[kk][tx + n * CS];
#pragma unroll
        for (int m = 0; m < TM; ++m)
#pragma unroll
          for (int n = 0; n < TN; ++n) acc[m][n] += a[m] * b[n];
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int64_t i = i0 + ty + m * RS;
    if (i >= g.M) continue;
#pragma unroll
    for (int n = 0; n < TN; ++n) {
      const int j = j0 + tx + n * CS;
      if (j >= g.N) continue;
      gemm_store(g, i, j, acc[m][n]);
    }
  }
}

// C[i·ldc + j] += Σ_{z = 0..splits−1} partial[z][i][j], one thread per (i, j), z in order.
__global__ void gemm_splitk_reduce_kernel(float* C, int64_t ldc, const float* partial, int64_t M, int N, int splits) {
  WSF_GRID_LOOP(e, M * N) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += partial[static_cast<int64_t>(z) * M * N + e];
    const int64_t i = e / N;
    const int j = static_cast<int>(e % N);
    C[i * ldc + j] += s;
  }
}

// GEMM, second version (the default; WSF_GEMM=v1 selects gemm_kernel above, for side-by-side timing). Same sums
// in the same p order per output element as gemm_kernel — results are bitwise identical — with three changes that
// target the shapes of this engine (a long rows dimension, widths 2…260):
//   - register prefetch: each thread loads its share of the next BK stage from global memory into registers
//     before it multiplies the current stage out of shared memory, so the global latency overlaps the FMAs;
//   - contiguous TM×TN micro-tiles read from shared memory as float4 (TM, TN multiples of 4 where possible): 3
//     shared loads per 32 FMAs instead of 8 per 16;
//   - BK = 32 (fewer barriers per output) and BM = 128 rows per block for the long dimension.
// r[0..R) = src[0..R) from shared memory, as float4 loads when R is a multiple of 4 (src then 16-byte aligned).
template <int R>
__device__ __forceinline__ void shared_run(float (&r)[R], const float* src) {
  if constexpr (R % 4 == 0) {
#pragma unroll
    for (int q = 0; q < R / 4; ++q) {
      const float4 v = *reinterpret_cast<const float4*>(src + 4 * q);
      r[4 * q] = v.x;
      r[4 * q + 1] = v.y;
      r[4 * q + 2] = v.z;
      r[4 * q + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int m = 0; m < R; ++m) r[m] = src[m];
  }
}

template <int BM, int BN, int BK, int TM, int TN, bool A_P_FAST, bool B_J_FAST>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2) gemm2_kernel(GemmArgs g) {
  constexpr int NT = (BM / TM) * (BN / TN);  // threads per block
  constexpr int CS = BN / TN;                // threads across j
  constexpr int LA = BK * BM / NT;           // A elements staged per thread and stage
  constexpr int LB = BK * BN / NT;           // B elements staged per thread and stage
  static_assert((BK * BM) % NT == 0 && (BK * BN) % NT == 0, "tile not divisible by the thread count");
  static_assert(BM % 4 == 0 && BN % 4 == 0, "rows of the shared tiles must stay 16-byte aligned");
  __shared__ __align__(16) float As[BK][BM + 4];  // +4: keeps float4 alignment, fewer conflicts on the stores
  __shared__ __align__(16) float Bs[BK][BN + 4];
  const int tid = threadIdx.x;
  const int tx = tid % CS;
  const int ty = tid / CS;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int j0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t p_begin = static_cast<int64_t>(blockIdx.z) * g.k_chunk;
  const int64_t p_end = p_begin + g.k_chunk < g.K ? p_begin + g.k_chunk : g.K;

  // Each thread's share of a stage is fixed for the whole kernel: element e = tid + l·NT of a tile has, because NT is
  // a multiple of BK, BM and BN, one index fixed by tid and the other advancing by NT/BK (NT/BM, NT/BN) per l. So a
  // thread's loads of one operand are base + l·step from a single pointer that moves by BK along p each stage, with
  // a count of valid l instead of a bounds test per element: few live registers (the kernel spilled 288-476 bytes
  // per thread when every element's 64-bit address was computed on its own), the same elements in the same places.
  static_assert(NT % BK == 0 && NT % BM == 0 && NT % BN == 0, "staging assumes NT is a multiple of BK, BM and BN");
  constexpr int SA = A_P_FAST ? NT / BK : NT / BM;  // step of the moving index (rows i, or p) per l
  constexpr int SB = B_J_FAST ? NT / BN : NT / BK;  // step of the moving index (p, or columns j) per l
  // A: fixed index and the moving one's first value; A_P_FAST: p fixed (tid % BK), rows move; else i fixed.
  const int a_fix = A_P_FAST ? tid % BK : tid % BM;
  const int a_mov = A_P_FAST ? tid / BK : tid / BM;
  const int64_t a_i = i0 + (A_P_FAST ? a_mov : a_fix);  // row of l = 0
  const int a_p = A_P_FAST ? a_fix : a_mov;             // p offset within a stage of l = 0
  const int64_t a_step = A_P_FAST ? SA * g.sai : SA * g.sap;
  const float* a_ptr = g.A + (a_i < g.M ? a_i : 0) * g.sai + (p_begin + a_p) * g.sap;
  // B: B_J_FAST: p moves (tid / BN), j fixed (tid % BN); else p fixed (tid % BK), columns move.
  const int b_fix = B_J_FAST ? tid % BN : tid % BK;
  const int b_mov = B_J_FAST ? tid / BN : tid / BK;
  const int b_j = j0 + (B_J_FAST ? b_fix : b_mov);  // column of l = 0
  const int b_p = B_J_FAST ? b_mov : b_fix;
  const int64_t b_step = B_J_FAST ? SB * g.sbp : SB * g.sbj;
  const float* b_ptr = g.B + (p_begin + b_p) * g.sbp + static_cast<int64_t>(b_j < g.N ? b_j : 0) * g.sbj;
  // Valid l of the index that does not depend on the stage: rows for A_P_FAST, columns for !B_J_FAST.
  const int64_t a_rows = a_i < g.M ? (g.M - a_i + SA - 1) / SA : 0;
  const int a_rows_ok = A_P_FAST ? (a_rows < LA ? static_cast<int>(a_rows) : LA) : (a_i < g.M ? LA : 0);
  const int b_cols = b_j < g.N ? (g.N - b_j + SB - 1) / SB : 0;
  const int b_cols_ok = B_J_FAST ? (b_j < g.N ? LB : 0) : (b_cols < LB ? b_cols : LB);

  float ra[LA], rb[LB];
  // Stage loads into registers (out-of-range elements as 0), coalesced as in gemm_kernel. P0: the stage's first p.
#define WSF_GEMM2_LOAD(P0)                                                                                      \
  do {                                                                                                          \
    const int64_t left = p_end - (P0);                                                                          \
    const int a_pn = a_p < left ? static_cast<int>((left - a_p + SA - 1) / SA) : 0; /* valid l along p */        \
    const int b_pn = b_p < left ? static_cast<int>((left - b_p + SB - 1) / SB) : 0;                             \
    const int a_ok = A_P_FAST ? (a_pn > 0 ? a_rows_ok : 0) : (a_pn < a_rows_ok ? a_pn : a_rows_ok);            \
    const int b_ok = B_J_FAST ? (b_pn < b_cols_ok ? b_pn : b_cols_ok) : (b_pn > 0 ? b_cols_ok : 0);             \
    _Pragma("unroll") for (int l = 0; l < LA; ++l) ra[l] = l < a_ok ? a_ptr[l * a_step] : 0.0f;                \
    _Pragma("unroll") for (int l = 0; l < LB; ++l) rb[l] = l < b_ok ? b_ptr[l * b_step] : 0.0f;                \
  } while (0)

  float acc[TM][TN];
#pragma unroll
  for (int m = 0; m < TM; ++m)
#pragma unroll
    for (int n = 0; n < TN; ++n) acc[m][n] = 0.0f;

  if (p_begin < p_end) WSF_GEMM2_LOAD(p_begin);
  for (int64_t p0 = p_begin; p0 < p_end; p0 += BK) {
#pragma unroll
    for (int l = 0; l < LA; ++l) {
      const int e = tid + l * NT;
      As[A_P_FAST ? e % BK : e / BM][A_P_FAST ? e / BK : e % BM] = ra[l];
    }
#pragma unroll
    for (int l = 0; l < LB; ++l) {
      const int e = tid + l * NT;
      Bs[B_J_FAST ? e / BN : e % BK][B_J_FAST ? e % BN : e / BK] = rb[l];
    }
    __syncthreads();
    if (p0 + BK < p_end) {  // in flight while this stage is multiplied out
      a_ptr += BK * g.sap;
      b_ptr += BK * g.sbp;
      WSF_GEMM2_LOAD(p0 + BK);
    }
    // As gemm_kernel: the zero-padded tail of a split's last stage is skipped (uniform across the block).
    const int kmax = p_end - p0 < BK ? static_cast<int>(p_end - p0) : BK;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      if (kk < kmax) {
        float a[TM], b[TN];
        shared_run<TM>(a, &As[kk][ty * TM]);
        shared_run<TN>(b, &Bs[kk][tx * TN]);
#pragma unroll
        for (int m = 0; m < TM; ++m)
#pragma unroll
          for (int n = 0; n < TN; ++n) acc[m][n] += a[m] * b[n];
      }
    }
    __syncthreads();
  }
#undef WSF_GEMM2_LOAD

#pragma unroll
  for (int m = 0; m < TM; ++m) {
    const int64_t i = i0 + ty * TM + m;
    if (i >= g.M) continue;
#pragma unroll
    for (int n = 0; n < TN; ++n) {
      const int j = j0 + tx * TN + n;
      if (j >= g.N) continue;
      gemm_store(g, i, j, acc[m][n]);
    }
  }
}

// GEMM, tensor-core version (WSF_GEMM=tc, or tf32; opt-in until it has been timed and checked on a GPU). The
// same tiles and BK = 32 stages as gemm2_kernel (without its register prefetch), the products on tensor cores through
// nvcuda::wmma (m16n16k8, TF32 operands, FP32 accumulation): each warp owns a WM×WN sub-tile of the block's BM×BN
// output, FM×FN fragments of 16×16. The staged tiles are already in wmma's layouts: As[p][i] is A's tile in
// column-major order, Bs[p][j] B's in row-major order (ldm BM+4 / BN+4: multiples of 4, every fragment 32-byte
// aligned).
//   SPLIT (tc, the default of this version): 3×TF32 — each operand x = hi + lo with hi = tf32(x), lo = tf32(x − hi),
//     and acc += lo_a·hi_b + hi_a·lo_b + hi_a·hi_b (small terms first; lo·lo dropped): about FP32 accuracy (the
//     parity tolerances of the FP32 kernels hold) at three tensor-core products per step.
//   !SPLIT (tf32): one TF32 product per step — 10 mantissa bits per operand, ~1e-3 relative error per sum.
// Deterministic (a fixed order per kernel), but not bitwise equal to gemm_kernel/gemm2_kernel. The accumulators go
// through shared memory (reusing the stage buffers) to the same epilogue as the other versions (gemm_store:
// split-K partials, bias, accumulate, bounds).
#if defined(WSF_CUDA_EMU) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
// A freshly loaded operand fragment x → hi = tf32(x) in place, and with SPLIT lo = tf32(x − hi).
template <bool SPLIT, class Frag>
__device__ __forceinline__ void tf32_split(Frag& hi, Frag& lo) {
#pragma unroll
  for (int t = 0; t < hi.num_elements; ++t) {
    const float v = hi.x[t];
    hi.x[t] = nvcuda::wmma::__float_to_tf32(v);
    if (SPLIT) lo.x[t] = nvcuda::wmma::__float_to_tf32(v - hi.x[t]);
  }
}
#endif

template <int BM, int BN, int WM, int WN, bool SPLIT, bool A_P_FAST, bool B_J_FAST>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, 2) gemm_tc_kernel(GemmArgs g) {
#if defined(WSF_CUDA_EMU) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
  namespace wmma = nvcuda::wmma;
  constexpr int BK = 32;
  constexpr int NT = (BM / WM) * (BN / WN) * 32;  // threads per block
  constexpr int FM = WM / 16, FN = WN / 16;       // fragments per warp
  constexpr int LDA = BM + 4, LDB = BN + 4, LDC = BN + 4;
  constexpr int LA = BK * BM / NT;                // A elements staged per thread and stage
  constexpr int LB = BK * BN / NT;
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BM % WM == 0 && BN % WN == 0, "warp tiles of whole fragments");
  static_assert((BK * BM) % NT == 0 && (BK * BN) % NT == 0, "tile not divisible by the thread count");
  constexpr int kStage = BK * LDA + BK * LDB;
  constexpr int kOut = BM * LDC;
  __shared__ __align__(32) float smem[kStage > kOut ? kStage : kOut];
  float* const As = smem;             // As[p·LDA + i] = A(i0 + i, p0 + p)
  float* const Bs = smem + BK * LDA;  // Bs[p·LDB + j] = B(p0 + p, j0 + j); BK·LDA·4 bytes is a multiple of 32
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int wm0 = (warp / (BN / WN)) * WM;
  const int wn0 = (warp % (BN / WN)) * WN;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int j0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t p_begin = static_cast<int64_t>(blockIdx.z) * g.k_chunk;
  const int64_t p_end = p_begin + g.k_chunk < g.K ? p_begin + g.k_chunk : g.K;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[FM][FN];
#pragma unroll
  for (int m = 0; m < FM; ++m)
#pragma unroll
    for (int n = 0; n < FN; ++n) wmma::fill_fragment(acc[m][n], 0.0f);

  // Each thread's share of a stage: element e = tid + l·NT of the A tile (p fastest or i fastest, coalesced as in
  // gemm_kernel) and of the B tile. Loaded straight into shared memory (no register prefetch: registers go to the
  // fragments, and other resident blocks hide the global latency).
  for (int64_t p0 = p_begin; p0 < p_end; p0 += BK) {
#pragma unroll 4
    for (int l = 0; l < LA; ++l) {
      const int e = tid + l * NT;
      const int pp = A_P_FAST ? e % BK : e / BM;
      const int ii = A_P_FAST ? e / BK : e % BM;
      const int64_t i = i0 + ii, p = p0 + pp;
      As[pp * LDA + ii] = (i < g.M && p < p_end) ? g.A[i * g.sai + p * g.sap] : 0.0f;
    }
#pragma unroll 4
    for (int l = 0; l < LB; ++l) {
      const int e = tid + l * NT;
      const int pp = B_J_FAST ? e / BN : e % BK;
      const int jj = B_J_FAST ? e % BN : e / BK;
      const int64_t p = p0 + pp;
      const int j = j0 + jj;
      Bs[pp * LDB + jj] = (j < g.N && p < p_end) ? g.B[p * g.sbp + static_cast<int64_t>(j) * g.sbj] : 0.0f;
    }
    __syncthreads();
    // k-steps of 8 past the split's end hold only zeros: skipped (uniform across the block).
    const int kmax = p_end - p0 < BK ? static_cast<int>(p_end - p0) : BK;
#pragma unroll
    for (int k0 = 0; k0 < BK; k0 += 8) {
      if (k0 < kmax) {
        wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> a_hi[FM], a_lo[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b_hi[FN], b_lo[FN];
#pragma unroll
        for (int m = 0; m < FM; ++m) {
          wmma::load_matrix_sync(a_hi[m], As + k0 * LDA + wm0 + 16 * m, LDA);
          tf32_split<SPLIT>(a_hi[m], a_lo[m]);
        }
#pragma unroll
        for (int n = 0; n < FN; ++n) {
          wmma::load_matrix_sync(b_hi[n], Bs + k0 * LDB + wn0 + 16 * n, LDB);
          tf32_split<SPLIT>(b_hi[n], b_lo[n]);
        }
#pragma unroll
        for (int m = 0; m < FM; ++m)
#pragma unroll
          for (int n = 0; n < FN; ++n) {
            if (SPLIT) {
              wmma::mma_sync(acc[m][n], a_lo[m], b_hi[n], acc[m][n]);
              wmma::mma_sync(acc[m][n], a_hi[m], b_lo[n], acc[m][n]);
            }
            wmma::mma_sync(acc[m][n], a_hi[m], b_hi[n], acc[m][n]);
          }
      }
    }
    __syncthreads();
  }

  // The output tile through shared memory (the stage buffers are free after the loop's last barrier).
#pragma unroll
  for (int m = 0; m < FM; ++m)
#pragma unroll
    for (int n = 0; n < FN; ++n)
      wmma::store_matrix_sync(smem + (wm0 + 16 * m) * LDC + wn0 + 16 * n, acc[m][n], LDC, wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < BM * BN; e += NT) {
    const int ii = e / BN, jj = e % BN;
    const int64_t i = i0 + ii;
    const int j = j0 + jj;
    if (i < g.M && j < g.N) gemm_store(g, i, j, smem[ii * LDC + jj]);
  }
#else
  __trap();  // never launched: the host picks this version only on devices of compute capability 8.0 and up
#endif
}

// Which GEMM kernel the linear ops launch, from WSF_GEMM (read once): v1 → gemm_kernel, v2 or unset →
// gemm2_kernel (the default), tc → gemm_tc_kernel with 3×TF32, tf32 → gemm_tc_kernel with plain TF32. The
// tensor-core versions need compute capability 8.0 (TF32 wmma); on older devices they fall back to v2.
int gemm_version() {
  static const int v = [] {
    const char* e = std::getenv("WSF_GEMM");
    const std::string s = e != nullptr ? e : "";
    const int want = s == "v1" ? 1 : s == "tc" ? 3 : s == "tf32" ? 4 : 2;
#ifndef WSF_CUDA_EMU
    if (want >= 3) {
      int dev = 0, major = 0;
      if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major < 8) {
        cudaGetLastError();
        return 2;
      }
    }
#endif
    return want;
  }();
  return v;
}

// Rows per split of the weight gradient's split-K at least (default 512; WSF_SPLITK_ROWS, read once, a multiple of
// 16 from 16 to 65536, for side-by-side timing: the 2026-12-04 profile had these GEMMs at ~85 µs per call with
// ~200 blocks each, which suggests latency-bound blocks walking 16 stages). Results depend on it (the split
// boundaries change the summation order), deterministically.
int64_t splitk_min_rows() {
  static const int64_t r = [] {
    const char* e = std::getenv("WSF_SPLITK_ROWS");
    const long v = e != nullptr ? std::strtol(e, nullptr, 10) : 512;
    return (v >= 16 && v <= 65536 && v % 16 == 0) ? static_cast<int64_t>(v) : int64_t(512);
  }();
  return r;
}

// gemm_tc_kernel launches: warp tiles of 32 rows; 16- or 32-column warp tiles following the output width N.
template <int BM, bool SPLIT, bool A_P_FAST, bool B_J_FAST>
void launch_gemm_tc(const GemmArgs& g, int splits, cudaStream_t s) {
  const dim3 grid(ceil_div(g.M, BM), 1, splits);
  if (g.N <= 16) {
    launch_kernel(gemm_tc_kernel<BM, 16, 32, 16, SPLIT, A_P_FAST, B_J_FAST>, dim3(grid.x, ceil_div(g.N, 16), splits),
                  dim3((BM / 32) * 32), 0, s, g);
  } else if (g.N <= 32) {
    launch_kernel(gemm_tc_kernel<BM, 32, 32, 32, SPLIT, A_P_FAST, B_J_FAST>, dim3(grid.x, ceil_div(g.N, 32), splits),
                  dim3((BM / 32) * 32), 0, s, g);
  } else {
    launch_kernel(gemm_tc_kernel<BM, 64, 32, 32, SPLIT, A_P_FAST, B_J_FAST>, dim3(grid.x, ceil_div(g.N, 64), splits),
                  dim3((BM / 32) * 2 * 32), 0, s, g);
  }
}

// gemm2_kernel launches: the column tile follows the output width N, the row tile is chosen by the caller.
template <int BM, int BN, int TM, int TN, bool A_P_FAST, bool B_J_FAST>
void launch_gemm2_tile(const GemmArgs& g, int splits, cudaStream_t s) {
  launch_kernel(gemm2_kernel<BM, BN, 32, TM, TN, A_P_FAST, B_J_FAST>, dim3(ceil_div(g.M, BM), ceil_div(g.N, BN), splits),
                dim3((BM / TM) * (BN / TN)), 0, s, g);
}
template <int BM, int TM, bool A_P_FAST, bool B_J_FAST>
void launch_gemm2(const GemmArgs& g, int splits, cudaStream_t s) {
  if (g.N <= 16) {
    launch_gemm2_tile<BM, 16, TM, 1, A_P_FAST, B_J_FAST>(g, splits, s);
  } else if (g.N <= 32) {
    launch_gemm2_tile<BM, 32, TM, 2, A_P_FAST, B_J_FAST>(g, splits, s);
  } else {
    launch_gemm2_tile<BM, 64, TM, 4, A_P_FAST, B_J_FAST>(g, splits, s);
  }
}

// Launches the GEMM with a tile shape suited to the output width N (all variants compute the same sums in the
// same p order; only the thread↔output assignment differs).
template <bool A_P_FAST, bool B_J_FAST>
void launch_gemm(const GemmArgs& g, int splits, cudaStream_t s) {
  const int version = gemm_version();
  if (version >= 3) {
    // Row tiles as gemm2's (so gemm_tiles and the split-K sizes are the same for both).
    if (g.M <= 64) {
      version == 3 ? launch_gemm_tc<64, true, A_P_FAST, B_J_FAST>(g, splits, s) : launch_gemm_tc<64, false, A_P_FAST, B_J_FAST>(g, splits, s);
    } else {
      version == 3 ? launch_gemm_tc<128, true, A_P_FAST, B_J_FAST>(g, splits, s) : launch_gemm_tc<128, false, A_P_FAST, B_J_FAST>(g, splits, s);
    }
    return;
  }
  if (version == 2) {
    // 128 rows per block for the long dimension; 64 when the output has few rows (the weight gradient's M = out width).
    if (g.M <= 64) {
      launch_gemm2<64, 4, A_P_FAST, B_J_FAST>(g, splits, s);
    } else {
      launch_gemm2<128, 8, A_P_FAST, B_J_FAST>(g, splits, s);
    }
    return;
  }
  constexpr int BK = 16;
  if (g.N <= 16) {
    constexpr int BM = 128, BN = 16, TM = 8, TN = 1;
    const dim3 grid(ceil_div(g.M, BM), ceil_div(g.N, BN), splits);
    launch_kernel(gemm_kernel<BM, BN, BK, TM, TN, A_P_FAST, B_J_FAST>, grid, dim3((BM / TM) * (BN / TN)), 0, s, g);
  } else if (g.N <= 32) {
    constexpr int BM = 64, BN = 32, TM = 4, TN = 2;
    const dim3 grid(ceil_div(g.M, BM), ceil_div(g.N, BN), splits);
    launch_kernel(gemm_kernel<BM, BN, BK, TM, TN, A_P_FAST, B_J_FAST>, grid, dim3((BM / TM) * (BN / TN)), 0, s, g);
  } else {
    constexpr int BM = 64, BN = 64, TM = 4, TN = 4;
    const dim3 grid(ceil_div(g.M, BM), ceil_div(g.N, BN), splits);
    launch_kernel(gemm_kernel<BM, BN, BK, TM, TN, A_P_FAST, B_J_FAST>, grid, dim3((BM / TM) * (BN / TN)), 0, s, g);
  }
}

// Output tile count of launch_gemm's choice for an M×N output (for the split-K heuristic).
int64_t gemm_tiles(int64_t M, int N) {
  const int bn = N <= 16 ? 16 : (N <= 32 ? 32 : 64);
  const int bm = gemm_version() >= 2 ? (M <= 64 ? 64 : 128) : (N <= 16 ? 128 : 64);
  return ((M + bm - 1) / bm) * ((N + bn - 1) / bn);
}

// ==============================================================================================================
// Column sums (deterministic): out_xy[c] += Σ_r X[r·ldx + c]·Y[r·ldy + c] and/or out_x[c] += Σ_r X[r·ldx + c].
//
// Stage 1: block (32 columns × 8 row lanes) per (column tile, row chunk). Thread (tx, ty) sums rows
// r0+ty, r0+ty+8, … of its column in order; the 8 partial sums are then added in ty order by ty == 0 and stored
// as partial[chunk][2][C]. Stage 2: one thread per column adds the chunks in chunk order. The chunk size depends
// on `rows` only.
// ==============================================================================================================

struct ColChunks {
  int64_t chunk_rows;
  int chunks;
};
inline ColChunks col_chunks(int64_t rows) {
  const int64_t chunk_rows = std::max<int64_t>(256, (rows + 1023) / 1024);
  return {chunk_rows, static_cast<int>((rows + chunk_rows - 1) / chunk_rows)};
}

__global__ void col_sums_partial_kernel(float* partial, const float* X, int64_t ldx, const float* Y, int64_t ldy,
                                        int64_t rows, int C, int64_t chunk_rows, bool want_xy, bool want_x) {
  __shared__ float sxy[8][33];
  __shared__ float sx[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = static_cast<int>(blockIdx.x) * 32 + tx;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  float axy = 0.0f, ax = 0.0f;
  if (c < C) {
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      const float x = X[r * ldx + c];
      if (want_xy) axy += x * Y[r * ldy + c];
      ax += x;
    }
  }
  sxy[ty][tx] = axy;
  sx[ty][tx] = ax;
  __syncthreads();
  if (ty == 0 && c < C) {
    float txy = 0.0f, tx_ = 0.0f;
    for (int y = 0; y < 8; ++y) {
      txy += sxy[y][tx];
      tx_ += sx[y][tx];
    }
    float* out = partial + static_cast<int64_t>(blockIdx.y) * 2 * C;
    if (want_xy) out[c] = txy;
    if (want_x) out[C + c] = tx_;
  }
}

__global__ void col_sums_final_kernel(float* out_xy, float* out_x, const float* partial, int C, int chunks) {
  const int c = static_cast<int>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sxy = 0.0f, sx = 0.0f;
  for (int z = 0; z < chunks; ++z) {
    if (out_xy != nullptr) sxy += partial[static_cast<int64_t>(z) * 2 * C + c];
    if (out_x != nullptr) sx += partial[static_cast<int64_t>(z) * 2 * C + C + c];
  }
  if (out_xy != nullptr) out_xy[c] += sxy;
  if (out_x != nullptr) out_x[c] += sx;
}

// ==============================================================================================================
// LayerNorm over rows of C (eps 1e-5, biased variance). One warp per row, 8 rows per block. Lane l handles
// columns l, l+32, …; the row is read three times (mean, variance, normalise; it stays in L1), and warp_sum's
// fixed butterfly gives every lane the same totals. A warp whose row is out of range returns as a whole, so the
// full-mask shuffles always see 32 active lanes.
// ==============================================================================================================

__global__ void layernorm_forward_kernel(float* y, float* xhat, float* rstd, const float* x, const float* g,
                                         const float* b, int64_t rows, int C) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* xr = x + r * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += xr[c];
  const float mean = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = xr[c] - mean;
    v += d * d;
  }
  const float var = warp_sum(v) / static_cast<float>(C);
  const float rs = 1.0f / sqrtf(var + 1e-5f);
  if (lane == 0) rstd[r] = rs;
  for (int c = lane; c < C; c += 32) {
    const float h = (xr[c] - mean) * rs;
    xhat[r * C + c] = h;
    y[r * C + c] = h * g[c] + b[c];
  }
}

// dx (+)= rstd·(dy·g − mean(dy·g) − x̂·mean(dy·g·x̂)), one warp per row as in the forward. dx may alias dy: each
// lane reads dy[c] before writing dx[c] for the same c, after both row means are complete.
__global__ void layernorm_backward_kernel(float* dx, const float* dy, const float* xhat, const float* rstd,
                                          const float* g, int64_t rows, int C, bool acc) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const float* dyr = dy + r * C;
  const float* h = xhat + r * C;
  float m1 = 0.0f, m2 = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = dyr[c] * g[c];
    m1 += d;
    m2 += d * h[c];
  }
  m1 = warp_sum(m1) / static_cast<float>(C);
  m2 = warp_sum(m2) / static_cast<float>(C);
  const float rs = rstd[r];
  float* dxr = dx + r * C;
  for (int c = lane; c < C; c += 32) {
    const float v = rs * (dyr[c] * g[c] - m1 - h[c] * m2);
    dxr[c] = acc ? dxr[c] + v : v;
  }
}

// ==============================================================================================================
// CSR row sums for edge_combine_bwd: dS[u][c] = Σ_{k∈row u} dz[k][c], dT[u][c] = Σ_{k∈row u} dz[rev k][c]
// (the column sum of node u, as a row sum over rev). One warp per node u, lanes over c; pairs in CSR order.
// ==============================================================================================================

__global__ void edge_combine_row_sums_kernel(float* dS, float* dT, const float* dz, const int32_t* row_ptr,
                                             const int32_t* rev, int64_t N, int D) {
  const int64_t u = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (u >= N) return;
  const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
  for (int c = lane; c < D; c += 32) {
    float s = 0.0f, t = 0.0f;
    for (int32_t k = k0; k < k1; ++k) {
      s += dz[static_cast<int64_t>(k) * D + c];
      t += dz[static_cast<int64_t>(rev[k]) * D + c];
    }
    dS[u * D + c] = s;
    dT[u * D + c] = t;
  }
}

// ==============================================================================================================
// Attention (METHOD.md §2.2 steps 3–6) over each row's pairs, per head h (Dh = D/heads channels):
//   q_k = q̃_u + a_k, key_k = k̃_v + b_k, val_k = ṽ_v ⊙ g_k + c_k, s_k = ⟨q_k, key_k⟩/√D, α = softmax_row(s),
//   o_u = Σ_k α_k val_k.
//
// Forward: one block of W warps (kAttnWarps = 4 unless WSF_ATTN_WARPS) per (row u = blockIdx.x, head h =
// blockIdx.y). The row's pairs are cut into W contiguous slices, one per warp. A warp walks its slice pair by pair: lanes hold channels
// lane + 32·j (j < CPL), the logit is a warp_sum, and an online softmax keeps (max m, denominator l, weighted
// value sum) in registers. The raw logit s_k is stored in alpha[k] on the way. After a barrier the slices are
// merged in warp order (M = max m_w, L = Σ l_w e^{m_w−M}, o = Σ o_w e^{m_w−M} / L), and every warp rewrites its
// own slice's alpha as e^{s_k−M}/L. Each output is written by one thread; the order of every sum is fixed.
// ==============================================================================================================

// Warps per (row, head) block: 4 by default; WSF_ATTN_WARPS=8 or 16 (read once, attention_warps()) gives long rows
// (MNIST's hidden neurons have ~800 pairs) more warps, for side-by-side timing on a GPU. The slices, and so the
// order of the merged sums, follow the warp count: results differ in rounding between settings, deterministically.
constexpr int kAttnWarps = 4;

template <int CPL, int W>
__global__ void __launch_bounds__(W * 32)
    attention_forward_kernel(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                             const int32_t* col, int32_t r0, int64_t k_base, int D, int heads, float inv_sqrt_d) {
  __shared__ float s_m[W], s_l[W];
  __shared__ float s_o[W][CPL * 32];
  const int64_t u = static_cast<int64_t>(r0) + blockIdx.x;
  const int h = blockIdx.y;
  const int Dh = D / heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
  const int32_t per = (k1 - k0 + W - 1) / W;
  const int32_t ks = k0 + warp * per;
  const int32_t ke = ks + per < k1 ? ks + per : k1;

  const float* qn = Pn + u * 3 * D + h * 3 * Dh;  // q̃_u of this head
  float q[CPL], acc[CPL];
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int c = lane + 32 * j;
    q[j] = c < Dh ? qn[c] : 0.0f;
    acc[j] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int32_t k = ks; k < ke; ++k) {
    const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
    const float* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
    const float* vn = kn + Dh;
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < Dh) part += (q[j] + pe[c]) * (kn[c] + pe[Dh + c]);
    }
    const float s = warp_sum(part) * inv_sqrt_d;
    if (lane == 0) alpha[static_cast<int64_t>(k) * heads + h] = s;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new);  // 0 on the first pair (m = −∞)
    const float p = expf(s - m_new);
    l = l * corr + p;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      const float val = c < Dh ? vn[c] * pe[3 * Dh + c] + pe[2 * Dh + c] : 0.0f;
      acc[j] = acc[j] * corr + p * val;
    }
    m = m_new;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < CPL; ++j) s_o[warp][lane + 32 * j] = acc[j];
  __syncthreads();

  // Merge the slices in warp order (every thread computes the same M and L). Only empty slices are skipped, so
  // a NaN logit propagates to the output as it does on the CPU.
  auto slice_empty = [&](int w) { return k0 + w * per >= k1; };
  float Mx = -INFINITY;
  for (int w = 0; w < W; ++w)
    if (!slice_empty(w)) Mx = fmaxf(Mx, s_m[w]);
  float L = 0.0f;
  for (int w = 0; w < W; ++w)
    if (!slice_empty(w)) L += s_l[w] * expf(s_m[w] - Mx);
  const bool empty = k1 == k0;  // no pairs: o = 0, as the CPU reference leaves it
  for (int c = threadIdx.x; c < Dh; c += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < W; ++w)
      if (!slice_empty(w)) v += s_o[w][c] * expf(s_m[w] - Mx);
    o[u * D + h * Dh + c] = empty ? 0.0f : v / L;
  }
  // Normalise this warp's slice of alpha (the raw logits were written by lane 0 before the barrier).
  for (int32_t k = ks + lane; k < ke; k += 32) {
    float* a = alpha + static_cast<int64_t>(k) * heads + h;
    *a = expf(*a - Mx) / L;
  }
}

// Backward pass 1, per (row u, head h), same block shape and slices as the forward:
//   dα_k = ⟨do_u, val_k⟩, Σ = Σ_k α_k dα_k, ds_k = α_k (dα_k − Σ)/√D,
//   dPe_k = [ds·key | ds·q | α·do | α·do⊙ṽ_v],  dq̃_u = Σ_k ds_k·key_k.
// Sub-pass A: each warp sums α·dα over its slice; the warp totals are added in warp order after a barrier.
// Sub-pass B: each warp recomputes dα_k (same arithmetic, same value), writes the pair gradients of its slice
// (each pair is owned by one warp, each element by one lane) and keeps dq̃ per lane; the warps' dq̃ partials are
// added in warp order after a barrier. Writes every element of dPe (all pairs of the row) and the q̃ block of dPn.
template <int CPL, int W>
__global__ void __launch_bounds__(W * 32)
    attention_backward_rows_kernel(float* dPn, float* dPe, float* colbuf, const float* dout, const float* alpha,
                                   const float* Pn, const float* Pe, const int32_t* row_ptr, const int32_t* col,
                                   int32_t r0, int64_t k_base, int D, int heads, float inv_sqrt_d) {
  __shared__ float s_sum[W];
  __shared__ float s_dq[W][CPL * 32];
  const int64_t u = static_cast<int64_t>(r0) + blockIdx.x;
  const int h = blockIdx.y;
  const int Dh = D / heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
  const int32_t per = (k1 - k0 + W - 1) / W;
  const int32_t ks = k0 + warp * per;
  const int32_t ke = ks + per < k1 ? ks + per : k1;

  const float* qn = Pn + u * 3 * D + h * 3 * Dh;
  const float* dou = dout + u * D + h * Dh;
  float q[CPL], dO[CPL], dq[CPL];
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int c = lane + 32 * j;
    q[j] = c < Dh ? qn[c] : 0.0f;
    dO[j] = c < Dh ? dou[c] : 0.0f;
    dq[j] = 0.0f;
  }

  // Sub-pass A: Σ α dα over the slice (identical in every lane).
  float sum = 0.0f;
  for (int32_t k = ks; k < ke; ++k) {
    const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
    const float* vn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + 2 * Dh;
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < Dh) part += dO[j] * (vn[c] * pe[3 * Dh + c] + pe[2 * Dh + c]);
    }
    sum += alpha[static_cast<int64_t>(k) * heads + h] * warp_sum(part);
  }
  if (lane == 0) s_sum[warp] = sum;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < W; ++w) total += s_sum[w];

  // Sub-pass B: pair gradients and the dq̃ partials.
  for (int32_t k = ks; k < ke; ++k) {
    const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
    const float* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
    const float* vn = kn + Dh;
    float part = 0.0f;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < Dh) part += dO[j] * (vn[c] * pe[3 * Dh + c] + pe[2 * Dh + c]);
    }
    const float da = warp_sum(part);
    const float a = alpha[static_cast<int64_t>(k) * heads + h];
    const float ds = a * (da - total) * inv_sqrt_d;  // ∂L/∂(q·key), the 1/√D folded in
    float* dpe = dPe + (k - k_base) * 4 * D + h * 4 * Dh;
    float* cb = colbuf != nullptr ? colbuf + static_cast<int64_t>(k) * 2 * D + h * 2 * Dh : nullptr;
#pragma unroll
    for (int j = 0; j < CPL; ++j) {
      const int c = lane + 32 * j;
      if (c < Dh) {
        const float qv = q[j] + pe[c];
        const float key = kn[c] + pe[Dh + c];
        const float dq_c = ds * key;
        const float dval = a * dO[j];
        const float dkey = ds * qv;
        dpe[c] = dq_c;              // da = dq
        dpe[Dh + c] = dkey;         // db = dkey
        dpe[2 * Dh + c] = dval;     // dc = dval
        dpe[3 * Dh + c] = dval * vn[c];  // dg = dval ⊙ ṽ_v
        if (cb != nullptr) {        // the column pass's operands (row-chunked backward)
          cb[c] = dkey;
          cb[Dh + c] = dval * pe[3 * Dh + c];
        }
        dq[j] += dq_c;
      }
    }
  }
#pragma unroll
  for (int j = 0; j < CPL; ++j) s_dq[warp][lane + 32 * j] = dq[j];
  __syncthreads();
  for (int c = threadIdx.x; c < Dh; c += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < W; ++w) v += s_dq[w][c];
    dPn[u * 3 * D + h * 3 * Dh + c] = v;
  }
}

// Backward pass 2, per column node v: dk̃_v = Σ_{pairs (u,v)} dkey, dṽ_v = Σ dval ⊙ g — the pairs (u,v) are
// rev of the pairs of row v, so this is a row sum in CSR order. One warp per node, lanes over the D channels of
// all heads (c → head c / Dh, channel c % Dh). Writes the k̃ and ṽ blocks of dPn (pass 1 wrote the q̃ blocks).
// Channel c (head c / Dh) of the column sums over the pairs rev[j], j in [ja, jb), in order: dk = Σ dkey,
// dv = Σ dval ⊙ g.
// Pe null: dPe is attention_bwd_rows' colbuf (per pair and head [dkey | dval ⊙ g]), summed as it is.
__device__ __forceinline__ void attention_col_sums(float& dk, float& dv, const float* dPe, const float* Pe,
                                                   const int32_t* rev, int32_t ja, int32_t jb, int D, int Dh, int c) {
  const int h = c / Dh, cc = c % Dh;
  dk = 0.0f;
  dv = 0.0f;
  if (Pe == nullptr) {
    for (int32_t j = ja; j < jb; ++j) {
      const int64_t base = static_cast<int64_t>(rev[j]) * 2 * D + h * 2 * Dh;  // pair (u, v)
      dk += dPe[base + cc];
      dv += dPe[base + Dh + cc];
    }
    return;
  }
  for (int32_t j = ja; j < jb; ++j) {
    const int64_t base = static_cast<int64_t>(rev[j]) * 4 * D + h * 4 * Dh;  // pair (u, v)
    dk += dPe[base + Dh + cc];
    dv += dPe[base + 2 * Dh + cc] * Pe[base + 3 * Dh + cc];
  }
}

__global__ void attention_backward_cols_kernel(float* dPn, const float* dPe, const float* Pe, const int32_t* row_ptr,
                                               const int32_t* rev, int64_t N, int D, int heads) {
  const int64_t v = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (v >= N) return;
  const int Dh = D / heads;
  const int32_t j0 = row_ptr[v], j1 = row_ptr[v + 1];
  for (int c = lane; c < D; c += 32) {
    const int h = c / Dh, cc = c % Dh;
    float dk, dv;
    attention_col_sums(dk, dv, dPe, Pe, rev, j0, j1, D, Dh, c);
    float* dn = dPn + v * 3 * D + h * 3 * Dh;
    dn[Dh + cc] = dk;
    dn[2 * Dh + cc] = dv;
  }
}

// Backward pass 2 with W warps per column node (WSF_ATTN_WARPS = 8 or 16, D ≤ 256): the node's pairs are cut into
// W contiguous slices, warp w sums its slice per channel into shared memory, and the slices are added in warp
// order. Same sums as attention_backward_cols_kernel, cut into W partial sums.
template <int W>
__global__ void __launch_bounds__(W * 32)
    attention_backward_cols_split_kernel(float* dPn, const float* dPe, const float* Pe, const int32_t* row_ptr,
                                         const int32_t* rev, int D, int heads) {
  __shared__ float s_dk[W][256], s_dv[W][256];
  const int64_t v = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int Dh = D / heads;
  const int32_t j0 = row_ptr[v], j1 = row_ptr[v + 1];
  const int32_t per = (j1 - j0 + W - 1) / W;
  const int32_t js = j0 + warp * per;
  const int32_t je = js + per < j1 ? js + per : j1;
  for (int c = lane; c < D; c += 32) {
    float dk, dv;  // in registers, stored once
    attention_col_sums(dk, dv, dPe, Pe, rev, js, je, D, Dh, c);
    s_dk[warp][c] = dk;
    s_dv[warp][c] = dv;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    const int h = c / Dh, cc = c % Dh;
    float dk = 0.0f, dv = 0.0f;
    for (int w = 0; w < W; ++w) {
      dk += s_dk[w][c];
      dv += s_dv[w][c];
    }
    float* dn = dPn + v * 3 * D + h * 3 * Dh;
    dn[Dh + cc] = dk;
    dn[2 * Dh + cc] = dv;
  }
}

// ==============================================================================================================
// Embedding-table gradient: dtable[t][c] += Σ_{r : idx[r] = t} dy[r·ld + c] — deterministic.
// Stage 1: block (32 columns × 8 row lanes) per (table row t = blockIdx.x, column tile, row chunk). The block
// scans its chunk's indices; thread (tx, ty) sums the matching rows r ≡ ty (mod 8) in order, and ty == 0 adds the
// 8 lane sums in ty order into partial[t][chunk][c]. Stage 2: one thread per (t, c) adds the chunks in order.
// The work is table_rows × rows index reads (the tables are small: ≤ ~1000 positional slots, 3–4 directions);
// the chunking depends on `rows` only.
// ==============================================================================================================

inline ColChunks embed_chunks(int64_t rows) {
  const int64_t chunk_rows = std::max<int64_t>(4096, (rows + 1023) / 1024);
  return {chunk_rows, static_cast<int>((rows + chunk_rows - 1) / chunk_rows)};
}

__global__ void embed_backward_partial_kernel(float* partial, const float* dy, int ld, const int32_t* idx,
                                              int64_t rows, int D, int chunks, int64_t chunk_rows) {
  __shared__ float sh[8][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int32_t t = static_cast<int32_t>(blockIdx.x);
  const int c = static_cast<int>(blockIdx.y) * 32 + tx;
  const int chunk = static_cast<int>(blockIdx.z);
  const int64_t r0 = static_cast<int64_t>(chunk) * chunk_rows;
  const int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  float s = 0.0f;
  for (int64_t r = r0 + ty; r < r1; r += 8) {
    if (idx[r] == t && c < D) s += dy[r * ld + c];
  }
  sh[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < D) {
    float v = 0.0f;
    for (int y = 0; y < 8; ++y) v += sh[y][tx];
    partial[(static_cast<int64_t>(t) * chunks + chunk) * D + c] = v;
  }
}

__global__ void embed_backward_final_kernel(float* dtable, const float* partial, int table_rows, int D, int chunks) {
  WSF_GRID_LOOP(e, static_cast<int64_t>(table_rows) * D) {
    const int64_t t = e / D;
    const int c = static_cast<int>(e % D);
    float s = 0.0f;
    for (int z = 0; z < chunks; ++z) s += partial[(t * chunks + z) * D + c];
    dtable[e] += s;
  }
}

// ==============================================================================================================
// Sum of squares in double (for the loss and the gradient norm), deterministic.
// Stage 1: a fixed grid (depends on n only) of 256-thread blocks; each thread sums its grid-stride elements in
// order, block_sum's fixed tree gives one double per block (and, for mse, d = scale·(a − b) is written on the
// way). Stage 2: one block adds the block sums (≤ 1024) with the same fixed tree.
// ==============================================================================================================

constexpr int kSumBlocksMax = 1024;
inline int sum_blocks(int64_t n) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(kSumBlocksMax, (n + 2047) / 2048)));
}

__global__ void sum_squares_partial_kernel(double* partial, float* d, const float* a, const float* b, int64_t n,
                                           float scale) {
  __shared__ double sh[32];
  double acc = 0.0;
  WSF_GRID_LOOP(i, n) {
    const float e = b != nullptr ? a[i] - b[i] : a[i];
    acc += static_cast<double>(e) * static_cast<double>(e);
    if (d != nullptr) d[i] = scale * e;
  }
  const double total = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_final_kernel(double* out, const double* partial, int count) {
  __shared__ double sh[32];
  const double v = static_cast<int>(threadIdx.x) < count ? partial[threadIdx.x] : 0.0;
  const double total = block_sum(v, sh);
  if (threadIdx.x == 0) out[0] = total;
}

// RtEngine::adam_step's host rule on the device: norm = √Σg², the step applies when the loss and the norm are
// finite (gate[1] = 1, else 0), and the gradient scale is clip/norm when clipping (clip > 0) and norm > clip, else 1
// (gate[0], rounded to float as the by-value kernel argument is).
__global__ void step_gate_kernel(float* gate, const double* sumsq, const float* loss, const double* consts) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const double norm = sqrt(sumsq[0]);
  const double clip = consts[7];
  const bool ok = isfinite(norm) && isfinite(loss[0]);
  const double scale = (clip > 0 && norm > clip) ? __ddiv_rn(clip, norm) : 1.0;
  gate[0] = static_cast<float>(scale);
  gate[1] = ok ? 1.0f : 0.0f;
}

}  // namespace

// ==============================================================================================================
// CudaOps: lifetime, memory, errors
// ==============================================================================================================

CudaOps::CudaOps(CudaOps&& o) noexcept
    : stream_(o.stream_), stream_failed_(o.stream_failed_), scratch_(o.scratch_), scratch_bytes_(o.scratch_bytes_),
      pending_(std::move(o.pending_)), prof_events_(std::move(o.prof_events_)), prof_names_(std::move(o.prof_names_)),
      prof_used_(o.prof_used_) {
  o.stream_ = nullptr;
  o.scratch_ = nullptr;
  o.scratch_bytes_ = 0;
  o.pending_ = Status::ok();
  o.prof_events_.clear();
  o.prof_names_.clear();
  o.prof_used_ = 0;
}

CudaOps& CudaOps::operator=(CudaOps&& o) noexcept {
  if (this != &o) {
    free_resources();
    stream_ = o.stream_;
    stream_failed_ = o.stream_failed_;
    scratch_ = o.scratch_;
    scratch_bytes_ = o.scratch_bytes_;
    pending_ = std::move(o.pending_);
    prof_events_ = std::move(o.prof_events_);
    prof_names_ = std::move(o.prof_names_);
    prof_used_ = o.prof_used_;
    o.stream_ = nullptr;
    o.scratch_ = nullptr;
    o.scratch_bytes_ = 0;
    o.pending_ = Status::ok();
    o.prof_events_.clear();
    o.prof_names_.clear();
    o.prof_used_ = 0;
  }
  return *this;
}

CudaOps::~CudaOps() { free_resources(); }

void CudaOps::free_resources() noexcept {
  if (stream_ != nullptr) {
    cudaStreamSynchronize(as_stream(stream_));
    cudaStreamDestroy(as_stream(stream_));
    cudaGetLastError();
    stream_ = nullptr;
  }
  if (scratch_ != nullptr) {
    (void)device_free(scratch_);
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  for (void* ev : prof_events_) cudaEventDestroy(static_cast<cudaEvent_t>(ev));
  prof_events_.clear();
  prof_names_.clear();
  prof_used_ = 0;
}

// A blocking stream (default flags): it synchronises with the legacy default stream, which device_malloc and
// device_free use for their bookkeeping copies, so allocation and release are ordered with our kernels.
void* CudaOps::stream() {
  if (stream_ == nullptr && !stream_failed_) {
    cudaStream_t s = nullptr;
    const cudaError_t err = cudaStreamCreate(&s);
    if (err != cudaSuccess) {
      stream_failed_ = true;
      record(cuda_status(err, "cudaStreamCreate"));
    } else {
      stream_ = s;
    }
  }
  return stream_;
}

void CudaOps::record(const Status& st) {
  if (!st.is_ok() && pending_.is_ok()) pending_ = st;
}

void CudaOps::launched(const char* op) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) record(cuda_status(err, (std::string(op) + " (kernel launch)").c_str()));
  mark(op);
}

// Profiling (device.h): an event after each op; settle_profile() charges each interval to the op that ends it.
void CudaOps::mark(const char* op) {
  if (!device_profile_enabled()) return;
  if (prof_used_ == prof_events_.size()) {
    cudaEvent_t ev = nullptr;
    if (cudaEventCreate(&ev) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    prof_events_.push_back(ev);
    prof_names_.push_back(nullptr);
  }
  cudaEventRecord(static_cast<cudaEvent_t>(prof_events_[prof_used_]), as_stream(stream()));
  prof_names_[prof_used_] = op;
  ++prof_used_;
}

void CudaOps::settle_profile() {
  if (prof_used_ == 0) return;
  for (size_t i = 1; i < prof_used_; ++i) {
    float ms = 0;
    if (cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(prof_events_[i - 1]), static_cast<cudaEvent_t>(prof_events_[i])) ==
        cudaSuccess) {
      device_profile_add(prof_names_[i], ms);
    }
  }
  cudaGetLastError();
  // The last event becomes the origin of the next interval.
  std::swap(prof_events_[0], prof_events_[prof_used_ - 1]);
  prof_names_[0] = nullptr;
  prof_used_ = 1;
}

Status CudaOps::check() {
  Status st = pending_;
  pending_ = Status::ok();
  const cudaError_t launch = cudaGetLastError();
  if (st.is_ok() && launch != cudaSuccess) st = cuda_status(launch, "kernel launch");
  if (capturing_) return st;  // a capturing stream cannot be synchronised; nothing has run yet
  if (stream_ != nullptr) {
    const cudaError_t err = cudaStreamSynchronize(as_stream(stream_));
    if (st.is_ok() && err != cudaSuccess) {
      st = cuda_status(err, "cudaStreamSynchronize (an earlier asynchronous kernel failed)");
    }
  }
  if (st.is_ok()) settle_profile();
  return st;
}

Status CudaOps::synchronize() { return check(); }

float* CudaOps::scratch(int64_t floats, const char* op) {
  const int64_t bytes = std::max<int64_t>(floats, 1) * static_cast<int64_t>(sizeof(float));
  if (bytes <= scratch_bytes_) return static_cast<float*>(scratch_);
  if (scratch_ != nullptr) {
    record(device_free(scratch_));  // cudaFree waits for the kernels still using it
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  const int64_t want = (bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20);  // whole MiB, fewer regrowths
  void* p = nullptr;
  const Status st = device_malloc(&p, static_cast<size_t>(want));
  if (!st.is_ok()) {
    record(Status(st.code(), std::string(op) + ": scratch allocation failed: " + st.message()));
    return nullptr;
  }
  scratch_ = p;
  scratch_bytes_ = want;
  return static_cast<float*>(scratch_);
}

Status CudaOps::alloc(float** p, int64_t n) {
  void* q = nullptr;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float);
  WSF_RETURN_IF_ERROR(device_malloc(&q, bytes));
  *p = static_cast<float*>(q);
  const cudaError_t err = cudaMemsetAsync(q, 0, bytes, as_stream(stream()));
  if (err != cudaSuccess) {
    (void)device_free(q);
    *p = nullptr;
    return cuda_status(err, "alloc: cudaMemsetAsync");
  }
  return Status::ok();
}

Status CudaOps::alloc_i32(int32_t** p, int64_t n) {
  void* q = nullptr;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(int32_t);
  WSF_RETURN_IF_ERROR(device_malloc(&q, bytes));
  *p = static_cast<int32_t*>(q);
  const cudaError_t err = cudaMemsetAsync(q, 0, bytes, as_stream(stream()));
  if (err != cudaSuccess) {
    (void)device_free(q);
    *p = nullptr;
    return cuda_status(err, "alloc_i32: cudaMemsetAsync");
  }
  return Status::ok();
}

void CudaOps::release(void* p) {
  if (p != nullptr) record(device_free(p));
}

void CudaOps::zero(float* p, int64_t n) {
  if (n <= 0) return;
  const cudaError_t err = cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(float), as_stream(stream()));
  if (err != cudaSuccess) record(cuda_status(err, "zero: cudaMemsetAsync"));
  mark("zero");
}

void CudaOps::copy(float* dst, const float* src, int64_t n) {
  if (n <= 0 || dst == src) return;
  const cudaError_t err =
      cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, as_stream(stream()));
  if (err != cudaSuccess) record(cuda_status(err, "copy: cudaMemcpyAsync"));
  mark("copy");
}

namespace {
// Copies on the op's stream and waits, so the host array may be reused or freed on return.
Status copy_sync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s, const char* what) {
  if (bytes == 0) return Status::ok();
  WSF_RETURN_IF_ERROR(cuda_status(cudaMemcpyAsync(dst, src, bytes, kind, s), what));
  return cuda_status(cudaStreamSynchronize(s), what);
}
}  // namespace

Status CudaOps::upload(float* dst, const float* src, int64_t n) {
  if (n <= 0) return Status::ok();
  const Status st = copy_sync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyHostToDevice,
                              as_stream(stream()), "upload (cudaMemcpy host→device)");
  mark("upload");
  return st;
}
Status CudaOps::download(float* dst, const float* src, int64_t n) {
  if (n <= 0) return Status::ok();
  const Status st = copy_sync(dst, src, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToHost,
                              as_stream(stream()), "download (cudaMemcpy device→host)");
  mark("download");
  return st;
}
Status CudaOps::upload_raw(float* dst, const float* src, int64_t n) { return upload(dst, src, n); }
Status CudaOps::download_raw(float* dst, const float* src, int64_t n) { return download(dst, src, n); }
Status CudaOps::upload_i32(int32_t* dst, const int32_t* src, int64_t n) {
  if (n <= 0) return Status::ok();
  return copy_sync(dst, src, static_cast<size_t>(n) * sizeof(int32_t), cudaMemcpyHostToDevice, as_stream(stream()),
                   "upload_i32 (cudaMemcpy host→device)");
}

// ==============================================================================================================
// dense layers
// ==============================================================================================================

void CudaOps::linear_fwd(float* y, const float* x, const float* W, const float* b, int64_t rows, int K, int N,
                         int ldw, bool acc) {
  if (rows <= 0 || N <= 0) return;
  // y (rows × N) = x (rows × K) · Wᵀ:  A(i=r, p=k) = x[r·K + k],  B(p=k, j=o) = W[o·ldw + k]
  GemmArgs g;
  g.M = rows;
  g.N = N;
  g.K = K;
  g.A = x;
  g.sai = K;
  g.sap = 1;
  g.B = W;
  g.sbp = 1;
  g.sbj = ldw;
  g.C = y;
  g.ldc = N;
  g.bias = b;
  g.accumulate = acc;
  g.k_chunk = std::max(K, 1);
  launch_gemm<true, false>(g, 1, as_stream(stream()));
  launched("linear_fwd");
}

void CudaOps::linear_bwd_data(float* dx, const float* dy, const float* W, int64_t rows, int K, int N, int ldw,
                              bool acc) {
  if (rows <= 0 || K <= 0) return;
  // dx (rows × K) = dy (rows × N) · W (N × K):  A(i=r, p=o) = dy[r·N + o],  B(p=o, j=k) = W[o·ldw + k]
  GemmArgs g;
  g.M = rows;
  g.N = K;
  g.K = N;
  g.A = dy;
  g.sai = N;
  g.sap = 1;
  g.B = W;
  g.sbp = ldw;
  g.sbj = 1;
  g.C = dx;
  g.ldc = K;
  g.accumulate = acc;
  g.k_chunk = std::max(N, 1);
  launch_gemm<true, true>(g, 1, as_stream(stream()));
  launched("linear_bwd_data");
}

void CudaOps::linear_bwd_weight(float* dW, float* db, const float* dy, const float* x, int64_t rows, int K, int N,
                                int ldw) {
  if (rows <= 0 || N <= 0) return;
  cudaStream_t s = as_stream(stream());
  if (K > 0) {
    // dW (N × K) += dyᵀ · x:  A(i=o, p=r) = dy[r·N + o],  B(p=r, j=k) = x[r·K + k]; reduction over rows.
    GemmArgs g;
    g.M = N;
    g.N = K;
    g.K = rows;
    g.A = dy;
    g.sai = 1;
    g.sap = N;
    g.B = x;
    g.sbp = K;
    g.sbj = 1;
    g.C = dW;
    g.ldc = ldw;
    g.accumulate = true;
    // Split-K over rows, sized from the shapes only (never from the device): enough splits to give ~1024 blocks,
    // at least splitk_min_rows() (512) rows per split, at most 1024 splits and 16M partial floats.
    const int64_t outs = static_cast<int64_t>(N) * K;
    int64_t splits = std::max<int64_t>(1, rows / splitk_min_rows());
    splits = std::min<int64_t>(splits, std::max<int64_t>(1, 1024 / std::max<int64_t>(1, gemm_tiles(N, K))));
    splits = std::min<int64_t>(splits, 1024);
    splits = std::min<int64_t>(splits, std::max<int64_t>(1, (int64_t(16) << 20) / outs));
    int64_t chunk = (rows + splits - 1) / splits;
    chunk = (chunk + 15) / 16 * 16;  // whole BK stages per split
    splits = (rows + chunk - 1) / chunk;
    g.k_chunk = chunk;
    if (splits <= 1) {
      launch_gemm<false, true>(g, 1, s);
      launched("linear_bwd_weight");
    } else {
      float* part = scratch(splits * outs, "linear_bwd_weight");
      if (part == nullptr) return;
      g.partial = part;
      launch_gemm<false, true>(g, static_cast<int>(splits), s);
      launched("linear_bwd_weight (split-K)");
      launch_kernel(gemm_splitk_reduce_kernel, dim3(grid_for(outs)), dim3(kThreads), 0, s, dW,
                    static_cast<int64_t>(ldw), part, static_cast<int64_t>(N), K, static_cast<int>(splits));
      launched("linear_bwd_weight (split-K reduce)");
    }
  }
  if (db != nullptr) {
    // db[o] += Σ_r dy[r·N + o]
    const ColChunks cc = col_chunks(rows);
    float* part = scratch(static_cast<int64_t>(cc.chunks) * 2 * N, "linear_bwd_weight (bias)");
    if (part == nullptr) return;
    launch_kernel(col_sums_partial_kernel, dim3(ceil_div(N, 32), cc.chunks), dim3(32, 8), 0, s, part, dy,
                  static_cast<int64_t>(N), static_cast<const float*>(nullptr), static_cast<int64_t>(0), rows, N,
                  cc.chunk_rows, false, true);
    launched("linear_bwd_weight (bias partial sums)");
    launch_kernel(col_sums_final_kernel, dim3(ceil_div(N, 128)), dim3(128), 0, s, static_cast<float*>(nullptr), db,
                  part, N, cc.chunks);
    launched("linear_bwd_weight (bias)");
  }
}

void CudaOps::layernorm_fwd(float* y, float* xhat, float* rstd, const float* x, const float* g, const float* b,
                            int64_t rows, int C) {
  if (rows <= 0 || C <= 0) return;
  const int rows_per_block = kThreads / 32;
  launch_kernel(layernorm_forward_kernel, dim3(ceil_div(rows, rows_per_block)), dim3(kThreads), 0,
                as_stream(stream()), y, xhat, rstd, x, g, b, rows, C);
  launched("layernorm_fwd");
}

void CudaOps::layernorm_bwd(float* dx, float* dg, float* db, const float* dy, const float* xhat, const float* rstd,
                            const float* g, int64_t rows, int C, bool acc) {
  if (rows <= 0 || C <= 0) return;
  cudaStream_t s = as_stream(stream());
  // γ/β gradients first (they read dy, so dx may alias dy): dg += Σ dy·x̂, db += Σ dy.
  const ColChunks cc = col_chunks(rows);
  float* part = scratch(static_cast<int64_t>(cc.chunks) * 2 * C, "layernorm_bwd");
  if (part == nullptr) return;
  launch_kernel(col_sums_partial_kernel, dim3(ceil_div(C, 32), cc.chunks), dim3(32, 8), 0, s, part, dy,
                static_cast<int64_t>(C), xhat, static_cast<int64_t>(C), rows, C, cc.chunk_rows, true, true);
  launched("layernorm_bwd (affine partial sums)");
  launch_kernel(col_sums_final_kernel, dim3(ceil_div(C, 128)), dim3(128), 0, s, dg, db, part, C, cc.chunks);
  launched("layernorm_bwd (affine)");
  const int rows_per_block = kThreads / 32;
  launch_kernel(layernorm_backward_kernel, dim3(ceil_div(rows, rows_per_block)), dim3(kThreads), 0, s, dx, dy, xhat,
                rstd, g, rows, C, acc);
  launched("layernorm_bwd");
}

void CudaOps::act_fwd(float* y, const float* x, int64_t n, Act a) {
  if (n <= 0) return;
  launch_kernel(act_forward_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), y, x, n,
                static_cast<int>(a));
  launched("act_fwd");
}

void CudaOps::act_bwd(float* dx, const float* dy, const float* x, int64_t n, Act a, bool acc) {
  if (n <= 0) return;
  launch_kernel(act_backward_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), dx, dy, x, n,
                static_cast<int>(a), acc);
  launched("act_bwd");
}

void CudaOps::add(float* y, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  launch_kernel(add_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), y, a, b, n);
  launched("add");
}

// ==============================================================================================================
// graph ops
// ==============================================================================================================

namespace {
// Channels per lane for a head width Dh: the smallest supported power of two with 32·CPL ≥ Dh (0: unsupported).
int attention_cpl(int Dh) {
  for (int cpl = 1; cpl <= 32; cpl *= 2)
    if (Dh <= 32 * cpl) return cpl;
  return 0;
}

// Warps per attention block (kAttnWarps unless WSF_ATTN_WARPS is 8 or 16; read once).
int attention_warps() {
  static const int w = [] {
    const char* e = std::getenv("WSF_ATTN_WARPS");
    const int v = e != nullptr ? std::atoi(e) : kAttnWarps;
    return (v == 8 || v == 16) ? v : kAttnWarps;
  }();
  return w;
}

// Launches KERNEL<CPL, W> for the head width's CPL and the configured warp count W (4, 8 or 16; at most 8 for
// CPL 32, whose per-warp shared slices would exceed 48 KiB at 16 warps).
#define WSF_ATTN_LAUNCH_W(KERNEL, W, grid, s, ...)                                                     \
  switch (cpl) {                                                                                        \
    case 1: launch_kernel(KERNEL<1, W>, grid, dim3(W * 32), 0, s, __VA_ARGS__); break;                  \
    case 2: launch_kernel(KERNEL<2, W>, grid, dim3(W * 32), 0, s, __VA_ARGS__); break;                  \
    case 4: launch_kernel(KERNEL<4, W>, grid, dim3(W * 32), 0, s, __VA_ARGS__); break;                  \
    case 8: launch_kernel(KERNEL<8, W>, grid, dim3(W * 32), 0, s, __VA_ARGS__); break;                  \
    case 16: launch_kernel(KERNEL<16, W>, grid, dim3(W * 32), 0, s, __VA_ARGS__); break;                \
    default: launch_kernel(KERNEL<32, (W > 8 ? 8 : W)>, grid, dim3((W > 8 ? 8 : W) * 32), 0, s, __VA_ARGS__); break; \
  }
#define WSF_ATTN_LAUNCH(KERNEL, grid, s, ...)                                                          \
  switch (attention_warps()) {                                                                          \
    case 16: WSF_ATTN_LAUNCH_W(KERNEL, 16, grid, s, __VA_ARGS__) break;                                 \
    case 8: WSF_ATTN_LAUNCH_W(KERNEL, 8, grid, s, __VA_ARGS__) break;                                   \
    default: WSF_ATTN_LAUNCH_W(KERNEL, kAttnWarps, grid, s, __VA_ARGS__) break;                         \
  }
}  // namespace

void CudaOps::attention_fwd(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                            const int32_t* col, int32_t N, int D, int heads) {
  attention_fwd_rows(o, alpha, Pn, Pe, row_ptr, col, 0, N, 0, D, heads);
}

// Channels per lane for attention of width D over `heads` heads (0 after recording an error).
int CudaOps::attention_launch_cpl(const char* what, int D, int heads) {
  const int Dh = D / heads;
  const int cpl = attention_cpl(Dh);
  if (cpl == 0) {
    record(Status(Code::Invalid, std::string(what) + ": the CUDA kernels support head widths D/heads ≤ 1024, got " +
                                     std::to_string(Dh)));
  }
  return cpl;
}

void CudaOps::attention_fwd_rows(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                                 const int32_t* col, int32_t r0, int32_t r1, int64_t k_base, int D, int heads) {
  if (r1 <= r0 || D <= 0 || heads <= 0) return;
  const int cpl = attention_launch_cpl("attention_fwd", D, heads);
  if (cpl == 0) return;
  const float inv_sqrt_d = 1.0f / std::sqrt(static_cast<float>(D));
  const dim3 grid(static_cast<unsigned>(r1 - r0), static_cast<unsigned>(heads));
  cudaStream_t s = as_stream(stream());
  WSF_ATTN_LAUNCH(attention_forward_kernel, grid, s, o, alpha, Pn, Pe, row_ptr, col, r0, k_base, D, heads, inv_sqrt_d)
  launched("attention_fwd");
}

void CudaOps::attention_bwd(float* dPn, float* dPe, const float* dout, const float* alpha, const float* Pn,
                            const float* Pe, const int32_t* row_ptr, const int32_t* col, const int32_t* rev, int32_t N,
                            int D, int heads) {
  if (N <= 0 || D <= 0 || heads <= 0) return;
  if (attention_launch_cpl("attention_bwd", D, heads) == 0) return;
  attention_bwd_rows(dPn, dPe, nullptr, dout, alpha, Pn, Pe, row_ptr, col, 0, N, 0, D, heads);
  attention_cols(dPn, dPe, Pe, row_ptr, rev, N, D, heads);
}

void CudaOps::attention_bwd_rows(float* dPn, float* dPe, float* colbuf, const float* dout, const float* alpha,
                                 const float* Pn, const float* Pe, const int32_t* row_ptr, const int32_t* col,
                                 int32_t r0, int32_t r1, int64_t k_base, int D, int heads) {
  if (r1 <= r0 || D <= 0 || heads <= 0) return;
  const int cpl = attention_launch_cpl("attention_bwd", D, heads);
  if (cpl == 0) return;
  const float inv_sqrt_d = 1.0f / std::sqrt(static_cast<float>(D));
  const dim3 grid(static_cast<unsigned>(r1 - r0), static_cast<unsigned>(heads));
  cudaStream_t s = as_stream(stream());
  WSF_ATTN_LAUNCH(attention_backward_rows_kernel, grid, s, dPn, dPe, colbuf, dout, alpha, Pn, Pe, row_ptr, col, r0,
                  k_base, D, heads, inv_sqrt_d)
  launched("attention_bwd (pass 1: rows)");
}

void CudaOps::attention_bwd_cols(float* dPn, const float* colbuf, const int32_t* row_ptr, const int32_t* rev,
                                 int32_t N, int D, int heads) {
  if (N <= 0 || D <= 0 || heads <= 0) return;
  if (attention_launch_cpl("attention_bwd", D, heads) == 0) return;
  attention_cols(dPn, colbuf, nullptr, row_ptr, rev, N, D, heads);
}

// Pass 2 of the attention backward: from (dPe, Pe), or from a colbuf when Pe is null.
void CudaOps::attention_cols(float* dPn, const float* dPe, const float* Pe, const int32_t* row_ptr, const int32_t* rev,
                             int32_t N, int D, int heads) {
  cudaStream_t s = as_stream(stream());
  const int w = attention_warps();
  if (w == 16 && D <= 256) {
    launch_kernel(attention_backward_cols_split_kernel<16>, dim3(static_cast<unsigned>(N)), dim3(16 * 32), 0, s, dPn,
                  dPe, Pe, row_ptr, rev, D, heads);
  } else if (w == 8 && D <= 256) {
    launch_kernel(attention_backward_cols_split_kernel<8>, dim3(static_cast<unsigned>(N)), dim3(8 * 32), 0, s, dPn,
                  dPe, Pe, row_ptr, rev, D, heads);
  } else {
    const int nodes_per_block = kThreads / 32;
    launch_kernel(attention_backward_cols_kernel, dim3(ceil_div(N, nodes_per_block)), dim3(kThreads), 0, s, dPn, dPe,
                  Pe, row_ptr, rev, static_cast<int64_t>(N), D, heads);
  }
  launched("attention_bwd (pass 2: columns)");
}

void CudaOps::edge_combine_fwd(float* z, const float* Y1, const float* Y2, const float* S, const float* Tn,
                               const float* bias, const int32_t* row, const int32_t* col, const int32_t* rev, int64_t M,
                               int D) {
  if (M <= 0 || D <= 0) return;
  launch_kernel(edge_combine_forward_kernel, dim3(grid_for(M * D)), dim3(kThreads), 0, as_stream(stream()), z, Y1, Y2,
                S, Tn, bias, row, col, rev, M, D);
  launched("edge_combine_fwd");
}

void CudaOps::edge_combine_bwd(float* dY2, float* dS, float* dT, float* dbias, const float* dz, const int32_t* row_ptr,
                               const int32_t* rev, int32_t N, int64_t M, int D) {
  if (D <= 0) return;
  cudaStream_t s = as_stream(stream());
  if (M > 0) {
    // dY2_k = dz_{rev k}: a row gather through rev.
    launch_kernel(gather_rows_kernel, dim3(grid_for(M * D)), dim3(kThreads), 0, s, dY2, dz, rev, M, D);
    launched("edge_combine_bwd (gather)");
  }
  if (N <= 0) return;
  const int nodes_per_block = kThreads / 32;
  launch_kernel(edge_combine_row_sums_kernel, dim3(ceil_div(N, nodes_per_block)), dim3(kThreads), 0, s, dS, dT, dz,
                row_ptr, rev, static_cast<int64_t>(N), D);
  launched("edge_combine_bwd (row sums)");
  // dbias += Σ_k dz_k = Σ_u dS_u: a column sum of dS.
  const ColChunks cc = col_chunks(N);
  float* part = scratch(static_cast<int64_t>(cc.chunks) * 2 * D, "edge_combine_bwd");
  if (part == nullptr) return;
  launch_kernel(col_sums_partial_kernel, dim3(ceil_div(D, 32), cc.chunks), dim3(32, 8), 0, s, part,
                static_cast<const float*>(dS), static_cast<int64_t>(D), static_cast<const float*>(nullptr),
                static_cast<int64_t>(0), static_cast<int64_t>(N), D, cc.chunk_rows, false, true);
  launched("edge_combine_bwd (bias partial sums)");
  launch_kernel(col_sums_final_kernel, dim3(ceil_div(D, 128)), dim3(128), 0, s, static_cast<float*>(nullptr), dbias,
                part, D, cc.chunks);
  launched("edge_combine_bwd (bias)");
}

// ==============================================================================================================
// inputs and outputs
// ==============================================================================================================

void CudaOps::edge_features(float* feat, const float* x, const float* t, const float* aux, const int32_t* param,
                            const int32_t* dir, const int32_t* graph, int64_t M, int din, bool reverse_value,
                            int aux_cols) {
  if (M <= 0) return;
  launch_kernel(edge_features_kernel, dim3(grid_for(M)), dim3(kThreads), 0, as_stream(stream()), feat, x, t, aux, param,
                dir, graph, M, din, reverse_value, aux_cols);
  launched("edge_features");
}

void CudaOps::node_features(float* feat, const float* x, const float* t, const float* aux, const int32_t* param,
                            const int32_t* graph, int32_t N, int din, int aux_cols) {
  if (N <= 0) return;
  launch_kernel(node_features_kernel, dim3(grid_for(N)), dim3(kThreads), 0, as_stream(stream()), feat, x, t, aux, param,
                graph, static_cast<int64_t>(N), din, aux_cols);
  launched("node_features");
}

void CudaOps::edge_features_bwd(float* dx, const float* dfeat, const int32_t* idx, const int32_t* rev,
                                const int32_t* param, int64_t n, int din, bool reverse_value) {
  if (n <= 0) return;
  launch_kernel(edge_features_backward_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), dx, dfeat,
                idx, rev, param, n, din, reverse_value);
  launched("edge_features_bwd");
}

void CudaOps::node_features_bwd(float* dx, const float* dfeat, const int32_t* idx, const int32_t* param, int64_t n,
                                int din) {
  if (n <= 0) return;
  launch_kernel(node_features_backward_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), dx, dfeat,
                idx, param, n, din);
  launched("node_features_bwd");
}

void CudaOps::copy_cols(float* dst, int ldd, const float* src, int lds, int64_t rows, int cols, bool acc) {
  if (rows <= 0 || cols <= 0) return;
  launch_kernel(copy_cols_kernel, dim3(grid_for(rows * cols)), dim3(kThreads), 0, as_stream(stream()), dst, ldd, src,
                lds, rows, cols, acc);
  launched("copy_cols");
}

void CudaOps::embed_add(float* y, int ld, const float* table, const int32_t* idx, int64_t rows, int D) {
  if (rows <= 0 || D <= 0) return;
  launch_kernel(embed_add_kernel, dim3(grid_for(rows * D)), dim3(kThreads), 0, as_stream(stream()), y, ld, table, idx,
                rows, D);
  launched("embed_add");
}

void CudaOps::embed_bwd(float* dtable, const float* dy, int ld, const int32_t* idx, int64_t rows, int D,
                        int table_rows) {
  if (rows <= 0 || D <= 0 || table_rows <= 0) return;
  cudaStream_t s = as_stream(stream());
  const ColChunks cc = embed_chunks(rows);
  float* part = scratch(static_cast<int64_t>(table_rows) * cc.chunks * D, "embed_bwd");
  if (part == nullptr) return;
  const dim3 grid(static_cast<unsigned>(table_rows), static_cast<unsigned>(ceil_div(D, 32)),
                  static_cast<unsigned>(cc.chunks));
  launch_kernel(embed_backward_partial_kernel, grid, dim3(32, 8), 0, s, part, dy, ld, idx, rows, D, cc.chunks,
                cc.chunk_rows);
  launched("embed_bwd (partial sums)");
  launch_kernel(embed_backward_final_kernel, dim3(grid_for(static_cast<int64_t>(table_rows) * D)), dim3(kThreads), 0,
                s, dtable, static_cast<const float*>(part), table_rows, D, cc.chunks);
  launched("embed_bwd");
}

void CudaOps::set_time(float* sarr, const float* t, const int32_t* graph, const int32_t* one_mask, int64_t rows,
                       int H) {
  if (rows <= 0) return;
  launch_kernel(set_time_kernel, dim3(grid_for(rows)), dim3(kThreads), 0, as_stream(stream()), sarr, t, graph,
                one_mask, rows, H);
  launched("set_time");
}

void CudaOps::gather_rows(float* y, const float* x, const int32_t* idx, int64_t n, int C) {
  if (n <= 0 || C <= 0) return;
  launch_kernel(gather_rows_kernel, dim3(grid_for(n * C)), dim3(kThreads), 0, as_stream(stream()), y, x, idx, n, C);
  launched("gather_rows");
}

void CudaOps::scatter_rows(float* dx, const float* dy, const int32_t* idx, int64_t n, int C, bool acc) {
  if (n <= 0 || C <= 0) return;
  launch_kernel(scatter_rows_kernel, dim3(grid_for(n * C)), dim3(kThreads), 0, as_stream(stream()), dx, dy, idx, n, C,
                acc);
  launched("scatter_rows");
}

void CudaOps::scatter_flat(float* flat, const float* v, const int32_t* param, int64_t n) {
  if (n <= 0) return;
  launch_kernel(scatter_flat_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), flat, v, param, n);
  launched("scatter_flat");
}

void CudaOps::gather_flat(float* v, const float* flat, const int32_t* param, int64_t n) {
  if (n <= 0) return;
  launch_kernel(gather_flat_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), v, flat, param, n);
  launched("gather_flat");
}

// ==============================================================================================================
// loss and optimiser
// ==============================================================================================================

const double* CudaOps::reduce_sum_dev(const float* a, const float* b, float* d, int64_t n, double scale, double* out,
                                      const char* op) {
  cudaStream_t s = as_stream(stream());
  const int blocks = sum_blocks(n);
  // kSumBlocksMax block sums + 1 total, in doubles (2 floats each).
  float* part = scratch(2 * (kSumBlocksMax + 1), op);
  if (part == nullptr) return nullptr;
  double* partial = reinterpret_cast<double*>(part);
  double* total = out != nullptr ? out : partial + kSumBlocksMax;
  launch_kernel(sum_squares_partial_kernel, dim3(blocks), dim3(kThreads), 0, s, partial, d, a, b, n,
                static_cast<float>(scale));
  launched(op);
  launch_kernel(sum_final_kernel, dim3(1), dim3(kSumBlocksMax), 0, s, total, static_cast<const double*>(partial),
                blocks);
  launched(op);
  return total;
}

double CudaOps::reduce_sum_to_host(const float* a, const float* b, float* d, int64_t n, double scale,
                                   const char* op) {
  if (n <= 0) return 0.0;
  cudaStream_t s = as_stream(stream());
  const double* total = reduce_sum_dev(a, b, d, n, scale, nullptr, op);
  if (total == nullptr) return std::nan("");
  double host = 0.0;
  const Status st = copy_sync(&host, total, sizeof(double), cudaMemcpyDeviceToHost, s, op);
  if (!st.is_ok()) {
    record(st);
    return std::nan("");
  }
  return host;
}

double CudaOps::mse(float* d, const float* xhat, const float* target, int64_t n, double scale) {
  return reduce_sum_to_host(xhat, target, d, n, scale, "mse");
}

double CudaOps::sum_squares(const float* x, int64_t n) {
  return reduce_sum_to_host(x, nullptr, nullptr, n, 1.0, "sum_squares");
}

void CudaOps::sum_squares_dev(double* out, const float* x, int64_t n) {
  if (n <= 0) {
    const cudaError_t err = cudaMemsetAsync(out, 0, sizeof(double), as_stream(stream()));
    if (err != cudaSuccess) record(cuda_status(err, "sum_squares_dev: cudaMemsetAsync"));
    return;
  }
  (void)reduce_sum_dev(x, nullptr, nullptr, n, 1.0, out, "sum_squares_dev");
}

void CudaOps::step_gate(float* gate, const double* sumsq, const float* loss, const double* consts) {
  launch_kernel(step_gate_kernel, dim3(1), dim3(32), 0, as_stream(stream()), gate, sumsq, loss, consts);
  launched("step_gate");
}

void CudaOps::scale(float* x, int64_t n, double s) {
  if (n <= 0) return;
  launch_kernel(scale_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), x, n, s);
  launched("scale");
}

void CudaOps::flow_path(float* xt, const float* x0, const float* x1, const float* noise, const float* t, int64_t B,
                        int64_t P) {
  if (B * P <= 0) return;
  launch_kernel(flow_path_kernel, dim3(grid_for(B * P)), dim3(kThreads), 0, as_stream(stream()), xt, x0, x1, noise, t,
                B, P);
  launched("flow_path");
}

void CudaOps::flow_input(float* y, const float* x, const float* scale, int64_t B, int64_t P) {
  if (B * P <= 0) return;
  launch_kernel(flow_input_kernel, dim3(grid_for(B * P)), dim3(kThreads), 0, as_stream(stream()), y, x, scale, B, P);
  launched("flow_input");
}

void CudaOps::flow_to_x1(float* xhat, const float* F, const float* xt, const float* t, const float* scale,
                         bool precondition, int64_t B, int64_t P) {
  if (B * P <= 0) return;
  launch_kernel(flow_to_x1_kernel, dim3(grid_for(B * P)), dim3(kThreads), 0, as_stream(stream()), xhat, F, xt, t,
                scale, precondition, B, P);
  launched("flow_to_x1");
}

void CudaOps::flow_to_dF(float* d, const float* t, const float* scale, bool precondition, int64_t B, int64_t P) {
  if (B * P <= 0) return;
  launch_kernel(flow_to_dF_kernel, dim3(grid_for(B * P)), dim3(kThreads), 0, as_stream(stream()), d, t, scale,
                precondition, B, P);
  launched("flow_to_dF");
}

void CudaOps::fill_normal(float* out, int64_t n, uint64_t seed, double mean, double stddev) {
  if (n <= 0) return;
  launch_kernel(fill_normal_kernel, dim3(grid_for((n + 1) / 2)), dim3(kThreads), 0, as_stream(stream()), out, n, seed,
                static_cast<const uint64_t*>(nullptr), mean, stddev);
  launched("fill_normal");
}

void CudaOps::fill_normal_dev(float* out, int64_t n, const uint64_t* seed, double mean, double stddev) {
  if (n <= 0) return;
  launch_kernel(fill_normal_kernel, dim3(grid_for((n + 1) / 2)), dim3(kThreads), 0, as_stream(stream()), out, n,
                uint64_t{0}, seed, mean, stddev);
  launched("fill_normal");
}

void CudaOps::flow_velocity(float* v, const float* xhat, const float* x, double inv, int64_t n) {
  if (n <= 0) return;
  launch_kernel(flow_velocity_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), v, xhat, x, inv, n);
  launched("flow_velocity");
}

void CudaOps::flow_axpy(float* y, const float* x, const float* v, double dt, int64_t n) {
  if (n <= 0) return;
  launch_kernel(flow_axpy_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), y, x, v, dt, n);
  launched("flow_axpy");
}

void CudaOps::flow_rk4_combine(float* v, const float* k1, const float* k2, const float* k3, const float* k4,
                               int64_t n) {
  if (n <= 0) return;
  launch_kernel(flow_rk4_combine_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), v, k1, k2, k3, k4, n);
  launched("flow_rk4_combine");
}

void CudaOps::ema_update(float* ema, const float* p, int64_t n, double decay) {
  if (n <= 0) return;
  launch_kernel(ema_update_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), ema, p, n, decay,
                static_cast<const float*>(nullptr));
  launched("ema_update");
}

void CudaOps::ema_update_gated(float* ema, const float* p, int64_t n, double decay, const float* gate) {
  if (n <= 0) return;
  launch_kernel(ema_update_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), ema, p, n, decay, gate);
  launched("ema_update");
}

void CudaOps::fill_normal_rows(float* out, int64_t rows, int64_t ld, const int32_t* counts, const int32_t* seeds,
                               double mean, double stddev) {
  if (rows <= 0 || ld <= 0) return;
  launch_kernel(fill_normal_rows_kernel, dim3(grid_for(rows * ((ld + 1) / 2))), dim3(kThreads), 0, as_stream(stream()),
                out, rows, ld, counts, seeds, mean, stddev);
  launched("fill_normal_rows");
}

void CudaOps::gaussian_fit_draw(float* out, const float* eps, int64_t ld_eps, const int32_t* comp, const float* mean,
                                const float* basis, const int32_t* row0, int64_t B, int64_t P) {
  if (B * P <= 0) return;
  launch_kernel(gaussian_fit_draw_kernel, dim3(grid_for(B * P)), dim3(kThreads), 0, as_stream(stream()), out, eps,
                ld_eps, comp, mean, basis, row0, B, P);
  launched("gaussian_fit_draw");
}

void CudaOps::adam(float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, int64_t step,
                   double grad_scale) {
  if (n <= 0) return;
  // The same float constants as the CPU reference.
  double c[kAdamConsts];
  adam_constants(h, step, 0.0, c);
  const auto f = [&c](int k) { return static_cast<float>(c[k]); };
  launch_kernel(adam_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), p, g, m, v, n, f(0), f(1),
                f(2), f(3), f(4), static_cast<float>(grad_scale), f(5), f(6), static_cast<const double*>(nullptr),
                static_cast<const float*>(nullptr));
  launched("adam");
}

void CudaOps::adam_gated(float* p, const float* g, float* m, float* v, int64_t n, const double* consts,
                         const float* gate) {
  if (n <= 0) return;
  launch_kernel(adam_kernel, dim3(grid_for(n)), dim3(kThreads), 0, as_stream(stream()), p, g, m, v, n, 0.0f, 0.0f,
                0.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f, consts, gate);
  launched("adam");
}

// ---- pinned staging, asynchronous copies and CUDA graphs (the flow step's sync-free mode) ----
Status CudaOps::host_alloc(void** p, int64_t bytes) {
  *p = nullptr;
  const cudaError_t err = cudaHostAlloc(p, static_cast<size_t>(std::max<int64_t>(bytes, 1)), cudaHostAllocDefault);
  if (err != cudaSuccess) {
    cudaGetLastError();
    *p = nullptr;
    return err == cudaErrorMemoryAllocation ? Status(Code::Oom, "out of pinned host memory allocating " + std::to_string(bytes) + " bytes")
                                            : cuda_status(err, "cudaHostAlloc");
  }
  return Status::ok();
}
void CudaOps::host_free(void* p) {
  if (p != nullptr) record(cuda_status(cudaFreeHost(p), "cudaFreeHost"));
}
void CudaOps::copy_async(void* dst, const void* src, int64_t bytes, bool to_device) {
  if (bytes <= 0) return;
  const cudaError_t err = cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes),
                                          to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, as_stream(stream()));
  if (err != cudaSuccess) record(cuda_status(err, "copy_async: cudaMemcpyAsync"));
}
Status CudaOps::capture_begin() {
  cudaStream_t s = as_stream(stream());
  if (s == nullptr) return Status(Code::Cuda, "capture_begin: no CUDA stream");
  WSF_RETURN_IF_ERROR(check());  // earlier errors are reported (and the stream idle) before capturing
  WSF_RETURN_IF_ERROR(cuda_status(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture"));
  capturing_ = true;
  return Status::ok();
}
Status CudaOps::capture_end(void** exec) {
  *exec = nullptr;
  cudaStream_t s = as_stream(stream());
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(s, &graph);
  capturing_ = false;
  // Errors recorded while capturing (a refused call, a bad launch configuration) belong to the capture: the
  // caller runs the step uncaptured instead, so they are dropped here.
  Status during = pending_;
  pending_ = Status::ok();
  cudaGetLastError();
  if (end != cudaSuccess || graph == nullptr) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return cuda_status(end != cudaSuccess ? end : cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture");
  }
  if (!during.is_ok()) {
    cudaGraphDestroy(graph);
    return during;
  }
  cudaGraphExec_t ge = nullptr;
  const cudaError_t inst = cudaGraphInstantiate(&ge, graph, 0);
  cudaGraphDestroy(graph);
  if (inst != cudaSuccess) {
    cudaGetLastError();
    return cuda_status(inst, "cudaGraphInstantiate");
  }
  *exec = ge;
  return Status::ok();
}
void CudaOps::graph_launch(void* exec) {
  const cudaError_t err = cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), as_stream(stream()));
  if (err != cudaSuccess) record(cuda_status(err, "cudaGraphLaunch"));
  mark("graph");
}
void CudaOps::graph_free(void* exec) {
  if (exec != nullptr) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
}
uint64_t CudaOps::alloc_epoch() { return device_alloc_epoch(); }

CudaKernelSettings cuda_kernel_settings() {
  static const char* const kGemm[] = {"", "v1", "v2", "tc", "tf32"};
  CudaKernelSettings k;
  k.gemm = kGemm[gemm_version()];
  k.splitk_rows = static_cast<int>(splitk_min_rows());
  k.attention_warps = attention_warps();
  k.flow_step = flow_step_mode_name(flow_step_mode_env());
  return k;
}

}  // namespace wsf
