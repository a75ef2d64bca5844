// Scalar sphere math shared by geometry_cpu.cc, geometry_cuda.cu and canonicalize_*: the per-dtype thresholds,
// the small-angle series and the per-factor coefficients each op derives from its reductions, so the CPU
// reference and the CUDA kernels evaluate exactly the same formulas (only the summation order differs).
//
// Every op works in passes over one factor: reductions (dot products / norms) → scalar coefficients (here) →
// one elementwise write out_i = f(coefficients, inputs_i) → optionally a renormalisation of out. An element is
// written only after every read of the factor's inputs, so outputs may alias inputs.
//
// Thresholds (Limits<T>): `series` switches sin(n)/n and atan(z)/z to their Taylor series (truncation error
// below n⁶/5040 resp. z⁶/7, far under the dtype's epsilon: float 1e-2 → 1.4e-13, double 1e-3 → 1.4e-19);
// `antipodal` is the relative size of the tangent part ‖y − ⟨x,y⟩x‖ / |⟨x,y⟩| below which, with ⟨x,y⟩ < 0,
// Log_x(y) has no reliable direction (rounding alone leaves ~1e-6 in float, ~1e-15 in double for K = 784);
// `tiny` is the smallest normal number: a squared norm below it counts as zero. Reference mode uses geoopt's
// float32 EPS = 1e-4 for every T (the published code ran in float32).
#pragma once

#include <float.h>
#include <math.h>

#include <cstdint>

#ifdef __CUDACC__
#define WSF_HD __host__ __device__ __forceinline__
#else
#define WSF_HD inline
#endif

namespace wsf {
namespace geo {

template <typename T>
struct Limits;
template <>
struct Limits<float> {
  WSF_HD static constexpr float series() { return 1e-2f; }
  WSF_HD static constexpr float antipodal() { return 1e-4f; }
  WSF_HD static constexpr float tiny() { return FLT_MIN; }
};
template <>
struct Limits<double> {
  WSF_HD static constexpr double series() { return 1e-3; }
  WSF_HD static constexpr double antipodal() { return 1e-7; }
  WSF_HD static constexpr double tiny() { return DBL_MIN; }
};

// geoopt 0.5.0 EPS[float32], used by Reference mode for every T.
template <typename T>
WSF_HD constexpr T ref_eps() {
  return T(1e-4);
}
// The clamp bounds of geoopt's dist (computed in double, then rounded to T, as torch rounds Python scalars).
template <typename T>
WSF_HD constexpr T ref_lo() {
  return T(-1.0 + 1e-4);
}
template <typename T>
WSF_HD constexpr T ref_hi() {
  return T(1.0 - 1e-4);
}

// Overloads of the C math functions (the float versions are the accurate ones: no --use_fast_math).
WSF_HD float m_sqrt(float v) { return sqrtf(v); }
WSF_HD double m_sqrt(double v) { return sqrt(v); }
WSF_HD float m_sin(float v) { return sinf(v); }
WSF_HD double m_sin(double v) { return sin(v); }
WSF_HD float m_cos(float v) { return cosf(v); }
WSF_HD double m_cos(double v) { return cos(v); }
WSF_HD float m_atan(float v) { return atanf(v); }
WSF_HD double m_atan(double v) { return atan(v); }
WSF_HD float m_atan2(float y, float x) { return atan2f(y, x); }
WSF_HD double m_atan2(double y, double x) { return atan2(y, x); }
WSF_HD float m_acos(float v) { return acosf(v); }
WSF_HD double m_acos(double v) { return acos(v); }
WSF_HD float m_abs(float v) { return fabsf(v); }
WSF_HD double m_abs(double v) { return fabs(v); }

template <typename T>
WSF_HD bool is_zero_sq(T nsq) {
  return nsq < Limits<T>::tiny();  // false for NaN, so NaN inputs propagate
}

// sin(n)/n for n ≥ 0.
template <typename T>
WSF_HD T sinc(T n) {
  if (n < Limits<T>::series()) {
    const T n2 = n * n;
    return T(1) - n2 / T(6) + n2 * n2 / T(120);
  }
  return m_sin(n) / n;
}

// atan(z)/z for z ≥ 0.
template <typename T>
WSF_HD T atanc(T z) {
  if (z < Limits<T>::series()) {
    const T z2 = z * z;
    return T(1) - z2 / T(3) + z2 * z2 / T(5);
  }
  return m_atan(z) / z;
}

// ---- expmap: out = cx·x + cu·u, then renormalised when `renorm` ------------------------------------------------
template <typename T>
struct ExpCoef {
  T cx, cu;
  bool renorm;
};
template <typename T>
WSF_HD ExpCoef<T> expmap_coef(T nu_sq, bool reference) {
  const T n = m_sqrt(nu_sq);
  if (reference) {
    if (n > ref_eps<T>()) return {m_cos(n), m_sin(n) / n, false};
    return {T(1), T(1), true};  // geoopt's retraction (x + u)/‖x + u‖
  }
  return {m_cos(n), sinc(n), true};
}

// ---- logmap -------------------------------------------------------------------------------------------------
// Accurate: w = y − c·x̂ with x̂ = x/‖x‖, c = ⟨x̂,y⟩ and s = ‖w‖; out = f·w, or, for an antipodal pair, the
// fallback θ·v/‖v‖ with v = e_k − x̂_k·x̂ (k = argmin |x_k|, the first on ties): the tangent projection of the
// basis vector least aligned with x, so deterministic and as far from degenerate as possible.
// Reference: w = (y − x) − ⟨x, y − x⟩·x, θ = acos(clamp(c)), f = θ > EPS ? θ/max(‖w‖, EPS) : 1.
template <typename T>
struct LogCoef {
  T f;            // out = f·w (+ the fallback)
  T theta;        // the angle
  bool antipodal; // use the fallback direction instead of w
};
template <typename T>
WSF_HD LogCoef<T> logmap_coef_accurate(T c, T s) {
  const T theta = m_atan2(s, c);
  if (c > T(0) && s <= Limits<T>::series() * c) return {atanc(s / c) / c, theta, false};  // θ/s = atan(z)/(z·c)
  if (c < T(0) && s <= Limits<T>::antipodal() * (-c)) return {T(0), theta, true};
  if (s > T(0)) return {theta / s, theta, false};
  return {T(0), theta, false};  // w = 0 with c = 0: y (or x) is zero
}
template <typename T>
WSF_HD T ref_dist_from_inner(T c) {
  const T lo = ref_lo<T>(), hi = ref_hi<T>();
  return m_acos(c < lo ? lo : (c > hi ? hi : c));
}
template <typename T>
WSF_HD LogCoef<T> logmap_coef_reference(T c, T wn) {
  const T theta = ref_dist_from_inner(c);
  if (theta > ref_eps<T>()) return {theta / (wn > ref_eps<T>() ? wn : ref_eps<T>()), theta, false};
  return {T(1), theta, false};
}
// Scale of the antipodal fallback: out_i = scale·(δ_ik − x_k·x_i), so that ‖out‖ = θ. Zero when no tangent
// direction exists (K = 1: S^0 has none).
template <typename T>
WSF_HD T antipodal_scale(T theta, T xk, T xnsq, int32_t K) {
  if (K <= 1) return T(0);
  const T vsq = T(1) - T(2) * xk * xk + xk * xk * xnsq;  // ‖e_k − x_k·x‖²
  if (!(vsq > Limits<T>::tiny())) return T(0);
  return theta / m_sqrt(vsq);
}

// ---- interpolate: out_i = α·x0_i + k·w_i + κ·(δ_ik − x_k·x0_i), then renormalised when `renorm` -------------
// with w as in logmap (accurate: x1 − c·x0; reference: (x1 − x0) − ⟨x0, x1 − x0⟩·x0).
template <typename T>
struct InterpCoef {
  T alpha, k, kappa;
  bool renorm;
};
template <typename T>
WSF_HD InterpCoef<T> interpolate_coef(const LogCoef<T>& lc, T s, T tt, T xk, T xnsq, int32_t K, bool reference) {
  if (reference) {
    // u = t·f·w, ‖u‖ = |t·f|·‖w‖; geoopt expmap on it.
    const T n = m_abs(tt * lc.f) * s;
    if (n > ref_eps<T>()) return {m_cos(n), tt * lc.f * (m_sin(n) / n), T(0), false};
    return {T(1), tt * lc.f, T(0), true};
  }
  if (lc.antipodal) {
    const T sc = antipodal_scale(lc.theta, xk, xnsq, K);
    const T n = (sc > T(0)) ? m_abs(tt) * lc.theta : T(0);
    return {m_cos(n), T(0), tt * sinc(n) * sc, true};
  }
  const T n = m_abs(tt * lc.f) * s;  // ‖t·Log‖ (= |t|·θ)
  return {m_cos(n), tt * lc.f * sinc(n), T(0), true};
}

// ---- dist ---------------------------------------------------------------------------------------------------
// Accurate: a = ‖x̄ − ȳ‖, b = ‖x̄ + ȳ‖ on the normalised inputs; θ = 2·atan2(a, b).
template <typename T>
WSF_HD T dist_accurate(T a, T b) {
  return T(2) * m_atan2(a, b);
}

// ---- loss gradient of θ² on one sphere (accurate) -----------------------------------------------------------
// ∂θ²/∂x = −2·Log_{x̄}(ȳ)/‖x‖ (the Riemannian gradient of θ² is −2·Log, and x̄ = x/‖x‖ has Jacobian
// (I − x̄x̄ᵀ)/‖x‖). Log is built without cancellation from d = x̄ − ȳ (θ ≤ π/2) or p = x̄ + ȳ (θ > π/2):
//   θ ≤ π/2: w = −d + (a²/2)·x̄,   θ > π/2: w = p − (b²/2)·x̄   (both equal ȳ − ⟨x̄,ȳ⟩x̄ for unit x̄, ȳ),
//   ‖w‖ = sin θ = a·b/2, Log = w·θ/sin θ with θ/sin θ = 4·atanc(a/b)/b² for θ ≤ π/2.
// Antipodal (θ > π/2 and a·b/2 ≤ antipodal): the logmap fallback direction, Log = θ·v/‖v‖.
template <typename T>
struct DistGradCoef {
  T f;             // Log = f·w
  bool use_sum;    // w from p = x̄ + ȳ (θ > π/2) instead of d = x̄ − ȳ
  bool antipodal;  // Log = θ·(e_k − x̄_k x̄)/‖·‖ instead
};
template <typename T>
WSF_HD DistGradCoef<T> dist_grad_coef(T a, T b, T theta) {
  if (a <= b) return {T(4) * atanc(a / b) / (b * b), false, false};
  const T sn = a * b / T(2);
  if (sn <= Limits<T>::antipodal()) return {T(0), true, true};
  return {theta / sn, true, false};
}

// Reference-mode derivative of θ² with θ = acos(clamp(c)): 2θ·(−1/√(1−c²)) inside the clamp range (bounds
// included, as torch.clamp's backward), 0 outside.
template <typename T>
WSF_HD T ref_dsq_dinner(T c, T theta) {
  if (!(c == c)) return c;  // NaN propagates
  if (c < ref_lo<T>() || c > ref_hi<T>()) return T(0);
  return T(-2) * theta / m_sqrt(T(1) - c * c);
}

}  // namespace geo
}  // namespace wsf
