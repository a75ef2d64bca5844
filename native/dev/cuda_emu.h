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
//     memory shows up as NaN;
//   - a device of WSF_EMU_DEVICE_BYTES bytes (default 16 GiB): cudaMalloc beyond it fails with
//     cudaErrorMemoryAllocation, cudaMemGetInfo reports what is left, cudaFree of an unknown pointer fails.
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
#include <string>
#include <type_traits>
#include <vector>

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
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorIllegalState = 401,
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
typedef struct CUgraph_st* cudaGraph_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
enum cudaStreamCaptureStatus { cudaStreamCaptureStatusNone = 0, cudaStreamCaptureStatusActive = 1, cudaStreamCaptureStatusInvalidated = 2 };
#define cudaHostAllocDefault 0u
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
// Pinned host memory: plain host memory here.
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
// Stream capture and graphs. While a stream captures, kernel launches, cudaMemcpyAsync/cudaMemsetAsync and event
// records are recorded instead of run; cudaGraphLaunch replays them in order. As on a GPU (capture modes Global and
// ThreadLocal), a synchronising or allocating call during capture — cudaMalloc, cudaFree, cudaMemcpy, cudaMemset,
// cudaStreamSynchronize, cudaDeviceSynchronize — fails with cudaErrorStreamCaptureUnsupported and invalidates the
// capture (cudaStreamEndCapture then returns cudaErrorStreamCaptureInvalidated and no graph), so host-side work that
// would not survive capture shows up here. Arguments are recorded by value, like a real kernel node's.
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

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

// Reports a device-side misuse (stderr, with the block) and makes the launch fail with cudaErrorLaunchFailure;
// the thread goes on (hardware behaviour is undefined, so only the report matters).
void fail(const char* what);

// Runs `body` for every thread of every block (blocks in order, threads as fibers). Configuration errors and
// deadlocks are reported through cudaGetLastError().
void launch_impl(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);
// Stream capture (cuda_emu.cc): begin (false if one is active), whether one is active, record an operation, refuse
// (invalidate) it, and take the recorded operations at its end.
bool begin_capture();
bool capturing();
bool capture_record(std::function<void()> op);
bool capture_refuses();
std::vector<std::function<void()>> take_capture(bool* invalid);
// Host waits so far: calls after which the host has waited for the device's work (cudaStreamSynchronize,
// cudaDeviceSynchronize, cudaMemcpy between host and device), for tests that a loop runs without them.
uint64_t host_waits();
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

// Round-to-nearest double intrinsics (never contracted into an FMA on the device; plain operations here).
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }

// Device overloads that CUDA provides in the global namespace.
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int min(int a, int b) { return a < b ? a : b; }

// ---- nvcuda::wmma (tensor-core matrix fragments), the TF32 subset used by the GEMM's tensor-core version ----
// Modelled per warp: every lane holds the whole tile (row-major in x[]), so a fragment's element ↔ lane mapping
// (opaque on hardware) is not modelled — code that touches fragments only through this API and elementwise loops
// over x[0..num_elements) is exercised faithfully. Each call is warp-collective: all 32 lanes must arrive (a
// warp barrier) with the same pointer and ldm, ldm a multiple of 4 and the pointer 32-byte aligned, as the CUDA
// programming guide requires; violations are reported through emu::fail. mma_sync sums in float over k in order
// (hardware tensor cores use their own order and internal precision).
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];  // element (r, c) at x[r·cols + c]
};

// cvt.rna.tf32.f32: round to nearest (ties away from zero) at 10 mantissa bits; Inf and NaN pass unchanged.
inline float __float_to_tf32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &u, 4);
  return v;
}

namespace detail {
// Warp-collective entry: all lanes arrive, with the same pointer and ldm, and a legal pointer/ldm.
inline void collective(const char* what, const void* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) ::emu::fail((std::string(what) + ": pointer not 32-byte aligned").c_str());
  if (ldm % 4 != 0) ::emu::fail((std::string(what) + ": ldm not a multiple of 4").c_str());
  const uintptr_t p0 = emu_shuffle(reinterpret_cast<uintptr_t>(p), 0);
  const unsigned l0 = emu_shuffle(ldm, 0);
  if (p0 != reinterpret_cast<uintptr_t>(p) || l0 != ldm) ::emu::fail((std::string(what) + ": lanes disagree on pointer or ldm").c_str());
}
template <class Layout>
inline int64_t offset(int r, int c, unsigned ldm) {
  return std::is_same<Layout, col_major>::value ? static_cast<int64_t>(c) * ldm + r : static_cast<int64_t>(r) * ldm + c;
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float v) {
  for (int e = 0; e < f.num_elements; ++e) f.x[e] = v;
}

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ldm) {
  static_assert(!std::is_same<Layout, void>::value, "operand fragments carry their layout");
  detail::collective("wmma::load_matrix_sync", p, ldm);
  for (int r = 0; r < f.rows; ++r)
    for (int c = 0; c < f.cols; ++c) f.x[r * f.cols + c] = p[detail::offset<Layout>(r, c, ldm)];
}

template <int M, int N, int K, class T>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t l) {
  detail::collective("wmma::store_matrix_sync", p, ldm);
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      p[l == mem_col_major ? detail::offset<col_major>(r, c, ldm) : detail::offset<row_major>(r, c, ldm)] = f.x[r * N + c];
}

template <int M, int N, int K, class T, class LA, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC, void>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c) {
  detail::collective("wmma::mma_sync", nullptr, 0);
  float out[M * N];
  for (int r = 0; r < M; ++r)
    for (int col = 0; col < N; ++col) {
      float s = c.x[r * N + col];
      for (int k = 0; k < K; ++k) s += a.x[r * K + k] * b.x[k * N + col];
      out[r * N + col] = s;
    }
  std::memcpy(d.x, out, sizeof out);
}
}  // namespace wmma
}  // namespace nvcuda
