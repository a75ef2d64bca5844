// The flow-matching training step resident on the engine's device (DESIGN.md "The native engine": parameters,
// optimiser state and the training weights on the device, a step issued with a handful of calls).
//
// One step for x1-prediction (METHOD.md §4–§6), everything after the host's random draws on the backend:
//   x1     = data[idx]  (rows of the resident, already canonical training set)  — or a host batch (OT couplings)
//   x0     = the host's prior draws, canonicalised here when asked (Normalized/Geometric)
//   x_t    = geodesic interpolant on the spheres (sphere geometry), else (1 − t)·x0 + t·x1 + σ·N(0, 1)
//   F      = field(x_t / s, t)                                          (s: per-layer scale, optional)
//   x̂1     = x_t + (1 − t)·s·F (precondition) or s·F
//   loss   = geometry loss of canon(x̂1) (or x̂1) against x1, with ∂/∂x̂1 through canonicalisation's backward
//   ∂L/∂F  = ∂L/∂x̂1 · (1 − t)·s (precondition) or · s;  zero_grad, backward, Adam (then the parameters' EMA)
// The host uploads t, x0 (and idx or x1) and reads back two scalars (the loss, checked before the backward, and
// the gradient norm); on CUDA, FlowStep::Mode SyncFree and Graph evaluate that check on the device instead and read
// both back at the end of the step (no wait mid-step; with Graph the step is one recorded CUDA graph). Every op is the one the TypeScript step calls on host arrays — the geometry and
// canonicalisation kernels, and rt_ops' flow_* ops that redo its double arithmetic — so on the CPU both paths give
// the same floats, and on CUDA the same kernels run without the per-call copies and synchronisations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/canonicalize.h"
#include "core/device.h"
#include "core/geometry.h"
#include "core/rt_engine.h"

namespace wsf {

struct FlowStepConfig {
  std::vector<int32_t> widths;  // the flow's architecture n_0 … n_L
  bool sphere = false;          // Geometric: geodesic interpolant and the product-manifold loss
  bool canonical = false;       // Normalized/Geometric: x̂1 is canonicalised before the loss
  GeoMode mode = GeoMode::Accurate;
  float last_norm = 1.0f;       // canonicalisation's last-layer norm
  bool precondition = false;
  double sigma = 0.0;           // σ of the linear path's noise (not used on the sphere)
};

struct FlowStepBatch {
  int64_t B = 0;
  const int32_t* idx = nullptr;  // host [B]: rows of the resident data as x1 …
  const float* x1 = nullptr;     // … or host [B·P] (exactly one of idx, x1)
  const float* x0 = nullptr;     // host [B·P] prior draws (or coupled start points); null: drawn on the device
                                 // from the prior of set_prior_* with the seeds below
  const int32_t* prior_seeds = nullptr;  // device prior: 2 words (gaussian, zoo) or 2 per row (mixture): hi, lo
  const int32_t* prior_comp = nullptr;   // mixture: [B] component of each row
  bool canonicalize_x0 = false;  // canonicalise x0 on the device first
  const float* t = nullptr;      // host [B]
  uint64_t noise_seed = 0;       // linear path: noise = σ·N(0, 1) from fill_normal(noise_seed)
};

template <class Ops>
class FlowStep {
 public:
  explicit FlowStep(RtEngine<Ops>& engine) : e_(engine) {
    if constexpr (Ops::device == Device::Cuda) mode_ = static_cast<Mode>(flow_step_mode_env());
  }
  FlowStep(const FlowStep&) = delete;
  FlowStep& operator=(const FlowStep&) = delete;
  ~FlowStep() { free_all(); }

  static constexpr Device kDevice = Ops::device;

  // Sets the flow's step; `scale` (P values, may be null) is the per-layer input scale. Keeps resident data only
  // when the architecture is unchanged.
  Status configure(const FlowStepConfig& c, const float* scale) {
    GeometryLayout layout;
    WSF_RETURN_IF_ERROR(GeometryLayout::build(c.widths, !c.sphere, &layout));
    if (!(c.sigma >= 0) || !std::isfinite(c.sigma)) return Status(Code::Invalid, "sigma must be finite and >= 0");
    if (!(c.last_norm > 0) || !std::isfinite(c.last_norm)) return Status(Code::Invalid, "lastNorm must be finite and > 0");
    if (c.widths != cfg_.widths) {
      clear_data();
      clear_prior();
    }
    free_batch();
    invalidate_graph();
    release(scale_);
    scale_ = nullptr;
    layout_ = std::move(layout);
    cfg_ = c;
    P_ = layout_.P();
    if (kDevice == Device::Cuda) {
      WSF_RETURN_IF_ERROR(layout_.device_table(&table_));
      WSF_RETURN_IF_ERROR(layout_.device_layers(&layers_));
    } else {
      table_ = layout_.host_table();
      layers_ = layout_.host_layers();
    }
    if (scale != nullptr) {
      WSF_RETURN_IF_ERROR(alloc(&scale_, P_));
      WSF_RETURN_IF_ERROR(ops().upload(scale_, scale, P_));
    }
    configured_ = true;
    return Status::ok();
  }

  // The training set (n networks × P, canonical for the Normalized/Geometric flows). On the CPU the array is used
  // in place (`borrowed`: the caller keeps it alive and unchanged); on CUDA it is copied to the device once.
  Status set_data(const float* data, int64_t n) {
    if (!configured_) return Status(Code::Invalid, "configure the flow step before setting its data");
    invalidate_graph();
    clear_data();
    if (n <= 0) return Status(Code::Invalid, "the training set is empty");
    if (kDevice == Device::Cpu) {
      data_ = const_cast<float*>(data);
    } else {
      WSF_RETURN_IF_ERROR(alloc(&owned_data_, n * P_));
      WSF_RETURN_IF_ERROR(ops().upload(owned_data_, data, n * P_));
      WSF_RETURN_IF_ERROR(ops().check());
      data_ = owned_data_;
    }
    rows_ = n;
    return Status::ok();
  }
  void clear_data() {
    release(owned_data_);
    owned_data_ = nullptr;
    data_ = nullptr;
    rows_ = 0;
  }

  // The exponential moving average of the parameters, kept on the device and updated after every step:
  // ema = decay·ema + (1 − decay)·params (ops ema_update). `init` holds num_params() values.
  Status set_ema(const float* init, double decay) {
    if (!(decay >= 0 && decay <= 1)) return Status(Code::Invalid, "the EMA decay must be in [0, 1]");
    invalidate_graph();  // the decay is a recorded kernel argument
    const int64_t n = e_.num_params();
    if (ema_ == nullptr) WSF_RETURN_IF_ERROR(alloc(&ema_, n));
    WSF_RETURN_IF_ERROR(ops().upload(ema_, init, n));
    ema_decay_ = decay;
    recount();
    return ops().check();
  }
  Status get_ema(float* out) {
    if (ema_ == nullptr) return Status(Code::Invalid, "no EMA on the device (set_ema)");
    WSF_RETURN_IF_ERROR(ops().download(out, ema_, e_.num_params()));
    return ops().check();
  }

  // ---- the prior drawn on the device (the host's samplePrior / drawMixtureComponents, same draws) ----
  // N(mean, std²) for every parameter: one fill_normal stream per batch.
  Status set_prior_gaussian(double mean, double stddev) {
    clear_prior();
    prior_ = Prior::Gaussian;
    prior_mean_ = mean;
    prior_std_ = stddev;
    return Status::ok();
  }
  // Fitted Gaussians: K components with means (K×P) and, when `basis` is given, rows row0[c] … row0[c+1]−1 of the
  // basis (R×P, R = row0[K]) as component c's factor; without a basis, isotropic `iso_std` around each mean.
  // `per_row` (the mixture prior): each row has its own component (batch.prior_comp) and noise stream (two seed
  // words per row); otherwise (the zoo prior, K = 1) one stream for the whole batch's coefficients.
  Status set_prior_fit(const float* means, int64_t K, const float* basis, const int32_t* row0, double iso_std,
                       bool per_row) {
    if (!configured_) return Status(Code::Invalid, "configure the flow step before its prior");
    if (K < 1 || (!per_row && K != 1)) return Status(Code::Invalid, "a fitted prior needs K >= 1 components (K = 1 without per-row components)");
    if (basis == nullptr && !per_row) return Status(Code::Invalid, "an isotropic fitted prior is a mixture (per-row components)");
    std::vector<int32_t> r0(static_cast<size_t>(K) + 1, 0);
    std::vector<int32_t> rows_of(static_cast<size_t>(K), 0);
    if (basis != nullptr) {
      if (row0[0] != 0) return Status(Code::Invalid, "basis row offsets must start at 0");
      for (int64_t c = 0; c <= K; ++c) r0[static_cast<size_t>(c)] = row0[c];
      for (int64_t c = 0; c < K; ++c) {
        if (row0[c + 1] < row0[c]) return Status(Code::Invalid, "basis row offsets must not decrease");
        rows_of[static_cast<size_t>(c)] = row0[c + 1] - row0[c];
      }
    }
    clear_prior();
    rows_of_ = std::move(rows_of);
    const int64_t R = basis != nullptr ? r0[static_cast<size_t>(K)] : 0;
    WSF_RETURN_IF_ERROR(alloc(&prior_means_, K * P_));
    WSF_RETURN_IF_ERROR(ops().upload(prior_means_, means, K * P_));
    if (basis != nullptr && R > 0) {
      WSF_RETURN_IF_ERROR(alloc(&prior_basis_, R * P_));
      WSF_RETURN_IF_ERROR(ops().upload(prior_basis_, basis, R * P_));
    }
    WSF_RETURN_IF_ERROR(ops().alloc_i32(&prior_row0_, K + 1));
    WSF_RETURN_IF_ERROR(ops().upload_i32(prior_row0_, r0.data(), K + 1));
    prior_K_ = K;
    prior_basis_given_ = basis != nullptr;
    prior_std_ = iso_std;
    prior_ = per_row ? Prior::Mixture : Prior::Zoo;
    int64_t mmax = 1;
    for (int32_t m : rows_of_) mmax = std::max<int64_t>(mmax, m);
    prior_ld_ = prior_basis_given_ ? mmax : P_;
    prior_bytes_ = static_cast<int64_t>(sizeof(float)) * (K + R) * P_ + static_cast<int64_t>(sizeof(int32_t)) * (K + 1);
    free_batch();  // batch buffers are sized with the prior's coefficient rows
    return ops().check();
  }
  void clear_prior() {
    invalidate_graph();  // the prior's mean and spread are recorded kernel arguments
    release(prior_means_);
    release(prior_basis_);
    if (prior_row0_ != nullptr) ops().release(prior_row0_);
    prior_means_ = prior_basis_ = nullptr;
    prior_row0_ = nullptr;
    prior_ = Prior::None;
    prior_K_ = 0;
    prior_bytes_ = 0;
    prior_ld_ = 1;
    rows_of_.clear();
    recount();
  }

  // Device bytes this object holds (resident data, batch buffers, scale); borrowed CPU data is not counted.
  int64_t bytes_held() const { return held_; }

  // One training step; *loss and *grad_norm receive the step's loss and the gradient norm before clipping.
  // The engine's graph must be B copies of the configured architecture (set by the caller).
  Status step(const FlowStepBatch& b, const AdamHyper& h, double clip, double* loss, double* grad_norm) {
    WSF_RETURN_IF_ERROR(check_batch(b));
    if constexpr (kDevice == Device::Cuda) {
      if (mode_ != Mode::Plain && !e_.profiling() && !device_profile_enabled()) return step_sync_free(b, h, clip, loss, grad_norm);
    }
    const int64_t B = b.B;
    WSF_RETURN_IF_ERROR(ensure_batch(B));
    typename RtEngine<Ops>::DeviceIo io{};
    WSF_RETURN_IF_ERROR(e_.device_io(true, &io));
    Ops& o = ops();
    const int64_t n = B * P_;
    Status s = Status::ok();
    auto keep = [&s](const Status& x) {
      if (s.is_ok() && !x.is_ok()) s = x;
    };
    if (b.x0 == nullptr) {
      e_.profiled("flow.prior", [&] {
        if (prior_ == Prior::Mixture) {
          host_ints_.resize(static_cast<size_t>(4 * B));
          stage_prior_ints(b, B, host_ints_.data());
          keep(o.upload_i32(prior_ints_, host_ints_.data(), 4 * B));
        }
        draw_prior(B, seed_of(b.prior_seeds), nullptr);
      });
    }
    e_.profiled("flow.inputs", [&] {
      keep(o.upload(io.t, b.t, B));
      if (b.idx != nullptr) keep(o.upload_i32(idx_, b.idx, B));
      else keep(o.upload(x1_, b.x1, n));
      if (b.x0 != nullptr) keep(o.upload(x0_, b.x0, n));
      keep(enqueue_path(b, B, io, nullptr));
    });
    WSF_RETURN_IF_ERROR(s);
    WSF_RETURN_IF_ERROR(e_.forward_device(true));
    float host_loss = 0;
    e_.profiled("flow.loss", [&] {
      keep(enqueue_loss(B, io));
      keep(o.download(&host_loss, loss_, 1));
    });
    WSF_RETURN_IF_ERROR(s);
    WSF_RETURN_IF_ERROR(o.check());
    *loss = host_loss;
    if (!std::isfinite(host_loss)) return nonfinite_loss(host_loss);
    e_.profiled("flow.grad", [&] { o.flow_to_dF(io.dxhat, io.t, scale_, cfg_.precondition, B, P_); });
    WSF_RETURN_IF_ERROR(e_.zero_grad());
    WSF_RETURN_IF_ERROR(e_.backward_device());
    WSF_RETURN_IF_ERROR(e_.adam_step(h, clip, grad_norm));
    if (ema_ != nullptr) {
      e_.profiled("flow.ema", [&] { o.ema_update(ema_, e_.params_device(), e_.num_params(), ema_decay_); });
    }
    return Status::ok();
  }

  // How step() runs on CUDA. Plain: as above, the loss and the gradient norm read back mid-step (two waits) and
  // the ops enqueued one by one. SyncFree: the step's inputs go up in one batch of asynchronous copies from pinned
  // memory, the whole step is enqueued without a wait — the loss check and the clipping scale are evaluated on the
  // device (CudaOps::step_gate: a step whose loss or gradient norm is not finite leaves the parameters, Adam state and
  // EMA untouched, as Plain does) — and the loss and norm come back at the end. Graph: SyncFree, with the enqueued
  // step recorded once as a CUDA graph and replayed (one launch per step instead of hundreds). The same kernels
  // with the same arguments in the same order: all three give the same floats. A graph is recorded at the first
  // step after a step that allocated nothing (its buffers are then settled) and re-recorded whenever any device
  // allocation or free happened since (device_alloc_epoch) or the step's shape or settings change; profiling
  // (WSF_PROFILE, device profiling) runs Plain. Default: the environment's WSF_CUDA_GRAPH (0/unset: Plain,
  // "sync": SyncFree, 1: Graph). The CPU always runs Plain.
  enum class Mode { Plain = 0, SyncFree = 1, Graph = 2 };
  void set_mode(Mode m) {
    mode_ = m;
    invalidate_graph();
  }
  Mode mode() const { return mode_; }
  struct GraphStats {
    int64_t sync_free_steps = 0, captures = 0, replays = 0, capture_failures = 0;
  };
  const GraphStats& graph_stats() const { return stats_; }

  // The sampler on the device: from the (canonical) start points x0 (host, B·P) over the time grid (G points), the
  // field in inference mode, x̂1 = canon(to_x1(F)), and the velocity
  //   anchored (the published sampler): v = x̂1 − x0;  else v = Log_x(x̂1)/max(1 − t, 1e-4) on the sphere
  //   geometry, (x̂1 − x)/max(1 − t, 1e-4) otherwise;
  // move(x, v, dt) = the sphere's Euler step (dt rounded to float, as the host call) or x + dt·v. Per step (solvers.ts):
  //   euler     x ← move(x, v(x, t), dt)
  //   midpoint  x ← move(x, v(move(x, v(x, t), dt/2), min(t + dt/2, tMax)), dt)
  //   rk4       k1..k4 at t, t + dt/2 (twice), t + dt (each capped at tMax = 1 − 1e-4), each from x moved along the
  //             previous stage; x ← move(x, (k1 + 2·k2 + 2·k3 + k4)/6, dt) — except, for a field singular at t = 1
  //             (rk4_midpoint_last: the velocity (x̂1 − x)/(1 − t) of a plain x1 field, neither preconditioned nor
  //             anchored), the step reaching past tMax, which takes the midpoint rule: k4 there would divide the
  //             field's error at its stage by 1e-4
  // The end state is canonicalised when `canonical_end`, then copied to `out` (host, B·P). The host sampler's
  // operations, so the same networks.
  enum class Solver { Euler = 0, Midpoint = 1, Rk4 = 2 };
  Status sample(const float* x0, int64_t B, const double* grid, int64_t G, bool anchored, bool canonical_end,
                float* out, Solver solver = Solver::Euler) {
    if (!configured_) return Status(Code::Invalid, "configure the flow step first");
    const RtGraph& g = e_.graph();
    if (B <= 0 || g.G != B || g.P != B * P_) return Status(Code::Shape, "the engine's graph must hold the batch to sample");
    if (G < 2) return Status(Code::Invalid, "the time grid needs at least 2 points");
    WSF_RETURN_IF_ERROR(ensure_batch(B));
    const int64_t n = B * P_;
    if (solver != Solver::Euler && stage_.size() < 5) {
      // k1 … k4 and a moved state (allocated on the first midpoint/RK4 sampling, kept with the batch buffers).
      stage_.assign(5, nullptr);
      for (float*& p : stage_) WSF_RETURN_IF_ERROR(batch_alloc(&p, n));
      recount();
    }
    typename RtEngine<Ops>::DeviceIo io{};
    WSF_RETURN_IF_ERROR(e_.device_io(false, &io));
    Ops& o = ops();
    void* const st = stream();
    Status s = Status::ok();
    auto keep = [&s](const Status& x) {
      if (s.is_ok() && !x.is_ok()) s = x;
    };
    // Every field evaluation's time, in the order the solver asks for them (the stage times of solvers.ts), is sent
    // up in chunks of kTimeChunk evaluations × B rows: one host wait per chunk instead of one per evaluation, so the
    // host enqueues the next evaluations while the device runs (the loop has no other wait).
    const bool singular = !anchored && !cfg_.precondition;
    const std::vector<double> times = eval_times(grid, G, solver, singular);
    if (times_ == nullptr) {
      WSF_RETURN_IF_ERROR(batch_alloc(&times_, kTimeChunk * B));
      recount();
    }
    std::vector<float> tt;
    size_t ev = 0;  // the next evaluation
    // v ← the velocity at (y, times[ev]); ev advances.
    auto velocity = [&](const float* y, float* v) -> Status {
      const double t = times[ev];
      const int64_t slot = static_cast<int64_t>(ev) % kTimeChunk;
      if (slot == 0) {
        const size_t m = std::min<size_t>(static_cast<size_t>(kTimeChunk), times.size() - ev);
        tt.resize(m * static_cast<size_t>(B));
        for (size_t j = 0; j < m; ++j) std::fill_n(tt.begin() + static_cast<std::ptrdiff_t>(j * B), B, static_cast<float>(times[ev + j]));
        WSF_RETURN_IF_ERROR(o.upload(times_, tt.data(), static_cast<int64_t>(tt.size())));
      }
      ++ev;
      e_.profiled("flow.inputs", [&] {
        o.copy(io.t, times_ + slot * B, B);
        if (scale_ != nullptr) o.flow_input(io.xt, y, scale_, B, P_);
        else o.copy(io.xt, y, n);
      });
      WSF_RETURN_IF_ERROR(s);
      WSF_RETURN_IF_ERROR(e_.forward_device(false));
      e_.profiled("flow.velocity", [&] {
        o.flow_to_x1(xhat_, io.xhat, y, io.t, scale_, cfg_.precondition, B, P_);
        const float* pred = xhat_;
        if (cfg_.canonical) {
          keep(canonicalize_forward(kDevice, xc_, xhat_, layers_, B, cfg_.last_norm, st));
          pred = xc_;
        }
        const double inv = 1.0 / std::max(1.0 - t, 1e-4);
        if (anchored) {
          o.flow_velocity(v, pred, x0_, 1.0, n);
        } else if (cfg_.sphere) {
          keep(geometry_logmap_forward(kDevice, v, y, pred, table_, B, cfg_.mode, st));
          o.scale(v, n, inv);
        } else {
          o.flow_velocity(v, pred, y, inv, n);
        }
      });
      return s;
    };
    auto move = [&](float* dst, const float* y, const float* v, double dt) -> Status {
      if (cfg_.sphere) return geometry_euler_step_forward(kDevice, dst, y, v, table_, B, static_cast<float>(dt), cfg_.mode, st);
      o.flow_axpy(dst, y, v, dt, n);
      return Status::ok();
    };
    float* x = xt_;  // state
    float* next = noise_;
    float* v = dxc_;
    WSF_RETURN_IF_ERROR(o.upload(x0_, x0, n));
    o.copy(x, x0_, n);
    for (int64_t k = 0; k + 1 < G; ++k) {
      const double dt = grid[k + 1] - grid[k];
      if (solver == Solver::Euler) {
        WSF_RETURN_IF_ERROR(velocity(x, v));
        WSF_RETURN_IF_ERROR(move(next, x, v, dt));
      } else if (solver == Solver::Midpoint || rk4_midpoint_last(grid[k], dt, solver, singular)) {
        float* ym = stage_[4];
        WSF_RETURN_IF_ERROR(velocity(x, v));
        WSF_RETURN_IF_ERROR(move(ym, x, v, dt / 2));
        WSF_RETURN_IF_ERROR(velocity(ym, v));
        WSF_RETURN_IF_ERROR(move(next, x, v, dt));
      } else {
        float *k1 = stage_[0], *k2 = stage_[1], *k3 = stage_[2], *k4 = stage_[3], *y = stage_[4];
        WSF_RETURN_IF_ERROR(velocity(x, k1));
        WSF_RETURN_IF_ERROR(move(y, x, k1, dt / 2));
        WSF_RETURN_IF_ERROR(velocity(y, k2));
        WSF_RETURN_IF_ERROR(move(y, x, k2, dt / 2));
        WSF_RETURN_IF_ERROR(velocity(y, k3));
        WSF_RETURN_IF_ERROR(move(y, x, k3, dt));
        WSF_RETURN_IF_ERROR(velocity(y, k4));
        o.flow_rk4_combine(v, k1, k2, k3, k4, n);
        WSF_RETURN_IF_ERROR(move(next, x, v, dt));
      }
      std::swap(x, next);
    }
    if (canonical_end) {
      WSF_RETURN_IF_ERROR(canonicalize_forward(kDevice, xc_, x, layers_, B, cfg_.last_norm, st));
      x = xc_;
    }
    WSF_RETURN_IF_ERROR(o.download(out, x, n));
    return o.check();
  }

 private:
  enum class Prior { None, Gaussian, Zoo, Mixture };
  // The sampler's time table on the device holds this many evaluations' times (× B rows).
  static constexpr int64_t kTimeChunk = 16;

  // The times at which sample() evaluates the field, in its order: per grid step from t to t + dt, euler: t;
  // midpoint: t, min(t + dt/2, tMax); rk4: t, then t + dt/2 twice and t + dt, each capped at tMax = 1 − 1e-4.
  static std::vector<double> eval_times(const double* grid, int64_t G, Solver solver, bool singular) {
    const double t_max = 1.0 - 1e-4;
    std::vector<double> out;
    for (int64_t k = 0; k + 1 < G; ++k) {
      const double t = grid[k], dt = grid[k + 1] - t;
      out.push_back(t);
      if (solver == Solver::Midpoint || rk4_midpoint_last(t, dt, solver, singular)) {
        out.push_back(std::min(t + dt / 2, t_max));
      } else if (solver == Solver::Rk4) {
        out.push_back(std::min(t + dt / 2, t_max));
        out.push_back(std::min(t + dt / 2, t_max));
        out.push_back(std::min(t + dt, t_max));
      }
    }
    return out;
  }

  // RK4's step from t over dt takes the midpoint rule instead when the field is singular at t = 1 and the step's last
  // stage would lie past tMax (solvers.ts: the same rule).
  static bool rk4_midpoint_last(double t, double dt, Solver solver, bool singular) {
    return solver == Solver::Rk4 && singular && t + dt > 1.0 - 1e-4;
  }

  static uint64_t seed_of(const int32_t* w) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(w[0])) << 32) | static_cast<uint64_t>(static_cast<uint32_t>(w[1]));
  }

  Status check_batch(const FlowStepBatch& b) const {
    if (!configured_) return Status(Code::Invalid, "configure the flow step first");
    const int64_t B = b.B;
    const RtGraph& g = e_.graph();
    if (B <= 0 || g.G != B || g.P != B * P_) {
      return Status(Code::Shape, "the engine's graph must hold the batch: " + std::to_string(B) + " networks of " +
                                     std::to_string(P_) + " parameters (graph: " + std::to_string(g.G) + " networks, " +
                                     std::to_string(g.P) + " parameters)");
    }
    if ((b.idx == nullptr) == (b.x1 == nullptr)) return Status(Code::Invalid, "give exactly one of idx and x1");
    if (b.t == nullptr) return Status(Code::Invalid, "t is required");
    if (b.x0 == nullptr) {
      if (prior_ == Prior::None) return Status(Code::Invalid, "x0 is required: no prior is set on the device (set_prior_*)");
      if (b.prior_seeds == nullptr) return Status(Code::Invalid, "the device prior needs its seed words");
      if (prior_ == Prior::Mixture) {
        if (b.prior_comp == nullptr) return Status(Code::Invalid, "the mixture prior needs each row's component");
        for (int64_t i = 0; i < B; ++i) {
          if (b.prior_comp[i] < 0 || b.prior_comp[i] >= prior_K_) {
            return Status(Code::Invalid, "component[" + std::to_string(i) + "] = " + std::to_string(b.prior_comp[i]) +
                                             " is outside the prior's " + std::to_string(prior_K_) + " components");
          }
        }
      }
    }
    if (b.idx != nullptr) {
      if (data_ == nullptr) return Status(Code::Invalid, "idx given but no training set is resident (set_data)");
      for (int64_t i = 0; i < B; ++i) {
        if (b.idx[i] < 0 || b.idx[i] >= rows_) {
          return Status(Code::Invalid, "idx[" + std::to_string(i) + "] = " + std::to_string(b.idx[i]) +
                                           " is outside the resident training set (0 … " + std::to_string(rows_ - 1) + ")");
        }
      }
    }
    return Status::ok();
  }
  static Status nonfinite_loss(float l) {
    return Status(Code::Numeric, "the training loss became " + std::to_string(l) + "; the step was skipped");
  }

  // The mixture prior's per-step integers [components | coefficient counts | seed words] into dst (4·B).
  void stage_prior_ints(const FlowStepBatch& b, int64_t B, int32_t* dst) const {
    for (int64_t i = 0; i < B; ++i) {
      const int32_t c = b.prior_comp[i];
      dst[i] = c;
      dst[B + i] = prior_basis_given_ ? std::max<int32_t>(1, rows_of_[static_cast<size_t>(c)]) : static_cast<int32_t>(P_);
      dst[2 * B + 2 * i] = b.prior_seeds[2 * i];
      dst[2 * B + 2 * i + 1] = b.prior_seeds[2 * i + 1];
    }
  }

  // x0 ← B draws of the device prior (enqueued; the mixture's integers already in prior_ints_). The Gaussian and
  // zoo priors' seed is `seed`, or read from the device at seed_dev when given (CUDA, sync-free mode).
  void draw_prior(int64_t B, uint64_t seed, const uint64_t* seed_dev) {
    Ops& o = ops();
    const int64_t n = B * P_;
    if (prior_ == Prior::Gaussian) {
      normal(x0_, n, seed, seed_dev, prior_mean_, prior_std_);
    } else if (prior_ == Prior::Zoo) {
      const int64_t m = rows_of_[0];
      normal(eps_, B * m, seed, seed_dev, 0.0, 1.0);
      o.gaussian_fit_draw(x0_, eps_, m, nullptr, prior_means_, prior_basis_, prior_row0_, B, P_);
    } else {
      const double sd = prior_basis_given_ ? 1.0 : prior_std_;
      o.fill_normal_rows(eps_, B, prior_ld_, prior_ints_ + B, prior_ints_ + 2 * B, 0.0, sd);
      o.gaussian_fit_draw(x0_, eps_, prior_ld_, prior_ints_, prior_means_, prior_basis_given_ ? prior_basis_ : nullptr,
                          prior_row0_, B, P_);
    }
  }
  void normal(float* out, int64_t n, uint64_t seed, const uint64_t* seed_dev, double mean, double sd) {
    if constexpr (kDevice == Device::Cuda) {
      if (seed_dev != nullptr) {
        ops().fill_normal_dev(out, n, seed_dev, mean, sd);
        return;
      }
    }
    ops().fill_normal(out, n, seed, mean, sd);
  }

  // Enqueues x1 (gathered from the resident set when idx), x0's canonicalisation, the interpolant x_t and the
  // field's input, from x0, x1 / idx and t already on the device. The linear path's noise seed: b.noise_seed, or
  // read at noise_seed_dev.
  Status enqueue_path(const FlowStepBatch& b, int64_t B, const typename RtEngine<Ops>::DeviceIo& io,
                      const uint64_t* noise_seed_dev) {
    Ops& o = ops();
    void* const st = stream();
    const int64_t n = B * P_;
    if (b.idx != nullptr) o.gather_rows(x1_, data_, idx_, B, static_cast<int>(P_));
    if (b.canonicalize_x0) WSF_RETURN_IF_ERROR(canonicalize_forward(kDevice, x0_, x0_, layers_, B, cfg_.last_norm, st));
    if (cfg_.sphere) {
      WSF_RETURN_IF_ERROR(geometry_interpolate_forward(kDevice, xt_, x0_, x1_, io.t, table_, B, cfg_.mode, st));
    } else {
      normal(noise_, n, b.noise_seed, noise_seed_dev, 0.0, cfg_.sigma);
      o.flow_path(xt_, x0_, x1_, noise_, io.t, B, P_);
    }
    if (scale_ != nullptr) o.flow_input(io.xt, xt_, scale_, B, P_);
    else o.copy(io.xt, xt_, n);
    return Status::ok();
  }
  // Enqueues x̂1 from the field's output, the geometry loss (into loss_) and ∂L/∂x̂1 (into io.dxhat).
  Status enqueue_loss(int64_t B, const typename RtEngine<Ops>::DeviceIo& io) {
    void* const st = stream();
    ops().flow_to_x1(xhat_, io.xhat, xt_, io.t, scale_, cfg_.precondition, B, P_);
    if (cfg_.canonical) {
      WSF_RETURN_IF_ERROR(canonicalize_forward(kDevice, xc_, xhat_, layers_, B, cfg_.last_norm, st));
      WSF_RETURN_IF_ERROR(geometry_loss_forward(kDevice, loss_, per_, dxc_, xc_, x1_, table_, B, cfg_.mode, st));
      return canonicalize_backward(kDevice, io.dxhat, xhat_, dxc_, work_, layers_, B, cfg_.last_norm, st);
    }
    return geometry_loss_forward(kDevice, loss_, per_, io.dxhat, xhat_, x1_, table_, B, cfg_.mode, st);
  }

  // ---- sync-free mode (CUDA) ----
  // Device block (doubles): [0, 8) adam_constants, [8] the prior's seed, [9] the noise seed, [10] Σg², [11] the gate
  // (two floats). Pinned staging mirrors [0, 10), then t (B floats), idx (B), the mixture's integers (4·B); the
  // pinned result holds the loss (a float at 0) and Σg² (a double at 8).
  static constexpr int64_t kDevDoubles = 12;
  struct GraphKey {
    int64_t B = 0;
    bool idx = false, host_x0 = false, canon_x0 = false, ema = false;
    int prior = 0;
    bool operator==(const GraphKey& o) const {
      return B == o.B && idx == o.idx && host_x0 == o.host_x0 && canon_x0 == o.canon_x0 && ema == o.ema && prior == o.prior;
    }
  };

  Status step_sync_free(const FlowStepBatch& b, const AdamHyper& h, double clip, double* loss, double* grad_norm) {
    const int64_t B = b.B, n = B * P_;
    WSF_RETURN_IF_ERROR(ensure_batch(B));
    typename RtEngine<Ops>::DeviceIo io{};
    WSF_RETURN_IF_ERROR(e_.device_io(true, &io));
    WSF_RETURN_IF_ERROR(ensure_staging(B, b.x1 != nullptr || b.x0 != nullptr));
    Ops& o = ops();
    // Stage this step's inputs and send them up (asynchronously, from pinned memory).
    double* pd = static_cast<double*>(pin_);
    adam_constants(h, e_.step_count() + 1, clip, pd);
    const bool host_x0 = b.x0 != nullptr;
    const uint64_t prior_seed = host_x0 ? 0 : seed_of(b.prior_seeds);
    const uint64_t noise_seed = b.noise_seed;
    std::memcpy(pd + 8, &prior_seed, sizeof prior_seed);
    std::memcpy(pd + 9, &noise_seed, sizeof noise_seed);
    float* pt = reinterpret_cast<float*>(pd + 10);
    int32_t* pidx = reinterpret_cast<int32_t*>(pt + B);
    int32_t* pints = pidx + B;
    std::memcpy(pt, b.t, sizeof(float) * static_cast<size_t>(B));
    o.copy_async(dev_, pd, 10 * static_cast<int64_t>(sizeof(double)), true);
    o.copy_async(io.t, pt, B * static_cast<int64_t>(sizeof(float)), true);
    if (b.idx != nullptr) {
      std::memcpy(pidx, b.idx, sizeof(int32_t) * static_cast<size_t>(B));
      o.copy_async(idx_, pidx, B * static_cast<int64_t>(sizeof(int32_t)), true);
    } else {
      std::memcpy(pin_x_, b.x1, sizeof(float) * static_cast<size_t>(n));
      o.copy_async(x1_, pin_x_, n * static_cast<int64_t>(sizeof(float)), true);
    }
    if (host_x0) {
      float* px0 = pin_x_ + n;
      std::memcpy(px0, b.x0, sizeof(float) * static_cast<size_t>(n));
      o.copy_async(x0_, px0, n * static_cast<int64_t>(sizeof(float)), true);
    } else if (prior_ == Prior::Mixture) {
      stage_prior_ints(b, B, pints);
      o.copy_async(prior_ints_, pints, 4 * B * static_cast<int64_t>(sizeof(int32_t)), true);
    }
    const GraphKey key{B, b.idx != nullptr, host_x0, b.canonicalize_x0, ema_ != nullptr, static_cast<int>(prior_)};
    const uint64_t epoch = Ops::alloc_epoch();
    bool done = false;
    if (mode_ == Mode::Graph) {
      if (graph_ != nullptr && key == graph_key_ && epoch == graph_epoch_) {
        o.graph_launch(graph_);
        ++stats_.replays;
        done = true;
      } else if (settled_ && key == settled_key_ && epoch == settled_epoch_ && !(failed_ && key == failed_key_)) {
        invalidate_graph();
        void* exec = nullptr;
        Status cs = o.capture_begin();
        if (cs.is_ok()) {
          const Status body = enqueue_step(b, B, io, host_x0);
          cs = o.capture_end(&exec);
          if (cs.is_ok()) cs = body;
        }
        if (cs.is_ok() && Ops::alloc_epoch() == epoch) {
          graph_ = exec;
          graph_key_ = key;
          graph_epoch_ = epoch;
          ++stats_.captures;
          o.graph_launch(graph_);
          ++stats_.replays;
          done = true;
        } else {
          o.graph_free(exec);
          failed_ = true;  // run this shape uncaptured until it changes
          failed_key_ = key;
          ++stats_.capture_failures;
        }
      }
    }
    if (!done) WSF_RETURN_IF_ERROR(enqueue_step(b, B, io, host_x0));
    ++stats_.sync_free_steps;
    o.copy_async(pin_out_, loss_, static_cast<int64_t>(sizeof(float)), false);
    o.copy_async(static_cast<char*>(pin_out_) + 8, dev_ + 10, static_cast<int64_t>(sizeof(double)), false);
    WSF_RETURN_IF_ERROR(o.check());
    // A step that allocated nothing settles its shape: the next one with the same key and epoch is recorded.
    settled_ = Ops::alloc_epoch() == epoch;
    settled_key_ = key;
    settled_epoch_ = epoch;
    float l = 0;
    double sumsq = 0;
    std::memcpy(&l, pin_out_, sizeof l);
    std::memcpy(&sumsq, static_cast<char*>(pin_out_) + 8, sizeof sumsq);
    *loss = l;
    if (!std::isfinite(l)) return nonfinite_loss(l);
    const double norm = std::sqrt(sumsq);
    if (grad_norm != nullptr) *grad_norm = norm;
    if (!std::isfinite(norm)) return RtEngine<Ops>::nonfinite_norm(norm);
    e_.commit_step();
    return Status::ok();
  }

  // The whole step after the inputs are on the device, enqueued without a wait (recorded when capturing).
  Status enqueue_step(const FlowStepBatch& b, int64_t B, const typename RtEngine<Ops>::DeviceIo& io, bool host_x0) {
    Ops& o = ops();
    const uint64_t* seeds = reinterpret_cast<const uint64_t*>(dev_ + 8);
    double* sumsq = dev_ + 10;
    float* gate = reinterpret_cast<float*>(dev_ + 11);
    if (!host_x0) draw_prior(B, 0, seeds);
    WSF_RETURN_IF_ERROR(enqueue_path(b, B, io, seeds + 1));
    WSF_RETURN_IF_ERROR(e_.forward_device(true));
    WSF_RETURN_IF_ERROR(enqueue_loss(B, io));
    o.flow_to_dF(io.dxhat, io.t, scale_, cfg_.precondition, B, P_);
    e_.zero_grad_enqueue();
    WSF_RETURN_IF_ERROR(e_.backward_device());
    e_.grad_sumsq_enqueue(sumsq);
    o.step_gate(gate, sumsq, loss_, dev_);
    e_.adam_gated_enqueue(dev_, gate);
    if (ema_ != nullptr) o.ema_update_gated(ema_, e_.params_device(), e_.num_params(), ema_decay_, gate);
    return Status::ok();
  }

  // The device block (once) and the pinned staging for batch B (host x0/x1 staging when `rows`).
  Status ensure_staging(int64_t B, bool rows) {
    if (dev_ == nullptr) {
      float* f = nullptr;
      WSF_RETURN_IF_ERROR(alloc(&f, 2 * kDevDoubles));
      dev_ = reinterpret_cast<double*>(f);
    }
    if (pin_ == nullptr || pin_B_ != B) {
      free_pinned();
      WSF_RETURN_IF_ERROR(ops().host_alloc(&pin_, 10 * 8 + 4 * B + 4 * B + 16 * B));
      WSF_RETURN_IF_ERROR(ops().host_alloc(&pin_out_, 16));
      pin_B_ = B;
    }
    if (rows && pin_x_ == nullptr) {
      void* p = nullptr;
      WSF_RETURN_IF_ERROR(ops().host_alloc(&p, 2 * B * P_ * static_cast<int64_t>(sizeof(float))));
      pin_x_ = static_cast<float*>(p);
    }
    return Status::ok();
  }
  void free_pinned() {
    if constexpr (kDevice == Device::Cuda) {
      ops().host_free(pin_);
      ops().host_free(pin_out_);
      ops().host_free(pin_x_);
    }
    pin_ = pin_out_ = nullptr;
    pin_x_ = nullptr;
    pin_B_ = 0;
  }
  void invalidate_graph() {
    if constexpr (kDevice == Device::Cuda) {
      if (graph_ != nullptr) ops().graph_free(graph_);
    }
    graph_ = nullptr;
    settled_ = false;
    failed_ = false;
  }

  Ops& ops() { return e_.ops(); }
  void* stream() {
    if constexpr (Ops::device == Device::Cuda) return ops().stream();
    return nullptr;
  }
  Status alloc(float** p, int64_t n) {
    WSF_RETURN_IF_ERROR(ops().alloc(p, n > 0 ? n : 1));
    owned_.push_back(*p);
    held_ += static_cast<int64_t>(sizeof(float)) * (n > 0 ? n : 1);
    return Status::ok();
  }
  void release(void* p) {
    if (p == nullptr) return;
    for (size_t i = 0; i < owned_.size(); ++i) {
      if (owned_[i] == p) {
        owned_.erase(owned_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    ops().release(p);
    recount();
  }
  void recount() {
    held_ = 0;
    if (owned_data_ != nullptr) held_ += static_cast<int64_t>(sizeof(float)) * rows_ * P_;
    if (scale_ != nullptr) held_ += static_cast<int64_t>(sizeof(float)) * P_;
    if (ema_ != nullptr) held_ += static_cast<int64_t>(sizeof(float)) * e_.num_params();
    held_ += prior_bytes_;
    held_ += batch_bytes_;
  }
  // Per-batch buffers: x0, x1, x_t, noise, x̂1, canon(x̂1), its loss gradient, canonicalisation's workspace, the
  // per-network losses, the loss, and the row indices.
  Status ensure_batch(int64_t B) {
    if (B == B_) return Status::ok();
    free_batch();
    const int64_t n = B * P_;
    const int64_t nwork = canonicalize_workspace_elems(layers_, B);
    float** bufs[] = {&x0_, &x1_, &xt_, &noise_, &xhat_, &xc_, &dxc_};
    for (float** p : bufs) WSF_RETURN_IF_ERROR(batch_alloc(p, n));
    WSF_RETURN_IF_ERROR(batch_alloc(&work_, nwork));
    // The device prior's coefficients: B rows of prior_ld_ (mixture), or B·m (zoo: m = prior_ld_).
    WSF_RETURN_IF_ERROR(batch_alloc(&eps_, B * std::max<int64_t>(prior_ld_, 1)));
    WSF_RETURN_IF_ERROR(ops().alloc_i32(&prior_ints_, 4 * B));
    batch_bytes_ += static_cast<int64_t>(sizeof(int32_t)) * 4 * B;
    WSF_RETURN_IF_ERROR(batch_alloc(&per_, B));
    WSF_RETURN_IF_ERROR(batch_alloc(&loss_, 1));
    WSF_RETURN_IF_ERROR(ops().alloc_i32(&idx_, B));
    batch_bytes_ += static_cast<int64_t>(sizeof(int32_t)) * B;
    recount();
    B_ = B;
    return Status::ok();
  }
  Status batch_alloc(float** p, int64_t n) {
    WSF_RETURN_IF_ERROR(ops().alloc(p, n > 0 ? n : 1));
    batch_.push_back(*p);
    batch_bytes_ += static_cast<int64_t>(sizeof(float)) * (n > 0 ? n : 1);
    return Status::ok();
  }
  void free_batch() {
    invalidate_graph();
    for (void* p : batch_) ops().release(p);
    batch_.clear();
    if (idx_ != nullptr) ops().release(idx_);
    if (prior_ints_ != nullptr) ops().release(prior_ints_);
    idx_ = prior_ints_ = nullptr;
    x0_ = x1_ = xt_ = noise_ = xhat_ = xc_ = dxc_ = work_ = per_ = loss_ = eps_ = times_ = nullptr;
    stage_.clear();
    batch_bytes_ = 0;
    B_ = 0;
    recount();
  }
  void free_all() {
    free_batch();
    free_pinned();
    clear_data();
    clear_prior();
    for (void* p : owned_) ops().release(p);
    owned_.clear();
    dev_ = nullptr;
    scale_ = nullptr;
    ema_ = nullptr;
    held_ = 0;
  }

  RtEngine<Ops>& e_;
  FlowStepConfig cfg_;
  GeometryLayout layout_;
  SphereTable table_;
  LayerTable layers_;
  bool configured_ = false;
  int64_t P_ = 0, B_ = 0, rows_ = 0, held_ = 0, batch_bytes_ = 0;
  float* data_ = nullptr;        // resident training set (borrowed on the CPU)
  float* owned_data_ = nullptr;  // its device copy (CUDA)
  float* scale_ = nullptr;
  float* ema_ = nullptr;  // the parameters' EMA (set_ema), updated after every step
  double ema_decay_ = 0;
  // The device prior (set_prior_*).
  Prior prior_ = Prior::None;
  double prior_mean_ = 0, prior_std_ = 0;
  float *prior_means_ = nullptr, *prior_basis_ = nullptr, *eps_ = nullptr;
  int32_t *prior_row0_ = nullptr, *prior_ints_ = nullptr;
  int64_t prior_K_ = 0, prior_ld_ = 1, prior_bytes_ = 0;
  bool prior_basis_given_ = false;
  std::vector<int32_t> rows_of_;    // basis rows per component (host)
  std::vector<int32_t> host_ints_;  // staging of the per-step [components | counts | seeds]
  std::vector<float*> stage_;       // the midpoint/RK4 sampler's stages (batch buffers)
  float* times_ = nullptr;          // the sampler's time table: kTimeChunk evaluations × B (a batch buffer)
  float *x0_ = nullptr, *x1_ = nullptr, *xt_ = nullptr, *noise_ = nullptr, *xhat_ = nullptr, *xc_ = nullptr,
        *dxc_ = nullptr, *work_ = nullptr, *per_ = nullptr, *loss_ = nullptr;
  int32_t* idx_ = nullptr;
  std::vector<void*> owned_, batch_;
  // Sync-free mode and its CUDA graph (CUDA only).
  Mode mode_ = Mode::Plain;
  GraphStats stats_;
  double* dev_ = nullptr;  // device block (kDevDoubles)
  void *pin_ = nullptr, *pin_out_ = nullptr;
  float* pin_x_ = nullptr;  // host x1 | x0 staging (2·B·P floats)
  int64_t pin_B_ = 0;
  void* graph_ = nullptr;  // the recorded step (cudaGraphExec_t)
  GraphKey graph_key_, settled_key_, failed_key_;
  uint64_t graph_epoch_ = 0, settled_epoch_ = 0;
  bool settled_ = false, failed_ = false;
};

}  // namespace wsf
