// cuda_emu: a small CPU emulator of the CUDA subset used by native/core/*.cu, for checking kernels on machines
// without a GPU (the build machine). Development only: built with `-DWSF_CUDA_EMU=ON` (see native/dev/README.md),
// never shipped, never a substitute for running on a GPU.
//
// What it models faithfully:
//   - the grid/block decomposition: blocks run one after another; the threads of a block run as cooperative
//     fibers (own stacks, x86-64 context switch), so __syncthreads() is a real barrier and __shfl_*_sync a real
//     exchange among the 32 lanes of a warp (all 32 must arrive: a full-mask shuffle with exited or diverged
//     lanes is reported as a deadlock, as it is undefined on hardware);
//   - the order in which ready threads resume after a barrier is shuffled (seeded), so a missing barrier shows up
//     as a wrong result rather than passing by luck;
//   - launch-configuration limits (block ≤ 1024 threads, grid.y/z ≤ 65535, static+dynamic shared ≤ 48 KiB is
//     not checked) — errors come back from cudaGetLastError() as on hardware;
//   - cudaMalloc memory is filled with 0xFF bytes (NaN as float, −1 as int) so a read of never-written device
//     memory shows up as NaN.
// What it does NOT model: concurrency between blocks or warps (no real data races, no atomics), the memory
// model, timing, FMA contraction (nvcc contracts a·b + c into FMA; g++ here does not), occupancy, or anything
// about performance. `__shared__` variables are function-level statics: shared by the block, kept between
// blocks (hardware leaves them undefined).
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

// ---- language extensions ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct alignas(16) float4 {
  float x, y, z, w;
};

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// ---- runtime types ----
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
  int multiProcessorCount;
};

const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);  // host time: emulated launches are synchronous
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);

namespace emu {

// Index registers of the running fiber.
const uint3& thread_idx();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();

void syncthreads();                       // block barrier
void syncwarp();                          // barrier of the 32 lanes of the current warp
int lane_id();                            // linear thread index mod 32
void* shuffle_slot();                     // this thread's 8-byte exchange slot
const void* shuffle_slot_of(int lane);    // a lane's slot in the current warp

// Runs `body` for every thread of every block (blocks in order, threads as fibers). Configuration errors and
// deadlocks are reported through cudaGetLastError().
void launch_impl(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
template <class F>
void launch(dim3 grid, dim3 block, size_t smem, F&& body) {
  launch_impl(grid, block, smem, std::function<void()>(std::forward<F>(body)));
}

}  // namespace emu

#define threadIdx (::emu::thread_idx())
#define blockIdx (::emu::block_idx())
#define blockDim (::emu::block_dim())
#define gridDim (::emu::grid_dim())

inline void __syncthreads() { ::emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::emu::syncwarp(); }

template <typename T>
T emu_shuffle(T v, int src_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a value wider than 8 bytes");
  std::memcpy(::emu::shuffle_slot(), &v, sizeof(T));
  ::emu::syncwarp();  // every lane has published its value
  T r;
  std::memcpy(&r, ::emu::shuffle_slot_of(src_lane & 31), sizeof(T));
  ::emu::syncwarp();  // every lane has read before any slot is reused
  return r;
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
  return emu_shuffle(v, ::emu::lane_id() ^ lane_mask);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane, int = 32) {
  return emu_shuffle(v, src_lane);
}

// Device overloads that CUDA provides in the global namespace.
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int min(int a, int b) { return a < b ? a : b; }
