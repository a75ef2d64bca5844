// Product-manifold geometry over flat weight vectors (METHOD.md §3, §5.3, §6.3, §7, §13.3): every hidden
// neuron's incoming weight vector is a point on a sphere S^{K−1}, the whole last-layer matrix is one sphere,
// and the biases (flat indices E…P−1) are Euclidean. Batched over B networks of P parameters each.
//
// Per sphere factor (x, y, u ∈ R^K; ‖·‖ the Euclidean norm; `Accurate` mode, the default):
//   project        x / ‖x‖                  (‖x‖² below the smallest normal T → e_0 of the factor)
//   tangent        u − ⟨x,u⟩ x
//   expmap         n = ‖u‖; x cos n + u sin(n)/n, then renormalised (sin(n)/n by series for small n)
//   logmap         x̂ = x/‖x‖; w = y − ⟨x̂,y⟩x̂; θ = atan2(‖w‖, ⟨x̂,y⟩); w·θ/‖w‖ (series for small θ; antipodal
//                  fallback θ·v/‖v‖, v = e_k − x̂_k·x̂, k = argmin |x_k|); x̂ = x for unit x
//   dist           θ = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖) on x̄ = x/‖x‖, ȳ = y/‖y‖
//   interpolate    Exp_{x̂0}(t·Log_{x0}(x1)) with the ops above, renormalised
//   euler_step     x̂ = x/‖x‖; Exp_{x̂}(dt·proj_{x̂}(v)), renormalised
//   loss           ℓ_b = Σ_s w_s d_s² + mean_biases (p − q)²,  w_s = 1/(L · #spheres in the layer of s)
// and on the Euclidean block: identity, identity, x+u, y−x, ‖x−y‖, (1−t)x0+t·x1, x+dt·v, squared error.
// `Reference` mode reproduces geoopt 0.5.0 in float32 (METHOD.md §7) for every T, with EPS = 1e-4:
//   dist = acos(clamp(⟨x,y⟩, −1+EPS, 1−EPS)); expmap: ‖u‖ > EPS ? x cos n + u sin n / n : (x+u)/‖x+u‖;
//   logmap: w = (y−x) − ⟨x,y−x⟩x, θ = dist, θ > EPS ? w·θ/max(‖w‖, EPS) : w; euler_step = expmap(x, dt·v).
// A Euclidean geometry (the 'euclidean' and 'normalized' flows) is the same table with S = 0 and E = 0: the whole
// vector is one Euclidean block, so every op above degenerates to its Euclidean form and `loss` to the MSE.
//
// Shape letters (common.h): B networks, P parameters per network, S sphere factors, F = S + 1 factors (the
// Euclidean block is factor S), K a factor's dimension, L layers.
// All outputs are overwritten (=), never accumulated. `out` may alias any input of the same shape (every op
// reads a factor's inputs before writing the element they produce). The CUDA functions take device pointers
// (tables included) and enqueue on `stream` (a cudaStream_t; nullptr = the default stream) without
// synchronising; the CPU functions take host pointers and run on the wsf::parallel_for pool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "core/common.h"

namespace wsf {

// Geometry semantics: Accurate (stable formulas, re-normalised outputs) or Reference (geoopt 0.5.0, float32).
enum class GeoMode : int { Accurate = 0, Reference = 1 };

// The product-manifold description of one flat network (host or device pointers; see GeometryLayout).
struct SphereTable {
  const int32_t* offset = nullptr;  // [S] flat index of a factor's first element
  const int32_t* stride = nullptr;  // [S] flat distance between consecutive elements (n_l hidden, 1 last layer)
  const int32_t* dim = nullptr;     // [S] K
  const int32_t* layer = nullptr;   // [S] 1…L
  const double* weight = nullptr;   // [S] loss weight 1/(L · number of spheres in the factor's layer)
  int32_t S = 0;                    // sphere factors (0 for a Euclidean geometry)
  int32_t P = 0;                    // parameters per network
  int32_t E = 0;                    // first Euclidean index (E…P−1 is the Euclidean block; 0 for Euclidean)
  int32_t L = 0;                    // layers of the base MLP
  int32_t max_dim = 0;              // max K (0 when S = 0)
};

// The MLP's widths, for canonicalisation (canonicalize.h).
struct LayerTable {
  const int32_t* widths = nullptr;  // [L+1] n_0 … n_L
  int32_t L = 0;                    // layers
  int32_t P = 0;                    // parameters per network
  int32_t E = 0;                    // number of weights (first bias index)
  int32_t H = 0;                    // hidden neurons Σ_{l<L} n_l
};

// Owns the host tables of one architecture (built from the widths) and, on request, device copies.
class GeometryLayout {
 public:
  // widths n_0…n_L (L ≥ 1, each ≥ 1); `euclidean` builds the S = 0, E = 0 table. Fails with Code::Invalid.
  static Status build(const std::vector<int32_t>& widths, bool euclidean, GeometryLayout* out);

  SphereTable host_table() const;
  LayerTable host_layers() const;
  // Device copies, uploaded on first use; Code::NoCuda without a device.
  Status device_table(SphereTable* out);
  Status device_layers(LayerTable* out);
  void release_device();  // frees the device copies (the host tables stay)
  bool has_device_copies() const { return !d_offset_.empty() || !d_widths_.empty(); }

  int32_t S() const { return S_; }
  int32_t P() const { return P_; }
  int32_t E() const { return E_; }
  int32_t L() const { return L_; }
  int32_t F() const { return S_ + 1; }  // factors incl. the Euclidean block
  const std::vector<int32_t>& widths() const { return widths_; }

 private:
  Status upload_sphere_tables();
  std::vector<int32_t> widths_, offset_, stride_, dim_, layer_;
  std::vector<double> weight_;
  int32_t S_ = 0, P_ = 0, E_ = 0, L_ = 0, H_ = 0, Ew_ = 0, max_dim_ = 0;
  Buffer d_offset_, d_stride_, d_dim_, d_layer_, d_weight_, d_widths_;
};

// ---- CPU reference (T = float, double) ----------------------------------------------------------------------

template <typename T>
void geometry_project_forward_cpu(T* out, const T* x, const SphereTable& t, int64_t B, GeoMode mode);
template <typename T>
void geometry_tangent_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode mode);
template <typename T>
void geometry_expmap_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode mode);
template <typename T>
void geometry_logmap_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode);
// out: B × F (F = S + 1): the S geodesic distances, then the Euclidean distance of the bias blocks.
template <typename T>
void geometry_dist_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode);
// tt: [B] the interpolation time per network.
template <typename T>
void geometry_interpolate_forward_cpu(T* out, const T* x0, const T* x1, const T* tt, const SphereTable& t, int64_t B,
                                      GeoMode mode);
template <typename T>
void geometry_euler_step_forward_cpu(T* out, const T* x, const T* v, const SphereTable& t, int64_t B, T dt,
                                     GeoMode mode);
// loss: [1] mean_b ℓ_b; per_network: [B] ℓ_b; dpred: [B·P] ∂loss/∂pred (overwritten; skipped when null).
template <typename T>
void geometry_loss_forward_cpu(T* loss, T* per_network, T* dpred, const T* pred, const T* target, const SphereTable& t,
                               int64_t B, GeoMode mode);

// ---- CUDA (float, device pointers, enqueued on `stream`) -----------------------------------------------------

Status geometry_project_forward_cuda(float* out, const float* x, const SphereTable& t, int64_t B, GeoMode mode,
                                     void* stream);
Status geometry_tangent_forward_cuda(float* out, const float* x, const float* u, const SphereTable& t, int64_t B,
                                     GeoMode mode, void* stream);
Status geometry_expmap_forward_cuda(float* out, const float* x, const float* u, const SphereTable& t, int64_t B,
                                    GeoMode mode, void* stream);
Status geometry_logmap_forward_cuda(float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                                    GeoMode mode, void* stream);
Status geometry_dist_forward_cuda(float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                                  GeoMode mode, void* stream);
Status geometry_interpolate_forward_cuda(float* out, const float* x0, const float* x1, const float* tt,
                                         const SphereTable& t, int64_t B, GeoMode mode, void* stream);
Status geometry_euler_step_forward_cuda(float* out, const float* x, const float* v, const SphereTable& t, int64_t B,
                                        float dt, GeoMode mode, void* stream);
Status geometry_loss_forward_cuda(float* loss, float* per_network, float* dpred, const float* pred,
                                  const float* target, const SphereTable& t, int64_t B, GeoMode mode, void* stream);

// ---- Dispatchers (float): Device::Cpu → *_cpu<float> (stream ignored), Device::Cuda → *_cuda; CPU-only builds
// return Code::NoCuda for Device::Cuda. Tables and data must live on `dev`.

Status geometry_project_forward(Device dev, float* out, const float* x, const SphereTable& t, int64_t B, GeoMode mode,
                                void* stream = nullptr);
Status geometry_tangent_forward(Device dev, float* out, const float* x, const float* u, const SphereTable& t,
                                int64_t B, GeoMode mode, void* stream = nullptr);
Status geometry_expmap_forward(Device dev, float* out, const float* x, const float* u, const SphereTable& t,
                               int64_t B, GeoMode mode, void* stream = nullptr);
Status geometry_logmap_forward(Device dev, float* out, const float* x, const float* y, const SphereTable& t,
                               int64_t B, GeoMode mode, void* stream = nullptr);
Status geometry_dist_forward(Device dev, float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                             GeoMode mode, void* stream = nullptr);
Status geometry_interpolate_forward(Device dev, float* out, const float* x0, const float* x1, const float* tt,
                                    const SphereTable& t, int64_t B, GeoMode mode, void* stream = nullptr);
Status geometry_euler_step_forward(Device dev, float* out, const float* x, const float* v, const SphereTable& t,
                                   int64_t B, float dt, GeoMode mode, void* stream = nullptr);
Status geometry_loss_forward(Device dev, float* loss, float* per_network, float* dpred, const float* pred,
                             const float* target, const SphereTable& t, int64_t B, GeoMode mode,
                             void* stream = nullptr);

}  // namespace wsf
