// Dense matrix products for the CPU path (no BLAS dependency).
//
//   C[i][j] (+)= Σ_p A(i,p) · B[p][j]      i < M, j < N, p < K
//
// A is addressed with two strides, A(i,p) = A[i·sai + p·sap], so one routine serves x·Wᵀ (packed), dy·W and
// dyᵀ·x. B is row-major with leading dimension ldb, C row-major with ldc. `accumulate` adds into C instead of
// overwriting it. The float version dispatches at run time to an AVX2+FMA micro-kernel (6×16 register tile) when
// the CPU has it, else to a portable loop; nothing is compiled with -march=native. The double version is a plain
// reference loop (gradient checks only). Both are multi-threaded over i (and over p for tall reductions).
#pragma once

#include <cstdint>

namespace wsf {

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate);
void gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B, int64_t ldb,
          double* C, int64_t ldc, bool accumulate);

// Single-threaded variants, for callers that already parallelise over blocks of rows.
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate);
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate);

// True when the AVX2+FMA kernel is in use (for reports).
bool gemm_uses_avx2();

// Measured float FMA throughput of this machine (GFLOP/s, all pool threads at once, each running independent
// 8-wide FMA chains for about `seconds`): the ceiling the benchmarks report the engine's GEMM FLOP rate against.
// 0 without AVX2+FMA.
double fma_peak_gflops(double seconds);

}  // namespace wsf
