// Internal test binding: runs ONE relational-transformer op (rt_ops.h) on a chosen backend, on arrays given by
// JS, so tests can compare backends op by op (ggml test-backend-ops style). Not part of the public API
// (types.ts marks it @internal).
//
//   opsTestRun(device: 'cpu' | 'cuda', op: string, args: Record<string, Float32Array | Int32Array | string |
//              number | boolean | null>, guard: number): number
//
// - Every typed array carries `guard` extra elements before and after its payload; the op receives a pointer to
//   the payload (data + guard). The whole array (guards included) is copied to backend memory, the op runs, and
//   every Float32Array is copied back in full — so JS can check that guard regions and input arrays are
//   untouched and that outputs (pre-filled with NaN) were fully written.
// - A string argument aliases another array argument (e.g. {dx: buf, dy: 'dx'} runs act_bwd in place).
// - Numbers are sizes/scalars by the op's parameter names (rows, K, N, ldw, C, n, D, heads, M, din, ...);
//   booleans are flags (acc, reverse_value; matmul_bf16: the CPU ops' weight products in bf16); null is a null pointer.
// - Returns the op's result for mse/sum_squares, else NaN. Backend errors (check()) are thrown as WsfError.
// The binding is glue only: the math is the backend's.
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "binding/addon.h"
#include "core/rt_ops.h"
#if defined(WSF_WITH_CUDA) && __has_include("core/rt_ops_cuda.h")
#include "core/device.h"
#include "core/rt_ops_cuda.h"
#define WSF_CUDA_OPS_TEST 1
#endif
#ifdef WSF_CUDA_EMU
#include "dev/cuda_emu.h"
#endif

namespace wsf::binding {
namespace {

struct ArgSet {
  struct Arr {
    void* host = nullptr;  // JS backing store (payload starts at host + guard)
    int64_t len = 0;       // elements including both guards
    bool i32 = false;
    void* mem = nullptr;   // backend copy
  };
  std::map<std::string, Arr> arrays;
  std::map<std::string, std::string> aliases;
  std::map<std::string, double> numbers;
  std::map<std::string, bool> flags;
  std::map<std::string, bool> nulls;
  int64_t guard = 0;
};

template <class Ops>
class OpRunner {
 public:
  OpRunner(Napi::Env env, ArgSet& a) : env_(env), a_(a) {}
  ~OpRunner() {
    for (auto& [name, arr] : a_.arrays) {
      if (arr.mem != nullptr) ops_.release(arr.mem);
      arr.mem = nullptr;
    }
  }

  Ops& ops() { return ops_; }

  double run(const std::string& op) {
    for (auto& [name, arr] : a_.arrays) {
      if (arr.i32) {
        int32_t* p = nullptr;
        ok(ops_.alloc_i32(&p, arr.len));
        arr.mem = p;
        ok(ops_.upload_i32(p, static_cast<const int32_t*>(arr.host), arr.len));
      } else {
        float* p = nullptr;
        ok(ops_.alloc(&p, arr.len));
        arr.mem = p;
        ok(ops_.upload_raw(p, static_cast<const float*>(arr.host), arr.len));
      }
    }
    double result = NAN;
    dispatch(op, &result);
    ok(ops_.check());
    for (auto& [name, arr] : a_.arrays) {
      if (!arr.i32) ok(ops_.download_raw(static_cast<float*>(arr.host), static_cast<const float*>(arr.mem), arr.len));
    }
    return result;
  }

 private:
  void ok(const Status& st) { throw_if_error(env_, st); }
  [[noreturn]] void missing(const std::string& name, const char* what) {
    throw_error(env_, Code::Invalid, "opsTestRun: missing " + std::string(what) + " argument `" + name + "`");
  }
  const ArgSet::Arr* find(const std::string& name) {
    auto al = a_.aliases.find(name);
    const std::string& target = al != a_.aliases.end() ? al->second : name;
    auto it = a_.arrays.find(target);
    return it == a_.arrays.end() ? nullptr : &it->second;
  }
  float* F(const std::string& name) {
    if (a_.nulls.count(name)) return nullptr;
    const ArgSet::Arr* arr = find(name);
    if (arr == nullptr || arr->i32) missing(name, "Float32Array");
    return static_cast<float*>(arr->mem) + a_.guard;
  }
  int32_t* I(const std::string& name) {
    if (a_.nulls.count(name)) return nullptr;
    const ArgSet::Arr* arr = find(name);
    if (arr == nullptr || !arr->i32) missing(name, "Int32Array");
    return static_cast<int32_t*>(arr->mem) + a_.guard;
  }
  double D(const std::string& name) {
    auto it = a_.numbers.find(name);
    if (it == a_.numbers.end()) missing(name, "number");
    return it->second;
  }
  int64_t L(const std::string& name) { return static_cast<int64_t>(D(name)); }
  // Adam hyper-parameters from the numbers lr, beta1, beta2, eps, weight_decay.
  AdamHyper hyper() {
    AdamHyper h;
    h.lr = D("lr");
    h.beta1 = D("beta1");
    h.beta2 = D("beta2");
    h.eps = D("eps");
    h.weight_decay = D("weight_decay");
    return h;
  }
  // A Float32Array argument holding 8-byte values (a Float64Array's or BigUint64Array's bytes; the guards are an even
  // number of floats, so the payload stays 8-byte aligned), as the device-side scalars of the flow step.
  template <class V>
  V* Wide(const std::string& name, int64_t count) {
    if (a_.guard % 2 != 0) throw_error(env_, Code::Invalid, "opsTestRun: `" + name + "` holds 8-byte values; the guard must be even");
    const ArgSet::Arr* arr = a_.nulls.count(name) ? nullptr : find(name);
    if (arr == nullptr || arr->i32) missing(name, "Float32Array (8-byte values)");
    if (arr->len - 2 * a_.guard < 2 * count) {
      throw_error(env_, Code::Shape, "opsTestRun: `" + name + "` holds fewer than " + std::to_string(count) + " 8-byte values");
    }
    return reinterpret_cast<V*>(F(name));
  }
  int Int(const std::string& name) { return static_cast<int>(D(name)); }
  bool B(const std::string& name) {
    auto it = a_.flags.find(name);
    if (it == a_.flags.end()) missing(name, "boolean");
    return it->second;
  }
  // Aux columns of the feature ops: the `aux_cols` number, else 1 when an aux array is given.
  int aux_cols() {
    if (a_.numbers.count("aux_cols")) return Int("aux_cols");
    return F("aux") != nullptr ? 1 : 0;
  }
  Act act() {
    const int a = Int("act");
    if (a < 0 || a > 2) throw_error(env_, Code::Invalid, "opsTestRun: act must be 0 (GELU), 1 (SiLU) or 2 (ReLU)");
    return static_cast<Act>(a);
  }

  void dispatch(const std::string& op, double* result) {
    if (op == "linear_fwd") {
      ops_.linear_fwd(F("y"), F("x"), F("W"), F("b"), L("rows"), Int("K"), Int("N"), Int("ldw"), B("acc"));
    } else if (op == "linear_bwd_data") {
      ops_.linear_bwd_data(F("dx"), F("dy"), F("W"), L("rows"), Int("K"), Int("N"), Int("ldw"), B("acc"));
    } else if (op == "linear_bwd_weight") {
      ops_.linear_bwd_weight(F("dW"), F("db"), F("dy"), F("x"), L("rows"), Int("K"), Int("N"), Int("ldw"));
    } else if (op == "layernorm_fwd") {
      ops_.layernorm_fwd(F("y"), F("xhat"), F("rstd"), F("x"), F("g"), F("b"), L("rows"), Int("C"));
    } else if (op == "layernorm_bwd") {
      ops_.layernorm_bwd(F("dx"), F("dg"), F("db"), F("dy"), F("xhat"), F("rstd"), F("g"), L("rows"), Int("C"),
                         B("acc"));
    } else if (op == "act_fwd") {
      ops_.act_fwd(F("y"), F("x"), L("n"), act());
    } else if (op == "act_bwd") {
      ops_.act_bwd(F("dx"), F("dy"), F("x"), L("n"), act(), B("acc"));
    } else if (op == "add") {
      ops_.add(F("y"), F("a"), F("b"), L("n"));
    } else if (op == "attention_fwd") {
      ops_.attention_fwd(F("o"), F("alpha"), F("Pn"), F("Pe"), I("row_ptr"), I("col"), Int("N"), Int("D"),
                         Int("heads"));
    } else if (op == "attention_bwd") {
      ops_.attention_bwd(F("dPn"), F("dPe"), F("dout"), F("alpha"), F("Pn"), F("Pe"), I("row_ptr"), I("col"),
                         I("rev"), Int("N"), Int("D"), Int("heads"));
    } else if (op == "attention_fwd_rows") {
      ops_.attention_fwd_rows(F("o"), F("alpha"), F("Pn"), F("Pe"), I("row_ptr"), I("col"), Int("r0"), Int("r1"),
                              L("k_base"), Int("D"), Int("heads"));
    } else if (op == "attention_bwd_rows") {
      ops_.attention_bwd_rows(F("dPn"), F("dPe"), F("colbuf"), F("dout"), F("alpha"), F("Pn"), F("Pe"), I("row_ptr"),
                              I("col"), Int("r0"), Int("r1"), L("k_base"), Int("D"), Int("heads"));
    } else if (op == "attention_bwd_cols") {
      ops_.attention_bwd_cols(F("dPn"), F("colbuf"), I("row_ptr"), I("rev"), Int("N"), Int("D"), Int("heads"));
    } else if (op == "edge_combine_fwd") {
      ops_.edge_combine_fwd(F("z"), F("Y1"), F("Y2"), F("S"), F("Tn"), F("bias"), I("row"), I("col"), I("rev"), L("M"),
                            Int("D"));
    } else if (op == "gemm_packed") {
      // C (+)= A·B through gemm_pack + gemm_serial_packed (the blocked ops' weight products), in the runner's matmul
      // precision: A M × K (rows lda apart), B K × N (ldb), C M × N (ldc).
      if constexpr (Ops::device == Device::Cpu) {
        GemmPacked pb;
        gemm_pack(&pb, L("N"), L("K"), F("B"), L("ldb"), L("lda"), 1, ops_.matmul);
        gemm_serial_packed(L("M"), F("A"), pb, F("C"), L("ldc"), B("acc"));
      } else {
        throw_error(env_, Code::Invalid, "opsTestRun: gemm_packed is a CPU op");
      }
    } else if (op == "gemm_serial") {
      // C (+)= A·B through gemm_serial in the runner's matmul precision (the blocked ops' weight gradients), A(i,p) at
      // A[i·sai + p·sap], B K × N (ldb), C M × N (ldc).
      if constexpr (Ops::device == Device::Cpu) {
        gemm_serial(L("M"), L("N"), L("K"), F("A"), L("sai"), L("sap"), F("B"), L("ldb"), F("C"), L("ldc"), B("acc"),
                    ops_.matmul);
      } else {
        throw_error(env_, Code::Invalid, "opsTestRun: gemm_serial is a CPU op");
      }
    } else if (op == "attention_proj_fwd" || op == "attention_proj_bwd" || op == "edge_update_fwd" || op == "edge_update_bwd" ||
               op == "edge_mlp_fwd" || op == "in_mlp_fwd" || op == "in_mlp_bwd") {
      // The CPU's fused forms (rt_ops.h "CPU only"), compared in tests with the op sequences they replace.
      if constexpr (Ops::device == Device::Cpu) {
        if (op == "attention_proj_fwd") {
          ops_.attention_proj_fwd(F("o"), F("alpha"), F("Pe"), F("Pn"), F("e_all"), F("WE"), I("row_ptr"), I("col"),
                                  Int("r0"), Int("r1"), L("k_base"), Int("D"), Int("H"), Int("heads"));
        } else if (op == "attention_proj_bwd") {
          ops_.attention_proj_bwd(F("dPn"), F("dE"), F("dWE"), F("kcol"), F("vcol"), F("dout"), F("alpha"), F("Pn"), F("Pe"),
                                  F("e_all"), F("WE"), I("row_ptr"), I("col"), I("rev"), Int("N"), Int("D"), Int("H"),
                                  Int("heads"));
        } else if (op == "edge_update_bwd") {
          ops_.edge_update_bwd(F("dE"), F("dWe"), F("dS"), F("dT"), F("dbias"), F("dz"), F("e_all"), F("We"), I("row_ptr"),
                               I("rev"), Int("N"), Int("D"), Int("H"));
        } else if (op == "in_mlp_fwd") {
          ops_.in_mlp_fwd(F("out"), F("h0"), F("h1"), F("h2"), F("f"), F("W0"), F("b0"), F("W1"), F("b1"), F("W2"), F("b2"),
                          F("Wp"), F("bp"), L("rows"), Int("din"), Int("D"));
        } else if (op == "in_mlp_bwd") {
          float* const grads[8] = {F("dW0"), F("db0"), F("dW1"), F("db1"), F("dW2"), F("db2"), F("dWp"), F("dbp")};
          ops_.in_mlp_bwd(F("df"), grads[0] != nullptr ? grads : nullptr, F("dout"), F("f"), F("h0"), F("h1"), F("h2"),
                          F("W0"), F("W1"), F("W2"), F("Wp"), L("rows"), Int("din"), Int("D"));
        } else if (op == "edge_update_fwd") {
          ops_.edge_update_fwd(F("z"), F("ebar"), F("xh2"), F("rs2"), F("h3"), F("xh3"), F("rs3"), F("e_out"), F("e_all"),
                               F("We"), F("be"), F("S"), F("Tn"), I("row"), I("col"), I("rev"), L("k0"), F("W1"), F("b1"),
                               F("g2"), F("be2"), F("Wm0"), F("Wm2"), F("bm2"), F("g3"), F("be3"), L("M"), Int("D"), Int("H"));
        } else {
          ops_.edge_mlp_fwd(F("ebar"), F("xh2"), F("rs2"), F("h3"), F("xh3"), F("rs3"), F("e_out"), F("z"), F("e_in"),
                            F("W1"), F("b1"), F("g2"), F("be2"), F("Wm0"), F("Wm2"), F("bm2"), F("g3"), F("be3"), L("M"),
                            Int("D"), Int("H"));
        }
      } else {
        throw_error(env_, Code::Invalid, "opsTestRun: " + op + " is a CPU-only fused op");
      }
    } else if (op == "edge_combine_bwd") {
      ops_.edge_combine_bwd(F("dY2"), F("dS"), F("dT"), F("dbias"), F("dz"), I("row_ptr"), I("rev"), Int("N"), L("M"),
                            Int("D"));
    } else if (op == "edge_features") {
      ops_.edge_features(F("feat"), F("x"), F("t"), F("aux"), I("param"), I("dir"), I("graph"), L("M"), Int("din"),
                         B("reverse_value"), aux_cols());
    } else if (op == "node_features") {
      ops_.node_features(F("feat"), F("x"), F("t"), F("aux"), I("param"), I("graph"), Int("N"), Int("din"), aux_cols());
    } else if (op == "edge_features_bwd") {
      ops_.edge_features_bwd(F("dx"), F("dfeat"), I("idx"), I("rev"), I("param"), L("n"), Int("din"),
                             B("reverse_value"));
    } else if (op == "node_features_bwd") {
      ops_.node_features_bwd(F("dx"), F("dfeat"), I("idx"), I("param"), L("n"), Int("din"));
    } else if (op == "copy_cols") {
      ops_.copy_cols(F("dst"), Int("ldd"), F("src"), Int("lds"), L("rows"), Int("cols"), B("acc"));
    } else if (op == "embed_add") {
      ops_.embed_add(F("y"), Int("ld"), F("table"), I("idx"), L("rows"), Int("D"));
    } else if (op == "embed_bwd") {
      ops_.embed_bwd(F("dtable"), F("dy"), Int("ld"), I("idx"), L("rows"), Int("D"), Int("table_rows"));
    } else if (op == "set_time") {
      ops_.set_time(F("s"), F("t"), I("graph"), I("one_mask"), L("rows"), Int("H"));
    } else if (op == "gather_rows") {
      ops_.gather_rows(F("y"), F("x"), I("idx"), L("n"), Int("C"));
    } else if (op == "scatter_rows") {
      ops_.scatter_rows(F("dx"), F("dy"), I("idx"), L("n"), Int("C"), B("acc"));
    } else if (op == "scatter_flat") {
      ops_.scatter_flat(F("flat"), F("v"), I("param"), L("n"));
    } else if (op == "gather_flat") {
      ops_.gather_flat(F("v"), F("flat"), I("param"), L("n"));
    } else if (op == "mse") {
      *result = ops_.mse(F("d"), F("xhat"), F("target"), L("n"), D("scale"));
    } else if (op == "sum_squares") {
      *result = ops_.sum_squares(F("x"), L("n"));
    } else if (op == "sum_squares_dev") {
      // The sum lands in backend memory; read back here and returned.
      float* out = nullptr;
      ok(ops_.alloc(&out, 2));
      ops_.sum_squares_dev(reinterpret_cast<double*>(out), F("x"), L("n"));
      Status st = ops_.check();
      float host[2] = {NAN, NAN};
      if (st.is_ok()) st = ops_.download_raw(host, out, 2);
      ops_.release(out);
      ok(st);
      double v = NAN;
      std::memcpy(&v, host, sizeof v);
      *result = v;
    } else if (op == "adam_constants") {
      // The host function behind the device constants (CPU runner only: it writes host memory).
      if constexpr (Ops::device == Device::Cpu) {
        double c[kAdamConsts];
        adam_constants(hyper(), L("step"), D("clip"), c);
        std::memcpy(Wide<double>("out", kAdamConsts), c, sizeof c);
      } else {
        throw_error(env_, Code::Invalid, "opsTestRun: adam_constants is a host function (device 'cpu')");
      }
    } else if (op == "step_gate") {
      ops_.step_gate(F("gate"), Wide<const double>("sumsq", 1), F("loss"), Wide<const double>("consts", kAdamConsts));
    } else if (op == "adam_gated") {
      ops_.adam_gated(F("p"), F("g"), F("m"), F("v"), L("n"), Wide<const double>("consts", kAdamConsts), F("gate"));
    } else if (op == "ema_update_gated") {
      ops_.ema_update_gated(F("ema"), F("p"), L("n"), D("decay"), F("gate"));
    } else if (op == "fill_normal_dev") {
      ops_.fill_normal_dev(F("out"), L("n"), Wide<const uint64_t>("seed", 1), D("mean"), D("stddev"));
    } else if (op == "scale") {
      ops_.scale(F("x"), L("n"), D("s"));
    } else if (op == "adam") {
      ops_.adam(F("p"), F("g"), F("m"), F("v"), L("n"), hyper(), L("step"), D("grad_scale"));
    } else if (op == "flow_path") {
      ops_.flow_path(F("xt"), F("x0"), F("x1"), F("noise"), F("t"), L("B"), L("P"));
    } else if (op == "flow_input") {
      ops_.flow_input(F("y"), F("x"), F("scale"), L("B"), L("P"));
    } else if (op == "flow_to_x1") {
      ops_.flow_to_x1(F("xhat"), F("F"), F("xt"), F("t"), F("scale"), B("precondition"), L("B"), L("P"));
    } else if (op == "flow_to_dF") {
      ops_.flow_to_dF(F("d"), F("t"), F("scale"), B("precondition"), L("B"), L("P"));
    } else if (op == "fill_normal") {
      const uint64_t seed = (static_cast<uint64_t>(L("seed_hi")) << 32) | static_cast<uint64_t>(L("seed_lo"));
      ops_.fill_normal(F("out"), L("n"), seed, D("mean"), D("stddev"));
    } else if (op == "flow_velocity") {
      ops_.flow_velocity(F("v"), F("xhat"), F("x"), D("inv"), L("n"));
    } else if (op == "flow_axpy") {
      ops_.flow_axpy(F("y"), F("x"), F("v"), D("dt"), L("n"));
    } else if (op == "flow_rk4_combine") {
      ops_.flow_rk4_combine(F("v"), F("k1"), F("k2"), F("k3"), F("k4"), L("n"));
    } else if (op == "ema_update") {
      ops_.ema_update(F("ema"), F("p"), L("n"), D("decay"));
    } else if (op == "fill_normal_rows") {
      ops_.fill_normal_rows(F("out"), L("rows"), L("ld"), I("counts"), I("seeds"), D("mean"), D("stddev"));
    } else if (op == "gaussian_fit_draw") {
      ops_.gaussian_fit_draw(F("out"), F("eps"), L("ld_eps"), I("comp"), F("mean"), F("basis"), I("row0"), L("B"), L("P"));
    } else if (op == "zero") {
      ops_.zero(F("p"), L("n"));
    } else if (op == "copy") {
      ops_.copy(F("dst"), F("src"), L("n"));
    } else {
      throw_error(env_, Code::Invalid, "opsTestRun: unknown op '" + op + "'");
    }
  }

  Napi::Env env_;
  ArgSet& a_;
  Ops ops_;
};

Napi::Value OpsTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Device dev = arg_device(info, 0);
  const std::string op = arg_string(info, 1, "op");
  if (info.Length() < 3 || !info[2].IsObject()) throw_error(env, Code::Invalid, "opsTestRun: args must be an object");
  const int64_t guard = arg_int(info, 3, "guard", 0, 1 << 20);
  ArgSet a;
  a.guard = guard;
  Napi::Object obj = info[2].As<Napi::Object>();
  Napi::Array keys = obj.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
    Napi::Value v = obj.Get(k);
    if (v.IsNull()) {
      a.nulls[k] = true;
    } else if (v.IsString()) {
      a.aliases[k] = v.As<Napi::String>().Utf8Value();
    } else if (v.IsNumber()) {
      a.numbers[k] = v.As<Napi::Number>().DoubleValue();
    } else if (v.IsBoolean()) {
      a.flags[k] = v.As<Napi::Boolean>().Value();
    } else if (v.IsTypedArray()) {
      Napi::TypedArray ta = v.As<Napi::TypedArray>();
      ArgSet::Arr arr;
      if (ta.TypedArrayType() == napi_float32_array) {
        arr.host = ta.As<Napi::Float32Array>().Data();
      } else if (ta.TypedArrayType() == napi_int32_array) {
        arr.host = ta.As<Napi::Int32Array>().Data();
        arr.i32 = true;
      } else {
        throw_error(env, Code::DType, "opsTestRun: `" + k + "` must be a Float32Array or an Int32Array");
      }
      arr.len = static_cast<int64_t>(ta.ElementLength());
      if (arr.len < 2 * guard) throw_error(env, Code::Shape, "opsTestRun: `" + k + "` is shorter than its two guards");
      a.arrays[k] = arr;
    } else {
      throw_error(env, Code::DType, "opsTestRun: unsupported value for `" + k + "`");
    }
  }
  for (const auto& [k, target] : a.aliases) {
    if (!a.arrays.count(target)) throw_error(env, Code::Invalid, "opsTestRun: `" + k + "` aliases unknown array `" + target + "`");
  }
  double r = NAN;
  if (dev == Device::Cpu) {
    OpRunner<CpuOps<float>> runner(env, a);
    // matmul_bf16: the CPU ops' weight products in bf16 (CpuOps::matmul), where this CPU has them.
    if (a.flags.count("matmul_bf16") && a.flags["matmul_bf16"]) {
      if (!gemm_bf16_available()) throw_error(env, Code::Invalid, "opsTestRun: bf16 products are not available on this CPU");
      runner.ops().matmul = GemmPrecision::Bf16;
    }
    r = runner.run(op);
  } else {
#ifdef WSF_CUDA_OPS_TEST
    if (!cuda_available()) throw_error(env, Code::NoCuda, "no usable CUDA device: " + cuda_info().error);
    OpRunner<CudaOps> runner(env, a);
    r = runner.run(op);
#else
    throw_error(env, Code::NoCuda, "this build of wsflow has no CUDA kernels");
#endif
  }
  return Napi::Number::New(env, r);
}

}  // namespace

void register_test_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("opsTestRun", Napi::Function::New(env, OpsTestRun, "opsTestRun"));
#ifdef WSF_CUDA_EMU
  // CUDA-emulator builds only: the emulator's count of host waits (emu::host_waits), for tests that a device loop
  // does not stop the host.
  exports.Set("emuHostWaits", Napi::Function::New(
                                  env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                                    return Napi::Number::New(info.Env(), static_cast<double>(emu::host_waits()));
                                  },
                                  "emuHostWaits"));
#endif
}

}  // namespace wsf::binding
