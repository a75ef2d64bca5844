// CPU reference of the canonicalisation (canonicalize.h): forward and vector-Jacobian product, templated on T
// (float, double), plus the float dispatchers.
//   forward:  per hidden neuron r = ‖incoming column‖, column and bias /= r, outgoing row *= r; last layer and
//             its bias *= c/‖A_L‖_F.
//   backward: recompute the forward (output and scales) into `work`, then reverse the steps (formulas in the
//             header). dx is overwritten.
// Shapes: x, out, dout, dx [B·P]; work [B·(P + H + 1)]. One network per parallel_for item; within a network
// everything is sequential, in the order of the formulas.
#include <cstring>
#include <vector>

#include "core/canonicalize.h"
#include "core/geometry_math.h"
#include "core/parallel.h"

namespace wsf {

using geo::is_zero_sq;
using geo::m_sqrt;

namespace {

// Flat offsets of each layer's weight block and bias block, and the index of its first neuron in the scales.
struct Offsets {
  std::vector<int64_t> w, b, h;  // indexed by layer l = 1…L (entry 0 unused)
  explicit Offsets(const LayerTable& lt) : w(lt.L + 2, 0), b(lt.L + 2, 0), h(lt.L + 2, 0) {
    int64_t wo = 0, bo = lt.E, ho = 0;
    for (int32_t l = 1; l <= lt.L; ++l) {
      w[l] = wo;
      b[l] = bo;
      h[l] = ho;
      wo += int64_t(lt.widths[l - 1]) * lt.widths[l];
      bo += lt.widths[l];
      if (l < lt.L) ho += lt.widths[l];
    }
  }
};

// Canonicalises one network: y ← canon(x) (y may equal x). scales[h] = r of hidden neuron h (−1 for a zero
// neuron left unchanged), scales[H] = ρ (−1 for a zero last layer). `scales` may be null.
template <typename T>
void canon_one(T* y, const T* x, const LayerTable& lt, const Offsets& o, T c, T* scales) {
  const int32_t* w = lt.widths;
  const int32_t L = lt.L;
  if (y != x) std::memcpy(y, x, sizeof(T) * size_t(lt.P));
  for (int32_t l = 1; l < L; ++l) {
    const int32_t n_in = w[l - 1], n = w[l], n_out = w[l + 1];
    for (int32_t j = 0; j < n; ++j) {
      // r = ‖A_l[:, j]‖ on the current values (rows already rescaled by layer l−1)
      T ss = 0;
      for (int32_t i = 0; i < n_in; ++i) ss += y[o.w[l] + int64_t(i) * n + j] * y[o.w[l] + int64_t(i) * n + j];
      if (is_zero_sq(ss)) {  // zero neuron: leave it unchanged (r = 1)
        if (scales != nullptr) scales[o.h[l] + j] = T(-1);
        continue;
      }
      const T r = m_sqrt(ss);
      // incoming column and bias / r; outgoing row of layer l+1 · r
      for (int32_t i = 0; i < n_in; ++i) y[o.w[l] + int64_t(i) * n + j] /= r;
      y[o.b[l] + j] /= r;
      for (int32_t k = 0; k < n_out; ++k) y[o.w[l + 1] + int64_t(j) * n_out + k] *= r;
      if (scales != nullptr) scales[o.h[l] + j] = r;
    }
  }
  // last layer: ρ = ‖A_L‖_F; A_L, b_L ← (· / ρ)·c
  const int64_t nA = int64_t(w[L - 1]) * w[L];
  T ss = 0;
  for (int64_t i = 0; i < nA; ++i) ss += y[o.w[L] + i] * y[o.w[L] + i];
  if (is_zero_sq(ss)) {
    if (scales != nullptr) scales[lt.H] = T(-1);
    return;
  }
  const T rho = m_sqrt(ss);
  for (int64_t i = 0; i < nA; ++i) y[o.w[L] + i] = y[o.w[L] + i] / rho * c;
  for (int32_t j = 0; j < w[L]; ++j) y[o.b[L] + j] = y[o.b[L] + j] / rho * c;
  if (scales != nullptr) scales[lt.H] = rho;
}

// Reverses the steps of canon_one: g holds dout on entry and dx on exit; y and scales from canon_one.
template <typename T>
void canon_back_one(T* g, const T* y, const T* scales, const LayerTable& lt, const Offsets& o, T c) {
  const int32_t* w = lt.widths;
  const int32_t L = lt.L;
  // last layer: s = c/ρ
  const T rho = scales[lt.H];
  if (rho > T(0)) {
    const T s = c / rho;
    const int64_t nA = int64_t(w[L - 1]) * w[L];
    T d = 0;  // ⟨g_A', A'⟩ + ⟨g_b', b'⟩
    for (int64_t i = 0; i < nA; ++i) d += g[o.w[L] + i] * y[o.w[L] + i];
    for (int32_t j = 0; j < w[L]; ++j) d += g[o.b[L] + j] * y[o.b[L] + j];
    const T coef = d / (c * rho);
    for (int64_t i = 0; i < nA; ++i) g[o.w[L] + i] = s * g[o.w[L] + i] - coef * y[o.w[L] + i];
    for (int32_t j = 0; j < w[L]; ++j) g[o.b[L] + j] = s * g[o.b[L] + j];
  }
  for (int32_t l = L - 1; l >= 1; --l) {
    const int32_t n_in = w[l - 1], n = w[l], n_out = w[l + 1];
    for (int32_t j = 0; j < n; ++j) {
      const T r = scales[o.h[l] + j];
      if (!(r > T(0))) continue;  // zero neuron: identity
      // values right after this step: a' = y column, β' = y bias, w'_k = y row of layer l+1 with the later
      // step undone (column k of layer l+1 divided by its r, or the last layer scaled by c/ρ)
      T ga = 0;
      for (int32_t i = 0; i < n_in; ++i) ga += g[o.w[l] + int64_t(i) * n + j] * y[o.w[l] + int64_t(i) * n + j];
      const T gb = g[o.b[l] + j] * y[o.b[l] + j];
      T gw = 0;
      for (int32_t k = 0; k < n_out; ++k) {
        T m;
        if (l + 1 < L) {
          const T rk = scales[o.h[l + 1] + k];
          m = rk > T(0) ? rk : T(1);
        } else {
          m = rho > T(0) ? rho / c : T(1);
        }
        const int64_t q = o.w[l + 1] + int64_t(j) * n_out + k;
        gw += g[q] * (y[q] * m);
      }
      const T gamma = (gw - ga - gb) / r;
      for (int32_t i = 0; i < n_in; ++i) {
        const int64_t q = o.w[l] + int64_t(i) * n + j;
        g[q] = g[q] / r + gamma * y[q];
      }
      g[o.b[l] + j] = g[o.b[l] + j] / r;
      for (int32_t k = 0; k < n_out; ++k) g[o.w[l + 1] + int64_t(j) * n_out + k] *= r;
    }
  }
}

}  // namespace

template <typename T>
void canonicalize_forward_cpu(T* out, const T* x, const LayerTable& lt, int64_t B, T last_norm) {
  const Offsets o(lt);
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) canon_one(out + b * lt.P, x + b * lt.P, lt, o, last_norm, (T*)nullptr);
  });
}

template <typename T>
void canonicalize_backward_cpu(T* dx, const T* x, const T* dout, T* work, const LayerTable& lt, int64_t B,
                               T last_norm) {
  const Offsets o(lt);
  const int64_t per = int64_t(lt.P) + lt.H + 1;
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      T* y = work + b * per;
      T* scales = y + lt.P;
      canon_one(y, x + b * lt.P, lt, o, last_norm, scales);
      T* g = dx + b * lt.P;
      std::memcpy(g, dout + b * lt.P, sizeof(T) * size_t(lt.P));
      canon_back_one(g, y, scales, lt, o, last_norm);
    }
  });
}

template void canonicalize_forward_cpu<float>(float*, const float*, const LayerTable&, int64_t, float);
template void canonicalize_forward_cpu<double>(double*, const double*, const LayerTable&, int64_t, double);
template void canonicalize_backward_cpu<float>(float*, const float*, const float*, float*, const LayerTable&, int64_t,
                                               float);
template void canonicalize_backward_cpu<double>(double*, const double*, const double*, double*, const LayerTable&,
                                                int64_t, double);

// ---- Dispatchers --------------------------------------------------------------------------------------------

Status canonicalize_forward(Device dev, float* out, const float* x, const LayerTable& lt, int64_t B, float last_norm,
                            void* stream) {
  if (dev == Device::Cpu) {
    canonicalize_forward_cpu<float>(out, x, lt, B, last_norm);
    return Status::ok();
  }
#ifdef WSF_WITH_CUDA
  return canonicalize_forward_cuda(out, x, lt, B, last_norm, stream);
#else
  return no_cuda();
#endif
}

Status canonicalize_backward(Device dev, float* dx, const float* x, const float* dout, float* work,
                             const LayerTable& lt, int64_t B, float last_norm, void* stream) {
  if (dev == Device::Cpu) {
    canonicalize_backward_cpu<float>(dx, x, dout, work, lt, B, last_norm);
    return Status::ok();
  }
#ifdef WSF_WITH_CUDA
  return canonicalize_backward_cuda(dx, x, dout, work, lt, B, last_norm, stream);
#else
  return no_cuda();
#endif
}

}  // namespace wsf
