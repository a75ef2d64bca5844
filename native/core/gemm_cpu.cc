// CPU matrix products (see gemm_cpu.h).
//
// float, AVX2+FMA (chosen at run time, compiled with target attributes, never -march=native):
//   * B is packed once per call (per K chunk for tall reductions) into 16-column panels, each row of a panel one
//     aligned 64-byte line; a last panel of width 8 or 16 is zero-padded, so the micro-kernel never needs masked
//     loads. A is read in place through its two strides (6 broadcasts per k step, from L1 after the first panel).
//   * Micro-kernel: 6×16 register tile (12 accumulators, 2 B loads + 6 broadcasts per 12 FMAs), 6×8 for an 8-wide
//     column tail. Accumulators start at zero; C is read (accumulate, or later K chunks) only in the epilogue, so
//     an overwrite never touches C twice and nothing is memset first.
//   * A 1- or 2-column tail (the state width H = D + 1 is odd) is not run through an 8-wide kernel: when A's rows
//     are contiguous (sap == 1: forward and data-gradient products) it is a dot product per row, vectorised along
//     K; when A's columns are (sai == 1: weight gradients) it is an axpy down the column, vectorised along M.
//   * Tall reductions (weight gradients: few output rows, K = rows of the batch) are split into a fixed 8 parts of
//     K with private partials summed in a fixed order, each part walking K in chunks of 256 whose partial sums are
//     added to the part's partial (blocked summation: error grows with 256 + K/2048, not K). The split does not
//     depend on the thread count, and neither does anything else: results are identical for any thread count.
//     When it saves work (a partial is private, so its layout is free) the part computes Cᵀ = Bᵀ·Aᵀ instead, so an
//     odd output width becomes a cheap row tail.
// float without AVX2 (arm64, old x86): register tiles of the compilers' generic 4-lane vectors (NEON / SSE2), K in
// chunks of 256 as above. double: plain loops (the reference for gradient checks).
#include "core/gemm_cpu.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/fastmath_cpu.h"
#include "core/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WSF_X86 1
#endif

namespace wsf {
namespace {

// Tall reduction: K split into this many fixed parts (results independent of the thread count).
constexpr int64_t kTallParts = 8;
bool is_tall(int64_t M, int64_t K) { return K >= 4096 && K >= 16 * M; }

// Portable kernel: C block rows [i0,i1) × all N, p over [p0,p1). Written so compilers vectorise the j loop.
template <typename T>
void gemm_block_portable(int64_t i0, int64_t i1, int64_t N, int64_t p0, int64_t p1, const T* A, int64_t sai,
                         int64_t sap, const T* B, int64_t ldb, T* C, int64_t ldc) {
  for (int64_t i = i0; i < i1; ++i) {
    T* c = C + i * ldc;
    for (int64_t p = p0; p < p1; ++p) {
      const T a = A[i * sai + p * sap];
      const T* b = B + p * ldb;
      for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

// The portable paths' split of one product C (+)= A·B: rows over threads in units of `unit` rows, tall reductions
// over a fixed kTallParts parts of K with private partials summed in a fixed order (results independent of the thread
// count). `block(i0, i1, p0, p1, C, ldc, accumulate)` computes rows [i0, i1) of C over k in [p0, p1), serially,
// overwriting them unless `accumulate`.
template <typename T, class Block>
void gemm_split(int64_t M, int64_t N, int64_t K, T* C, int64_t ldc, bool accumulate, bool threaded, int64_t unit,
                const Block& block) {
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(T) * N);
    return;
  }
  if (threaded && is_tall(M, K)) {
    const int64_t psz = M * N;
    std::vector<T> partial(static_cast<size_t>(kTallParts * psz));
    parallel_for(kTallParts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t)
        block(int64_t(0), M, K * t / kTallParts, K * (t + 1) / kTallParts, partial.data() + t * psz, N, false);
    });
    for (int64_t i = 0; i < M; ++i) {
      T* c = C + i * ldc;
      for (int64_t t = 0; t < kTallParts; ++t) {
        const T* s = partial.data() + t * psz + i * N;
        const bool first = t == 0 && !accumulate;
        for (int64_t j = 0; j < N; ++j) c[j] = first ? s[j] : c[j] + s[j];
      }
    }
    return;
  }
  if (!threaded) {
    block(int64_t(0), M, int64_t(0), K, C, ldc, accumulate);
    return;
  }
  const int64_t grain = 1 + 30000 / std::max<int64_t>(1, N * K * unit);
  parallel_for((M + unit - 1) / unit, grain, [&](int64_t b, int64_t e) {
    block(b * unit, std::min(M, e * unit), int64_t(0), K, C, ldc, accumulate);
  });
}

// Reference path (double): the plain loop, rows one at a time.
template <typename T>
void gemm_portable(int64_t M, int64_t N, int64_t K, const T* A, int64_t sai, int64_t sap, const T* B, int64_t ldb,
                   T* C, int64_t ldc, bool accumulate, bool threaded) {
  gemm_split<T>(M, N, K, C, ldc, accumulate, threaded, 1,
                [&](int64_t i0, int64_t i1, int64_t p0, int64_t p1, T* Cb, int64_t ld, bool acc) {
                  if (!acc)
                    for (int64_t i = i0; i < i1; ++i) std::memset(Cb + i * ld, 0, sizeof(T) * N);
                  gemm_block_portable(i0, i1, N, p0, p1, A, sai, sap, B, ldb, Cb, ld);
                });
}

// Portable float kernels (no AVX2: other architectures — arm64 laptops and servers — and old x86): register tiles
// written with the compilers' generic 4-lane vectors, which become NEON on arm64 (with fused multiply-adds) and SSE2
// on x86-64. The plain loop above streams a row of C through memory for every k and, for a tall reduction, reads all
// of B once per row of C; here a tile of C stays in registers for a chunk of KCP k steps (blocked summation, as in
// the AVX2 path: accumulators start at zero per chunk and are added to C after it), B is read in place, and only a
// column tail narrower than the tile is copied, zero-padded. Double keeps the plain loop (the reference).
namespace vec {

typedef float v4f __attribute__((vector_size(16)));
inline v4f load4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, v4f v) { std::memcpy(p, &v, sizeof v); }

// Tile shape: rows × 8 columns. arm64 has 32 vector registers (8 × 2 accumulators + B + broadcasts fit); x86-64
// without AVX has 16, so 4 rows there.
#if defined(__aarch64__)
constexpr int MRP = 8;
#else
constexpr int MRP = 4;
#endif
constexpr int NVP = 2;                // 4-lane vectors per tile row
constexpr int64_t NRP = 4 * NVP;      // tile columns
constexpr int64_t KCP = 256;          // k steps per chunk
constexpr int64_t MCP = 64;           // rows per block (its A chunk stays in cache across the column tiles)

// C[0,R)×[0,ncols) (+)= Σ_{p<kc} A(r,p)·B[p][0,NRP); B rows ldb apart, NRP readable columns each.
template <int R>
void tile(int64_t kc, const float* a, int64_t sai, int64_t sap, const float* b, int64_t ldb, float* c, int64_t ldc,
          int64_t ncols, bool add) {
  v4f acc[R][NVP];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NVP; ++j) acc[r][j] = v4f{0.f, 0.f, 0.f, 0.f};
  for (int64_t p = 0; p < kc; ++p, a += sap, b += ldb) {
    v4f bv[NVP];
    for (int j = 0; j < NVP; ++j) bv[j] = load4(b + 4 * j);
    for (int r = 0; r < R; ++r) {
      const float x = a[r * sai];
      for (int j = 0; j < NVP; ++j) acc[r][j] += x * bv[j];
    }
  }
  for (int r = 0; r < R; ++r) {
    float* d = c + r * ldc;
    if (ncols == NRP) {
      for (int j = 0; j < NVP; ++j) store4(d + 4 * j, add ? acc[r][j] + load4(d + 4 * j) : acc[r][j]);
    } else {
      alignas(16) float t[NRP];
      for (int j = 0; j < NVP; ++j) store4(t + 4 * j, acc[r][j]);
      for (int64_t q = 0; q < ncols; ++q) d[q] = add ? t[q] + d[q] : t[q];
    }
  }
}

void tile_r(int R, int64_t kc, const float* a, int64_t sai, int64_t sap, const float* b, int64_t ldb, float* c,
            int64_t ldc, int64_t ncols, bool add) {
  switch (R) {
#define WSF_PT(n) \
  case n: tile<n>(kc, a, sai, sap, b, ldb, c, ldc, ncols, add); break;
    WSF_PT(1) WSF_PT(2) WSF_PT(3) WSF_PT(4)
#if defined(__aarch64__)
    WSF_PT(5) WSF_PT(6) WSF_PT(7) WSF_PT(8)
#endif
#undef WSF_PT
    default: break;
  }
}

// Rows [i0, i1) × all N columns of C (+)= A·B over k in [p0, p1), serial. `add` for the first chunk: accumulate.
void block(int64_t i0, int64_t i1, int64_t N, int64_t p0, int64_t p1, const float* A, int64_t sai, int64_t sap,
           const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  const int64_t nfull = N / NRP * NRP, tail = N - nfull;
  thread_local std::vector<float> bt;  // the zero-padded column tail of one chunk (kept: blocks run thousands of times)
  if (tail > 0 && bt.size() < static_cast<size_t>(KCP * NRP)) bt.resize(static_cast<size_t>(KCP * NRP));
  // Row block by row block, each through every K chunk, so that the block's rows of C stay in cache across the
  // chunks (the same sums per entry in the same order as any other loop order).
  for (int64_t ic = i0; ic < i1; ic += MCP) {
    const int64_t ie = std::min(i1, ic + MCP);
    for (int64_t pc = p0; pc < p1; pc += KCP) {
      const int64_t kc = std::min(KCP, p1 - pc);
      const bool add = accumulate || pc > p0;
      if (tail > 0) {  // the column tail, zero-padded to a full tile width
        for (int64_t p = 0; p < kc; ++p)
          for (int64_t q = 0; q < NRP; ++q) bt[p * NRP + q] = q < tail ? B[(pc + p) * ldb + nfull + q] : 0.f;
      }
      for (int64_t j = 0; j < N; j += NRP) {  // full tiles, then the tail tile
        const bool full = j < nfull;
        const float* b = full ? B + pc * ldb + j : bt.data();
        const int64_t lb = full ? ldb : NRP;
        for (int64_t i = ic; i < ie; i += MRP) {
          const int R = static_cast<int>(std::min<int64_t>(MRP, ie - i));
          tile_r(R, kc, A + i * sai + pc * sap, sai, sap, b, lb, C + i * ldc + j, ldc, full ? NRP : tail, add);
        }
      }
    }
  }
}

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
              float* C, int64_t ldc, bool accumulate, bool threaded) {
  gemm_split<float>(M, N, K, C, ldc, accumulate, threaded, MRP,
                    [&](int64_t i0, int64_t i1, int64_t p0, int64_t p1, float* Cb, int64_t ld, bool acc) {
                      block(i0, i1, N, p0, p1, A, sai, sap, B, ldb, Cb, ld, acc);
                    });
}

}  // namespace vec

// Instruction set of the float kernels: fixed at first use from the CPU (and WSF_NO_AVX2 / WSF_NO_AVX512), capped
// at run time by set_gemm_isa (tests compare the paths in one process; benchmarks time them side by side).
int detected_isa();
std::atomic<int> g_isa_cap{static_cast<int>(GemmIsa::Avx512)};
int active_isa() { return std::min(detected_isa(), g_isa_cap.load(std::memory_order_relaxed)); }

#ifdef WSF_X86
namespace avx2 {

constexpr int MR = 6;          // micro-tile rows
constexpr int64_t KC = 256;    // K chunk (a 256×16 B panel is 16 KB: L1)
constexpr int64_t MC = 96;     // rows per cache block (an MC×KC block of A stays in L2 across the panels)
constexpr int kDotMax = 2;     // column tails up to this width use the dot/axpy kernels

// 64-byte aligned scratch, grown on demand, one per thread.
template <typename T>
struct Scratch {
  T* p = nullptr;
  size_t cap = 0;
  T* get(size_t n) {
    if (n > cap) {
      std::free(p);
      cap = std::max<size_t>(n, 2 * cap);
      p = static_cast<T*>(std::aligned_alloc(64, (cap * sizeof(T) + 63) / 64 * 64));
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};
thread_local Scratch<float> tl_pack;     // packed B of the calling thread (shared read-only with the workers it starts)
thread_local Scratch<float> tl_chunk;    // per-part packing of a K chunk (tall reductions)

// Panel layout for N columns: nfull panels of 16, then a last panel of width tw ∈ {0, 8, 16}.
struct Panels {
  int64_t nfull, w, tw;
  explicit Panels(int64_t N, bool dot_tail) : nfull(N / 16), w(N % 16), tw(0) {
    if (w > 0 && !dot_tail) tw = w <= 8 ? 8 : 16;
  }
  int64_t width() const { return nfull * 16 + tw; }   // packed floats per k step
};

// Packs rows [0, kc) of B(p, j) = B[p·sbp + j·sbj] into panels: panel q at out + q·kc·16 (row p at +16p), the
// last panel (width tw) at out + nfull·kc·16, zero-padded beyond N.
__attribute__((target("avx2,fma"))) void pack_b(const float* B, int64_t sbp, int64_t sbj, int64_t kc, int64_t N,
                                                const Panels& pn, float* out) {
  for (int64_t q = 0; q < pn.nfull; ++q) {
    float* o = out + q * kc * 16;
    const float* b = B + q * 16 * sbj;
    if (sbj == 1) {
      for (int64_t p = 0; p < kc; ++p, b += sbp, o += 16) {
        _mm256_store_ps(o, _mm256_loadu_ps(b));
        _mm256_store_ps(o + 8, _mm256_loadu_ps(b + 8));
      }
    } else {
      for (int64_t p = 0; p < kc; ++p, b += sbp, o += 16)
        for (int j = 0; j < 16; ++j) o[j] = b[j * sbj];
    }
  }
  if (pn.tw > 0) {
    float* o = out + pn.nfull * kc * 16;
    const float* b = B + pn.nfull * 16 * sbj;
    for (int64_t p = 0; p < kc; ++p, b += sbp, o += pn.tw) {
      int64_t j = 0;
      for (; j < pn.w; ++j) o[j] = b[j * sbj];
      for (; j < pn.tw; ++j) o[j] = 0.f;
    }
  }
}

// Epilogue store of one accumulator vector: C (+)= v, under `mask` when MASKED.
template <bool ADD, bool MASKED>
__attribute__((target("avx2,fma"))) inline void put(float* dst, __m256 v, __m256i mask) {
  if constexpr (MASKED) {
    if constexpr (ADD) v = _mm256_add_ps(v, _mm256_maskload_ps(dst, mask));
    _mm256_maskstore_ps(dst, mask, v);
  } else {
    if constexpr (ADD) v = _mm256_add_ps(v, _mm256_loadu_ps(dst));
    _mm256_storeu_ps(dst, v);
  }
}

// C[0,R)×[0,8·NV) (+)= Σ_{p<kc} A(r,p)·Bp[p][·], A(r,p) = a[r·sai + p·sap], Bp packed with 8·NV floats per p.
// ADD: add the product to C (else overwrite). MASKED: the last vector of each row is stored under `mask`.
template <int R, int NV, bool ADD, bool MASKED>
__attribute__((target("avx2,fma"))) void kern(int64_t kc, const float* a, int64_t sai, int64_t sap,
                                              const float* bp, float* c, int64_t ldc, __m256i mask) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  // The C tile is touched only in the epilogue: request its lines now (an output row of 51,200 rows is never in
  // cache, and the miss would otherwise stall the epilogue for a DRAM latency).
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 8 * NV - 1), _MM_HINT_T0);
  }
  const float* a3 = a + 3 * sai;
  const float* an = a + MR * sai;  // the next row tile's A, requested ahead as in kern512
  for (int64_t p = 0; p < kc; ++p, a += sap, a3 += sap, bp += 8 * NV) {
    if (sap == 1 && (p & 15) == 0) {
      for (int r = 0; r < MR; ++r) _mm_prefetch(reinterpret_cast<const char*>(an + r * sai + p), _MM_HINT_T0);
    }
    const __m256 b0 = _mm256_load_ps(bp);
    const __m256 b1 = NV > 1 ? _mm256_load_ps(bp + 8) : b0;
#define WSF_FMA(r, ptr, off, x0, x1)                    \
  if constexpr (R > r) {                                \
    const __m256 x = _mm256_broadcast_ss(ptr + off);    \
    x0 = _mm256_fmadd_ps(x, b0, x0);                    \
    if constexpr (NV > 1) x1 = _mm256_fmadd_ps(x, b1, x1); \
  }
    WSF_FMA(0, a, 0, c00, c01)
    WSF_FMA(1, a, sai, c10, c11)
    WSF_FMA(2, a, 2 * sai, c20, c21)
    WSF_FMA(3, a3, 0, c30, c31)
    WSF_FMA(4, a3, sai, c40, c41)
    WSF_FMA(5, a3, 2 * sai, c50, c51)
#undef WSF_FMA
  }
#define WSF_ST(r, x0, x1)                          \
  if constexpr (R > r) {                           \
    put<ADD, MASKED && NV == 1>(c + r * ldc, x0, mask);            \
    if constexpr (NV > 1) put<ADD, MASKED>(c + r * ldc + 8, x1, mask); \
  }
  WSF_ST(0, c00, c01) WSF_ST(1, c10, c11) WSF_ST(2, c20, c21) WSF_ST(3, c30, c31) WSF_ST(4, c40, c41) WSF_ST(5, c50, c51)
#undef WSF_ST
}

template <int NV, bool ADD, bool MASKED>
__attribute__((target("avx2,fma"))) inline void kern_r(int R, int64_t kc, const float* a, int64_t sai, int64_t sap,
                                                       const float* bp, float* c, int64_t ldc, __m256i mask) {
  switch (R) {
    case 6: kern<6, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    case 5: kern<5, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    case 4: kern<4, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    case 3: kern<3, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    case 2: kern<2, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    case 1: kern<1, NV, ADD, MASKED>(kc, a, sai, sap, bp, c, ldc, mask); break;
    default: break;
  }
}

// Any tile: R ≤ 6 rows, panel width 8·NV, `cols` valid columns (masked store when fewer).
__attribute__((target("avx2,fma"))) void tile(int R, int NV, int64_t cols, bool add, int64_t kc, const float* a,
                                              int64_t sai, int64_t sap, const float* bp, float* c, int64_t ldc) {
  const bool masked = cols < 8 * NV;
  const __m256i mask = masked ? lanes_below8(cols - 8 * (NV - 1)) : _mm256_setzero_si256();
  if (NV == 2) {
    if (add) {
      if (masked) kern_r<2, true, true>(R, kc, a, sai, sap, bp, c, ldc, mask);
      else kern_r<2, true, false>(R, kc, a, sai, sap, bp, c, ldc, mask);
    } else {
      if (masked) kern_r<2, false, true>(R, kc, a, sai, sap, bp, c, ldc, mask);
      else kern_r<2, false, false>(R, kc, a, sai, sap, bp, c, ldc, mask);
    }
  } else {
    if (add) {
      if (masked) kern_r<1, true, true>(R, kc, a, sai, sap, bp, c, ldc, mask);
      else kern_r<1, true, false>(R, kc, a, sai, sap, bp, c, ldc, mask);
    } else {
      if (masked) kern_r<1, false, true>(R, kc, a, sai, sap, bp, c, ldc, mask);
      else kern_r<1, false, false>(R, kc, a, sai, sap, bp, c, ldc, mask);
    }
  }
}

// Column tail by dot products (A rows contiguous, sap == 1): C[r][j] (+)= Σ_p a[r·sai + p]·bt[j·ldt + p] for
// r < R, j < W; bt holds the W tail columns of B transposed (K contiguous floats each).
template <int R, int W>
__attribute__((target("avx2,fma"))) void dot_tail(int64_t K, const float* a, int64_t sai, const float* bt,
                                                  int64_t ldt, float* c, int64_t ldc, bool add) {
  __m256 acc[R][W];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < W; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= K; p += 8) {
    __m256 bv[W];
    for (int j = 0; j < W; ++j) bv[j] = _mm256_loadu_ps(bt + j * ldt + p);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_loadu_ps(a + r * sai + p);
      for (int j = 0; j < W; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  if (p < K) {
    const __m256i m = lanes_below8(K - p);
    __m256 bv[W];
    for (int j = 0; j < W; ++j) bv[j] = _mm256_maskload_ps(bt + j * ldt + p, m);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_maskload_ps(a + r * sai + p, m);
      for (int j = 0; j < W; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < W; ++j) {
      const float s = hsum8(acc[r][j]);
      float& d = c[r * ldc + j];
      d = add ? d + s : s;
    }
}

template <int W>
__attribute__((target("avx2,fma"))) void dot_tail_r(int R, int64_t K, const float* a, int64_t sai, const float* bt,
                                                    int64_t ldt, float* c, int64_t ldc, bool add) {
  switch (R) {
    case 6: dot_tail<6, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    case 5: dot_tail<5, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    case 4: dot_tail<4, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    case 3: dot_tail<3, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    case 2: dot_tail<2, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    case 1: dot_tail<1, W>(K, a, sai, bt, ldt, c, ldc, add); break;
    default: break;
  }
}

// Column tail by axpy down the columns (A columns contiguous, sai == 1): rows [i0, i1), columns j < W of C:
// C[i][j] (+)= Σ_p a[i + p·sap]·b[p·ldb + j], 32 rows (4 vectors) × W columns at a time.
__attribute__((target("avx2,fma"))) void axpy_tail(int64_t i0, int64_t i1, int W, int64_t K, const float* A,
                                                   int64_t sap, const float* B, int64_t ldb, float* C, int64_t ldc,
                                                   bool add) {
  for (int64_t i = i0; i < i1; i += 32) {
    const int64_t rows = std::min<int64_t>(32, i1 - i);
    const int nv = static_cast<int>((rows + 7) / 8);
    const __m256i mlast = lanes_below8(rows - 8 * (nv - 1));
    const __m256i full = _mm256_set1_epi32(-1);
    for (int j0 = 0; j0 < W; j0 += 2) {
      const int wj = std::min(2, W - j0);
      __m256 acc[4][2];
      for (int v = 0; v < 4; ++v) acc[v][0] = acc[v][1] = _mm256_setzero_ps();
      const float* a = A + i;
      const float* b = B + j0;
      for (int64_t p = 0; p < K; ++p, a += sap, b += ldb) {
        const __m256 b0 = _mm256_broadcast_ss(b);
        const __m256 b1 = wj > 1 ? _mm256_broadcast_ss(b + 1) : b0;
        for (int v = 0; v < 4; ++v) {
          if (v >= nv) break;
          const __m256 av = v == nv - 1 ? _mm256_maskload_ps(a + 8 * v, mlast) : _mm256_loadu_ps(a + 8 * v);
          acc[v][0] = _mm256_fmadd_ps(av, b0, acc[v][0]);
          acc[v][1] = _mm256_fmadd_ps(av, b1, acc[v][1]);
        }
      }
      (void)full;
      for (int v = 0; v < nv; ++v) {
        alignas(32) float t0[8], t1[8];
        _mm256_store_ps(t0, acc[v][0]);
        _mm256_store_ps(t1, acc[v][1]);
        const int n = static_cast<int>(std::min<int64_t>(8, rows - 8 * v));
        for (int l = 0; l < n; ++l) {
          float* d = C + (i + 8 * v + l) * ldc + j0;
          d[0] = add ? d[0] + t0[l] : t0[l];
          if (wj > 1) d[1] = add ? d[1] + t1[l] : t1[l];
        }
      }
    }
  }
}

enum class Tail { None, Kernel, Dot, Axpy };

Tail choose_tail(int64_t N, int64_t sai, int64_t sap) {
  const int64_t w = N % 16;
  if (w == 0) return Tail::None;
  if (w <= kDotMax && sap == 1) return Tail::Dot;
  if (w <= kDotMax && sai == 1) return Tail::Axpy;
  return Tail::Kernel;
}

// Packed B for a whole product: panels over all K, then (dot tail) the tail columns transposed, K rounded to 8.
struct PackedB {
  Panels pn;
  Tail tail;
  int64_t K, ldt;
  const float* panels;
  const float* bt;
};

// The packed layout of a K × N B for an A with strides sai/sap (tail kind, panels, dot-tail rows), its buffer not yet
// bound; *floats: the buffer's size.
PackedB pack_layout(int64_t N, int64_t K, int64_t sai, int64_t sap, size_t* floats) {
  const Tail tail = choose_tail(N, sai, sap);
  PackedB pb{Panels(N, tail == Tail::Dot || tail == Tail::Axpy), tail, K, (K + 7) / 8 * 8, nullptr, nullptr};
  const int64_t nt = tail == Tail::Dot ? pb.pn.w * pb.ldt : 0;
  *floats = static_cast<size_t>(pb.pn.width() * K + nt + 16);
  return pb;
}
// Points pb at a buffer of its layout: the panels, then (dot tail) the tail columns' rows.
void bind_packed(PackedB& pb, const float* buf) {
  pb.panels = buf;
  if (pb.tail == Tail::Dot) pb.bt = buf + pb.pn.width() * pb.K;
}
// Packs B (leading dimension ldb) into buf in pb's layout and binds pb to it.
void pack_into(PackedB& pb, int64_t N, const float* B, int64_t ldb, float* buf) {
  pack_b(B, ldb, 1, pb.K, N, pb.pn, buf);
  if (pb.tail == Tail::Dot) {
    float* bt = buf + pb.pn.width() * pb.K;
    for (int64_t j = 0; j < pb.pn.w; ++j) {
      const float* src = B + pb.pn.nfull * 16 + j;
      for (int64_t p = 0; p < pb.K; ++p) bt[j * pb.ldt + p] = src[p * ldb];
      for (int64_t p = pb.K; p < pb.ldt; ++p) bt[j * pb.ldt + p] = 0.f;
    }
  }
  bind_packed(pb, buf);
}

PackedB pack_whole_b(int64_t N, int64_t K, const float* B, int64_t ldb, int64_t sai, int64_t sap) {
  size_t floats = 0;
  PackedB pb = pack_layout(N, K, sai, sap, &floats);
  pack_into(pb, N, B, ldb, tl_pack.get(floats));
  return pb;
}

// AVX-512F kernel for full 16-wide panels (one zmm per row and panel): C[0,R)×[0,16·NP) (+)= Σ_{p<kc} A(r,p)·panels,
// panel j at bp + j·pstride. 12×32 tile: 24 accumulators, 12 broadcasts + 2 loads per 24 FMAs. Each C entry is
// the same FMA chain over p as in the AVX2 kernel (one accumulator, p ascending, chunked by KC alike), so the two
// paths give bit-identical results.
constexpr int MR512 = 12;
template <int R, int NP, bool ADD>
__attribute__((target("avx512f"))) void kern512(int64_t kc, const float* a, int64_t sai, int64_t sap,
                                                const float* bp, int64_t pstride, float* c, int64_t ldc) {
  __m512 acc[R][NP];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_ps();
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * NP - 1), _MM_HINT_T0);
  }
  const float* a4 = a + 4 * sai;
  const float* a8 = a + 8 * sai;
  // When A's rows run along K (sap == 1), the next row tile's rows are requested a line at a time while this tile
  // runs: twelve rows of A streaming from memory at once are more than the hardware prefetcher follows (up to 1.8×
  // on short-K products). A hint only: results are unchanged, and lines past A's end are never loaded.
  const float* an = a + MR512 * sai;
  for (int64_t p = 0; p < kc; ++p, a += sap, a4 += sap, a8 += sap, bp += 16) {
    if (sap == 1 && (p & 15) == 0) {
#pragma GCC unroll 12
      for (int r = 0; r < MR512; ++r) _mm_prefetch(reinterpret_cast<const char*>(an + r * sai + p), _MM_HINT_T0);
    }
    const __m512 b0 = _mm512_load_ps(bp);
    const __m512 b1 = NP > 1 ? _mm512_load_ps(bp + pstride) : b0;
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const float* ar = r < 4 ? a + r * sai : (r < 8 ? a4 + (r - 4) * sai : a8 + (r - 8) * sai);
      const __m512 x = _mm512_set1_ps(*ar);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      if constexpr (NP > 1) acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) {
      float* d = c + r * ldc + 16 * j;
      __m512 v = acc[r][j];
      if constexpr (ADD) v = _mm512_add_ps(v, _mm512_loadu_ps(d));
      _mm512_storeu_ps(d, v);
    }
  }
}

// f(std::integral_constant<int, R>{}) for a row count R in [1, 12] (the 12-row micro-kernels' instantiations).
template <class F>
inline void with_rows12(int R, F&& f) {
  switch (R) {
#define WSF_R12(n) \
  case n: f(std::integral_constant<int, n>{}); break;
    WSF_R12(12) WSF_R12(11) WSF_R12(10) WSF_R12(9) WSF_R12(8) WSF_R12(7)
    WSF_R12(6) WSF_R12(5) WSF_R12(4) WSF_R12(3) WSF_R12(2) WSF_R12(1)
#undef WSF_R12
    default: break;
  }
}

template <int NP, bool ADD>
void kern512_r(int R, int64_t kc, const float* a, int64_t sai, int64_t sap, const float* bp, int64_t pstride, float* c,
               int64_t ldc) {
  with_rows12(R, [&](auto r) { kern512<decltype(r)::value, NP, ADD>(kc, a, sai, sap, bp, pstride, c, ldc); });
}

// Rows [i0, i1) × the full panels [0, nfull) of one K chunk with the AVX-512 kernel: pairs of panels, then an odd
// last one. Panel q of the chunk at bp + q·pstride; C columns of panel q at c + 16·q.
void panels512(int64_t i0, int64_t i1, int64_t nfull, bool add, int64_t kc, const float* a, int64_t sai, int64_t sap,
               const float* bp, int64_t pstride, float* c, int64_t ldc) {
  for (int64_t q = 0; q < nfull; q += 2) {
    const bool two = q + 1 < nfull;
    for (int64_t i = i0; i < i1; i += MR512) {
      const int R = static_cast<int>(std::min<int64_t>(MR512, i1 - i));
      const float* ai = a + i * sai;
      const float* bq = bp + q * pstride;
      float* cq = c + i * ldc + 16 * q;
      if (two) {
        if (add) kern512_r<2, true>(R, kc, ai, sai, sap, bq, pstride, cq, ldc);
        else kern512_r<2, false>(R, kc, ai, sai, sap, bq, pstride, cq, ldc);
      } else {
        if (add) kern512_r<1, true>(R, kc, ai, sai, sap, bq, pstride, cq, ldc);
        else kern512_r<1, false>(R, kc, ai, sai, sap, bq, pstride, cq, ldc);
      }
    }
  }
}

// Rows [ic, ie) of one k block against packed B: the full 16-wide panels (`pstride` floats apart, from `bp`) with
// the AVX-512 kernel when `wide`, else 6×16 AVX2 tiles; then the partial panel at `tp` (packed width pn.tw, `ncols`
// columns written). X is already offset to the block's first k; C holds the rows' outputs from column 0.
__attribute__((target("avx2,fma"))) void panel_rows(bool wide, int64_t ic, int64_t ie, const Panels& pn, int64_t ncols,
                                                    bool add, int64_t kc, const float* X, int64_t xi, int64_t xp,
                                                    const float* bp, int64_t pstride, const float* tp, float* C,
                                                    int64_t ldc) {
  if (wide) {
    panels512(ic, ie, pn.nfull, add, kc, X, xi, xp, bp, pstride, C, ldc);
  } else {
    for (int64_t q = 0; q < pn.nfull; ++q) {
      for (int64_t i = ic; i < ie; i += MR) {
        const int R = static_cast<int>(std::min<int64_t>(MR, ie - i));
        tile(R, 2, 16, add, kc, X + i * xi, xi, xp, bp + q * pstride, C + i * ldc + q * 16, ldc);
      }
    }
  }
  if (pn.tw > 0) {
    for (int64_t i = ic; i < ie; i += MR) {
      const int R = static_cast<int>(std::min<int64_t>(MR, ie - i));
      tile(R, static_cast<int>(pn.tw / 8), ncols, add, kc, X + i * xi, xi, xp, tp, C + i * ldc + pn.nfull * 16, ldc);
    }
  }
}

// Rows [i0, i1) of C = A·B (+C) with B packed by pack_whole_b.
__attribute__((target("avx2,fma"))) void rows_block(int64_t i0, int64_t i1, int64_t N, const float* A, int64_t sai,
                                                    int64_t sap, const float* B, int64_t ldb, const PackedB& pb,
                                                    float* C, int64_t ldc, bool accumulate) {
  const int64_t K = pb.K;
  const Panels& pn = pb.pn;
  const bool wide = active_isa() >= static_cast<int>(GemmIsa::Avx512);
  // Row block by row block, each through every K chunk and then its 1–2 tail columns, so the block's rows of A are
  // still in cache for the tail (a tail after all blocks streamed A from memory a second time). Every entry of C
  // gets the same sums in the same order as with any other block order.
  for (int64_t ic = i0; ic < i1; ic += MC) {
    const int64_t ie = std::min(i1, ic + MC);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool add = accumulate || pc > 0;
      panel_rows(wide, ic, ie, pn, pn.w, add, kc, A + pc * sap, sai, sap, pb.panels + pc * 16, K * 16,
                 pb.panels + pn.nfull * K * 16 + pc * pn.tw, C, ldc);
    }
    if (pb.tail == Tail::Dot) {
      float* c = C + pn.nfull * 16;
      for (int64_t i = ic; i < ie; i += MR) {
        const int R = static_cast<int>(std::min<int64_t>(MR, ie - i));
        if (pn.w == 1) dot_tail_r<1>(R, K, A + i * sai, sai, pb.bt, pb.ldt, c + i * ldc, ldc, accumulate);
        else dot_tail_r<2>(R, K, A + i * sai, sai, pb.bt, pb.ldt, c + i * ldc, ldc, accumulate);
      }
    } else if (pb.tail == Tail::Axpy) {
      axpy_tail(ic, ie, static_cast<int>(pn.w), K, A, sap, B + pn.nfull * 16, ldb, C + pn.nfull * 16, ldc, accumulate);
    }
  }
}

// Work (in micro-kernel FMAs per k step) of an M×N product with this tiling; used to pick the orientation.
int64_t tiled_cost(int64_t M, int64_t N) {
  const int64_t w = N % 16;
  const int64_t per_tile = 2 * (N / 16) + (w == 0 ? 0 : (w <= kDotMax ? 0 : (w <= 8 ? 1 : 2)));
  const int64_t tail = (w > 0 && w <= kDotMax) ? (M + 7) / 8 * w : 0;  // axpy tail (sai == 1 in tall products)
  return (M + MR - 1) / MR * MR * per_tile + tail;
}

// One part [p0, p1) of a tall reduction into a private partial P (M × N, leading dimension ldp), overwritten.
// With `trans`, computes Pᵀ (N × M) = Bᵀ·Aᵀ instead.
__attribute__((target("avx2,fma"))) void tall_part(int64_t M, int64_t N, int64_t p0, int64_t p1, const float* A,
                                                   int64_t sai, int64_t sap, const float* B, int64_t ldb, float* P,
                                                   int64_t ldp, bool trans) {
  // Operands of the product actually computed: X (Mx × K, strides xi, xp) times Y (K × Nx, strides yp, yj).
  const int64_t Mx = trans ? N : M, Nx = trans ? M : N;
  const float* X = trans ? B : A;
  const int64_t xi = trans ? 1 : sai, xp = trans ? ldb : sap;
  const float* Y = trans ? A : B;
  const int64_t yp = trans ? sap : ldb, yj = trans ? sai : 1;
  const Tail tail = choose_tail(Nx, xi, xp) == Tail::Axpy && yj == 1 ? Tail::Axpy : Tail::Kernel;
  const Panels pn(Nx, tail == Tail::Axpy);
  const int64_t pw = pn.width();
  const bool wide = active_isa() >= static_cast<int>(GemmIsa::Avx512);
  float* bp = tl_chunk.get(static_cast<size_t>(pw * KC + 16));
  for (int64_t pc = p0; pc < p1; pc += KC) {
    const int64_t kc = std::min(KC, p1 - pc);
    const bool add = pc > p0;
    pack_b(Y + pc * yp, yp, yj, kc, Nx, pn, bp);
    for (int64_t ic = 0; ic < Mx; ic += MC) {
      const int64_t ie = std::min(Mx, ic + MC);
      panel_rows(wide, ic, ie, pn, pn.tw, add, kc, X + pc * xp, xi, xp, bp, kc * 16, bp + pn.nfull * kc * 16, P, ldp);
    }
    if (tail == Tail::Axpy)
      axpy_tail(0, Mx, static_cast<int>(pn.w), kc, X + pc * xp, xp, Y + pc * yp + pn.nfull * 16, yp,
                P + pn.nfull * 16, ldp, add);
  }
}

// pack_whole_b into an owned buffer (gemm_pack).
void pack_owned(GemmPacked* out, int64_t N, int64_t K, const float* B, int64_t ldb, int64_t sai, int64_t sap) {
  size_t floats = 0;
  PackedB pb = pack_layout(N, K, sai, sap, &floats);
  out->buf.reset(static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
  pack_into(pb, N, B, ldb, out->buf.get());
  out->packed = true;
}

// gemm_f32 (not threaded) with B packed by pack_owned (the layout recomputed from the operands' shapes).
void gemm_f32_packed(int64_t M, const float* A, const GemmPacked& g, float* C, int64_t ldc, bool accumulate) {
  size_t floats = 0;
  PackedB pb = pack_layout(g.N, g.K, g.sai, g.sap, &floats);
  bind_packed(pb, g.buf.get());
  rows_block(0, M, g.N, A, g.sai, g.sap, static_cast<const float*>(g.B), g.ldb, pb, C, ldc, accumulate);
}

void gemm_f32(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B,
              int64_t ldb, float* C, int64_t ldc, bool accumulate, bool threaded) {
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  if (threaded && is_tall(M, K)) {
    // Fixed parts, private partials (layout chosen for the cheaper tiling), summed in order.
    const bool trans = tiled_cost(N, M) < tiled_cost(M, N);
    const int64_t rows = trans ? N : M, cols = trans ? M : N;
    const int64_t ldp = (cols + 15) / 16 * 16;
    const int64_t psz = rows * ldp;
    std::vector<float> partial(static_cast<size_t>(kTallParts * psz));
    parallel_for(kTallParts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t p0 = K * t / kTallParts, p1 = K * (t + 1) / kTallParts;
        tall_part(M, N, p0, p1, A, sai, sap, B, ldb, partial.data() + t * psz, ldp, trans);
      }
    });
    for (int64_t i = 0; i < M; ++i) {
      float* c = C + i * ldc;
      for (int64_t t = 0; t < kTallParts; ++t) {
        const float* src = partial.data() + t * psz;
        const bool first = t == 0 && !accumulate;
        if (trans) {
          for (int64_t j = 0; j < N; ++j) c[j] = first ? src[j * ldp + i] : c[j] + src[j * ldp + i];
        } else {
          const float* s = src + i * ldp;
          for (int64_t j = 0; j < N; ++j) c[j] = first ? s[j] : c[j] + s[j];
        }
      }
    }
    return;
  }
  const PackedB pb = pack_whole_b(N, K, B, ldb, sai, sap);
  if (!threaded) {
    rows_block(0, M, N, A, sai, sap, B, ldb, pb, C, ldc, accumulate);
    return;
  }
  const int64_t tiles = (M + MR - 1) / MR;
  const int64_t grain = 1 + 30000 / std::max<int64_t>(1, N * K * MR);
  parallel_for(tiles, grain, [&](int64_t b, int64_t e) {
    rows_block(b * MR, std::min(M, e * MR), N, A, sai, sap, B, ldb, pb, C, ldc, accumulate);
  });
}

}  // namespace avx2

// bf16 products (opt-in, CPUs with AVX-512 BF16), summed in float by `vdpbf16ps` (each instruction adds two products
// per lane). Two entry points: packed products (gemm_pack with GemmPrecision::Bf16, A's rows along K: the engine's
// forward and data-gradient products against its weights) — B packed once into bf16 pairs along K, A rounded to bf16
// row block by row block; and weight gradients (gemm_serial with a precision, A's columns contiguous: dyᵀ over a
// block of rows) — both operands packed per call. The operands are rounded to nearest-even bf16 (8 significant
// bits), the sums are float, so a product's error is about 2⁻⁸·Σ|A(i,p)·B(p,j)| instead of float's 2⁻²⁴·√K·….
namespace bf16 {

constexpr int MRB = 12;        // micro-tile rows (12 × 2 panels: 24 accumulators)
constexpr int64_t MCB = 96;    // rows of A rounded per block (its bf16 copy stays in L1/L2 across the panels)

// Packed layout of a K × N B: panels(N) panels, each KP = ceil(K/2) lines of 64 bytes (16 columns × a pair of
// k steps, the pair's first k in the low half), zero beyond N and K; panel q at q·KP·32 uint16s. A tail of 1–2
// columns beyond the last full panel (the state width H = D + 1 is odd) is not padded to a panel of 16 — that
// would triple its cost — but summed in float by the AVX2 dot-product kernel, its columns stored transposed
// (float, K rounded up to 8) after the panels.
int64_t pairs(int64_t K) { return (K + 1) / 2; }
int64_t dot_cols(int64_t N) { return N % 16 <= avx2::kDotMax ? N % 16 : 0; }
int64_t panels(int64_t N) { return (N - dot_cols(N) + 15) / 16; }
int64_t dot_ld(int64_t K) { return (K + 7) / 8 * 8; }
size_t tail_offset_u16(int64_t N, int64_t K) { return static_cast<size_t>(panels(N) * pairs(K) * 32); }
size_t packed_u16(int64_t N, int64_t K) {
  return tail_offset_u16(N, K) + static_cast<size_t>(2 * dot_cols(N) * dot_ld(K));
}

// Columns [0, ncols) of a K × ncols float matrix (rows ld apart) as bf16 pairs along K, 16 columns per 64-byte line:
// the line of columns [16q, 16q + 16) and pair kp at out + q·qs + kp·ks (uint16 units), column j's pair (rows 2kp,
// 2kp + 1; the first in the low half) at lane j − 16q; zero beyond ncols and K.
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void pack_pairs(const float* X, int64_t ld, int64_t ncols,
                                                                      int64_t K, uint16_t* out, int64_t qs, int64_t ks) {
  // cvtne2ps_pbh(hi, lo) gives [lo 0..15 | hi 0..15]; interleave to (lo j, hi j) pairs per column j.
  alignas(64) uint16_t idx[32];
  for (int j = 0; j < 16; ++j) {
    idx[2 * j] = static_cast<uint16_t>(j);
    idx[2 * j + 1] = static_cast<uint16_t>(16 + j);
  }
  const __m512i perm = _mm512_load_si512(idx);
  for (int64_t q = 0; q < (ncols + 15) / 16; ++q) {
    const int64_t w = std::min<int64_t>(16, ncols - 16 * q);
    const __mmask16 m = static_cast<__mmask16>(w >= 16 ? 0xFFFF : (1u << w) - 1);
    for (int64_t kp = 0; kp < pairs(K); ++kp) {
      const float* r0 = X + (2 * kp) * ld + 16 * q;
      const __m512 lo = _mm512_maskz_loadu_ps(m, r0);
      const __m512 hi = 2 * kp + 1 < K ? _mm512_maskz_loadu_ps(m, r0 + ld) : _mm512_setzero_ps();
      const __m512i v = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
      _mm512_store_si512(out + q * qs + kp * ks, _mm512_permutexvar_epi16(perm, v));
    }
  }
}

// B (K × N, rows ldb apart) in the packed layout above: panel-major lines, then the float tail columns.
void pack_b(const float* B, int64_t ldb, int64_t N, int64_t K, uint16_t* out) {
  const int64_t Np = N - dot_cols(N);  // columns in panels
  pack_pairs(B, ldb, Np, K, out, pairs(K) * 32, 32);
  float* bt = reinterpret_cast<float*>(out + tail_offset_u16(N, K));  // 64-byte aligned: panels are 64-byte lines
  for (int64_t j = 0; j < dot_cols(N); ++j)
    for (int64_t p = 0; p < dot_ld(K); ++p) bt[j * dot_ld(K) + p] = p < K ? B[p * ldb + Np + j] : 0.f;
}

// Rows [0, R) of A (rows sai apart, K contiguous floats each) rounded to bf16 into out (row r at r·lda uint32s,
// lda ≥ KP rounded up to 16; pairs beyond K zero).
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void round_rows(int64_t R, int64_t K, const float* A, int64_t sai,
                                                                      uint32_t* out, int64_t lda) {
  for (int64_t r = 0; r < R; ++r) {
    const float* a = A + r * sai;
    uint16_t* o = reinterpret_cast<uint16_t*>(out + r * lda);
    for (int64_t p = 0; p < K; p += 32) {
      const int64_t n0 = std::min<int64_t>(16, K - p), n1 = std::min<int64_t>(16, std::max<int64_t>(0, K - p - 16));
      const __mmask16 m0 = static_cast<__mmask16>(n0 >= 16 ? 0xFFFF : (1u << n0) - 1);
      const __mmask16 m1 = static_cast<__mmask16>(n1 >= 16 ? 0xFFFF : (1u << n1) - 1);
      const __m512 lo = _mm512_maskz_loadu_ps(m0, a + p);
      const __m512 hi = _mm512_maskz_loadu_ps(m1, a + p + 16);
      _mm512_storeu_si512(o + p, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
    }
  }
}

// C[0,R)×[0,16·NP) (+)= Σ_kp A pairs · B pairs; panel j at bp + j·pstride; the last panel's store under `mlast`.
// A's pair kp of row r at a[r·ra + kp·ka] (rounded rows: ra = the row stride, ka = 1; pairs packed k-major: ra = 1).
template <int R, int NP, bool ADD>
__attribute__((target("avx512f,avx512bf16"))) void kern(int64_t KP, const uint32_t* a, int64_t ra, int64_t ka,
                                                        const uint16_t* bp, int64_t pstride, float* c, int64_t ldc,
                                                        __mmask16 mlast) {
  __m512 acc[R][NP];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  for (int64_t kp = 0; kp < KP; ++kp) {
    const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_load_si512(bp + kp * 32));
    const __m512bh b1 = NP > 1 ? reinterpret_cast<__m512bh>(_mm512_load_si512(bp + pstride + kp * 32)) : b0;
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[r * ra + kp * ka])));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
      if constexpr (NP > 1) acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) {
      float* d = c + r * ldc + 16 * j;
      const __mmask16 m = j == NP - 1 ? mlast : static_cast<__mmask16>(0xFFFF);
      __m512 v = acc[r][j];
      if constexpr (ADD) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, d));
      _mm512_mask_storeu_ps(d, m, v);
    }
  }
}

template <int NP, bool ADD>
void kern_r(int R, int64_t KP, const uint32_t* a, int64_t ra, int64_t ka, const uint16_t* bp, int64_t pstride, float* c,
            int64_t ldc, __mmask16 mlast) {
  avx2::with_rows12(R, [&](auto r) { kern<decltype(r)::value, NP, ADD>(KP, a, ra, ka, bp, pstride, c, ldc, mlast); });
}

// Rows [0, rows) × the panels of C (+)= A pairs · packed B: pairs of panels, then an odd last one (columns beyond Np
// masked). A's pair kp of row r at a[r·ra + kp·ka].
void panels_bf16(int64_t rows, int64_t KP, const uint32_t* a, int64_t ra, int64_t ka, const uint16_t* bp, int64_t np,
                 int64_t Np, float* C, int64_t ldc, bool accumulate) {
  const int64_t pstride = KP * 32;
  for (int64_t q = 0; q < np; q += 2) {
    const bool two = q + 1 < np;
    const int64_t last = std::min<int64_t>(16, Np - 16 * (two ? q + 1 : q));
    const __mmask16 mlast = static_cast<__mmask16>(last >= 16 ? 0xFFFF : (1u << last) - 1);
    for (int64_t i = 0; i < rows; i += MRB) {
      const int R = static_cast<int>(std::min<int64_t>(MRB, rows - i));
      const uint32_t* ai = a + i * ra;
      const uint16_t* b = bp + q * pstride;
      float* c = C + i * ldc + 16 * q;
      if (two) {
        if (accumulate) kern_r<2, true>(R, KP, ai, ra, ka, b, pstride, c, ldc, mlast);
        else kern_r<2, false>(R, KP, ai, ra, ka, b, pstride, c, ldc, mlast);
      } else {
        if (accumulate) kern_r<1, true>(R, KP, ai, ra, ka, b, pstride, c, ldc, mlast);
        else kern_r<1, false>(R, KP, ai, ra, ka, b, pstride, c, ldc, mlast);
      }
    }
  }
}

thread_local avx2::Scratch<uint32_t> tl_rows;  // A's rows rounded to bf16, per thread

// C (+)= A·B for M rows of A (rows sai apart, K contiguous floats each) against B packed by pack_b. Serial.
void gemm_packed(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, const uint16_t* bp, float* C,
                 int64_t ldc, bool accumulate) {
  const int64_t KP = pairs(K), np = panels(N), nd = dot_cols(N), Np = N - nd;
  const int64_t lda = (KP + 15) / 16 * 16;
  const float* bt = reinterpret_cast<const float*>(bp + tail_offset_u16(N, K));
  uint32_t* ar = tl_rows.get(static_cast<size_t>(MCB * lda));
  for (int64_t ic = 0; ic < M; ic += MCB) {
    const int64_t rows = std::min(MCB, M - ic);
    if (nd > 0) {  // the float column tail, from A in place while the block's rows are in cache
      for (int64_t i = ic; i < ic + rows; i += avx2::MR) {
        const int R = static_cast<int>(std::min<int64_t>(avx2::MR, ic + rows - i));
        float* c = C + i * ldc + Np;
        if (nd == 1) avx2::dot_tail_r<1>(R, K, A + i * sai, sai, bt, dot_ld(K), c, ldc, accumulate);
        else avx2::dot_tail_r<2>(R, K, A + i * sai, sai, bt, dot_ld(K), c, ldc, accumulate);
      }
    }
    if (np == 0) continue;
    round_rows(rows, K, A + ic * sai, sai, ar, lda);
    panels_bf16(rows, KP, ar, lda, 1, bp, np, Np, C + ic * ldc, ldc, accumulate);
  }
}

thread_local avx2::Scratch<uint16_t> tl_bpairs;  // B packed per call (weight gradients), per thread

// Weight gradients: C (+)= Σ_p A(i,p)·B[p][j] with A(i,p) = A[i + p·sap] — A's columns run along the product's rows
// (sai == 1: dyᵀ·x over a block of rows) — both operands packed here as bf16 pairs along K (A k-major: pair kp of row
// i at kp·lda + i). A 1–2-column tail in float by the AVX2 axpy kernel. Serial.
void gemm_wgrad(int64_t M, int64_t N, int64_t K, const float* A, int64_t sap, const float* B, int64_t ldb, float* C,
                int64_t ldc, bool accumulate) {
  const int64_t KP = pairs(K), np = panels(N), nd = dot_cols(N), Np = N - nd;
  const int64_t lda = (M + 15) / 16 * 16;
  uint16_t* bp = tl_bpairs.get(packed_u16(N, K));
  pack_pairs(B, ldb, Np, K, bp, KP * 32, 32);
  uint32_t* ap = tl_rows.get(static_cast<size_t>(KP * lda));
  pack_pairs(A, sap, M, K, reinterpret_cast<uint16_t*>(ap), 32, 2 * lda);
  panels_bf16(M, KP, ap, 1, lda, bp, np, Np, C, ldc, accumulate);
  if (nd > 0) avx2::axpy_tail(0, M, static_cast<int>(nd), K, A, sap, B + Np, ldb, C + Np, ldc, accumulate);
}

}  // namespace bf16

#endif

int detected_isa() {
#ifdef WSF_X86
  static const int v = [] {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) || std::getenv("WSF_NO_AVX2") != nullptr)
      return static_cast<int>(GemmIsa::Portable);
    if (!__builtin_cpu_supports("avx512f") || std::getenv("WSF_NO_AVX512") != nullptr) return static_cast<int>(GemmIsa::Avx2);
    return static_cast<int>(GemmIsa::Avx512);
  }();
  return v;
#else
  return static_cast<int>(GemmIsa::Portable);
#endif
}

bool use_avx2() { return active_isa() >= static_cast<int>(GemmIsa::Avx2); }

// bf16 products: AVX-512 BF16 and BW on the CPU (WSF_NO_BF16 turns them off), and the AVX-512 level in use.
bool bf16_detected() {
#ifdef WSF_X86
  static const bool v = [] {
    __builtin_cpu_init();
    return detected_isa() >= static_cast<int>(GemmIsa::Avx512) && __builtin_cpu_supports("avx512bf16") &&
           __builtin_cpu_supports("avx512bw") && std::getenv("WSF_NO_BF16") == nullptr;
  }();
  return v;
#else
  return false;
#endif
}
bool use_bf16() { return bf16_detected() && active_isa() >= static_cast<int>(GemmIsa::Avx512); }

template <typename T>
void gemm_dispatch(int64_t M, int64_t N, int64_t K, const T* A, int64_t sai, int64_t sap, const T* B, int64_t ldb,
                   T* C, int64_t ldc, bool accumulate, bool threaded) {
  if (M <= 0 || N <= 0) return;
#ifdef WSF_X86
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx2()) {
      avx2::gemm_f32(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, threaded);
      return;
    }
  }
#endif
  if constexpr (std::is_same_v<T, float>) vec::gemm_f32(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, threaded);
  else gemm_portable<T>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, threaded);
}

#ifdef WSF_X86
// 12 independent accumulators (FMA latency × throughput on current x86 cores is ≤ 10 in flight).
__attribute__((target("avx2,fma"), noinline)) double fma_chains(int64_t iters) {
  // Distinct start values: chains with identical start values and updates are one value to the compiler, which then
  // computes a single chain and the rate comes out several times too high.
  __m256 a0 = _mm256_set1_ps(0.10f), a1 = _mm256_set1_ps(0.11f), a2 = _mm256_set1_ps(0.12f), a3 = _mm256_set1_ps(0.13f),
         a4 = _mm256_set1_ps(0.14f), a5 = _mm256_set1_ps(0.15f), a6 = _mm256_set1_ps(0.16f), a7 = _mm256_set1_ps(0.17f),
         a8 = _mm256_set1_ps(0.18f), a9 = _mm256_set1_ps(0.19f), a10 = _mm256_set1_ps(0.20f), a11 = _mm256_set1_ps(0.21f);
  const __m256 x = _mm256_set1_ps(0.9999f), y = _mm256_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = _mm256_fmadd_ps(a0, x, y); a1 = _mm256_fmadd_ps(a1, x, y); a2 = _mm256_fmadd_ps(a2, x, y);
    a3 = _mm256_fmadd_ps(a3, x, y); a4 = _mm256_fmadd_ps(a4, x, y); a5 = _mm256_fmadd_ps(a5, x, y);
    a6 = _mm256_fmadd_ps(a6, x, y); a7 = _mm256_fmadd_ps(a7, x, y); a8 = _mm256_fmadd_ps(a8, x, y);
    a9 = _mm256_fmadd_ps(a9, x, y); a10 = _mm256_fmadd_ps(a10, x, y); a11 = _mm256_fmadd_ps(a11, x, y);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  alignas(32) float o[8];
  _mm256_store_ps(o, s);
  return static_cast<double>(o[0]);  // keeps the chains live
}

// The same 12 chains on 16-wide vectors, for machines where the AVX-512 kernel is in use.
__attribute__((target("avx512f"), noinline)) double fma_chains512(int64_t iters) {
  __m512 a0 = _mm512_set1_ps(0.10f), a1 = _mm512_set1_ps(0.11f), a2 = _mm512_set1_ps(0.12f), a3 = _mm512_set1_ps(0.13f),
         a4 = _mm512_set1_ps(0.14f), a5 = _mm512_set1_ps(0.15f), a6 = _mm512_set1_ps(0.16f), a7 = _mm512_set1_ps(0.17f),
         a8 = _mm512_set1_ps(0.18f), a9 = _mm512_set1_ps(0.19f), a10 = _mm512_set1_ps(0.20f), a11 = _mm512_set1_ps(0.21f);
  const __m512 x = _mm512_set1_ps(0.9999f), y = _mm512_set1_ps(1e-4f);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = _mm512_fmadd_ps(a0, x, y); a1 = _mm512_fmadd_ps(a1, x, y); a2 = _mm512_fmadd_ps(a2, x, y);
    a3 = _mm512_fmadd_ps(a3, x, y); a4 = _mm512_fmadd_ps(a4, x, y); a5 = _mm512_fmadd_ps(a5, x, y);
    a6 = _mm512_fmadd_ps(a6, x, y); a7 = _mm512_fmadd_ps(a7, x, y); a8 = _mm512_fmadd_ps(a8, x, y);
    a9 = _mm512_fmadd_ps(a9, x, y); a10 = _mm512_fmadd_ps(a10, x, y); a11 = _mm512_fmadd_ps(a11, x, y);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  // Summed through memory (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized inside its own header).
  alignas(64) float o[16];
  _mm512_store_ps(o, s);
  float sum = 0.f;
  for (float v : o) sum += v;
  return static_cast<double>(sum);  // keeps the chains live
}
#endif

}  // namespace

double fma_peak_gflops(double seconds) {
#ifdef WSF_X86
  if (!use_avx2()) return 0.0;
  const int T = num_threads();
  // The ceiling of the widest kernel in use: 16 lanes under AVX-512, 8 under AVX2.
  const bool wide = active_isa() >= static_cast<int>(GemmIsa::Avx512);
  const auto chains = [wide](int64_t n) { return wide ? fma_chains512(n) : fma_chains(n); };
  const double lanes = wide ? 16.0 : 8.0;
  // Calibrate the iteration count on one thread, then run every thread at once.
  int64_t iters = 1 << 20;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile double sink = chains(iters);
    (void)sink;
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt >= 0.02 || iters >= (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1, static_cast<int64_t>(iters * std::max(0.01, seconds) / std::max(dt, 1e-9)));
      break;
    }
    iters *= 4;
  }
  std::vector<double> sinks(static_cast<size_t>(T));
  const auto t0 = std::chrono::steady_clock::now();
  parallel_for(T, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) sinks[static_cast<size_t>(t)] = chains(iters);
  });
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(T) * static_cast<double>(iters) * 12.0 * 2.0 * lanes / dt / 1e9;
#else
  (void)seconds;
  return 0.0;
#endif
}

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate) {
  gemm_dispatch<float>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, true);
}
void gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B, int64_t ldb,
          double* C, int64_t ldc, bool accumulate) {
  gemm_dispatch<double>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, true);
}
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate) {
  gemm_dispatch<float>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, false);
}
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate) {
  gemm_dispatch<double>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate, false);
}
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate, GemmPrecision precision) {
#ifdef WSF_X86
  if (precision == GemmPrecision::Bf16 && sai == 1 && K >= 2 && M > 0 && bf16::panels(N) >= 2 && use_bf16()) {
    bf16::gemm_wgrad(M, N, K, A, sap, B, ldb, C, ldc, accumulate);
    return;
  }
#endif
  gemm_serial(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate, GemmPrecision) {
  gemm_serial(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}
void GemmPacked::Free::operator()(float* p) const { std::free(p); }

namespace {
template <typename T>
void pack_common(GemmPacked* pb, int64_t N, int64_t K, const T* B, int64_t ldb, int64_t sai, int64_t sap) {
  pb->N = N;
  pb->K = K;
  pb->B = B;
  pb->ldb = ldb;
  pb->sai = sai;
  pb->sap = sap;
  pb->packed = false;
  pb->bf16 = false;
  pb->buf.reset();
}
}  // namespace

void gemm_pack(GemmPacked* pb, int64_t N, int64_t K, const float* B, int64_t ldb, int64_t sai, int64_t sap,
               GemmPrecision precision) {
  pack_common(pb, N, K, B, ldb, sai, sap);
#ifdef WSF_X86
  // Products of a single 16-column panel (fields of D ≤ 16) and K = 1 stay float: there rounding A's rows costs what
  // the bf16 instructions save (measured 0.85–0.95× the float kernel's rate at 96 × 16 × 16–17).
  if (precision == GemmPrecision::Bf16 && sap == 1 && use_bf16() && K >= 2 && bf16::panels(N) >= 2) {
    const size_t bytes = bf16::packed_u16(N, K) * sizeof(uint16_t);
    pb->buf.reset(static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    bf16::pack_b(B, ldb, N, K, reinterpret_cast<uint16_t*>(pb->buf.get()));
    pb->packed = pb->bf16 = true;
    return;
  }
  // As gemm_f32 packs for a serial product: only with the AVX2 kernels and a product to do (K > 0, N > 0).
  if (use_avx2() && K > 0 && N > 0) avx2::pack_owned(pb, N, K, B, ldb, sai, sap);
#endif
}
void gemm_pack(GemmPacked* pb, int64_t N, int64_t K, const double* B, int64_t ldb, int64_t sai, int64_t sap,
               GemmPrecision) {
  pack_common(pb, N, K, B, ldb, sai, sap);
}
void gemm_serial_packed(int64_t M, const float* A, const GemmPacked& pb, float* C, int64_t ldc, bool accumulate) {
#ifdef WSF_X86
  if (pb.bf16) {  // packed for bf16 only where use_bf16() held; a later cap below AVX-512 still runs them
    if (M > 0) bf16::gemm_packed(M, pb.N, pb.K, A, pb.sai, reinterpret_cast<const uint16_t*>(pb.buf.get()), C, ldc,
                                 accumulate);
    return;
  }
  if (pb.packed && use_avx2()) {
    if (M > 0) avx2::gemm_f32_packed(M, A, pb, C, ldc, accumulate);
    return;
  }
#endif
  gemm_serial(M, pb.N, pb.K, A, pb.sai, pb.sap, static_cast<const float*>(pb.B), pb.ldb, C, ldc, accumulate);
}
void gemm_serial_packed(int64_t M, const double* A, const GemmPacked& pb, double* C, int64_t ldc, bool accumulate) {
  gemm_serial(M, pb.N, pb.K, A, pb.sai, pb.sap, static_cast<const double*>(pb.B), pb.ldb, C, ldc, accumulate);
}

bool gemm_uses_avx2() { return use_avx2(); }
bool gemm_bf16_available() { return use_bf16(); }
GemmIsa gemm_isa() { return static_cast<GemmIsa>(active_isa()); }
GemmIsa gemm_isa_detected() { return static_cast<GemmIsa>(detected_isa()); }
GemmIsa set_gemm_isa(GemmIsa cap) {
  g_isa_cap.store(static_cast<int>(cap), std::memory_order_relaxed);
  return gemm_isa();
}
const char* gemm_isa_name(GemmIsa isa) {
  switch (isa) {
    case GemmIsa::Avx512: return "avx512";
    case GemmIsa::Avx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace wsf
