// Weight graphs for the relational transformer (METHOD.md §1.3–1.5, §13.2): a batch of G MLPs becomes one
// graph whose nodes are neurons (biases are node features) and whose edges carry states.
//
//   Sparse mode (default): for every weight u→v (u in layer l−1, v in layer l) the forward pair (u,v) (dir 0)
//     and the reverse pair (v,u) (dir 1), plus a self loop (u,u) per node (dir 2).
//   Dense mode: all N² ordered pairs of each network (the published model): real forward pairs dir 0, their
//     reverses dir 1, the diagonal dir 2, every other pair dir 3.
//   Hybrid mode: the sparse pairs plus every other ordered pair among the non-input neurons (dir 3, no value), so
//     hidden and output neurons exchange messages directly in every layer (all layers see each other), at the cost
//     of (N − n_0)² extra pairs per network instead of the dense graph's N²: 180 more for 784-10-10 (16,684 → 16,864
//     against the dense 646,416).
//   Virtual mode: the sparse pairs plus one virtual node per network (after its output neurons), paired with every
//     neuron of its network both ways — (u, virtual) dir 3, (virtual, u) dir 4 — and with itself (dir 2). Every
//     neuron then reads a summary of the whole network in every layer (two hops between any two neurons) for 2N + 1
//     extra pairs: 784-10-10 has 16,684 → 18,293. The virtual node has no value and no output; its positional slot
//     is the row after all the others (SlotConfig::rows()), so its embedding is its only identity.
//
// Pairs are stored in CSR order by their *row* node u: the edges of row u are [row_ptr[u], row_ptr[u+1]),
// sorted by column v. In attention, node u (row) attends over the columns v of its row (query from u, key and
// value from v, all modulated by the pair state e_uv). Both edge sets are symmetric: every pair (u,v) has its
// reverse (v,u) at rev[k], and rev is an involution — so every column reduction is a row reduction over rev.
//
// Flat parameter indices: network g's parameters start at param_offset[g] in the concatenated flat input (for a
// uniform batch, g·P). A pair's value index points at its weight (dir 0 and 1), −1 otherwise; a node's bias
// index points at its bias, −1 for input neurons.
//
// Positional slots (one learned embedding per slot): input neuron i → i; hidden layer l (1…L−1) →
// input_slots + l − 1; output neuron j → input_slots + hidden_slots + j (METHOD.md §1.5); a virtual node →
// rows() (so a virtual-mode model has rows() + 1 positional rows). With hidden_width > 0
// (an option for aligned data, not in the published model) hidden neuron k of layer l gets its own slot
// input_slots + (l − 1)·hidden_width + k instead: the field then tells hidden neurons apart, which breaks its
// permutation equivariance on purpose (alignment has fixed an order of the hidden neurons).
#pragma once

#include <cstdint>
#include <vector>

#include "core/common.h"

namespace wsf {

enum class GraphMode : int { Sparse = 0, Dense = 1, Hybrid = 2, Virtual = 3 };

struct SlotConfig {
  int input_slots = 0;   // max input width n_0 supported
  int hidden_slots = 0;  // max number of hidden layers L−1 supported
  int output_slots = 0;  // max output width n_L supported
  int hidden_width = 0;  // 0: one slot per hidden layer (published); > 0: one per hidden neuron, max width per layer
  int hidden_rows() const { return hidden_slots * (hidden_width > 0 ? hidden_width : 1); }
  int rows() const { return input_slots + hidden_rows() + output_slots; }
};

struct RtGraph {
  GraphMode mode = GraphMode::Sparse;
  int32_t G = 0;        // networks
  int32_t N = 0;        // nodes (all networks)
  int64_t M = 0;        // pairs (all networks)
  int64_t P = 0;        // flat parameters (all networks)
  std::vector<int32_t> node_offset, edge_offset_g, param_offset;  // per network (G+1 entries each; edge as int32)
  std::vector<int32_t> node_graph, node_slot, node_param, node_is_input;  // per node
  std::vector<int32_t> row_ptr;                                              // N+1
  std::vector<int32_t> edge_row, edge_col, edge_rev, edge_dir, edge_param, edge_graph;  // per pair
  std::vector<int32_t> out_edge, out_edge_param;  // dir-0 pairs in flat order and their flat weight index
  std::vector<int32_t> out_node, out_node_param;  // nodes with a bias (hidden and output neurons) and its flat index
};

// Builds the graph of a batch of networks. `widths[g]` are network g's layer widths.
// Fails (Code::Shape) when a network does not fit the slot configuration or the pair count overflows int32.
Status build_rt_graph(RtGraph* out, const std::vector<std::vector<int32_t>>& widths, GraphMode mode,
                      const SlotConfig& slots);

}  // namespace wsf
