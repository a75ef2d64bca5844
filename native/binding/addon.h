// Binding-layer shared pieces (node-addon-api glue only; no math here).
// - AddonData: per-environment state (worker-thread safe): the JS WsfError constructor handed to init().
// - throw_status / throw_error: turn a core Status or a code + message into a thrown WsfError with `.code`.
// - Argument helpers that check kind and length before any native code touches the data.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

#include "core/common.h"

namespace wsf::binding {

struct AddonData {
  Napi::FunctionReference error_ctor;  // lib/errors.ts WsfError, set by init()
};

AddonData* addon_data(Napi::Env env);

// Builds a WsfError (or, before init(), a plain Error with .code) for `code`/`message`.
Napi::Error make_error(Napi::Env env, Code code, const std::string& message);
[[noreturn]] void throw_error(Napi::Env env, Code code, const std::string& message);
inline void throw_if_error(Napi::Env env, const Status& st) {
  if (!st.is_ok()) throw_error(env, st.code(), st.message());
}

// Reads info[i] as a Float32Array / Float64Array / Int32Array, checking the kind and (when expected >= 0) the
// element count. `name` is the argument's name in the JS signature, for the message.
Napi::Float32Array arg_f32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected = -1);
Napi::Float64Array arg_f64(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected = -1);
Napi::Int32Array arg_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t expected = -1);
double arg_number(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t lo, int64_t hi);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string arg_string(const Napi::CallbackInfo& info, size_t i, const char* name);
Device arg_device(const Napi::CallbackInfo& info, size_t i);

// Module registration hooks, one per ops family (ops_*.cc).
void register_device_ops(Napi::Env env, Napi::Object exports);
void register_geometry_ops(Napi::Env env, Napi::Object exports);
void register_engine_ops(Napi::Env env, Napi::Object exports);
void register_mlp_ops(Napi::Env env, Napi::Object exports);
void register_test_ops(Napi::Env env, Napi::Object exports);  // internal: per-op backend parity (ops_test.cc)

}  // namespace wsf::binding
