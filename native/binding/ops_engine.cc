// The vector-field engine as a JS class (node-addon-api glue only; the math is in core/rt_*.h).
//
//   new NativeEngine(config: {D, layers, heads, inputSlots, hiddenSlots, outputSlots, mode: 'sparse'|'dense'|'hybrid'|'virtual',
//                     timeRule: 'all'|'reference', dirEmbed, reverseValue, inFeatures, auxFeatures, recompute,
//                     chunkRows},
//                     seed: number,
//                     device: 'cpu'|'cuda', dtype: 'f32'|'f64')
//   .setGraph(widths: number[][]): void               — the batch's architectures (one entry per network)
//   .forward(xt, t, out, training: boolean, aux?): void — xt: P_total, t: G, out: P_total (Float32Array, or
//                                                       Float64Array for dtype 'f64'); aux (P_total × auxFeatures,
//                                                       same dtype): the extra input columns, required iff auxFeatures > 0
//   .backward(dxhat, dxt?: array | null, paramGrads?: boolean): void
//                                                     — accumulates parameter gradients (unless paramGrads is
//                                                       false: then they are left untouched); with `dxt` (P_total,
//                                                       the engine's dtype) also writes ∂L/∂x_t there
//   .mse(target, backward: boolean): number            — mean squared error (and its backward)
//   .zeroGrad(): void
//   .adamStep(lr, beta1, beta2, eps, weightDecay, clipNorm): number   — returns the gradient norm before clipping
//   .getParams(out) / .setParams(in) / .getGrads(out) / .getAdam(m, v) / .setAdam(m, v)
//   .stepCount: number (get/set via getStepCount/setStepCount)
//   .paramTable(): {name, shape, offset, size}[]
//   .graphInfo(): {G, N, M, P}
//   .numParams(): number;  .bytesHeld(): number;  .dispose(): void
//   .trainingBytes(recompute: boolean, chunkRows?: number, device?: 'cpu'|'cuda'): number — bytesHeld after a
//     training forward on the current graph in that mode (chunkRows: the configured one when omitted) by an engine on
//     `device` (default: this engine's; the CPU keeps some pair-sized arrays in block scratch)
//   .setRecompute(on: boolean): void — recompute mode between training passes (activations reallocated)
//   .setChunkRows(n: number): void — chunked recompute mode's pairs per chunk (0: none), likewise
//   .inferenceGraphBytes(device?: 'cpu'|'cuda'): number — the current graph's index arrays plus its inference
//     activations (on `device`, as trainingBytes)
//   .setMatmul('f32' | 'bf16'): void — precision of the CPU float engine's products against packed weights (bf16:
//     operands rounded to bf16, sums in float; CPUs with AVX-512 BF16 only: ERR_INVALID elsewhere, and on CUDA or
//     f64 engines); .matmul(): 'f32' | 'bf16'
//   .setProfiling(on: boolean): void (also resets)  .profile(): {[region]: {seconds, calls}} — per-region wall time
//     with backend synchronisation (WSF_PROFILE=1 turns it on at construction)
//   The device-resident flow step (core/flow_step.h; f32 engines only):
//   .flowConfigure({widths, sphere, canonical, mode: 'accurate'|'reference', lastNorm, precondition, sigma},
//                  scale: Float32Array (P) | null): void
//   .flowSetData(data: Float32Array (n·P)): void      — the training set: copied to the device (CUDA) or used in
//                                                       place (CPU: the engine keeps a reference to the array)
//   .flowSetPrior({kind: 'gaussian', mean, std} | {kind: 'fit', means: Float32Array (K·P), basis: Float32Array (R·P)
//                 | null, rows: Int32Array (K+1) | null, std, perRow: boolean} | null): void — the prior drawn on the
//                                                       device when flowStep gets no x0 (null: none)
//   .flowStep(idx: Int32Array (B) | null, x1: Float32Array (B·P) | null, x0: Float32Array (B·P) | null,
//             priorSeeds: Int32Array (2 or 2B) | null, priorComp: Int32Array (B) | null, canonX0: boolean,
//             t: Float32Array (B), seedHi, seedLo, lr, beta1, beta2, eps, weightDecay, clipNorm): [loss, gradNorm]
//                                                     — needs setGraph with B copies of the configured widths
//   .flowStepAsync(same arguments): Promise<[loss, gradNorm]> — the step on a libuv pool thread; until it settles
//                                                       every other call on the engine throws ERR_CONTEXT_BUSY
//   .flowSetEma(init: Float32Array (numParams), decay): void — keep the parameters' EMA on the device, updated
//                                                       after every flowStep;  .flowGetEma(out: Float32Array): void
//   .flowSample(x0: Float32Array (B·P), grid: Float64Array, anchored: boolean, canonicalEnd: boolean,
//               out: Float32Array (B·P), solver?: 'euler'|'midpoint'|'rk4'): void — the sampler on the device
//               (needs setGraph with B copies)
//   .flowSampleAsync(same arguments): Promise<out> — the sampler on a libuv pool thread (engine busy meanwhile)
//   .flowBytesHeld(): number;  .flowRelease(): void  — frees the step's buffers and drops its training set
//   .flowSetMode('plain'|'sync'|'graph'): void — how flowStep runs on CUDA (FlowStep::Mode; default from the
//                                                       environment's WSF_CUDA_GRAPH; CPU engines always run plain)
//   .flowModeInfo(): {mode, syncFreeSteps, captures, replays, captureFailures}
// Every method validates its arguments (kind, length) and throws a WsfError with a code; a disposed engine
// throws ERR_DISPOSED.
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "binding/addon.h"
#include "core/flow_step.h"
#include "core/rt_engine.h"
#include "core/rt_ops.h"
#if defined(WSF_WITH_CUDA) && __has_include("core/rt_ops_cuda.h")
#include "core/device.h"
#include "core/rt_ops_cuda.h"
#define WSF_CUDA_ENGINE 1
#endif

namespace wsf::binding {
namespace {

// Parameters of an MLP with these widths (weights and biases of every layer).
int64_t mlp_params(const std::vector<int32_t>& widths) {
  int64_t P = 0;
  for (size_t l = 1; l < widths.size(); ++l) P += int64_t(widths[l - 1]) * widths[l] + widths[l];
  return P;
}

// Type-erased engine: the host dtype is float for CPU-f32 and CUDA, double for the CPU-f64 reference.
struct EngineHandle {
  virtual ~EngineHandle() = default;
  virtual bool f64() const = 0;
  virtual Device device() const = 0;
  virtual Status init(uint64_t seed) = 0;
  virtual Status set_graph(const std::vector<std::vector<int32_t>>& widths) = 0;
  virtual Status forward(const void* xt, const void* t, void* out, bool training, const void* aux) = 0;
  virtual Status backward(const void* dxhat, void* dxt, bool param_grads) = 0;
  virtual Status mse(const void* target, double* loss, bool backward) = 0;
  virtual Status zero_grad() = 0;
  virtual Status adam_step(const AdamHyper& h, double clip, double* norm) = 0;
  virtual Status get_params(void* out) = 0;
  virtual Status set_params(const void* in) = 0;
  virtual Status get_grads(void* out) = 0;
  virtual Status get_adam(void* m, void* v) = 0;
  virtual Status set_adam(const void* m, const void* v) = 0;
  virtual int64_t step_count() const = 0;
  virtual void set_step_count(int64_t s) = 0;
  virtual const RtLayout& layout() const = 0;
  virtual const RtGraph& graph() const = 0;
  virtual const RtConfig& config() const = 0;
  virtual int64_t bytes_held() const = 0;
  virtual int64_t training_bytes(bool recompute, int64_t chunk_rows, Device target) const = 0;
  virtual int64_t inference_graph_bytes(Device target) const = 0;
  virtual void set_recompute(bool on) = 0;
  virtual Status set_chunk_rows(int64_t n) = 0;
  virtual RtProfile& profile() = 0;
  virtual void set_profiling(bool on) = 0;
  virtual Status set_matmul(bool bf16) = 0;  // CPU float engines on CPUs with AVX-512 BF16 (gemm_bf16_available)
  virtual bool matmul_bf16() const = 0;
  virtual Status debug_get(const std::string& name, std::vector<double>* out) = 0;
  // The device-resident flow step (f32 engines; the f64 reference answers Code::Invalid).
  virtual Status flow_configure(const FlowStepConfig& c, const float* scale) = 0;
  virtual Status flow_set_data(const float* data, int64_t n) = 0;
  virtual Status flow_step(const FlowStepBatch& b, const AdamHyper& h, double clip, double* loss, double* norm) = 0;
  virtual int64_t flow_bytes() const = 0;
  virtual int64_t flow_params() const = 0;  // P of the configured architecture (0 before flow_configure)
  virtual void flow_release() = 0;
  virtual Status flow_sample(const float* x0, int64_t B, const double* grid, int64_t G, bool anchored, bool canon_end,
                             float* out, int solver) = 0;
  virtual Status flow_set_ema(const float* init, double decay) = 0;
  // kind 0: none, 1: gaussian (mean, std), 2: fit (means, K, basis, row0, std, per_row)
  virtual Status flow_set_prior(int kind, double mean, double sd, const float* means, int64_t K, const float* basis,
                                const int32_t* row0, bool per_row) = 0;
  virtual Status flow_get_ema(float* out) = 0;
  // The step's mode on CUDA (FlowStep::Mode: 0 plain, 1 sync-free, 2 graph; CPU engines keep 0) and its counters
  // (sync-free steps, graph recordings, replays, failed recordings).
  virtual Status flow_set_mode(int mode) = 0;
  virtual Status flow_mode_info(int* mode, int64_t stats[4]) = 0;
};

template <class Ops, typename HT>
struct EngineImpl final : EngineHandle {
  explicit EngineImpl(const RtConfig& cfg) : e(cfg) {}
  RtEngine<Ops> e;
  bool f64() const override { return std::is_same_v<HT, double>; }
  Device device() const override { return Ops::device; }
  Status init(uint64_t seed) override { return e.init(seed); }
  Status set_graph(const std::vector<std::vector<int32_t>>& w) override { return e.set_graph(w); }
  Status forward(const void* xt, const void* t, void* out, bool training, const void* aux) override {
    return e.forward_host(static_cast<const HT*>(xt), static_cast<const HT*>(t), static_cast<HT*>(out), training,
                          static_cast<const HT*>(aux));
  }
  Status backward(const void* d, void* dxt, bool param_grads) override {
    return e.backward_host(static_cast<const HT*>(d), static_cast<HT*>(dxt), param_grads);
  }
  Status mse(const void* target, double* loss, bool bw) override { return e.mse_host(static_cast<const HT*>(target), loss, bw); }
  Status zero_grad() override { return e.zero_grad(); }
  Status adam_step(const AdamHyper& h, double clip, double* norm) override { return e.adam_step(h, clip, norm); }
  Status get_params(void* out) override { return e.get_params(static_cast<HT*>(out)); }
  Status set_params(const void* in) override { return e.set_params(static_cast<const HT*>(in)); }
  Status get_grads(void* out) override { return e.get_grads(static_cast<HT*>(out)); }
  Status get_adam(void* m, void* v) override { return e.get_adam(static_cast<HT*>(m), static_cast<HT*>(v)); }
  Status set_adam(const void* m, const void* v) override { return e.set_adam(static_cast<const HT*>(m), static_cast<const HT*>(v)); }
  int64_t step_count() const override { return e.step_count(); }
  void set_step_count(int64_t s) override { e.set_step_count(s); }
  const RtLayout& layout() const override { return e.layout(); }
  const RtGraph& graph() const override { return e.graph(); }
  const RtConfig& config() const override { return e.config(); }
  int64_t bytes_held() const override { return e.bytes_held(); }
  int64_t training_bytes(bool recompute, int64_t chunk_rows, Device target) const override {
    return e.training_bytes(recompute, chunk_rows, target);
  }
  int64_t inference_graph_bytes(Device target) const override { return e.inference_graph_bytes(target); }
  void set_recompute(bool on) override { e.set_recompute(on); }
  Status set_chunk_rows(int64_t n) override { return e.set_chunk_rows(n); }
  RtProfile& profile() override { return e.profile(); }
  void set_profiling(bool on) override { e.set_profiling(on); }
  Status set_matmul(bool bf16) override {
    if constexpr (std::is_same_v<Ops, CpuOps<float>>) {
      if (bf16 && !gemm_bf16_available())
        return Status(Code::Invalid, std::string("bf16 products need a CPU with AVX-512 BF16 (this one: ") +
                                         gemm_isa_name(gemm_isa()) + " kernels, no BF16" +
                                         (std::getenv("WSF_NO_BF16") != nullptr ? ", WSF_NO_BF16 set" : "") + ")");
      e.ops().matmul = bf16 ? GemmPrecision::Bf16 : GemmPrecision::F32;
      return Status::ok();
    } else {
      if (bf16) return Status(Code::Invalid, Ops::device == Device::Cuda ? "bf16 products are a CPU engine option (the CUDA engine runs float)"
                                                                          : "bf16 products are a float-engine option (this engine is the f64 reference)");
      return Status::ok();
    }
  }
  bool matmul_bf16() const override {
    if constexpr (std::is_same_v<Ops, CpuOps<float>>) return e.ops().matmul == GemmPrecision::Bf16;
    else return false;
  }
  Status debug_get(const std::string& name, std::vector<double>* out) override { return e.debug_get(name, out); }

  static constexpr bool kFlow = std::is_same_v<typename Ops::Scalar, float>;
  std::unique_ptr<FlowStep<Ops>> flow;  // declared after e: destroyed first (it borrows e's ops)
  int64_t flow_P = 0;
  static Status no_flow() { return Status(Code::Invalid, "the device-resident flow step runs on f32 engines only"); }
  Status flow_configure(const FlowStepConfig& c, const float* scale) override {
    if constexpr (kFlow) {
      if (!flow) flow = std::make_unique<FlowStep<Ops>>(e);
      WSF_RETURN_IF_ERROR(flow->configure(c, scale));
      flow_P = mlp_params(c.widths);
      return Status::ok();
    } else {
      return no_flow();
    }
  }
  Status flow_set_data(const float* data, int64_t n) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      return flow->set_data(data, n);
    } else {
      return no_flow();
    }
  }
  Status flow_step(const FlowStepBatch& b, const AdamHyper& h, double clip, double* loss, double* norm) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      return flow->step(b, h, clip, loss, norm);
    } else {
      return no_flow();
    }
  }
  int64_t flow_bytes() const override { return flow ? flow->bytes_held() : 0; }
  int64_t flow_params() const override { return flow_P; }
  Status flow_set_ema(const float* init, double decay) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      return flow->set_ema(init, decay);
    } else {
      return no_flow();
    }
  }
  Status flow_set_prior(int kind, double mean, double sd, const float* means, int64_t K, const float* basis,
                        const int32_t* row0, bool per_row) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      if (kind == 0) {
        flow->clear_prior();
        return Status::ok();
      }
      if (kind == 1) return flow->set_prior_gaussian(mean, sd);
      return flow->set_prior_fit(means, K, basis, row0, sd, per_row);
    } else {
      return no_flow();
    }
  }
  Status flow_get_ema(float* out) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      return flow->get_ema(out);
    } else {
      return no_flow();
    }
  }
  Status flow_sample(const float* x0, int64_t B, const double* grid, int64_t G, bool anchored, bool canon_end,
                     float* out, int solver) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      return flow->sample(x0, B, grid, G, anchored, canon_end, out, static_cast<typename FlowStep<Ops>::Solver>(solver));
    } else {
      return no_flow();
    }
  }
  void flow_release() override {
    flow.reset();
    flow_P = 0;
  }
  Status flow_set_mode(int mode) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      if constexpr (Ops::device == Device::Cuda) flow->set_mode(static_cast<typename FlowStep<Ops>::Mode>(mode));
      (void)mode;
      return Status::ok();
    } else {
      return no_flow();
    }
  }
  Status flow_mode_info(int* mode, int64_t stats[4]) override {
    if constexpr (kFlow) {
      if (!flow) return Status(Code::Invalid, "flowConfigure first");
      const auto& st = flow->graph_stats();
      *mode = static_cast<int>(flow->mode());
      stats[0] = st.sync_free_steps;
      stats[1] = st.captures;
      stats[2] = st.replays;
      stats[3] = st.capture_failures;
      return Status::ok();
    } else {
      return no_flow();
    }
  }
};

int get_int(Napi::Env env, const Napi::Object& o, const char* key, int def, int lo, int hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsNumber()) throw_error(env, Code::DType, std::string("config.") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<int>(d) || d < lo || d > hi) {
    throw_error(env, Code::Invalid, std::string("config.") + key + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
  }
  return static_cast<int>(d);
}
bool get_bool(Napi::Env env, const Napi::Object& o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsBoolean()) throw_error(env, Code::DType, std::string("config.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
std::string get_str(Napi::Env env, const Napi::Object& o, const char* key, const std::string& def) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  if (!v.IsString()) throw_error(env, Code::DType, std::string("config.") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

// One flow step's inputs, copied from the JS arrays on the main thread so the pool thread owns what it reads (the
// resident training set stays borrowed from the array flowSetData keeps alive).
struct FlowStepJob {
  std::vector<int32_t> idx, seeds, comp;
  std::vector<float> x1, x0, t;
  FlowStepBatch batch;
  AdamHyper hyper;
  double clip = 0, loss = 0, norm = 0;
  Status status = Status::ok();
};

// An AsyncWorker that settles a Promise: work() runs on the libuv pool and returns a Status; back on the main thread
// done() runs first (the engine stops being busy), then the Promise is rejected with a WsfError carrying the Status's
// code, or resolved with result().
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* name, std::function<void()> done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), done_(std::move(done)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  virtual Status work() = 0;                       // pool thread: no JS access
  virtual Napi::Value result(Napi::Env env) = 0;  // main thread, after a successful work()

 private:
  void Execute() override { status_ = work(); }
  void OnOK() override {
    done_();
    Napi::Env env = Env();
    if (!status_.is_ok()) {
      deferred_.Reject(make_error(env, status_.code(), status_.message()).Value());
      return;
    }
    deferred_.Resolve(result(env));
  }
  void OnError(const Napi::Error& e) override {
    done_();
    deferred_.Reject(e.Value());
  }

  Napi::Promise::Deferred deferred_;
  std::function<void()> done_;
  Status status_ = Status::ok();
};

// flowStepAsync: EngineHandle::flow_step on the pool; resolves with [loss, gradNorm].
class FlowStepWorker final : public PromiseWorker {
 public:
  FlowStepWorker(Napi::Env env, EngineHandle* engine, std::unique_ptr<FlowStepJob> job, std::function<void()> done)
      : PromiseWorker(env, "wsflow:flowStep", std::move(done)), engine_(engine), job_(std::move(job)) {}

 protected:
  Status work() override { return engine_->flow_step(job_->batch, job_->hyper, job_->clip, &job_->loss, &job_->norm); }
  Napi::Value result(Napi::Env env) override {
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Number::New(env, job_->loss));
    r.Set(1u, Napi::Number::New(env, job_->norm));
    return r;
  }

 private:
  EngineHandle* engine_;
  std::unique_ptr<FlowStepJob> job_;
};

// flowSample's arguments, copied from the JS arrays on the main thread, and the end state.
struct FlowSampleJob {
  std::vector<float> x0, result;
  std::vector<double> grid;
  int64_t B = 0;
  bool anchored = false, canon_end = false;
  int solver = 0;
  Status run(EngineHandle& e) {
    return e.flow_sample(x0.data(), B, grid.data(), static_cast<int64_t>(grid.size()), anchored, canon_end,
                         result.data(), solver);
  }
};

// flowSampleAsync: FlowSampleJob::run on the pool; the end state is written into the caller's `out` array back on
// the main thread, and the Promise resolves with it.
class FlowSampleWorker final : public PromiseWorker {
 public:
  FlowSampleWorker(Napi::Env env, EngineHandle* engine, std::unique_ptr<FlowSampleJob> job, Napi::Float32Array out,
                   std::function<void()> done)
      : PromiseWorker(env, "wsflow:flowSample", std::move(done)),
        engine_(engine),
        job_(std::move(job)),
        out_(Napi::Persistent(out)) {}

 protected:
  Status work() override { return job_->run(*engine_); }
  Napi::Value result(Napi::Env env) override {
    Napi::Float32Array out = out_.Value();
    std::copy(job_->result.begin(), job_->result.end(), out.Data());
    return out;
  }

 private:
  EngineHandle* engine_;
  std::unique_ptr<FlowSampleJob> job_;
  Napi::Reference<Napi::Float32Array> out_;
};

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeEngine",
                       {
                           InstanceMethod("setGraph", &NativeEngine::SetGraph),
                           InstanceMethod("forward", &NativeEngine::Forward),
                           InstanceMethod("backward", &NativeEngine::Backward),
                           InstanceMethod("mse", &NativeEngine::Mse),
                           InstanceMethod("zeroGrad", &NativeEngine::ZeroGrad),
                           InstanceMethod("adamStep", &NativeEngine::AdamStep),
                           InstanceMethod("getParams", &NativeEngine::GetParams),
                           InstanceMethod("setParams", &NativeEngine::SetParams),
                           InstanceMethod("getGrads", &NativeEngine::GetGrads),
                           InstanceMethod("getAdam", &NativeEngine::GetAdam),
                           InstanceMethod("setAdam", &NativeEngine::SetAdam),
                           InstanceMethod("getStepCount", &NativeEngine::GetStepCount),
                           InstanceMethod("setStepCount", &NativeEngine::SetStepCount),
                           InstanceMethod("paramTable", &NativeEngine::ParamTable),
                           InstanceMethod("graphInfo", &NativeEngine::GraphInfo),
                           InstanceMethod("numParams", &NativeEngine::NumParams),
                           InstanceMethod("bytesHeld", &NativeEngine::BytesHeld),
                           InstanceMethod("trainingBytes", &NativeEngine::TrainingBytes),
                           InstanceMethod("setChunkRows", &NativeEngine::SetChunkRows),
                           InstanceMethod("inferenceGraphBytes", &NativeEngine::InferenceGraphBytes),
                           InstanceMethod("setRecompute", &NativeEngine::SetRecompute),
                           InstanceMethod("dispose", &NativeEngine::Dispose),
                           InstanceMethod("setProfiling", &NativeEngine::SetProfiling),
                           InstanceMethod("setMatmul", &NativeEngine::SetMatmul),
                           InstanceMethod("matmul", &NativeEngine::Matmul),
                           InstanceMethod("profile", &NativeEngine::Profile),
                           InstanceMethod("debugBuffer", &NativeEngine::DebugBuffer),
                           InstanceMethod("flowConfigure", &NativeEngine::FlowConfigure),
                           InstanceMethod("flowSetData", &NativeEngine::FlowSetData),
                           InstanceMethod("flowStep", &NativeEngine::FlowStep),
                           InstanceMethod("flowStepAsync", &NativeEngine::FlowStepAsync),
                           InstanceMethod("flowBytesHeld", &NativeEngine::FlowBytesHeld),
                           InstanceMethod("flowSetMode", &NativeEngine::FlowSetMode),
                           InstanceMethod("flowModeInfo", &NativeEngine::FlowModeInfo),
                           InstanceMethod("flowRelease", &NativeEngine::FlowRelease),
                           InstanceMethod("flowSetEma", &NativeEngine::FlowSetEma),
                           InstanceMethod("flowSetPrior", &NativeEngine::FlowSetPrior),
                           InstanceMethod("flowSample", &NativeEngine::FlowSample),
                           InstanceMethod("flowSampleAsync", &NativeEngine::FlowSampleAsync),
                           InstanceMethod("flowGetEma", &NativeEngine::FlowGetEma),
                       });
  }

  explicit NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw_error(env, Code::Invalid, "NativeEngine expects a config object");
    Napi::Object c = info[0].As<Napi::Object>();
    RtConfig cfg;
    cfg.D = get_int(env, c, "D", 32, 1, 4096);
    cfg.layers = get_int(env, c, "layers", 5, 0, 64);
    cfg.heads = get_int(env, c, "heads", 1, 1, 4096);
    cfg.slots.input_slots = get_int(env, c, "inputSlots", 0, 1, 1 << 24);
    cfg.slots.hidden_slots = get_int(env, c, "hiddenSlots", 0, 0, 1 << 16);
    cfg.slots.output_slots = get_int(env, c, "outputSlots", 0, 1, 1 << 24);
    cfg.slots.hidden_width = get_int(env, c, "hiddenWidthSlots", 0, 0, 1 << 20);
    const std::string mode = get_str(env, c, "mode", "sparse");
    if (mode != "sparse" && mode != "dense" && mode != "hybrid" && mode != "virtual") {
      throw_error(env, Code::Invalid, "config.mode must be 'sparse', 'dense', 'hybrid' or 'virtual', got '" + mode + "'");
    }
    cfg.mode = mode == "dense"    ? GraphMode::Dense
               : mode == "hybrid" ? GraphMode::Hybrid
               : mode == "virtual" ? GraphMode::Virtual
                                  : GraphMode::Sparse;
    const std::string tr = get_str(env, c, "timeRule", "all");
    if (tr != "all" && tr != "reference") throw_error(env, Code::Invalid, "config.timeRule must be 'all' or 'reference', got '" + tr + "'");
    cfg.time_rule = tr == "reference" ? TimeRule::Reference : TimeRule::All;
    cfg.dir_embed = get_bool(env, c, "dirEmbed", cfg.mode != GraphMode::Dense);
    cfg.reverse_value = get_bool(env, c, "reverseValue", cfg.mode != GraphMode::Dense);
    cfg.in_features = get_int(env, c, "inFeatures", 1, 1, 2);
    cfg.aux_features = get_int(env, c, "auxFeatures", 0, 0, 64);
    cfg.recompute = get_bool(env, c, "recompute", false);
    cfg.chunk_rows = get_int(env, c, "chunkRows", 0, 0, 1 << 30);
    throw_if_error(env, cfg.validate());
    const double seed = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    const Device dev = info.Length() > 2 ? arg_device(info, 2) : Device::Cpu;
    const std::string dtype = info.Length() > 3 ? arg_string(info, 3, "dtype") : "f32";
    if (dtype != "f32" && dtype != "f64") throw_error(env, Code::Invalid, "dtype must be 'f32' or 'f64', got '" + dtype + "'");
    if (dev == Device::Cuda) {
      if (dtype == "f64") throw_error(env, Code::Invalid, "the CUDA engine runs in f32 only (f64 is the CPU reference)");
#ifdef WSF_CUDA_ENGINE
      if (!cuda_available()) throw_error(env, Code::NoCuda, "no usable CUDA device: " + cuda_info().error);
      impl_ = std::make_unique<EngineImpl<CudaOps, float>>(cfg);
#else
      throw_error(env, Code::NoCuda, "this build of wsflow has no CUDA engine (built without CUDA kernels)");
#endif
    } else if (dtype == "f64") {
      impl_ = std::make_unique<EngineImpl<CpuOps<double>, double>>(cfg);
    } else {
      impl_ = std::make_unique<EngineImpl<CpuOps<float>, float>>(cfg);
    }
    throw_if_error(env, impl_->init(static_cast<uint64_t>(seed)));
  }

 private:
  EngineHandle& E(const Napi::CallbackInfo& info) {
    if (!impl_) throw_error(info.Env(), Code::Disposed, "this engine has been disposed");
    if (busy_) throw_error(info.Env(), Code::ContextBusy, "this engine is running an asynchronous flow step: await it before the next call");
    return *impl_;
  }

  // Checks a host array of the engine's dtype with `n` elements and returns its data pointer.
  void* host_arr(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
    if (E(info).f64()) return arg_f64(info, i, name, n).Data();
    return arg_f32(info, i, name, n).Data();
  }

  Napi::Value SetGraph(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    if (info.Length() < 1 || !info[0].IsArray()) throw_error(env, Code::Invalid, "setGraph expects an array of width arrays");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<std::vector<int32_t>> widths(arr.Length());
    for (uint32_t g = 0; g < arr.Length(); ++g) {
      Napi::Value v = arr.Get(g);
      if (!v.IsArray()) throw_error(env, Code::Invalid, "setGraph: entry " + std::to_string(g) + " is not an array of widths");
      Napi::Array w = v.As<Napi::Array>();
      for (uint32_t l = 0; l < w.Length(); ++l) {
        Napi::Value x = w.Get(l);
        if (!x.IsNumber()) throw_error(env, Code::Invalid, "setGraph: widths must be numbers");
        widths[g].push_back(x.As<Napi::Number>().Int32Value());
      }
    }
    throw_if_error(env, e.set_graph(widths));
    return env.Undefined();
  }

  int64_t P(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    if (e.graph().G == 0) throw_error(info.Env(), Code::Invalid, "no graph: call setGraph first");
    return e.graph().P;
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    const int64_t p = P(info);
    void* xt = host_arr(info, 0, "xt", p);
    void* t = host_arr(info, 1, "t", e.graph().G);
    void* out = host_arr(info, 2, "out", p);
    const void* aux = info.Length() > 4 && !info[4].IsUndefined() && !info[4].IsNull() ? host_arr(info, 4, "aux", p * std::max(e.config().aux_features, 1)) : nullptr;
    throw_if_error(env, e.forward(xt, t, out, arg_bool(info, 3, "training"), aux));
    return env.Undefined();
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    const int64_t p = P(info);
    void* dxhat = host_arr(info, 0, "dxhat", p);
    void* dxt = info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull() ? host_arr(info, 1, "dxt", p) : nullptr;
    const bool param_grads = info.Length() > 2 && !info[2].IsUndefined() ? arg_bool(info, 2, "paramGrads") : true;
    throw_if_error(env, e.backward(dxhat, dxt, param_grads));
    return env.Undefined();
  }

  Napi::Value Mse(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    double loss = 0;
    throw_if_error(env, e.mse(host_arr(info, 0, "target", P(info)), &loss, arg_bool(info, 1, "backward")));
    return Napi::Number::New(env, loss);
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    throw_if_error(info.Env(), E(info).zero_grad());
    return info.Env().Undefined();
  }

  Napi::Value AdamStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    AdamHyper h;
    h.lr = arg_number(info, 0, "lr");
    h.beta1 = arg_number(info, 1, "beta1");
    h.beta2 = arg_number(info, 2, "beta2");
    h.eps = arg_number(info, 3, "eps");
    h.weight_decay = arg_number(info, 4, "weightDecay");
    const double clip = arg_number(info, 5, "clipNorm");
    double norm = 0;
    throw_if_error(env, e.adam_step(h, clip, &norm));
    return Napi::Number::New(env, norm);
  }

  Napi::Value GetParams(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    throw_if_error(info.Env(), e.get_params(host_arr(info, 0, "out", e.layout().total)));
    return info.Env().Undefined();
  }
  Napi::Value SetParams(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    throw_if_error(info.Env(), e.set_params(host_arr(info, 0, "params", e.layout().total)));
    return info.Env().Undefined();
  }
  // debugBuffer(name) → Float64Array: a development copy of an internal array (RtEngine::debug_get).
  Napi::Value DebugBuffer(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    std::vector<double> v;
    throw_if_error(info.Env(), e.debug_get(arg_string(info, 0, "name"), &v));
    Napi::Float64Array a = Napi::Float64Array::New(info.Env(), v.size());
    std::copy(v.begin(), v.end(), a.Data());
    return a;
  }
  Napi::Value GetGrads(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    throw_if_error(info.Env(), e.get_grads(host_arr(info, 0, "out", e.layout().total)));
    return info.Env().Undefined();
  }
  Napi::Value GetAdam(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    const int64_t n = e.layout().total;
    throw_if_error(info.Env(), e.get_adam(host_arr(info, 0, "m", n), host_arr(info, 1, "v", n)));
    return info.Env().Undefined();
  }
  Napi::Value SetAdam(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    const int64_t n = e.layout().total;
    throw_if_error(info.Env(), e.set_adam(host_arr(info, 0, "m", n), host_arr(info, 1, "v", n)));
    return info.Env().Undefined();
  }
  Napi::Value GetStepCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(E(info).step_count()));
  }
  Napi::Value SetStepCount(const Napi::CallbackInfo& info) {
    E(info).set_step_count(arg_int(info, 0, "step", 0, int64_t(1) << 50));
    return info.Env().Undefined();
  }

  Napi::Value ParamTable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const RtLayout& L = E(info).layout();
    Napi::Array out = Napi::Array::New(env, L.tensors.size());
    for (size_t i = 0; i < L.tensors.size(); ++i) {
      const ParamTensor& t = L.tensors[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      Napi::Array shape = Napi::Array::New(env, t.shape.size());
      for (size_t d = 0; d < t.shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.shape[d])));
      o.Set("shape", shape);
      o.Set("offset", static_cast<double>(t.offset));
      o.Set("size", static_cast<double>(t.size));
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  }

  Napi::Value GraphInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const RtGraph& g = E(info).graph();
    Napi::Object o = Napi::Object::New(env);
    o.Set("G", g.G);
    o.Set("N", g.N);
    o.Set("M", static_cast<double>(g.M));
    o.Set("P", static_cast<double>(g.P));
    return o;
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(E(info).layout().total));
  }
  Napi::Value BytesHeld(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(E(info).bytes_held()));
  }
  Napi::Value TrainingBytes(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    if (e.graph().G == 0) throw_error(info.Env(), Code::Invalid, "trainingBytes: call setGraph first");
    const int64_t chunk_rows = info.Length() > 1 && !info[1].IsUndefined() ? chunk_rows_arg(info, 1) : -1;
    return Napi::Number::New(info.Env(), static_cast<double>(e.training_bytes(arg_bool(info, 0, "recompute"), chunk_rows,
                                                                              target_device(info, 2, e))));
  }
  Napi::Value InferenceGraphBytes(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    if (e.graph().G == 0) throw_error(info.Env(), Code::Invalid, "inferenceGraphBytes: call setGraph first");
    return Napi::Number::New(info.Env(), static_cast<double>(e.inference_graph_bytes(target_device(info, 0, e))));
  }
  // The optional device argument of the memory counts ('cpu' | 'cuda'; default: the engine's own).
  static Device target_device(const Napi::CallbackInfo& info, size_t i, const EngineHandle& e) {
    if (info.Length() <= i || info[i].IsUndefined()) return e.device();
    const std::string d = arg_string(info, i, "device");
    if (d == "cpu") return Device::Cpu;
    if (d == "cuda") return Device::Cuda;
    throw_error(info.Env(), Code::Invalid, "device must be 'cpu' or 'cuda', got '" + d + "'");
  }
  Napi::Value SetRecompute(const Napi::CallbackInfo& info) {
    E(info).set_recompute(arg_bool(info, 0, "on"));
    return info.Env().Undefined();
  }
  static int64_t chunk_rows_arg(const Napi::CallbackInfo& info, size_t i) {
    const double v = info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0 && v <= (1 << 30) && v == std::floor(v))) {
      throw_error(info.Env(), Code::Invalid, "chunkRows must be an integer in [0, 2^30] (0: no chunks)");
    }
    return static_cast<int64_t>(v);
  }
  Napi::Value SetChunkRows(const Napi::CallbackInfo& info) {
    throw_if_error(info.Env(), E(info).set_chunk_rows(chunk_rows_arg(info, 0)));
    return info.Env().Undefined();
  }
  Napi::Value SetMatmul(const Napi::CallbackInfo& info) {
    const std::string m = arg_string(info, 0, "precision");
    if (m != "f32" && m != "bf16") throw_error(info.Env(), Code::Invalid, "setMatmul: expected 'f32' or 'bf16', got '" + m + "'");
    throw_if_error(info.Env(), E(info).set_matmul(m == "bf16"));
    return info.Env().Undefined();
  }
  Napi::Value Matmul(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), E(info).matmul_bf16() ? "bf16" : "f32");
  }
  Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    e.set_profiling(arg_bool(info, 0, "on"));
    e.profile().totals.clear();
    e.profile().counts.clear();
    return info.Env().Undefined();
  }
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const RtProfile& p = E(info).profile();
    Napi::Object o = Napi::Object::New(env);
    for (size_t i = 0; i < p.totals.size(); ++i) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("seconds", p.totals[i].second);
      r.Set("calls", static_cast<double>(p.counts[i]));
      o.Set(p.totals[i].first, r);
    }
    return o;
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_) throw_error(info.Env(), Code::ContextBusy, "this engine is running an asynchronous flow step: await it before dispose()");
    impl_.reset();
    flow_data_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value FlowConfigure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    if (info.Length() < 1 || !info[0].IsObject()) throw_error(env, Code::Invalid, "flowConfigure expects an options object");
    Napi::Object o = info[0].As<Napi::Object>();
    FlowStepConfig c;
    Napi::Value w = o.Get("widths");
    if (!w.IsArray()) throw_error(env, Code::Invalid, "flowConfigure: `widths` must be an array of layer widths");
    Napi::Array wa = w.As<Napi::Array>();
    for (uint32_t l = 0; l < wa.Length(); ++l) {
      Napi::Value x = wa.Get(l);
      if (!x.IsNumber()) throw_error(env, Code::Invalid, "flowConfigure: widths must be numbers");
      c.widths.push_back(x.As<Napi::Number>().Int32Value());
    }
    c.sphere = get_bool(env, o, "sphere", false);
    c.canonical = get_bool(env, o, "canonical", false);
    const std::string mode = get_str(env, o, "mode", "accurate");
    if (mode != "accurate" && mode != "reference") throw_error(env, Code::Invalid, "flowConfigure: mode must be 'accurate' or 'reference', got '" + mode + "'");
    c.mode = mode == "reference" ? GeoMode::Reference : GeoMode::Accurate;
    c.precondition = get_bool(env, o, "precondition", false);
    Napi::Value ln = o.Get("lastNorm");
    if (!ln.IsUndefined()) c.last_norm = static_cast<float>(ln.ToNumber().DoubleValue());
    Napi::Value sg = o.Get("sigma");
    if (!sg.IsUndefined()) c.sigma = sg.ToNumber().DoubleValue();
    const float* scale = nullptr;
    if (given(info, 1)) scale = arg_f32(info, 1, "scale", mlp_params(c.widths)).Data();
    throw_if_error(env, e.flow_configure(c, scale));
    flow_data_.Reset();
    return env.Undefined();
  }

  // The sampler's solver (optional argument i): 'euler' (default) → 0, 'midpoint' → 1, 'rk4' → 2.
  static int solver_arg(const Napi::CallbackInfo& info, size_t i) {
    if (!given(info, i)) return 0;
    const std::string s = arg_string(info, i, "solver");
    if (s == "euler") return 0;
    if (s == "midpoint") return 1;
    if (s == "rk4") return 2;
    throw_error(info.Env(), Code::Invalid, "Expected solver 'euler', 'midpoint' or 'rk4' but received '" + s + "'");
  }

  // An optional argument: present and neither null nor undefined.
  static bool given(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && !info[i].IsNull() && !info[i].IsUndefined();
  }
  // P of the configured flow step, or a thrown ERR_INVALID naming `method` before flowConfigure.
  int64_t flow_P(const Napi::CallbackInfo& info, const char* method) {
    const int64_t P = E(info).flow_params();
    if (P == 0) throw_error(info.Env(), Code::Invalid, std::string(method) + ": call flowConfigure first");
    return P;
  }

  Napi::Value FlowSetData(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    const int64_t P = flow_P(info, "flowSetData");
    Napi::Float32Array d = arg_f32(info, 0, "data");
    if (d.ElementLength() == 0 || int64_t(d.ElementLength()) % P != 0) {
      throw_error(env, Code::Shape, "flowSetData: expected n·P values (P = " + std::to_string(P) + ") but received " + std::to_string(d.ElementLength()));
    }
    throw_if_error(env, e.flow_set_data(d.Data(), int64_t(d.ElementLength()) / P));
    flow_data_ = Napi::Persistent(d);  // the CPU step reads the array in place
    return env.Undefined();
  }

  // Marks the engine busy and keeps its JS object alive for an asynchronous call; the returned function (run on the
  // main thread when the call settles) undoes both.
  std::function<void()> begin_async() {
    busy_ = true;
    Ref();
    return [this] {
      busy_ = false;
      Unref();
    };
  }

  // Reads flowStep's arguments into a job that owns copies of them (checked on the main thread).
  std::unique_ptr<FlowStepJob> flow_job(const Napi::CallbackInfo& info, const char* method) {
    Napi::Env env = info.Env();
    const int64_t P = flow_P(info, method);
    auto job = std::make_unique<FlowStepJob>();
    auto copy_f32 = [](const Napi::Float32Array& a, std::vector<float>* out) { out->assign(a.Data(), a.Data() + a.ElementLength()); };
    auto copy_i32 = [](const Napi::Int32Array& a, std::vector<int32_t>* out) { out->assign(a.Data(), a.Data() + a.ElementLength()); };
    copy_f32(arg_f32(info, 6, "t"), &job->t);
    const int64_t B = int64_t(job->t.size());
    FlowStepBatch& b = job->batch;
    b.B = B;
    if (given(info, 0)) {
      copy_i32(arg_i32(info, 0, "idx", B), &job->idx);
      b.idx = job->idx.data();
    }
    if (given(info, 1)) {
      copy_f32(arg_f32(info, 1, "x1", B * P), &job->x1);
      b.x1 = job->x1.data();
    }
    if (given(info, 2)) {
      copy_f32(arg_f32(info, 2, "x0", B * P), &job->x0);
      b.x0 = job->x0.data();
    }
    if (given(info, 3)) {
      Napi::Int32Array sw = arg_i32(info, 3, "priorSeeds");
      if (sw.ElementLength() != 2 && int64_t(sw.ElementLength()) != 2 * B) {
        throw_error(env, Code::Shape, std::string(method) + ": expected 2 or 2·B = " + std::to_string(2 * B) + " prior seed words but received " + std::to_string(sw.ElementLength()));
      }
      if (int64_t(sw.ElementLength()) != 2 * B && given(info, 4)) throw_error(env, Code::Shape, std::string(method) + ": a mixture prior needs 2 seed words per row");
      copy_i32(sw, &job->seeds);
      b.prior_seeds = job->seeds.data();
    }
    if (given(info, 4)) {
      copy_i32(arg_i32(info, 4, "priorComp", B), &job->comp);
      b.prior_comp = job->comp.data();
    }
    b.canonicalize_x0 = arg_bool(info, 5, "canonX0");
    b.t = job->t.data();
    const int64_t hi = arg_int(info, 7, "seedHi", 0, 0xffffffffLL), lo = arg_int(info, 8, "seedLo", 0, 0xffffffffLL);
    b.noise_seed = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
    AdamHyper& h = job->hyper;
    h.lr = arg_number(info, 9, "lr");
    h.beta1 = arg_number(info, 10, "beta1");
    h.beta2 = arg_number(info, 11, "beta2");
    h.eps = arg_number(info, 12, "eps");
    h.weight_decay = arg_number(info, 13, "weightDecay");
    job->clip = arg_number(info, 14, "clipNorm");
    return job;
  }

  Napi::Value FlowStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    std::unique_ptr<FlowStepJob> job = flow_job(info, "flowStep");
    throw_if_error(env, e.flow_step(job->batch, job->hyper, job->clip, &job->loss, &job->norm));
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(0u, Napi::Number::New(env, job->loss));
    r.Set(1u, Napi::Number::New(env, job->norm));
    return r;
  }

  // flowStepAsync(same arguments): the step on the libuv pool; a Promise of [loss, gradNorm]. The engine (and the
  // JS object holding it) stays alive and busy until the Promise settles.
  Napi::Value FlowStepAsync(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    std::unique_ptr<FlowStepJob> job = flow_job(info, "flowStepAsync");
    auto* worker = new FlowStepWorker(info.Env(), &e, std::move(job), begin_async());
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  }

  Napi::Value FlowBytesHeld(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(E(info).flow_bytes()));
  }

  Napi::Value FlowSetMode(const Napi::CallbackInfo& info) {
    const std::string m = arg_string(info, 0, "mode");
    const int mode = flow_step_mode_from_name(m);
    if (mode < 0) throw_error(info.Env(), Code::Invalid, "Expected mode 'plain', 'sync' or 'graph' but received '" + m + "'");
    throw_if_error(info.Env(), E(info).flow_set_mode(mode));
    return info.Env().Undefined();
  }
  Napi::Value FlowModeInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int mode = 0;
    int64_t st[4] = {0, 0, 0, 0};
    throw_if_error(env, E(info).flow_mode_info(&mode, st));
    Napi::Object o = Napi::Object::New(env);
    o.Set("mode", flow_step_mode_name(mode));
    o.Set("syncFreeSteps", static_cast<double>(st[0]));
    o.Set("captures", static_cast<double>(st[1]));
    o.Set("replays", static_cast<double>(st[2]));
    o.Set("captureFailures", static_cast<double>(st[3]));
    return o;
  }

  Napi::Value FlowSetEma(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    const float* init = arg_f32(info, 0, "init", e.layout().total).Data();
    throw_if_error(info.Env(), e.flow_set_ema(init, arg_number(info, 1, "decay")));
    return info.Env().Undefined();
  }
  Napi::Value FlowSetPrior(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    EngineHandle& e = E(info);
    const int64_t P = flow_P(info, "flowSetPrior");
    if (!given(info, 0)) {
      throw_if_error(env, e.flow_set_prior(0, 0, 0, nullptr, 0, nullptr, nullptr, false));
      return env.Undefined();
    }
    if (!info[0].IsObject()) throw_error(env, Code::Invalid, "flowSetPrior expects a prior object or null");
    Napi::Object o = info[0].As<Napi::Object>();
    const std::string kind = get_str(env, o, "kind", "");
    auto num = [&](const char* k) {
      Napi::Value v = o.Get(k);
      const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
      if (!std::isfinite(d)) throw_error(env, Code::Invalid, std::string("flowSetPrior: `") + k + "` must be a finite number");
      return d;
    };
    if (kind == "gaussian") {
      throw_if_error(env, e.flow_set_prior(1, num("mean"), num("std"), nullptr, 0, nullptr, nullptr, false));
      return env.Undefined();
    }
    if (kind != "fit") throw_error(env, Code::Invalid, "flowSetPrior: kind must be 'gaussian' or 'fit', got '" + kind + "'");
    Napi::Value mv = o.Get("means");
    if (!mv.IsTypedArray() || mv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_error(env, Code::DType, "flowSetPrior: `means` must be a Float32Array");
    Napi::Float32Array means = mv.As<Napi::Float32Array>();
    if (means.ElementLength() == 0 || int64_t(means.ElementLength()) % P != 0) throw_error(env, Code::Shape, "flowSetPrior: `means` must hold K·P values (P = " + std::to_string(P) + ")");
    const int64_t K = int64_t(means.ElementLength()) / P;
    const float* basis = nullptr;
    const int32_t* rows = nullptr;
    Napi::Value bv = o.Get("basis");
    if (!bv.IsNull() && !bv.IsUndefined()) {
      if (!bv.IsTypedArray() || bv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_error(env, Code::DType, "flowSetPrior: `basis` must be a Float32Array or null");
      Napi::Value rv = o.Get("rows");
      if (!rv.IsTypedArray() || rv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) throw_error(env, Code::DType, "flowSetPrior: `rows` (K + 1 offsets) must be an Int32Array");
      Napi::Int32Array r = rv.As<Napi::Int32Array>();
      Napi::Float32Array bb = bv.As<Napi::Float32Array>();
      if (int64_t(r.ElementLength()) != K + 1) throw_error(env, Code::Shape, "flowSetPrior: `rows` must hold K + 1 = " + std::to_string(K + 1) + " offsets");
      if (int64_t(bb.ElementLength()) != int64_t(r.Data()[K]) * P) throw_error(env, Code::Shape, "flowSetPrior: `basis` must hold rows[K]·P values");
      basis = bb.Data();
      rows = r.Data();
    }
    const double sd = basis == nullptr ? num("std") : 1.0;
    throw_if_error(env, e.flow_set_prior(2, 0, sd, means.Data(), K, basis, rows, get_bool(env, o, "perRow", false)));
    return env.Undefined();
  }

  // Reads flowSample's arguments (x0, grid, anchored, canonicalEnd, out, solver?) into a job owning copies of them;
  // *out receives the output array, checked against x0's length.
  std::unique_ptr<FlowSampleJob> sample_job(const Napi::CallbackInfo& info, const char* method, Napi::Float32Array* out) {
    const int64_t P = flow_P(info, method);
    Napi::Float32Array x0 = arg_f32(info, 0, "x0");
    if (x0.ElementLength() == 0 || int64_t(x0.ElementLength()) % P != 0) {
      throw_error(info.Env(), Code::Shape, std::string(method) + ": expected B·P start values (P = " + std::to_string(P) + ") but received " + std::to_string(x0.ElementLength()));
    }
    auto job = std::make_unique<FlowSampleJob>();
    job->B = int64_t(x0.ElementLength()) / P;
    job->x0.assign(x0.Data(), x0.Data() + x0.ElementLength());
    job->result.resize(job->x0.size());
    Napi::Float64Array grid = arg_f64(info, 1, "grid");
    job->grid.assign(grid.Data(), grid.Data() + grid.ElementLength());
    job->anchored = arg_bool(info, 2, "anchored");
    job->canon_end = arg_bool(info, 3, "canonicalEnd");
    *out = arg_f32(info, 4, "out", int64_t(x0.ElementLength()));
    job->solver = solver_arg(info, 5);
    return job;
  }

  Napi::Value FlowSample(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    Napi::Float32Array out;
    std::unique_ptr<FlowSampleJob> job = sample_job(info, "flowSample", &out);
    throw_if_error(info.Env(), job->run(e));
    std::copy(job->result.begin(), job->result.end(), out.Data());
    return info.Env().Undefined();
  }

  // flowSampleAsync(same arguments): Promise<out> — flowSample on the libuv pool.
  Napi::Value FlowSampleAsync(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    Napi::Float32Array out;
    std::unique_ptr<FlowSampleJob> job = sample_job(info, "flowSampleAsync", &out);
    auto* worker = new FlowSampleWorker(info.Env(), &e, std::move(job), out, begin_async());
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  }

  Napi::Value FlowGetEma(const Napi::CallbackInfo& info) {
    EngineHandle& e = E(info);
    throw_if_error(info.Env(), e.flow_get_ema(arg_f32(info, 0, "out", e.layout().total).Data()));
    return info.Env().Undefined();
  }

  Napi::Value FlowRelease(const Napi::CallbackInfo& info) {
    E(info).flow_release();
    flow_data_.Reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<EngineHandle> impl_;
  bool busy_ = false;  // an asynchronous flow step is running (main-thread state: set and cleared there)
  Napi::Reference<Napi::Float32Array> flow_data_;  // keeps flowSetData's array alive (the CPU step reads it)
};

}  // namespace

void register_engine_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeEngine", NativeEngine::Define(env));
}

}  // namespace wsf::binding
