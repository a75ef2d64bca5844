// The relational transformer's configuration and parameter layout (METHOD.md §1.5, §2), shared by every
// backend. All parameters live in one flat buffer; each named tensor has an offset into it. Names follow the
// published model where one exists, so its state dict maps one-to-one (see test/reference/rt.golden.test.ts).
//
// Widths: D (embedding), H = D + 1 (state width: one channel carries time), heads divide D.
// Parameter count per RT layer: 17·D·H + H² + 3D + 13H (METHOD.md §2.5); the unused graph-level head of the
// published code is not created (its 11,681 parameters for MNIST D=32 are the difference to 145,769).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/common.h"
#include "core/rt_graph.h"

namespace wsf {

enum class TimeRule : int {
  All = 0,        // every node and pair carries t (corrected semantics)
  Reference = 1,  // the published rule: input neurons and real forward pairs get 1, the rest t (dense graphs)
};

struct RtConfig {
  int D = 32;
  int layers = 5;
  int heads = 1;
  SlotConfig slots;
  GraphMode mode = GraphMode::Sparse;
  TimeRule time_rule = TimeRule::All;
  bool dir_embed = true;        // learned embedding of the pair direction (0 fwd, 1 rev, 2 self, 3 non-edge)
  bool reverse_value = true;    // reverse pairs carry the weight value as input feature (sparse default)
  int in_features = 1;          // 1: the input MLPs see the value only (published); 2: value and t
  int aux_features = 0;         // A > 0: A more input columns per weight and bias, from a caller-supplied array
                                //    (P × A; e.g. the task gradient at x_t, probe activations); no gradient flows
                                //    into them
  bool recompute = false;       // training keeps only each layer's output states and recomputes a layer's other
                                //    activations in the backward pass (same gradients bit for bit; less memory)
  int64_t chunk_rows = 0;       // with recompute: the pair-wise work of a layer (attention projections, the pair
                                //    MLP, the input MLP and pair head) runs in chunks of about this many pairs
                                //    and keeps only full-size pair states (0: whole batch). Same model; the
                                //    gradients' sums are cut into chunks, so they agree to rounding

  int H() const { return D + 1; }
  // Input-MLP width: [value, (t), (aux)].
  int din() const { return in_features + aux_features; }
  Status validate() const;
};

struct LinOff {
  int64_t w = -1, b = -1;  // offsets into the parameter buffer (b = −1: no bias)
  int in = 0, out = 0;
};
struct LnOff {
  int64_t g = -1, b = -1;
  int dim = 0;
};
struct LayerOff {
  LinOff qkv_node, qkv_edge, attn_out, lin0, node_mlp0, node_mlp2;
  LnOff node_ln0, node_ln1;
  LinOff lin0_e, lin0_s, lin0_t, lin1, edge_mlp0, edge_mlp2;
  LnOff eln0, eln1;
};

enum class Init : int { Xavier = 0, TorchDefault = 1, Zeros = 2, Ones = 3, Normal = 4 };

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
  Init init = Init::Zeros;
  int fan_in = 0, fan_out = 0;
};

struct RtLayout {
  std::vector<ParamTensor> tensors;
  int64_t total = 0;
  LinOff edge_in[3], edge_in_proj, node_in[3], node_in_proj;
  int64_t pos = -1, dir = -1;
  int pos_rows = 0, dir_rows = 0;
  std::vector<LayerOff> layers;
  LinOff edge_head[3], node_head[3];
};

RtLayout make_layout(const RtConfig& cfg);

// Initialises parameters on the host as METHOD.md §2.4: RT internals Xavier-uniform with zero biases; input
// projections and heads PyTorch's default U(±1/√fan_in) for weights and biases; LayerNorm γ=1, β=0;
// positional and direction tables N(0,1). Deterministic for a seed.
void init_params(float* params, const RtLayout& layout, uint64_t seed);

}  // namespace wsf
