// Module init: per-environment instance data (context-aware, safe in worker threads), the error factory and the
// registration of every ops family. JS surface (see lib/native/types.ts for exact types):
//   init(WsfErrorClass): void           — hands the JS error class to native code (called once by the loader)
//   plus each family's exports (ops_device.cc, ops_geometry.cc, ops_engine.cc, ops_mlp.cc) and the internal
//   per-op test entry point (ops_test.cc).
#include "binding/addon.h"

namespace wsf::binding {

AddonData* addon_data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Error make_error(Napi::Env env, Code code, const std::string& message) {
  AddonData* data = addon_data(env);
  if (data != nullptr && !data->error_ctor.IsEmpty()) {
    Napi::Object err = data->error_ctor.New({Napi::String::New(env, message), Napi::String::New(env, code_name(code))});
    return Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code_name(code)));
  return err;
}

void throw_error(Napi::Env env, Code code, const std::string& message) { throw make_error(env, code, message); }

namespace {

const char* kind_name(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_uint8_array: return "Uint8Array";
      default: return "another TypedArray";
    }
  }
  if (v.IsArray()) return "Array";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsBoolean()) return "boolean";
  if (v.IsObject()) return "object";
  return "a value of another type";
}

template <typename Arr>
Arr typed_arg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected, napi_typedarray_type want,
              const char* want_name) {
  Napi::Env env = info.Env();
  Napi::Value v = info.Length() > i ? info[i] : env.Undefined();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want) {
    throw_error(env, Code::DType,
                std::string("Expected ") + want_name + " for `" + name + "` but received " + kind_name(v));
  }
  Arr arr = v.As<Arr>();
  if (expected >= 0 && static_cast<int64_t>(arr.ElementLength()) != expected) {
    throw_error(env, Code::Shape,
                std::string("Expected ") + want_name + " of length " + std::to_string(expected) + " for `" + name +
                    "` but received length " + std::to_string(arr.ElementLength()));
  }
  return arr;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw_error(env, Code::Invalid, "init expects the WsfError class");
  }
  AddonData* data = addon_data(env);
  data->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

}  // namespace

Napi::Float32Array arg_f32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected) {
  return typed_arg<Napi::Float32Array>(info, i, name, expected, napi_float32_array, "Float32Array");
}
Napi::Float64Array arg_f64(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected) {
  return typed_arg<Napi::Float64Array>(info, i, name, expected, napi_float64_array, "Float64Array");
}
Napi::Int32Array arg_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected) {
  return typed_arg<Napi::Int32Array>(info, i, name, expected, napi_int32_array, "Int32Array");
}

double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  Napi::Value v = info.Length() > i ? info[i] : env.Undefined();
  if (!v.IsNumber()) throw_error(env, Code::DType, std::string("Expected a number for `") + name + "` but received " + kind_name(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi) {
  const double d = arg_number(info, i, name);
  const int64_t v = static_cast<int64_t>(d);
  if (static_cast<double>(v) != d || v < lo || v > hi) {
    throw_error(info.Env(), Code::Invalid,
                std::string("Expected an integer in [") + std::to_string(lo) + ", " + std::to_string(hi) + "] for `" +
                    name + "` but received " + std::to_string(d));
  }
  return v;
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  Napi::Value v = info.Length() > i ? info[i] : env.Undefined();
  if (!v.IsBoolean()) throw_error(env, Code::DType, std::string("Expected a boolean for `") + name + "` but received " + kind_name(v));
  return v.As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name) {
  Napi::Env env = info.Env();
  Napi::Value v = info.Length() > i ? info[i] : env.Undefined();
  if (!v.IsString()) throw_error(env, Code::DType, std::string("Expected a string for `") + name + "` but received " + kind_name(v));
  return v.As<Napi::String>().Utf8Value();
}

Device arg_device(const Napi::CallbackInfo& info, size_t i) {
  const std::string s = arg_string(info, i, "device");
  if (s == "cpu") return Device::Cpu;
  if (s == "cuda") return Device::Cuda;
  throw_error(info.Env(), Code::Invalid, "Expected device 'cpu' or 'cuda' but received '" + s + "'");
}

}  // namespace wsf::binding

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  using namespace wsf::binding;
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  register_device_ops(env, exports);
  register_geometry_ops(env, exports);
  register_engine_ops(env, exports);
  register_mlp_ops(env, exports);
  register_test_ops(env, exports);
  return exports;
}

NODE_API_MODULE(wsflow, InitModule)
