// CUDA kernels of the canonicalisation (canonicalize.h), float, device pointers (widths included), on a stream.
//   forward:  per hidden neuron r = ‖incoming column‖, column and bias /= r, outgoing row *= r; last layer and
//             its bias *= c/‖A_L‖_F.
//   backward: the forward recomputed into `work` (output + scales), then the steps reversed (header formulas).
//
// Parallelisation: one block (256 threads) per network. Layers are inherently sequential (layer l's norms see the
// rows rescaled by layer l−1), so layers are separated by __syncthreads. Within a layer neuron j touches only its
// own column of A_l, its bias and its own row of A_{l+1}, so one warp per neuron (lanes over the column and the
// row) needs no further synchronisation; the same holds in reverse. The last layer's Frobenius norm and the
// backward's ⟨g, y⟩ over it are block_sum reductions. All reductions have a fixed order: deterministic.
// Shapes: x, out, dout, dx [B·P]; work [B·(P + H + 1)].
// (cuda_runtime.h, or the CPU emulator in WSF_CUDA_EMU builds, comes through cuda_common.cuh)

#include "core/canonicalize.h"
#include "core/cuda_common.cuh"
#include "core/geometry_math.h"

namespace wsf {
namespace {

using geo::is_zero_sq;
using geo::m_sqrt;

constexpr int kThreads = 256;

struct LayerOffsets {
  int64_t w, b;  // flat offsets of layer l's weight and bias blocks
  int32_t h;     // index of layer l's first neuron among the hidden neurons
};

__device__ LayerOffsets layer_offsets(const LayerTable& lt, int32_t l) {
  int64_t w = 0, b = lt.E;
  int32_t h = 0;
  for (int32_t m = 1; m < l; ++m) {
    w += int64_t(lt.widths[m - 1]) * lt.widths[m];
    b += lt.widths[m];
    h += lt.widths[m];
  }
  return {w, b, h};
}

// Canonicalises one network with the whole block: y ← canon(x) (y may equal x). scales (nullable) as in
// canonicalize_cpu.cc: r per hidden neuron, ρ last (−1 for a zero norm left unchanged). Ends synchronised.
template <typename T>
__device__ void canon_block(T* y, const T* x, const LayerTable& lt, T c, T* scales, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int32_t L = lt.L;
  if (y != x) {
    for (int64_t i = threadIdx.x; i < lt.P; i += blockDim.x) y[i] = x[i];
  }
  __syncthreads();
  int64_t wo = 0, bo = lt.E;
  int32_t ho = 0;
  for (int32_t l = 1; l < L; ++l) {
    const int32_t n_in = lt.widths[l - 1], n = lt.widths[l], n_out = lt.widths[l + 1];
    const int64_t wnext = wo + int64_t(n_in) * n;
    for (int32_t j = warp; j < n; j += nwarps) {
      T ss = 0;
      for (int32_t i = lane; i < n_in; i += 32) ss += y[wo + int64_t(i) * n + j] * y[wo + int64_t(i) * n + j];
      ss = warp_sum(ss);
      if (is_zero_sq(ss)) {  // warp-uniform
        if (scales != nullptr && lane == 0) scales[ho + j] = T(-1);
        continue;
      }
      const T r = m_sqrt(ss);
      for (int32_t i = lane; i < n_in; i += 32) y[wo + int64_t(i) * n + j] /= r;
      if (lane == 0) y[bo + j] /= r;
      for (int32_t k = lane; k < n_out; k += 32) y[wnext + int64_t(j) * n_out + k] *= r;
      if (scales != nullptr && lane == 0) scales[ho + j] = r;
    }
    __syncthreads();
    wo = wnext;
    bo += n;
    ho += n;
  }
  const int64_t nA = int64_t(lt.widths[L - 1]) * lt.widths[L];
  T ss = 0;
  for (int64_t i = threadIdx.x; i < nA; i += blockDim.x) ss += y[wo + i] * y[wo + i];
  ss = block_sum(ss, shared);
  if (is_zero_sq(ss)) {  // block-uniform
    if (scales != nullptr && threadIdx.x == 0) scales[lt.H] = T(-1);
    __syncthreads();
    return;
  }
  const T rho = m_sqrt(ss);
  for (int64_t i = threadIdx.x; i < nA; i += blockDim.x) y[wo + i] = y[wo + i] / rho * c;
  for (int32_t j = threadIdx.x; j < lt.widths[L]; j += blockDim.x) y[bo + j] = y[bo + j] / rho * c;
  if (scales != nullptr && threadIdx.x == 0) scales[lt.H] = rho;
  __syncthreads();
}

template <typename T>
__global__ void canonicalize_forward_kernel(T* out, const T* x, LayerTable lt, T c) {
  __shared__ T shared[32];
  const int64_t b = blockIdx.x;
  canon_block(out + b * lt.P, x + b * lt.P, lt, c, static_cast<T*>(nullptr), shared);
}

template <typename T>
__global__ void canonicalize_backward_kernel(T* dx, const T* x, const T* dout, T* work, LayerTable lt, T c) {
  __shared__ T shared[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int64_t b = blockIdx.x;
  const int32_t L = lt.L;
  T* y = work + b * (int64_t(lt.P) + lt.H + 1);
  T* scales = y + lt.P;
  canon_block(y, x + b * lt.P, lt, c, scales, shared);
  T* g = dx + b * lt.P;
  const T* go = dout + b * lt.P;
  for (int64_t i = threadIdx.x; i < lt.P; i += blockDim.x) g[i] = go[i];
  __syncthreads();
  // last layer: g_A = s·g_A' − (⟨g_A', A'⟩ + ⟨g_b', b'⟩)/(c·ρ)·A', g_b = s·g_b'
  const LayerOffsets oL = layer_offsets(lt, L);
  const int64_t nA = int64_t(lt.widths[L - 1]) * lt.widths[L];
  const T rho = scales[lt.H];
  if (rho > T(0)) {  // block-uniform
    const T s = c / rho;
    T d = 0;
    for (int64_t i = threadIdx.x; i < nA; i += blockDim.x) d += g[oL.w + i] * y[oL.w + i];
    for (int32_t j = threadIdx.x; j < lt.widths[L]; j += blockDim.x) d += g[oL.b + j] * y[oL.b + j];
    d = block_sum(d, shared);
    const T coef = d / (c * rho);
    for (int64_t i = threadIdx.x; i < nA; i += blockDim.x) g[oL.w + i] = s * g[oL.w + i] - coef * y[oL.w + i];
    for (int32_t j = threadIdx.x; j < lt.widths[L]; j += blockDim.x) g[oL.b + j] = s * g[oL.b + j];
  }
  __syncthreads();
  // hidden layers in reverse: γ = (⟨g_w', w'⟩ − ⟨g_a', a'⟩ − g_β'β')/r; g_a = g_a'/r + γa'; g_β /= r; g_w *= r
  for (int32_t l = L - 1; l >= 1; --l) {
    const int32_t n_in = lt.widths[l - 1], n = lt.widths[l], n_out = lt.widths[l + 1];
    const LayerOffsets o = layer_offsets(lt, l);
    const int64_t wnext = o.w + int64_t(n_in) * n;
    const int32_t hnext = o.h + n;
    for (int32_t j = warp; j < n; j += nwarps) {
      const T r = scales[o.h + j];
      if (!(r > T(0))) continue;  // zero neuron: identity (warp-uniform)
      T ga = 0;
      for (int32_t i = lane; i < n_in; i += 32) {
        const int64_t q = o.w + int64_t(i) * n + j;
        ga += g[q] * y[q];
      }
      T gw = 0;
      for (int32_t k = lane; k < n_out; k += 32) {
        T m;
        if (l + 1 < L) {
          const T rk = scales[hnext + k];
          m = rk > T(0) ? rk : T(1);
        } else {
          m = rho > T(0) ? rho / c : T(1);
        }
        const int64_t q = wnext + int64_t(j) * n_out + k;
        gw += g[q] * (y[q] * m);
      }
      ga = warp_sum(ga);
      gw = warp_sum(gw);
      const T gb = g[o.b + j] * y[o.b + j];
      const T gamma = (gw - ga - gb) / r;
      __syncwarp();  // every lane has read g_β' before lane 0 rewrites it
      for (int32_t i = lane; i < n_in; i += 32) {
        const int64_t q = o.w + int64_t(i) * n + j;
        g[q] = g[q] / r + gamma * y[q];
      }
      if (lane == 0) g[o.b + j] = g[o.b + j] / r;
      for (int32_t k = lane; k < n_out; k += 32) g[wnext + int64_t(j) * n_out + k] *= r;
    }
    __syncthreads();
  }
}

}  // namespace

Status canonicalize_forward_cuda(float* out, const float* x, const LayerTable& lt, int64_t B, float last_norm,
                                 void* stream) {
  if (B <= 0) return Status::ok();
  if (B > 0x7fffffffLL) return invalid("batch too large for one launch");
  launch_kernel(canonicalize_forward_kernel<float>, dim3(static_cast<unsigned>(B)), dim3(kThreads), 0,
                static_cast<cudaStream_t>(stream), out, x, lt, last_norm);
  return cuda_launch_status("canonicalize_forward_kernel");
}

Status canonicalize_backward_cuda(float* dx, const float* x, const float* dout, float* work, const LayerTable& lt,
                                  int64_t B, float last_norm, void* stream) {
  if (B <= 0) return Status::ok();
  if (B > 0x7fffffffLL) return invalid("batch too large for one launch");
  launch_kernel(canonicalize_backward_kernel<float>, dim3(static_cast<unsigned>(B)), dim3(kThreads), 0,
                static_cast<cudaStream_t>(stream), dx, x, dout, work, lt, last_norm);
  return cuda_launch_status("canonicalize_backward_kernel");
}

}  // namespace wsf
