// Device and build information.
//   cudaInfo(): {compiled, deviceCount, error, archs, runtimeVersion, driverVersion, name, ccMajor, ccMinor,
//                totalMem, freeMem, multiprocessors}
//   buildInfo(): {cuda: boolean, archs: string, compiler: string, napiVersion: number, buildType: string}
//   numThreads(): number;  setNumThreads(n: number): void
//   cpuFmaPeak(seconds: number): number — measured float FMA GFLOP/s of all pool threads at once (0 without AVX2)
//   cpuIsa(): {active, detected, bf16} — instruction set of the CPU float kernels ('avx512' | 'avx2' | 'portable'), and
//     whether bf16 products are available (AVX-512 BF16 at the active level; VectorField matmul: 'bf16')
//   setCpuIsa(cap: 'avx512' | 'avx2' | 'portable'): string — caps it (tests, side-by-side benchmarks); returns the
//     level now in use (never above the detected one)
//   fillNormal(out: Float32Array, seedHi: number, seedLo: number, mean: number, std: number): void — counter-based
//     normal draws (core/random.h), multi-threaded, the same for any thread count
//   deviceMemory(): {inUse: number, peak: number, live: number};  resetDevicePeak(): void
//   deviceSynchronize(): void
//   setDeviceProfiling(on: boolean): void; takeDeviceProfile(): {op: string, ms: number, count: number}[]
//     (internal, development: per-op GPU time of the CUDA engine, see core/device.h)
#include "binding/addon.h"
#include "core/device.h"
#include "core/gemm_cpu.h"
#include "core/parallel.h"
#include "core/random.h"

#include <cmath>

namespace wsf::binding {
namespace {

Napi::Value CudaInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaInfo c = cuda_info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", c.compiled);
  o.Set("deviceCount", c.device_count);
  o.Set("error", c.error);
  o.Set("archs", c.archs);
  o.Set("runtimeVersion", c.runtime_version);
  o.Set("driverVersion", c.driver_version);
  o.Set("name", c.name);
  o.Set("ccMajor", c.cc_major);
  o.Set("ccMinor", c.cc_minor);
  o.Set("totalMem", static_cast<double>(c.total_mem));
  o.Set("freeMem", static_cast<double>(c.free_mem));
  o.Set("multiprocessors", c.multiprocessors);
  if (c.compiled) {
    const CudaKernelSettings k = cuda_kernel_settings();
    Napi::Object ko = Napi::Object::New(env);
    ko.Set("gemm", k.gemm);
    ko.Set("splitkRows", k.splitk_rows);
    ko.Set("attentionWarps", k.attention_warps);
    ko.Set("flowStep", k.flow_step);
    o.Set("kernels", ko);
  }
  return o;
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef WSF_WITH_CUDA
  o.Set("cuda", true);
  o.Set("archs", WSF_CUDA_ARCHS);
#else
  o.Set("cuda", false);
  o.Set("archs", "");
#endif
#if defined(__clang__)
  o.Set("compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  o.Set("compiler", std::string("g++ ") + __VERSION__);
#else
  o.Set("compiler", "unknown");
#endif
  o.Set("napiVersion", NAPI_VERSION);
#ifdef NDEBUG
  o.Set("buildType", "Release");
#else
  o.Set("buildType", "Debug");
#endif
  return o;
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads(static_cast<int>(arg_int(info, 0, "n", 1, 1024)));
  return info.Env().Undefined();
}

Napi::Value DeviceMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("inUse", static_cast<double>(device_bytes_in_use()));
  o.Set("peak", static_cast<double>(device_bytes_peak()));
  o.Set("live", static_cast<double>(device_live_allocations()));
  return o;
}

Napi::Value ResetDevicePeak(const Napi::CallbackInfo& info) {
  device_reset_peak();
  return info.Env().Undefined();
}

Napi::Value DeviceSynchronize(const Napi::CallbackInfo& info) {
  throw_if_error(info.Env(), device_synchronize());
  return info.Env().Undefined();
}

Napi::Value SetDeviceProfiling(const Napi::CallbackInfo& info) {
  device_profile_enable(arg_bool(info, 0, "on"));
  return info.Env().Undefined();
}

Napi::Value TakeDeviceProfile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<OpTime> rows = device_profile_take();
  Napi::Array out = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("op", rows[i].op);
    o.Set("ms", rows[i].ms);
    o.Set("count", static_cast<double>(rows[i].count));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Value CpuFmaPeak(const Napi::CallbackInfo& info) {
  const double s = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.5;
  return Napi::Number::New(info.Env(), fma_peak_gflops(s));
}

Napi::Value CpuIsa(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("active", gemm_isa_name(gemm_isa()));
  o.Set("detected", gemm_isa_name(gemm_isa_detected()));
  o.Set("bf16", gemm_bf16_available());
  return o;
}

Napi::Value SetCpuIsa(const Napi::CallbackInfo& info) {
  const std::string want = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  GemmIsa cap;
  if (want == "avx512") cap = GemmIsa::Avx512;
  else if (want == "avx2") cap = GemmIsa::Avx2;
  else if (want == "portable") cap = GemmIsa::Portable;
  else throw_error(info.Env(), Code::Invalid, "setCpuIsa: expected 'avx512', 'avx2' or 'portable', got '" + want + "'");
  return Napi::String::New(info.Env(), gemm_isa_name(set_gemm_isa(cap)));
}

Napi::Value FillNormal(const Napi::CallbackInfo& info) {
  Napi::Float32Array out = arg_f32(info, 0, "out");
  const double hi = arg_number(info, 1, "seedHi"), lo = arg_number(info, 2, "seedLo");
  const double mean = arg_number(info, 3, "mean"), sd = arg_number(info, 4, "std");
  const auto u32 = [](double v) { return v >= 0 && v <= 4294967295.0 && v == std::floor(v); };
  if (!u32(hi) || !u32(lo) || !std::isfinite(mean) || !std::isfinite(sd) || sd < 0) {
    throw_error(info.Env(), Code::Invalid, "fillNormal: expected 32-bit unsigned seed halves, a finite mean and std >= 0");
  }
  const uint64_t seed = (static_cast<uint64_t>(hi) << 32) | static_cast<uint64_t>(lo);
  fill_normal_counter(out.Data(), static_cast<int64_t>(out.ElementLength()), seed, mean, sd);
  return info.Env().Undefined();
}

}  // namespace

void register_device_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfoJs, "cudaInfo"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("numThreads", Napi::Function::New(env, NumThreads, "numThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("cpuFmaPeak", Napi::Function::New(env, CpuFmaPeak, "cpuFmaPeak"));
  exports.Set("cpuIsa", Napi::Function::New(env, CpuIsa, "cpuIsa"));
  exports.Set("setCpuIsa", Napi::Function::New(env, SetCpuIsa, "setCpuIsa"));
  exports.Set("fillNormal", Napi::Function::New(env, FillNormal, "fillNormal"));
  exports.Set("deviceMemory", Napi::Function::New(env, DeviceMemory, "deviceMemory"));
  exports.Set("resetDevicePeak", Napi::Function::New(env, ResetDevicePeak, "resetDevicePeak"));
  exports.Set("deviceSynchronize", Napi::Function::New(env, DeviceSynchronize, "deviceSynchronize"));
  exports.Set("setDeviceProfiling", Napi::Function::New(env, SetDeviceProfiling, "setDeviceProfiling"));
  exports.Set("takeDeviceProfile", Napi::Function::New(env, TakeDeviceProfile, "takeDeviceProfile"));
}

}  // namespace wsf::binding
