// CUDA helpers shared by the *_cuda.cu files: error conversion to Status (never exit/abort), warp/block
// reductions and one kernel-launch helper. Included only from .cu translation units.
//
// With WSF_CUDA_EMU defined (a development build, `-DWSF_CUDA_EMU=ON`, no GPU needed) the same .cu sources are
// compiled as plain C++ against native/dev/cuda_emu.h, a small CPU emulator of the CUDA execution model (blocks
// run one after another, the threads of a block as cooperative fibers with real barriers and warp shuffles).
// That is why kernels are launched through launch_kernel() below and never with <<<...>>> directly.
#pragma once

#ifdef WSF_CUDA_EMU
#include "dev/cuda_emu.h"
#else
#include <cuda_runtime.h>
#endif

#include <string>
#include <utility>

#include "core/common.h"

namespace wsf {

inline Status cuda_status(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return Status::ok();
  cudaGetLastError();  // clear the sticky-free error state
  const Code code = (err == cudaErrorMemoryAllocation) ? Code::Oom : Code::Cuda;
  return Status(code, std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// After a kernel launch: launch-configuration errors surface here; asynchronous faults surface at the next sync.
inline Status cuda_launch_status(const char* kernel) {
  return cuda_status(cudaGetLastError(), kernel);
}

#define WSF_CUDA_CHECK(expr) WSF_RETURN_IF_ERROR(::wsf::cuda_status((expr), #expr))

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024). `shared` holds >= 32 values.
// Every thread receives the total.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  T t = (static_cast<int>(threadIdx.x) < nw) ? shared[threadIdx.x] : T(0);
  if (warp == 0) t = warp_sum(t);
  if (threadIdx.x == 0) shared[0] = t;
  __syncthreads();
  return shared[0];
}

inline int ceil_div(long long a, long long b) { return static_cast<int>((a + b - 1) / b); }

// Enqueues kernel<<<grid, block, smem, stream>>>(args...). Arguments are converted to the kernel's parameter
// types first (as the <<<>>> syntax does). Launch errors are read afterwards with cudaGetLastError().
template <typename... KArgs, typename... Args>
inline void launch_kernel(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args... args) {
#ifdef WSF_CUDA_EMU
  // By value: a launch recorded by stream capture runs later, when the caller's arguments are gone.
  emu::launch(grid, block, smem, [=] { kernel(static_cast<KArgs>(args)...); });
  (void)stream;
#else
  kernel<<<grid, block, smem, stream>>>(static_cast<KArgs>(args)...);
#endif
}

}  // namespace wsf
