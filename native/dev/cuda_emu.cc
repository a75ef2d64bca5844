// cuda_emu runtime (see cuda_emu.h): fibers with an x86-64 context switch, a barrier-aware scheduler per block,
// and the host-side runtime calls (host memory stands in for device memory). Development builds only.
#include "dev/cuda_emu.h"

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#error "cuda_emu needs x86-64 (its fiber switch is written in x86-64 assembly)"
#endif

// void wsf_emu_switch(void** save_sp, void* load_sp): saves the callee-saved registers and the stack pointer of
// the caller in *save_sp, then resumes the context whose stack pointer is load_sp (System V x86-64 ABI).
extern "C" void wsf_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl wsf_emu_switch
  .type wsf_emu_switch,@function
wsf_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size wsf_emu_switch,.-wsf_emu_switch
)");

namespace emu {
namespace {

enum class St { Ready, WaitBlock, WaitWarp, Done };

struct Fiber {
  void* sp = nullptr;
  uint3 tid{0, 0, 0};
  int lin = 0;
  St st = St::Ready;
  alignas(8) unsigned char slot[8] = {};
};

constexpr size_t kStackBytes = 256 * 1024;
constexpr int kMaxThreads = 1024;

struct State {
  dim3 grid{1, 1, 1}, block{1, 1, 1};
  uint3 bidx{0, 0, 0};
  std::vector<Fiber> fibers;
  int cur = -1;
  void* sched_sp = nullptr;
  const std::function<void()>* body = nullptr;
  char* stacks = nullptr;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  cudaError_t last_error = cudaSuccess;
};

State g;
std::mutex g_mutex;  // one launch at a time (the emulator state is global)
const uint3 kZero3{0, 0, 0};
const dim3 kOne3{1, 1, 1};

uint64_t next_rand() {
  uint64_t x = g.rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  g.rng = x;
  return x;
}

[[noreturn]] void fiber_entry() {
  (*g.body)();
  Fiber& f = g.fibers[g.cur];
  f.st = St::Done;
  wsf_emu_switch(&f.sp, g.sched_sp);
  std::abort();  // a finished fiber is never resumed
}

void yield_as(St st) {
  Fiber& f = g.fibers[g.cur];
  f.st = st;
  wsf_emu_switch(&f.sp, g.sched_sp);
}

void init_fiber(int i) {
  Fiber& f = g.fibers[i];
  char* top = g.stacks + (static_cast<size_t>(i) + 1) * kStackBytes;  // 16-byte aligned
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                       // fake return address of fiber_entry
  *--sp = reinterpret_cast<void*>(&fiber_entry);         // where the first switch "returns" to
  for (int r = 0; r < 6; ++r) *--sp = nullptr;           // rbp rbx r12 r13 r14 r15
  f.sp = sp;
  f.st = St::Ready;
  f.lin = i;
  const unsigned bx = g.block.x, by = g.block.y;
  f.tid = uint3{static_cast<unsigned>(i) % bx, (static_cast<unsigned>(i) / bx) % by, static_cast<unsigned>(i) / (bx * by)};
}

std::string where() {
  char buf[128];
  std::snprintf(buf, sizeof buf, "block (%u,%u,%u) of grid (%u,%u,%u), block shape (%u,%u,%u)", g.bidx.x, g.bidx.y,
                g.bidx.z, g.grid.x, g.grid.y, g.grid.z, g.block.x, g.block.y, g.block.z);
  return buf;
}

// Runs one block to completion. Returns false (error reported) on a deadlock or an invalid warp/block sync.
bool run_block(int n) {
  for (int i = 0; i < n; ++i) init_fiber(i);
  std::vector<int> order;
  order.reserve(n);
  for (;;) {
    // Resume every ready fiber (shuffled order) until it waits or finishes.
    order.clear();
    for (int i = 0; i < n; ++i)
      if (g.fibers[i].st == St::Ready) order.push_back(i);
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next_rand() % i]);
    for (int i : order) {
      g.cur = i;
      wsf_emu_switch(&g.sched_sp, g.fibers[i].sp);
      g.cur = -1;
    }
    int done = 0, wait_block = 0;
    for (int i = 0; i < n; ++i) {
      done += g.fibers[i].st == St::Done;
      wait_block += g.fibers[i].st == St::WaitBlock;
    }
    if (done == n) return true;
    bool released = false;
    // Warp barriers: all 32 lanes of the warp must be waiting at one.
    for (int w0 = 0; w0 < n; w0 += 32) {
      int waiting = 0, lanes = 0, exited = 0;
      for (int i = w0; i < n && i < w0 + 32; ++i) {
        ++lanes;
        waiting += g.fibers[i].st == St::WaitWarp;
        exited += g.fibers[i].st == St::Done;
      }
      if (waiting == 0) continue;
      if (lanes < 32 || exited > 0) {
        std::fprintf(stderr, "cuda_emu: warp %d of %s: a full-warp shuffle/sync with %d lanes present and %d exited\n",
                     w0 / 32, where().c_str(), lanes, exited);
        return false;
      }
      if (waiting == 32) {
        for (int i = w0; i < w0 + 32; ++i) g.fibers[i].st = St::Ready;
        released = true;
      }
    }
    if (released) continue;
    // Block barrier: every thread must be waiting at it (a thread that already exited makes it a divergent
    // __syncthreads, undefined on hardware: reported).
    if (wait_block > 0 && wait_block + done == n) {
      if (done > 0) {
        std::fprintf(stderr, "cuda_emu: __syncthreads in %s reached by %d threads while %d have exited\n",
                     where().c_str(), wait_block, done);
        return false;
      }
      for (int i = 0; i < n; ++i) g.fibers[i].st = St::Ready;
      continue;
    }
    std::fprintf(stderr, "cuda_emu: deadlock in %s: %d at __syncthreads, %d done, the rest at warp syncs of "
                 "partially arrived warps\n", where().c_str(), wait_block, done);
    return false;
  }
}

}  // namespace

const uint3& thread_idx() { return g.cur >= 0 ? g.fibers[g.cur].tid : kZero3; }
const uint3& block_idx() { return g.cur >= 0 ? g.bidx : kZero3; }
const dim3& block_dim() { return g.cur >= 0 ? g.block : kOne3; }
const dim3& grid_dim() { return g.cur >= 0 ? g.grid : kOne3; }
int lane_id() { return g.cur >= 0 ? g.fibers[g.cur].lin % 32 : 0; }
void syncthreads() { yield_as(St::WaitBlock); }
void syncwarp() { yield_as(St::WaitWarp); }
void* shuffle_slot() { return g.fibers[g.cur].slot; }
void fail(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s in %s\n", what, where().c_str());
  if (g.last_error == cudaSuccess) g.last_error = cudaErrorLaunchFailure;
}
const void* shuffle_slot_of(int lane) { return g.fibers[(g.fibers[g.cur].lin / 32) * 32 + lane].slot; }

namespace {
// Stream capture (one capture at a time): the recorded operations, replayed in order by cudaGraphLaunch.
struct CaptureState {
  bool active = false;
  bool invalid = false;
  std::vector<std::function<void()>> nodes;
};
CaptureState cap;  // guarded by g_mutex

void run_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);

}  // namespace

namespace {
std::atomic<uint64_t> g_host_waits{0};
}  // namespace
uint64_t host_waits() { return g_host_waits.load(); }
void note_host_wait() { g_host_waits.fetch_add(1); }

// True (and the capture invalidated) when a call that cannot be captured is made during capture.
bool capture_refuses() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!cap.active) return false;
  cap.invalid = true;
  return true;
}
// Records `op` (run by cudaGraphLaunch) when a capture is active and returns true; else false.
bool capture_record(std::function<void()> op) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!cap.active) return false;
  cap.nodes.push_back(std::move(op));
  return true;
}

void launch_impl(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (cap.active) {
      cap.nodes.push_back([grid, block, smem, body] { run_launch(grid, block, smem, body); });
      return;
    }
  }
  run_launch(grid, block, smem, body);
}

namespace {
void run_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
      grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 || smem > 48 * 1024) {
    if (g.last_error == cudaSuccess) g.last_error = cudaErrorInvalidConfiguration;
    return;
  }
  if (g.stacks == nullptr) {
    void* p = mmap(nullptr, kStackBytes * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
      g.last_error = cudaErrorMemoryAllocation;
      return;
    }
    g.stacks = static_cast<char*>(p);
    if (const char* seed = std::getenv("WSF_EMU_SEED")) g.rng = std::strtoull(seed, nullptr, 10) | 1;
  }
  g.grid = grid;
  g.block = block;
  g.body = &body;
  g.fibers.assign(threads, Fiber{});
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        g.bidx = uint3{x, y, z};
        if (!run_block(static_cast<int>(threads))) {
          if (g.last_error == cudaSuccess) g.last_error = cudaErrorLaunchFailure;
          g.cur = -1;
          return;
        }
      }
    }
  }
  g.body = nullptr;
}
}  // namespace

std::vector<std::function<void()>> take_capture(bool* invalid) {
  std::lock_guard<std::mutex> lock(g_mutex);
  *invalid = cap.invalid;
  std::vector<std::function<void()>> nodes = std::move(cap.nodes);
  cap = CaptureState{};
  return nodes;
}
bool begin_capture() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (cap.active) return false;
  cap = CaptureState{};
  cap.active = true;
  return true;
}
bool capturing() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return cap.active;
}

}  // namespace emu

// ---- host runtime ----
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (cuda_emu)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (cuda_emu: deadlock or invalid sync, see stderr)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
  }
  return "unknown error";
}
cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lock(emu::g_mutex);
  const cudaError_t e = emu::g.last_error;
  emu::g.last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::mutex> lock(emu::g_mutex);
  return emu::g.last_error;
}
// The emulated device's memory: WSF_EMU_DEVICE_BYTES (read at every call, default 16 GiB) is its capacity, so tests
// can make an allocation fail as on a full GPU; cudaMemGetInfo reports the capacity less what is allocated.
namespace {
std::mutex g_mem_mutex;
size_t g_mem_used = 0;
std::unordered_map<void*, size_t>& mem_sizes() {
  static auto* m = new std::unordered_map<void*, size_t>();
  return *m;
}
size_t mem_capacity() {
  const char* v = std::getenv("WSF_EMU_DEVICE_BYTES");
  const unsigned long long n = v != nullptr ? std::strtoull(v, nullptr, 10) : 0;
  return n > 0 ? static_cast<size_t>(n) : (size_t(16) << 30);
}
}  // namespace
cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  *p = nullptr;
  const size_t rounded = bytes == 0 ? 256 : (bytes + 255) / 256 * 256;
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  if (g_mem_used + rounded > mem_capacity()) return cudaErrorMemoryAllocation;
  *p = std::aligned_alloc(256, rounded);
  if (*p == nullptr) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xFF, rounded);  // uninitialised device memory reads as NaN
  mem_sizes()[*p] = rounded;
  g_mem_used += rounded;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  if (p == nullptr) return cudaSuccess;
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  auto it = mem_sizes().find(p);
  if (it == mem_sizes().end()) return cudaErrorInvalidValue;
  g_mem_used -= it->second;
  mem_sizes().erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  if (kind != cudaMemcpyDeviceToDevice) emu::note_host_wait();
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  auto op = [dst, src, bytes] {
    if (bytes > 0) std::memmove(dst, src, bytes);
  };
  if (!emu::capture_record(op)) op();
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  if (bytes > 0) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  auto op = [p, value, bytes] {
    if (bytes > 0) std::memset(p, value, bytes);
  };
  if (!emu::capture_record(op)) op();
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) {
  static int token;
  *s = reinterpret_cast<cudaStream_t>(&token);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  emu::note_host_wait();
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (emu::capture_refuses()) return cudaErrorStreamCaptureUnsupported;
  emu::note_host_wait();
  return cudaSuccess;
}
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
};
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st{std::chrono::steady_clock::now()};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  auto op = [e] { e->t = std::chrono::steady_clock::now(); };
  if (!emu::capture_record(op)) op();
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "%s", "cuda_emu (CPU emulation, not a GPU)");
  p->totalGlobalMem = size_t(16) << 30;
  p->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  *total_bytes = mem_capacity();
  *free_bytes = *total_bytes > g_mem_used ? *total_bytes - g_mem_used : 0;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  *p = std::malloc(bytes == 0 ? 1 : bytes);
  return *p == nullptr ? cudaErrorMemoryAllocation : cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (s == nullptr) return cudaErrorStreamCaptureUnsupported;  // the legacy default stream cannot capture
  return emu::begin_capture() ? cudaSuccess : cudaErrorIllegalState;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* graph) {
  *graph = nullptr;
  if (!emu::capturing()) return cudaErrorIllegalState;
  bool invalid = false;
  std::vector<std::function<void()>> nodes = emu::take_capture(&invalid);
  if (invalid) return cudaErrorStreamCaptureInvalidated;
  *graph = new CUgraph_st{std::move(nodes)};
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t, cudaStreamCaptureStatus* status) {
  *status = emu::capturing() ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t) {
  if (exec == nullptr) return cudaErrorInvalidValue;
  if (emu::capturing()) return cudaErrorStreamCaptureUnsupported;  // (a child-graph node on a GPU; not used here)
  for (const auto& op : exec->nodes) op();
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
