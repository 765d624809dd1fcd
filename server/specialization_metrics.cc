// Token-class counters per expert from the engine's profile snapshots.
#include "server/specialization_metrics.h"

#include <algorithm>
#include <string>

namespace moed::server {

namespace {
constexpr size_t kClasses = static_cast<size_t>(TokenClass::kCount);
}  // namespace

SpecializationMetrics::SpecializationMetrics(prometheus::Registry& reg, int num_layers, int num_experts,
                                             const std::vector<bool>& layer_is_moe, bool enabled)
    : num_layers_(num_layers), num_experts_(num_experts) {
  if (!enabled) return;
  auto& family = prometheus::BuildCounter().Name("moed_expert_token_class_total")
      .Help("Computed tokens (prompt and generated) routed to each expert, by token class of the token "
            "(letters, digits, punctuation, whitespace, cjk, code_symbols, bytes, special, mixed).").Register(reg);
  const size_t cells = static_cast<size_t>(num_layers) * num_experts;
  counters_.assign(cells * kClasses, nullptr);
  seen_.assign(cells * kClasses, 0);
  for (int l = 0; l < num_layers; ++l) {
    if (!layer_is_moe.empty() && (static_cast<size_t>(l) >= layer_is_moe.size() || !layer_is_moe[l])) continue;
    for (int e = 0; e < num_experts; ++e) {
      for (size_t c = 0; c < kClasses; ++c) {
        counters_[(static_cast<size_t>(l) * num_experts + e) * kClasses + c] = &family.Add(
            {{"layer", std::to_string(l)}, {"expert", std::to_string(e)},
             {"token_class", std::string(kTokenClassNames[c])}});
      }
    }
  }
}

void SpecializationMetrics::Update(const ExpertProfileSnapshot* snapshot) {
  if (counters_.empty() || snapshot == nullptr || snapshot == last_) return;
  last_ = snapshot;
  if (snapshot->class_counts.size() != counters_.size()) return;
  for (size_t i = 0; i < counters_.size(); ++i) {
    const int64_t delta = snapshot->class_counts[i] - seen_[i];
    if (delta > 0 && counters_[i] != nullptr) counters_[i]->Increment(static_cast<double>(delta));
    seen_[i] = std::max(seen_[i], snapshot->class_counts[i]);
  }
}

}  // namespace moed::server
