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
// the gradient norm). Every op is the one the TypeScript step calls on host arrays — the geometry and
// canonicalisation kernels, and rt_ops' flow_* ops that redo its double arithmetic — so on the CPU both paths give
// the same floats, and on CUDA the same kernels run without the per-call copies and synchronisations.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/canonicalize.h"
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
  const float* x0 = nullptr;     // host [B·P] prior draws (or coupled start points)
  bool canonicalize_x0 = false;  // canonicalise x0 on the device first
  const float* t = nullptr;      // host [B]
  uint64_t noise_seed = 0;       // linear path: noise = σ·N(0, 1) from fill_normal(noise_seed)
};

template <class Ops>
class FlowStep {
 public:
  explicit FlowStep(RtEngine<Ops>& engine) : e_(engine) {}
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
    if (c.widths != cfg_.widths) clear_data();
    free_batch();
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
  int64_t data_rows() const { return rows_; }

  // The exponential moving average of the parameters, kept on the device and updated after every step:
  // ema = decay·ema + (1 − decay)·params (ops ema_update). `init` holds num_params() values.
  Status set_ema(const float* init, double decay) {
    if (!(decay >= 0 && decay <= 1)) return Status(Code::Invalid, "the EMA decay must be in [0, 1]");
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
  bool has_ema() const { return ema_ != nullptr; }

  // Device bytes this object holds (resident data, batch buffers, scale); borrowed CPU data is not counted.
  int64_t bytes_held() const { return held_; }

  // One training step; *loss and *grad_norm receive the step's loss and the gradient norm before clipping.
  // The engine's graph must be B copies of the configured architecture (set by the caller).
  Status step(const FlowStepBatch& b, const AdamHyper& h, double clip, double* loss, double* grad_norm) {
    if (!configured_) return Status(Code::Invalid, "configure the flow step first");
    const int64_t B = b.B;
    const RtGraph& g = e_.graph();
    if (B <= 0 || g.G != B || g.P != B * P_) {
      return Status(Code::Shape, "the engine's graph must hold the batch: " + std::to_string(B) + " networks of " +
                                     std::to_string(P_) + " parameters (graph: " + std::to_string(g.G) + " networks, " +
                                     std::to_string(g.P) + " parameters)");
    }
    if ((b.idx == nullptr) == (b.x1 == nullptr)) return Status(Code::Invalid, "give exactly one of idx and x1");
    if (b.x0 == nullptr || b.t == nullptr) return Status(Code::Invalid, "x0 and t are required");
    if (b.idx != nullptr) {
      if (data_ == nullptr) return Status(Code::Invalid, "idx given but no training set is resident (set_data)");
      for (int64_t i = 0; i < B; ++i) {
        if (b.idx[i] < 0 || b.idx[i] >= rows_) {
          return Status(Code::Invalid, "idx[" + std::to_string(i) + "] = " + std::to_string(b.idx[i]) +
                                           " is outside the resident training set (0 … " + std::to_string(rows_ - 1) + ")");
        }
      }
    }
    WSF_RETURN_IF_ERROR(ensure_batch(B));
    typename RtEngine<Ops>::DeviceIo io{};
    WSF_RETURN_IF_ERROR(e_.device_io(true, &io));
    Ops& o = ops();
    void* const st = stream();
    const int64_t n = B * P_;
    Status s = Status::ok();
    auto keep = [&s](const Status& x) {
      if (s.is_ok() && !x.is_ok()) s = x;
    };
    e_.profiled("flow.inputs", [&] {
      keep(o.upload(io.t, b.t, B));
      if (b.idx != nullptr) {
        keep(o.upload_i32(idx_, b.idx, B));
        o.gather_rows(x1_, data_, idx_, B, static_cast<int>(P_));
      } else {
        keep(o.upload(x1_, b.x1, n));
      }
      keep(o.upload(x0_, b.x0, n));
      if (b.canonicalize_x0) keep(canonicalize_forward(kDevice, x0_, x0_, layers_, B, cfg_.last_norm, st));
      if (cfg_.sphere) {
        keep(geometry_interpolate_forward(kDevice, xt_, x0_, x1_, io.t, table_, B, cfg_.mode, st));
      } else {
        o.fill_normal(noise_, n, b.noise_seed, 0.0, cfg_.sigma);
        o.flow_path(xt_, x0_, x1_, noise_, io.t, B, P_);
      }
      if (scale_ != nullptr) o.flow_input(io.xt, xt_, scale_, B, P_);
      else o.copy(io.xt, xt_, n);
    });
    WSF_RETURN_IF_ERROR(s);
    WSF_RETURN_IF_ERROR(e_.forward_device(true));
    float host_loss = 0;
    e_.profiled("flow.loss", [&] {
      o.flow_to_x1(xhat_, io.xhat, xt_, io.t, scale_, cfg_.precondition, B, P_);
      if (cfg_.canonical) {
        keep(canonicalize_forward(kDevice, xc_, xhat_, layers_, B, cfg_.last_norm, st));
        keep(geometry_loss_forward(kDevice, loss_, per_, dxc_, xc_, x1_, table_, B, cfg_.mode, st));
        keep(canonicalize_backward(kDevice, io.dxhat, xhat_, dxc_, work_, layers_, B, cfg_.last_norm, st));
      } else {
        keep(geometry_loss_forward(kDevice, loss_, per_, io.dxhat, xhat_, x1_, table_, B, cfg_.mode, st));
      }
      keep(o.download(&host_loss, loss_, 1));
    });
    WSF_RETURN_IF_ERROR(s);
    WSF_RETURN_IF_ERROR(o.check());
    *loss = host_loss;
    if (!std::isfinite(host_loss)) {
      return Status(Code::Numeric, "the training loss became " + std::to_string(host_loss) + "; the step was skipped");
    }
    e_.profiled("flow.grad", [&] { o.flow_to_dF(io.dxhat, io.t, scale_, cfg_.precondition, B, P_); });
    WSF_RETURN_IF_ERROR(e_.zero_grad());
    WSF_RETURN_IF_ERROR(e_.backward_device());
    WSF_RETURN_IF_ERROR(e_.adam_step(h, clip, grad_norm));
    if (ema_ != nullptr) {
      e_.profiled("flow.ema", [&] { o.ema_update(ema_, e_.params_device(), e_.num_params(), ema_decay_); });
    }
    return Status::ok();
  }

 private:
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
    for (void* p : batch_) ops().release(p);
    batch_.clear();
    if (idx_ != nullptr) ops().release(idx_);
    idx_ = nullptr;
    x0_ = x1_ = xt_ = noise_ = xhat_ = xc_ = dxc_ = work_ = per_ = loss_ = nullptr;
    batch_bytes_ = 0;
    B_ = 0;
    recount();
  }
  void free_all() {
    free_batch();
    clear_data();
    for (void* p : owned_) ops().release(p);
    owned_.clear();
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
  float *x0_ = nullptr, *x1_ = nullptr, *xt_ = nullptr, *noise_ = nullptr, *xhat_ = nullptr, *xc_ = nullptr,
        *dxc_ = nullptr, *work_ = nullptr, *per_ = nullptr, *loss_ = nullptr;
  int32_t* idx_ = nullptr;
  std::vector<void*> owned_, batch_;
};

}  // namespace wsf
