// The relational transformer's primitive ops, one backend per device with identical signatures:
//   CpuOps<T>  — the plain C++ reference (T = float for use, T = double for gradient checks), multi-threaded.
//   CudaOps    — the CUDA kernels (float), in rt_ops_cuda.cu (declared in rt_ops_cuda.h).
// The engine (rt_engine.h) is written once against this interface. Pointers are host pointers for CpuOps and
// device pointers for CudaOps. Memory calls return Status; math calls return nothing (CUDA launch errors surface
// at check()).
//
// Shapes use row-major matrices: `rows × C`. Linear layers follow PyTorch: W is (out × in) with leading
// dimension `ldw` (≥ in), y = x·Wᵀ + b. Gradient conventions (HOUSE_STYLE): outputs named d*, weight and bias
// gradients always ACCUMULATE (+=); data gradients overwrite unless `acc` is true.
//
// Graph arrays (rt_graph.h): pairs in CSR order by row node; row_ptr (N+1), row/col/rev per pair; rev is an
// involution, so column sums are computed as row sums over rev (deterministic, no atomics).
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"

#include "core/gemm_cpu.h"

namespace wsf {

enum class Act : int { Gelu = 0, Silu = 1, Relu = 2 };

struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;  // decoupled (AdamW) when > 0
};

// The device-side Adam constants of step `step` for the CUDA kernels that read them from device memory (the flow
// step's sync-free mode): beta1, beta2, lr, eps, weight decay, 1/bc1 and 1/√bc2 (each the float the by-value kernel
// receives, held in a double) and the clipping norm. The same values as CudaOps::adam's arguments.
constexpr int kAdamConsts = 8;
void adam_constants(const AdamHyper& h, int64_t step, double clip_norm, double out[kAdamConsts]);

template <typename T>
struct CpuOps {
  using Scalar = T;
  static constexpr Device device = Device::Cpu;

  // Precision of the blocked ops' products (the pair MLP and pair update, the attention's pair projections, the input
  // MLPs' hidden layers — forward, data and weight gradients): GemmPrecision::Bf16 rounds both operands to bf16 and
  // sums in float where the CPU has AVX-512 BF16 and the product is large enough to gain (gemm_cpu.h). Float engines
  // only; double ignores it.
  GemmPrecision matmul = GemmPrecision::F32;

  // ---- memory ----
  Status alloc(T** p, int64_t n);
  Status alloc_i32(int32_t** p, int64_t n);
  void release(void* p);
  void zero(T* p, int64_t n);
  void copy(T* dst, const T* src, int64_t n);
  Status upload(T* dst, const float* src, int64_t n);      // host float → backend T
  Status download(float* dst, const T* src, int64_t n);    // backend T → host float
  Status upload_raw(T* dst, const T* src, int64_t n);      // host T → backend T
  Status download_raw(T* dst, const T* src, int64_t n);    // backend T → host T
  Status upload_i32(int32_t* dst, const int32_t* src, int64_t n);
  Status check() { return Status::ok(); }
  Status synchronize() { return Status::ok(); }  // waits for every op issued so far (no-op on the CPU)

  // ---- dense layers ----
  // y[r][o] (+)= Σ_k x[r][k]·W[o·ldw + k] + b[o]   (b may be null)
  void linear_fwd(T* y, const T* x, const T* W, const T* b, int64_t rows, int K, int N, int ldw, bool acc);
  // dx[r][k] (+)= Σ_o dy[r][o]·W[o·ldw + k]
  void linear_bwd_data(T* dx, const T* dy, const T* W, int64_t rows, int K, int N, int ldw, bool acc);
  // dW[o·ldw + k] += Σ_r dy[r][o]·x[r][k];  db[o] += Σ_r dy[r][o]   (db may be null)
  void linear_bwd_weight(T* dW, T* db, const T* dy, const T* x, int64_t rows, int K, int N, int ldw);
  // LayerNorm over C (eps 1e-5, biased variance): y = x̂·g + b; saves x̂ and 1/σ per row.
  void layernorm_fwd(T* y, T* xhat, T* rstd, const T* x, const T* g, const T* b, int64_t rows, int C);
  // dx (+)= LN backward; dg += Σ dy·x̂; db += Σ dy
  void layernorm_bwd(T* dx, T* dg, T* db, const T* dy, const T* xhat, const T* rstd, const T* g, int64_t rows, int C,
                     bool acc);
  void act_fwd(T* y, const T* x, int64_t n, Act a);
  // dx (+)= dy · act'(x)
  void act_bwd(T* dx, const T* dy, const T* x, int64_t n, Act a, bool acc);
  // y = a + b (y may alias a or b)
  void add(T* y, const T* a, const T* b, int64_t n);

  // ---- graph ops ----
  // Edge-modulated attention (METHOD.md §2.2 steps 3–6). Pn: N × 3D node projections (per head h a block
  // [q̃|k̃|ṽ] of width 3D/heads); Pe: M × 4D pair projections (per head [a|b|c|g]). For pair k = (u,v):
  // q = q̃_u + a, key = k̃_v + b, val = ṽ_v ⊙ g + c, s = ⟨q,key⟩/√D, α = softmax over row u, o_u = Σ α·val.
  // Saves α (M × heads).
  void attention_fwd(T* o, T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col, int32_t N,
                     int D, int heads);
  // attention_fwd over the rows [r0, r1) only, with Pe holding the pairs from k_base on (pair k at row k − k_base):
  // the row-chunked form (recompute mode with chunk_rows). o and α are written for those rows' nodes and pairs.
  void attention_fwd_rows(T* o, T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr, const int32_t* col,
                          int32_t r0, int32_t r1, int64_t k_base, int D, int heads);
  // dPn, dPe are overwritten.
  void attention_bwd(T* dPn, T* dPe, const T* dout, const T* alpha, const T* Pn, const T* Pe, const int32_t* row_ptr,
                     const int32_t* col, const int32_t* rev, int32_t N, int D, int heads);
  // attention_bwd in two parts for row chunks. Rows: pass 1 over rows [r0, r1) — the q̃ blocks of those rows in dPn
  // and the pairs' dPe (pair k at row k − k_base of dPe and Pe), and, unless colbuf is null, the column pass's
  // operands of each pair at colbuf + k·2D (per head [dkey | dval ⊙ g], Dh each). Cols: pass 2 from colbuf, the
  // k̃ and ṽ blocks of dPn for all N nodes — the same sums in the same order as attention_bwd's.
  void attention_bwd_rows(T* dPn, T* dPe, T* colbuf, const T* dout, const T* alpha, const T* Pn, const T* Pe,
                          const int32_t* row_ptr, const int32_t* col, int32_t r0, int32_t r1, int64_t k_base, int D,
                          int heads);
  void attention_bwd_cols(T* dPn, const T* colbuf, const int32_t* row_ptr, const int32_t* rev, int32_t N, int D,
                          int heads);
  // z_k = Y1_k + Y2_{rev k} + S_{row k} + T_{col k} + bias (D wide).
  void edge_combine_fwd(T* z, const T* Y1, const T* Y2, const T* S, const T* Tn, const T* bias, const int32_t* row,
                        const int32_t* col, const int32_t* rev, int64_t M, int D);
  // dY2_k = dz_{rev k}; dS_u = Σ_{k∈row u} dz_k; dT_v = Σ_{k∈row v} dz_{rev k} (all overwrite); dbias += Σ_k dz_k.
  void edge_combine_bwd(T* dY2, T* dS, T* dT, T* dbias, const T* dz, const int32_t* row_ptr, const int32_t* rev,
                        int32_t N, int64_t M, int D);

  // ---- inputs and outputs ----
  // feat[k] = [value_k, (t_k), (aux_k,0 … aux_k,A−1)] with value_k = x[param_k] for dir 0 (and dir 1 when
  // reverse_value), else 0; aux_k,c = aux[param_k·A + c] under the same condition in the last A = aux_cols columns
  // when aux is not null (A = 0 otherwise); t_k = t[graph_k] in column 1 when the columns before aux are 2.
  void edge_features(T* feat, const T* x, const T* t, const T* aux, const int32_t* param, const int32_t* dir,
                     const int32_t* graph, int64_t M, int din, bool reverse_value, int aux_cols);
  // feat[u] = [β_u, (t_u), (aux_u,·)] with β_u = x[param_u] (0 for input neurons), aux_u,c likewise from `aux`.
  void node_features(T* feat, const T* x, const T* t, const T* aux, const int32_t* param, const int32_t* graph,
                     int32_t N, int din, int aux_cols);
  // Backward of edge_features to the flat input, over the n forward (dir-0) pairs idx[i] whose weight is
  // param[i]: dx[param[i]] = dfeat[idx[i]·din] (+ dfeat[rev[idx[i]]·din] when reverse_value: the reverse pair
  // carries the same weight). Overwrites dx[param[i]]; every weight has exactly one forward pair, so each output
  // is written once (no atomics). The t column gets no gradient.
  void edge_features_bwd(T* dx, const T* dfeat, const int32_t* idx, const int32_t* rev, const int32_t* param,
                         int64_t n, int din, bool reverse_value);
  // Backward of node_features to the flat input over the n non-input nodes idx[i] with bias param[i]:
  // dx[param[i]] = dfeat[idx[i]·din]. Overwrites.
  void node_features_bwd(T* dx, const T* dfeat, const int32_t* idx, const int32_t* param, int64_t n, int din);
  // dst[r][0:cols] = src[r][0:cols] (strided copy), optionally accumulating.
  void copy_cols(T* dst, int ldd, const T* src, int lds, int64_t rows, int cols, bool acc);
  // y[r][0:D] += table[idx[r]][0:D]   (y has leading dimension ld)
  void embed_add(T* y, int ld, const T* table, const int32_t* idx, int64_t rows, int D);
  // dtable[idx[r]] += dy[r][0:D] (deterministic: per table row, in index order)
  void embed_bwd(T* dtable, const T* dy, int ld, const int32_t* idx, int64_t rows, int D, int table_rows);
  // s[r][H−1] = time of row r: t[graph[r]], or 1 where one_mask[r] != 0 (one_mask may be null).
  void set_time(T* s, const T* t, const int32_t* graph, const int32_t* one_mask, int64_t rows, int H);
  // y[i] = x[idx[i]] (rows of C)
  void gather_rows(T* y, const T* x, const int32_t* idx, int64_t n, int C);
  // dx[idx[i]] (+)= dy[i]; idx unique. Rows of dx not listed are untouched.
  void scatter_rows(T* dx, const T* dy, const int32_t* idx, int64_t n, int C, bool acc);
  // flat[param[i]] = v[i]
  void scatter_flat(T* flat, const T* v, const int32_t* param, int64_t n);
  // v[i] = flat[param[i]]
  void gather_flat(T* v, const T* flat, const int32_t* param, int64_t n);

  // ---- CPU only ----
  // attention_bwd with the column pass's operands scattered in pass 1 to the reverse pair — per pair k and head,
  // dkey at kcol + rev_k·D and dval ⊙ g at vcol + rev_k·D (M × D each, scratch, overwritten) — so that pass 2 reads
  // them in order instead of gathering them: the same results, bit for bit.
  void attention_bwd_scattered(T* dPn, T* dPe, T* kcol, T* vcol, const T* dout, const T* alpha, const T* Pn,
                               const T* Pe, const int32_t* row_ptr, const int32_t* col, const int32_t* rev, int32_t N,
                               int D, int heads);

  // ---- fused attention projections (CPU only; the engine runs linear_fwd + attention_fwd_rows elsewhere) ----
  // Pe = e·W_Eᵀ (W_E: 4D × H, no bias) for the pairs of rows [r0, r1), computed in blocks of rows whose pairs stay in
  // cache and attended at once (attention_fwd_rows' results bit for bit). e_all: all pairs' states (global pair
  // index). Pe: where the projections are kept, pair k at Pe + (k − k_base)·4D (training: the backward reads them), or
  // null (an inference forward: block scratch only).
  void attention_proj_fwd(T* o, T* alpha, T* Pe, const T* Pn, const T* e_all, const T* WE, const int32_t* row_ptr,
                          const int32_t* col, int32_t r0, int32_t r1, int64_t k_base, int D, int H, int heads);

  // Its backward together with the attention backward (CPU only; elsewhere attention_bwd + linear_bwd_*): per block
  // of rows ∂L/∂Pe in block scratch (attention_bwd_scattered's row pass, bit for bit), used at once for
  // ∂L/∂e += ∂L/∂Pe·W_E (as linear_bwd_data computes it) and, unless dWE is null, ∂L/∂W_E += ∂L/∂Peᵀ·e — summed in
  // fixed partitions of the blocks, added in order: deterministic for any thread count, rounded differently from
  // linear_bwd_weight —; then the column pass into dPn. kcol, vcol: pair scratch (M × D each).
  void attention_proj_bwd(T* dPn, T* dE, T* dWE, T* kcol, T* vcol, const T* dout, const T* alpha, const T* Pn,
                          const T* Pe, const T* e_all, const T* WE, const int32_t* row_ptr, const int32_t* col,
                          const int32_t* rev, int32_t N, int D, int H, int heads);

  // The pair update's backward (CPU only; elsewhere edge_combine_bwd + linear_bwd_*) in blocks of rows: ∂L/∂Y2 =
  // ∂L/∂z at the reverse pairs in block scratch, the node terms' row sums dS, dT and ∂L/∂b_e, ∂L/∂e += ∂L/∂z·W_e1 +
  // ∂L/∂Y2·W_e2 — all bit for bit as the op sequence — and, unless dWe is null, ∂L/∂W_e += [∂L/∂zᵀ·e | ∂L/∂Y2ᵀ·e] in
  // fixed partitions of the blocks (deterministic for any thread count, rounded differently from linear_bwd_weight).
  void edge_update_bwd(T* dE, T* dWe, T* dS, T* dT, T* dbias, const T* dz, const T* e_all, const T* We,
                       const int32_t* row_ptr, const int32_t* rev, int32_t N, int D, int H);

  // ---- fused input MLP (CPU only; elsewhere linear_fwd/act_fwd/linear_bwd_* in sequence) ----
  // out = Lp(h2), h2 = L2(SiLU(h1)), h1 = L1(SiLU(h0)), h0 = L0(f) over `rows` rows (f: rows × din; the rest rows × D;
  // W_i as PyTorch, out × in, all with bias) in cache-sized blocks, the op sequence's results bit for bit. h0, h1, h2:
  // kept for a backward, or all null (block scratch).
  void in_mlp_fwd(T* out, T* h0, T* h1, T* h2, const T* f, const T* W0, const T* b0, const T* W1, const T* b1,
                  const T* W2, const T* b2, const T* Wp, const T* bp, int64_t rows, int din, int D);
  // Its backward from ∂L/∂out (dout, read only): ∂L/∂f into df unless null, and unless `grads` is null the weight and
  // bias gradients accumulated into grads[0..7] = dW0, db0, dW1, db1, dW2, db2, dWp, dbp — summed in fixed partitions
  // of the blocks (deterministic for any thread count; rounded differently from linear_bwd_weight). The data
  // gradient is bit for bit the op sequence's.
  void in_mlp_bwd(T* df, T* const* grads, const T* dout, const T* f, const T* h0, const T* h1, const T* h2, const T* W0,
                  const T* W1, const T* W2, const T* Wp, int64_t rows, int din, int D);

  // ---- fused pair MLP (CPU only; the engine uses the op sequence above on other backends) ----
  // Forward of ē = LN2(e + Lin1(GELU(z))), h3 = Lin_m0(ē), e' = LN3(ē + Lin_m2(GELU(h3))) in row blocks that stay
  // in cache; writes the same saved tensors as the op sequence (ē, x̂2, 1/σ2, h3, x̂3, 1/σ3, e'), or with all six
  // saved pointers null (an inference forward) only e', the rest kept in block scratch.
  void edge_mlp_fwd(T* ebar, T* xh2, T* rs2, T* h3, T* xh3, T* rs3, T* e_out, const T* z, const T* e_in, const T* W1,
                    const T* b1, const T* g2, const T* be2, const T* Wm0, const T* Wm2, const T* bm2, const T* g3,
                    const T* be3, int64_t M, int D, int H);
  // The pair update and the pair MLP together, for pairs [k0, k0 + M) of a graph with pair states e_all (all pairs:
  // the reverse pairs' rows are read): z = e·W_e1ᵀ + (e·W_e2ᵀ)[rev] + S[row] + T[col] + b_e — the op sequence
  // linear_fwd, linear_fwd, edge_combine_fwd bit for bit, W_e (D × 2H) = [W_e1 | W_e2] — computed per row block while
  // the block's rows are in cache, then edge_mlp_fwd's block. z: where z is kept (k0-relative; training, where its
  // backward reads it), or null (an inference forward: z in block scratch). e_out and the saved pointers as
  // edge_mlp_fwd's, k0-relative.
  void edge_update_fwd(T* z, T* ebar, T* xh2, T* rs2, T* h3, T* xh3, T* rs3, T* e_out, const T* e_all, const T* We,
                       const T* be, const T* S, const T* Tn, const int32_t* row, const int32_t* col, const int32_t* rev,
                       int64_t k0, const T* W1, const T* b1, const T* g2, const T* be2, const T* Wm0, const T* Wm2,
                       const T* bm2, const T* g3, const T* be3, int64_t M, int D, int H);
  // Its backward from ∂L/∂e': writes ∂L/∂e (residual path) and ∂L/∂z, accumulates every parameter gradient
  // (per-partition partials summed in a fixed order: deterministic for any thread count). With param_grads
  // false (input-only backward) the parameter gradients are neither computed nor touched.
  void edge_mlp_bwd(T* dE_in, T* dz, T* dg3, T* dbe3, T* dWm2, T* dbm2, T* dWm0, T* dg2, T* dbe2, T* dW1, T* db1,
                    const T* dE_out, const T* xh3, const T* rs3, const T* g3, const T* h3, const T* ebar, const T* Wm2,
                    const T* Wm0, const T* xh2, const T* rs2, const T* g2, const T* z, const T* W1, int64_t M, int D,
                    int H, bool param_grads = true);

  // ---- loss and optimiser ----
  // d = scale·(xhat − target); returns Σ (xhat − target)² (host value)
  double mse(T* d, const T* xhat, const T* target, int64_t n, double scale);
  double sum_squares(const T* x, int64_t n);
  void scale(T* x, int64_t n, double s);
  // Adam/AdamW update with bias correction for step `step` (1-based); g is multiplied by grad_scale first.
  void adam(T* p, const T* g, T* m, T* v, int64_t n, const AdamHyper& h, int64_t step, double grad_scale);

  // ---- flow-matching step (the device-resident training step of core/flow_step.h) ----
  // Element i of a B×P batch belongs to network b = i / P and parameter p = i % P. Each op computes in double and
  // rounds once, with the operations in the order of the TypeScript flow step, so both give the same floats.
  // xt = (1 − t_b)·x0 + t_b·x1 + noise (noise may be null: no noise term).
  void flow_path(T* xt, const T* x0, const T* x1, const T* noise, const T* t, int64_t B, int64_t P);
  // y = x / scale_p (per-layer input scaling; y may alias x).
  void flow_input(T* y, const T* x, const T* scale, int64_t B, int64_t P);
  // x̂1 from the field's output F: xt + ((1 − t_b)·s_p)·F with precondition, else s_p·F (s = 1 when scale is null).
  void flow_to_x1(T* xhat, const T* F, const T* xt, const T* t, const T* scale, bool precondition, int64_t B,
                  int64_t P);
  // ∂L/∂F from ∂L/∂x̂1 in place (the adjoint of flow_to_x1 in F): (d·(1 − t_b))·s_p with precondition, else d·s_p.
  void flow_to_dF(T* d, const T* t, const T* scale, bool precondition, int64_t B, int64_t P);
  // out[i] = mean + stddev·N(0, 1) by the counter-based draws of core/random.h (fill_normal_counter).
  void fill_normal(T* out, int64_t n, uint64_t seed, double mean, double stddev);
  // The sampler's velocity from a prediction: v = (x̂ − x)·inv, rounded to T after the difference and after the
  // product (the host sampler's two stores); v may alias xhat.
  void flow_velocity(T* v, const T* xhat, const T* x, double inv, int64_t n);
  // The Euclidean step y = x + dt·v (y may alias x).
  void flow_axpy(T* y, const T* x, const T* v, double dt, int64_t n);
  // RK4's combined velocity v = (((k1 + 2·k2) + 2·k3) + k4)/6 (solvers.ts' order).
  void flow_rk4_combine(T* v, const T* k1, const T* k2, const T* k3, const T* k4, int64_t n);
  // ema = decay·ema + (1 − decay)·p (the exponential moving average of the parameters).
  void ema_update(T* ema, const T* p, int64_t n, double decay);
  // Row r of out (leading dimension ld) receives counts[r] draws mean + stddev·N(0, 1) of fill_normal with the seed
  // (seeds[2r] << 32 | seeds[2r+1]) (unsigned halves stored as int32): one independent stream per row.
  void fill_normal_rows(T* out, int64_t rows, int64_t ld, const int32_t* counts, const int32_t* seeds, double mean,
                        double stddev);
  // Draws of fitted Gaussians (the zoo and mixture priors), row b from component c = comp[b] (comp null: 0):
  //   basis given: out[b,p] = mean[c,p] + Σ_{k < m_c} eps[b·ld_eps + k] · basis[(row0[c] + k)·P + p],
  //                m_c = row0[c+1] − row0[c], accumulated in double in k order (the host's drawGaussianFit);
  //   basis null:  out[b,p] = eps[b·ld_eps + p] + mean[c,p] (isotropic components).
  void gaussian_fit_draw(T* out, const T* eps, int64_t ld_eps, const int32_t* comp, const T* mean, const T* basis,
                         const int32_t* row0, int64_t B, int64_t P);

  // ---- the CUDA flow step's sync-free ops (CudaOps, same signatures), their plain references for parity tests;
  // here every pointer is host memory. ----
  // *out = Σ x² (sum_squares, written where the device op writes it).
  void sum_squares_dev(double* out, const T* x, int64_t n);
  // RtEngine::adam_step's host rule: norm = √sumsq[0]; gate[1] = 1 when norm and loss[0] are finite, else 0; gate[0] =
  // consts[7]/norm when consts[7] (the clipping norm) > 0 and norm > it, else 1 (rounded to T).
  void step_gate(T* gate, const double* sumsq, const T* loss, const double* consts);
  // adam with the constants of consts (adam_constants' layout) and gradient scale gate[0]; nothing when gate[1] == 0.
  void adam_gated(T* p, const T* g, T* m, T* v, int64_t n, const double* consts, const T* gate);
  // ema_update, nothing when gate[1] == 0.
  void ema_update_gated(T* ema, const T* p, int64_t n, double decay, const T* gate);
  // fill_normal with the seed *seed.
  void fill_normal_dev(T* out, int64_t n, const uint64_t* seed, double mean, double stddev);

  std::vector<T> scratch_;  // packing space for linear_fwd (per engine, not shared across threads)
};

extern template struct CpuOps<float>;
extern template struct CpuOps<double>;

}  // namespace wsf
