// Device registry and raw device memory: the only place cudaMalloc/cudaFree/cudaMemcpy appear
// (device_cuda.cu; device_cuda_stub.cc in CPU-only builds, where every call returns Code::NoCuda).
//
// A CUDA build loads and works on a machine without a driver or GPU: cuda_info() then reports compiled = true,
// device_count = 0 and the runtime's error, and every CPU path keeps working.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/common.h"

namespace wsf {

struct CudaInfo {
  bool compiled = false;        // built with CUDA kernels
  int device_count = 0;         // usable devices (0 when the driver or runtime is unusable)
  std::string error;            // why device_count is 0, if it is
  std::string archs;            // compiled architectures, e.g. "80,90"
  int runtime_version = 0;      // cudart version the addon was linked with
  int driver_version = 0;       // 0 when no driver
  // Device 0, when present.
  std::string name;
  int cc_major = 0, cc_minor = 0;
  size_t total_mem = 0, free_mem = 0;
  int multiprocessors = 0;
};

CudaInfo cuda_info();
bool cuda_available();

// The CUDA kernel versions in effect (rt_ops_cuda.cu; chosen once per process from WSF_GEMM, WSF_SPLITK_ROWS and
// WSF_ATTN_WARPS, with the tensor-core GEMM falling back to v2 below compute capability 8.0). CPU-only builds:
// gemm = "" (no CUDA kernels).
struct CudaKernelSettings {
  std::string gemm;         // "v1", "v2", "tc" or "tf32"
  int splitk_rows = 0;      // fewest rows per weight-gradient split
  int attention_warps = 0;  // warps per attention block
  std::string flow_step;    // how a new flow step runs: "plain", "sync" or "graph" (flow_step_mode_env)
};
// WSF_CUDA_GRAPH as the flow step's default mode (FlowStep::Mode): unset/other 0 (plain), "sync" 1, "1" 2 (graph).
int flow_step_mode_env();
// The modes' names, "plain", "sync", "graph" (FlowStep::Mode 0, 1, 2), and back (-1: not a mode name).
const char* flow_step_mode_name(int mode);
int flow_step_mode_from_name(const std::string& name);
CudaKernelSettings cuda_kernel_settings();

// Raw device memory. Sizes are bytes. Every call returns a Status; none throws or aborts.
Status device_malloc(void** ptr, size_t bytes);
Status device_free(void* ptr);
// Counts device_malloc and device_free calls of this process (0 without CUDA): while it is unchanged, no device
// pointer was invalidated or handed out (a recorded CUDA graph stays valid).
uint64_t device_alloc_epoch();
Status device_memset_zero(void* ptr, size_t bytes);
Status copy_host_to_device(void* dst, const void* src, size_t bytes);
Status copy_device_to_host(void* dst, const void* src, size_t bytes);
Status copy_device_to_device(void* dst, const void* src, size_t bytes);
Status device_synchronize();
// Peak and current bytes allocated through device_malloc by this process (our own accounting).
size_t device_bytes_in_use();
size_t device_bytes_peak();
void device_reset_peak();
// Live allocation count (for leak tests).
int64_t device_live_allocations();

// Optional per-op GPU time accounting, for development (off by default; device_profile.cc). When enabled, CudaOps
// records a CUDA event after every op and, at its next check(), charges the GPU-timeline interval since the
// previous event to that op — so host gaps between calls (and launch latency when the GPU runs ahead of the host)
// are charged to the op that follows them.
struct OpTime {
  std::string op;
  double ms = 0;
  int64_t count = 0;
};
void device_profile_enable(bool on);
bool device_profile_enabled();
void device_profile_add(const std::string& op, double ms);
std::vector<OpTime> device_profile_take();  // totals since the last take, largest first; clears the table

}  // namespace wsf
