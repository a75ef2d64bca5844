// Kernel lab: the whole CPU engine (RtEngine<CpuOps<float>>: input MLPs, attention rows, LayerNorms, the fused pair
// blocks, heads, backward) against the same engine in double precision, without Node — so that it can run where
// Node cannot, e.g. an arm64 build under qemu (test/native/arm64Cross.test.ts). For each graph mode (sparse, dense,
// hybrid, virtual node) and both a default and a chunked-recompute configuration: the same parameters (the f32 engine's, widened),
// the same x_t and t; the float outputs, input gradient and every parameter gradient of the MSE loss must agree with
// double to a normwise relative error below 1e-5 (f32 rounding through the layers gives ~1e-6), and the float run must give the
// same bits on 1 and 3 threads.
//
// Build and run (from native/dev; any compiler, any target):
//   g++ -O3 -std=gnu++17 -fno-trapping-math -I.. engine_check.cc ../core/rt_ops_cpu.cc ../core/rt_graph.cc \
//       ../core/rt_model.cc ../core/gemm_cpu.cc ../core/parallel.cc ../core/device_cuda_stub.cc -lpthread -o /tmp/ec
//   /tmp/ec            → one line per case, "engine check: N cases, F failures" last; exit status 1 on a failure.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/rt_engine.h"
#include "core/rt_ops.h"

namespace {

using wsf::RtConfig;
using wsf::RtEngine;

struct Run {
  std::vector<double> out, dxt, grads;
  std::string error;
};

// Normwise relative error of a against the reference b: max |a − b| / max(max |b|, tiny).
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(a[i] - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return std::isfinite(num) ? num / std::max(den, 1e-30) : INFINITY;
}

template <typename T>
Run run(const RtConfig& cfg, const std::vector<std::vector<int32_t>>& widths, const std::vector<float>& params,
        const std::vector<double>& xt, const std::vector<double>& t, const std::vector<double>& target) {
  Run r;
  RtEngine<wsf::CpuOps<T>> e(cfg);
  auto fail = [&](const wsf::Status& s) {
    r.error = s.message();
    return r;
  };
  wsf::Status s = e.init(1);
  if (!s.is_ok()) return fail(s);
  std::vector<T> p(params.begin(), params.end());
  if (!(s = e.set_params(p.data())).is_ok()) return fail(s);
  if (!(s = e.set_graph(widths)).is_ok()) return fail(s);
  const int64_t P = static_cast<int64_t>(xt.size());
  std::vector<T> x(xt.begin(), xt.end()), tt(t.begin(), t.end()), out(P), dxhat(P), dxt(P), g(params.size());
  if (!(s = e.forward_host(x.data(), tt.data(), out.data(), true)).is_ok()) return fail(s);
  for (int64_t i = 0; i < P; ++i) dxhat[i] = static_cast<T>(2.0 * (static_cast<double>(out[i]) - target[i]) / P);
  e.zero_grad_enqueue();
  if (!(s = e.backward_host(dxhat.data(), dxt.data(), true)).is_ok()) return fail(s);
  if (!(s = e.get_grads(g.data())).is_ok()) return fail(s);
  r.out.assign(out.begin(), out.end());
  r.dxt.assign(dxt.begin(), dxt.end());
  r.grads.assign(g.begin(), g.end());
  return r;
}

}  // namespace

int main() {
  struct Case {
    const char* name;
    wsf::GraphMode mode;
    std::vector<std::vector<int32_t>> widths;
    int D, layers, heads;
    bool recompute;
    int64_t chunk_rows;
  };
  const std::vector<Case> cases = {
      {"sparse 30-16-16-2 ×2 D=32 (default)", wsf::GraphMode::Sparse, {{30, 16, 16, 2}, {30, 16, 16, 2}}, 32, 2, 2, false, 0},
      {"sparse mixed 30-16-16-2 + 30-9-16-2 D=16 (chunked recompute, 700 pairs)", wsf::GraphMode::Sparse,
       {{30, 16, 16, 2}, {30, 9, 16, 2}}, 16, 2, 1, true, 700},
      {"dense 6-5-3 ×3 D=16", wsf::GraphMode::Dense, {{6, 5, 3}, {6, 5, 3}, {6, 5, 3}}, 16, 2, 1, false, 0},
      {"hybrid 12-7-4 ×2 D=24", wsf::GraphMode::Hybrid, {{12, 7, 4}, {12, 7, 4}}, 24, 2, 3, false, 0},
      {"virtual node mixed 30-16-16-2 + 30-9-16-2 D=16", wsf::GraphMode::Virtual, {{30, 16, 16, 2}, {30, 9, 16, 2}}, 16, 2, 2, false, 0},
  };
  int n = 0, fails = 0;
  std::mt19937 rng(11);
  std::normal_distribution<double> nd;
  for (const Case& c : cases) {
    RtConfig cfg;
    cfg.D = c.D;
    cfg.layers = c.layers;
    cfg.heads = c.heads;
    cfg.mode = c.mode;
    cfg.slots.input_slots = c.widths[0].front();
    cfg.slots.hidden_slots = static_cast<int>(c.widths[0].size()) - 2;
    cfg.slots.output_slots = c.widths[0].back();
    cfg.recompute = c.recompute;
    cfg.chunk_rows = c.chunk_rows;
    // Parameters: the engine's own seeded initialisation (float), shared by both precisions.
    RtEngine<wsf::CpuOps<float>> init(cfg);
    if (!init.init(7).is_ok()) {
      std::printf("FAIL %s: init\n", c.name);
      ++fails;
      continue;
    }
    std::vector<float> params(static_cast<size_t>(init.num_params()));
    init.get_params(params.data());
    int64_t P = 0;
    for (const auto& w : c.widths)
      for (size_t l = 0; l + 1 < w.size(); ++l) P += static_cast<int64_t>(w[l]) * w[l + 1] + w[l + 1];
    std::vector<double> xt(P), target(P), t(c.widths.size());
    for (auto& v : xt) v = 0.3 * nd(rng);
    for (auto& v : target) v = 0.3 * nd(rng);
    for (size_t g = 0; g < t.size(); ++g) t[g] = 0.15 + 0.7 * static_cast<double>(g) / static_cast<double>(t.size());

    wsf::set_num_threads(1);
    const Run f1 = run<float>(cfg, c.widths, params, xt, t, target);
    wsf::set_num_threads(3);
    const Run f3 = run<float>(cfg, c.widths, params, xt, t, target);
    const Run d = run<double>(cfg, c.widths, params, xt, t, target);
    ++n;
    if (!f1.error.empty() || !f3.error.empty() || !d.error.empty()) {
      std::printf("FAIL %s: %s%s%s\n", c.name, f1.error.c_str(), f3.error.c_str(), d.error.c_str());
      ++fails;
      continue;
    }
    const double eo = rel_err(f1.out, d.out), ex = rel_err(f1.dxt, d.dxt), eg = rel_err(f1.grads, d.grads);
    const bool same = f1.out == f3.out && f1.dxt == f3.dxt && f1.grads == f3.grads;
    const bool ok = eo < 1e-5 && ex < 1e-5 && eg < 1e-5 && same;
    std::printf("%s %s: output %.2e, input gradient %.2e, parameter gradients %.2e (vs double); 1 vs 3 threads %s\n",
                ok ? "ok  " : "FAIL", c.name, eo, ex, eg, same ? "bitwise identical" : "DIFFER");
    if (!ok) ++fails;
  }
  std::printf("engine check: %d cases, %d failures\n", n, fails);
  return fails ? 1 : 0;
}
