// Scaling-symmetry canonicalisation of ReLU MLPs in the flat layout (METHOD.md §3) and its vector-Jacobian
// product. Per network, sequentially over hidden layers l = 1…L−1 (A_l = the (in, out) weight block of layer l):
//   r_j = ‖A_l[:, j]‖ (current values);  A_l[:, j] /= r_j;  b_l[j] /= r_j;  A_{l+1}[j, :] *= r_j
// then the last layer: ρ = ‖A_L‖_F;  A_L *= c/ρ;  b_L *= c/ρ   (c = last_norm: 1 as the published code, √C as
// the thesis). Every hidden pre-activation is divided by r_j > 0, so every hidden activation is unchanged up to
// that positive factor, which the next layer multiplies back: hidden outputs are preserved, logits scale by c/ρ.
// Zero norms (r² or ρ² below the smallest normal T) leave that neuron (resp. the last layer) unchanged, which is
// still function-preserving; the backward pass treats such a step as the identity.
//
// Backward (dx = J(x)ᵀ·dout, overwritten): forward recomputed per network into `work`, then the steps reversed.
// With primes for values after a step and g for the gradient w.r.t. them:
//   last layer (s = c/ρ):  g_A = s·g_A' − (⟨g_A', A'⟩ + ⟨g_b', b'⟩)/(c·ρ) · A';   g_b = s·g_b'
//   hidden neuron (r):     γ = (⟨g_w', w'⟩ − ⟨g_a', a'⟩ − g_β'·β')/r;  g_a = g_a'/r + γ·a';  g_β = g_β'/r;
//                          g_w = r·g_w'      (a = incoming column, β = bias, w = outgoing row of layer l+1)
//
// Shapes: x, out, dout, dx [B·P]; work: canonicalize_workspace_elems(layers, B) elements of T (backward only).
// `out` may alias `x` (forward); dx must not alias dout or x. CPU: one network per parallel_for item.
// CUDA: one block per network (layers sequential, separated by __syncthreads), one warp per neuron.
#pragma once

#include <cstdint>

#include "core/common.h"
#include "core/geometry.h"

namespace wsf {

// Backward scratch, in elements of T: per network the recomputed forward output (P) and the H + 1 scales.
inline int64_t canonicalize_workspace_elems(const LayerTable& lt, int64_t B) {
  return B * (int64_t(lt.P) + lt.H + 1);
}

template <typename T>
void canonicalize_forward_cpu(T* out, const T* x, const LayerTable& lt, int64_t B, T last_norm);
template <typename T>
void canonicalize_backward_cpu(T* dx, const T* x, const T* dout, T* work, const LayerTable& lt, int64_t B,
                               T last_norm);

Status canonicalize_forward_cuda(float* out, const float* x, const LayerTable& lt, int64_t B, float last_norm,
                                 void* stream);
Status canonicalize_backward_cuda(float* dx, const float* x, const float* dout, float* work, const LayerTable& lt,
                                  int64_t B, float last_norm, void* stream);

Status canonicalize_forward(Device dev, float* out, const float* x, const LayerTable& lt, int64_t B, float last_norm,
                            void* stream = nullptr);
Status canonicalize_backward(Device dev, float* dx, const float* x, const float* dout, float* work,
                             const LayerTable& lt, int64_t B, float last_norm, void* stream = nullptr);

}  // namespace wsf
