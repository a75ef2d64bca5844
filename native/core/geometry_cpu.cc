// CPU reference of the product-manifold geometry (geometry.h): project, tangent projection, expmap, logmap,
// dist, interpolate, Euler step and the loss with its gradient, templated on T (float, double), plus the table
// builder (GeometryLayout) and the float dispatchers.
//
// Math per sphere factor (Accurate mode; Reference in geometry.h): Exp_x(u) = x cos‖u‖ + u sin‖u‖/‖u‖,
// Log_x(y) = w·atan2(‖w‖, ⟨x,y⟩)/‖w‖ with w = y − ⟨x,y⟩x, d(x, y) = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖).
// Shapes: x, y, u, v, out [B·P]; dist out [B·F], F = S + 1; tt [B]; per_network [B]; loss [1].
// Outputs are overwritten. Work is split over (network, factor) items with parallel_for (the loss over
// networks, so each network's sum has one fixed order). Reductions accumulate in T, sequentially in i.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/geometry.h"
#include "core/geometry_math.h"
#include "core/parallel.h"

namespace wsf {

using geo::is_zero_sq;
using geo::m_abs;
using geo::m_sqrt;

namespace {

// One factor of one network: element i sits at base + off + i·stride.
struct Fac {
  int64_t base, off, stride;
  int32_t K;
  int64_t at(int64_t i) const { return base + off + i * stride; }
};

Fac sphere_factor(const SphereTable& t, int64_t b, int32_t f) {
  return {b * t.P, t.offset[f], t.stride[f], t.dim[f]};
}

// Runs fn(b, f) for every network b < B and factor f ≤ S (f == S is the Euclidean block E…P−1).
template <class Fn>
void for_each_factor(const SphereTable& t, int64_t B, Fn&& fn) {
  const int64_t F = int64_t(t.S) + 1;
  parallel_for(B * F, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) fn(it / F, static_cast<int32_t>(it % F));
  });
}

// First index of the smallest |x_i| in the factor (the antipodal fallback's basis vector).
template <typename T>
int32_t argmin_abs(const T* x, const Fac& s) {
  int32_t k = 0;
  T best = m_abs(x[s.at(0)]);
  for (int32_t i = 1; i < s.K; ++i) {
    const T a = m_abs(x[s.at(i)]);
    if (a < best) {
      best = a;
      k = i;
    }
  }
  return k;
}

template <typename T>
T sum_sq(const T* x, const Fac& s) {
  T acc = 0;
  for (int32_t i = 0; i < s.K; ++i) acc += x[s.at(i)] * x[s.at(i)];
  return acc;
}

template <typename T>
T dot(const T* x, const T* y, const Fac& s) {
  T acc = 0;
  for (int32_t i = 0; i < s.K; ++i) acc += x[s.at(i)] * y[s.at(i)];
  return acc;
}

// out ← out/‖out‖ (e_0 when ‖out‖² underflows).
template <typename T>
void renormalise(T* out, const Fac& s) {
  const T nsq = sum_sq(out, s);
  if (is_zero_sq(nsq)) {
    for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = (i == 0) ? T(1) : T(0);
    return;
  }
  const T inv = T(1) / m_sqrt(nsq);
  for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = out[s.at(i)] * inv;
}

}  // namespace

// ---- project ------------------------------------------------------------------------------------------------
template <typename T>
void geometry_project_forward_cpu(T* out, const T* x, const SphereTable& t, int64_t B, GeoMode) {
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {  // Euclidean block: identity
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    // x / ‖x‖, or e_0 for a zero factor
    const T nsq = sum_sq(x, s);
    if (is_zero_sq(nsq)) {
      for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = (i == 0) ? T(1) : T(0);
      return;
    }
    const T inv = T(1) / m_sqrt(nsq);
    for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = x[s.at(i)] * inv;
  });
}

// ---- tangent projection -------------------------------------------------------------------------------------
template <typename T>
void geometry_tangent_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode) {
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = u[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    const T c = dot(x, u, s);  // ⟨x, u⟩
    for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = u[s.at(i)] - c * x[s.at(i)];
  });
}

// ---- expmap -------------------------------------------------------------------------------------------------
template <typename T>
void geometry_expmap_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i] + u[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    // n = ‖u‖ → x cos n + u sin(n)/n (series for small n), or geoopt's branch in reference mode
    const geo::ExpCoef<T> c = geo::expmap_coef(sum_sq(u, s), ref);
    for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = c.cx * x[s.at(i)] + c.cu * u[s.at(i)];
    if (c.renorm) renormalise(out, s);
  });
}

// ---- logmap -------------------------------------------------------------------------------------------------
template <typename T>
void geometry_logmap_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = y[base + i] - x[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    if (ref) {
      // w = (y − x) − ⟨x, y − x⟩x; θ = acos(clamp⟨x, y⟩); out = w·θ/max(‖w‖, EPS) (or w when θ ≤ EPS)
      const T cxy = dot(x, y, s);
      T cd = 0;
      for (int32_t i = 0; i < s.K; ++i) cd += x[s.at(i)] * (y[s.at(i)] - x[s.at(i)]);
      T wsq = 0;
      for (int32_t i = 0; i < s.K; ++i) {
        const T w = (y[s.at(i)] - x[s.at(i)]) - cd * x[s.at(i)];
        wsq += w * w;
      }
      const geo::LogCoef<T> lc = geo::logmap_coef_reference(cxy, m_sqrt(wsq));
      for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = lc.f * ((y[s.at(i)] - x[s.at(i)]) - cd * x[s.at(i)]);
      return;
    }
    // c = ⟨x, y⟩, w = y − c·x, θ = atan2(‖w‖, c), out = w·θ/‖w‖
    const T c = dot(x, y, s);
    T wsq = 0;
    for (int32_t i = 0; i < s.K; ++i) {
      const T w = y[s.at(i)] - c * x[s.at(i)];
      wsq += w * w;
    }
    const geo::LogCoef<T> lc = geo::logmap_coef_accurate(c, m_sqrt(wsq));
    if (lc.antipodal) {
      // no reliable direction: θ·(e_k − x_k·x)/‖e_k − x_k·x‖, k = argmin |x_k|
      const int32_t k = argmin_abs(x, s);
      const T xk = x[s.at(k)];
      const T sc = geo::antipodal_scale(lc.theta, xk, sum_sq(x, s), s.K);
      for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = sc * ((i == k ? T(1) : T(0)) - xk * x[s.at(i)]);
      return;
    }
    for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = lc.f * (y[s.at(i)] - c * x[s.at(i)]);
  });
}

// ---- dist ---------------------------------------------------------------------------------------------------
template <typename T>
void geometry_dist_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const int64_t F = int64_t(t.S) + 1;
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {  // Euclidean distance of the bias blocks
      T acc = 0;
      for (int64_t i = t.E; i < t.P; ++i) {
        const T d = x[base + i] - y[base + i];
        acc += d * d;
      }
      out[b * F + f] = m_sqrt(acc);
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    if (ref) {  // acos(clamp(⟨x, y⟩, −1 + EPS, 1 − EPS))
      out[b * F + f] = geo::ref_dist_from_inner(dot(x, y, s));
      return;
    }
    // θ = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖) on the normalised inputs (e_0 for a zero input)
    const T nxs = sum_sq(x, s), nys = sum_sq(y, s);
    const bool zx = is_zero_sq(nxs), zy = is_zero_sq(nys);
    const T nx = m_sqrt(nxs), ny = m_sqrt(nys);
    const T inx = T(1) / nx, iny = T(1) / ny;
    T a2 = 0, b2 = 0;
    for (int32_t i = 0; i < s.K; ++i) {
      const T xb = zx ? (i == 0 ? T(1) : T(0)) : x[s.at(i)] * inx;
      const T yb = zy ? (i == 0 ? T(1) : T(0)) : y[s.at(i)] * iny;
      a2 += (xb - yb) * (xb - yb);
      b2 += (xb + yb) * (xb + yb);
    }
    out[b * F + f] = geo::dist_accurate(m_sqrt(a2), m_sqrt(b2));
  });
}

// ---- interpolate --------------------------------------------------------------------------------------------
template <typename T>
void geometry_interpolate_forward_cpu(T* out, const T* x0, const T* x1, const T* tt, const SphereTable& t, int64_t B,
                                      GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    const T tb = tt[b];
    if (f == t.S) {  // (1 − t)·b0 + t·b1
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = (T(1) - tb) * x0[base + i] + tb * x1[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    // Log_{x0}(x1) = f·w (w as in logmap), then Exp_{x0}(t·Log): out_i = α·x0_i + k·w_i + κ·(δ_ik − x_k·x0_i)
    const T c = dot(x0, x1, s);
    T cd = 0;  // reference: ⟨x0, x1 − x0⟩
    if (ref) {
      for (int32_t i = 0; i < s.K; ++i) cd += x0[s.at(i)] * (x1[s.at(i)] - x0[s.at(i)]);
    }
    auto w_at = [&](int32_t i) {
      return ref ? (x1[s.at(i)] - x0[s.at(i)]) - cd * x0[s.at(i)] : x1[s.at(i)] - c * x0[s.at(i)];
    };
    T wsq = 0;
    for (int32_t i = 0; i < s.K; ++i) wsq += w_at(i) * w_at(i);
    const T wn = m_sqrt(wsq);
    const geo::LogCoef<T> lc = ref ? geo::logmap_coef_reference(c, wn) : geo::logmap_coef_accurate(c, wn);
    int32_t k = -1;
    T xk = 0, xnsq = 0;
    if (lc.antipodal) {
      k = argmin_abs(x0, s);
      xk = x0[s.at(k)];
      xnsq = sum_sq(x0, s);
    }
    const geo::InterpCoef<T> ic = geo::interpolate_coef(lc, wn, tb, xk, xnsq, s.K, ref);
    for (int32_t i = 0; i < s.K; ++i) {
      T v = ic.alpha * x0[s.at(i)];
      if (ic.k != T(0)) v += ic.k * w_at(i);
      if (ic.kappa != T(0)) v += ic.kappa * ((i == k ? T(1) : T(0)) - xk * x0[s.at(i)]);
      out[s.at(i)] = v;
    }
    if (ic.renorm) renormalise(out, s);
  });
}

// ---- Euler step ---------------------------------------------------------------------------------------------
template <typename T>
void geometry_euler_step_forward_cpu(T* out, const T* x, const T* v, const SphereTable& t, int64_t B, T dt,
                                     GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  for_each_factor(t, B, [&](int64_t b, int32_t f) {
    const int64_t base = b * t.P;
    if (f == t.S) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i] + dt * v[base + i];
      return;
    }
    const Fac s = sphere_factor(t, b, f);
    if (ref) {
      // geoopt: Exp_x(dt·v) with v not projected (drifts off the sphere, METHOD.md §6.3)
      T usq = 0;
      for (int32_t i = 0; i < s.K; ++i) usq += (dt * v[s.at(i)]) * (dt * v[s.at(i)]);
      const geo::ExpCoef<T> c = geo::expmap_coef(usq, true);
      for (int32_t i = 0; i < s.K; ++i) out[s.at(i)] = c.cx * x[s.at(i)] + c.cu * (dt * v[s.at(i)]);
      if (c.renorm) renormalise(out, s);
      return;
    }
    // x̂ = x/‖x‖; q = v − ⟨x̂, v⟩x̂; out = normalise(x̂ cos n + dt·q·sin(n)/n), n = |dt|·‖q‖
    const T nxs = sum_sq(x, s);
    const bool zx = is_zero_sq(nxs);
    const T nx = m_sqrt(nxs);
    const T inx = T(1) / nx;
    auto xh = [&](int32_t i) { return zx ? (i == 0 ? T(1) : T(0)) : x[s.at(i)] * inx; };
    T p = 0;
    for (int32_t i = 0; i < s.K; ++i) p += xh(i) * v[s.at(i)];
    T qsq = 0;
    for (int32_t i = 0; i < s.K; ++i) {
      const T q = v[s.at(i)] - p * xh(i);
      qsq += q * q;
    }
    const T n = m_abs(dt) * m_sqrt(qsq);
    const T cs = geo::m_cos(n), sc = dt * geo::sinc(n);
    for (int32_t i = 0; i < s.K; ++i) {
      const T xi = xh(i);
      out[s.at(i)] = cs * xi + sc * (v[s.at(i)] - p * xi);
    }
    renormalise(out, s);
  });
}

// ---- loss and its gradient ----------------------------------------------------------------------------------
template <typename T>
void geometry_loss_forward_cpu(T* loss, T* per_network, T* dpred, const T* pred, const T* target, const SphereTable& t,
                               int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const T inv_b = T(1) / T(B);
  const int64_t nbias = int64_t(t.P) - t.E;
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const int64_t base = b * t.P;
      T acc = 0;
      for (int32_t f = 0; f < t.S; ++f) {
        const Fac s = sphere_factor(t, b, f);
        const T wgt = T(t.weight[f]);
        if (ref) {
          // θ = acos(clamp⟨p, q⟩); ∂θ²/∂p = 2θ·acos'(c)·q inside the clamp range, 0 outside
          const T c = dot(pred, target, s);
          const T th = geo::ref_dist_from_inner(c);
          acc += wgt * th * th;
          if (dpred != nullptr) {
            const T g = wgt * inv_b * geo::ref_dsq_dinner(c, th);
            for (int32_t i = 0; i < s.K; ++i) dpred[s.at(i)] = g * target[s.at(i)];
          }
          continue;
        }
        // θ = 2·atan2(‖p̄ − q̄‖, ‖p̄ + q̄‖); ∂θ²/∂p = −2·Log_{p̄}(q̄)/‖p‖ (geometry_math.h)
        const T nxs = sum_sq(pred, s), nys = sum_sq(target, s);
        const bool zx = is_zero_sq(nxs), zy = is_zero_sq(nys);
        const T nx = m_sqrt(nxs), ny = m_sqrt(nys);
        const T inx = T(1) / nx, iny = T(1) / ny;
        auto xb = [&](int32_t i) { return zx ? (i == 0 ? T(1) : T(0)) : pred[s.at(i)] * inx; };
        auto yb = [&](int32_t i) { return zy ? (i == 0 ? T(1) : T(0)) : target[s.at(i)] * iny; };
        T a2 = 0, b2 = 0;
        for (int32_t i = 0; i < s.K; ++i) {
          a2 += (xb(i) - yb(i)) * (xb(i) - yb(i));
          b2 += (xb(i) + yb(i)) * (xb(i) + yb(i));
        }
        const T a = m_sqrt(a2), bb = m_sqrt(b2);
        const T th = geo::dist_accurate(a, bb);
        acc += wgt * th * th;
        if (dpred == nullptr) continue;
        if (zx) {  // θ is not differentiable at p = 0: gradient 0 (documented)
          for (int32_t i = 0; i < s.K; ++i) dpred[s.at(i)] = T(0);
          continue;
        }
        const geo::DistGradCoef<T> gc = geo::dist_grad_coef(a, bb, th);
        const T scale = T(-2) * wgt * inv_b / nx;
        if (gc.antipodal) {
          int32_t k = 0;
          T best = m_abs(xb(0));
          for (int32_t i = 1; i < s.K; ++i) {
            if (m_abs(xb(i)) < best) {
              best = m_abs(xb(i));
              k = i;
            }
          }
          const T xk = xb(k);
          const T sc = geo::antipodal_scale(th, xk, T(1), s.K);
          for (int32_t i = 0; i < s.K; ++i) dpred[s.at(i)] = scale * sc * ((i == k ? T(1) : T(0)) - xk * xb(i));
        } else if (gc.use_sum) {
          const T h = b2 / T(2);
          for (int32_t i = 0; i < s.K; ++i) dpred[s.at(i)] = scale * gc.f * ((xb(i) + yb(i)) - h * xb(i));
        } else {
          const T h = a2 / T(2);
          for (int32_t i = 0; i < s.K; ++i) dpred[s.at(i)] = scale * gc.f * (h * xb(i) - (xb(i) - yb(i)));
        }
      }
      // Euclidean block: mean over its entries of (p − q)²
      T sq = 0;
      const T gb = T(2) * inv_b / T(nbias);
      for (int64_t i = t.E; i < t.P; ++i) {
        const T d = pred[base + i] - target[base + i];
        sq += d * d;
        if (dpred != nullptr) dpred[base + i] = gb * d;
      }
      per_network[b] = acc + sq / T(nbias);
    }
  });
  double total = 0;
  for (int64_t b = 0; b < B; ++b) total += double(per_network[b]);
  loss[0] = T(total / double(B));
}

#define WSF_INSTANTIATE_GEOMETRY(T)                                                                               \
  template void geometry_project_forward_cpu<T>(T*, const T*, const SphereTable&, int64_t, GeoMode);             \
  template void geometry_tangent_forward_cpu<T>(T*, const T*, const T*, const SphereTable&, int64_t, GeoMode);   \
  template void geometry_expmap_forward_cpu<T>(T*, const T*, const T*, const SphereTable&, int64_t, GeoMode);    \
  template void geometry_logmap_forward_cpu<T>(T*, const T*, const T*, const SphereTable&, int64_t, GeoMode);    \
  template void geometry_dist_forward_cpu<T>(T*, const T*, const T*, const SphereTable&, int64_t, GeoMode);      \
  template void geometry_interpolate_forward_cpu<T>(T*, const T*, const T*, const T*, const SphereTable&, int64_t, \
                                                    GeoMode);                                                    \
  template void geometry_euler_step_forward_cpu<T>(T*, const T*, const T*, const SphereTable&, int64_t, T, GeoMode); \
  template void geometry_loss_forward_cpu<T>(T*, T*, T*, const T*, const T*, const SphereTable&, int64_t, GeoMode);
WSF_INSTANTIATE_GEOMETRY(float)
WSF_INSTANTIATE_GEOMETRY(double)
#undef WSF_INSTANTIATE_GEOMETRY

// ---- GeometryLayout -----------------------------------------------------------------------------------------

Status GeometryLayout::build(const std::vector<int32_t>& widths, bool euclidean, GeometryLayout* out) {
  if (widths.size() < 2) return invalid("an architecture needs at least 2 widths (inputs and outputs)");
  int64_t e = 0, p = 0, h = 0;
  for (size_t l = 0; l < widths.size(); ++l) {
    if (widths[l] < 1) return invalid("width " + std::to_string(l) + " must be ≥ 1");
    if (l > 0) e += int64_t(widths[l - 1]) * widths[l];
  }
  p = e;
  for (size_t l = 1; l < widths.size(); ++l) p += widths[l];
  if (p > INT32_MAX) return invalid("the architecture has more than 2^31 − 1 parameters");
  GeometryLayout g;
  g.widths_ = widths;
  g.L_ = static_cast<int32_t>(widths.size()) - 1;
  g.P_ = static_cast<int32_t>(p);
  g.Ew_ = static_cast<int32_t>(e);
  for (int32_t l = 1; l < g.L_; ++l) h += widths[l];
  g.H_ = static_cast<int32_t>(h);
  if (euclidean) {
    g.S_ = 0;
    g.E_ = 0;
  } else {
    const int32_t L = g.L_;
    int64_t off = 0;
    for (int32_t l = 1; l <= L; ++l) {
      const int32_t n_in = widths[l - 1], n = widths[l];
      if (l < L) {
        for (int32_t j = 0; j < n; ++j) {  // hidden neuron j: incoming column, stride n_l
          g.offset_.push_back(static_cast<int32_t>(off + j));
          g.stride_.push_back(n);
          g.dim_.push_back(n_in);
          g.layer_.push_back(l);
          g.weight_.push_back(1.0 / (double(L) * double(n)));
        }
      } else {  // the whole last layer, contiguous
        g.offset_.push_back(static_cast<int32_t>(off));
        g.stride_.push_back(1);
        g.dim_.push_back(n_in * n);
        g.layer_.push_back(L);
        g.weight_.push_back(1.0 / double(L));
      }
      off += int64_t(n_in) * n;
    }
    g.S_ = static_cast<int32_t>(g.offset_.size());
    g.E_ = g.Ew_;
    g.max_dim_ = *std::max_element(g.dim_.begin(), g.dim_.end());
  }
  *out = std::move(g);
  return Status::ok();
}

SphereTable GeometryLayout::host_table() const {
  SphereTable t;
  t.offset = offset_.data();
  t.stride = stride_.data();
  t.dim = dim_.data();
  t.layer = layer_.data();
  t.weight = weight_.data();
  t.S = S_;
  t.P = P_;
  t.E = E_;
  t.L = L_;
  t.max_dim = max_dim_;
  return t;
}

LayerTable GeometryLayout::host_layers() const {
  LayerTable t;
  t.widths = widths_.data();
  t.L = L_;
  t.P = P_;
  t.E = Ew_;
  t.H = H_;
  return t;
}

Status GeometryLayout::upload_sphere_tables() {
  if (S_ == 0) return Status::ok();
  const size_t n = size_t(S_);
  WSF_RETURN_IF_ERROR(d_offset_.allocate(Device::Cuda, n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_offset_.upload(offset_.data(), n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_stride_.allocate(Device::Cuda, n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_stride_.upload(stride_.data(), n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_dim_.allocate(Device::Cuda, n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_dim_.upload(dim_.data(), n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_layer_.allocate(Device::Cuda, n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_layer_.upload(layer_.data(), n * sizeof(int32_t)));
  WSF_RETURN_IF_ERROR(d_weight_.allocate(Device::Cuda, n * sizeof(double)));
  WSF_RETURN_IF_ERROR(d_weight_.upload(weight_.data(), n * sizeof(double)));
  return Status::ok();
}

Status GeometryLayout::device_table(SphereTable* out) {
  if (S_ > 0 && d_offset_.empty()) {
    Status st = upload_sphere_tables();
    if (!st.is_ok()) {
      d_offset_.release();
      return st;
    }
  }
  SphereTable t = host_table();
  t.offset = d_offset_.as<int32_t>();
  t.stride = d_stride_.as<int32_t>();
  t.dim = d_dim_.as<int32_t>();
  t.layer = d_layer_.as<int32_t>();
  t.weight = d_weight_.as<double>();
  *out = t;
  return Status::ok();
}

Status GeometryLayout::device_layers(LayerTable* out) {
  if (d_widths_.empty()) {
    const size_t bytes = widths_.size() * sizeof(int32_t);
    WSF_RETURN_IF_ERROR(d_widths_.allocate(Device::Cuda, bytes));
    Status st = d_widths_.upload(widths_.data(), bytes);
    if (!st.is_ok()) {
      d_widths_.release();
      return st;
    }
  }
  LayerTable t = host_layers();
  t.widths = d_widths_.as<int32_t>();
  *out = t;
  return Status::ok();
}

void GeometryLayout::release_device() {
  d_offset_.release();
  d_stride_.release();
  d_dim_.release();
  d_layer_.release();
  d_weight_.release();
  d_widths_.release();
}

// ---- Dispatchers --------------------------------------------------------------------------------------------

#ifdef WSF_WITH_CUDA
#define WSF_GEO_DISPATCH(cpu_call, cuda_call) \
  if (dev == Device::Cpu) {                  \
    cpu_call;                                \
    return Status::ok();                     \
  }                                          \
  return cuda_call;
#else
#define WSF_GEO_DISPATCH(cpu_call, cuda_call) \
  if (dev == Device::Cpu) {                  \
    cpu_call;                                \
    return Status::ok();                     \
  }                                          \
  return no_cuda();
#endif

Status geometry_project_forward(Device dev, float* out, const float* x, const SphereTable& t, int64_t B, GeoMode mode,
                                void* stream) {
  WSF_GEO_DISPATCH(geometry_project_forward_cpu<float>(out, x, t, B, mode),
                   geometry_project_forward_cuda(out, x, t, B, mode, stream))
}
Status geometry_tangent_forward(Device dev, float* out, const float* x, const float* u, const SphereTable& t,
                                int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_tangent_forward_cpu<float>(out, x, u, t, B, mode),
                   geometry_tangent_forward_cuda(out, x, u, t, B, mode, stream))
}
Status geometry_expmap_forward(Device dev, float* out, const float* x, const float* u, const SphereTable& t,
                               int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_expmap_forward_cpu<float>(out, x, u, t, B, mode),
                   geometry_expmap_forward_cuda(out, x, u, t, B, mode, stream))
}
Status geometry_logmap_forward(Device dev, float* out, const float* x, const float* y, const SphereTable& t,
                               int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_logmap_forward_cpu<float>(out, x, y, t, B, mode),
                   geometry_logmap_forward_cuda(out, x, y, t, B, mode, stream))
}
Status geometry_dist_forward(Device dev, float* out, const float* x, const float* y, const SphereTable& t, int64_t B,
                             GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_dist_forward_cpu<float>(out, x, y, t, B, mode),
                   geometry_dist_forward_cuda(out, x, y, t, B, mode, stream))
}
Status geometry_interpolate_forward(Device dev, float* out, const float* x0, const float* x1, const float* tt,
                                    const SphereTable& t, int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_interpolate_forward_cpu<float>(out, x0, x1, tt, t, B, mode),
                   geometry_interpolate_forward_cuda(out, x0, x1, tt, t, B, mode, stream))
}
Status geometry_euler_step_forward(Device dev, float* out, const float* x, const float* v, const SphereTable& t,
                                   int64_t B, float dt, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_euler_step_forward_cpu<float>(out, x, v, t, B, dt, mode),
                   geometry_euler_step_forward_cuda(out, x, v, t, B, dt, mode, stream))
}
Status geometry_loss_forward(Device dev, float* loss, float* per_network, float* dpred, const float* pred,
                             const float* target, const SphereTable& t, int64_t B, GeoMode mode, void* stream) {
  WSF_GEO_DISPATCH(geometry_loss_forward_cpu<float>(loss, per_network, dpred, pred, target, t, B, mode),
                   geometry_loss_forward_cuda(loss, per_network, dpred, pred, target, t, B, mode, stream))
}
#undef WSF_GEO_DISPATCH

}  // namespace wsf
