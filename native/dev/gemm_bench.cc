// Kernel lab: times the CPU GEMM at the engine's shapes and checks it against a plain loop.
// Build: g++ -O3 -std=c++17 -I../ gemm_bench.cc ../core/gemm_cpu.cc ../core/parallel.cc -lpthread -o /tmp/gemm_bench
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/gemm_cpu.h"

using namespace wsf;

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int main() {
  struct Case { const char* name; int64_t M, N, K; int64_t sai, sap, ldb; };
  const int64_t R = 51200;
  std::vector<Case> cases = {
      {"fwd  rows×4D  (K=H)", R, 256, 65, 65, 1, 256},
      {"fwd  rows×H   (K=D)", R, 65, 64, 64, 1, 65},
      {"dx   rows×H   (K=4D)", R, 65, 256, 256, 1, 65},
      {"dW   4D×H     (K=rows)", 256, 65, R, 1, 256, 65},
      {"dW   H×D      (K=rows)", 65, 64, R, 1, 65, 64},
  };
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (const Case& c : cases) {
    // A is M×K addressed with (sai, sap); allocate generously.
    const int64_t asz = (c.M - 1) * c.sai + (c.K - 1) * c.sap + 1;
    std::vector<float> A(asz), B(c.K * c.ldb), C(c.M * c.N), Cref(c.M * c.N, 0.f);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    gemm(c.M, c.N, c.K, A.data(), c.sai, c.sap, B.data(), c.ldb, C.data(), c.N, false);
    // reference on a few rows
    double maxerr = 0;
    for (int64_t i = 0; i < std::min<int64_t>(c.M, 50); ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double s = 0;
        for (int64_t p = 0; p < c.K; ++p) s += double(A[i * c.sai + p * c.sap]) * B[p * c.ldb + j];
        maxerr = std::max(maxerr, std::abs(s - C[i * c.N + j]) / (1 + std::abs(s)));
      }
    const int reps = 5;
    double t0 = now();
    for (int r = 0; r < reps; ++r) gemm(c.M, c.N, c.K, A.data(), c.sai, c.sap, B.data(), c.ldb, C.data(), c.N, false);
    const double dt = (now() - t0) / reps;
    std::printf("%-24s %8.2f ms  %6.1f GFLOP/s  max rel err %.1e\n", c.name, dt * 1e3, 2.0 * c.M * c.N * c.K / dt / 1e9, maxerr);
  }
  std::printf("avx2: %d\n", gemm_uses_avx2());
}
