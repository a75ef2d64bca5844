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

// 6×16 AVX2 micro-kernel: C[i0..i0+6)[j0..j0+16) += Σ_{p∈[p0,p1)} A(i,p) B[p][j]. Full tiles only.
__attribute__((target("avx2,fma"))) inline void kernel_6x16(int64_t p0, int64_t p1, const float* A, int64_t sai,
                                                             int64_t sap, const float* B, int64_t ldb, float* C,
                                                             int64_t ldc) {
  __m256 c00 = _mm256_loadu_ps(C + 0 * ldc), c01 = _mm256_loadu_ps(C + 0 * ldc + 8);
  __m256 c10 = _mm256_loadu_ps(C + 1 * ldc), c11 = _mm256_loadu_ps(C + 1 * ldc + 8);
  __m256 c20 = _mm256_loadu_ps(C + 2 * ldc), c21 = _mm256_loadu_ps(C + 2 * ldc + 8);
  __m256 c30 = _mm256_loadu_ps(C + 3 * ldc), c31 = _mm256_loadu_ps(C + 3 * ldc + 8);
  __m256 c40 = _mm256_loadu_ps(C + 4 * ldc), c41 = _mm256_loadu_ps(C + 4 * ldc + 8);
  __m256 c50 = _mm256_loadu_ps(C + 5 * ldc), c51 = _mm256_loadu_ps(C + 5 * ldc + 8);
  const float* a = A + p0 * sap;
  const float* b = B + p0 * ldb;
  for (int64_t p = p0; p < p1; ++p, a += sap, b += ldb) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a + 0 * sai); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1 * sai); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2 * sai); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3 * sai); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4 * sai); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5 * sai); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  _mm256_storeu_ps(C + 0 * ldc, c00); _mm256_storeu_ps(C + 0 * ldc + 8, c01);
  _mm256_storeu_ps(C + 1 * ldc, c10); _mm256_storeu_ps(C + 1 * ldc + 8, c11);
  _mm256_storeu_ps(C + 2 * ldc, c20); _mm256_storeu_ps(C + 2 * ldc + 8, c21);
  _mm256_storeu_ps(C + 3 * ldc, c30); _mm256_storeu_ps(C + 3 * ldc + 8, c31);
  _mm256_storeu_ps(C + 4 * ldc, c40); _mm256_storeu_ps(C + 4 * ldc + 8, c41);
  _mm256_storeu_ps(C + 5 * ldc, c50); _mm256_storeu_ps(C + 5 * ldc + 8, c51);
}

// Rows [i0,i1) × columns [0,N) with the micro-kernel where tiles are full and 8-wide / scalar code at the edges.
__attribute__((target("avx2,fma"))) void gemm_block_avx2(int64_t i0, int64_t i1, int64_t N, int64_t p0, int64_t p1,
                                                         const float* A, int64_t sai, int64_t sap, const float* B,
                                                         int64_t ldb, float* C, int64_t ldc) {
  const int64_t nfull = N / NR * NR;
  int64_t i = i0;
  // K is processed in chunks so the B panel (chunk × 16 floats) stays in L1.
  constexpr int64_t KC = 256;
  for (; i + MR <= i1; i += MR) {
    for (int64_t pc = p0; pc < p1; pc += KC) {
      const int64_t pe = std::min(p1, pc + KC);
      for (int64_t j = 0; j < nfull; j += NR) kernel_6x16(pc, pe, A + i * sai, sai, sap, B + j, ldb, C + i * ldc + j, ldc);
    }
  }
  // Remaining rows: one row at a time, 8-wide.
  for (; i < i1; ++i) {
    float* c = C + i * ldc;
    int64_t j = 0;
    for (; j + 8 <= nfull; j += 8) {
      __m256 acc = _mm256_loadu_ps(c + j);
      for (int64_t p = p0; p < p1; ++p) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(A + i * sai + p * sap), _mm256_loadu_ps(B + p * ldb + j), acc);
      _mm256_storeu_ps(c + j, acc);
    }
  }
  // Column tail (N not a multiple of 16) for all rows.
  if (nfull < N) {
    for (int64_t r = i0; r < i1; ++r) {
      float* c = C + r * ldc;
      int64_t j = nfull;
      for (; j + 8 <= N; j += 8) {
        __m256 acc = _mm256_loadu_ps(c + j);
        for (int64_t p = p0; p < p1; ++p) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(A + r * sai + p * sap), _mm256_loadu_ps(B + p * ldb + j), acc);
        _mm256_storeu_ps(c + j, acc);
      }
      for (; j < N; ++j) {
        float acc = c[j];
        for (int64_t p = p0; p < p1; ++p) acc += A[r * sai + p * sap] * B[p * ldb + j];
        c[j] = acc;
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
  const int threads = num_threads();
  const double flops = 2.0 * M * N * K;
  // Tall reduction (weight gradients): few output rows, long K. Split K across threads with private partials.
  if (threads > 1 && M < 24 * threads && K >= 4096 && flops > 2e6) {
    const int64_t parts = threads;
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

}  // namespace wsf
