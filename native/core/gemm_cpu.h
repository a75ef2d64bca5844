// Dense matrix products for the CPU path (no BLAS dependency).
//
//   C[i][j] (+)= Σ_p A(i,p) · B[p][j]      i < M, j < N, p < K
//
// A is addressed with two strides, A(i,p) = A[i·sai + p·sap], so one routine serves x·Wᵀ (packed), dy·W and
// dyᵀ·x. B is row-major with leading dimension ldb, C row-major with ldc. `accumulate` adds into C instead of
// overwriting it. The float version dispatches at run time to an AVX2+FMA micro-kernel (6×16 register tile) when
// the CPU has it (plus a 12×32 AVX-512F kernel for full 16-column panels when available), else to portable register
// tiles of generic 4-lane vectors (NEON on arm64, SSE2 on other x86); nothing is compiled with -march=native. The
// double version is a plain reference loop (gradient checks only). Both are multi-threaded over i (and over p for tall reductions).
#pragma once

#include <cstdint>
#include <memory>

namespace wsf {

// Precision of a float product: F32, or Bf16 (operands rounded to bfloat16, sums in float; see gemm_pack and the
// gemm_serial overload below for where it applies).
enum class GemmPrecision : int { F32 = 0, Bf16 = 1 };

void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate);
void gemm(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B, int64_t ldb,
          double* C, int64_t ldc, bool accumulate);

// Single-threaded variants, for callers that already parallelise over blocks of rows.
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate);
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate);

// gemm_serial in `precision`. GemmPrecision::Bf16 — where gemm_bf16_available(), for the weight-gradient shape (A's
// columns contiguous, sai == 1, e.g. dyᵀ over a block of rows), K ≥ 2 and at least two 16-column panels — packs both
// operands as bf16 pairs along K and sums in float (a 1–2-column tail in float); otherwise exactly gemm_serial.
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
                 float* C, int64_t ldc, bool accumulate, GemmPrecision precision);
void gemm_serial(int64_t M, int64_t N, int64_t K, const double* A, int64_t sai, int64_t sap, const double* B,
                 int64_t ldb, double* C, int64_t ldc, bool accumulate, GemmPrecision precision);

// A right-hand operand B (K × N, leading dimension ldb) packed once for many serial products that share it — row
// blocks of A, all with the strides sai/sap given here: gemm_serial_packed(M, A, pb, C, ldc, acc) gives the bits of
// gemm_serial(M, N, K, A, sai, sap, B, ldb, C, ldc, acc). Saves re-packing B for every block (the fused CPU ops run
// products of ~100 rows against the same weights). B must stay alive and unchanged while the packing is used (narrow
// column tails are read from it in place). Without the AVX2 kernels (or for double) nothing is packed and the products
// are gemm_serial's.
//
// GemmPrecision::Bf16 (float, CPUs with AVX-512 BF16, A's rows along K: sap == 1) packs B rounded to bf16 and rounds
// each block of A to bf16 in gemm_serial_packed; the products are summed in float (vdpbf16ps). Elsewhere — no
// BF16 instructions, WSF_NO_BF16 set, the float kernels capped below AVX-512, sap != 1, K < 2, or fewer than two
// 16-column panels (N ≤ 18: too small to gain) — it packs for float as usual (`bf16` false). Error of an entry: about
// 2⁻⁸ of Σ_p |A(i,p)·B(p,j)| (the operands' rounding); a 1–2-column tail beyond the panels is summed in float.
struct GemmPacked {
  int64_t N = 0, K = 0, ldb = 0, sai = 0, sap = 0;
  const void* B = nullptr;
  bool packed = false;
  bool bf16 = false;  // buf holds bf16 pairs (GemmPrecision::Bf16 granted)
  struct Free { void operator()(float* p) const; };
  std::unique_ptr<float, Free> buf;  // 64-byte aligned panels
};
void gemm_pack(GemmPacked* pb, int64_t N, int64_t K, const float* B, int64_t ldb, int64_t sai, int64_t sap,
               GemmPrecision precision = GemmPrecision::F32);
void gemm_pack(GemmPacked* pb, int64_t N, int64_t K, const double* B, int64_t ldb, int64_t sai, int64_t sap,
               GemmPrecision precision = GemmPrecision::F32);  // double: always the plain loops
void gemm_serial_packed(int64_t M, const float* A, const GemmPacked& pb, float* C, int64_t ldc, bool accumulate);
void gemm_serial_packed(int64_t M, const double* A, const GemmPacked& pb, double* C, int64_t ldc, bool accumulate);

// True when the AVX2+FMA kernels are in use (also under AVX-512, which adds a wider kernel for full panels).
bool gemm_uses_avx2();
// True when gemm_pack would grant GemmPrecision::Bf16 (AVX-512 BF16 present, not turned off, AVX-512 level in use).
bool gemm_bf16_available();

// Instruction set of the float kernels. The detected one is fixed at first use (CPU features; WSF_NO_AVX2 and
// WSF_NO_AVX512 lower it); set_gemm_isa caps it at run time (tests, side-by-side benchmarks) and returns the level
// now in use. Every level gives bit-identical products: the kernels differ in tile width, not in summation order.
enum class GemmIsa : int { Portable = 0, Avx2 = 1, Avx512 = 2 };
GemmIsa gemm_isa();
GemmIsa gemm_isa_detected();
GemmIsa set_gemm_isa(GemmIsa cap);
const char* gemm_isa_name(GemmIsa isa);

// Measured float FMA throughput of this machine (GFLOP/s, all pool threads at once, each running independent
// FMA chains as wide as the kernels in use — 16 lanes under AVX-512, else 8 — for about `seconds`): the ceiling the benchmarks report the engine's GEMM FLOP rate against.
// 0 without AVX2+FMA.
double fma_peak_gflops(double seconds);

}  // namespace wsf
