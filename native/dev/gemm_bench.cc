// Kernel lab: times the CPU GEMM (core/gemm_cpu.cc) at the engine's shapes and checks it against double precision.
//
// Build (from native/dev):
//   g++ -O3 -std=c++17 -I.. gemm_bench.cc ../core/gemm_cpu.cc ../core/parallel.cc -lpthread -o /tmp/gemm_bench
// Side by side with an older gemm_cpu.cc (e.g. the one before the packed rewrite, commit 766ea63), compiled into
// its own namespace:
//   git show 766ea63:native/core/gemm_cpu.cc > /tmp/gemm_old.cc
//   g++ -O3 -std=c++17 -I.. -Dwsf=wsf_old -c /tmp/gemm_old.cc -o /tmp/gemm_old.o
//   g++ -O3 -std=c++17 -I.. -Dwsf=wsf_old -c ../core/parallel.cc -o /tmp/parallel_old.o
//   g++ -O3 -std=c++17 -I.. -DWSF_BENCH_OLD gemm_bench.cc ../core/gemm_cpu.cc ../core/parallel.cc \  (continued)
//       /tmp/gemm_old.o /tmp/parallel_old.o -lpthread -o /tmp/gemm_bench
// Run: /tmp/gemm_bench [--threads N] [--rows R] [--reps N] [--only fwd|dx|dW|fused] [--D 16,32,64] [--check]
//   --check: correctness sweep (odd sizes, strides, accumulate, tall reductions, thread-count independence) only.
//   --check-quick: every 8th case of the sweep and smaller thread-count shapes (the arm64 check under qemu in
//   test/native/arm64Cross.test.ts; the full sweep takes minutes there).
//
// Timing: CPU time (std::clock(), all threads of the process), so a second process on the machine does not
// inflate it; "GF/s/core" = FLOP / CPU-second. Each shape runs old and new alternately, best of --reps (default 3)
// per version. Error: normwise relative, max_ij |C - C_ref| / Σ_p |A(i,p)·B(p,j)| against a double reference,
// on sampled rows (all rows for the weight gradients). FLOP = 2·M·N·K.
//
// Results. On a 2-vCPU "AMD EPYC" (family 23 model 1, AVX2 only) VM, the packed rewrite against 766ea63 (unpacked
// 6×16, memset + load of C): there one ymm FMA per cycle (≈ 2.5 GHz → 40 GF/s/core with 12 independent FMA chains)
// and the 6×16 kernel on L1-resident packed data ran at 38–39, at the ceiling; the rest was memory traffic and
// small-K/N overheads (C tile epilogues, column tails). That table was not kept.
//
// 2026-12-06, a 2-vCPU AMD EPYC with AVX-512 (the 12×32 kernel; ≈ 115 GF/s/core FMA ceiling), 1 thread, rows =
// 51,200, old = ee5969c, new = the tails computed per row block while its rows of A are in cache, and the kernels
// requesting the next row tile's A ahead (`--D 32,64 --reps 3`, shared machine, versions alternated):
//
//   shape                               D=32: old → new GF/s/core      D=64: old → new
//   dx  qkv_edge  K=4D N=H                40.6 →  82.7 (2.04×)          62.5 → 97.8 (1.56×)
//   dx  lin0_e    K=D N=H ldw=2H          87.8 →  87.6                  61.7 → 77.1 (1.25×)
//   fwd qkv_edge  K=H N=4D                63.1 →  68.6                  77.8 → 82.6
//   fused fwd / dx (96-row blocks)        65.8–85.2 → 81.9–91.7         64.4–77.2 → 70.1–85.0
//   dW (tall reductions)                  unchanged within noise (0.86–1.20× over repeated runs)
//   all shapes                            68.8 → 77.1 GF/s (both D)
//
// The weight gradients' tall reductions and the short-K forward products are now the slowest (58–75 GF/s/core).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/gemm_cpu.h"
#include "core/parallel.h"

#ifdef WSF_BENCH_OLD
namespace wsf_old {
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B, int64_t ldb,
          float* C, int64_t ldc, bool accumulate);
void gemm_serial(int64_t M, int64_t N, int64_t K, const float* A, int64_t sai, int64_t sap, const float* B,
                 int64_t ldb, float* C, int64_t ldc, bool accumulate);
void set_num_threads(int n);
}  // namespace wsf_old
#endif

namespace {

double cpu_now() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }
double wall_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

using GemmFn = void (*)(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, bool);

// One product as the engine issues it. `block` > 0: gemm_serial over consecutive blocks of `block` rows of a
// (rows × ...) problem, as the fused pair-MLP does (A and C advance by block rows; for weight gradients, A and B
// advance along K and C accumulates).
struct Case {
  std::string name;
  int64_t M, N, K, sai, sap, ldb, ldc;
  bool acc;
  int64_t block = 0;   // fused: rows per gemm_serial call
  bool tall_blocks = false;  // fused weight gradient: blocks split K
};

struct Data {
  std::vector<float> A, B, C;
};

int64_t a_size(const Case& c) { return (c.M - 1) * c.sai + (c.K - 1) * c.sap + 1; }

void run_case(const Case& c, Data& d, GemmFn g, GemmFn gs) {
  if (c.block == 0) {
    g(c.M, c.N, c.K, d.A.data(), c.sai, c.sap, d.B.data(), c.ldb, d.C.data(), c.ldc, c.acc);
    return;
  }
  if (!c.tall_blocks) {
    for (int64_t r0 = 0; r0 < c.M; r0 += c.block) {
      const int64_t R = std::min(c.block, c.M - r0);
      gs(R, c.N, c.K, d.A.data() + r0 * c.sai, c.sai, c.sap, d.B.data(), c.ldb, d.C.data() + r0 * c.ldc, c.ldc, c.acc);
    }
  } else {
    for (int64_t p0 = 0; p0 < c.K; p0 += c.block) {
      const int64_t R = std::min(c.block, c.K - p0);
      gs(c.M, c.N, R, d.A.data() + p0 * c.sap, c.sai, c.sap, d.B.data() + p0 * c.ldb, c.ldb, d.C.data(), c.ldc, true);
    }
  }
}

// Normwise relative error against a double reference: rows sampled (all when M is small).
double check_error(const Case& c, const Data& d, const std::vector<float>& C0, int reps_applied) {
  std::vector<int64_t> rows;
  if (c.M <= 300) {
    for (int64_t i = 0; i < c.M; ++i) rows.push_back(i);
  } else {
    for (int64_t i = 0; i < 48; ++i) rows.push_back(i);
    for (int64_t i = c.M - 13; i < c.M; ++i) rows.push_back(i);
    for (int64_t i = 1; i < 40; ++i) rows.push_back(c.M * i / 40);
  }
  double worst = 0;
  for (int64_t i : rows)
    for (int64_t j = 0; j < c.N; ++j) {
      double s = 0, sa = 0;
      for (int64_t p = 0; p < c.K; ++p) {
        const double t = double(d.A[i * c.sai + p * c.sap]) * d.B[p * c.ldb + j];
        s += t;
        sa += std::abs(t);
      }
      const double base = c.acc ? C0[i * c.ldc + j] : 0.0;
      const double ref = base + reps_applied * s;
      const double mag = std::abs(base) + reps_applied * sa;
      worst = std::max(worst, std::abs(ref - d.C[i * c.ldc + j]) / std::max(mag, 1e-30));
    }
  return worst;
}

struct Result {
  double gflops_cpu = 0, gflops_wall = 0, err = 0;
};

Result measure(const Case& c, Data& d, GemmFn g, GemmFn gs, int reps) {
  const std::vector<float> C0 = d.C;
  run_case(c, d, g, gs);
  Result r;
  r.err = check_error(c, d, C0, 1);
  const double flop = 2.0 * c.M * c.N * c.K;
  double best_cpu = 1e30, best_wall = 1e30;
  for (int k = 0; k < reps; ++k) {
    d.C = C0;
    const double c0 = cpu_now(), w0 = wall_now();
    run_case(c, d, g, gs);
    best_cpu = std::min(best_cpu, cpu_now() - c0);
    best_wall = std::min(best_wall, wall_now() - w0);
  }
  d.C = C0;
  r.gflops_cpu = flop / best_cpu / 1e9;
  r.gflops_wall = flop / best_wall / 1e9;
  return r;
}

std::vector<Case> engine_cases(int64_t rows, const std::vector<int>& Ds) {
  std::vector<Case> v;
  for (int D : Ds) {
    const int64_t H = D + 1, R = rows;
    const std::string s = " D=" + std::to_string(D);
    // forward: gemm(rows, N, K, x, K, 1, Wt, N, y, N, acc) — linear_fwd with the bias preloaded (acc = true)
    v.push_back({"fwd qkv_edge  K=H N=4D" + s, R, 4 * D, H, H, 1, 4 * D, 4 * D, false});
    v.push_back({"fwd qkv_node  K=H N=3D" + s, R, 3 * D, H, H, 1, 3 * D, 3 * D, false});
    v.push_back({"fwd lin0_e    K=H N=D " + s, R, D, H, H, 1, D, D, false});
    v.push_back({"fwd D->H bias K=D N=H " + s, R, H, D, D, 1, H, H, true});
    // backward data: gemm(rows, K, N, dy, N, 1, W, ldw, dx, K, acc)
    v.push_back({"dx  qkv_edge  K=4D N=H" + s, R, H, 4 * D, 4 * D, 1, H, H, true});
    v.push_back({"dx  lin0_e    K=D N=H ldw=2H" + s, R, H, D, D, 1, 2 * H, H, true});
    v.push_back({"dx  D->H      K=H N=D " + s, R, D, H, H, 1, D, D, false});
    // backward weight: gemm(N, K, rows, dy, 1, N, x, K, dW, ldw, true)
    v.push_back({"dW  qkv_edge  4D x H  " + s, 4 * D, H, R, 1, 4 * D, H, H, true});
    v.push_back({"dW  lin0_e    D x H ldw=2H" + s, D, H, R, 1, D, H, 2 * H, true});
    v.push_back({"dW  D->H      H x D   " + s, H, D, R, 1, H, D, D, true});
    // fused pair-MLP: gemm_serial on 96-row blocks
    v.push_back({"fused fwd R x H (K=D) " + s, R, H, D, D, 1, H, H, false, 96});
    v.push_back({"fused fwd R x D (K=H) " + s, R, D, H, H, 1, D, D, false, 96});
    v.push_back({"fused dx  R x D (K=H) " + s, R, D, H, H, 1, D, D, false, 96});
    v.push_back({"fused dx  R x H (K=D) acc" + s, R, H, D, D, 1, H, H, true, 96});
    v.push_back({"fused dW  H x D (K=96)" + s, H, D, R, 1, H, D, D, true, 96, true});
    v.push_back({"fused dW  D x H (K=96)" + s, D, H, R, 1, D, H, H, true, 96, true});
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Correctness sweep.
int check_sweep(bool quick) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::uniform_int_distribution<int> u(0, 1 << 30);
  int fails = 0, n = 0;
  double worst = 0;
  int64_t seq = 0;
  auto run = [&](int64_t M, int64_t N, int64_t K, int mode, bool acc, bool serial, int64_t extra) {
    if (quick && seq++ % 8 != 0) return;
    int64_t sai, sap;  // 0: rows contiguous; 1: columns contiguous; 2: neither
    if (mode == 0) {
      sai = K + extra;
      sap = 1;
    } else if (mode == 1) {
      sai = 1;
      sap = M + extra;
    } else {
      sai = 3;
      sap = 3 * M + 1;
    }
    const int64_t ldb = N + extra, ldc = N + extra;
    const int64_t asz = (M > 0 && K > 0) ? (M - 1) * sai + (K - 1) * sap + 1 : 1;
    std::vector<float> A(asz), B(std::max<int64_t>(1, K * ldb)), C(std::max<int64_t>(1, M * ldc));
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    for (auto& x : C) x = nd(rng);
    const std::vector<float> C0 = C;
    if (serial) wsf::gemm_serial(M, N, K, A.data(), sai, sap, B.data(), ldb, C.data(), ldc, acc);
    else wsf::gemm(M, N, K, A.data(), sai, sap, B.data(), ldb, C.data(), ldc, acc);
    double err = 0;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        if (j >= N) {
          if (C[i * ldc + j] != C0[i * ldc + j]) err = 1;  // wrote outside the N columns
          continue;
        }
        double s = acc ? C0[i * ldc + j] : 0, sa = acc ? std::abs(C0[i * ldc + j]) : 0;
        for (int64_t p = 0; p < K; ++p) {
          const double t = double(A[i * sai + p * sap]) * B[p * ldb + j];
          s += t;
          sa += std::abs(t);
        }
        err = std::max(err, sa == 0 ? std::abs(double(C[i * ldc + j])) : std::abs(s - C[i * ldc + j]) / sa);
      }
    ++n;
    worst = std::max(worst, err);
    if (!(err < 1e-5)) {
      ++fails;
      std::printf("FAIL M=%ld N=%ld K=%ld mode=%d acc=%d serial=%d extra=%ld err=%g\n", long(M), long(N), long(K),
                  mode, int(acc), int(serial), long(extra), err);
    }
  };
  const int64_t Ms[] = {0, 1, 2, 5, 6, 7, 13, 31, 64, 65, 97, 200};
  const int64_t Ns[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 18, 24, 31, 33, 48, 64, 65, 79, 130};
  const int64_t Ks[] = {0, 1, 2, 7, 8, 9, 16, 17, 33, 64, 65, 255, 256, 257, 600};
  for (int64_t M : Ms)
    for (int64_t N : Ns)
      for (int64_t K : Ks) run(M, N, K, u(rng) % 3, u(rng) % 2, u(rng) % 2, u(rng) % 3);
  for (int64_t M : {1, 5, 16, 17, 64, 65, 192, 256})
    for (int64_t N : {1, 2, 3, 16, 17, 33, 64, 65})
      for (int64_t K : {4096, 5000, 9001}) {
        run(M, N, K, 1, true, false, 0);
        run(M, N, K, u(rng) % 3, u(rng) % 2, false, 1);
      }
  std::printf("sweep: %d cases, %d failures, worst normwise relative error %.2e\n", n, fails, worst);
  // Results must not depend on the thread count (bitwise).
  const std::array<int64_t, 4> shapes[] = {{51200, 65, 256, 0}, {256, 65, 51200, 1}, {64, 65, 20000, 1},
                                           {5000, 17, 33, 0},   {65, 64, 9000, 1},   {33, 33, 6432, 1}};
  const std::array<int64_t, 4> quick_shapes[] = {{4000, 65, 256, 0}, {64, 65, 8192, 1}, {33, 33, 6432, 1}};
  for (const auto& sh : quick ? std::vector<std::array<int64_t, 4>>(std::begin(quick_shapes), std::end(quick_shapes))
                              : std::vector<std::array<int64_t, 4>>(std::begin(shapes), std::end(shapes))) {
    const int64_t M = sh[0], N = sh[1], K = sh[2];
    const int64_t sai = sh[3] ? 1 : K, sap = sh[3] ? M : 1;
    std::vector<float> A(M * K), B(K * N);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    std::vector<std::vector<float>> outs;
    for (int t : {1, 2, 3, 5}) {
      wsf::set_num_threads(t);
      std::vector<float> C(M * N, 1.f);
      wsf::gemm(M, N, K, A.data(), sai, sap, B.data(), N, C.data(), N, true);
      outs.push_back(C);
    }
    bool same = true;
    for (size_t k = 1; k < outs.size(); ++k) same &= std::memcmp(outs[0].data(), outs[k].data(), 4 * M * N) == 0;
    std::printf("threads 1/2/3/5 bitwise identical, M=%ld N=%ld K=%ld: %s\n", long(M), long(N), long(K),
                same ? "yes" : "NO");
    if (!same) ++fails;
  }
  return fails ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 3;
  int64_t rows = 51200;
  std::string only;
  std::vector<int> Ds = {16, 32, 64};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--threads") threads = std::atoi(next());
    else if (a == "--rows") rows = std::atoll(next());
    else if (a == "--reps") reps = std::atoi(next());
    else if (a == "--only") only = next();
    else if (a == "--D") {
      Ds.clear();
      std::string s = next();
      for (size_t p = 0; p < s.size();) {
        const size_t q = s.find(',', p);
        Ds.push_back(std::atoi(s.substr(p, q - p).c_str()));
        p = q == std::string::npos ? s.size() : q + 1;
      }
    } else if (a == "--check" || a == "--check-quick") {
      return check_sweep(a == "--check-quick");
    }
  }
  wsf::set_num_threads(threads);
#ifdef WSF_BENCH_OLD
  wsf_old::set_num_threads(threads);
#endif
  std::printf("threads %d, rows %ld, avx2 %d; GF/s per CPU-second (wall GF/s in brackets); err = normwise rel.\n",
              threads, long(rows), int(wsf::gemm_uses_avx2()));
#ifdef WSF_BENCH_OLD
  std::printf("%-34s %17s %9s   %17s %9s  %6s\n", "shape", "old GF/s", "old err", "new GF/s", "new err", "speedup");
#else
  std::printf("%-34s %17s %9s\n", "shape", "GF/s", "err");
#endif
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  double tot_flop = 0, tot_old = 0, tot_new = 0;
  for (const Case& c : engine_cases(rows, Ds)) {
    if (!only.empty() && c.name.find(only) != 0) continue;
    Data d;
    d.A.resize(a_size(c));
    d.B.resize(c.K * c.ldb);
    d.C.resize(c.M * c.ldc);
    for (auto& x : d.A) x = nd(rng);
    for (auto& x : d.B) x = nd(rng);
    for (auto& x : d.C) x = nd(rng);
    const double flop = 2.0 * c.M * c.N * c.K;
    tot_flop += flop;
    const Result rn = measure(c, d, wsf::gemm, wsf::gemm_serial, reps);
    tot_new += flop / (rn.gflops_cpu * 1e9);
#ifdef WSF_BENCH_OLD
    const Result ro = measure(c, d, wsf_old::gemm, wsf_old::gemm_serial, reps);
    tot_old += flop / (ro.gflops_cpu * 1e9);
    std::printf("%-34s %6.1f [%6.1f]  %9.1e   %6.1f [%6.1f]  %9.1e  %5.2fx\n", c.name.c_str(), ro.gflops_cpu,
                ro.gflops_wall, ro.err, rn.gflops_cpu, rn.gflops_wall, rn.err, rn.gflops_cpu / ro.gflops_cpu);
#else
    std::printf("%-34s %6.1f [%6.1f]  %9.1e\n", c.name.c_str(), rn.gflops_cpu, rn.gflops_wall, rn.err);
#endif
    std::fflush(stdout);
  }
#ifdef WSF_BENCH_OLD
  std::printf("all shapes: old %.1f GF/s, new %.1f GF/s (total CPU time %.0f -> %.0f ms)\n", tot_flop / tot_old / 1e9,
              tot_flop / tot_new / 1e9, tot_old * 1e3, tot_new * 1e3);
#else
  std::printf("all shapes: %.1f GF/s (total CPU time %.0f ms)\n", tot_flop / tot_new / 1e9, tot_new * 1e3);
#endif
  (void)tot_old;
  return 0;
}
