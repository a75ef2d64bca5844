// Per-op GPU time accounting for development (device.h): a process-wide table of (op → total ms, count), filled
// by CudaOps when profiling is enabled and read (and cleared) by device_profile_take(). Host-only code, built in
// every variant (CPU-only builds simply never add to it).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

#include "core/device.h"

namespace wsf {
namespace {
std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::map<std::string, OpTime>& table() {
  static std::map<std::string, OpTime> t;
  return t;
}
}  // namespace

void device_profile_enable(bool on) { g_enabled.store(on); }
bool device_profile_enabled() { return g_enabled.load(std::memory_order_relaxed); }

void device_profile_add(const std::string& op, double ms) {
  std::lock_guard<std::mutex> lock(g_mutex);
  OpTime& t = table()[op];
  t.op = op;
  t.ms += ms;
  t.count += 1;
}

std::vector<OpTime> device_profile_take() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<OpTime> out;
  for (auto& [name, t] : table()) out.push_back(t);
  table().clear();
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) { return a.ms > b.ms; });
  return out;
}

namespace {
const char* const kFlowStepModes[] = {"plain", "sync", "graph"};
}  // namespace
constexpr int kFlowStepModeCount = static_cast<int>(std::size(kFlowStepModes));
const char* flow_step_mode_name(int mode) { return mode >= 0 && mode < kFlowStepModeCount ? kFlowStepModes[mode] : "?"; }
int flow_step_mode_from_name(const std::string& name) {
  for (int m = 0; m < kFlowStepModeCount; ++m) {
    if (name == kFlowStepModes[m]) return m;
  }
  return -1;
}
int flow_step_mode_env() {
  const char* env = std::getenv("WSF_CUDA_GRAPH");
  const std::string v = env != nullptr ? env : "";
  return v == "1" ? 2 : v == "sync" ? 1 : 0;
}

}  // namespace wsf
