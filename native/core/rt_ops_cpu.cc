// CPU reference for the relational-transformer ops (see rt_ops.h for the contract of each op). Every op is a
// plain loop with one comment per step; parallel loops split rows or nodes across the thread pool (parallel.h).
// Reductions over rows (bias, LayerNorm affine and embedding gradients) sum fixed-size row blocks and then the
// blocks in order, so results do not depend on the thread count. In float, with the GEMM's AVX2 level or higher,
// the activations, the LayerNorm rows and the attention rows run 8-wide kernels instead (act_*_f32_avx2, namespace
// v8), which the plain loops (double, and float at `setCpuIsa('portable')`) stay the reference for.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/fastmath_cpu.h"
#include "core/gemm_cpu.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/rt_ops.h"

namespace wsf {
namespace {

constexpr int64_t kRowBlock = 512;  // rows per partial sum in column reductions

// Column sums of a rows×C matrix into out (+=), deterministic: fixed row blocks, summed in block order.
template <typename T, typename F>
void column_reduce(T* out, int64_t rows, int C, F row_fn) {
  const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
  if (blocks == 0) return;
  std::vector<T> partial(static_cast<size_t>(blocks) * C, T(0));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      T* acc = partial.data() + b * C;
      const int64_t r1 = std::min(rows, (b + 1) * kRowBlock);
      for (int64_t r = b * kRowBlock; r < r1; ++r) row_fn(acc, r);
    }
  });
  for (int64_t b = 0; b < blocks; ++b)
    for (int c = 0; c < C; ++c) out[c] += partial[b * C + c];
}

inline int64_t grain_for(int64_t work_per_item) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, work_per_item)); }

template <typename T>
inline T act_value(T x, Act a) {
  switch (a) {
    case Act::Gelu: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
    case Act::Silu: return x / (T(1) + std::exp(-x));
    case Act::Relu: return x > T(0) ? x : T(0);
  }
  return x;
}

template <typename T>
inline T act_grad(T x, Act a) {
  switch (a) {
    case Act::Gelu: {
      // d/dx [x Φ(x)] = Φ(x) + x φ(x)
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
      const T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case Act::Silu: {
      const T s = T(1) / (T(1) + std::exp(-x));
      return s * (T(1) + x * (T(1) - s));
    }
    case Act::Relu: return x > T(0) ? T(1) : T(0);
  }
  return T(1);
}

// Single-precision activation kernels with the fast exp/erf (fastmath_cpu.h): an explicit AVX2 path (8 lanes,
// picked at run time when the CPU has AVX2+FMA) and a scalar path for the tail and for other CPUs.
// One loop per activation (the choice hoisted out), so that compilers vectorise them (NEON on arm64).
void act_fwd_f32_scalar(float* y, const float* x, int64_t n, Act a) {
  if (a == Act::Gelu) {
    for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.f + fast_erff(x[i] * 0.70710678118654752f));
  } else if (a == Act::Silu) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.f + fast_expf(-x[i]));
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
  }
}
template <Act A, bool ACC>
void act_bwd_f32_loop(float* dx, const float* dy, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    float d;
    if constexpr (A == Act::Gelu) {
      d = 0.5f * (1.f + fast_erff(v * 0.70710678118654752f)) + v * fast_expf(-0.5f * v * v) * 0.39894228040143267794f;
    } else if constexpr (A == Act::Silu) {
      const float s = 1.f / (1.f + fast_expf(-v));
      d = s * (1.f + v * (1.f - s));
    } else {
      d = v > 0.f ? 1.f : 0.f;
    }
    if constexpr (ACC) dx[i] = dx[i] + dy[i] * d;
    else dx[i] = dy[i] * d;
  }
}
void act_bwd_f32_scalar(float* dx, const float* dy, const float* x, int64_t n, Act a, bool acc) {
  if (a == Act::Gelu) return acc ? act_bwd_f32_loop<Act::Gelu, true>(dx, dy, x, n) : act_bwd_f32_loop<Act::Gelu, false>(dx, dy, x, n);
  if (a == Act::Silu) return acc ? act_bwd_f32_loop<Act::Silu, true>(dx, dy, x, n) : act_bwd_f32_loop<Act::Silu, false>(dx, dy, x, n);
  return acc ? act_bwd_f32_loop<Act::Relu, true>(dx, dy, x, n) : act_bwd_f32_loop<Act::Relu, false>(dx, dy, x, n);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void act_fwd_f32_avx2(float* y, const float* x, int64_t n, Act a) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f), rs2 = _mm256_set1_ps(0.70710678118654752f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 r;
    if (a == Act::Gelu) {
      r = _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, fast_erff8(_mm256_mul_ps(v, rs2))));
    } else if (a == Act::Silu) {
      r = _mm256_div_ps(v, _mm256_add_ps(one, fast_expf8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    } else {
      r = _mm256_max_ps(v, _mm256_setzero_ps());
    }
    _mm256_storeu_ps(y + i, r);
  }
  if (i < n) {  // the tail through the same vector code, so a value's result never depends on its position
    alignas(32) float bx[8] = {0.f}, by[8];
    std::memcpy(bx, x + i, sizeof(float) * static_cast<size_t>(n - i));
    act_fwd_f32_avx2(by, bx, 8, a);
    std::memcpy(y + i, by, sizeof(float) * static_cast<size_t>(n - i));
  }
}

__attribute__((target("avx2,fma"))) void act_bwd_f32_avx2(float* dx, const float* dy, const float* x, int64_t n, Act a,
                                                          bool acc) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f), rs2 = _mm256_set1_ps(0.70710678118654752f);
  const __m256 mhalf = _mm256_set1_ps(-0.5f), ipdf = _mm256_set1_ps(0.39894228040143267794f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 d;
    if (a == Act::Gelu) {
      const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, fast_erff8(_mm256_mul_ps(v, rs2))));
      const __m256 pdf = _mm256_mul_ps(fast_expf8(_mm256_mul_ps(mhalf, _mm256_mul_ps(v, v))), ipdf);
      d = _mm256_fmadd_ps(v, pdf, cdf);
    } else if (a == Act::Silu) {
      const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, fast_expf8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
      d = _mm256_mul_ps(s, _mm256_fmadd_ps(v, _mm256_sub_ps(one, s), one));
    } else {
      d = _mm256_and_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ), one);
    }
    __m256 g = _mm256_mul_ps(_mm256_loadu_ps(dy + i), d);
    if (acc) g = _mm256_add_ps(g, _mm256_loadu_ps(dx + i));
    _mm256_storeu_ps(dx + i, g);
  }
  if (i < n) {  // as act_fwd_f32_avx2: the tail through the vector code
    alignas(32) float bx[8] = {0.f}, bdy[8] = {0.f}, bdx[8] = {0.f};
    const size_t r = static_cast<size_t>(n - i);
    std::memcpy(bx, x + i, sizeof(float) * r);
    std::memcpy(bdy, dy + i, sizeof(float) * r);
    if (acc) std::memcpy(bdx, dx + i, sizeof(float) * r);
    act_bwd_f32_avx2(bdx, bdy, bx, 8, a, acc);
    std::memcpy(dx + i, bdx, sizeof(float) * r);
  }
}
#endif

#if defined(__x86_64__)
// GELU and its derivative from one erf: val = GELU(x), grad = GELU'(x), each bit-identical to act_fwd_f32_avx2 /
// act_bwd_f32_avx2 (same operations in the same order), for the backward passes that need both of one input.
__attribute__((target("avx2,fma"))) void gelu_val_grad_f32_avx2(float* val, float* grad, const float* x, int64_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.f), rs2 = _mm256_set1_ps(0.70710678118654752f);
  const __m256 mhalf = _mm256_set1_ps(-0.5f), ipdf = _mm256_set1_ps(0.39894228040143267794f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 onep = _mm256_add_ps(one, fast_erff8(_mm256_mul_ps(v, rs2)));
    _mm256_storeu_ps(val + i, _mm256_mul_ps(_mm256_mul_ps(half, v), onep));
    const __m256 pdf = _mm256_mul_ps(fast_expf8(_mm256_mul_ps(mhalf, _mm256_mul_ps(v, v))), ipdf);
    _mm256_storeu_ps(grad + i, _mm256_fmadd_ps(v, pdf, _mm256_mul_ps(half, onep)));
  }
  if (i < n) {  // the tail through the same vector code
    alignas(32) float bx[8] = {0.f}, bv[8], bg[8];
    const size_t r = static_cast<size_t>(n - i);
    std::memcpy(bx, x + i, sizeof(float) * r);
    gelu_val_grad_f32_avx2(bv, bg, bx, 8);
    std::memcpy(val + i, bv, sizeof(float) * r);
    std::memcpy(grad + i, bg, sizeof(float) * r);
  }
}
#endif

void act_fwd_f32(float* y, const float* x, int64_t n, Act a) {
#if defined(__x86_64__)
  if (gemm_uses_avx2()) return act_fwd_f32_avx2(y, x, n, a);
#endif
  act_fwd_f32_scalar(y, x, n, a);
}
void act_bwd_f32(float* dx, const float* dy, const float* x, int64_t n, Act a, bool acc) {
#if defined(__x86_64__)
  if (gemm_uses_avx2()) return act_bwd_f32_avx2(dx, dy, x, n, a, acc);
#endif
  act_bwd_f32_scalar(dx, dy, x, n, a, acc);
}

// 8-wide AVX2+FMA versions of the LayerNorm rows and the attention rows (float; picked at run time with the GEMM's
// instruction-set level, so `setCpuIsa('portable')` runs the plain loops). Row sums are kept in 8 lane partials
// (masked tails) and added in a fixed order at the end of the row: results differ from the plain loops by
// rounding only, and depend on neither the thread count nor where a row falls in a block.
#if defined(__x86_64__)
#define WSF_AVX2 __attribute__((target("avx2,fma")))
namespace v8 {
// Loads 8 floats, or the first n of them (the rest read as 0) when n < 8.
WSF_AVX2 inline __m256 load(const float* p, int n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_below8(n));
}
WSF_AVX2 inline void store(float* p, __m256 v, int n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
  } else {
    _mm256_maskstore_ps(p, lanes_below8(n), v);
  }
}
// ln_rows for float, G rows at once (r0 … r0 + G − 1): each row's operations are exactly the one-row loop's, in the
// same order — interleaving only lets the rows' dependency chains (sums, the reciprocal square root) overlap.
template <int G>
WSF_AVX2 inline void ln_rows_g(float* y, float* xhat, float* rstd, const float* x, const float* g, const float* b,
                               int64_t r0, int C) {
  const float* xr[G];
  __m256 acc[G], vm[G], vr[G];
  for (int i = 0; i < G; ++i) xr[i] = x + (r0 + i) * C, acc[i] = _mm256_setzero_ps();
  for (int c = 0; c < C; c += 8)
    for (int i = 0; i < G; ++i) acc[i] = _mm256_add_ps(acc[i], load(xr[i] + c, C - c));
  for (int i = 0; i < G; ++i) {
    vm[i] = _mm256_set1_ps(hsum8(acc[i]) / static_cast<float>(C));
    acc[i] = _mm256_setzero_ps();
  }
  for (int c = 0; c < C; c += 8) {
    const int n = C - c;
    for (int i = 0; i < G; ++i) {
      __m256 d = _mm256_sub_ps(load(xr[i] + c, n), vm[i]);
      if (n < 8) d = _mm256_and_ps(d, _mm256_castsi256_ps(lanes_below8(n)));
      acc[i] = _mm256_fmadd_ps(d, d, acc[i]);
    }
  }
  for (int i = 0; i < G; ++i) {
    const float rs = 1.f / std::sqrt(hsum8(acc[i]) / static_cast<float>(C) + 1e-5f);
    rstd[r0 + i] = rs;
    vr[i] = _mm256_set1_ps(rs);
  }
  for (int c = 0; c < C; c += 8) {
    const int n = C - c;
    const __m256 gv = load(g + c, n), bv = load(b + c, n);
    for (int i = 0; i < G; ++i) {
      const __m256 h = _mm256_mul_ps(_mm256_sub_ps(load(xr[i] + c, n), vm[i]), vr[i]);
      store(xhat + (r0 + i) * C + c, h, n);
      store(y + (r0 + i) * C + c, _mm256_fmadd_ps(h, gv, bv), n);
    }
  }
}
WSF_AVX2 void ln_rows_f32(float* y, float* xhat, float* rstd, const float* x, const float* g, const float* b, int64_t R,
                          int C) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) ln_rows_g<4>(y, xhat, rstd, x, g, b, r, C);
  for (; r < R; ++r) ln_rows_g<1>(y, xhat, rstd, x, g, b, r, C);
}

// ln_bwd_rows for float: dx = LN'(dy); dg += Σ dy·x̂, db += Σ dy — G rows at once as ln_rows_g (dg and db still take
// the rows' terms in row order, so every sum is the one-row loop's).
template <int G>
WSF_AVX2 inline void ln_bwd_rows_g(float* dx, float* dg, float* db, const float* dy, const float* xhat,
                                   const float* rstd, const float* g, int64_t r0, int C) {
  __m256 a1[G], a2[G];
  for (int i = 0; i < G; ++i) a1[i] = a2[i] = _mm256_setzero_ps();
  for (int c = 0; c < C; c += 8) {
    const int n = C - c;
    const __m256 gv = load(g + c, n);
    __m256 dgv = load(dg + c, n), dbv = load(db + c, n);
    for (int i = 0; i < G; ++i) {
      const __m256 vdy = load(dy + (r0 + i) * C + c, n), vh = load(xhat + (r0 + i) * C + c, n);
      const __m256 d = _mm256_mul_ps(vdy, gv);
      a1[i] = _mm256_add_ps(a1[i], d);
      a2[i] = _mm256_fmadd_ps(d, vh, a2[i]);
      dgv = _mm256_fmadd_ps(vdy, vh, dgv);
      dbv = _mm256_add_ps(dbv, vdy);
    }
    store(dg + c, dgv, n);
    store(db + c, dbv, n);
  }
  for (int i = 0; i < G; ++i) {
    const int64_t r = r0 + i;
    const __m256 m1 = _mm256_set1_ps(hsum8(a1[i]) / static_cast<float>(C));
    const __m256 m2 = _mm256_set1_ps(hsum8(a2[i]) / static_cast<float>(C));
    const __m256 vr = _mm256_set1_ps(rstd[r]);
    const float* dyr = dy + r * C;
    const float* h = xhat + r * C;
    for (int c = 0; c < C; c += 8) {
      const int n = C - c;
      const __m256 d = _mm256_mul_ps(load(dyr + c, n), load(g + c, n));
      const __m256 v = _mm256_mul_ps(vr, _mm256_fnmadd_ps(load(h + c, n), m2, _mm256_sub_ps(d, m1)));
      store(dx + r * C + c, v, n);
    }
  }
}
WSF_AVX2 void ln_bwd_rows_f32(float* dx, float* dg, float* db, const float* dy, const float* xhat, const float* rstd,
                              const float* g, int64_t R, int C) {
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) ln_bwd_rows_g<4>(dx, dg, db, dy, xhat, rstd, g, r, C);
  for (; r < R; ++r) ln_bwd_rows_g<1>(dx, dg, db, dy, xhat, rstd, g, r, C);
}

// attention_fwd_rows for float, rows [u0, u1) (see CpuOps::attention_fwd_rows for the formulas); s is scratch.
WSF_AVX2 void attention_fwd_rows_f32(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                                     const int32_t* col, int64_t u0, int64_t u1, int64_t k_base, int D, int heads,
                                     std::vector<float>& s) {
  const int Dh = D / heads;
  const float inv_sqrt_d = 1.f / std::sqrt(static_cast<float>(D));
  for (int64_t u = u0; u < u1; ++u) {
    const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
    s.resize(static_cast<size_t>(k1 - k0));
    for (int h = 0; h < heads; ++h) {
      const float* qn = Pn + u * 3 * D + h * 3 * Dh;
      float smax = -INFINITY;
      for (int32_t k = k0; k < k1; ++k) {
        const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const float* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < Dh; c += 8) {
          const int n = Dh - c;
          const __m256 q = _mm256_add_ps(load(qn + c, n), load(pe + c, n));
          const __m256 key = _mm256_add_ps(load(kn + c, n), load(pe + Dh + c, n));
          acc = _mm256_fmadd_ps(q, key, acc);
        }
        s[k - k0] = hsum8(acc) * inv_sqrt_d;
        smax = std::max(smax, s[k - k0]);
      }
      float den = 0;
      for (int32_t k = k0; k < k1; ++k) {
        s[k - k0] = std::exp(s[k - k0] - smax);
        den += s[k - k0];
      }
      float* ou = o + u * D + h * Dh;
      for (int c = 0; c < Dh; c += 8) store(ou + c, _mm256_setzero_ps(), Dh - c);
      for (int32_t k = k0; k < k1; ++k) {
        const float a = s[k - k0] / den;
        alpha[static_cast<int64_t>(k) * heads + h] = a;
        const __m256 va = _mm256_set1_ps(a);
        const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const float* vn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + 2 * Dh;
        for (int c = 0; c < Dh; c += 8) {
          const int n = Dh - c;
          const __m256 val = _mm256_fmadd_ps(load(vn + c, n), load(pe + 3 * Dh + c, n), load(pe + 2 * Dh + c, n));
          store(ou + c, _mm256_fmadd_ps(va, val, load(ou + c, n)), n);
        }
      }
    }
  }
}

// attention_bwd_rows for float, rows [u0, u1); da is scratch.
WSF_AVX2 void attention_bwd_rows_f32(float* dPn, float* dPe, float* colbuf, float* kcol, float* vcol,
                                     const int32_t* rev, const float* dout, const float* alpha, const float* Pn,
                                     const float* Pe, const int32_t* row_ptr, const int32_t* col, int64_t u0,
                                     int64_t u1, int64_t k_base, int D, int heads, std::vector<float>& da) {
  const int Dh = D / heads;
  const float inv_sqrt_d = 1.f / std::sqrt(static_cast<float>(D));
  for (int64_t u = u0; u < u1; ++u) {
    const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
    da.resize(static_cast<size_t>(k1 - k0));
    for (int h = 0; h < heads; ++h) {
      const float* qn = Pn + u * 3 * D + h * 3 * Dh;
      const float* dou = dout + u * D + h * Dh;
      float sum = 0;
      for (int32_t k = k0; k < k1; ++k) {
        const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const float* vn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + 2 * Dh;
        __m256 acc = _mm256_setzero_ps();
        for (int c = 0; c < Dh; c += 8) {
          const int n = Dh - c;
          const __m256 val = _mm256_fmadd_ps(load(vn + c, n), load(pe + 3 * Dh + c, n), load(pe + 2 * Dh + c, n));
          acc = _mm256_fmadd_ps(load(dou + c, n), val, acc);
        }
        const float d = hsum8(acc);
        da[k - k0] = d;
        sum += alpha[static_cast<int64_t>(k) * heads + h] * d;
      }
      float* dq = dPn + u * 3 * D + h * 3 * Dh;
      for (int c = 0; c < Dh; c += 8) store(dq + c, _mm256_setzero_ps(), Dh - c);
      for (int32_t k = k0; k < k1; ++k) {
        const float a = alpha[static_cast<int64_t>(k) * heads + h];
        const __m256 va = _mm256_set1_ps(a);
        const __m256 ds = _mm256_set1_ps(a * (da[k - k0] - sum) * inv_sqrt_d);
        const float* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const float* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
        const float* vn = kn + Dh;
        float* dpe = dPe + (k - k_base) * 4 * D + h * 4 * Dh;
        float* cb = colbuf != nullptr ? colbuf + static_cast<int64_t>(k) * 2 * D + h * 2 * Dh : nullptr;
        float* kc = kcol != nullptr ? kcol + static_cast<int64_t>(rev[k]) * D + h * Dh : nullptr;
        float* vc = kcol != nullptr ? vcol + static_cast<int64_t>(rev[k]) * D + h * Dh : nullptr;
        for (int c = 0; c < Dh; c += 8) {
          const int n = Dh - c;
          const __m256 q = _mm256_add_ps(load(qn + c, n), load(pe + c, n));
          const __m256 key = _mm256_add_ps(load(kn + c, n), load(pe + Dh + c, n));
          const __m256 dq_c = _mm256_mul_ps(ds, key);
          const __m256 dkey = _mm256_mul_ps(ds, q);
          const __m256 dval = _mm256_mul_ps(va, load(dou + c, n));
          store(dpe + c, dq_c, n);
          store(dpe + Dh + c, dkey, n);
          store(dpe + 2 * Dh + c, dval, n);
          store(dpe + 3 * Dh + c, _mm256_mul_ps(dval, load(vn + c, n)), n);
          if (cb != nullptr) {
            store(cb + c, dkey, n);
            store(cb + Dh + c, _mm256_mul_ps(dval, load(pe + 3 * Dh + c, n)), n);
          }
          if (kc != nullptr) {
            store(kc + c, dkey, n);
            store(vc + c, _mm256_mul_ps(dval, load(pe + 3 * Dh + c, n)), n);
          }
          store(dq + c, _mm256_add_ps(load(dq + c, n), dq_c), n);
        }
      }
    }
  }
}
}  // namespace v8
#undef WSF_AVX2
#endif

// True when the float row kernels above are in use (the GEMM's instruction-set level is AVX2 or higher).
inline bool rows_avx2() {
#if defined(__x86_64__)
  return gemm_uses_avx2();
#else
  return false;
#endif
}

// Row helpers shared by the whole-array ops below and the fused blocks of the graph ops.
template <typename T>
void act_rows(T* y, const T* x, int64_t n, Act a) {
  if constexpr (std::is_same_v<T, float>) {
    act_fwd_f32(y, x, n, a);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = act_value(x[i], a);
  }
}
template <typename T>
void act_grad_rows(T* dx, const T* dy, const T* x, int64_t n, Act a) {
  if constexpr (std::is_same_v<T, float>) {
    act_bwd_f32(dx, dy, x, n, a, false);
  } else {
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_grad(x[i], a);
  }
}
// LayerNorm forward of R rows (y may alias nothing else).
template <typename T>
void ln_rows(T* y, T* xhat, T* rstd, const T* x, const T* g, const T* b, int64_t R, int C) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (rows_avx2()) return v8::ln_rows_f32(y, xhat, rstd, x, g, b, R, C);
  }
#endif
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * C;
    T mean = 0;
    for (int c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    T var = 0;
    for (int c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= C;
    const T rs = T(1) / std::sqrt(var + T(1e-5));
    rstd[r] = rs;
    for (int c = 0; c < C; ++c) {
      const T h = (xr[c] - mean) * rs;
      xhat[r * C + c] = h;
      y[r * C + c] = h * g[c] + b[c];
    }
  }
}
}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// memory
template <typename T>
Status CpuOps<T>::alloc(T** p, int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(T);
  *p = static_cast<T*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (*p == nullptr) return Status(Code::Oom, "host out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(*p, 0, bytes);
  return Status::ok();
}
template <typename T>
Status CpuOps<T>::alloc_i32(int32_t** p, int64_t n) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(int32_t);
  *p = static_cast<int32_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (*p == nullptr) return Status(Code::Oom, "host out of memory allocating " + std::to_string(bytes) + " bytes");
  return Status::ok();
}
template <typename T>
void CpuOps<T>::release(void* p) {
  std::free(p);
}
template <typename T>
void CpuOps<T>::zero(T* p, int64_t n) {
  if (n > 0) std::memset(p, 0, sizeof(T) * n);
}
template <typename T>
void CpuOps<T>::copy(T* dst, const T* src, int64_t n) {
  if (n > 0 && dst != src) std::memcpy(dst, src, sizeof(T) * n);
}
template <typename T>
Status CpuOps<T>::upload(T* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
  return Status::ok();
}
template <typename T>
Status CpuOps<T>::download(float* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  return Status::ok();
}
template <typename T>
Status CpuOps<T>::upload_raw(T* dst, const T* src, int64_t n) {
  copy(dst, src, n);
  return Status::ok();
}
template <typename T>
Status CpuOps<T>::download_raw(T* dst, const T* src, int64_t n) {
  copy(dst, src, n);
  return Status::ok();
}
template <typename T>
Status CpuOps<T>::upload_i32(int32_t* dst, const int32_t* src, int64_t n) {
  if (n > 0) std::memcpy(dst, src, sizeof(int32_t) * n);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------------------------
// dense layers
template <typename T>
void CpuOps<T>::linear_fwd(T* y, const T* x, const T* W, const T* b, int64_t rows, int K, int N, int ldw, bool acc) {
  // Pack Wᵀ (K × N) so the product streams rows of x against contiguous rows of Wᵀ.
  scratch_.resize(static_cast<size_t>(K) * N);
  T* Wt = scratch_.data();
  for (int o = 0; o < N; ++o)
    for (int k = 0; k < K; ++k) Wt[static_cast<size_t>(k) * N + o] = W[static_cast<size_t>(o) * ldw + k];
  if (b != nullptr && !acc) {
    // Start from the bias, then accumulate the product.
    parallel_for(rows, grain_for(N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) std::memcpy(y + r * N, b, sizeof(T) * N);
    });
    gemm(rows, N, K, x, K, 1, Wt, N, y, N, true);
    return;
  }
  gemm(rows, N, K, x, K, 1, Wt, N, y, N, acc);
  if (b != nullptr) {
    parallel_for(rows, grain_for(N), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        for (int o = 0; o < N; ++o) y[r * N + o] += b[o];
    });
  }
}

template <typename T>
void CpuOps<T>::linear_bwd_data(T* dx, const T* dy, const T* W, int64_t rows, int K, int N, int ldw, bool acc) {
  // dx (rows × K) = dy (rows × N) · W (N × K, leading dimension ldw)
  gemm(rows, K, N, dy, N, 1, W, ldw, dx, K, acc);
}

template <typename T>
void CpuOps<T>::linear_bwd_weight(T* dW, T* db, const T* dy, const T* x, int64_t rows, int K, int N, int ldw) {
  // dW (N × K) += dyᵀ (N × rows) · x (rows × K): A(i=o, p=r) = dy[r·N + o].
  gemm(N, K, rows, dy, 1, N, x, K, dW, ldw, true);
  if (db != nullptr) {
    column_reduce<T>(db, rows, N, [&](T* acc, int64_t r) {
      const T* g = dy + r * N;
      for (int o = 0; o < N; ++o) acc[o] += g[o];
    });
  }
}

template <typename T>
void CpuOps<T>::layernorm_fwd(T* y, T* xhat, T* rstd, const T* x, const T* g, const T* b, int64_t rows, int C) {
  parallel_for(rows, grain_for(4 * C), [&](int64_t r0, int64_t r1) {
    ln_rows(y + r0 * C, xhat + r0 * C, rstd + r0, x + r0 * C, g, b, r1 - r0, C);
  });
}

template <typename T>
void CpuOps<T>::layernorm_bwd(T* dx, T* dg, T* db, const T* dy, const T* xhat, const T* rstd, const T* g, int64_t rows,
                              int C, bool acc) {
  parallel_for(rows, grain_for(4 * C), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* dyr = dy + r * C;
      const T* h = xhat + r * C;
      // dx̂ = dy·g; dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))
      T m1 = 0, m2 = 0;
      for (int c = 0; c < C; ++c) {
        const T d = dyr[c] * g[c];
        m1 += d;
        m2 += d * h[c];
      }
      m1 /= C;
      m2 /= C;
      T* dxr = dx + r * C;
      for (int c = 0; c < C; ++c) {
        const T v = rstd[r] * (dyr[c] * g[c] - m1 - h[c] * m2);
        dxr[c] = acc ? dxr[c] + v : v;
      }
    }
  });
  // affine parameters: column sums
  std::vector<T> tmp(static_cast<size_t>(2) * C, T(0));
  column_reduce<T>(tmp.data(), rows, 2 * C, [&](T* a, int64_t r) {
    const T* dyr = dy + r * C;
    const T* h = xhat + r * C;
    for (int c = 0; c < C; ++c) {
      a[c] += dyr[c] * h[c];
      a[C + c] += dyr[c];
    }
  });
  for (int c = 0; c < C; ++c) {
    dg[c] += tmp[c];
    db[c] += tmp[C + c];
  }
}

template <typename T>
void CpuOps<T>::act_fwd(T* y, const T* x, int64_t n, Act a) {
  parallel_for(n, 8192, [&](int64_t i0, int64_t i1) { act_rows(y + i0, x + i0, i1 - i0, a); });
}

template <typename T>
void CpuOps<T>::act_bwd(T* dx, const T* dy, const T* x, int64_t n, Act a, bool acc) {
  parallel_for(n, 8192, [&](int64_t i0, int64_t i1) {
    if constexpr (std::is_same_v<T, float>) {
      act_bwd_f32(dx + i0, dy + i0, x + i0, i1 - i0, a, acc);
    } else {
      for (int64_t i = i0; i < i1; ++i) {
        const T v = dy[i] * act_grad(x[i], a);
        dx[i] = acc ? dx[i] + v : v;
      }
    }
  });
}

template <typename T>
void CpuOps<T>::add(T* y, const T* a, const T* b, int64_t n) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = a[i] + b[i];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// graph ops
namespace {
// Pass 2 of the attention backward, per node v: dk̃_v = Σ dkey, dṽ_v = Σ dval ⊙ g over the pairs (·, v) — the rev of
// row v's pairs, in row order — from (dPe, Pe), or from attention_bwd_rows' colbuf ([dkey | dval ⊙ g] per pair and
// head) when Pe is null. Writes the k̃ and ṽ blocks of dPn.
template <typename T>
void attention_col_pass(T* dPn, const T* X, const T* Pe, const int32_t* row_ptr, const int32_t* rev, int32_t N, int D,
                        int heads) {
  const int Dh = D / heads;
  parallel_for(N, 8, [&](int64_t v0, int64_t v1) {
    for (int64_t v = v0; v < v1; ++v) {
      for (int h = 0; h < heads; ++h) {
        T* dk = dPn + v * 3 * D + h * 3 * Dh + Dh;
        T* dv = dk + Dh;
        for (int c = 0; c < Dh; ++c) dk[c] = dv[c] = 0;
        for (int32_t j = row_ptr[v]; j < row_ptr[v + 1]; ++j) {
          const int64_t k = rev[j];  // pair (u, v)
          if (Pe != nullptr) {
            const T* dpe = X + k * 4 * D + h * 4 * Dh;
            const T* pe = Pe + k * 4 * D + h * 4 * Dh;
            for (int c = 0; c < Dh; ++c) {
              dk[c] += dpe[Dh + c];
              dv[c] += dpe[2 * Dh + c] * pe[3 * Dh + c];
            }
          } else {
            const T* cb = X + k * 2 * D + h * 2 * Dh;
            for (int c = 0; c < Dh; ++c) {
              dk[c] += cb[c];
              dv[c] += cb[Dh + c];
            }
          }
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void CpuOps<T>::attention_fwd(T* o, T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col,
                              int32_t N, int D, int heads) {
  attention_fwd_rows(o, alpha, Pn, Pe, row_ptr, col, 0, N, 0, D, heads);
}

namespace {
// Attention forward of rows [u0, u1) on the calling thread (CpuOps::attention_fwd_rows for the formulas): pair k's
// projections at Pe + (k − k_base)·4D; s is scratch.
template <typename T>
void attention_fwd_rows_serial(T* o, T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col,
                               int64_t u0, int64_t u1, int64_t k_base, int D, int heads, std::vector<T>& s) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (rows_avx2()) return v8::attention_fwd_rows_f32(o, alpha, Pn, Pe, row_ptr, col, u0, u1, k_base, D, heads, s);
  }
#endif
  const int Dh = D / heads;
  const T inv_sqrt_d = T(1) / std::sqrt(T(D));
  for (int64_t u = u0; u < u1; ++u) {
    const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
    s.resize(static_cast<size_t>(k1 - k0));
    for (int h = 0; h < heads; ++h) {
      const T* qn = Pn + u * 3 * D + h * 3 * Dh;  // q̃_u (this head)
      // logits s_k = ⟨q̃_u + a_k, k̃_v + b_k⟩/√D, and their maximum
      T smax = -INFINITY;
      for (int32_t k = k0; k < k1; ++k) {
        const T* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const T* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
        T dot = 0;
        for (int c = 0; c < Dh; ++c) dot += (qn[c] + pe[c]) * (kn[c] + pe[Dh + c]);
        s[k - k0] = dot * inv_sqrt_d;
        smax = std::max(smax, s[k - k0]);
      }
      // softmax over the row
      T den = 0;
      for (int32_t k = k0; k < k1; ++k) {
        s[k - k0] = std::exp(s[k - k0] - smax);
        den += s[k - k0];
      }
      // o_u = Σ α_k (ṽ_v ⊙ g_k + c_k)
      T* ou = o + u * D + h * Dh;
      for (int c = 0; c < Dh; ++c) ou[c] = 0;
      for (int32_t k = k0; k < k1; ++k) {
        const T a = s[k - k0] / den;
        alpha[static_cast<int64_t>(k) * heads + h] = a;
        const T* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
        const T* vn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + 2 * Dh;
        for (int c = 0; c < Dh; ++c) ou[c] += a * (vn[c] * pe[3 * Dh + c] + pe[2 * Dh + c]);
      }
    }
  }
}

// Pairs per block of attention_proj_fwd/_bwd: a block's projections (pairs × 4D) stay in L2 while its rows are
// attended.
constexpr int64_t kProjPairs = 192;
constexpr int64_t kGradParts = 16;  // fixed partitions of the blocked backwards' weight gradients (deterministic sums)

// The blocked backwards' weight gradients in fixed partitions: `nblocks` blocks cut into min(kGradParts, nblocks)
// partitions of consecutive blocks, whatever the thread count. run(b0, b1, P) handles one partition's blocks [b0, b1)
// with its own zeroed partial sums P (`stride` elements; null when stride is 0), partitions in parallel; then add(P)
// for each partition in partition order — a deterministic sum. (The data gradients, per block, run in parallel too.)
template <typename T, typename Run, typename Add>
void in_grad_partitions(int64_t nblocks, int64_t stride, Run&& run, Add&& add) {
  const int64_t parts = std::min<int64_t>(kGradParts, std::max<int64_t>(nblocks, 1));
  std::vector<T> partial(static_cast<size_t>(parts * stride), T(0));
  auto slot = [&](int64_t part) { return stride > 0 ? partial.data() + part * stride : nullptr; };
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t part = p0; part < p1; ++part) run(nblocks * part / parts, nblocks * (part + 1) / parts, slot(part));
  });
  if (stride > 0)
    for (int64_t part = 0; part < parts; ++part) add(static_cast<const T*>(slot(part)));
}

// W (out × in, row-major, leading dimension ldw; ldw 0: in) → Wᵀ (in × out), as linear_fwd packs it.
template <typename T>
std::vector<T> transpose(const T* W, int out, int in, int ldw = 0) {
  if (ldw == 0) ldw = in;
  std::vector<T> t(static_cast<size_t>(out) * in);
  for (int o = 0; o < out; ++o)
    for (int i = 0; i < in; ++i) t[static_cast<size_t>(i) * out + o] = W[static_cast<size_t>(o) * ldw + i];
  return t;
}

// Rows [r0, r1) cut into blocks of consecutive rows with at most kProjPairs pairs (a longer row alone): block b is
// rows [starts[b], starts[b + 1]).
std::vector<int32_t> proj_blocks(const int32_t* row_ptr, int32_t r0, int32_t r1) {
  std::vector<int32_t> starts;
  for (int32_t u = r0; u < r1;) {
    starts.push_back(u);
    int32_t v = u + 1;
    while (v < r1 && row_ptr[v + 1] - row_ptr[u] <= kProjPairs) ++v;
    u = v;
  }
  starts.push_back(r1);
  return starts;
}
}  // namespace

template <typename T>
void CpuOps<T>::attention_fwd_rows(T* o, T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr,
                                   const int32_t* col, int32_t r0, int32_t r1, int64_t k_base, int D, int heads) {
  parallel_for(r1 - r0, 8, [&](int64_t i0, int64_t i1) {
    std::vector<T> s;
    attention_fwd_rows_serial(o, alpha, Pn, Pe, row_ptr, col, r0 + i0, r0 + i1, k_base, D, heads, s);
  });
}

template <typename T>
void CpuOps<T>::attention_proj_fwd(T* o, T* alpha, T* Pe, const T* Pn, const T* e_all, const T* WE,
                                   const int32_t* row_ptr, const int32_t* col, int32_t r0, int32_t r1, int64_t k_base,
                                   int D, int H, int heads) {
  const std::vector<int32_t> starts = proj_blocks(row_ptr, r0, r1);
  const int N4 = 4 * D;
  const std::vector<T> WEt = transpose(WE, N4, H);  // W_Eᵀ (H × 4D)
  GemmPacked pWE;  // packed once for every block's product
  gemm_pack(&pWE, N4, H, WEt.data(), N4, H, 1, matmul);
  const int64_t nblocks = static_cast<int64_t>(starts.size()) - 1;
  parallel_for(nblocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<T> s, pe;
    for (int64_t b = b0; b < b1; ++b) {
      const int32_t u0 = starts[static_cast<size_t>(b)], u1 = starts[static_cast<size_t>(b) + 1];
      const int64_t kb = row_ptr[u0], R = static_cast<int64_t>(row_ptr[u1]) - kb;
      T* dst = Pe;
      int64_t base = k_base;
      if (Pe == nullptr) {
        pe.resize(static_cast<size_t>(std::max<int64_t>(R, 1)) * N4);
        dst = pe.data();
        base = kb;
      }
      gemm_serial_packed(R, e_all + kb * H, pWE, dst + (kb - base) * N4, N4, false);
      attention_fwd_rows_serial(o, alpha, Pn, dst, row_ptr, col, u0, u1, base, D, heads, s);
    }
  });
}

template <typename T>
void CpuOps<T>::attention_bwd(T* dPn, T* dPe, const T* dout, const T* alpha, const T* Pn, const T* Pe,
                              const int32_t* row_ptr, const int32_t* col, const int32_t* rev, int32_t N, int D,
                              int heads) {
  attention_bwd_rows(dPn, dPe, nullptr, dout, alpha, Pn, Pe, row_ptr, col, 0, N, 0, D, heads);
  attention_col_pass(dPn, dPe, Pe, row_ptr, rev, N, D, heads);
}

namespace {
// Pass 1 of the attention backward over rows [r0, r1) (CpuOps::attention_bwd_rows), also writing the column pass's
// operands per pair k and head: at colbuf + k·2D ([dkey | dval ⊙ g]) unless colbuf is null, and scattered to the
// reverse pair, kcol/vcol + rev_k·D (dkey / dval ⊙ g), unless kcol is null.
// The same over rows [u0, u1) on the calling thread; da is scratch.
template <typename T>
void attention_bwd_rows_serial(T* dPn, T* dPe, T* colbuf, T* kcol, T* vcol, const int32_t* rev, const T* dout,
                               const T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col,
                               int64_t u0, int64_t u1, int64_t k_base, int D, int heads, std::vector<T>& da) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (rows_avx2()) {
      return v8::attention_bwd_rows_f32(dPn, dPe, colbuf, kcol, vcol, rev, dout, alpha, Pn, Pe, row_ptr, col, u0, u1,
                                        k_base, D, heads, da);
    }
  }
#endif
  const int Dh = D / heads;
  const T inv_sqrt_d = T(1) / std::sqrt(T(D));
  // Per row u: pair gradients [da|db|dc|dg] and the query gradient dq̃_u (a row sum).
  {
    for (int64_t u = u0; u < u1; ++u) {
      const int32_t k0 = row_ptr[u], k1 = row_ptr[u + 1];
      da.resize(static_cast<size_t>(k1 - k0));
      for (int h = 0; h < heads; ++h) {
        const T* qn = Pn + u * 3 * D + h * 3 * Dh;
        const T* dou = dout + u * D + h * Dh;
        // dα_k = ⟨do_u, val_k⟩ and Σ α dα
        T sum = 0;
        for (int32_t k = k0; k < k1; ++k) {
          const T* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
          const T* vn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + 2 * Dh;
          T d = 0;
          for (int c = 0; c < Dh; ++c) d += dou[c] * (vn[c] * pe[3 * Dh + c] + pe[2 * Dh + c]);
          da[k - k0] = d;
          sum += alpha[static_cast<int64_t>(k) * heads + h] * d;
        }
        T* dq = dPn + u * 3 * D + h * 3 * Dh;
        for (int c = 0; c < Dh; ++c) dq[c] = 0;
        for (int32_t k = k0; k < k1; ++k) {
          const T a = alpha[static_cast<int64_t>(k) * heads + h];
          const T ds = a * (da[k - k0] - sum) * inv_sqrt_d;  // ∂L/∂(q·key), scale folded in
          const T* pe = Pe + (k - k_base) * 4 * D + h * 4 * Dh;
          const T* kn = Pn + static_cast<int64_t>(col[k]) * 3 * D + h * 3 * Dh + Dh;
          const T* vn = kn + Dh;
          T* dpe = dPe + (k - k_base) * 4 * D + h * 4 * Dh;
          T* cb = colbuf != nullptr ? colbuf + static_cast<int64_t>(k) * 2 * D + h * 2 * Dh : nullptr;
          for (int c = 0; c < Dh; ++c) {
            const T q = qn[c] + pe[c];
            const T key = kn[c] + pe[Dh + c];
            const T dq_c = ds * key;
            const T dval = a * dou[c];
            dpe[c] = dq_c;                  // da = dq
            dpe[Dh + c] = ds * q;           // db = dkey
            dpe[2 * Dh + c] = dval;         // dc = dval
            dpe[3 * Dh + c] = dval * vn[c];  // dg = dval ⊙ ṽ_v
            if (cb != nullptr) {
              cb[c] = dpe[Dh + c];             // the column pass's operands: dkey
              cb[Dh + c] = dval * pe[3 * Dh + c];  //   and dval ⊙ g
            }
            if (kcol != nullptr) {  // the same, at the reverse pair
              kcol[static_cast<int64_t>(rev[k]) * D + h * Dh + c] = dpe[Dh + c];
              vcol[static_cast<int64_t>(rev[k]) * D + h * Dh + c] = dval * pe[3 * Dh + c];
            }
            dq[c] += dq_c;
          }
        }
      }
    }
  }
}

template <typename T>
void attention_bwd_rows_impl(T* dPn, T* dPe, T* colbuf, T* kcol, T* vcol, const int32_t* rev, const T* dout,
                             const T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col,
                             int32_t r0, int32_t r1, int64_t k_base, int D, int heads) {
  parallel_for(r1 - r0, 8, [&](int64_t i0, int64_t i1) {
    std::vector<T> da;
    attention_bwd_rows_serial(dPn, dPe, colbuf, kcol, vcol, rev, dout, alpha, Pn, Pe, row_ptr, col, r0 + i0, r0 + i1,
                              k_base, D, heads, da);
  });
}

// Pass 2 from operands already at their reverse pairs (attention_bwd_rows_impl's kcol/vcol): node v's sums read row
// v of them in order — pair j of row v is the reverse of the pair (·, v) the gathering pass reads for it — so the
// sums are the same, in the same order, read sequentially.
template <typename T>
void attention_col_pass_seq(T* dPn, const T* kcol, const T* vcol, const int32_t* row_ptr, int32_t N, int D, int heads) {
  const int Dh = D / heads;
  parallel_for(N, 8, [&](int64_t v0, int64_t v1) {
    for (int64_t v = v0; v < v1; ++v) {
      for (int h = 0; h < heads; ++h) {
        T* dk = dPn + v * 3 * D + h * 3 * Dh + Dh;
        T* dv = dk + Dh;
        for (int c = 0; c < Dh; ++c) dk[c] = dv[c] = 0;
        for (int64_t j = row_ptr[v]; j < row_ptr[v + 1]; ++j) {
          const T* kc = kcol + j * D + h * Dh;
          const T* vc = vcol + j * D + h * Dh;
          for (int c = 0; c < Dh; ++c) {
            dk[c] += kc[c];
            dv[c] += vc[c];
          }
        }
      }
    }
  });
}
}  // namespace

template <typename T>
void CpuOps<T>::attention_bwd_rows(T* dPn, T* dPe, T* colbuf, const T* dout, const T* alpha, const T* Pn,
                                   const T* Pe, const int32_t* row_ptr, const int32_t* col, int32_t r0, int32_t r1,
                                   int64_t k_base, int D, int heads) {
  attention_bwd_rows_impl<T>(dPn, dPe, colbuf, nullptr, nullptr, nullptr, dout, alpha, Pn, Pe, row_ptr, col, r0, r1,
                             k_base, D, heads);
}

template <typename T>
void CpuOps<T>::attention_bwd_scattered(T* dPn, T* dPe, T* kcol, T* vcol, const T* dout, const T* alpha, const T* Pn,
                                        const T* Pe, const int32_t* row_ptr, const int32_t* col, const int32_t* rev,
                                        int32_t N, int D, int heads) {
  attention_bwd_rows_impl<T>(dPn, dPe, nullptr, kcol, vcol, rev, dout, alpha, Pn, Pe, row_ptr, col, 0, N, 0, D, heads);
  attention_col_pass_seq(dPn, kcol, vcol, row_ptr, N, D, heads);
}

template <typename T>
void CpuOps<T>::attention_proj_bwd(T* dPn, T* dE, T* dWE, T* kcol, T* vcol, const T* dout, const T* alpha, const T* Pn,
                                   const T* Pe, const T* e_all, const T* WE, const int32_t* row_ptr, const int32_t* col,
                                   const int32_t* rev, int32_t N, int D, int H, int heads) {
  const std::vector<int32_t> starts = proj_blocks(row_ptr, 0, N);
  const int64_t nblocks = static_cast<int64_t>(starts.size()) - 1;
  const int N4 = 4 * D;
  const int64_t WN = static_cast<int64_t>(N4) * H;
  GemmPacked pWE;  // W_E for ∂L/∂e, packed once
  gemm_pack(&pWE, H, N4, WE, H, N4, 1, matmul);
  in_grad_partitions<T>(
      nblocks, dWE != nullptr ? WN : 0,
      [&](int64_t b0, int64_t b1, T* P) {
        std::vector<T> da, dpe;
        for (int64_t b = b0; b < b1; ++b) {
          const int32_t u0 = starts[static_cast<size_t>(b)], u1 = starts[static_cast<size_t>(b) + 1];
          const int64_t kb = row_ptr[u0], R = static_cast<int64_t>(row_ptr[u1]) - kb;
          dpe.resize(static_cast<size_t>(std::max<int64_t>(R, 1)) * N4);
          // Pass 1 over the block's rows: ∂L/∂Pe into block scratch (its pair k at (k − kb)·4D, Pe read alike).
          attention_bwd_rows_serial(dPn, dpe.data(), static_cast<T*>(nullptr), kcol, vcol, rev, dout, alpha, Pn,
                                    Pe + kb * N4, row_ptr, col, u0, u1, kb, D, heads, da);
          // ∂L/∂e += ∂L/∂Pe·W_E (each row as linear_bwd_data computes it), ∂L/∂W_E += ∂L/∂Peᵀ·e.
          gemm_serial_packed(R, dpe.data(), pWE, dE + kb * H, H, true);
          if (P != nullptr) gemm_serial(N4, H, R, dpe.data(), 1, N4, e_all + kb * H, H, P, H, true, matmul);
        }
      },
      [&](const T* P) {
        for (int64_t i = 0; i < WN; ++i) dWE[i] += P[i];
      });
  attention_col_pass_seq(dPn, kcol, vcol, row_ptr, N, D, heads);
}

template <typename T>
void CpuOps<T>::attention_bwd_cols(T* dPn, const T* colbuf, const int32_t* row_ptr, const int32_t* rev, int32_t N,
                                   int D, int heads) {
  attention_col_pass(dPn, colbuf, static_cast<const T*>(nullptr), row_ptr, rev, N, D, heads);
}

template <typename T>
void CpuOps<T>::edge_combine_fwd(T* z, const T* Y1, const T* Y2, const T* S, const T* Tn, const T* bias,
                                 const int32_t* row, const int32_t* col, const int32_t* rev, int64_t M, int D) {
  parallel_for(M, grain_for(D), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const T* y1 = Y1 + k * D;
      const T* y2 = Y2 + static_cast<int64_t>(rev[k]) * D;
      const T* s = S + static_cast<int64_t>(row[k]) * D;
      const T* t = Tn + static_cast<int64_t>(col[k]) * D;
      T* zk = z + k * D;
      for (int c = 0; c < D; ++c) zk[c] = y1[c] + y2[c] + s[c] + t[c] + bias[c];
    }
  });
}

template <typename T>
void CpuOps<T>::edge_combine_bwd(T* dY2, T* dS, T* dT, T* dbias, const T* dz, const int32_t* row_ptr,
                                 const int32_t* rev, int32_t N, int64_t M, int D) {
  // dY2 is a gather through rev; dS and dT are row sums (dT over rev).
  parallel_for(M, grain_for(D), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) std::memcpy(dY2 + k * D, dz + static_cast<int64_t>(rev[k]) * D, sizeof(T) * D);
  });
  parallel_for(N, 8, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      T* ds = dS + u * D;
      T* dt = dT + u * D;
      for (int c = 0; c < D; ++c) ds[c] = dt[c] = 0;
      for (int32_t k = row_ptr[u]; k < row_ptr[u + 1]; ++k) {
        const T* g = dz + static_cast<int64_t>(k) * D;
        const T* gr = dz + static_cast<int64_t>(rev[k]) * D;
        for (int c = 0; c < D; ++c) {
          ds[c] += g[c];
          dt[c] += gr[c];
        }
      }
    }
  });
  // Σ_k dz_k = Σ_u dS_u (in node order: deterministic)
  for (int32_t u = 0; u < N; ++u)
    for (int c = 0; c < D; ++c) dbias[c] += dS[static_cast<int64_t>(u) * D + c];
}

template <typename T>
void CpuOps<T>::edge_update_bwd(T* dE, T* dWe, T* dS, T* dT, T* dbias, const T* dz, const T* e_all, const T* We,
                                const int32_t* row_ptr, const int32_t* rev, int32_t N, int D, int H) {
  const std::vector<int32_t> starts = proj_blocks(row_ptr, 0, N);
  const int64_t nblocks = static_cast<int64_t>(starts.size()) - 1;
  const int64_t WN = static_cast<int64_t>(D) * 2 * H;
  GemmPacked pW1, pW2;  // W_e1, W_e2 for ∂L/∂e, packed once
  gemm_pack(&pW1, H, D, We, 2 * H, D, 1, matmul);
  gemm_pack(&pW2, H, D, We + H, 2 * H, D, 1, matmul);
  in_grad_partitions<T>(
      nblocks, dWe != nullptr ? WN : 0,
      [&](int64_t b0, int64_t b1, T* P) {
        std::vector<T> dy2;
        for (int64_t b = b0; b < b1; ++b) {
          const int32_t u0 = starts[static_cast<size_t>(b)], u1 = starts[static_cast<size_t>(b) + 1];
          const int64_t kb = row_ptr[u0], R = static_cast<int64_t>(row_ptr[u1]) - kb;
          // ∂L/∂(e·W_e2ᵀ) of the block's pairs: ∂L/∂z at their reverse pairs (edge_combine_bwd's dY2 rows).
          dy2.resize(static_cast<size_t>(std::max<int64_t>(R, 1)) * D);
          for (int64_t r = 0; r < R; ++r)
            std::memcpy(dy2.data() + r * D, dz + static_cast<int64_t>(rev[kb + r]) * D, sizeof(T) * D);
          // Node terms: row sums of ∂L/∂z and of its reverse, pairs in order (as edge_combine_bwd).
          for (int32_t u = u0; u < u1; ++u) {
            T* ds = dS + static_cast<int64_t>(u) * D;
            T* dt = dT + static_cast<int64_t>(u) * D;
            for (int c = 0; c < D; ++c) ds[c] = dt[c] = 0;
            for (int32_t k = row_ptr[u]; k < row_ptr[u + 1]; ++k) {
              const T* g = dz + static_cast<int64_t>(k) * D;
              const T* gr = dy2.data() + (k - kb) * D;
              for (int c = 0; c < D; ++c) {
                ds[c] += g[c];
                dt[c] += gr[c];
              }
            }
          }
          // ∂L/∂e += ∂L/∂z·W_e1 + ∂L/∂Y2·W_e2 (in that order, as the two linear_bwd_data calls), ∂L/∂W_e += ….
          gemm_serial_packed(R, dz + kb * D, pW1, dE + kb * H, H, true);
          gemm_serial_packed(R, dy2.data(), pW2, dE + kb * H, H, true);
          if (P != nullptr) {
            gemm_serial(D, H, R, dz + kb * D, 1, D, e_all + kb * H, H, P, 2 * H, true, matmul);
            gemm_serial(D, H, R, dy2.data(), 1, D, e_all + kb * H, H, P + H, 2 * H, true, matmul);
          }
        }
      },
      [&](const T* P) {
        for (int64_t i = 0; i < WN; ++i) dWe[i] += P[i];
      });
  // Σ_k ∂L/∂z_k = Σ_u dS_u (in node order, as edge_combine_bwd)
  for (int32_t u = 0; u < N; ++u)
    for (int c = 0; c < D; ++c) dbias[c] += dS[static_cast<int64_t>(u) * D + c];
}

// ---------------------------------------------------------------------------------------------------------------
// inputs and outputs
template <typename T>
void CpuOps<T>::edge_features(T* feat, const T* x, const T* t, const T* aux, const int32_t* param, const int32_t* dir,
                              const int32_t* graph, int64_t M, int din, bool reverse_value, int aux_cols) {
  const int A = aux != nullptr ? aux_cols : 0;
  const bool time_col = din - A == 2;
  parallel_for(M, 4096, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const bool has = dir[k] == 0 || (reverse_value && dir[k] == 1);
      feat[k * din] = has ? x[param[k]] : T(0);
      if (time_col) feat[k * din + 1] = t[graph[k]];
      for (int c = 0; c < A; ++c) feat[k * din + din - A + c] = has ? aux[static_cast<int64_t>(param[k]) * A + c] : T(0);
    }
  });
}

template <typename T>
void CpuOps<T>::node_features(T* feat, const T* x, const T* t, const T* aux, const int32_t* param, const int32_t* graph,
                              int32_t N, int din, int aux_cols) {
  const int A = aux != nullptr ? aux_cols : 0;
  const bool time_col = din - A == 2;
  for (int32_t u = 0; u < N; ++u) {
    const int64_t o = static_cast<int64_t>(u) * din;
    feat[o] = param[u] >= 0 ? x[param[u]] : T(0);
    if (time_col) feat[o + 1] = t[graph[u]];
    for (int c = 0; c < A; ++c) feat[o + din - A + c] = param[u] >= 0 ? aux[static_cast<int64_t>(param[u]) * A + c] : T(0);
  }
}

template <typename T>
void CpuOps<T>::edge_features_bwd(T* dx, const T* dfeat, const int32_t* idx, const int32_t* rev, const int32_t* param,
                                  int64_t n, int din, bool reverse_value) {
  parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t k = idx[i];
      // the forward pair's value column, then (sparse default) its reverse pair's: both read x[param]
      T g = dfeat[k * din];
      if (reverse_value) g += dfeat[static_cast<int64_t>(rev[k]) * din];
      dx[param[i]] = g;
    }
  });
}

template <typename T>
void CpuOps<T>::node_features_bwd(T* dx, const T* dfeat, const int32_t* idx, const int32_t* param, int64_t n, int din) {
  for (int64_t i = 0; i < n; ++i) dx[param[i]] = dfeat[static_cast<int64_t>(idx[i]) * din];
}

template <typename T>
void CpuOps<T>::copy_cols(T* dst, int ldd, const T* src, int lds, int64_t rows, int cols, bool acc) {
  parallel_for(rows, grain_for(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* d = dst + r * ldd;
      const T* s = src + r * lds;
      if (acc) {
        for (int c = 0; c < cols; ++c) d[c] += s[c];
      } else {
        std::memcpy(d, s, sizeof(T) * cols);
      }
    }
  });
}

template <typename T>
void CpuOps<T>::embed_add(T* y, int ld, const T* table, const int32_t* idx, int64_t rows, int D) {
  parallel_for(rows, grain_for(D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* e = table + static_cast<int64_t>(idx[r]) * D;
      T* yr = y + r * ld;
      for (int c = 0; c < D; ++c) yr[c] += e[c];
    }
  });
}

template <typename T>
void CpuOps<T>::embed_bwd(T* dtable, const T* dy, int ld, const int32_t* idx, int64_t rows, int D, int table_rows) {
  // Sequential over rows in index order: deterministic; the tables are small.
  for (int64_t r = 0; r < rows; ++r) {
    T* e = dtable + static_cast<int64_t>(idx[r]) * D;
    const T* g = dy + r * ld;
    for (int c = 0; c < D; ++c) e[c] += g[c];
  }
  (void)table_rows;
}

template <typename T>
void CpuOps<T>::set_time(T* s, const T* t, const int32_t* graph, const int32_t* one_mask, int64_t rows, int H) {
  parallel_for(rows, 8192, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) s[r * H + H - 1] = (one_mask != nullptr && one_mask[r] != 0) ? T(1) : t[graph[r]];
  });
}

template <typename T>
void CpuOps<T>::gather_rows(T* y, const T* x, const int32_t* idx, int64_t n, int C) {
  parallel_for(n, grain_for(C), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::memcpy(y + i * C, x + static_cast<int64_t>(idx[i]) * C, sizeof(T) * C);
  });
}

template <typename T>
void CpuOps<T>::scatter_rows(T* dx, const T* dy, const int32_t* idx, int64_t n, int C, bool acc) {
  parallel_for(n, grain_for(C), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* d = dx + static_cast<int64_t>(idx[i]) * C;
      const T* s = dy + i * C;
      for (int c = 0; c < C; ++c) d[c] = acc ? d[c] + s[c] : s[c];
    }
  });
}

template <typename T>
void CpuOps<T>::scatter_flat(T* flat, const T* v, const int32_t* param, int64_t n) {
  for (int64_t i = 0; i < n; ++i) flat[param[i]] = v[i];
}

template <typename T>
void CpuOps<T>::gather_flat(T* v, const T* flat, const int32_t* param, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = flat[param[i]];
}

// ---------------------------------------------------------------------------------------------------------------
// fused pair MLP
namespace {

constexpr int64_t kFuseRows = 96;   // rows per block: R×H and R×D scratch stay in L1/L2

// LayerNorm backward of R rows: dx = LN'(dy); dg += Σ dy·x̂, db += Σ dy.
template <typename T>
void ln_bwd_rows(T* dx, T* dg, T* db, const T* dy, const T* xhat, const T* rstd, const T* g, int64_t R, int C) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<T, float>) {
    if (rows_avx2()) return v8::ln_bwd_rows_f32(dx, dg, db, dy, xhat, rstd, g, R, C);
  }
#endif
  // The row sums in one loop (sequential, as always), the per-column updates in loops of their own that compilers
  // vectorise (NEON on arm64): the same operations in the same order as one fused loop.
  for (int64_t r = 0; r < R; ++r) {
    const T* dyr = dy + r * C;
    const T* h = xhat + r * C;
    T m1 = 0, m2 = 0;
    for (int c = 0; c < C; ++c) {
      const T d = dyr[c] * g[c];
      m1 += d;
      m2 += d * h[c];
    }
    for (int c = 0; c < C; ++c) {
      dg[c] += dyr[c] * h[c];
      db[c] += dyr[c];
    }
    m1 /= C;
    m2 /= C;
    const T rs = rstd[r];
    T* dxr = dx + r * C;
    for (int c = 0; c < C; ++c) dxr[c] = rs * (dyr[c] * g[c] - m1 - h[c] * m2);
  }
}

}  // namespace

namespace {

// The pair update of a fused pair MLP block (edge_update_fwd): z for pairs [k0, k0 + M) from the pair states.
template <typename T>
struct PairUpdate {
  const T* e_all;                      // all pairs' states (M_all × H)
  std::vector<T> We1t, We2t;           // W_e1ᵀ, W_e2ᵀ (H × D), packed as linear_fwd packs them
  const T *be, *S, *Tn;                // bias; node terms Lin_s(n'), Lin_t(n') (N × D)
  const int32_t *row, *col, *rev;      // graph arrays (global pair indices)
  int64_t k0;                          // first pair of the range
  T* z;                                // z kept here (k0-relative), or null: block scratch
};

// ē = LN2(e + Lin1(GELU(z))), h3 = Lin_m0(ē), e' = LN3(ē + Lin_m2(GELU(h3))) in blocks of kFuseRows rows; with `pu`,
// each block's z is computed first (see edge_update_fwd), else read from z.
template <typename T>
void pair_mlp_fwd_blocks(T* ebar, T* xh2, T* rs2, T* h3, T* xh3, T* rs3, T* e_out, const T* z, const T* e_in,
                         const T* W1, const T* b1, const T* g2, const T* be2, const T* Wm0, const T* Wm2, const T* bm2,
                         const T* g3, const T* be3, int64_t M, int D, int H, const PairUpdate<T>* pu,
                         GemmPrecision matmul) {
  const std::vector<T> W1t = transpose(W1, H, D), Wm0t = transpose(Wm0, D, H), Wm2t = transpose(Wm2, H, D);
  // The weights packed once for every block's products.
  GemmPacked pW1, pM0, pM2, pE1, pE2;
  gemm_pack(&pW1, H, D, W1t.data(), H, D, 1, matmul);
  gemm_pack(&pM0, D, H, Wm0t.data(), D, H, 1, matmul);
  gemm_pack(&pM2, H, D, Wm2t.data(), H, D, 1, matmul);
  if (pu != nullptr) {
    gemm_pack(&pE1, D, H, pu->We1t.data(), D, H, 1, matmul);
    gemm_pack(&pE2, D, H, pu->We2t.data(), D, H, 1, matmul);
  }
  const int64_t blocks = (M + kFuseRows - 1) / kFuseRows;
  const bool keep = xh2 != nullptr;  // else an inference forward: ē, h3, x̂ and 1/σ in block scratch
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1_) {
    std::vector<T> tD(static_cast<size_t>(kFuseRows) * D), tH(static_cast<size_t>(kFuseRows) * H);
    std::vector<T> sH(keep ? 0 : static_cast<size_t>(kFuseRows) * 3 * H), sD(keep ? 0 : static_cast<size_t>(kFuseRows) * D),
        sR(keep ? 0 : static_cast<size_t>(kFuseRows) * 2);
    // The pair update's block scratch: z (when not kept), e·W_e2ᵀ of the reverse pairs, and their states.
    std::vector<T> zS(pu != nullptr && pu->z == nullptr ? static_cast<size_t>(kFuseRows) * D : 0),
        y2S(pu != nullptr ? static_cast<size_t>(kFuseRows) * D : 0), erS(pu != nullptr ? static_cast<size_t>(kFuseRows) * H : 0);
    for (int64_t blk = b0; blk < b1_; ++blk) {
      const int64_t r0 = blk * kFuseRows, R = std::min<int64_t>(kFuseRows, M - r0);
      const T* zb = z != nullptr ? z + r0 * D : nullptr;
      if (pu != nullptr) {
        // z = e·W_e1ᵀ + (e·W_e2ᵀ)[rev] + S[row] + T[col] + b, each product row as linear_fwd computes it.
        T* zo = pu->z != nullptr ? pu->z + r0 * D : zS.data();
        const int64_t g0 = pu->k0 + r0;  // first global pair of the block
        gemm_serial_packed(R, pu->e_all + g0 * H, pE1, zo, D, false);
        for (int64_t r = 0; r < R; ++r)
          std::memcpy(erS.data() + r * H, pu->e_all + static_cast<int64_t>(pu->rev[g0 + r]) * H, sizeof(T) * H);
        gemm_serial_packed(R, erS.data(), pE2, y2S.data(), D, false);
        for (int64_t r = 0; r < R; ++r) {
          const int64_t k = g0 + r;
          const T* y2 = y2S.data() + r * D;
          const T* sr = pu->S + static_cast<int64_t>(pu->row[k]) * D;
          const T* tc = pu->Tn + static_cast<int64_t>(pu->col[k]) * D;
          T* zk = zo + r * D;
          for (int c = 0; c < D; ++c) zk[c] = zk[c] + y2[c] + sr[c] + tc[c] + pu->be[c];
        }
        zb = zo;
      }
      // This block's rows of the saved activations, or the scratch standing in for them.
      T* const eb = keep ? ebar + r0 * H : sH.data();
      T* const x2 = keep ? xh2 + r0 * H : sH.data() + kFuseRows * H;
      T* const x3 = keep ? xh3 + r0 * H : sH.data() + 2 * kFuseRows * H;
      T* const hb = keep ? h3 + r0 * D : sD.data();
      T* const s2 = keep ? rs2 + r0 : sR.data();
      T* const s3 = keep ? rs3 + r0 : sR.data() + kFuseRows;
      // y2 = e + GELU(z)·W1ᵀ + b1 → ē = LN2(y2)
      act_rows(tD.data(), zb, R * D, Act::Gelu);
      gemm_serial_packed(R, tD.data(), pW1, tH.data(), H, false);
      for (int64_t r = 0; r < R; ++r)
        for (int c = 0; c < H; ++c) tH[r * H + c] += b1[c] + e_in[(r0 + r) * H + c];
      ln_rows(eb, x2, s2, tH.data(), g2, be2, R, H);
      // h3 = ē·Wm0ᵀ; y3 = ē + GELU(h3)·Wm2ᵀ + bm2 → e' = LN3(y3)
      gemm_serial_packed(R, eb, pM0, hb, D, false);
      act_rows(tD.data(), hb, R * D, Act::Gelu);
      gemm_serial_packed(R, tD.data(), pM2, tH.data(), H, false);
      for (int64_t r = 0; r < R; ++r)
        for (int c = 0; c < H; ++c) tH[r * H + c] += bm2[c] + eb[r * H + c];
      ln_rows(e_out + r0 * H, x3, s3, tH.data(), g3, be3, R, H);
    }
  });
}

}  // namespace

template <typename T>
void CpuOps<T>::in_mlp_fwd(T* out, T* h0, T* h1, T* h2, const T* f, const T* W0, const T* b0, const T* W1, const T* b1,
                           const T* W2, const T* b2, const T* Wp, const T* bp, int64_t rows, int din, int D) {
  // Wᵀ of each layer packed once (as linear_fwd packs it).
  const std::vector<T> W0t = transpose(W0, D, din), W1t = transpose(W1, D, D), W2t = transpose(W2, D, D),
                       Wpt = transpose(Wp, D, D);
  GemmPacked p0, p1, p2, pp;
  gemm_pack(&p0, D, din, W0t.data(), D, din, 1);  // K = the input features: kept float (the weight values themselves)
  gemm_pack(&p1, D, D, W1t.data(), D, D, 1, matmul);
  gemm_pack(&p2, D, D, W2t.data(), D, D, 1, matmul);
  gemm_pack(&pp, D, D, Wpt.data(), D, D, 1, matmul);
  const bool keep = h0 != nullptr;
  const int64_t blocks = (rows + kFuseRows - 1) / kFuseRows;
  parallel_for(blocks, 1, [&](int64_t b0_, int64_t b1_) {
    std::vector<T> t(static_cast<size_t>(kFuseRows) * D), s(keep ? 0 : static_cast<size_t>(kFuseRows) * 3 * D);
    // y = b + x·Wᵀ: the bias first, then the product accumulated (linear_fwd's order).
    auto lin = [&](T* y, const T* x, const GemmPacked& pw, const T* b, int64_t R) {
      for (int64_t r = 0; r < R; ++r) std::memcpy(y + r * D, b, sizeof(T) * D);
      gemm_serial_packed(R, x, pw, y, D, true);
    };
    for (int64_t blk = b0_; blk < b1_; ++blk) {
      const int64_t r0 = blk * kFuseRows, R = std::min<int64_t>(kFuseRows, rows - r0);
      T* const a0 = keep ? h0 + r0 * D : s.data();
      T* const a1 = keep ? h1 + r0 * D : s.data() + kFuseRows * D;
      T* const a2 = keep ? h2 + r0 * D : s.data() + 2 * kFuseRows * D;
      lin(a0, f + r0 * din, p0, b0, R);
      act_rows(t.data(), a0, R * D, Act::Silu);
      lin(a1, t.data(), p1, b1, R);
      act_rows(t.data(), a1, R * D, Act::Silu);
      lin(a2, t.data(), p2, b2, R);
      lin(out + r0 * D, a2, pp, bp, R);
    }
  });
}

template <typename T>
void CpuOps<T>::in_mlp_bwd(T* df, T* const* grads, const T* dout, const T* f, const T* h0, const T* h1, const T* h2,
                           const T* W0, const T* W1, const T* W2, const T* Wp, int64_t rows, int din, int D) {
  // The data-gradient products' weights packed once (as linear_bwd_data uses them: dx = dy·W).
  GemmPacked q0, q1, q2, qp;
  gemm_pack(&q0, din, D, W0, din, D, 1);
  gemm_pack(&q1, D, D, W1, D, D, 1, matmul);
  gemm_pack(&q2, D, D, W2, D, D, 1, matmul);
  gemm_pack(&qp, D, D, Wp, D, D, 1, matmul);
  const int64_t blocks = (rows + kFuseRows - 1) / kFuseRows;
  const int64_t DD = static_cast<int64_t>(D) * D, D0 = static_cast<int64_t>(D) * din;
  // Per partition: dW0, db0, dW1, db1, dW2, db2, dWp, dbp (the order of `grads`).
  const int64_t sizes[8] = {D0, D, DD, D, DD, D, DD, D};
  int64_t offs[8], stride = 0;
  for (int i = 0; i < 8; ++i) offs[i] = stride, stride += sizes[i];
  in_grad_partitions<T>(
      blocks, grads != nullptr ? stride : 0,
      [&](int64_t b0_, int64_t b1_, T* P_) {
        std::vector<T> g(static_cast<size_t>(kFuseRows) * D), s1(static_cast<size_t>(kFuseRows) * D),
            s2(static_cast<size_t>(kFuseRows) * D);
        // dW += dyᵀ·x, db += Σ dy (rows in order) for a layer of `in` inputs, partial slot i.
        auto weight = [&](int i, const T* dy, const T* x, int in, int64_t R) {
          if (P_ == nullptr) return;
          gemm_serial(D, in, R, dy, 1, D, x, in, P_ + offs[i], in, true, matmul);
          T* db = P_ + offs[i + 1];
          for (int64_t r = 0; r < R; ++r)
            for (int c = 0; c < D; ++c) db[c] += dy[r * D + c];
        };
        for (int64_t blk = b0_; blk < b1_; ++blk) {
          const int64_t r0 = blk * kFuseRows, R = std::min<int64_t>(kFuseRows, rows - r0);
          const T* dy = dout + r0 * D;
          // out = Lp(h2): ∂L/∂h2 = dout·Wp
          weight(6, dy, h2 + r0 * D, D, R);
          gemm_serial_packed(R, dy, qp, s1.data(), D, false);
          // h2 = L2(SiLU(h1)): ∂L/∂SiLU(h1) = ∂L/∂h2·W2, then ⊙ SiLU'(h1)
          act_rows(s2.data(), h1 + r0 * D, R * D, Act::Silu);
          weight(4, s1.data(), s2.data(), D, R);
          gemm_serial_packed(R, s1.data(), q2, g.data(), D, false);
          act_grad_rows(s1.data(), g.data(), h1 + r0 * D, R * D, Act::Silu);
          // h1 = L1(SiLU(h0))
          act_rows(s2.data(), h0 + r0 * D, R * D, Act::Silu);
          weight(2, s1.data(), s2.data(), D, R);
          gemm_serial_packed(R, s1.data(), q1, g.data(), D, false);
          act_grad_rows(s1.data(), g.data(), h0 + r0 * D, R * D, Act::Silu);
          // h0 = L0(f)
          weight(0, s1.data(), f + r0 * din, din, R);
          if (df != nullptr) gemm_serial_packed(R, s1.data(), q0, df + r0 * din, din, false);
        }
      },
      [&](const T* src) {
        for (int i = 0; i < 8; ++i)
          for (int64_t j = 0; j < sizes[i]; ++j) grads[i][j] += src[offs[i] + j];
      });
}

template <typename T>
void CpuOps<T>::edge_mlp_fwd(T* ebar, T* xh2, T* rs2, T* h3, T* xh3, T* rs3, T* e_out, const T* z, const T* e_in,
                             const T* W1, const T* b1, const T* g2, const T* be2, const T* Wm0, const T* Wm2,
                             const T* bm2, const T* g3, const T* be3, int64_t M, int D, int H) {
  pair_mlp_fwd_blocks<T>(ebar, xh2, rs2, h3, xh3, rs3, e_out, z, e_in, W1, b1, g2, be2, Wm0, Wm2, bm2, g3, be3, M, D, H,
                         nullptr, matmul);
}

template <typename T>
void CpuOps<T>::edge_update_fwd(T* z, T* ebar, T* xh2, T* rs2, T* h3, T* xh3, T* rs3, T* e_out, const T* e_all,
                                const T* We, const T* be, const T* S, const T* Tn, const int32_t* row, const int32_t* col,
                                const int32_t* rev, int64_t k0, const T* W1, const T* b1, const T* g2, const T* be2,
                                const T* Wm0, const T* Wm2, const T* bm2, const T* g3, const T* be3, int64_t M, int D,
                                int H) {
  PairUpdate<T> pu{e_all, transpose(We, D, H, 2 * H), transpose(We + H, D, H, 2 * H), be, S, Tn, row, col, rev, k0, z};
  pair_mlp_fwd_blocks<T>(ebar, xh2, rs2, h3, xh3, rs3, e_out, nullptr, e_all + k0 * H, W1, b1, g2, be2, Wm0, Wm2, bm2,
                         g3, be3, M, D, H, &pu, matmul);
}

template <typename T>
void CpuOps<T>::edge_mlp_bwd(T* dE_in, T* dz, T* dg3, T* dbe3, T* dWm2, T* dbm2, T* dWm0, T* dg2, T* dbe2, T* dW1,
                             T* db1, const T* dE_out, const T* xh3, const T* rs3, const T* g3, const T* h3,
                             const T* ebar, const T* Wm2, const T* Wm0, const T* xh2, const T* rs2, const T* g2,
                             const T* z, const T* W1, int64_t M, int D, int H, bool param_grads) {
  const int64_t blocks = (M + kFuseRows - 1) / kFuseRows;
  // Per partition: dWm2 (H×D), dWm0 (D×H), dW1 (H×D), then vectors dbm2, db1, dg3, dbe3, dg2, dbe2 (H each).
  const int64_t HD = static_cast<int64_t>(H) * D;
  const int64_t stride = 3 * HD + 6 * H;
  // The weights of the data gradients, packed once for every block's products.
  GemmPacked qM2, qM0, qW1;
  gemm_pack(&qM2, D, H, Wm2, D, H, 1, matmul);
  gemm_pack(&qM0, H, D, Wm0, H, D, 1, matmul);
  gemm_pack(&qW1, D, H, W1, D, H, 1, matmul);
  // (The LayerNorms' partial sums are taken even for an input-only backward; only their reduction is skipped.)
  in_grad_partitions<T>(blocks, stride, [&](int64_t bstart, int64_t bend, T* P_) {
    std::vector<T> tH(static_cast<size_t>(kFuseRows) * H), tD1(static_cast<size_t>(kFuseRows) * D),
        tD2(static_cast<size_t>(kFuseRows) * D), tG(static_cast<size_t>(kFuseRows) * D);
    // GELU(x) for a weight gradient and GELU'(x) for the data gradient of the same x: from one erf when the float
    // kernels are in use (tG holds GELU'), else by the two activation calls.
    const bool fused_gelu = std::is_same_v<T, float> && param_grads && rows_avx2();
    auto gelu_value = [&](const T* x, int64_t n) {
#if defined(__x86_64__)
      if constexpr (std::is_same_v<T, float>) {
        if (fused_gelu) return gelu_val_grad_f32_avx2(tD1.data(), tG.data(), x, n);
      }
#endif
      act_rows(tD1.data(), x, n, Act::Gelu);
    };
    auto gelu_grad_times = [&](T* d, const T* x, int64_t n) {  // d ⊙= GELU'(x)
      if (!fused_gelu) return act_grad_rows(d, d, x, n, Act::Gelu);
      for (int64_t i = 0; i < n; ++i) d[i] *= tG[i];
    };
    {
      T *pWm2 = P_, *pWm0 = P_ + HD, *pW1 = P_ + 2 * HD, *pbm2 = P_ + 3 * HD, *pb1 = pbm2 + H, *pg3 = pb1 + H,
        *pbe3 = pg3 + H, *pg2 = pbe3 + H, *pbe2 = pg2 + H;
      for (int64_t blk = bstart; blk < bend; ++blk) {
        const int64_t r0 = blk * kFuseRows, R = std::min<int64_t>(kFuseRows, M - r0);
        // dy3 = LN3'(∂L/∂e')
        ln_bwd_rows(tH.data(), pg3, pbe3, dE_out + r0 * H, xh3 + r0 * H, rs3 + r0, g3, R, H);
        // dWm2 += dy3ᵀ·GELU(h3); dbm2 += Σ dy3
        if (param_grads) {
          gelu_value(h3 + r0 * D, R * D);
          gemm_serial(H, D, R, tH.data(), 1, H, tD1.data(), D, pWm2, D, true, matmul);
          for (int64_t r = 0; r < R; ++r)
            for (int c = 0; c < H; ++c) pbm2[c] += tH[r * H + c];
        }
        // dh3 = (dy3·Wm2) ⊙ GELU'(h3)
        gemm_serial_packed(R, tH.data(), qM2, tD2.data(), D, false);
        gelu_grad_times(tD2.data(), h3 + r0 * D, R * D);
        // dWm0 += dh3ᵀ·ē; dē = dy3 + dh3·Wm0
        if (param_grads) gemm_serial(D, H, R, tD2.data(), 1, D, ebar + r0 * H, H, pWm0, H, true, matmul);
        gemm_serial_packed(R, tD2.data(), qM0, tH.data(), H, true);
        // dy2 = LN2'(dē) → ∂L/∂e (the residual path; the caller adds the other contributions)
        ln_bwd_rows(dE_in + r0 * H, pg2, pbe2, tH.data(), xh2 + r0 * H, rs2 + r0, g2, R, H);
        // dW1 += dy2ᵀ·GELU(z); db1 += Σ dy2; dz = (dy2·W1) ⊙ GELU'(z)
        if (param_grads) {
          gelu_value(z + r0 * D, R * D);
          gemm_serial(H, D, R, dE_in + r0 * H, 1, H, tD1.data(), D, pW1, D, true, matmul);
          for (int64_t r = 0; r < R; ++r)
            for (int c = 0; c < H; ++c) pb1[c] += dE_in[(r0 + r) * H + c];
        }
        gemm_serial_packed(R, dE_in + r0 * H, qW1, dz + r0 * D, D, false);
        gelu_grad_times(dz + r0 * D, z + r0 * D, R * D);
      }
    }
  }, [&](const T* P_) {  // fixed-order reduction of the partitions into the gradients
    if (!param_grads) return;
    for (int64_t i = 0; i < HD; ++i) {
      dWm2[i] += P_[i];
      dWm0[i] += P_[HD + i];
      dW1[i] += P_[2 * HD + i];
    }
    const T* v = P_ + 3 * HD;
    for (int c = 0; c < H; ++c) {
      dbm2[c] += v[c];
      db1[c] += v[H + c];
      dg3[c] += v[2 * H + c];
      dbe3[c] += v[3 * H + c];
      dg2[c] += v[4 * H + c];
      dbe2[c] += v[5 * H + c];
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// loss and optimiser
template <typename T>
double CpuOps<T>::mse(T* d, const T* xhat, const T* target, int64_t n, double scale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T e = xhat[i] - target[i];
    s += static_cast<double>(e) * static_cast<double>(e);
    if (d != nullptr) d[i] = static_cast<T>(scale) * e;
  }
  return s;
}

template <typename T>
double CpuOps<T>::sum_squares(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

template <typename T>
void CpuOps<T>::scale(T* x, int64_t n, double s) {
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<T>(x[i] * s);
}

namespace {
// x rounded to float and held in a double. Through a volatile float: GCC 12's SLP vectorizer (-O2 and up, x86-64)
// was seen to store static_cast<float>(x) into a double slot without the rounding when two such stores were paired
// (adam_constants gave 0.01 and 10.000000000000002 for weight decay 0.01 and 1/bc1 at step 1; -O1 rounded).
double float_value(double x) {
  volatile float f = static_cast<float>(x);
  return f;
}
}  // namespace

void adam_constants(const AdamHyper& h, int64_t step, double clip_norm, double out[kAdamConsts]) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  out[0] = float_value(h.beta1);
  out[1] = float_value(h.beta2);
  out[2] = float_value(h.lr);
  out[3] = float_value(h.eps);
  out[4] = float_value(h.weight_decay);
  out[5] = float_value(1.0 / bc1);
  out[6] = float_value(1.0 / std::sqrt(bc2));
  out[7] = clip_norm;
}

namespace {
// Adam/AdamW with its constants given (the float formula of CpuOps::adam and the CUDA kernel).
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, int64_t n, T b1, T b2, T lr, T eps, T wd, T gs, T ibc1, T isbc2) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T gi = g[i] * gs;
      m[i] = b1 * m[i] + (T(1) - b1) * gi;
      v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
      // PyTorch Adam: p −= lr · m̂ / (√v̂ + eps); AdamW decay p −= lr·wd·p first
      if (wd != T(0)) p[i] -= lr * wd * p[i];
      p[i] -= lr * (m[i] * ibc1) / (std::sqrt(v[i]) * isbc2 + eps);
    }
  });
}
}  // namespace

template <typename T>
void CpuOps<T>::adam(T* p, const T* g, T* m, T* v, int64_t n, const AdamHyper& h, int64_t step, double grad_scale) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  adam_update(p, g, m, v, n, static_cast<T>(h.beta1), static_cast<T>(h.beta2), static_cast<T>(h.lr), static_cast<T>(h.eps),
              static_cast<T>(h.weight_decay), static_cast<T>(grad_scale), static_cast<T>(1.0 / bc1),
              static_cast<T>(1.0 / std::sqrt(bc2)));
}

template <typename T>
void CpuOps<T>::sum_squares_dev(double* out, const T* x, int64_t n) {
  *out = n > 0 ? sum_squares(x, n) : 0.0;
}

template <typename T>
void CpuOps<T>::step_gate(T* gate, const double* sumsq, const T* loss, const double* consts) {
  const double norm = std::sqrt(sumsq[0]);
  const double clip = consts[7];
  gate[0] = static_cast<T>((clip > 0 && norm > clip) ? clip / norm : 1.0);
  gate[1] = std::isfinite(norm) && std::isfinite(static_cast<double>(loss[0])) ? T(1) : T(0);
}

template <typename T>
void CpuOps<T>::adam_gated(T* p, const T* g, T* m, T* v, int64_t n, const double* consts, const T* gate) {
  if (gate[1] == T(0)) return;
  const auto c = [consts](int k) { return static_cast<T>(consts[k]); };
  adam_update(p, g, m, v, n, c(0), c(1), c(2), c(3), c(4), gate[0], c(5), c(6));
}

template <typename T>
void CpuOps<T>::ema_update_gated(T* ema, const T* p, int64_t n, double decay, const T* gate) {
  if (gate[1] != T(0)) ema_update(ema, p, n, decay);
}

template <typename T>
void CpuOps<T>::fill_normal_dev(T* out, int64_t n, const uint64_t* seed, double mean, double stddev) {
  fill_normal(out, n, *seed, mean, stddev);
}

// ---- flow-matching step ----
// Doubles throughout, rounded to T once: the TypeScript flow step's arithmetic (its numbers are doubles), operation
// for operation, so the fused step reproduces it bit for bit. (No -mfma in shipped builds: nothing is contracted.)

template <typename T>
void CpuOps<T>::flow_path(T* xt, const T* x0, const T* x1, const T* noise, const T* t, int64_t B, int64_t P) {
  parallel_for(B * P, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double tb = static_cast<double>(t[i / P]);
      double v = (1.0 - tb) * static_cast<double>(x0[i]) + tb * static_cast<double>(x1[i]);
      if (noise != nullptr) v += static_cast<double>(noise[i]);
      xt[i] = static_cast<T>(v);
    }
  });
}

template <typename T>
void CpuOps<T>::flow_input(T* y, const T* x, const T* scale, int64_t B, int64_t P) {
  parallel_for(B * P, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = static_cast<T>(static_cast<double>(x[i]) / static_cast<double>(scale[i % P]));
  });
}

template <typename T>
void CpuOps<T>::flow_to_x1(T* xhat, const T* F, const T* xt, const T* t, const T* scale, bool precondition, int64_t B,
                           int64_t P) {
  parallel_for(B * P, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double s = scale == nullptr ? 1.0 : static_cast<double>(scale[i % P]);
      const double f = static_cast<double>(F[i]);
      xhat[i] = static_cast<T>(precondition ? static_cast<double>(xt[i]) + (1.0 - static_cast<double>(t[i / P])) * s * f
                                            : s * f);
    }
  });
}

template <typename T>
void CpuOps<T>::flow_to_dF(T* d, const T* t, const T* scale, bool precondition, int64_t B, int64_t P) {
  parallel_for(B * P, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double s = scale == nullptr ? 1.0 : static_cast<double>(scale[i % P]);
      const double v = static_cast<double>(d[i]);
      d[i] = static_cast<T>(precondition ? v * (1.0 - static_cast<double>(t[i / P])) * s : v * s);
    }
  });
}

template <typename T>
void CpuOps<T>::fill_normal(T* out, int64_t n, uint64_t seed, double mean, double stddev) {
  if constexpr (std::is_same_v<T, float>) {
    fill_normal_counter(out, n, seed, mean, stddev);
  } else {
    std::vector<float> tmp(static_cast<size_t>(std::max<int64_t>(n, 0)));
    fill_normal_counter(tmp.data(), n, seed, mean, stddev);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(tmp[static_cast<size_t>(i)]);
  }
}

template <typename T>
void CpuOps<T>::flow_velocity(T* v, const T* xhat, const T* x, double inv, int64_t n) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const T d = static_cast<T>(static_cast<double>(xhat[i]) - static_cast<double>(x[i]));
      v[i] = static_cast<T>(static_cast<double>(d) * inv);
    }
  });
}

template <typename T>
void CpuOps<T>::flow_axpy(T* y, const T* x, const T* v, double dt, int64_t n) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = static_cast<T>(static_cast<double>(x[i]) + dt * static_cast<double>(v[i]));
  });
}

template <typename T>
void CpuOps<T>::flow_rk4_combine(T* v, const T* k1, const T* k2, const T* k3, const T* k4, int64_t n) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double s = static_cast<double>(k1[i]) + 2.0 * static_cast<double>(k2[i]) + 2.0 * static_cast<double>(k3[i]) +
                       static_cast<double>(k4[i]);
      v[i] = static_cast<T>(s / 6.0);
    }
  });
}

template <typename T>
void CpuOps<T>::ema_update(T* ema, const T* p, int64_t n, double decay) {
  parallel_for(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      ema[i] = static_cast<T>(decay * static_cast<double>(ema[i]) + (1.0 - decay) * static_cast<double>(p[i]));
    }
  });
}

template <typename T>
void CpuOps<T>::fill_normal_rows(T* out, int64_t rows, int64_t ld, const int32_t* counts, const int32_t* seeds,
                                 double mean, double stddev) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t seed = (static_cast<uint64_t>(static_cast<uint32_t>(seeds[2 * r])) << 32) |
                          static_cast<uint64_t>(static_cast<uint32_t>(seeds[2 * r + 1]));
    fill_normal(out + r * ld, counts[r], seed, mean, stddev);
  }
}

template <typename T>
void CpuOps<T>::gaussian_fit_draw(T* out, const T* eps, int64_t ld_eps, const int32_t* comp, const T* mean,
                                  const T* basis, const int32_t* row0, int64_t B, int64_t P) {
  parallel_for(B * P, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / P, p = i % P;
      const int64_t c = comp == nullptr ? 0 : comp[b];
      const double mu = static_cast<double>(mean[c * P + p]);
      if (basis == nullptr) {
        out[i] = static_cast<T>(static_cast<double>(eps[b * ld_eps + p]) + mu);
        continue;
      }
      double acc = mu;
      const int64_t k0 = row0[c], m = row0[c + 1] - k0;
      for (int64_t k = 0; k < m; ++k) acc += static_cast<double>(eps[b * ld_eps + k]) * static_cast<double>(basis[(k0 + k) * P + p]);
      out[i] = static_cast<T>(acc);
    }
  });
}

template struct CpuOps<float>;
template struct CpuOps<double>;

}  // namespace wsf
