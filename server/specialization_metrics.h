// SpecializationMetrics: moed_expert_token_class_total{layer,expert,token_class}, the token classes each expert
// receives (from the engine's ExpertProfileSnapshot), while layers × experts × classes fits the series budget.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/moe/expert_profile.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace moed::server {

// Engine thread only.
class SpecializationMetrics {
 public:
  // Creates the family (every MoE layer × expert × class label set) only when `enabled`.
  SpecializationMetrics(prometheus::Registry& registry, int num_layers, int num_experts,
                        const std::vector<bool>& layer_is_moe, bool enabled);

  // Advances the counters to `snapshot`'s cumulative class counts; null or already-seen snapshots change nothing.
  void Update(const ExpertProfileSnapshot* snapshot);

 private:
  int num_layers_ = 0;
  int num_experts_ = 0;
  std::vector<prometheus::Counter*> counters_;  // (layers × experts × classes) layer-major; null for dense layers
  std::vector<int64_t> seen_;                   // class counts already added
  const ExpertProfileSnapshot* last_ = nullptr;
};

}  // namespace moed::server
