// The CUDA backend of the relational-transformer ops (rt_ops.h holds the contract; rt_ops_cpu.cc the reference
// every kernel here must match). Float only. Pointers passed to the math functions are DEVICE pointers; the
// upload/download functions take host pointers on the host side.
//
// This header has no CUDA include, so the binding (plain C++) can hold a CudaOps by value: the stream is a
// void* (a cudaStream_t), created lazily on first use and destroyed with the object.
//
// Execution model (rt_ops_cuda.cu):
//   - every math op only ENQUEUES kernels on this object's stream and returns; launch errors are recorded with
//     the op's name and reported by the next check();
//   - check() reports the first recorded error, then synchronises the stream so that asynchronous faults
//     surface too (the message then says "an earlier kernel may have failed");
//   - upload*/download* are synchronous (the host array may be reused as soon as they return);
//   - mse/sum_squares reduce on the device and return a host double (one small copy, which synchronises);
//   - reductions are deterministic: no float atomics anywhere. Split-K GEMM partials, column sums (bias,
//     LayerNorm affine), embedding-table gradients and loss sums use fixed partitions that depend on the shapes
//     only (not on the device), summed in a fixed order — the same inputs give bitwise the same outputs on any
//     run and any GPU model.
//
// Temporary device memory (split-K partials, column-sum partials) comes from one scratch buffer per CudaOps
// that grows on demand (through device_malloc, so it counts in the peak-memory report). Ops on one stream run
// in order, so one scratch buffer is never used by two ops at once.
//
// Copy semantics: a copy starts empty (its own stream and scratch, created lazily); a move transfers both.
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"
#include "core/rt_ops.h"

namespace wsf {

struct CudaOps {
  using Scalar = float;
  static constexpr Device device = Device::Cuda;

  CudaOps() = default;
  CudaOps(const CudaOps&) {}  // fresh stream and scratch (nothing is shared between instances)
  CudaOps& operator=(const CudaOps& o) {
    (void)o;  // keeps its own stream and scratch
    return *this;
  }
  CudaOps(CudaOps&& o) noexcept;
  CudaOps& operator=(CudaOps&& o) noexcept;
  ~CudaOps();

  // ---- memory ----
  Status alloc(float** p, int64_t n);           // zero-filled, like CpuOps
  Status alloc_i32(int32_t** p, int64_t n);     // zero-filled
  void release(void* p);
  void zero(float* p, int64_t n);
  void copy(float* dst, const float* src, int64_t n);
  Status upload(float* dst, const float* src, int64_t n);
  Status download(float* dst, const float* src, int64_t n);
  Status upload_raw(float* dst, const float* src, int64_t n);
  Status download_raw(float* dst, const float* src, int64_t n);
  Status upload_i32(int32_t* dst, const int32_t* src, int64_t n);
  Status check();

  // ---- dense layers (see rt_ops.h for the exact contract of each) ----
  void linear_fwd(float* y, const float* x, const float* W, const float* b, int64_t rows, int K, int N, int ldw,
                  bool acc);
  void linear_bwd_data(float* dx, const float* dy, const float* W, int64_t rows, int K, int N, int ldw, bool acc);
  void linear_bwd_weight(float* dW, float* db, const float* dy, const float* x, int64_t rows, int K, int N, int ldw);
  void layernorm_fwd(float* y, float* xhat, float* rstd, const float* x, const float* g, const float* b, int64_t rows,
                     int C);
  void layernorm_bwd(float* dx, float* dg, float* db, const float* dy, const float* xhat, const float* rstd,
                     const float* g, int64_t rows, int C, bool acc);
  void act_fwd(float* y, const float* x, int64_t n, Act a);
  void act_bwd(float* dx, const float* dy, const float* x, int64_t n, Act a, bool acc);
  void add(float* y, const float* a, const float* b, int64_t n);

  // ---- graph ops ----
  void attention_fwd(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                     const int32_t* col, int32_t N, int D, int heads);
  void attention_fwd_rows(float* o, float* alpha, const float* Pn, const float* Pe, const int32_t* row_ptr,
                          const int32_t* col, int32_t r0, int32_t r1, int64_t k_base, int D, int heads);
  void attention_bwd(float* dPn, float* dPe, const float* dout, const float* alpha, const float* Pn, const float* Pe,
                     const int32_t* row_ptr, const int32_t* col, const int32_t* rev, int32_t N, int D, int heads);
  void attention_bwd_rows(float* dPn, float* dPe, float* colbuf, const float* dout, const float* alpha,
                          const float* Pn, const float* Pe, const int32_t* row_ptr, const int32_t* col, int32_t r0,
                          int32_t r1, int64_t k_base, int D, int heads);
  void attention_bwd_cols(float* dPn, const float* colbuf, const int32_t* row_ptr, const int32_t* rev, int32_t N,
                          int D, int heads);
  void edge_combine_fwd(float* z, const float* Y1, const float* Y2, const float* S, const float* Tn, const float* bias,
                        const int32_t* row, const int32_t* col, const int32_t* rev, int64_t M, int D);
  void edge_combine_bwd(float* dY2, float* dS, float* dT, float* dbias, const float* dz, const int32_t* row_ptr,
                        const int32_t* rev, int32_t N, int64_t M, int D);

  // ---- inputs and outputs ----
  void edge_features(float* feat, const float* x, const float* t, const float* aux, const int32_t* param,
                     const int32_t* dir, const int32_t* graph, int64_t M, int din, bool reverse_value, int aux_cols);
  void node_features(float* feat, const float* x, const float* t, const float* aux, const int32_t* param,
                     const int32_t* graph, int32_t N, int din, int aux_cols);
  void edge_features_bwd(float* dx, const float* dfeat, const int32_t* idx, const int32_t* rev, const int32_t* param,
                         int64_t n, int din, bool reverse_value);
  void node_features_bwd(float* dx, const float* dfeat, const int32_t* idx, const int32_t* param, int64_t n, int din);
  void copy_cols(float* dst, int ldd, const float* src, int lds, int64_t rows, int cols, bool acc);
  void embed_add(float* y, int ld, const float* table, const int32_t* idx, int64_t rows, int D);
  void embed_bwd(float* dtable, const float* dy, int ld, const int32_t* idx, int64_t rows, int D, int table_rows);
  void set_time(float* s, const float* t, const int32_t* graph, const int32_t* one_mask, int64_t rows, int H);
  void gather_rows(float* y, const float* x, const int32_t* idx, int64_t n, int C);
  void scatter_rows(float* dx, const float* dy, const int32_t* idx, int64_t n, int C, bool acc);
  void scatter_flat(float* flat, const float* v, const int32_t* param, int64_t n);
  void gather_flat(float* v, const float* flat, const int32_t* param, int64_t n);

  // ---- loss and optimiser ----
  double mse(float* d, const float* xhat, const float* target, int64_t n, double scale);
  double sum_squares(const float* x, int64_t n);
  void scale(float* x, int64_t n, double s);
  void adam(float* p, const float* g, float* m, float* v, int64_t n, const AdamHyper& h, int64_t step,
            double grad_scale);

  // ---- flow-matching step (CpuOps documents them; double arithmetic without contraction, as there) ----
  void flow_path(float* xt, const float* x0, const float* x1, const float* noise, const float* t, int64_t B, int64_t P);
  void flow_input(float* y, const float* x, const float* scale, int64_t B, int64_t P);
  void flow_to_x1(float* xhat, const float* F, const float* xt, const float* t, const float* scale, bool precondition,
                  int64_t B, int64_t P);
  void flow_to_dF(float* d, const float* t, const float* scale, bool precondition, int64_t B, int64_t P);
  // Box–Muller with the device's double log/cos/sin: equal to the CPU's draws up to the last bit of a few.
  void fill_normal(float* out, int64_t n, uint64_t seed, double mean, double stddev);
  void flow_velocity(float* v, const float* xhat, const float* x, double inv, int64_t n);
  void flow_axpy(float* y, const float* x, const float* v, double dt, int64_t n);
  void flow_rk4_combine(float* v, const float* k1, const float* k2, const float* k3, const float* k4, int64_t n);
  void ema_update(float* ema, const float* p, int64_t n, double decay);
  void fill_normal_rows(float* out, int64_t rows, int64_t ld, const int32_t* counts, const int32_t* seeds, double mean,
                        double stddev);
  void gaussian_fit_draw(float* out, const float* eps, int64_t ld_eps, const int32_t* comp, const float* mean,
                         const float* basis, const int32_t* row0, int64_t B, int64_t P);

  // ---- the flow step's sync-free mode (core/flow_step.h): device-side scalars, pinned staging, CUDA graphs ----
  // Σ x² into the device double *out (sum_squares without the copy to the host; the same reduction).
  void sum_squares_dev(double* out, const float* x, int64_t n);
  // gate[0] = the gradient scale and gate[1] = 1 when the step applies (loss and √Σg² finite), from the device
  // loss, Σg² and adam_constants' clipping norm: RtEngine::adam_step's host rule, evaluated on the device.
  void step_gate(float* gate, const double* sumsq, const float* loss, const double* consts);
  // adam with its constants read from device memory (adam_constants' layout) and gated by step_gate.
  void adam_gated(float* p, const float* g, float* m, float* v, int64_t n, const double* consts, const float* gate);
  void ema_update_gated(float* ema, const float* p, int64_t n, double decay, const float* gate);
  // fill_normal with the seed read from device memory.
  void fill_normal_dev(float* out, int64_t n, const uint64_t* seed, double mean, double stddev);
  Status host_alloc(void** p, int64_t bytes);  // pinned host memory
  void host_free(void* p);
  // Enqueues a copy between pinned host memory and the device (no wait).
  void copy_async(void* dst, const void* src, int64_t bytes, bool to_device);
  // Stream capture: between capture_begin and capture_end the ops are recorded (check() does not synchronise);
  // capture_end instantiates them as *exec (a cudaGraphExec_t), or fails (nothing recorded runs, errors recorded
  // during the capture are returned and cleared). graph_launch enqueues an instantiated graph.
  Status capture_begin();
  Status capture_end(void** exec);
  void graph_launch(void* exec);
  void graph_free(void* exec);
  bool capturing() const { return capturing_; }
  // Changes with every device allocation and free of this process (device_alloc_epoch): a recorded graph holds
  // device pointers, valid while this has not changed.
  static uint64_t alloc_epoch();

  // ---- backend-specific ----
  void* stream();              // the cudaStream_t (created on first use); nullptr if creation failed
  Status synchronize();        // waits for every op enqueued so far
  int64_t scratch_bytes() const { return scratch_bytes_; }

 private:
  int attention_launch_cpl(const char* what, int D, int heads);
  void attention_cols(float* dPn, const float* dPe, const float* Pe, const int32_t* row_ptr, const int32_t* rev,
                      int32_t N, int D, int heads);
  float* scratch(int64_t floats, const char* op);  // grows the scratch buffer; nullptr (error recorded) on failure
  void record(const Status& st);                  // keeps the first error for check()
  void launched(const char* op);                  // records a launch error of the kernel just enqueued (+ mark)
  void mark(const char* op);                      // profiling: an event after `op` (when device_profile_enabled())
  void settle_profile();                          // profiling: charge the marked intervals (after a sync)
  double reduce_sum_to_host(const float* a, const float* b, float* d, int64_t n, double scale, const char* op);
  // Enqueues Σ (a − b)² (b may be null) into *out (null: the scratch buffer's slot); returns where, null on failure.
  const double* reduce_sum_dev(const float* a, const float* b, float* d, int64_t n, double scale, double* out,
                               const char* op);
  void free_resources() noexcept;

  void* stream_ = nullptr;
  bool stream_failed_ = false;
  bool capturing_ = false;
  void* scratch_ = nullptr;
  int64_t scratch_bytes_ = 0;
  Status pending_;
  std::vector<void*> prof_events_;       // cudaEvent_t pool (profiling only)
  std::vector<const char*> prof_names_;  // op of each recorded event
  size_t prof_used_ = 0;
};

}  // namespace wsf
