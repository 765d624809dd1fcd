// BalanceMetrics: the moed_expert_load_{gini,entropy,max_mean_ratio,cv,assignments} gauges per MoE layer and window.
#pragma once

#include <array>
#include <string_view>
#include <vector>

#include "absl/types/span.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace moed::server {

// The two windows of the balance gauges (label `window`): engine/runtime/engine_core.h kLoadWindowSteps steps
// with assignments (EngineStats::window_routed), and everything since start (EngineStats::routed).
inline constexpr std::array<std::string_view, 2> kBalanceWindows = {"last_1000_steps", "since_start"};

// Families, each {layer, window}, created at start for every MoE layer (all layers when `layer_is_moe` is empty);
// per-layer aggregates, so they stay within any cardinality budget:
//   moed_expert_load_gini            0 = uniform … (n-1)/n = one expert takes everything
//   moed_expert_load_entropy         routing entropy / ln(experts): 1 = uniform, 0 = one expert
//   moed_expert_load_max_mean_ratio  busiest expert / mean
//   moed_expert_load_cv              standard deviation / mean
//   moed_expert_load_assignments     router assignments the window holds (0 = no data: the four above read 0)
// Engine thread only.
class BalanceMetrics {
 public:
  BalanceMetrics(prometheus::Registry& registry, int num_layers, int num_experts,
                 const std::vector<bool>& layer_is_moe);

  // window_routed / routed: (num_layers × num_experts) layer-major, as EngineStats. Wrong sizes are ignored.
  void Update(absl::Span<const int64_t> window_routed, absl::Span<const int64_t> routed);

 private:
  struct Series {
    int layer = 0;
    size_t window = 0;  // index into kBalanceWindows
    prometheus::Gauge* gini = nullptr;
    prometheus::Gauge* entropy = nullptr;
    prometheus::Gauge* max_mean = nullptr;
    prometheus::Gauge* cv = nullptr;
    prometheus::Gauge* assignments = nullptr;
  };
  int num_layers_ = 0;
  int num_experts_ = 0;
  std::vector<Series> series_;
};

}  // namespace moed::server
