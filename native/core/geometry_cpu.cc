// CPU reference of the product-manifold geometry (geometry.h): project, tangent projection, expmap, logmap,
// dist, interpolate, Euler step and the loss with its gradient, templated on T (float, double), plus the table
// builder (GeometryLayout) and the float dispatchers.
//
// Math per sphere factor (Accurate mode; Reference in geometry.h): Exp_x(u) = x cos‖u‖ + u sin‖u‖/‖u‖,
// Log_x(y) = w·atan2(‖w‖, ⟨x,y⟩)/‖w‖ with w = y − ⟨x,y⟩x, d(x, y) = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖); the per-factor
// coefficients come from geometry_math.h, shared with the CUDA kernels.
// Shapes: x, y, u, v, out [B·P]; dist out [B·F], F = S + 1; tt [B]; per_network [B]; loss [1].
// Outputs are overwritten.
//
// Loop order. A hidden layer's spheres are the columns of its (in, out) block: factor j's element i sits at
// off + i·n_l + j. Walking one factor at a time would be strided and would chain every addition of a reduction
// on the previous one. Instead the factors of a layer are processed together as a Group of up to kChunk
// neighbouring columns: every pass walks the block row by row (contiguous in j), with one accumulator per factor.
// Each factor's sum still adds its elements in order i = 0…K−1, so results equal the one-factor-at-a-time
// evaluation; the chains are independent, and the inner loop over j vectorises. The whole last layer is a Group
// of one contiguous factor. Work is split over (network, group) items with parallel_for; the loss over networks,
// so each network's sum has one fixed order (factor order, then the Euclidean block).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/geometry.h"
#include "core/geometry_math.h"
#include "core/parallel.h"

namespace wsf {

using geo::is_zero_sq;
using geo::m_abs;
using geo::m_sqrt;

namespace {

constexpr int32_t kChunk = 64;  // factors per group (the per-factor scratch lives on the stack)

// Up to kChunk sphere factors f0…f0+nj−1 of one layer; element i of factor j of network b sits at
// b·P + off + i·ld + j.
struct Group {
  int64_t off;
  int32_t ld, nj, K, f0;
};

std::vector<Group> make_groups(const SphereTable& t) {
  std::vector<Group> gs;
  int32_t f = 0;
  while (f < t.S) {
    Group g{t.offset[f], t.stride[f], 1, t.dim[f], f};
    while (g.nj < kChunk && f + g.nj < t.S && t.layer[f + g.nj] == t.layer[f] && t.stride[f + g.nj] == g.ld &&
           t.dim[f + g.nj] == g.K && t.offset[f + g.nj] == g.off + g.nj) {
      ++g.nj;
    }
    gs.push_back(g);
    f += g.nj;
  }
  return gs;
}

// Runs fn(b, g) for every network b < B and group index g ≤ G (g == G is the Euclidean block E…P−1).
template <class Fn>
void for_each_group(int64_t B, int64_t G, Fn&& fn) {
  parallel_for(B * (G + 1), 4, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) fn(it / (G + 1), it % (G + 1));
  });
}

// acc[j] = Σ_{i<K} f(q, j) in order of i, q the flat index of element (i, j) of network `base`.
template <typename T, class Fn>
void reduce_rows(T* acc, const Group& g, int64_t base, Fn&& f) {
  for (int32_t j = 0; j < g.nj; ++j) acc[j] = T(0);
  for (int32_t i = 0; i < g.K; ++i) {
    const int64_t r = base + g.off + int64_t(i) * g.ld;
    for (int32_t j = 0; j < g.nj; ++j) acc[j] += f(r + j, j);
  }
}

// acc[j] = Σ_{i<K} f(q, i, j) in order of i (f also sees the row index).
template <typename T, class Fn>
void reduce_rows_i(T* acc, const Group& g, int64_t base, Fn&& f) {
  for (int32_t j = 0; j < g.nj; ++j) acc[j] = T(0);
  for (int32_t i = 0; i < g.K; ++i) {
    const int64_t r = base + g.off + int64_t(i) * g.ld;
    for (int32_t j = 0; j < g.nj; ++j) acc[j] += f(r + j, i, j);
  }
}

// f(q, i, j) for every element, row by row.
template <class Fn>
void for_rows(const Group& g, int64_t base, Fn&& f) {
  for (int32_t i = 0; i < g.K; ++i) {
    const int64_t r = base + g.off + int64_t(i) * g.ld;
    for (int32_t j = 0; j < g.nj; ++j) f(r + j, i, j);
  }
}

// k[j] = first index of the smallest |x_i| of factor j; xk[j] = x at that index (the antipodal fallback).
template <typename T>
void argmin_rows(int32_t* k, T* xk, const T* x, const Group& g, int64_t base) {
  T best[kChunk];
  for (int32_t j = 0; j < g.nj; ++j) {
    best[j] = m_abs(x[base + g.off + j]);
    k[j] = 0;
  }
  for (int32_t i = 1; i < g.K; ++i) {
    const int64_t r = base + g.off + int64_t(i) * g.ld;
    for (int32_t j = 0; j < g.nj; ++j) {
      const T a = m_abs(x[r + j]);
      if (a < best[j]) {
        best[j] = a;
        k[j] = i;
      }
    }
  }
  for (int32_t j = 0; j < g.nj; ++j) xk[j] = x[base + g.off + int64_t(k[j]) * g.ld + j];
}

// out ← out/‖out‖ for the factors with on[j] (e_0 when ‖out‖² underflows).
template <typename T>
void renormalise(T* out, const Group& g, int64_t base, const bool* on) {
  T nsq[kChunk], inv[kChunk];
  bool zero[kChunk];
  reduce_rows(nsq, g, base, [&](int64_t q, int32_t) { return out[q] * out[q]; });
  for (int32_t j = 0; j < g.nj; ++j) {
    zero[j] = is_zero_sq(nsq[j]);
    inv[j] = zero[j] ? T(0) : T(1) / m_sqrt(nsq[j]);
  }
  for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) {
    if (on[j]) out[q] = zero[j] ? (i == 0 ? T(1) : T(0)) : out[q] * inv[j];
  });
}

// 1/‖x‖ per factor (0 and zero[j] = true when ‖x‖² underflows: the factor is then read as e_0). With
// e0[j] = zero[j] ? 1 : 0, the normalised factor is x̄_i = x_i·inv[j] + (i == 0 ? e0[j] : 0) — the same value
// as the branch (x_i·0 = 0 for such tiny x), without control flow in the loop over j.
template <typename T>
void inverse_norms(T* inv, bool* zero, T* nrm, const T* x, const Group& g, int64_t base, T* e0 = nullptr) {
  T nsq[kChunk];
  reduce_rows(nsq, g, base, [&](int64_t q, int32_t) { return x[q] * x[q]; });
  for (int32_t j = 0; j < g.nj; ++j) {
    zero[j] = is_zero_sq(nsq[j]);
    if (nrm != nullptr) nrm[j] = m_sqrt(nsq[j]);
    inv[j] = zero[j] ? T(0) : T(1) / m_sqrt(nsq[j]);
    if (e0 != nullptr) e0[j] = zero[j] ? T(1) : T(0);
  }
}

}  // namespace

// ---- project ------------------------------------------------------------------------------------------------
template <typename T>
void geometry_project_forward_cpu(T* out, const T* x, const SphereTable& t, int64_t B, GeoMode) {
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {  // Euclidean block: identity
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i];
      return;
    }
    const Group& g = gs[gi];
    // x / ‖x‖, or e_0 for a zero factor
    T inv[kChunk];
    bool zero[kChunk];
    inverse_norms(inv, zero, static_cast<T*>(nullptr), x, g, base);
    for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) { out[q] = zero[j] ? (i == 0 ? T(1) : T(0)) : x[q] * inv[j]; });
  });
}

// ---- tangent projection -------------------------------------------------------------------------------------
template <typename T>
void geometry_tangent_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode) {
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = u[base + i];
      return;
    }
    const Group& g = gs[gi];
    T c[kChunk];  // ⟨x, u⟩
    reduce_rows(c, g, base, [&](int64_t q, int32_t) { return x[q] * u[q]; });
    for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { out[q] = u[q] - c[j] * x[q]; });
  });
}

// ---- expmap -------------------------------------------------------------------------------------------------
template <typename T>
void geometry_expmap_forward_cpu(T* out, const T* x, const T* u, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i] + u[base + i];
      return;
    }
    const Group& g = gs[gi];
    // n = ‖u‖ → x cos n + u sin(n)/n (series for small n), or geoopt's branch in reference mode
    T usq[kChunk], cx[kChunk], cu[kChunk];
    bool renorm[kChunk];
    reduce_rows(usq, g, base, [&](int64_t q, int32_t) { return u[q] * u[q]; });
    for (int32_t j = 0; j < g.nj; ++j) {
      const geo::ExpCoef<T> c = geo::expmap_coef(usq[j], ref);
      cx[j] = c.cx;
      cu[j] = c.cu;
      renorm[j] = c.renorm;
    }
    for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { out[q] = cx[j] * x[q] + cu[j] * u[q]; });
    renormalise(out, g, base, renorm);
  });
}

// ---- logmap -------------------------------------------------------------------------------------------------
template <typename T>
void geometry_logmap_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = y[base + i] - x[base + i];
      return;
    }
    const Group& g = gs[gi];
    T c[kChunk], wsq[kChunk], f[kChunk];
    if (ref) {
      // w = (y − x) − ⟨x, y − x⟩x; θ = acos(clamp⟨x, y⟩); out = w·θ/max(‖w‖, EPS) (or w when θ ≤ EPS)
      T cd[kChunk];
      reduce_rows(c, g, base, [&](int64_t q, int32_t) { return x[q] * y[q]; });
      reduce_rows(cd, g, base, [&](int64_t q, int32_t) { return x[q] * (y[q] - x[q]); });
      reduce_rows(wsq, g, base, [&](int64_t q, int32_t j) {
        const T w = (y[q] - x[q]) - cd[j] * x[q];
        return w * w;
      });
      for (int32_t j = 0; j < g.nj; ++j) f[j] = geo::logmap_coef_reference(c[j], m_sqrt(wsq[j])).f;
      for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { out[q] = f[j] * ((y[q] - x[q]) - cd[j] * x[q]); });
      return;
    }
    // x̂ = x/‖x‖ (e_0 for a zero factor), c = ⟨x̂, y⟩, w = y − c·x̂, θ = atan2(‖w‖, c), out = w·θ/‖w‖.
    // Projecting x first keeps w tangent and the antipodal test meaningful for points slightly off the sphere.
    T inx[kChunk], ex[kChunk];
    bool zx[kChunk];
    inverse_norms(inx, zx, static_cast<T*>(nullptr), x, g, base, ex);
    auto xh = [&](int64_t q, int32_t i, int32_t j) { return x[q] * inx[j] + (i == 0 ? ex[j] : T(0)); };
    reduce_rows(c, g, base, [&](int64_t q, int32_t) { return x[q] * y[q]; });
    for (int32_t j = 0; j < g.nj; ++j) c[j] = c[j] * inx[j] + ex[j] * y[base + g.off + j];
    reduce_rows_i(wsq, g, base, [&](int64_t q, int32_t i, int32_t j) {
      const T w = y[q] - c[j] * xh(q, i, j);
      return w * w;
    });
    bool anti[kChunk], any_anti = false;
    T theta[kChunk];
    for (int32_t j = 0; j < g.nj; ++j) {
      const geo::LogCoef<T> lc = geo::logmap_coef_accurate(c[j], m_sqrt(wsq[j]));
      f[j] = lc.f;
      anti[j] = lc.antipodal;
      theta[j] = lc.theta;
      any_anti = any_anti || lc.antipodal;
    }
    if (!any_anti) {
      for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) { out[q] = f[j] * (y[q] - c[j] * xh(q, i, j)); });
      return;
    }
    // antipodal factors: no reliable direction; θ·(e_k − x̂_k·x̂)/‖e_k − x̂_k·x̂‖, k = argmin |x_k|
    int32_t k[kChunk];
    T xk[kChunk], sc[kChunk];
    argmin_rows(k, xk, x, g, base);
    for (int32_t j = 0; j < g.nj; ++j) {
      xk[j] = xk[j] * inx[j] + (k[j] == 0 ? ex[j] : T(0));
      sc[j] = anti[j] ? geo::antipodal_scale(theta[j], xk[j], T(1), g.K) : T(0);
    }
    for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) {
      const T xv = xh(q, i, j);
      out[q] = anti[j] ? sc[j] * ((i == k[j] ? T(1) : T(0)) - xk[j] * xv) : f[j] * (y[q] - c[j] * xv);
    });
  });
}

// ---- dist ---------------------------------------------------------------------------------------------------
template <typename T>
void geometry_dist_forward_cpu(T* out, const T* x, const T* y, const SphereTable& t, int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const int64_t F = int64_t(t.S) + 1;
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {  // Euclidean distance of the bias blocks
      T acc = 0;
      for (int64_t i = t.E; i < t.P; ++i) {
        const T d = x[base + i] - y[base + i];
        acc += d * d;
      }
      out[b * F + t.S] = m_sqrt(acc);
      return;
    }
    const Group& g = gs[gi];
    T* o = out + b * F + g.f0;
    if (ref) {  // acos(clamp(⟨x, y⟩, −1 + EPS, 1 − EPS))
      T c[kChunk];
      reduce_rows(c, g, base, [&](int64_t q, int32_t) { return x[q] * y[q]; });
      for (int32_t j = 0; j < g.nj; ++j) o[j] = geo::ref_dist_from_inner(c[j]);
      return;
    }
    // θ = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖) on the normalised inputs (e_0 for a zero input)
    T inx[kChunk], iny[kChunk], ex[kChunk], ey[kChunk], a2[kChunk], b2[kChunk];
    bool zx[kChunk], zy[kChunk];
    inverse_norms(inx, zx, static_cast<T*>(nullptr), x, g, base, ex);
    inverse_norms(iny, zy, static_cast<T*>(nullptr), y, g, base, ey);
    for (int32_t j = 0; j < g.nj; ++j) a2[j] = b2[j] = T(0);
    for (int32_t i = 0; i < g.K; ++i) {
      const int64_t r = base + g.off + int64_t(i) * g.ld;
      const T first = i == 0 ? T(1) : T(0);
      for (int32_t j = 0; j < g.nj; ++j) {
        const T xb = x[r + j] * inx[j] + first * ex[j];
        const T yb = y[r + j] * iny[j] + first * ey[j];
        a2[j] += (xb - yb) * (xb - yb);
        b2[j] += (xb + yb) * (xb + yb);
      }
    }
    for (int32_t j = 0; j < g.nj; ++j) o[j] = geo::dist_accurate(m_sqrt(a2[j]), m_sqrt(b2[j]));
  });
}

// ---- interpolate --------------------------------------------------------------------------------------------
template <typename T>
void geometry_interpolate_forward_cpu(T* out, const T* x0, const T* x1, const T* tt, const SphereTable& t, int64_t B,
                                      GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    const T tb = tt[b];
    if (gi == int64_t(gs.size())) {  // (1 − t)·b0 + t·b1
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = (T(1) - tb) * x0[base + i] + tb * x1[base + i];
      return;
    }
    const Group& g = gs[gi];
    // Log_{x0}(x1) = f·w (w as in logmap), then Exp_{x0}(t·Log): out_i = α·x̂0_i + k·w_i + κ·(δ_ik − x̂_k·x̂0_i)
    // with x̂0 = x0/‖x0‖ in accurate mode (as logmap) and x̂0 = x0 in reference mode.
    T c[kChunk], cd[kChunk], wsq[kChunk], inx[kChunk], ex[kChunk];
    bool zx[kChunk];
    if (ref) {
      for (int32_t j = 0; j < g.nj; ++j) {
        inx[j] = T(1);
        ex[j] = T(0);
      }
    } else {
      inverse_norms(inx, zx, static_cast<T*>(nullptr), x0, g, base, ex);
    }
    auto xh = [&](int64_t q, int32_t i, int32_t j) { return x0[q] * inx[j] + (i == 0 ? ex[j] : T(0)); };
    reduce_rows(c, g, base, [&](int64_t q, int32_t) { return x0[q] * x1[q]; });
    if (ref) {
      reduce_rows(cd, g, base, [&](int64_t q, int32_t) { return x0[q] * (x1[q] - x0[q]); });
    } else {
      for (int32_t j = 0; j < g.nj; ++j) {
        c[j] = c[j] * inx[j] + ex[j] * x1[base + g.off + j];
        cd[j] = T(0);
      }
    }
    auto w_at = [&](int64_t q, int32_t i, int32_t j) {
      return ref ? (x1[q] - x0[q]) - cd[j] * x0[q] : x1[q] - c[j] * xh(q, i, j);
    };
    reduce_rows_i(wsq, g, base, [&](int64_t q, int32_t i, int32_t j) {
      const T w = w_at(q, i, j);
      return w * w;
    });
    geo::LogCoef<T> lc[kChunk];
    bool any_anti = false;
    for (int32_t j = 0; j < g.nj; ++j) {
      const T wn = m_sqrt(wsq[j]);
      lc[j] = ref ? geo::logmap_coef_reference(c[j], wn) : geo::logmap_coef_accurate(c[j], wn);
      any_anti = any_anti || lc[j].antipodal;
    }
    int32_t k[kChunk];
    T xk[kChunk];
    if (any_anti) {
      argmin_rows(k, xk, x0, g, base);
      for (int32_t j = 0; j < g.nj; ++j) xk[j] = xk[j] * inx[j] + (k[j] == 0 ? ex[j] : T(0));
    }
    T alpha[kChunk], kw[kChunk], kappa[kChunk];
    bool renorm[kChunk];
    for (int32_t j = 0; j < g.nj; ++j) {
      if (!lc[j].antipodal) {
        k[j] = -1;
        xk[j] = T(0);
      }
      const geo::InterpCoef<T> ic = geo::interpolate_coef(lc[j], m_sqrt(wsq[j]), tb, xk[j], T(1), g.K, ref);
      alpha[j] = ic.alpha;
      kw[j] = ic.k;
      kappa[j] = ic.kappa;
      renorm[j] = ic.renorm;
    }
    for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) {
      const T xv = xh(q, i, j);
      T v = alpha[j] * xv;
      if (kw[j] != T(0)) v += kw[j] * w_at(q, i, j);
      if (kappa[j] != T(0)) v += kappa[j] * ((i == k[j] ? T(1) : T(0)) - xk[j] * xv);
      out[q] = v;
    });
    renormalise(out, g, base, renorm);
  });
}

// ---- Euler step ---------------------------------------------------------------------------------------------
template <typename T>
void geometry_euler_step_forward_cpu(T* out, const T* x, const T* v, const SphereTable& t, int64_t B, T dt,
                                     GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const std::vector<Group> gs = make_groups(t);
  for_each_group(B, int64_t(gs.size()), [&](int64_t b, int64_t gi) {
    const int64_t base = b * t.P;
    if (gi == int64_t(gs.size())) {
      for (int64_t i = t.E; i < t.P; ++i) out[base + i] = x[base + i] + dt * v[base + i];
      return;
    }
    const Group& g = gs[gi];
    if (ref) {
      // geoopt: Exp_x(dt·v) with v not projected (drifts off the sphere, METHOD.md §6.3)
      T usq[kChunk], cx[kChunk], cu[kChunk];
      bool renorm[kChunk];
      reduce_rows(usq, g, base, [&](int64_t q, int32_t) { return (dt * v[q]) * (dt * v[q]); });
      for (int32_t j = 0; j < g.nj; ++j) {
        const geo::ExpCoef<T> c = geo::expmap_coef(usq[j], true);
        cx[j] = c.cx;
        cu[j] = c.cu;
        renorm[j] = c.renorm;
      }
      for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { out[q] = cx[j] * x[q] + cu[j] * (dt * v[q]); });
      renormalise(out, g, base, renorm);
      return;
    }
    // x̂ = x/‖x‖; q = v − ⟨x̂, v⟩x̂; out = normalise(x̂ cos n + dt·q·sin(n)/n), n = |dt|·‖q‖
    T inx[kChunk], p[kChunk], qsq[kChunk], cs[kChunk], sc[kChunk];
    bool zx[kChunk], on[kChunk];
    inverse_norms(inx, zx, static_cast<T*>(nullptr), x, g, base);
    auto xh = [&](int64_t q, int32_t i, int32_t j) { return zx[j] ? (i == 0 ? T(1) : T(0)) : x[q] * inx[j]; };
    for (int32_t j = 0; j < g.nj; ++j) p[j] = qsq[j] = T(0);
    for (int32_t i = 0; i < g.K; ++i) {
      const int64_t r = base + g.off + int64_t(i) * g.ld;
      for (int32_t j = 0; j < g.nj; ++j) p[j] += xh(r + j, i, j) * v[r + j];
    }
    for (int32_t i = 0; i < g.K; ++i) {
      const int64_t r = base + g.off + int64_t(i) * g.ld;
      for (int32_t j = 0; j < g.nj; ++j) {
        const T qv = v[r + j] - p[j] * xh(r + j, i, j);
        qsq[j] += qv * qv;
      }
    }
    for (int32_t j = 0; j < g.nj; ++j) {
      const T n = m_abs(dt) * m_sqrt(qsq[j]);
      cs[j] = geo::m_cos(n);
      sc[j] = dt * geo::sinc(n);
      on[j] = true;
    }
    for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) {
      const T xi = xh(q, i, j);
      out[q] = cs[j] * xi + sc[j] * (v[q] - p[j] * xi);
    });
    renormalise(out, g, base, on);
  });
}

// ---- loss and its gradient ----------------------------------------------------------------------------------
template <typename T>
void geometry_loss_forward_cpu(T* loss, T* per_network, T* dpred, const T* pred, const T* target, const SphereTable& t,
                               int64_t B, GeoMode mode) {
  const bool ref = mode == GeoMode::Reference;
  const T inv_b = T(1) / T(B);
  const int64_t nbias = int64_t(t.P) - t.E;
  const std::vector<Group> gs = make_groups(t);
  parallel_for(B, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      const int64_t base = b * t.P;
      T acc = 0;  // Σ_s w_s·θ_s², in factor order
      for (const Group& g : gs) {
        T th[kChunk], wgt[kChunk];
        for (int32_t j = 0; j < g.nj; ++j) wgt[j] = T(t.weight[g.f0 + j]);
        if (ref) {
          // θ = acos(clamp⟨p, q⟩); ∂θ²/∂p = 2θ·acos'(c)·q inside the clamp range, 0 outside
          T c[kChunk], gc[kChunk];
          reduce_rows(c, g, base, [&](int64_t q, int32_t) { return pred[q] * target[q]; });
          for (int32_t j = 0; j < g.nj; ++j) {
            th[j] = geo::ref_dist_from_inner(c[j]);
            gc[j] = wgt[j] * inv_b * geo::ref_dsq_dinner(c[j], th[j]);
            acc += wgt[j] * th[j] * th[j];
          }
          if (dpred != nullptr) for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { dpred[q] = gc[j] * target[q]; });
          continue;
        }
        // θ = 2·atan2(‖p̄ − q̄‖, ‖p̄ + q̄‖); ∂θ²/∂p = −2·Log_{p̄}(q̄)/‖p‖ (geometry_math.h)
        T inx[kChunk], iny[kChunk], ex[kChunk], ey[kChunk], nx[kChunk], a2[kChunk], b2[kChunk];
        bool zx[kChunk], zy[kChunk];
        inverse_norms(inx, zx, nx, pred, g, base, ex);
        inverse_norms(iny, zy, static_cast<T*>(nullptr), target, g, base, ey);
        for (int32_t j = 0; j < g.nj; ++j) a2[j] = b2[j] = T(0);
        for (int32_t i = 0; i < g.K; ++i) {
          const int64_t r = base + g.off + int64_t(i) * g.ld;
          const T first = i == 0 ? T(1) : T(0);
          for (int32_t j = 0; j < g.nj; ++j) {
            const T xv = pred[r + j] * inx[j] + first * ex[j], yv = target[r + j] * iny[j] + first * ey[j];
            a2[j] += (xv - yv) * (xv - yv);
            b2[j] += (xv + yv) * (xv + yv);
          }
        }
        // Log_{p̄}(q̄) = f·w with w = (q̄ − p̄) + (a²/2)·p̄ (θ ≤ π/2) or (p̄ + q̄) − (b²/2)·p̄ (θ > π/2): written as
        // f·(s_sum·(p̄ + q̄) + s_diff·(q̄ − p̄) + h·p̄) with (s_sum, s_diff) ∈ {(1, 0), (0, 1)}, which adds exact zeros
        // and so equals the selected form, without control flow in the loop over j.
        T scale[kChunk], f[kChunk], s_sum[kChunk], s_diff[kChunk], h[kChunk];
        bool anti[kChunk], any_anti = false;
        for (int32_t j = 0; j < g.nj; ++j) {
          const T a = m_sqrt(a2[j]), bb = m_sqrt(b2[j]);
          th[j] = geo::dist_accurate(a, bb);
          acc += wgt[j] * th[j] * th[j];
          const geo::DistGradCoef<T> gc = geo::dist_grad_coef(a, bb, th[j]);
          // θ is not differentiable at p = 0: gradient 0 there (documented)
          scale[j] = zx[j] ? T(0) : T(-2) * wgt[j] * inv_b / nx[j];
          f[j] = gc.f;
          s_sum[j] = gc.use_sum ? T(1) : T(0);
          s_diff[j] = gc.use_sum ? T(0) : T(1);
          h[j] = gc.use_sum ? -(b2[j] / T(2)) : a2[j] / T(2);
          anti[j] = !zx[j] && gc.antipodal;
          any_anti = any_anti || anti[j];
        }
        if (dpred == nullptr) continue;
        for (int32_t i = 0; i < g.K; ++i) {
          const int64_t r = base + g.off + int64_t(i) * g.ld;
          const T first = i == 0 ? T(1) : T(0);
          for (int32_t j = 0; j < g.nj; ++j) {
            const T xv = pred[r + j] * inx[j] + first * ex[j], yv = target[r + j] * iny[j] + first * ey[j];
            dpred[r + j] = (scale[j] * f[j]) * (s_sum[j] * (xv + yv) + s_diff[j] * (yv - xv) + h[j] * xv);
          }
        }
        bool any_zero = false;
        for (int32_t j = 0; j < g.nj; ++j) any_zero = any_zero || zx[j];
        if (any_zero) for_rows(g, base, [&](int64_t q, int32_t, int32_t j) { if (zx[j]) dpred[q] = T(0); });
        if (any_anti) {  // antipodal factors: Log = θ·(e_k − p̄_k·p̄)/‖·‖, k = argmin |p̄_i| = argmin |p_i|
          int32_t k[kChunk];
          T xk[kChunk], sc[kChunk];
          argmin_rows(k, xk, pred, g, base);
          for (int32_t j = 0; j < g.nj; ++j) {
            xk[j] *= inx[j];
            sc[j] = anti[j] ? scale[j] * geo::antipodal_scale(th[j], xk[j], T(1), g.K) : T(0);
          }
          for_rows(g, base, [&](int64_t q, int32_t i, int32_t j) {
            if (anti[j]) dpred[q] = sc[j] * ((i == k[j] ? T(1) : T(0)) - xk[j] * (pred[q] * inx[j]));
          });
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
