// CUDA kernels of the product-manifold geometry (geometry.h), float, on device pointers, enqueued on a stream.
// The formulas are those of geometry_cpu.cc; the per-factor coefficients come from geometry_math.h, shared with
// the CPU reference, so the two back ends differ only in summation order and in nvcc's FMA contraction.
//
// Parallelisation: one warp per (network b, factor f) item, f = S being the Euclidean block; 8 warps per block,
// items numbered b-major so a block's warps share one network (its strided hidden-layer columns then hit the same
// L1 sectors). Lanes stride over the factor's K elements; reductions are warp_sum (fixed tree order, so results
// are deterministic). A warp's item is decided before any shuffle, so whole warps exit together.
// The loss uses one block per network (warps loop over its spheres, threads over its Euclidean block, then a
// block_sum), and a second one-block kernel takes the mean over networks: deterministic, no atomics.
// Shapes as in geometry.h: x, y, u, v, out [B·P]; dist out [B·F]; tt [B]; per_network [B]; loss [1].
// (cuda_runtime.h, or the CPU emulator in WSF_CUDA_EMU builds, comes through cuda_common.cuh)

#include "core/cuda_common.cuh"
#include "core/geometry.h"
#include "core/geometry_math.h"

namespace wsf {
namespace {

using geo::is_zero_sq;
using geo::m_abs;
using geo::m_sqrt;

constexpr int kWarps = 8;  // warps per block
constexpr int kThreads = 32 * kWarps;

struct Fac {
  int64_t base, off;
  int32_t stride, K;
  __device__ int64_t at(int32_t i) const { return base + off + int64_t(i) * stride; }
};

// The (network, factor) item of this warp; false when the warp has none.
__device__ __forceinline__ bool warp_item(const SphereTable& t, int64_t B, int64_t& b, int32_t& f) {
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t F = int64_t(t.S) + 1;
  if (item >= B * F) return false;
  b = item / F;
  f = static_cast<int32_t>(item - b * F);
  return true;
}

__device__ __forceinline__ Fac sphere_factor(const SphereTable& t, int64_t b, int32_t f) {
  return {b * t.P, t.offset[f], t.stride[f], t.dim[f]};
}

__device__ __forceinline__ int lane_id() { return threadIdx.x & 31; }

template <typename T>
__device__ T warp_sum_sq(const T* x, const Fac& s) {
  T acc = 0;
  for (int32_t i = lane_id(); i < s.K; i += 32) acc += x[s.at(i)] * x[s.at(i)];
  return warp_sum(acc);
}

template <typename T>
__device__ T warp_dot(const T* x, const T* y, const Fac& s) {
  T acc = 0;
  for (int32_t i = lane_id(); i < s.K; i += 32) acc += x[s.at(i)] * y[s.at(i)];
  return warp_sum(acc);
}

// First index of the smallest |x_i| (ties → lowest index), on every lane.
template <typename T>
__device__ int32_t warp_argmin_abs(const T* x, const Fac& s) {
  T best = T(INFINITY);
  int32_t k = 0x7fffffff;
  for (int32_t i = lane_id(); i < s.K; i += 32) {
    const T a = m_abs(x[s.at(i)]);
    if (a < best) {  // lanes see increasing i, so the first minimum per lane wins
      best = a;
      k = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const T ob = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t ok = __shfl_xor_sync(0xffffffffu, k, o);
    if (ob < best || (ob == best && ok < k)) {
      best = ob;
      k = ok;
    }
  }
  return k == 0x7fffffff ? 0 : k;  // all NaN: index 0
}

// out ← out/‖out‖ (e_0 when ‖out‖² underflows). Each lane rereads only the elements it wrote.
template <typename T>
__device__ void warp_renormalise(T* out, const Fac& s) {
  const T nsq = warp_sum_sq(out, s);
  if (is_zero_sq(nsq)) {
    for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = (i == 0) ? T(1) : T(0);
    return;
  }
  const T inv = T(1) / m_sqrt(nsq);
  for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = out[s.at(i)] * inv;
}

// ---- kernels ------------------------------------------------------------------------------------------------

template <typename T>
__global__ void project_forward_kernel(T* out, const T* x, SphereTable t, int64_t B) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int64_t base = b * t.P;
  if (f == t.S) {
    for (int64_t i = t.E + lane_id(); i < t.P; i += 32) out[base + i] = x[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  const T nsq = warp_sum_sq(x, s);
  if (is_zero_sq(nsq)) {
    for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = (i == 0) ? T(1) : T(0);
    return;
  }
  const T inv = T(1) / m_sqrt(nsq);
  for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = x[s.at(i)] * inv;
}

template <typename T>
__global__ void tangent_forward_kernel(T* out, const T* x, const T* u, SphereTable t, int64_t B) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int64_t base = b * t.P;
  if (f == t.S) {
    for (int64_t i = t.E + lane_id(); i < t.P; i += 32) out[base + i] = u[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  const T c = warp_dot(x, u, s);
  for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = u[s.at(i)] - c * x[s.at(i)];
}

template <typename T>
__global__ void expmap_forward_kernel(T* out, const T* x, const T* u, SphereTable t, int64_t B, bool ref) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int64_t base = b * t.P;
  if (f == t.S) {
    for (int64_t i = t.E + lane_id(); i < t.P; i += 32) out[base + i] = x[base + i] + u[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  const geo::ExpCoef<T> c = geo::expmap_coef(warp_sum_sq(u, s), ref);
  for (int32_t i = lane_id(); i < s.K; i += 32) out[s.at(i)] = c.cx * x[s.at(i)] + c.cu * u[s.at(i)];
  if (c.renorm) warp_renormalise(out, s);
}

template <typename T>
__global__ void logmap_forward_kernel(T* out, const T* x, const T* y, SphereTable t, int64_t B, bool ref) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int lane = lane_id();
  const int64_t base = b * t.P;
  if (f == t.S) {
    for (int64_t i = t.E + lane; i < t.P; i += 32) out[base + i] = y[base + i] - x[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  if (ref) {
    T cxy = 0, cd = 0;
    for (int32_t i = lane; i < s.K; i += 32) {
      cxy += x[s.at(i)] * y[s.at(i)];
      cd += x[s.at(i)] * (y[s.at(i)] - x[s.at(i)]);
    }
    cxy = warp_sum(cxy);
    cd = warp_sum(cd);
    T wsq = 0;
    for (int32_t i = lane; i < s.K; i += 32) {
      const T w = (y[s.at(i)] - x[s.at(i)]) - cd * x[s.at(i)];
      wsq += w * w;
    }
    const geo::LogCoef<T> lc = geo::logmap_coef_reference(cxy, m_sqrt(warp_sum(wsq)));
    for (int32_t i = lane; i < s.K; i += 32) out[s.at(i)] = lc.f * ((y[s.at(i)] - x[s.at(i)]) - cd * x[s.at(i)]);
    return;
  }
  // x̂ = x/‖x‖ (e_0 for a zero factor), c = ⟨x̂, y⟩, w = y − c·x̂ (as geometry_cpu.cc)
  const T nxs = warp_sum_sq(x, s);
  const bool zx = is_zero_sq(nxs);
  const T inx = zx ? T(0) : T(1) / m_sqrt(nxs), ex = zx ? T(1) : T(0);
  auto xh = [&](int32_t i) { return x[s.at(i)] * inx + (i == 0 ? ex : T(0)); };
  const T c = warp_dot(x, y, s) * inx + ex * y[s.at(0)];
  T wsq = 0;
  for (int32_t i = lane; i < s.K; i += 32) {
    const T w = y[s.at(i)] - c * xh(i);
    wsq += w * w;
  }
  const geo::LogCoef<T> lc = geo::logmap_coef_accurate(c, m_sqrt(warp_sum(wsq)));
  if (lc.antipodal) {  // warp-uniform branch
    const int32_t k = warp_argmin_abs(x, s);
    const T xk = xh(k);
    const T sc = geo::antipodal_scale(lc.theta, xk, T(1), s.K);
    __syncwarp();  // every lane has read x_k before any lane overwrites it (out may alias x)
    for (int32_t i = lane; i < s.K; i += 32) out[s.at(i)] = sc * ((i == k ? T(1) : T(0)) - xk * xh(i));
    return;
  }
  __syncwarp();  // every lane has read y_0 before any lane overwrites it (out may alias y)
  for (int32_t i = lane; i < s.K; i += 32) out[s.at(i)] = lc.f * (y[s.at(i)] - c * xh(i));
}

template <typename T>
__global__ void dist_forward_kernel(T* out, const T* x, const T* y, SphereTable t, int64_t B, bool ref) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int lane = lane_id();
  const int64_t base = b * t.P;
  const int64_t F = int64_t(t.S) + 1;
  if (f == t.S) {
    T acc = 0;
    for (int64_t i = t.E + lane; i < t.P; i += 32) {
      const T d = x[base + i] - y[base + i];
      acc += d * d;
    }
    acc = warp_sum(acc);
    if (lane == 0) out[b * F + f] = m_sqrt(acc);
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  if (ref) {
    const T th = geo::ref_dist_from_inner(warp_dot(x, y, s));
    if (lane == 0) out[b * F + f] = th;
    return;
  }
  const T nxs = warp_sum_sq(x, s), nys = warp_sum_sq(y, s);
  const bool zx = is_zero_sq(nxs), zy = is_zero_sq(nys);
  const T nx = m_sqrt(nxs), ny = m_sqrt(nys);
    const T inx = T(1) / nx, iny = T(1) / ny;
  T a2 = 0, b2 = 0;
  for (int32_t i = lane; i < s.K; i += 32) {
    const T xb = zx ? (i == 0 ? T(1) : T(0)) : x[s.at(i)] * inx;
    const T yb = zy ? (i == 0 ? T(1) : T(0)) : y[s.at(i)] * iny;
    a2 += (xb - yb) * (xb - yb);
    b2 += (xb + yb) * (xb + yb);
  }
  a2 = warp_sum(a2);
  b2 = warp_sum(b2);
  if (lane == 0) out[b * F + f] = geo::dist_accurate(m_sqrt(a2), m_sqrt(b2));
}

template <typename T>
__global__ void interpolate_forward_kernel(T* out, const T* x0, const T* x1, const T* tt, SphereTable t, int64_t B,
                                           bool ref) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int lane = lane_id();
  const int64_t base = b * t.P;
  const T tb = tt[b];
  if (f == t.S) {
    for (int64_t i = t.E + lane; i < t.P; i += 32) out[base + i] = (T(1) - tb) * x0[base + i] + tb * x1[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  // x̂0 = x0/‖x0‖ in accurate mode (as logmap), x0 itself in reference mode
  T inx = T(1), ex = T(0);
  if (!ref) {
    const T nxs = warp_sum_sq(x0, s);
    const bool zx = is_zero_sq(nxs);
    inx = zx ? T(0) : T(1) / m_sqrt(nxs);
    ex = zx ? T(1) : T(0);
  }
  auto xh = [&](int32_t i) { return x0[s.at(i)] * inx + (i == 0 ? ex : T(0)); };
  T c = 0, cd = 0;
  for (int32_t i = lane; i < s.K; i += 32) {
    c += x0[s.at(i)] * x1[s.at(i)];
    if (ref) cd += x0[s.at(i)] * (x1[s.at(i)] - x0[s.at(i)]);
  }
  c = warp_sum(c);
  if (ref) {
    cd = warp_sum(cd);
  } else {
    c = c * inx + ex * x1[s.at(0)];
  }
  auto w_at = [&](int32_t i) { return ref ? (x1[s.at(i)] - x0[s.at(i)]) - cd * x0[s.at(i)] : x1[s.at(i)] - c * xh(i); };
  T wsq = 0;
  for (int32_t i = lane; i < s.K; i += 32) wsq += w_at(i) * w_at(i);
  const T wn = m_sqrt(warp_sum(wsq));
  const geo::LogCoef<T> lc = ref ? geo::logmap_coef_reference(c, wn) : geo::logmap_coef_accurate(c, wn);
  int32_t k = -1;
  T xk = 0;
  if (lc.antipodal) {
    k = warp_argmin_abs(x0, s);
    xk = xh(k);
  }
  const geo::InterpCoef<T> ic = geo::interpolate_coef(lc, wn, tb, xk, T(1), s.K, ref);
  __syncwarp();  // x_k and x1_0 read by every lane before any write (out may alias x0 or x1)
  for (int32_t i = lane; i < s.K; i += 32) {
    const T xv = xh(i);
    T v = ic.alpha * xv;
    if (ic.k != T(0)) v += ic.k * w_at(i);
    if (ic.kappa != T(0)) v += ic.kappa * ((i == k ? T(1) : T(0)) - xk * xv);
    out[s.at(i)] = v;
  }
  if (ic.renorm) warp_renormalise(out, s);
}

template <typename T>
__global__ void euler_step_forward_kernel(T* out, const T* x, const T* v, SphereTable t, int64_t B, T dt, bool ref) {
  int64_t b;
  int32_t f;
  if (!warp_item(t, B, b, f)) return;
  const int lane = lane_id();
  const int64_t base = b * t.P;
  if (f == t.S) {
    for (int64_t i = t.E + lane; i < t.P; i += 32) out[base + i] = x[base + i] + dt * v[base + i];
    return;
  }
  const Fac s = sphere_factor(t, b, f);
  if (ref) {
    T usq = 0;
    for (int32_t i = lane; i < s.K; i += 32) usq += (dt * v[s.at(i)]) * (dt * v[s.at(i)]);
    const geo::ExpCoef<T> c = geo::expmap_coef(warp_sum(usq), true);
    for (int32_t i = lane; i < s.K; i += 32) out[s.at(i)] = c.cx * x[s.at(i)] + c.cu * (dt * v[s.at(i)]);
    if (c.renorm) warp_renormalise(out, s);
    return;
  }
  const T nxs = warp_sum_sq(x, s);
  const bool zx = is_zero_sq(nxs);
  const T nx = m_sqrt(nxs);
  const T inx = T(1) / nx;
  auto xh = [&](int32_t i) { return zx ? (i == 0 ? T(1) : T(0)) : x[s.at(i)] * inx; };
  T p = 0;
  for (int32_t i = lane; i < s.K; i += 32) p += xh(i) * v[s.at(i)];
  p = warp_sum(p);
  T qsq = 0;
  for (int32_t i = lane; i < s.K; i += 32) {
    const T q = v[s.at(i)] - p * xh(i);
    qsq += q * q;
  }
  const T n = m_abs(dt) * m_sqrt(warp_sum(qsq));
  const T cs = geo::m_cos(n), sc = dt * geo::sinc(n);
  for (int32_t i = lane; i < s.K; i += 32) {
    const T xi = xh(i);
    out[s.at(i)] = cs * xi + sc * (v[s.at(i)] - p * xi);
  }
  warp_renormalise(out, s);
}

// One block per network: warps loop over the spheres, threads over the Euclidean block; per_network[b] = block sum.
template <typename T>
__global__ void loss_forward_kernel(T* per_network, T* dpred, const T* pred, const T* target, SphereTable t, int64_t B,
                                    bool ref) {
  __shared__ T shared[32];
  const int64_t b = blockIdx.x;
  const int lane = lane_id(), warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int64_t base = b * t.P;
  const T inv_b = T(1) / T(B);
  T acc = 0;  // sphere terms, on lane 0 of each warp
  for (int32_t f = warp; f < t.S; f += nwarps) {
    const Fac s = sphere_factor(t, b, f);
    const T wgt = T(t.weight[f]);
    if (ref) {
      const T c = warp_dot(pred, target, s);
      const T th = geo::ref_dist_from_inner(c);
      if (lane == 0) acc += wgt * th * th;
      if (dpred != nullptr) {
        const T g = wgt * inv_b * geo::ref_dsq_dinner(c, th);
        for (int32_t i = lane; i < s.K; i += 32) dpred[s.at(i)] = g * target[s.at(i)];
      }
      continue;
    }
    const T nxs = warp_sum_sq(pred, s), nys = warp_sum_sq(target, s);
    const bool zx = is_zero_sq(nxs), zy = is_zero_sq(nys);
    const T nx = m_sqrt(nxs), ny = m_sqrt(nys);
    const T inx = T(1) / nx, iny = T(1) / ny;
    auto xb = [&](int32_t i) { return zx ? (i == 0 ? T(1) : T(0)) : pred[s.at(i)] * inx; };
    auto yb = [&](int32_t i) { return zy ? (i == 0 ? T(1) : T(0)) : target[s.at(i)] * iny; };
    T a2 = 0, b2 = 0;
    for (int32_t i = lane; i < s.K; i += 32) {
      a2 += (xb(i) - yb(i)) * (xb(i) - yb(i));
      b2 += (xb(i) + yb(i)) * (xb(i) + yb(i));
    }
    a2 = warp_sum(a2);
    b2 = warp_sum(b2);
    const T a = m_sqrt(a2), bb = m_sqrt(b2);
    const T th = geo::dist_accurate(a, bb);
    if (lane == 0) acc += wgt * th * th;
    if (dpred == nullptr) continue;
    if (zx) {
      for (int32_t i = lane; i < s.K; i += 32) dpred[s.at(i)] = T(0);
      continue;
    }
    const geo::DistGradCoef<T> gc = geo::dist_grad_coef(a, bb, th);
    const T scale = T(-2) * wgt * inv_b / nx;
    if (gc.antipodal) {
      const int32_t k = warp_argmin_abs(pred, s);  // argmin |x̄_i| = argmin |x_i|
      const T xk = xb(k);
      const T sc = geo::antipodal_scale(th, xk, T(1), s.K);
      for (int32_t i = lane; i < s.K; i += 32) dpred[s.at(i)] = scale * sc * ((i == k ? T(1) : T(0)) - xk * xb(i));
    } else if (gc.use_sum) {
      const T h = b2 / T(2);
      for (int32_t i = lane; i < s.K; i += 32) dpred[s.at(i)] = scale * gc.f * ((xb(i) + yb(i)) - h * xb(i));
    } else {
      const T h = a2 / T(2);
      for (int32_t i = lane; i < s.K; i += 32) dpred[s.at(i)] = scale * gc.f * (h * xb(i) - (xb(i) - yb(i)));
    }
  }
  const int64_t nbias = int64_t(t.P) - t.E;
  const T gb = T(2) * inv_b / T(nbias);
  T sq = 0;
  for (int64_t i = t.E + threadIdx.x; i < t.P; i += blockDim.x) {
    const T d = pred[base + i] - target[base + i];
    sq += d * d;
    if (dpred != nullptr) dpred[base + i] = gb * d;
  }
  const T total = block_sum(acc + sq / T(nbias), shared);
  if (threadIdx.x == 0) per_network[b] = total;
}

template <typename T>
__global__ void mean_kernel(T* loss, const T* per_network, int64_t B) {
  __shared__ T shared[32];
  T acc = 0;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) acc += per_network[b];
  const T total = block_sum(acc, shared);
  if (threadIdx.x == 0) loss[0] = total / T(B);
}

int warp_grid(const SphereTable& t, int64_t B) { return ceil_div(B * (int64_t(t.S) + 1), kWarps); }

Status check_grid(const SphereTable& t, int64_t B) {
  if (B * (int64_t(t.S) + 1) > int64_t(kWarps) * 0x7fffffffLL) return invalid("batch too large for one launch");
  return Status::ok();
}

}  // namespace

#define WSF_GEO_LAUNCH(name, kernel, ...)                                                       \
  do {                                                                                          \
    if (B <= 0) return Status::ok();                                                            \
    WSF_RETURN_IF_ERROR(check_grid(t, B));                                                      \
    launch_kernel(kernel<float>, warp_grid(t, B), dim3(kThreads), 0, static_cast<cudaStream_t>(stream), __VA_ARGS__); \
    return cuda_launch_status(name);                                                            \
  } while (0)

Status geometry_project_forward_cuda(float* out, const float* x, const SphereTable& t, int64_t B, GeoMode,
                                     void* stream) {
  WSF_GEO_LAUNCH("project_forward_kernel", project_forward_kernel, out, x, t, B);
}
Status geometry_tangent_forward_cuda(float* out, const float* x, const float* u, const SphereTable& t, int64_t B,
                                     GeoMode, void* stream) {
  WSF_GEO_LAUNCH("tangent_forward_kernel", tangent_forward_kernel, out, x, u, t, B);
}
Status geometry_expmap_forward_cuda(float* out, const float* x, const float* u, const SphereTable& t, int64_t B,
                                    GeoMode mode, void* stream) {
  WSF_GEO_LAUNCH("expmap_forward_kernel", expmap_forward_kernel, out, x, u, t, B, mode == GeoMode::Reference);
}
Status geometry_logmap_forward_cuda(float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                                    GeoMode mode, void* stream) {
  WSF_GEO_LAUNCH("logmap_forward_kernel", logmap_forward_kernel, out, x, y, t, B, mode == GeoMode::Reference);
}
Status geometry_dist_forward_cuda(float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                                  GeoMode mode, void* stream) {
  WSF_GEO_LAUNCH("dist_forward_kernel", dist_forward_kernel, out, x, y, t, B, mode == GeoMode::Reference);
}
Status geometry_interpolate_forward_cuda(float* out, const float* x0, const float* x1, const float* tt,
                                         const SphereTable& t, int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_LAUNCH("interpolate_forward_kernel", interpolate_forward_kernel, out, x0, x1, tt, t, B,
                 mode == GeoMode::Reference);
}
Status geometry_euler_step_forward_cuda(float* out, const float* x, const float* v, const SphereTable& t, int64_t B,
                                        float dt, GeoMode mode, void* stream) {
  WSF_GEO_LAUNCH("euler_step_forward_kernel", euler_step_forward_kernel, out, x, v, t, B, dt,
                 mode == GeoMode::Reference);
}
#undef WSF_GEO_LAUNCH

Status geometry_loss_forward_cuda(float* loss, float* per_network, float* dpred, const float* pred,
                                  const float* target, const SphereTable& t, int64_t B, GeoMode mode, void* stream) {
  if (B <= 0) return Status::ok();
  if (B > 0x7fffffffLL) return invalid("batch too large for one launch");
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  launch_kernel(loss_forward_kernel<float>, dim3(static_cast<unsigned>(B)), dim3(kThreads), 0, st, per_network, dpred, pred,
                target, t, B, mode == GeoMode::Reference);
  WSF_RETURN_IF_ERROR(cuda_launch_status("loss_forward_kernel"));
  launch_kernel(mean_kernel<float>, dim3(1), dim3(1024), 0, st, loss, per_network, B);
  return cuda_launch_status("mean_kernel");
}

}  // namespace wsf
