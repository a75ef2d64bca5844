// CUDA device registry and raw memory (built only with WSF_WITH_CUDA). cudart is linked statically; it
// dlopen()s libcuda.so.1 on first use, so the addon loads on machines without a driver, and any error from
// cudaGetDeviceCount (cudaErrorInsufficientDriver, cudaErrorNoDevice, ...) means "no usable device".
// (cuda_common.cuh brings in the CUDA runtime, or the CPU emulator in -DWSF_CUDA_EMU=ON development builds.)
#include <atomic>
#include <mutex>
#include <unordered_map>

#include "core/cuda_common.cuh"
#include "core/device.h"

#ifndef WSF_CUDA_ARCHS
#define WSF_CUDA_ARCHS ""
#endif

namespace wsf {
namespace {
std::atomic<size_t> g_in_use{0}, g_peak{0};
std::atomic<int64_t> g_live{0};
std::atomic<uint64_t> g_epoch{0};
// The size of every live allocation, kept on the host so that accounting needs no device traffic (an allocation or
// a free does not wait for the device's queued work on our account).
std::mutex g_sizes_mutex;
std::unordered_map<void*, size_t>& g_sizes() {
  static auto* m = new std::unordered_map<void*, size_t>();  // never destroyed: frees may run during process exit
  return *m;
}
}  // namespace

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
  info.archs = WSF_CUDA_ARCHS;
  cudaRuntimeGetVersion(&info.runtime_version);
  if (cudaDriverGetVersion(&info.driver_version) != cudaSuccess) info.driver_version = 0;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    info.device_count = 0;
    info.error = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    cudaGetLastError();
    return info;
  }
  info.device_count = n;
  if (n > 0) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) == cudaSuccess) {
      info.name = p.name;
      info.cc_major = p.major;
      info.cc_minor = p.minor;
      info.total_mem = p.totalGlobalMem;
      info.multiprocessors = p.multiProcessorCount;
    }
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) info.free_mem = fr;
    cudaGetLastError();
  } else {
    info.error = "no CUDA device found";
  }
  return info;
}

bool cuda_available() {
  static int cached = -1;
  if (cached < 0) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) cudaGetLastError();
    cached = (err == cudaSuccess && n > 0) ? 1 : 0;
  }
  return cached == 1;
}

Status device_malloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (!cuda_available()) return no_cuda("no usable CUDA device");
  void* raw = nullptr;
  cudaError_t err = cudaMalloc(&raw, bytes > 0 ? bytes : 1);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (err == cudaErrorMemoryAllocation) {
      return Status(Code::Oom, "device out of memory allocating " + std::to_string(bytes) + " bytes");
    }
    return cuda_status(err, "cudaMalloc");
  }
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    g_sizes()[raw] = bytes;
  }
  *ptr = raw;
  size_t now = g_in_use.fetch_add(bytes) + bytes;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  g_live.fetch_add(1);
  g_epoch.fetch_add(1);
  return Status::ok();
}

Status device_free(void* ptr) {
  if (ptr == nullptr) return Status::ok();
  size_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    auto it = g_sizes().find(ptr);
    if (it == g_sizes().end()) return Status(Code::Invalid, "device_free: not a live device_malloc pointer");
    bytes = it->second;
    g_sizes().erase(it);
  }
  // Accounted as freed even if cudaFree fails (a failed context): the pointer is not ours to use again.
  g_in_use.fetch_sub(bytes);
  g_live.fetch_sub(1);
  g_epoch.fetch_add(1);
  return cuda_status(cudaFree(ptr), "cudaFree");
}

Status device_memset_zero(void* ptr, size_t bytes) { return cuda_status(cudaMemset(ptr, 0, bytes), "cudaMemset"); }
Status copy_host_to_device(void* dst, const void* src, size_t bytes) {
  return cuda_status(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}
Status copy_device_to_host(void* dst, const void* src, size_t bytes) {
  return cuda_status(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
Status copy_device_to_device(void* dst, const void* src, size_t bytes) {
  return cuda_status(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
}
Status device_synchronize() {
  return cuda_status(cudaDeviceSynchronize(), "cudaDeviceSynchronize (an earlier asynchronous kernel may have failed)");
}
size_t device_bytes_in_use() { return g_in_use.load(); }
size_t device_bytes_peak() { return g_peak.load(); }
void device_reset_peak() { g_peak.store(g_in_use.load()); }
int64_t device_live_allocations() { return g_live.load(); }
uint64_t device_alloc_epoch() { return g_epoch.load(); }

}  // namespace wsf
