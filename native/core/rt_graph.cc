// Graph construction for the relational transformer (see rt_graph.h for the conventions).
#include "core/rt_graph.h"

#include <algorithm>
#include <string>

namespace wsf {

Status build_rt_graph(RtGraph* out, const std::vector<std::vector<int32_t>>& widths, GraphMode mode,
                      const SlotConfig& slots) {
  RtGraph g;
  g.mode = mode;
  g.G = static_cast<int32_t>(widths.size());
  if (g.G == 0) return shape_error("a graph batch needs at least one network");
  g.node_offset.assign(1, 0);
  g.edge_offset_g.assign(1, 0);
  g.param_offset.assign(1, 0);
  int64_t total_nodes = 0, total_pairs = 0, total_params = 0;
  for (int32_t n = 0; n < g.G; ++n) {
    const auto& w = widths[n];
    const int L = static_cast<int>(w.size()) - 1;
    if (L < 1) return shape_error("network " + std::to_string(n) + " needs at least 2 widths");
    for (int32_t x : w) {
      if (x < 1) return shape_error("network " + std::to_string(n) + " has a non-positive width");
    }
    if (w[0] > slots.input_slots) {
      return shape_error("network " + std::to_string(n) + " has " + std::to_string(w[0]) + " inputs but the model has " +
                         std::to_string(slots.input_slots) + " input slots");
    }
    if (L - 1 > slots.hidden_slots) {
      return shape_error("network " + std::to_string(n) + " has " + std::to_string(L - 1) +
                         " hidden layers but the model has " + std::to_string(slots.hidden_slots) + " hidden-layer slots");
    }
    for (int l = 1; l < L && slots.hidden_width > 0; ++l) {
      if (w[l] > slots.hidden_width) {
        return shape_error("network " + std::to_string(n) + " has " + std::to_string(w[l]) + " neurons in hidden layer " +
                           std::to_string(l) + " but the model has " + std::to_string(slots.hidden_width) + " hidden-neuron slots");
      }
    }
    if (w[L] > slots.output_slots) {
      return shape_error("network " + std::to_string(n) + " has " + std::to_string(w[L]) + " outputs but the model has " +
                         std::to_string(slots.output_slots) + " output slots");
    }
    int64_t nodes = 0, weights = 0, biases = 0;
    for (int l = 0; l <= L; ++l) nodes += w[l];
    for (int l = 1; l <= L; ++l) {
      weights += static_cast<int64_t>(w[l - 1]) * w[l];
      biases += w[l];
    }
    // Hybrid: all ordered pairs among the non-input neurons (their real pairs and self loops included), plus the
    // sparse pairs that touch an input neuron (first-layer weights both ways, the inputs' self loops).
    const int64_t upper = nodes - w[0];
    const int64_t first = static_cast<int64_t>(w[0]) * w[1];
    const int64_t pairs = mode == GraphMode::Dense     ? nodes * nodes
                          : mode == GraphMode::Hybrid  ? upper * upper + 2 * first + w[0]
                          : mode == GraphMode::Virtual ? 2 * weights + nodes + 2 * nodes + 1
                                                       : 2 * weights + nodes;
    if (mode == GraphMode::Virtual) nodes += 1;
    total_nodes += nodes;
    total_pairs += pairs;
    total_params += weights + biases;
    if (total_pairs > INT32_MAX || total_params > INT32_MAX || total_nodes > INT32_MAX) {
      return shape_error("graph batch too large: " + std::to_string(total_pairs) + " pairs (int32 indices)");
    }
    g.node_offset.push_back(static_cast<int32_t>(total_nodes));
    g.edge_offset_g.push_back(static_cast<int32_t>(total_pairs));
    g.param_offset.push_back(static_cast<int32_t>(total_params));
  }
  g.N = static_cast<int32_t>(total_nodes);
  g.M = total_pairs;
  g.P = total_params;
  g.node_graph.resize(g.N);
  g.node_slot.resize(g.N);
  g.node_param.resize(g.N);
  g.node_is_input.resize(g.N);
  g.row_ptr.assign(g.N + 1, 0);
  g.edge_row.resize(g.M);
  g.edge_col.resize(g.M);
  g.edge_rev.resize(g.M);
  g.edge_dir.resize(g.M);
  g.edge_param.resize(g.M);
  g.edge_graph.resize(g.M);

  for (int32_t n = 0; n < g.G; ++n) {
    const auto& w = widths[n];
    const int L = static_cast<int>(w.size()) - 1;
    const int32_t nbase = g.node_offset[n];
    const int32_t pbase = g.param_offset[n];
    // Per-layer node offsets (local), weight offsets and bias offsets (flat, local).
    std::vector<int32_t> loff(L + 2, 0), woff(L + 1, 0), boff(L + 1, 0);
    for (int l = 0; l <= L; ++l) loff[l + 1] = loff[l] + w[l];
    int32_t e = 0;
    for (int l = 1; l <= L; ++l) {
      woff[l] = e;
      e += w[l - 1] * w[l];
    }
    int32_t b = e;
    for (int l = 1; l <= L; ++l) {
      boff[l] = b;
      b += w[l];
    }
    const int32_t Nn = loff[L + 1];  // neurons (the virtual node, if any, is local node Nn)
    const bool virt = mode == GraphMode::Virtual;
    auto layer_of = [&](int32_t u) {
      int l = 0;
      while (u >= loff[l + 1]) ++l;
      return l;
    };
    // Nodes.
    for (int l = 0; l <= L; ++l) {
      for (int32_t j = 0; j < w[l]; ++j) {
        const int32_t u = nbase + loff[l] + j;
        g.node_graph[u] = n;
        g.node_is_input[u] = l == 0 ? 1 : 0;
        g.node_param[u] = l == 0 ? -1 : pbase + boff[l] + j;
        if (l == 0) {
          g.node_slot[u] = j;
        } else if (l < L) {
          g.node_slot[u] = slots.hidden_width > 0 ? slots.input_slots + (l - 1) * slots.hidden_width + j : slots.input_slots + (l - 1);
        } else {
          g.node_slot[u] = slots.input_slots + slots.hidden_rows() + j;
        }
      }
    }
    if (virt) {
      const int32_t u = nbase + Nn;
      g.node_graph[u] = n;
      g.node_is_input[u] = 0;
      g.node_param[u] = -1;
      g.node_slot[u] = slots.rows();
    }
    // Pairs, row by row (local indices first, then shifted).
    int64_t k = g.edge_offset_g[n];
    for (int32_t ul = 0; ul < Nn; ++ul) {
      const int lu = layer_of(ul);
      const int32_t u = nbase + ul;
      g.row_ptr[u] = static_cast<int32_t>(k);
      auto emit = [&](int32_t vl, int32_t dir, int32_t param) {
        g.edge_row[k] = u;
        g.edge_col[k] = nbase + vl;
        g.edge_dir[k] = dir;
        g.edge_param[k] = param;
        g.edge_graph[k] = n;
        ++k;
      };
      if (mode == GraphMode::Dense || (mode == GraphMode::Hybrid && lu >= 1)) {
        // Dense: every column. Hybrid row of a non-input neuron: its first-layer reverse pairs (when in layer 1),
        // then every non-input column — the dense rule restricted to the columns a hybrid row has.
        for (int32_t vl = 0; vl < Nn; ++vl) {
          const int lv = layer_of(vl);
          if (mode == GraphMode::Hybrid && lv == 0 && lu != 1) continue;
          if (vl == ul) {
            emit(vl, 2, -1);
          } else if (lv == lu + 1) {  // real forward pair: weight from neuron i=ul−loff[lu] to j=vl−loff[lv]
            emit(vl, 0, pbase + woff[lv] + (ul - loff[lu]) * w[lv] + (vl - loff[lv]));
          } else if (lu == lv + 1) {  // reverse of a real pair
            emit(vl, 1, pbase + woff[lu] + (vl - loff[lv]) * w[lu] + (ul - loff[lu]));
          } else {
            emit(vl, 3, -1);
          }
        }
      } else {
        if (lu >= 1) {  // lower layer: reverse pairs (u upper, v lower)
          for (int32_t i = 0; i < w[lu - 1]; ++i) emit(loff[lu - 1] + i, 1, pbase + woff[lu] + i * w[lu] + (ul - loff[lu]));
        }
        emit(ul, 2, -1);
        if (lu < L) {  // upper layer: forward pairs
          for (int32_t j = 0; j < w[lu + 1]; ++j) emit(loff[lu + 1] + j, 0, pbase + woff[lu + 1] + (ul - loff[lu]) * w[lu + 1] + j);
        }
        if (virt) emit(Nn, 3, -1);  // the virtual node has the largest local index: columns stay sorted
      }
    }
    if (virt) {  // the virtual node's row: every neuron, then itself
      const int32_t u = nbase + Nn;
      g.row_ptr[u] = static_cast<int32_t>(k);
      for (int32_t vl = 0; vl < Nn; ++vl) {
        g.edge_row[k] = u;
        g.edge_col[k] = nbase + vl;
        g.edge_dir[k] = 4;
        g.edge_param[k] = -1;
        g.edge_graph[k] = n;
        ++k;
      }
      g.edge_row[k] = u;
      g.edge_col[k] = u;
      g.edge_dir[k] = 2;
      g.edge_param[k] = -1;
      g.edge_graph[k] = n;
      ++k;
    }
  }
  g.row_ptr[g.N] = static_cast<int32_t>(g.M);
  // Reverse index: the position of (v,u) in row v (columns sorted ascending, so binary search).
  for (int64_t k = 0; k < g.M; ++k) {
    const int32_t u = g.edge_row[k], v = g.edge_col[k];
    const int32_t* first = g.edge_col.data() + g.row_ptr[v];
    const int32_t* last = g.edge_col.data() + g.row_ptr[v + 1];
    const int32_t* it = std::lower_bound(first, last, u);
    if (it == last || *it != u) return invalid("internal: pair without reverse");
    g.edge_rev[k] = static_cast<int32_t>(it - g.edge_col.data());
  }
  // Output maps, in flat order: forward pairs sorted by weight index; non-input nodes in node order (= bias order).
  for (int64_t k = 0; k < g.M; ++k) {
    if (g.edge_dir[k] == 0) g.out_edge.push_back(static_cast<int32_t>(k));
  }
  std::sort(g.out_edge.begin(), g.out_edge.end(),
            [&](int32_t a, int32_t b) { return g.edge_param[a] < g.edge_param[b]; });
  for (int32_t k : g.out_edge) g.out_edge_param.push_back(g.edge_param[k]);
  for (int32_t u = 0; u < g.N; ++u) {
    if (g.node_param[u] >= 0) {
      g.out_node.push_back(u);
      g.out_node_param.push_back(g.node_param[u]);
    }
  }
  *out = std::move(g);
  return Status::ok();
}

}  // namespace wsf
