// ExpertKey: one routed expert of one layer, the unit the hot-expert cache keeps resident.
#pragma once

#include <cstdint>

namespace moed::cache {

struct ExpertKey {
  int32_t layer = 0;   // model layer index (only MoE layers hold routed experts)
  int32_t expert = 0;  // expert id within the layer, [0, num_experts)

  friend bool operator==(const ExpertKey&, const ExpertKey&) = default;
  // Flat index layer * num_experts + expert, for tables over every (layer, expert).
  int64_t Flat(int num_experts) const { return static_cast<int64_t>(layer) * num_experts + expert; }
};

}  // namespace moed::cache
