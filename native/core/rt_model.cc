// Parameter layout and initialisation for the relational transformer (see rt_model.h).
#include "core/rt_model.h"

#include <cmath>

namespace wsf {

Status RtConfig::validate() const {
  if (D < 1 || D > 4096) return invalid("D must be in [1, 4096], got " + std::to_string(D));
  if (layers < 0 || layers > 64) return invalid("layers must be in [0, 64], got " + std::to_string(layers));
  if (heads < 1 || D % heads != 0) return invalid("heads must divide D (D=" + std::to_string(D) + ", heads=" + std::to_string(heads) + ")");
  if (slots.input_slots < 1 || slots.output_slots < 1 || slots.hidden_slots < 0 || slots.hidden_width < 0) return invalid("slot counts must be positive");
  if (in_features != 1 && in_features != 2) return invalid("in_features must be 1 or 2");
  if (aux_features < 0 || aux_features > 64) return invalid("aux_features must be in [0, 64], got " + std::to_string(aux_features));
  if (chunk_rows < 0 || chunk_rows > (int64_t(1) << 31)) return invalid("chunk_rows must be in [0, 2^31] (0: no chunks), got " + std::to_string(chunk_rows));
  if (time_rule == TimeRule::Reference && mode != GraphMode::Dense) {
    return invalid("the reference time rule is defined for dense graphs only (sparse graphs give real pairs no time otherwise)");
  }
  return Status::ok();
}

namespace {

struct Builder {
  RtLayout& L;
  void tensor(const std::string& name, std::vector<int64_t> shape, Init init, int fan_in, int fan_out, int64_t* off) {
    ParamTensor t;
    t.name = name;
    t.shape = std::move(shape);
    t.size = 1;
    for (int64_t s : t.shape) t.size *= s;
    t.offset = L.total;
    t.init = init;
    t.fan_in = fan_in;
    t.fan_out = fan_out;
    L.total += t.size;
    if (off != nullptr) *off = t.offset;
    L.tensors.push_back(std::move(t));
  }
  LinOff linear(const std::string& name, int in, int out, bool bias, Init winit, Init binit) {
    LinOff o;
    o.in = in;
    o.out = out;
    tensor(name + ".weight", {out, in}, winit, in, out, &o.w);
    if (bias) tensor(name + ".bias", {out}, binit, in, out, &o.b);
    return o;
  }
  LnOff layernorm(const std::string& name, int dim) {
    LnOff o;
    o.dim = dim;
    tensor(name + ".weight", {dim}, Init::Ones, dim, dim, &o.g);
    tensor(name + ".bias", {dim}, Init::Zeros, dim, dim, &o.b);
    return o;
  }
};

}  // namespace

RtLayout make_layout(const RtConfig& cfg) {
  RtLayout L;
  Builder b{L};
  const int D = cfg.D, H = cfg.H(), din = cfg.din();
  const Init TD = Init::TorchDefault, XV = Init::Xavier, Z = Init::Zeros;
  // Input projections (graph constructor): 3-layer SiLU MLPs, then a D→D projection, for pairs and nodes.
  L.edge_in[0] = b.linear("edge_in.0", din, D, true, TD, TD);
  L.edge_in[1] = b.linear("edge_in.2", D, D, true, TD, TD);
  L.edge_in[2] = b.linear("edge_in.4", D, D, true, TD, TD);
  L.edge_in_proj = b.linear("edge_in_proj", D, D, true, TD, TD);
  L.node_in[0] = b.linear("node_in.0", din, D, true, TD, TD);
  L.node_in[1] = b.linear("node_in.2", D, D, true, TD, TD);
  L.node_in[2] = b.linear("node_in.4", D, D, true, TD, TD);
  L.node_in_proj = b.linear("node_in_proj", D, D, true, TD, TD);
  L.pos_rows = cfg.slots.rows() + (cfg.mode == GraphMode::Virtual ? 1 : 0);  // the virtual node's own row last
  b.tensor("pos_embed", {L.pos_rows, D}, Init::Normal, D, D, &L.pos);
  if (cfg.dir_embed) {
    // dense and hybrid graphs have non-edges (dir 3); virtual graphs neuron→virtual (3) and virtual→neuron (4) pairs
    L.dir_rows = cfg.mode == GraphMode::Sparse ? 3 : cfg.mode == GraphMode::Virtual ? 5 : 4;
    b.tensor("dir_embed", {L.dir_rows, D}, Init::Normal, D, D, &L.dir);
  }
  for (int i = 0; i < cfg.layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    LayerOff lo;
    lo.qkv_node = b.linear(p + "qkv_node", H, 3 * D, false, XV, Z);
    lo.qkv_edge = b.linear(p + "qkv_edge", H, 4 * D, false, XV, Z);
    lo.attn_out = b.linear(p + "attn_out", D, H, true, XV, Z);
    lo.lin0 = b.linear(p + "lin0", H, H, true, XV, Z);
    lo.node_ln0 = b.layernorm(p + "node_ln0", H);
    lo.node_ln1 = b.layernorm(p + "node_ln1", H);
    lo.node_mlp0 = b.linear(p + "node_mlp.0", H, D, false, XV, Z);
    lo.node_mlp2 = b.linear(p + "node_mlp.2", D, H, true, XV, Z);
    lo.lin0_e = b.linear(p + "edge.lin0_e", 2 * H, D, true, XV, Z);
    lo.lin0_s = b.linear(p + "edge.lin0_s", H, D, true, XV, Z);
    lo.lin0_t = b.linear(p + "edge.lin0_t", H, D, true, XV, Z);
    lo.lin1 = b.linear(p + "edge.lin1", D, H, true, XV, Z);
    lo.edge_mlp0 = b.linear(p + "edge.mlp.0", H, D, false, XV, Z);
    lo.edge_mlp2 = b.linear(p + "edge.mlp.2", D, H, true, XV, Z);
    lo.eln0 = b.layernorm(p + "edge.ln0", H);
    lo.eln1 = b.layernorm(p + "edge.ln1", H);
    L.layers.push_back(lo);
  }
  L.edge_head[0] = b.linear("edge_head.0", H, D, true, TD, TD);
  L.edge_head[1] = b.linear("edge_head.2", D, D, true, TD, TD);
  L.edge_head[2] = b.linear("edge_head.4", D, 1, true, TD, TD);
  L.node_head[0] = b.linear("node_head.0", H, D, true, TD, TD);
  L.node_head[1] = b.linear("node_head.2", D, D, true, TD, TD);
  L.node_head[2] = b.linear("node_head.4", D, 1, true, TD, TD);
  return L;
}

namespace {
// splitmix64 stream with Box–Muller normals: deterministic and platform-independent.
struct InitRng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u = 0;
    while (u <= 1e-300) u = uniform();
    const double v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};
}  // namespace

void init_params(float* params, const RtLayout& layout, uint64_t seed) {
  InitRng rng{seed * 0x2545f4914f6cdd1dull + 12345};
  for (const ParamTensor& t : layout.tensors) {
    float* p = params + t.offset;
    switch (t.init) {
      case Init::Zeros:
        for (int64_t i = 0; i < t.size; ++i) p[i] = 0.f;
        break;
      case Init::Ones:
        for (int64_t i = 0; i < t.size; ++i) p[i] = 1.f;
        break;
      case Init::Normal:
        for (int64_t i = 0; i < t.size; ++i) p[i] = static_cast<float>(rng.normal());
        break;
      case Init::Xavier: {
        const double a = std::sqrt(6.0 / (t.fan_in + t.fan_out));
        for (int64_t i = 0; i < t.size; ++i) p[i] = static_cast<float>((2 * rng.uniform() - 1) * a);
        break;
      }
      case Init::TorchDefault: {
        const double a = 1.0 / std::sqrt(static_cast<double>(t.fan_in));
        for (int64_t i = 0; i < t.size; ++i) p[i] = static_cast<float>((2 * rng.uniform() - 1) * a);
        break;
      }
    }
  }
}

}  // namespace wsf
