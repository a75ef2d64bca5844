// wsflow core: status codes, error macros and the shape letters used across native/core.
//
// Shape letters (documented once, here):
//   G  graphs (networks) in a batch        N  nodes (neurons)       E  edges (weights)
//   F  feature width                       K  sphere ambient dimension (a hidden neuron's fan-in; the whole
//   L  layers                                 last layer is one sphere; biases stay Euclidean, METHOD.md §3)
//   B  batch of flat weight vectors        P  parameters per network (flat layout, METHOD.md §1.2)
//   S  sphere factors per network
//
// Nothing in native/core includes napi.h. Errors travel as Status values; no function here throws across a .cu
// boundary, calls exit/abort, or asserts on a user-reachable path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace wsf {

// Closed set of error codes; the binding maps each to the JS WsfError code of the same name.
enum class Code : int {
  Ok = 0,
  Shape,        // ERR_SHAPE: a size or length does not match what was declared
  DType,        // ERR_DTYPE: wrong element type
  Disposed,     // ERR_DISPOSED: a handle was used after dispose()
  ContextBusy,  // ERR_CONTEXT_BUSY: a context is running another call
  NoCuda,       // ERR_NO_CUDA: CUDA asked for but not compiled in or no usable device
  Cuda,         // ERR_CUDA: a CUDA runtime error
  Oom,          // ERR_OOM: out of (device) memory
  Numeric,      // ERR_NUMERIC: NaN/Inf or a singular configuration
  Invalid,      // ERR_INVALID: any other invalid argument or state
  Io,           // ERR_IO: file format or I/O problem
};

inline const char* code_name(Code c) {
  switch (c) {
    case Code::Ok: return "OK";
    case Code::Shape: return "ERR_SHAPE";
    case Code::DType: return "ERR_DTYPE";
    case Code::Disposed: return "ERR_DISPOSED";
    case Code::ContextBusy: return "ERR_CONTEXT_BUSY";
    case Code::NoCuda: return "ERR_NO_CUDA";
    case Code::Cuda: return "ERR_CUDA";
    case Code::Oom: return "ERR_OOM";
    case Code::Numeric: return "ERR_NUMERIC";
    case Code::Invalid: return "ERR_INVALID";
    case Code::Io: return "ERR_IO";
  }
  return "ERR_INVALID";
}

class Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }
  bool is_ok() const { return code_ == Code::Ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Code code_ = Code::Ok;
  std::string message_;
};

inline Status shape_error(std::string m) { return Status(Code::Shape, std::move(m)); }
inline Status invalid(std::string m) { return Status(Code::Invalid, std::move(m)); }
inline Status no_cuda(std::string m = "wsflow was built without CUDA kernels") {
  return Status(Code::NoCuda, std::move(m));
}

#define WSF_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::wsf::Status wsf_st_ = (expr);          \
    if (!wsf_st_.is_ok()) return wsf_st_;    \
  } while (0)

#define WSF_CHECK_ARG(cond, code, msg)                  \
  do {                                                  \
    if (!(cond)) return ::wsf::Status((code), (msg));   \
  } while (0)

// Where an op runs. Host pointers for Cpu, device pointers for Cuda.
enum class Device : int { Cpu = 0, Cuda = 1 };

}  // namespace wsf
