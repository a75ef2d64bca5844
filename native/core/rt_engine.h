// The relational-transformer engine: forward and hand-written backward of the whole vector-field network over
// a batch of weight graphs, Adam, and parameter/optimiser state — written once against a backend (rt_ops.h):
// RtEngine<CpuOps<float>> (CPU), RtEngine<CpuOps<double>> (gradient checks), RtEngine<CudaOps> (GPU).
//
// Forward (METHOD.md §1.5, §2): pair and node input MLPs (Lin–SiLU–Lin–SiLU–Lin, then a D→D projection),
// direction and positional embeddings, the time channel appended (state width H = D+1), `layers` RT layers
// (edge-modulated attention over each row's pairs → Lin^o → Lin^0 → post-LN residual → node MLP → post-LN →
// pair update from (e_uv, e_vu, n'_u, n'_v) → post-LN → pair MLP → post-LN), then output heads on the real
// forward pairs and non-input nodes only, scattered into the flat layout as x̂1.
//
// Backward starts from a caller-supplied ∂L/∂x̂1 in the flat layout and ACCUMULATES parameter gradients
// (zero_grad() clears them). Activations of the last training-mode forward are kept for it, and backward leaves
// them intact, so several backward passes (different ∂L/∂x̂1) may follow one forward. On request it also returns
// the gradient with respect to the input x_t (flat layout, OVERWRITTEN): through the pair and node input MLPs to
// the value column of their features (the t column and the time channel get no gradient), summed over the two
// pairs that carry each weight when reverse pairs carry values. Vector–Jacobian products for likelihoods use
// that path without parameter gradients (param_grads = false): the weight-gradient GEMMs are skipped and the
// remaining parameter-gradient sums go to a scratch buffer, so the accumulated gradients are left untouched.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/common.h"
#include "core/rt_graph.h"
#include "core/rt_model.h"
#include "core/rt_ops.h"

namespace wsf {

// Optional per-op wall-time profile (WSF_PROFILE=1, or set_profiling(true)): each named region synchronises the
// backend before and after, so GPU times are real; the sums are read with profile().
struct RtProfile {
  bool enabled = false;
  std::vector<std::pair<std::string, double>> totals;  // name → seconds, in first-seen order
  std::vector<int64_t> counts;
  void add(const char* name, double s) {
    for (size_t i = 0; i < totals.size(); ++i) {
      if (totals[i].first == name) {
        totals[i].second += s;
        ++counts[i];
        return;
      }
    }
    totals.emplace_back(name, s);
    counts.push_back(1);
  }
};

template <class Ops>
class RtEngine {
 public:
  using T = typename Ops::Scalar;

  explicit RtEngine(const RtConfig& cfg) : cfg_(cfg), layout_(make_layout(cfg)) {
    const char* p = std::getenv("WSF_PROFILE");
    prof_.enabled = p != nullptr && p[0] == '1';
  }
  void set_profiling(bool on) { prof_.enabled = on; }
  RtProfile& profile() { return prof_; }
  RtEngine(const RtEngine&) = delete;
  RtEngine& operator=(const RtEngine&) = delete;
  ~RtEngine() { free_all(); }

  const RtConfig& config() const { return cfg_; }
  const RtLayout& layout() const { return layout_; }
  const RtGraph& graph() const { return graph_; }
  Ops& ops() { return ops_; }
  const Ops& ops() const { return ops_; }
  int64_t num_params() const { return layout_.total; }
  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }

  // Allocates parameters, gradients and Adam state and initialises the parameters (seeded).
  Status init(uint64_t seed) {
    WSF_RETURN_IF_ERROR(cfg_.validate());
    const int64_t n = layout_.total;
    WSF_RETURN_IF_ERROR(alloc(&params_, n));
    WSF_RETURN_IF_ERROR(alloc(&grads_, n));
    WSF_RETURN_IF_ERROR(alloc(&adam_m_, n));
    WSF_RETURN_IF_ERROR(alloc(&adam_v_, n));
    std::vector<float> host(static_cast<size_t>(n));
    init_params(host.data(), layout_, seed);
    WSF_RETURN_IF_ERROR(ops_.upload(params_, host.data(), n));
    step_ = 0;
    return Status::ok();
  }

  // Builds (or reuses) the graph for a batch of networks with these widths, uploading its index arrays.
  Status set_graph(const std::vector<std::vector<int32_t>>& widths) {
    if (graph_ready_ && widths == graph_widths_) return Status::ok();
    RtGraph g;
    WSF_RETURN_IF_ERROR(build_rt_graph(&g, widths, cfg_.mode, cfg_.slots));
    free_graph();
    graph_ = std::move(g);
    graph_widths_ = widths;
    WSF_RETURN_IF_ERROR(upload_graph());
    graph_ready_ = true;
    acts_training_ = false;
    return Status::ok();
  }

  // ---- host-facing entry points (H = float or double on the host) ----
  // aux (P_total × aux_features: entry (p, c) at p·aux_features + c, p in the flat layout like xt): the extra input
  // columns of an aux_features engine; required there, must be null otherwise.
  template <typename HT>
  Status forward_host(const HT* xt, const HT* t, HT* xhat, bool training, const HT* aux = nullptr) {
    WSF_RETURN_IF_ERROR(require_graph());
    if ((cfg_.aux_features != 0) != (aux != nullptr)) {
      return invalid(cfg_.aux_features != 0 ? "this engine has aux input columns (auxFeatures " + std::to_string(cfg_.aux_features) + "): pass aux, auxFeatures values per entry of xt"
                                            : "aux given to an engine without an aux input column (auxFeatures 0)");
    }
    WSF_RETURN_IF_ERROR(ensure_acts(training));
    WSF_RETURN_IF_ERROR(put(xt_, xt, graph_.P));
    WSF_RETURN_IF_ERROR(put(t_, t, graph_.G));
    if (aux != nullptr) WSF_RETURN_IF_ERROR(put(aux_, aux, graph_.P * cfg_.aux_features));
    forward(training);
    WSF_RETURN_IF_ERROR(ops_.check());
    if (xhat != nullptr) WSF_RETURN_IF_ERROR(get(xhat, xhat_, graph_.P));
    return Status::ok();
  }

  // dxt (may be null): receives ∂L/∂x_t (P_total, overwritten). param_grads false: parameter gradients untouched.
  template <typename HT>
  Status backward_host(const HT* dxhat, HT* dxt = nullptr, bool param_grads = true) {
    WSF_RETURN_IF_ERROR(require_backward());
    WSF_RETURN_IF_ERROR(put(dxhat_, dxhat, graph_.P));
    if (!param_grads && junk_grads_ == nullptr) {
      WSF_RETURN_IF_ERROR(alloc(&junk_grads_, layout_.total));
      update_held();
    }
    T* const saved = grads_;
    if (!param_grads) grads_ = junk_grads_;
    param_grads_ = param_grads;
    backward(dxt != nullptr);
    grads_ = saved;
    param_grads_ = true;
    WSF_RETURN_IF_ERROR(ops_.check());
    if (dxt != nullptr) WSF_RETURN_IF_ERROR(get(dxt, dxt_, graph_.P));
    return Status::ok();
  }

  // Runs fn as a named profile region (synchronised and timed when profiling is on, see RtProfile).
  template <class F>
  void profiled(const char* name, F&& fn) {
    region(name, fn);
  }

  // The parameters on the backend (num_params() values), for device-side consumers such as the flow step's EMA.
  const T* params_device() const { return params_; }

  // ---- device-resident entry points (core/flow_step.h): the caller writes x_t and t on the backend itself ----
  struct DeviceIo {
    T* xt;           // [P_total] the field's input x_t
    T* t;            // [G] per-network times
    const T* xhat;   // [P_total] the field's output after forward_device
    T* dxhat;        // [P_total] ∂L/∂x̂1 for backward_device
  };
  // Readies the buffers of a forward on the current graph (training-mode activations when `training`) and returns
  // the engine's own input/output arrays, valid until the next set_graph. Engines with an aux column are refused.
  Status device_io(bool training, DeviceIo* io) {
    WSF_RETURN_IF_ERROR(require_graph());
    if (cfg_.aux_features != 0) return invalid("the device-resident step does not feed aux input columns (auxFeatures > 0)");
    WSF_RETURN_IF_ERROR(ensure_acts(training));
    *io = DeviceIo{xt_, t_, xhat_, dxhat_};
    return Status::ok();
  }
  // Forward from the x_t and t already in device_io()'s buffers; enqueues only (no synchronisation, no check()).
  Status forward_device(bool training) {
    WSF_RETURN_IF_ERROR(require_graph());
    if (xt_ == nullptr) return invalid("forward_device needs device_io() first");
    forward(training);
    return Status::ok();
  }
  // Backward from device_io()'s dxhat into the accumulated parameter gradients; enqueues only.
  Status backward_device() {
    WSF_RETURN_IF_ERROR(require_backward());
    param_grads_ = true;
    backward(false);
    return Status::ok();
  }

  // Mean squared error over all P entries of the batch against `target`; with `do_backward`, also runs the
  // backward pass from ∂L/∂x̂1 = 2(x̂1 − target)/P. Needs a training-mode forward first.
  template <typename HT>
  Status mse_host(const HT* target, double* loss, bool do_backward) {
    WSF_RETURN_IF_ERROR(require_backward());
    WSF_RETURN_IF_ERROR(put(target_, target, graph_.P));
    const double n = static_cast<double>(graph_.P);
    const double s = ops_.mse(do_backward ? dxhat_ : nullptr, xhat_, target_, graph_.P, 2.0 / n);
    *loss = s / n;
    if (do_backward) backward(false);
    return ops_.check();
  }

  Status zero_grad() {
    if (grads_ == nullptr) return invalid("engine not initialised");
    ops_.zero(grads_, layout_.total);
    return ops_.check();
  }

  // One Adam step over the accumulated gradients; clips the global gradient norm to clip_norm when > 0.
  // Returns the gradient norm before clipping.
  Status adam_step(const AdamHyper& h, double clip_norm, double* grad_norm) {
    if (grads_ == nullptr) return invalid("engine not initialised");
    const double norm = std::sqrt(ops_.sum_squares(grads_, layout_.total));
    if (grad_norm != nullptr) *grad_norm = norm;
    if (!std::isfinite(norm)) return nonfinite_norm(norm);
    const double scale = (clip_norm > 0 && norm > clip_norm) ? clip_norm / norm : 1.0;
    ++step_;
    region("adam", [&] { ops_.adam(params_, grads_, adam_m_, adam_v_, layout_.total, h, step_, scale); });
    return ops_.check();
  }

  // The error of a step skipped because its gradient norm is not finite.
  static Status nonfinite_norm(double norm) {
    return Status(Code::Numeric, "gradient norm is not finite (" + std::to_string(norm) + "); the step was skipped");
  }

  // ---- the flow step's sync-free mode on CUDA (core/flow_step.h): enqueue only, nothing read back ----
  bool profiling() const { return prof_.enabled; }
  void zero_grad_enqueue() { ops_.zero(grads_, layout_.total); }
  // Σ g² of the accumulated gradients into the device double *out.
  void grad_sumsq_enqueue(double* out) { ops_.sum_squares_dev(out, grads_, layout_.total); }
  // Adam with adam_constants(step_count() + 1) read from device memory, gated by CudaOps::step_gate; the caller
  // calls commit_step() once it knows the step applied.
  void adam_gated_enqueue(const double* consts, const float* gate) {
    ops_.adam_gated(params_, grads_, adam_m_, adam_v_, layout_.total, consts, gate);
  }
  void commit_step() { ++step_; }

  // Parameter / gradient / optimiser-state transfer (host arrays of num_params() elements).
  template <typename HT>
  Status get_params(HT* out) { return get(out, params_, layout_.total); }
  template <typename HT>
  Status set_params(const HT* in) { return put(params_, in, layout_.total); }
  template <typename HT>
  Status get_grads(HT* out) { return get(out, grads_, layout_.total); }
  template <typename HT>
  Status get_adam(HT* m, HT* v) {
    WSF_RETURN_IF_ERROR(get(m, adam_m_, layout_.total));
    return get(v, adam_v_, layout_.total);
  }
  template <typename HT>
  Status set_adam(const HT* m, const HT* v) {
    WSF_RETURN_IF_ERROR(put(adam_m_, m, layout_.total));
    return put(adam_v_, v, layout_.total);
  }

  // Development diagnostics (bench/gpu/diag-inputgrad.cjs): a host copy of an internal array, as double. Names:
  // "ef", "dEf" (M·din edge features and their gradient after an input-gradient backward), "e0" (M·H input edge
  // states), "he_h1", "he_h2" / "hn_h1", "hn_h2" (pre-activations of the edge / node heads' two ReLUs, rows in
  // out_edge / out_node order), per layer l of the last training-mode forward "alpha:l" (M·heads), "Pe:l" (M·4D), "Pn:l" (N·3D),
  // "z:l" (M·D), "e_out:l" (M·H), "n_out:l" (N·H); graph arrays "row_ptr", "edge_row", "edge_col", "edge_rev", "edge_dir",
  // "edge_param", "out_edge", "out_edge_param", "out_node_param". Anything else, or a buffer not yet computed: Code::Invalid.
  Status debug_get(const std::string& name, std::vector<double>* out) {
    const int64_t N = graph_.N, M = graph_.M;
    const int D = cfg_.D, H = cfg_.H(), din = cfg_.din(), heads = cfg_.heads;
    const auto dev = [&](const T* p, int64_t n) -> Status {
      if (p == nullptr || n <= 0) return Status(Code::Invalid, "debug buffer '" + name + "' is not computed yet");
      std::vector<T> tmp(static_cast<size_t>(n));
      WSF_RETURN_IF_ERROR(get(tmp.data(), p, n));
      out->assign(tmp.begin(), tmp.end());
      return Status::ok();
    };
    const auto host = [&](const std::vector<int32_t>& v) -> Status {
      out->assign(v.begin(), v.end());
      return Status::ok();
    };
    if (name == "ef") return dev(ef_, M * din);
    if (name == "dEf") return dev(dEf_, M * din);
    if (name == "e0") return dev(e0_, M * H);
    if (ck_ && (name == "he_h1" || name == "he_h2")) {
      return Status(Code::Invalid, "debug buffer '" + name + "': chunked recompute mode keeps one chunk of it");
    }
    if (name == "he_h1") return dev(he_h1_, static_cast<int64_t>(graph_.out_edge.size()) * D);  // edge-head ReLU inputs
    if (name == "he_h2") return dev(he_h2_, static_cast<int64_t>(graph_.out_edge.size()) * D);
    if (name == "hn_h1") return dev(hn_h1_, static_cast<int64_t>(graph_.out_node.size()) * D);  // node-head ReLU inputs
    if (name == "hn_h2") return dev(hn_h2_, static_cast<int64_t>(graph_.out_node.size()) * D);
    if (name == "out_node_param") return host(graph_.out_node_param);
    if (name == "row_ptr") return host(graph_.row_ptr);
    if (name == "edge_row") return host(graph_.edge_row);
    if (name == "edge_col") return host(graph_.edge_col);
    if (name == "edge_rev") return host(graph_.edge_rev);
    if (name == "edge_dir") return host(graph_.edge_dir);
    if (name == "edge_param") return host(graph_.edge_param);
    if (name == "out_edge") return host(graph_.out_edge);
    if (name == "out_edge_param") return host(graph_.out_edge_param);
    const size_t colon = name.find(':');
    if (colon != std::string::npos && acts_training_) {
      const std::string key = name.substr(0, colon);
      const int l = std::atoi(name.c_str() + colon + 1);
      if (l >= 0 && l < static_cast<int>(acts_.size())) {
        const LayerActs& a = acts_[static_cast<size_t>(l)];
        if (ck_ && (key == "Pe" || key == "z")) {
          return Status(Code::Invalid, "debug buffer '" + name + "': chunked recompute mode keeps one chunk of it");
        }
        if (a.alpha == nullptr && key != "e_out" && key != "n_out") {
          return Status(Code::Invalid, "debug buffer '" + name + "': recompute mode keeps only layer outputs after layer 0");
        }
        if (key == "alpha") return dev(a.alpha, M * heads);
        if (key == "Pe") return dev(a.Pe, M * 4 * D);
        if (key == "Pn") return dev(a.Pn, N * 3 * D);
        if (key == "z") return dev(a.z, M * D);
        if (key == "e_out") return dev(a.e_out, M * H);
        if (key == "n_out") return dev(a.n_out, N * H);
      }
    }
    return Status(Code::Invalid, "unknown debug buffer '" + name + "' (or no training-mode forward yet)");
  }

  // Bytes of backend memory held (parameters, optimiser state, graph, activations, scratch).
  int64_t bytes_held() const { return held_bytes_; }

  // What bytes_held() would be after a training-mode forward on the current graph with `recompute` on or off
  // (parameters, gradients and Adam state, the graph's index arrays, and the activations ensure_acts allocates —
  // the same sizes, computed without allocating). Needs set_graph.
  // chunk_rows < 0: the configured chunk size (chunks apply with recompute only). `target`: the device whose engine
  // layout to count (the CPU's fused ops keep some pair-sized arrays in block scratch that CUDA allocates), so a CPU
  // engine can plan for a GPU.
  int64_t training_bytes(bool recompute, int64_t chunk_rows = -1, Device target = Ops::device) const {
    if (!graph_ready_) return 0;
    const int64_t base = static_cast<int64_t>(sizeof(T)) * layout_.total * (junk_grads_ != nullptr ? 5 : 4);
    const int64_t ck = chunk_rows < 0 ? cfg_.chunk_rows : chunk_rows;
    return base + graph_bytes_ + static_cast<int64_t>(sizeof(T)) * activation_elems(true, recompute, ck, target);
  }

  // Bytes an inference forward on the current graph adds to the parameters and optimiser state: the graph's index
  // arrays and the inference activations (linear in the number of networks). Needs set_graph. `target` as above.
  int64_t inference_graph_bytes(Device target = Ops::device) const {
    if (!graph_ready_) return 0;
    return graph_bytes_ + static_cast<int64_t>(sizeof(T)) * activation_elems(false, false, 0, target);
  }

  // Switches recompute mode (RtConfig::recompute) between training passes; activations are reallocated on the next
  // forward. Results do not change (recompute mode is exact).
  void set_recompute(bool on) {
    if (cfg_.recompute == on) return;
    free_acts();
    cfg_.recompute = on;
  }
  // Sets RtConfig::chunk_rows (0: no chunks) between training passes; activations are reallocated on the next
  // forward. Outputs are unchanged; parameter gradients agree to rounding (their sums are cut into chunks).
  Status set_chunk_rows(int64_t n) {
    RtConfig c = cfg_;
    c.chunk_rows = n;
    WSF_RETURN_IF_ERROR(c.validate());
    if (cfg_.chunk_rows == n) return Status::ok();
    free_acts();
    cfg_.chunk_rows = n;
    return Status::ok();
  }

 private:
  // ---------------------------------------------------------------------------------------------------------
  // buffers
  struct LayerActs {
    T *Pn, *Pe, *alpha, *o, *attn, *nxh0, *nrs0, *nbar, *nh1, *nxh1, *nrs1, *n_out;
    T *z, *exh2, *ers2, *ebar, *eh3, *exh3, *ers3, *e_out;
  };

  Status alloc(T** p, int64_t n) {
    WSF_RETURN_IF_ERROR(ops_.alloc(p, std::max<int64_t>(n, 1)));
    owned_.push_back(*p);
    held_bytes_ += static_cast<int64_t>(sizeof(T)) * std::max<int64_t>(n, 1);
    return Status::ok();
  }
  Status alloc_act(T** p, int64_t n) {
    WSF_RETURN_IF_ERROR(ops_.alloc(p, std::max<int64_t>(n, 1)));
    act_owned_.push_back(*p);
    act_bytes_ += static_cast<int64_t>(sizeof(T)) * std::max<int64_t>(n, 1);
    return Status::ok();
  }
  Status alloc_idx(int32_t** p, const std::vector<int32_t>& host) {
    WSF_RETURN_IF_ERROR(ops_.alloc_i32(p, std::max<size_t>(host.size(), 1)));
    graph_owned_.push_back(*p);
    graph_bytes_ += static_cast<int64_t>(sizeof(int32_t) * std::max<size_t>(host.size(), 1));
    return ops_.upload_i32(*p, host.data(), static_cast<int64_t>(host.size()));
  }

  void free_acts() {
    for (void* p : act_owned_) ops_.release(p);
    act_owned_.clear();
    act_bytes_ = 0;
    acts_.clear();
    chunks_.clear();
    ck_ = false;
    acts_ready_ = false;
    acts_training_ = false;
    fwd_done_ = false;
    update_held();
  }
  void free_graph() {
    free_acts();
    for (void* p : graph_owned_) ops_.release(p);
    graph_owned_.clear();
    graph_bytes_ = 0;
    graph_ready_ = false;
    update_held();
  }
  void free_all() {
    free_graph();
    for (void* p : owned_) ops_.release(p);
    owned_.clear();
  }
  void update_held() {
    int64_t base = 0;
    base = static_cast<int64_t>(sizeof(T)) * layout_.total * (junk_grads_ != nullptr ? 5 : 4);
    held_bytes_ = base + act_bytes_ + graph_bytes_;
  }

  Status require_graph() const {
    if (params_ == nullptr) return invalid("engine not initialised");
    if (!graph_ready_) return invalid("no graph: call set_graph with the batch's architectures first");
    return Status::ok();
  }
  Status require_backward() const {
    WSF_RETURN_IF_ERROR(require_graph());
    if (!fwd_done_ || !last_fwd_saved_) return invalid("backward needs a training-mode forward pass on the same batch first");
    return Status::ok();
  }

  template <typename HT>
  Status put(T* dst, const HT* src, int64_t n) {
    if constexpr (std::is_same_v<HT, float>) {
      return ops_.upload(dst, src, n);
    } else {
      std::vector<T> tmp(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) tmp[i] = static_cast<T>(src[i]);
      return ops_.upload_raw(dst, tmp.data(), n);
    }
  }
  template <typename HT>
  Status get(HT* dst, const T* src, int64_t n) {
    if constexpr (std::is_same_v<HT, float>) {
      return ops_.download(dst, src, n);
    } else {
      std::vector<T> tmp(static_cast<size_t>(n));
      WSF_RETURN_IF_ERROR(ops_.download_raw(tmp.data(), src, n));
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<HT>(tmp[i]);
      return Status::ok();
    }
  }

  Status upload_graph() {
    const RtGraph& g = graph_;
    WSF_RETURN_IF_ERROR(alloc_idx(&d_node_graph_, g.node_graph));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_node_slot_, g.node_slot));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_node_param_, g.node_param));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_node_is_input_, g.node_is_input));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_row_ptr_, g.row_ptr));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_row_, g.edge_row));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_col_, g.edge_col));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_rev_, g.edge_rev));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_dir_, g.edge_dir));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_param_, g.edge_param));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_graph_, g.edge_graph));
    std::vector<int32_t> fwd_mask(g.M);
    for (int64_t k = 0; k < g.M; ++k) fwd_mask[k] = g.edge_dir[k] == 0 ? 1 : 0;
    WSF_RETURN_IF_ERROR(alloc_idx(&d_edge_fwd_mask_, fwd_mask));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_out_edge_, g.out_edge));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_out_edge_param_, g.out_edge_param));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_out_node_, g.out_node));
    WSF_RETURN_IF_ERROR(alloc_idx(&d_out_node_param_, g.out_node_param));
    update_held();
    return Status::ok();
  }

  // Activation buffers for the current graph. Training mode keeps one set per layer; inference mode one set.
  // Elements ensure_acts(training) allocates with recompute mode `recompute` (each allocation at least 1, as
  // alloc_act does). Kept in step with ensure_acts by a test (bytes_held() after a forward = training_bytes()).
  int64_t activation_elems(bool training, bool recompute, int64_t chunk_rows, Device target = Ops::device) const {
    const bool cpu = target == Device::Cpu;  // the CPU engine's layout (see ensure_acts)
    const int64_t N = graph_.N, M = graph_.M, P = graph_.P, G = graph_.G;
    const int64_t D = cfg_.D, H = cfg_.H(), din = cfg_.din(), heads = cfg_.heads;
    const int64_t Eo = static_cast<int64_t>(graph_.out_edge.size()), No = static_cast<int64_t>(graph_.out_node.size());
    const bool rc = training && recompute;
    const bool ck = rc && chunk_rows > 0;
    int64_t C = 0;
    if (ck) (void)plan_chunks(chunk_rows, &C);
    const int64_t Ch = std::min(Eo, C);
    // Pair-wise arrays: whole batch, or one chunk in chunked mode.
    const int64_t Mc = ck ? C : M, Ec = ck ? Ch : Eo;
    int64_t n = 0;
    auto add = [&n](int64_t k) { n += std::max<int64_t>(k, 1); };
    add(P);
    if (cfg_.aux_features != 0) add(P * cfg_.aux_features);
    add(G);
    add(P), add(P), add(P);
    add(M * din), add(N * din);
    for (int i = 0; i < 3; ++i) {
      if (ck) add(C * D);
      else if (!rc && training) add(M * D);
      add(N * D);
    }
    add(M * H), add(N * H);
    const int sets = training ? std::max(cfg_.layers, 1) : 1;
    for (int s = 0; s < sets; ++s) {
      if (s > 0 && recompute) {
        add(N * H), add(M * H);
        continue;
      }
      add(N * 3 * D);
      if (training || !cpu) add(Mc * 4 * D);
      add(M * heads), add(N * D), add(N * H), add(N * H), add(N), add(N * H);
      add(N * D), add(N * H), add(N), add(N * H);
      if (ck) {
        add(M * 2 * D), add(C * H), add(C * H), add(C * D), add(C * H);
      } else if (rc) {
        add(M * (2 * D + 3 * H));
      } else if (!training && cpu) {
        // (nothing: see ensure_acts)
      } else {
        add(M * D), add(M * H), add(M * H), add(M * D), add(M * H);
      }
      if (training || !cpu) add(Mc), add(Mc);
      add(M * H);
    }
    if (!training) add(N * H), add(M * H);
    add(Mc * D), add(Mc * D), add(Mc * D), add(Mc * H);
    add(N * D), add(N * D), add(N * D), add(N * D), add(N * H);
    add(Ec * H), add(Ec * D), add(Ec * D), add(Eo), add(No * H), add(No * D), add(No * D), add(No);
    if (training) {
      add(M * H), add(M * H), add(Mc * H);
      if (ck) add(C * 4 * D);
      else if (!rc && !cpu) add(M * 4 * D);
      add(N * H), add(N * H), add(N * H), add(N * 3 * D);
      add(Eo), add(No * H), add(No * D), add(No * D), add(No);  // the pair head's other gradients use the scratch
      add(M * din), add(N * din), add(P);
    }
    return n;
  }

  // Chunked recompute mode: consecutive rows [r0, r1) whose pairs (a contiguous range: CSR by destination) number
  // at most chunk_rows, unless one row alone has more. *max_pairs: the most pairs of a chunk (at least 1).
  std::vector<std::pair<int32_t, int32_t>> plan_chunks(int64_t chunk_rows, int64_t* max_pairs) const {
    std::vector<std::pair<int32_t, int32_t>> out;
    const std::vector<int32_t>& rp = graph_.row_ptr;
    const int32_t N = static_cast<int32_t>(graph_.N);
    int64_t mx = 1;
    for (int32_t r0 = 0; r0 < N;) {
      int32_t r1 = r0 + 1;
      while (r1 < N && static_cast<int64_t>(rp[r1 + 1]) - rp[r0] <= chunk_rows) ++r1;
      out.emplace_back(r0, r1);
      mx = std::max<int64_t>(mx, static_cast<int64_t>(rp[r1]) - rp[r0]);
      r0 = r1;
    }
    *max_pairs = mx;
    return out;
  }

  Status ensure_acts(bool training) {
    if (acts_ready_ && (acts_training_ || !training)) return Status::ok();
    free_acts();
    const int64_t N = graph_.N, M = graph_.M, P = graph_.P, G = graph_.G;
    const int D = cfg_.D, H = cfg_.H(), din = cfg_.din(), heads = cfg_.heads;
    const int64_t Eo = static_cast<int64_t>(graph_.out_edge.size()), No = static_cast<int64_t>(graph_.out_node.size());
    WSF_RETURN_IF_ERROR(alloc_act(&xt_, P));
    if (cfg_.aux_features != 0) WSF_RETURN_IF_ERROR(alloc_act(&aux_, P * cfg_.aux_features));
    WSF_RETURN_IF_ERROR(alloc_act(&t_, G));
    WSF_RETURN_IF_ERROR(alloc_act(&xhat_, P));
    WSF_RETURN_IF_ERROR(alloc_act(&dxhat_, P));
    WSF_RETURN_IF_ERROR(alloc_act(&target_, P));
    WSF_RETURN_IF_ERROR(alloc_act(&ef_, M * din));
    WSF_RETURN_IF_ERROR(alloc_act(&nf_, N * din));
    // Recompute mode (training): the pair input MLP's hidden activations and the pair-attention gradient live in the
    // work set's pair-MLP block, which is dead when they are live (input MLP before layer 0 and recomputed before its
    // backward; ∂L/∂Pe after the pair MLP's backward), so they take no memory of their own.
    const bool rc = training && cfg_.recompute;
    // Chunked mode: the pair-wise arrays that are not pair states hold one chunk (C pairs, Ch pair-head rows).
    const bool ck = rc && cfg_.chunk_rows > 0;
    int64_t C = 0;
    if (ck) chunks_ = plan_chunks(cfg_.chunk_rows, &C);
    const int64_t Ch = std::min(Eo, C);
    const int64_t Mc = ck ? C : M, Ec = ck ? Ch : Eo;
    // Inference: the pair input MLP's hidden activations are not kept; all three share one scratch (below).
    for (int i = 0; i < 3; ++i) {
      if (ck) WSF_RETURN_IF_ERROR(alloc_act(&eh_[i], C * D));
      else if (!rc && training) WSF_RETURN_IF_ERROR(alloc_act(&eh_[i], M * D));
      WSF_RETURN_IF_ERROR(alloc_act(&nh_[i], N * D));
    }
    WSF_RETURN_IF_ERROR(alloc_act(&e0_, M * H));
    WSF_RETURN_IF_ERROR(alloc_act(&n0_, N * H));
    const int sets = training ? std::max(cfg_.layers, 1) : 1;
    acts_.assign(static_cast<size_t>(std::max(cfg_.layers, 1)), LayerActs{});
    for (int s = 0; s < sets; ++s) {
      LayerActs& a = acts_[s];
      if (s > 0 && cfg_.recompute) {
        // Recompute mode: layers after the first keep only their output states; set 0 is the work set.
        WSF_RETURN_IF_ERROR(alloc_act(&a.n_out, N * H));
        WSF_RETURN_IF_ERROR(alloc_act(&a.e_out, M * H));
        continue;
      }
      WSF_RETURN_IF_ERROR(alloc_act(&a.Pn, N * 3 * D));
      // (CPU inference: the pair projections live in attention_proj_fwd's block scratch.)
      if (training || Ops::device != Device::Cpu) WSF_RETURN_IF_ERROR(alloc_act(&a.Pe, Mc * 4 * D));
      WSF_RETURN_IF_ERROR(alloc_act(&a.alpha, M * heads));
      WSF_RETURN_IF_ERROR(alloc_act(&a.o, N * D));
      WSF_RETURN_IF_ERROR(alloc_act(&a.attn, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nxh0, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nrs0, N));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nbar, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nh1, N * D));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nxh1, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&a.nrs1, N));
      WSF_RETURN_IF_ERROR(alloc_act(&a.n_out, N * H));
      if (ck) {
        // z and a second pair block (e·W_e2 in the forward; ∂L/∂z, then ∂L/∂(e·W_e2) at z and the attention's
        // column operands over both in the backward); the pair MLP's other activations per chunk.
        WSF_RETURN_IF_ERROR(alloc_act(&a.z, M * 2 * D));
        WSF_RETURN_IF_ERROR(alloc_act(&a.exh2, C * H));
        WSF_RETURN_IF_ERROR(alloc_act(&a.ebar, C * H));
        WSF_RETURN_IF_ERROR(alloc_act(&a.eh3, C * D));
        WSF_RETURN_IF_ERROR(alloc_act(&a.exh3, C * H));
      } else if (rc) {
        // One block z | x̂2 | ē | h3 | x̂3 (M·(2D + 3H) ≥ M·4D, so ∂L/∂Pe and the input MLP's 3 hidden layers fit).
        WSF_RETURN_IF_ERROR(alloc_act(&a.z, M * (2 * D + 3 * H)));
        a.exh2 = a.z + M * D;
        a.ebar = a.exh2 + M * H;
        a.eh3 = a.ebar + M * H;
        a.exh3 = a.eh3 + M * D;
        for (int k = 0; k < 3; ++k) eh_[k] = a.z + k * M * D;
      } else if (!training && Ops::device == Device::Cpu) {
        // CPU inference: the fused pair update and MLP keep z, ē, h3, x̂2, x̂3 and 1/σ in their block scratch
        // (edge_update_fwd_rows): nothing pair-sized.
      } else {
        WSF_RETURN_IF_ERROR(alloc_act(&a.z, M * D));
        WSF_RETURN_IF_ERROR(alloc_act(&a.exh2, M * H));
        WSF_RETURN_IF_ERROR(alloc_act(&a.ebar, M * H));
        WSF_RETURN_IF_ERROR(alloc_act(&a.eh3, M * D));
        WSF_RETURN_IF_ERROR(alloc_act(&a.exh3, M * H));
      }
      if (training || Ops::device != Device::Cpu) {
        WSF_RETURN_IF_ERROR(alloc_act(&a.ers2, Mc));
        WSF_RETURN_IF_ERROR(alloc_act(&a.ers3, Mc));
      }
      WSF_RETURN_IF_ERROR(alloc_act(&a.e_out, M * H));
    }
    if (!training) {
      // Inference: every layer shares set 0, with the layer output ping-ponging between two state buffers.
      WSF_RETURN_IF_ERROR(alloc_act(&n_alt_, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&e_alt_, M * H));
      for (size_t s = 1; s < acts_.size(); ++s) acts_[s] = acts_[0];
    }
    // Scratch shared by forward and backward.
    WSF_RETURN_IF_ERROR(alloc_act(&mD_[0], Mc * D));
    WSF_RETURN_IF_ERROR(alloc_act(&mD_[1], Mc * D));
    WSF_RETURN_IF_ERROR(alloc_act(&mD_[2], Mc * D));
    WSF_RETURN_IF_ERROR(alloc_act(&mH_, Mc * H));
    // (input_mlp_fwd writes each hidden layer after the previous one is spent, into neither its out nor its tmp)
    if (!training) eh_[0] = eh_[1] = eh_[2] = mD_[2];
    WSF_RETURN_IF_ERROR(alloc_act(&nD_[0], N * D));
    WSF_RETURN_IF_ERROR(alloc_act(&nD_[1], N * D));
    WSF_RETURN_IF_ERROR(alloc_act(&nD_[2], N * D));
    WSF_RETURN_IF_ERROR(alloc_act(&nD_[3], N * D));
    WSF_RETURN_IF_ERROR(alloc_act(&nH_, N * H));
    WSF_RETURN_IF_ERROR(alloc_act(&he_in_, Ec * H));
    WSF_RETURN_IF_ERROR(alloc_act(&he_h1_, Ec * D));
    WSF_RETURN_IF_ERROR(alloc_act(&he_h2_, Ec * D));
    WSF_RETURN_IF_ERROR(alloc_act(&he_out_, Eo));
    WSF_RETURN_IF_ERROR(alloc_act(&hn_in_, No * H));
    WSF_RETURN_IF_ERROR(alloc_act(&hn_h1_, No * D));
    WSF_RETURN_IF_ERROR(alloc_act(&hn_h2_, No * D));
    WSF_RETURN_IF_ERROR(alloc_act(&hn_out_, No));
    if (training) {
      WSF_RETURN_IF_ERROR(alloc_act(&dE_[0], M * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dE_[1], M * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dEbar_, Mc * H));
      if (ck) WSF_RETURN_IF_ERROR(alloc_act(&dPe_, C * 4 * D));
      else if (rc) dPe_ = acts_[0].z;  // the work set's pair-MLP block (see above)
      else if (Ops::device != Device::Cpu) WSF_RETURN_IF_ERROR(alloc_act(&dPe_, M * 4 * D));  // (CPU: block scratch)
      WSF_RETURN_IF_ERROR(alloc_act(&dN_[0], N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dN_[1], N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dNbar_, N * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dPn_, N * 3 * D));
      // The pair head's backward runs first, while the pair scratch is free (M·D ≥ Eo·H: every output edge has a
      // forward and a reverse pair), and is consumed (scattered into ∂L/∂e) before the layers use the scratch.
      // (Chunked: per chunk of Ch ≤ C rows, ∂L/∂head input in mH_, C·H ≥ Ch·H.)
      dHe_a_ = mD_[0];
      dHe_b_ = mD_[1];
      dHe_in_ = ck ? mH_ : mD_[2];
      WSF_RETURN_IF_ERROR(alloc_act(&dHe_out_, Eo));
      WSF_RETURN_IF_ERROR(alloc_act(&dHn_in_, No * H));
      WSF_RETURN_IF_ERROR(alloc_act(&dHn_a_, No * D));
      WSF_RETURN_IF_ERROR(alloc_act(&dHn_b_, No * D));
      WSF_RETURN_IF_ERROR(alloc_act(&dHn_out_, No));
      WSF_RETURN_IF_ERROR(alloc_act(&dEf_, M * din));
      WSF_RETURN_IF_ERROR(alloc_act(&dNf_, N * din));
      WSF_RETURN_IF_ERROR(alloc_act(&dxt_, P));
    }
    acts_ready_ = true;
    acts_training_ = training;
    ck_ = ck;
    head_chunk_ = std::max<int64_t>(Ch, 1);
    update_held();
    return Status::ok();
  }

  // Profiling region: times `fn` (with backend synchronisation) under `name` when profiling is on.
  template <typename F>
  void region(const char* name, F&& fn) {
    if (!prof_.enabled) {
      fn();
      return;
    }
    (void)ops_.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    (void)ops_.synchronize();
    prof_.add(name, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  // ---------------------------------------------------------------------------------------------------------
  // helpers over the parameter buffer
  const T* W(const LinOff& l) const { return params_ + l.w; }
  const T* Bp(const LinOff& l) const { return l.b >= 0 ? params_ + l.b : nullptr; }
  T* dW(const LinOff& l) { return grads_ + l.w; }
  T* dB(const LinOff& l) { return l.b >= 0 ? grads_ + l.b : nullptr; }
  void lin(T* y, const T* x, const LinOff& l, int64_t rows, bool acc = false) {
    ops_.linear_fwd(y, x, W(l), Bp(l), rows, l.in, l.out, l.in, acc);
  }
  // Backward of y = lin(x): dW/db accumulate (skipped for an input-only backward); dx written (or accumulated)
  // unless null.
  void lin_bwd(T* dx, const T* dy, const T* x, const LinOff& l, int64_t rows, bool acc_dx) {
    if (param_grads_) ops_.linear_bwd_weight(dW(l), dB(l), dy, x, rows, l.in, l.out, l.in);
    if (dx != nullptr) ops_.linear_bwd_data(dx, dy, W(l), rows, l.in, l.out, l.in, acc_dx);
  }

  // Input MLP: h0 = L0(f); h1 = L2(silu h0); h2 = L4(silu h1); out = Lproj(h2). h[] saved, tmp scratch.
  void input_mlp_fwd(T* out, const T* f, T* const* h, T* tmp, const LinOff* L3, const LinOff& proj, int64_t rows) {
    if constexpr (Ops::device == Device::Cpu) {
      // In cache-sized blocks; the hidden layers kept unless they share one scratch (an inference forward).
      const bool keep = h[0] != h[1];
      ops_.in_mlp_fwd(out, keep ? h[0] : nullptr, keep ? h[1] : nullptr, keep ? h[2] : nullptr, f, W(L3[0]), Bp(L3[0]),
                      W(L3[1]), Bp(L3[1]), W(L3[2]), Bp(L3[2]), W(proj), Bp(proj), rows, L3[0].in, cfg_.D);
      return;
    }
    const int64_t n = rows * cfg_.D;
    lin(h[0], f, L3[0], rows);
    ops_.act_fwd(tmp, h[0], n, Act::Silu);
    lin(h[1], tmp, L3[1], rows);
    ops_.act_fwd(tmp, h[1], n, Act::Silu);
    lin(h[2], tmp, L3[2], rows);
    lin(out, h[2], proj, rows);
  }
  // Backward from dout (rows × D, consumed as scratch). Needs two more rows×D scratch buffers. df (rows × din,
  // overwritten) receives ∂L/∂f unless null.
  void input_mlp_bwd(T* dout, const T* f, T* const* h, T* s1, T* s2, const LinOff* L3, const LinOff& proj,
                     int64_t rows, T* df) {
    if constexpr (Ops::device == Device::Cpu) {
      T* const grads[8] = {dW(L3[0]), dB(L3[0]), dW(L3[1]), dB(L3[1]), dW(L3[2]), dB(L3[2]), dW(proj), dB(proj)};
      ops_.in_mlp_bwd(df, param_grads_ ? grads : nullptr, dout, f, h[0], h[1], h[2], W(L3[0]), W(L3[1]), W(L3[2]),
                      W(proj), rows, L3[0].in, cfg_.D);
      return;
    }
    const int64_t n = rows * cfg_.D;
    lin_bwd(s1, dout, h[2], proj, rows, false);       // s1 = ∂L/∂h2
    ops_.act_fwd(s2, h[1], n, Act::Silu);             // recompute silu(h1)
    lin_bwd(dout, s1, s2, L3[2], rows, false);        // dout = ∂L/∂silu(h1)
    ops_.act_bwd(s1, dout, h[1], n, Act::Silu, false);  // s1 = ∂L/∂h1
    ops_.act_fwd(s2, h[0], n, Act::Silu);
    lin_bwd(dout, s1, s2, L3[1], rows, false);        // dout = ∂L/∂silu(h0)
    ops_.act_bwd(s1, dout, h[0], n, Act::Silu, false);  // s1 = ∂L/∂h0
    lin_bwd(df, s1, f, L3[0], rows, false);
  }

  // Output head: y = L4(relu(L2(relu(L0(x))))) (rows × 1)
  void head_fwd(T* y, const T* x, T* h1, T* h2, T* tmp, const LinOff* L3, int64_t rows) {
    const int64_t n = rows * cfg_.D;
    lin(h1, x, L3[0], rows);
    ops_.act_fwd(tmp, h1, n, Act::Relu);
    lin(h2, tmp, L3[1], rows);
    ops_.act_fwd(tmp, h2, n, Act::Relu);
    lin(y, tmp, L3[2], rows);
  }
  void head_bwd(T* dx, const T* dy, const T* x, const T* h1, const T* h2, T* a, T* b, const LinOff* L3, int64_t rows) {
    const int64_t n = rows * cfg_.D;
    ops_.act_fwd(a, h2, n, Act::Relu);
    lin_bwd(b, dy, a, L3[2], rows, false);           // b = ∂L/∂relu(h2)
    ops_.act_bwd(b, b, h2, n, Act::Relu, false);     // b = ∂L/∂h2
    ops_.act_fwd(a, h1, n, Act::Relu);
    lin_bwd(a, b, a, L3[1], rows, false);            // a = ∂L/∂relu(h1)  (x operand read before dx written)
    ops_.act_bwd(a, a, h1, n, Act::Relu, false);     // a = ∂L/∂h1
    lin_bwd(dx, a, x, L3[0], rows, false);
  }

  // ---------------------------------------------------------------------------------------------------------
  // forward
  void forward(bool training) {
    // With training-mode buffers allocated, always keep every layer's activations (a backward may follow).
    training = training || acts_training_;
    keep_acts_ = training;
    const int64_t N = graph_.N, M = graph_.M;
    const int D = cfg_.D, H = cfg_.H(), din = cfg_.din();
    const RtLayout& L = layout_;
    region("fwd.inputs", [&] {
    // Pair inputs: features → MLP → (+ direction embedding) → state [emb | t].
    ops_.edge_features(ef_, xt_, t_, aux_, d_edge_param_, d_edge_dir_, d_edge_graph_, M, din, cfg_.reverse_value,
                       cfg_.aux_features);
    for_pair_chunks([&](int32_t, int32_t, int64_t k0, int64_t rows) {
      input_mlp_fwd(mD_[0], ef_ + k0 * din, eh_, mD_[1], L.edge_in, L.edge_in_proj, rows);
      if (L.dir >= 0) ops_.embed_add(mD_[0], D, params_ + L.dir, d_edge_dir_ + k0, rows, D);
      ops_.copy_cols(e0_ + k0 * H, H, mD_[0], D, rows, D, false);
    });
    const bool ref_time = cfg_.time_rule == TimeRule::Reference;
    ops_.set_time(e0_, t_, d_edge_graph_, ref_time ? d_edge_fwd_mask_ : nullptr, M, H);
    // Node inputs: bias → MLP → + positional embedding → state [emb | t].
    ops_.node_features(nf_, xt_, t_, aux_, d_node_param_, d_node_graph_, static_cast<int32_t>(N), din, cfg_.aux_features);
    input_mlp_fwd(nD_[0], nf_, nh_, nD_[1], L.node_in, L.node_in_proj, N);
    ops_.embed_add(nD_[0], D, params_ + L.pos, d_node_slot_, N, D);
    ops_.copy_cols(n0_, H, nD_[0], D, N, D, false);
    ops_.set_time(n0_, t_, d_node_graph_, ref_time ? d_node_is_input_ : nullptr, N, H);
    });

    const T* n_in = n0_;
    const T* e_in = e0_;
    for (int i = 0; i < cfg_.layers; ++i) {
      LayerActs a = training ? work_set(i) : acts_[0];
      T* n_out = a.n_out;
      T* e_out = a.e_out;
      if (!training && (i % 2 == 1)) {  // ping-pong so the input of a layer is never its output buffer
        n_out = n_alt_;
        e_out = e_alt_;
      }
      layer_fwd(L.layers[i], a, n_in, e_in, n_out, e_out);
      n_in = n_out;
      e_in = e_out;
    }
    work_layer_ = training ? cfg_.layers - 1 : -1;
    n_last_ = n_in;
    e_last_ = e_in;
    region("fwd.heads", [&] {
    // Heads on real forward pairs and non-input nodes, scattered into the flat layout.
    const int64_t Eo = static_cast<int64_t>(graph_.out_edge.size()), No = static_cast<int64_t>(graph_.out_node.size());
    for_head_chunks(Eo, [&](int64_t j0, int64_t rows) {
      ops_.gather_rows(he_in_, e_last_, d_out_edge_ + j0, rows, H);
      head_fwd(he_out_ + j0, he_in_, he_h1_, he_h2_, mD_[0], L.edge_head, rows);
      ops_.scatter_flat(xhat_, he_out_ + j0, d_out_edge_param_ + j0, rows);
    });
    ops_.gather_rows(hn_in_, n_last_, d_out_node_, No, H);
    head_fwd(hn_out_, hn_in_, hn_h1_, hn_h2_, nD_[0], L.node_head, No);
    ops_.scatter_flat(xhat_, hn_out_, d_out_node_param_, No);
    });
    fwd_done_ = true;
    last_fwd_saved_ = training;
    (void)D;
  }

  // The activations of layer i in training mode: its own set, or in recompute mode the shared work set (set 0)
  // with layer i's output states.
  LayerActs work_set(int i) const {
    if (!cfg_.recompute || i == 0) return acts_[static_cast<size_t>(i)];
    LayerActs w = acts_[0];
    w.n_out = acts_[static_cast<size_t>(i)].n_out;
    w.e_out = acts_[static_cast<size_t>(i)].e_out;
    return w;
  }

  // layer_fwd inside one enclosing profile region (its own fwd.* regions would nest).
  void layer_fwd_body(const LayerOff& p, LayerActs& a, const T* n_in, const T* e_in, T* n_out, T* e_out) {
    const bool was = prof_.enabled;
    prof_.enabled = false;
    layer_fwd(p, a, n_in, e_in, n_out, e_out);
    prof_.enabled = was;
  }

  // Runs fn(r0, r1, k0, pairs) over the row chunks of chunked mode (rows [r0, r1), their pairs from k0 on), or
  // once over the whole graph otherwise.
  template <class F>
  void for_pair_chunks(F&& fn) {
    if (!ck_) {
      fn(0, static_cast<int32_t>(graph_.N), int64_t(0), graph_.M);
      return;
    }
    for (const auto& [r0, r1] : chunks_) {
      const int64_t k0 = graph_.row_ptr[r0];
      fn(r0, r1, k0, static_cast<int64_t>(graph_.row_ptr[r1]) - k0);
    }
  }
  // Runs fn(j0, rows) over the pair head's Eo rows: in chunks of head_chunk_ in chunked mode, else once.
  template <class F>
  void for_head_chunks(int64_t Eo, F&& fn) {
    const int64_t step = ck_ ? head_chunk_ : std::max<int64_t>(Eo, 1);
    for (int64_t j0 = 0; j0 < Eo; j0 += step) fn(j0, std::min(step, Eo - j0));
  }

  void layer_fwd(const LayerOff& p, LayerActs& a, const T* n_in, const T* e_in, T* n_out, T* e_out) {
    const int64_t N = graph_.N, M = graph_.M;
    const int D = cfg_.D, H = cfg_.H();
    // Attention sub-layer (chunked mode: the pair projections per row chunk, used at once).
    // On the CPU the pair projections are computed in cache-sized blocks of rows and attended at once
    // (attention_proj_fwd), kept for a backward only.
    constexpr bool cpu = Ops::device == Device::Cpu;
    if (!ck_) {
      region("fwd.qkv", [&] {
        lin(a.Pn, n_in, p.qkv_node, N);
        if constexpr (!cpu) lin(a.Pe, e_in, p.qkv_edge, M);
      });
      region("fwd.attention", [&] {
        if constexpr (cpu) {
          ops_.attention_proj_fwd(a.o, a.alpha, keep_acts_ ? a.Pe : nullptr, a.Pn, e_in, W(p.qkv_edge), d_row_ptr_,
                                  d_edge_col_, 0, static_cast<int32_t>(N), 0, D, H, cfg_.heads);
        } else {
          ops_.attention_fwd(a.o, a.alpha, a.Pn, a.Pe, d_row_ptr_, d_edge_col_, static_cast<int32_t>(N), D, cfg_.heads);
        }
      });
    } else {
      region("fwd.attention", [&] {
        lin(a.Pn, n_in, p.qkv_node, N);
        for_pair_chunks([&](int32_t r0, int32_t r1, int64_t k0, int64_t rows) {
          if constexpr (cpu) {
            ops_.attention_proj_fwd(a.o, a.alpha, a.Pe, a.Pn, e_in, W(p.qkv_edge), d_row_ptr_, d_edge_col_, r0, r1, k0, D,
                                    H, cfg_.heads);
          } else {
            lin(a.Pe, e_in + k0 * H, p.qkv_edge, rows);
            ops_.attention_fwd_rows(a.o, a.alpha, a.Pn, a.Pe, d_row_ptr_, d_edge_col_, r0, r1, k0, D, cfg_.heads);
          }
        });
      });
    }
    region("fwd.node", [&] {
      lin(a.attn, a.o, p.attn_out, N);
      // n̄ = LN0(n + Lin0(attn))
      lin(nH_, a.attn, p.lin0, N);
      ops_.add(nH_, nH_, n_in, N * H);
      ops_.layernorm_fwd(a.nbar, a.nxh0, a.nrs0, nH_, params_ + p.node_ln0.g, params_ + p.node_ln0.b, N, H);
      // n' = LN1(n̄ + Lin(GELU(Lin(n̄))))
      mlp_residual_fwd(n_out, a.nxh1, a.nrs1, a.nh1, a.nbar, nD_[0], nH_, p.node_mlp0, p.node_mlp2, p.node_ln1, N);
      // Node terms of the pair update.
      lin(nD_[0], n_out, p.lin0_s, N);
      lin(nD_[1], n_out, p.lin0_t, N);
    });
    // Pair update: z = Lin_e([e_uv; e_vu]) + Lin_s(n'_u) + Lin_t(n'_v). On the CPU it is computed block by block
    // inside the fused pair MLP (edge_update_fwd: the same products and sums; z is kept only for a backward).
    // Elsewhere e·W_e1 goes straight into z, e·W_e2 into scratch (chunked mode: the work set's second pair block),
    // combined in place.
    if constexpr (Ops::device != Device::Cpu) {
      region("fwd.edge_z", [&] {
        T* y1 = a.z;
        T* y2 = ck_ ? a.z + M * D : mD_[1];
        ops_.linear_fwd(y1, e_in, W(p.lin0_e), nullptr, M, H, D, 2 * H, false);
        ops_.linear_fwd(y2, e_in, W(p.lin0_e) + H, nullptr, M, H, D, 2 * H, false);
        ops_.edge_combine_fwd(a.z, y1, y2, nD_[0], nD_[1], Bp(p.lin0_e), d_edge_row_, d_edge_col_, d_edge_rev_, M, D);
      });
    }
    region("fwd.edge_mlp", [&] {
      for_pair_chunks([&](int32_t, int32_t, int64_t k0, int64_t rows) {
        if constexpr (Ops::device == Device::Cpu) {
          edge_update_fwd_rows(p, a, e_out + k0 * H, e_in, k0, rows);
        } else {
          edge_mlp_fwd_rows(p, a, e_out + k0 * H, a.z + k0 * D, e_in + k0 * H, rows);
        }
      });
    });
  }

  // CPU: the pair update and the pair MLP over pairs [k0, k0 + rows) in one pass of cache-sized blocks (z kept in
  // the work set's z for a backward, else only in block scratch).
  void edge_update_fwd_rows(const LayerOff& p, LayerActs& a, T* e_out, const T* e_in, int64_t k0, int64_t rows) {
    const int D = cfg_.D, H = cfg_.H();
    const bool keep = keep_acts_;
    ops_.edge_update_fwd(keep ? a.z + k0 * D : nullptr, keep ? a.ebar : nullptr, keep ? a.exh2 : nullptr,
                         keep ? a.ers2 : nullptr, keep ? a.eh3 : nullptr, keep ? a.exh3 : nullptr, keep ? a.ers3 : nullptr,
                         e_out, e_in, W(p.lin0_e), Bp(p.lin0_e), nD_[0], nD_[1], d_edge_row_, d_edge_col_, d_edge_rev_, k0,
                         W(p.lin1), Bp(p.lin1), params_ + p.eln0.g, params_ + p.eln0.b, W(p.edge_mlp0), W(p.edge_mlp2),
                         Bp(p.edge_mlp2), params_ + p.eln1.g, params_ + p.eln1.b, rows, D, H);
  }

  // The pair MLP over `rows` pairs: ē = LN2(e + Lin1(GELU(z))), e' = LN3(ē + Lin(GELU(Lin(ē)))); its saved
  // activations at the start of the work set's arrays (one chunk in chunked mode).
  void edge_mlp_fwd_rows(const LayerOff& p, LayerActs& a, T* e_out, const T* z, const T* e_in, int64_t rows) {
    const int D = cfg_.D, H = cfg_.H();
    if constexpr (Ops::device == Device::Cpu) {
      // Not kept (an inference forward; on the CPU its buffers are not even allocated): the block's intermediates
      // stay in the op's own block-sized scratch.
      const bool keep = keep_acts_;
      ops_.edge_mlp_fwd(keep ? a.ebar : nullptr, keep ? a.exh2 : nullptr, keep ? a.ers2 : nullptr, keep ? a.eh3 : nullptr,
                        keep ? a.exh3 : nullptr, keep ? a.ers3 : nullptr, e_out, z, e_in, W(p.lin1), Bp(p.lin1),
                        params_ + p.eln0.g, params_ + p.eln0.b, W(p.edge_mlp0), W(p.edge_mlp2), Bp(p.edge_mlp2),
                        params_ + p.eln1.g, params_ + p.eln1.b, rows, D, H);
      return;
    }
    // ē = LN2(e + Lin1(GELU(z)))
    ops_.act_fwd(mD_[0], z, rows * D, Act::Gelu);
    lin(mH_, mD_[0], p.lin1, rows);
    ops_.add(mH_, mH_, e_in, rows * H);
    ops_.layernorm_fwd(a.ebar, a.exh2, a.ers2, mH_, params_ + p.eln0.g, params_ + p.eln0.b, rows, H);
    // e' = LN3(ē + Lin(GELU(Lin(ē))))
    mlp_residual_fwd(e_out, a.exh3, a.ers3, a.eh3, a.ebar, mD_[0], mH_, p.edge_mlp0, p.edge_mlp2, p.eln1, rows);
  }

  // out = LN(x + Lin_m2(GELU(Lin_m0(x)))) over `rows` rows of H (the node and pair MLP blocks): saves h = Lin_m0(x)
  // and the LayerNorm's x̂ and 1/σ; tmp (rows × D) and buf (rows × H) are scratch.
  void mlp_residual_fwd(T* out, T* xh, T* rs, T* h, const T* x, T* tmp, T* buf, const LinOff& m0, const LinOff& m2,
                        const LnOff& ln, int64_t rows) {
    lin(h, x, m0, rows);
    ops_.act_fwd(tmp, h, rows * cfg_.D, Act::Gelu);
    lin(buf, tmp, m2, rows);
    ops_.add(buf, buf, x, rows * cfg_.H());
    ops_.layernorm_fwd(out, xh, rs, buf, params_ + ln.g, params_ + ln.b, rows, cfg_.H());
  }

  // ---------------------------------------------------------------------------------------------------------
  // backward
  void backward(bool input_grad) {
    const int64_t N = graph_.N, M = graph_.M;
    const int D = cfg_.D, H = cfg_.H();
    const RtLayout& L = layout_;
    const int64_t Eo = static_cast<int64_t>(graph_.out_edge.size()), No = static_cast<int64_t>(graph_.out_node.size());
    // Heads: ∂L/∂x̂1 → head inputs → final states.
    T* dE = dE_[0];
    T* dN = dN_[0];
    region("bwd.heads", [&] {
    ops_.gather_flat(dHe_out_, dxhat_, d_out_edge_param_, Eo);
    ops_.zero(dE, M * H);
    for_head_chunks(Eo, [&](int64_t j0, int64_t rows) {
      if (ck_) {  // the head's activations of this chunk again
        ops_.gather_rows(he_in_, e_last_, d_out_edge_ + j0, rows, H);
        head_fwd(he_out_ + j0, he_in_, he_h1_, he_h2_, mD_[0], L.edge_head, rows);
      }
      head_bwd(dHe_in_, dHe_out_ + j0, he_in_, he_h1_, he_h2_, dHe_a_, dHe_b_, L.edge_head, rows);
      ops_.scatter_rows(dE, dHe_in_, d_out_edge_ + j0, rows, H, false);
    });
    ops_.gather_flat(dHn_out_, dxhat_, d_out_node_param_, No);
    head_bwd(dHn_in_, dHn_out_, hn_in_, hn_h1_, hn_h2_, dHn_a_, dHn_b_, L.node_head, No);
    ops_.zero(dN, N * H);
    ops_.scatter_rows(dN, dHn_in_, d_out_node_, No, H, false);
    });
    // Layers in reverse.
    for (int i = cfg_.layers - 1; i >= 0; --i) {
      const T* n_in = i == 0 ? n0_ : acts_[i - 1].n_out;
      const T* e_in = i == 0 ? e0_ : acts_[i - 1].e_out;
      T* dE_in = dE_[(cfg_.layers - i) % 2];
      T* dN_in = dN_[(cfg_.layers - i) % 2];
      LayerActs a = work_set(i);
      if (cfg_.recompute && work_layer_ != i) {
        // The layer's forward again from its stored input, into the work set (its outputs are rewritten with the
        // same values: the kernels are deterministic).
        region("bwd.recompute", [&] { layer_fwd_body(L.layers[i], a, n_in, e_in, a.n_out, a.e_out); });
        work_layer_ = i;
      }
      layer_bwd(L.layers[i], a, n_in, e_in, dN, dE, dN_in, dE_in);
      if (cfg_.recompute) work_layer_ = -1;  // ∂L/∂Pe overwrote the work set's pair-MLP block
      dN = dN_in;
      dE = dE_in;
    }
    // Inputs: state gradients → embeddings → input MLPs.
    region("bwd.inputs", [&] {
    // Recompute mode: the pair input MLP's hidden activations again (they share the work set's block).
    const int din = cfg_.din();
    for_pair_chunks([&](int32_t, int32_t, int64_t k0, int64_t rows) {
      if (cfg_.recompute) input_mlp_fwd(mD_[1], ef_ + k0 * din, eh_, mD_[2], L.edge_in, L.edge_in_proj, rows);
      ops_.copy_cols(mD_[0], D, dE + k0 * H, H, rows, D, false);
      if (L.dir >= 0 && param_grads_) ops_.embed_bwd(grads_ + L.dir, mD_[0], D, d_edge_dir_ + k0, rows, D, L.dir_rows);
      input_mlp_bwd(mD_[0], ef_ + k0 * din, eh_, mD_[1], mD_[2], L.edge_in, L.edge_in_proj, rows,
                    input_grad ? dEf_ + k0 * din : nullptr);
    });
    ops_.copy_cols(nD_[0], D, dN, H, N, D, false);
    if (param_grads_) ops_.embed_bwd(grads_ + L.pos, nD_[0], D, d_node_slot_, N, D, L.pos_rows);
    input_mlp_bwd(nD_[0], nf_, nh_, nD_[1], nD_[2], L.node_in, L.node_in_proj, N, input_grad ? dNf_ : nullptr);
    if (input_grad) {
      // Features → flat input: each weight from its forward pair (+ reverse pair), each bias from its node.
      ops_.zero(dxt_, graph_.P);  // every entry is overwritten below; zeroing first keeps any gap defined
      ops_.edge_features_bwd(dxt_, dEf_, d_out_edge_, d_edge_rev_, d_out_edge_param_, Eo, din, cfg_.reverse_value);
      ops_.node_features_bwd(dxt_, dNf_, d_out_node_, d_out_node_param_, No, din);
    }
    });
  }

  // dN_out/dE_out: gradients w.r.t. the layer's outputs (consumed); dN_in/dE_in: written.
  void layer_bwd(const LayerOff& p, LayerActs& a, const T* n_in, const T* e_in, T* dN_out, T* dE_out, T* dN_in,
                 T* dE_in) {
    const int64_t N = graph_.N, M = graph_.M;
    const int D = cfg_.D, H = cfg_.H();
    // Chunked mode: ∂L/∂z in the second pair block, the pair MLP's activations recomputed chunk by chunk.
    T* dz = ck_ ? a.z + M * D : mD_[1];
    region("bwd.edge_mlp", [&] {
      for_pair_chunks([&](int32_t, int32_t, int64_t k0, int64_t rows) {
        if (ck_) edge_mlp_fwd_rows(p, a, a.e_out + k0 * H, a.z + k0 * D, e_in + k0 * H, rows);
        edge_mlp_bwd_rows(p, a, dE_in + k0 * H, dz + k0 * D, dE_out + k0 * H, a.z + k0 * D, rows);
      });
    });
    region("bwd.edge_z", [&] {
      if constexpr (Ops::device == Device::Cpu) {
        if (!ck_) {  // in blocks of rows, ∂L/∂(e·We2ᵀ) never whole
          ops_.edge_update_bwd(dE_in, param_grads_ ? dW(p.lin0_e) : nullptr, nD_[0], nD_[1], dB(p.lin0_e), dz, e_in,
                               W(p.lin0_e), d_row_ptr_, d_edge_rev_, static_cast<int32_t>(N), D, H);
          return;
        }
      }
      // z = e·We1ᵀ + (e·We2ᵀ)[rev] + S[row] + T[col] + b (chunked mode: ∂L/∂(e·We2ᵀ) where z was, now dead)
      T* dY2 = ck_ ? a.z : mD_[0];
      ops_.edge_combine_bwd(dY2, nD_[0], nD_[1], dB(p.lin0_e), dz, d_row_ptr_, d_edge_rev_, static_cast<int32_t>(N), M, D);
      if (param_grads_) {
        ops_.linear_bwd_weight(dW(p.lin0_e), nullptr, dz, e_in, M, H, D, 2 * H);
        ops_.linear_bwd_weight(dW(p.lin0_e) + H, nullptr, dY2, e_in, M, H, D, 2 * H);
      }
      ops_.linear_bwd_data(dE_in, dz, W(p.lin0_e), M, H, D, 2 * H, true);
      ops_.linear_bwd_data(dE_in, dY2, W(p.lin0_e) + H, M, H, D, 2 * H, true);
    });
    region("bwd.node", [&] {
      // S = Lin_s(n'), T = Lin_t(n'): accumulate into ∂L/∂n'
      const T* n_out = a.n_out;
      lin_bwd(dN_out, nD_[0], n_out, p.lin0_s, N, true);
      lin_bwd(dN_out, nD_[1], n_out, p.lin0_t, N, true);
      // n' = LN1(y1), y1 = n̄ + Lin_n2(GELU(Lin_n0(n̄)))
      ops_.layernorm_bwd(dNbar_, grads_ + p.node_ln1.g, grads_ + p.node_ln1.b, dN_out, a.nxh1, a.nrs1, params_ + p.node_ln1.g, N, H, false);
      ops_.act_fwd(nD_[0], a.nh1, N * D, Act::Gelu);
      lin_bwd(nD_[1], dNbar_, nD_[0], p.node_mlp2, N, false);
      ops_.act_bwd(nD_[1], nD_[1], a.nh1, N * D, Act::Gelu, false);
      lin_bwd(dNbar_, nD_[1], a.nbar, p.node_mlp0, N, true);
      // n̄ = LN0(y0), y0 = n + Lin0(Lin_o(o))
      ops_.layernorm_bwd(dN_in, grads_ + p.node_ln0.g, grads_ + p.node_ln0.b, dNbar_, a.nxh0, a.nrs0, params_ + p.node_ln0.g, N, H, false);
      lin_bwd(nH_, dN_in, a.attn, p.lin0, N, false);                  // nH = ∂L/∂attn
      lin_bwd(nD_[2], nH_, a.o, p.attn_out, N, false);                // nD2 = ∂L/∂o
    });
    if (!ck_) {
      if constexpr (Ops::device == Device::Cpu) {
        // The attention backward and the pair projections' backward in blocks of rows (∂L/∂Pe never whole); the
        // pair scratch is free here (∂L/∂z and ∂L/∂Y2 are spent).
        region("bwd.attention", [&] {
          ops_.attention_proj_bwd(dPn_, dE_in, param_grads_ ? dW(p.qkv_edge) : nullptr, mD_[0], mD_[1], nD_[2], a.alpha,
                                  a.Pn, a.Pe, e_in, W(p.qkv_edge), d_row_ptr_, d_edge_col_, d_edge_rev_,
                                  static_cast<int32_t>(N), D, H, cfg_.heads);
        });
        region("bwd.qkv", [&] { lin_bwd(dN_in, dPn_, n_in, p.qkv_node, N, true); });
        return;
      }
      region("bwd.attention", [&] {
        ops_.attention_bwd(dPn_, dPe_, nD_[2], a.alpha, a.Pn, a.Pe, d_row_ptr_, d_edge_col_, d_edge_rev_, static_cast<int32_t>(N), D, cfg_.heads);
      });
      region("bwd.qkv", [&] {
        lin_bwd(dE_in, dPe_, e_in, p.qkv_edge, M, true);
        lin_bwd(dN_in, dPn_, n_in, p.qkv_node, N, true);
      });
      return;
    }
    // Chunked: per row chunk the pair projections again, the rows' pass (column operands saved over both pair
    // blocks, dead now) and the projection's backward; then the column pass.
    region("bwd.attention", [&] {
      T* colbuf = a.z;
      for_pair_chunks([&](int32_t r0, int32_t r1, int64_t k0, int64_t rows) {
        lin(a.Pe, e_in + k0 * H, p.qkv_edge, rows);
        ops_.attention_bwd_rows(dPn_, dPe_, colbuf, nD_[2], a.alpha, a.Pn, a.Pe, d_row_ptr_, d_edge_col_, r0, r1, k0, D,
                                cfg_.heads);
        lin_bwd(dE_in + k0 * H, dPe_, e_in + k0 * H, p.qkv_edge, rows, true);
      });
      ops_.attention_bwd_cols(dPn_, colbuf, d_row_ptr_, d_edge_rev_, static_cast<int32_t>(N), D, cfg_.heads);
      lin_bwd(dN_in, dPn_, n_in, p.qkv_node, N, true);
    });
  }

  // Backward of edge_mlp_fwd_rows over `rows` pairs from ∂L/∂e' (dE_out): writes ∂L/∂e (dE_in) and ∂L/∂z (dz, also
  // the scratch of ∂L/∂h3 on the op-sequence path), accumulates the pair MLP's parameter gradients.
  void edge_mlp_bwd_rows(const LayerOff& p, LayerActs& a, T* dE_in, T* dz, const T* dE_out, const T* z, int64_t rows) {
    const int D = cfg_.D, H = cfg_.H();
    if constexpr (Ops::device == Device::Cpu) {
      ops_.edge_mlp_bwd(dE_in, dz, grads_ + p.eln1.g, grads_ + p.eln1.b, dW(p.edge_mlp2), dB(p.edge_mlp2),
                        dW(p.edge_mlp0), grads_ + p.eln0.g, grads_ + p.eln0.b, dW(p.lin1), dB(p.lin1), dE_out, a.exh3,
                        a.ers3, params_ + p.eln1.g, a.eh3, a.ebar, W(p.edge_mlp2), W(p.edge_mlp0), a.exh2, a.ers2,
                        params_ + p.eln0.g, z, W(p.lin1), rows, D, H, param_grads_);
      return;
    }
    // e' = LN3(y3), y3 = ē + Lin_m2(GELU(Lin_m0(ē)))
    ops_.layernorm_bwd(dEbar_, grads_ + p.eln1.g, grads_ + p.eln1.b, dE_out, a.exh3, a.ers3, params_ + p.eln1.g, rows, H, false);
    ops_.act_fwd(mD_[0], a.eh3, rows * D, Act::Gelu);
    lin_bwd(dz, dEbar_, mD_[0], p.edge_mlp2, rows, false);         // dz = ∂L/∂GELU(h3)
    ops_.act_bwd(dz, dz, a.eh3, rows * D, Act::Gelu, false);        // dz = ∂L/∂h3
    lin_bwd(dEbar_, dz, a.ebar, p.edge_mlp0, rows, true);           // dĒ += via Lin_m0
    // ē = LN2(y2), y2 = e + Lin1(GELU(z))
    ops_.layernorm_bwd(dE_in, grads_ + p.eln0.g, grads_ + p.eln0.b, dEbar_, a.exh2, a.ers2, params_ + p.eln0.g, rows, H, false);
    ops_.act_fwd(mD_[0], z, rows * D, Act::Gelu);
    lin_bwd(dz, dE_in, mD_[0], p.lin1, rows, false);                // dz = ∂L/∂GELU(z)
    ops_.act_bwd(dz, dz, z, rows * D, Act::Gelu, false);            // dz = ∂L/∂z
  }

  // ---------------------------------------------------------------------------------------------------------
  RtConfig cfg_;
  RtLayout layout_;
  RtProfile prof_;
  Ops ops_;
  RtGraph graph_;
  std::vector<std::vector<int32_t>> graph_widths_;
  bool graph_ready_ = false, acts_ready_ = false, acts_training_ = false, fwd_done_ = false, last_fwd_saved_ = false;
  bool keep_acts_ = true;  // the forward in progress keeps the layers' activations (a training-mode forward)
  bool param_grads_ = true;  // false during an input-only backward (weight-gradient GEMMs skipped)
  int work_layer_ = -1;      // recompute mode: the layer whose activations the work set holds (-1: none)
  bool ck_ = false;          // chunked recompute mode: the allocated activations are per chunk (ensure_acts)
  std::vector<std::pair<int32_t, int32_t>> chunks_;  // its row chunks (plan_chunks)
  int64_t head_chunk_ = 1;   // its pair-head rows per chunk
  int64_t step_ = 0;
  int64_t held_bytes_ = 0, act_bytes_ = 0, graph_bytes_ = 0;
  std::vector<void*> owned_, act_owned_, graph_owned_;

  T *params_ = nullptr, *grads_ = nullptr, *adam_m_ = nullptr, *adam_v_ = nullptr;
  T* junk_grads_ = nullptr;  // parameter-gradient sink of input-only backward passes (allocated on first use)
  int32_t *d_node_graph_ = nullptr, *d_node_slot_ = nullptr, *d_node_param_ = nullptr, *d_node_is_input_ = nullptr;
  int32_t *d_row_ptr_ = nullptr, *d_edge_row_ = nullptr, *d_edge_col_ = nullptr, *d_edge_rev_ = nullptr;
  int32_t *d_edge_dir_ = nullptr, *d_edge_param_ = nullptr, *d_edge_graph_ = nullptr, *d_edge_fwd_mask_ = nullptr;
  int32_t *d_out_edge_ = nullptr, *d_out_edge_param_ = nullptr, *d_out_node_ = nullptr, *d_out_node_param_ = nullptr;

  T *xt_ = nullptr, *aux_ = nullptr, *t_ = nullptr, *xhat_ = nullptr, *dxhat_ = nullptr, *target_ = nullptr;
  T *ef_ = nullptr, *nf_ = nullptr, *eh_[3] = {nullptr, nullptr, nullptr}, *nh_[3] = {nullptr, nullptr, nullptr};
  T *e0_ = nullptr, *n0_ = nullptr, *n_alt_ = nullptr, *e_alt_ = nullptr;
  const T *n_last_ = nullptr, *e_last_ = nullptr;
  std::vector<LayerActs> acts_;
  T *mD_[3] = {nullptr, nullptr, nullptr}, *mH_ = nullptr, *nD_[4] = {nullptr, nullptr, nullptr, nullptr}, *nH_ = nullptr;
  T *he_in_ = nullptr, *he_h1_ = nullptr, *he_h2_ = nullptr, *he_out_ = nullptr;
  T *hn_in_ = nullptr, *hn_h1_ = nullptr, *hn_h2_ = nullptr, *hn_out_ = nullptr;
  T *dE_[2] = {nullptr, nullptr}, *dEbar_ = nullptr, *dPe_ = nullptr, *dN_[2] = {nullptr, nullptr}, *dNbar_ = nullptr, *dPn_ = nullptr;
  T *dHe_in_ = nullptr, *dHe_a_ = nullptr, *dHe_b_ = nullptr, *dHe_out_ = nullptr;
  T *dHn_in_ = nullptr, *dHn_a_ = nullptr, *dHn_b_ = nullptr, *dHn_out_ = nullptr;
  T *dEf_ = nullptr, *dNf_ = nullptr, *dxt_ = nullptr;  // input-gradient path: ∂L/∂features, ∂L/∂x_t
};

}  // namespace wsf
