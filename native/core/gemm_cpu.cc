// CPU matrix products (see gemm_cpu.h). Parallelisation: the M dimension is split into blocks of whole
// micro-tiles across the thread pool; when M is small and K large (weight gradients, K = rows of the batch), the
// K dimension is split instead, each thread accumulating a private C that is then summed in a fixed order
// (deterministic for a fixed thread count).
#include "core/gemm_cpu.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WSF_X86 1
#endif

namespace wsf {
namespace {

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

#ifdef WSF_X86
constexpr int MR = 6;
constexpr int NR = 16;

// R×16 AVX2 micro-kernel (R ≤ 6 rows): C[i0..i0+R)[j0..j0+16) += Σ_{p∈[p0,p1)} A(i,p) B[p][j]. The 2R
// accumulators are named variables (not an array) so they stay in registers.
template <int R>
__attribute__((target("avx2,fma"))) inline void kernel_r16(int64_t p0, int64_t p1, const float* A, int64_t sai,
                                                            int64_t sap, const float* B, int64_t ldb, float* C,
                                                            int64_t ldc) {
  const __m256 z = _mm256_setzero_ps();
  __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
#define WSF_LD(r, a0, a1)                          \
  if constexpr (R > r) {                           \
    a0 = _mm256_loadu_ps(C + r * ldc);             \
    a1 = _mm256_loadu_ps(C + r * ldc + 8);         \
  }
  WSF_LD(0, c00, c01) WSF_LD(1, c10, c11) WSF_LD(2, c20, c21) WSF_LD(3, c30, c31) WSF_LD(4, c40, c41) WSF_LD(5, c50, c51)
#undef WSF_LD
  const float* a = A + p0 * sap;
  const float* b = B + p0 * ldb;
  for (int64_t p = p0; p < p1; ++p, a += sap, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define WSF_FMA(r, a0, a1)                                 \
  if constexpr (R > r) {                                   \
    const __m256 x = _mm256_broadcast_ss(a + r * sai);     \
    a0 = _mm256_fmadd_ps(x, b0, a0);                       \
    a1 = _mm256_fmadd_ps(x, b1, a1);                       \
  }
    WSF_FMA(0, c00, c01) WSF_FMA(1, c10, c11) WSF_FMA(2, c20, c21) WSF_FMA(3, c30, c31) WSF_FMA(4, c40, c41) WSF_FMA(5, c50, c51)
#undef WSF_FMA
  }
#define WSF_ST(r, a0, a1)                          \
  if constexpr (R > r) {                           \
    _mm256_storeu_ps(C + r * ldc, a0);             \
    _mm256_storeu_ps(C + r * ldc + 8, a1);         \
  }
  WSF_ST(0, c00, c01) WSF_ST(1, c10, c11) WSF_ST(2, c20, c21) WSF_ST(3, c30, c31) WSF_ST(4, c40, c41) WSF_ST(5, c50, c51)
#undef WSF_ST
}

// R×8 variant for an 8-wide column remainder.
template <int R>
__attribute__((target("avx2,fma"))) inline void kernel_r8(int64_t p0, int64_t p1, const float* A, int64_t sai,
                                                           int64_t sap, const float* B, int64_t ldb, float* C,
                                                           int64_t ldc) {
  const __m256 z = _mm256_setzero_ps();
  __m256 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z;
  if constexpr (R > 0) c0 = _mm256_loadu_ps(C + 0 * ldc);
  if constexpr (R > 1) c1 = _mm256_loadu_ps(C + 1 * ldc);
  if constexpr (R > 2) c2 = _mm256_loadu_ps(C + 2 * ldc);
  if constexpr (R > 3) c3 = _mm256_loadu_ps(C + 3 * ldc);
  if constexpr (R > 4) c4 = _mm256_loadu_ps(C + 4 * ldc);
  if constexpr (R > 5) c5 = _mm256_loadu_ps(C + 5 * ldc);
  const float* a = A + p0 * sap;
  const float* b = B + p0 * ldb;
  for (int64_t p = p0; p < p1; ++p, a += sap, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b);
    if constexpr (R > 0) c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0 * sai), b0, c0);
    if constexpr (R > 1) c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1 * sai), b0, c1);
    if constexpr (R > 2) c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * sai), b0, c2);
    if constexpr (R > 3) c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * sai), b0, c3);
    if constexpr (R > 4) c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4 * sai), b0, c4);
    if constexpr (R > 5) c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5 * sai), b0, c5);
  }
  if constexpr (R > 0) _mm256_storeu_ps(C + 0 * ldc, c0);
  if constexpr (R > 1) _mm256_storeu_ps(C + 1 * ldc, c1);
  if constexpr (R > 2) _mm256_storeu_ps(C + 2 * ldc, c2);
  if constexpr (R > 3) _mm256_storeu_ps(C + 3 * ldc, c3);
  if constexpr (R > 4) _mm256_storeu_ps(C + 4 * ldc, c4);
  if constexpr (R > 5) _mm256_storeu_ps(C + 5 * ldc, c5);
}

// R×(w < 8) variant for the last columns, with masked loads and stores (the state width H = D + 1 is odd).
template <int R>
__attribute__((target("avx2,fma"))) inline void kernel_r8m(int64_t p0, int64_t p1, const float* A, int64_t sai,
                                                            int64_t sap, const float* B, int64_t ldb, float* C,
                                                            int64_t ldc, __m256i mask) {
  const __m256 z = _mm256_setzero_ps();
  __m256 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z;
  if constexpr (R > 0) c0 = _mm256_maskload_ps(C + 0 * ldc, mask);
  if constexpr (R > 1) c1 = _mm256_maskload_ps(C + 1 * ldc, mask);
  if constexpr (R > 2) c2 = _mm256_maskload_ps(C + 2 * ldc, mask);
  if constexpr (R > 3) c3 = _mm256_maskload_ps(C + 3 * ldc, mask);
  if constexpr (R > 4) c4 = _mm256_maskload_ps(C + 4 * ldc, mask);
  if constexpr (R > 5) c5 = _mm256_maskload_ps(C + 5 * ldc, mask);
  const float* a = A + p0 * sap;
  const float* b = B + p0 * ldb;
  for (int64_t p = p0; p < p1; ++p, a += sap, b += ldb) {
    const __m256 b0 = _mm256_maskload_ps(b, mask);
    if constexpr (R > 0) c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0 * sai), b0, c0);
    if constexpr (R > 1) c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1 * sai), b0, c1);
    if constexpr (R > 2) c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * sai), b0, c2);
    if constexpr (R > 3) c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * sai), b0, c3);
    if constexpr (R > 4) c4 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4 * sai), b0, c4);
    if constexpr (R > 5) c5 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5 * sai), b0, c5);
  }
  if constexpr (R > 0) _mm256_maskstore_ps(C + 0 * ldc, mask, c0);
  if constexpr (R > 1) _mm256_maskstore_ps(C + 1 * ldc, mask, c1);
  if constexpr (R > 2) _mm256_maskstore_ps(C + 2 * ldc, mask, c2);
  if constexpr (R > 3) _mm256_maskstore_ps(C + 3 * ldc, mask, c3);
  if constexpr (R > 4) _mm256_maskstore_ps(C + 4 * ldc, mask, c4);
  if constexpr (R > 5) _mm256_maskstore_ps(C + 5 * ldc, mask, c5);
}

// Rows [i0,i1) × columns [0,N), blocked for the caches: K in chunks of KC (a KC×16 panel of B is 8 KB, kept in
// L1 while it sweeps a block of MC rows), rows in blocks of MC (an MC×KC block of A stays in L2 across the
// column panels). Tall reductions (weight gradients, K = rows of the batch) stream each chunk of B once.
// Columns [j0, N) (fewer than 16) of R rows: an 8-wide kernel, then a masked one.
template <int R>
__attribute__((target("avx2,fma"))) void col_tail(int64_t j0, int64_t N, int64_t p0, int64_t p1, const float* A,
                                                  int64_t sai, int64_t sap, const float* B, int64_t ldb, float* C,
                                                  int64_t ldc) {
  int64_t j = j0;
  if (j + 8 <= N) {
    kernel_r8<R>(p0, p1, A, sai, sap, B + j, ldb, C + j, ldc);
    j += 8;
  }
  if (j < N) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(N - j)), lanes);
    kernel_r8m<R>(p0, p1, A, sai, sap, B + j, ldb, C + j, ldc, mask);
  }
}

__attribute__((target("avx2,fma"))) void gemm_block_avx2(int64_t i0, int64_t i1, int64_t N, int64_t p0, int64_t p1,
                                                         const float* A, int64_t sai, int64_t sap, const float* B,
                                                         int64_t ldb, float* C, int64_t ldc) {
  constexpr int64_t KC = 128, MC = 96;
  const int64_t nfull = N / NR * NR;
  for (int64_t pc = p0; pc < p1; pc += KC) {
    const int64_t pe = std::min(p1, pc + KC);
    for (int64_t ic = i0; ic < i1; ic += MC) {
      const int64_t ie = std::min(i1, ic + MC);
      // Full 16-wide column panels: panel outer, row micro-tiles inner (the B panel stays in L1).
      for (int64_t j = 0; j < nfull; j += NR) {
        int64_t i = ic;
        for (; i + MR <= ie; i += MR) kernel_r16<MR>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc);
        switch (ie - i) {
          case 5: kernel_r16<5>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc); break;
          case 4: kernel_r16<4>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc); break;
          case 3: kernel_r16<3>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc); break;
          case 2: kernel_r16<2>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc); break;
          case 1: kernel_r16<1>(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc); break;
          default: break;
        }
      }
      // Remaining columns (< 16): 8-wide and masked kernels over the row micro-tiles.
      if (nfull < N) {
        int64_t i = ic;
        for (; i + MR <= ie; i += MR) col_tail<MR>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc);
        switch (ie - i) {
          case 5: col_tail<5>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc); break;
          case 4: col_tail<4>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc); break;
          case 3: col_tail<3>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc); break;
          case 2: col_tail<2>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc); break;
          case 1: col_tail<1>(nfull, N, pc, pe, A + i * sai, sai, sap, B, ldb, C + i * ldc, ldc); break;
          default: break;
        }
      }
    }
  }
}

bool detect_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

bool use_avx2() {
#ifdef WSF_X86
  static const bool v = detect_avx2();
  return v;
#else
  return false;
#endif
}

template <typename T>
void gemm_block(int64_t i0, int64_t i1, int64_t N, int64_t p0, int64_t p1, const T* A, int64_t sai, int64_t sap,
                const T* B, int64_t ldb, T* C, int64_t ldc) {
#ifdef WSF_X86
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx2()) {
      gemm_block_avx2(i0, i1, N, p0, p1, A, sai, sap, B, ldb, C, ldc);
      return;
    }
  }
#endif
  gemm_block_portable(i0, i1, N, p0, p1, A, sai, sap, B, ldb, C, ldc);
}

template <typename T>
void gemm_impl(int64_t M, int64_t N, int64_t K, const T* A, int64_t sai, int64_t sap, const T* B, int64_t ldb, T* C,
               int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (!accumulate) {
    for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(T) * N);
  }
  if (K <= 0) return;
  // Tall reduction (weight gradients): few output rows, long K. Split K into a fixed number of parts with private
  // partials summed in order, so the result does not depend on the thread count.
  if (K >= 4096 && K >= 16 * M) {
    const int64_t parts = 8;
    std::vector<std::vector<T>> partial(parts, std::vector<T>(static_cast<size_t>(M * N), T(0)));
    parallel_for(parts, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t p0 = K * t / parts, p1 = K * (t + 1) / parts;
        gemm_block(0, M, N, p0, p1, A, sai, sap, B, ldb, partial[t].data(), N);
      }
    });
    for (int64_t t = 0; t < parts; ++t) {
      const T* src = partial[t].data();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += src[i * N + j];
    }
    return;
  }
  // Split rows in multiples of 6 (the micro-tile height).
  const int64_t grain = std::max<int64_t>(6, static_cast<int64_t>(6 * (1 + 30000 / std::max<int64_t>(1, N * K))));
  const int64_t blocks = (M + 5) / 6;
  parallel_for(blocks, std::max<int64_t>(1, grain / 6), [&](int64_t b, int64_t e) {
    gemm_block(b * 6, std::min(M, e * 6), N, int64_t(0), K, A, sai, sap, B, ldb, C, ldc);
  });
}

}  // namespace

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate) {
  gemm_impl<float>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}
void gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B, int64_t ldb,
          double* C, int64_t ldc, bool accumulate) {
  gemm_impl<double>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}
bool gemm_uses_avx2() { return use_avx2(); }

namespace {
template <typename T>
void gemm_serial_impl(int64_t M, int64_t N, int64_t K, const T* A, int64_t sai, int64_t sap, const T* B, int64_t ldb,
                      T* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (!accumulate) {
    for (int64_t i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(T) * N);
  }
  if (K > 0) gemm_block(int64_t(0), M, N, int64_t(0), K, A, sai, sap, B, ldb, C, ldc);
}
}  // namespace

void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate) {
  gemm_serial_impl<float>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate) {
  gemm_serial_impl<double>(M, N, K, A, sai, sap, B, ldb, C, ldc, accumulate);
}

}  // namespace wsf
