// Per-layer expert balance gauges, computed by engine/moe/load_balance from the engine's routed counts.
#include "server/balance_metrics.h"

#include <string>

#include "engine/moe/load_balance.h"

namespace moed::server {

BalanceMetrics::BalanceMetrics(prometheus::Registry& reg, int num_layers, int num_experts,
                               const std::vector<bool>& layer_is_moe)
    : num_layers_(num_layers), num_experts_(num_experts) {
  using prometheus::BuildGauge;
  auto& gini = BuildGauge().Name("moed_expert_load_gini")
      .Help("Gini coefficient of per-expert router assignments in a layer (0 = uniform, (n-1)/n = one expert).")
      .Register(reg);
  auto& entropy = BuildGauge().Name("moed_expert_load_entropy")
      .Help("Entropy of the per-expert assignment distribution divided by ln(experts) (1 = uniform, 0 = one expert).")
      .Register(reg);
  auto& max_mean = BuildGauge().Name("moed_expert_load_max_mean_ratio")
      .Help("Busiest expert's assignments divided by the layer's mean per expert (1 = uniform).").Register(reg);
  auto& cv = BuildGauge().Name("moed_expert_load_cv")
      .Help("Coefficient of variation (standard deviation / mean) of per-expert assignments in a layer.")
      .Register(reg);
  auto& assignments = BuildGauge().Name("moed_expert_load_assignments")
      .Help("Router assignments the balance window holds (0 = no data yet; the balance gauges then read 0).")
      .Register(reg);
  for (int l = 0; l < num_layers; ++l) {
    if (!layer_is_moe.empty() && (static_cast<size_t>(l) >= layer_is_moe.size() || !layer_is_moe[l])) continue;
    for (size_t w = 0; w < kBalanceWindows.size(); ++w) {
      const prometheus::Labels labels = {{"layer", std::to_string(l)}, {"window", std::string(kBalanceWindows[w])}};
      series_.push_back({l, w, &gini.Add(labels), &entropy.Add(labels), &max_mean.Add(labels), &cv.Add(labels),
                         &assignments.Add(labels)});
    }
  }
}

void BalanceMetrics::Update(absl::Span<const int64_t> window_routed, absl::Span<const int64_t> routed) {
  const size_t cells = static_cast<size_t>(num_layers_) * num_experts_;
  if (window_routed.size() != cells || routed.size() != cells) return;
  for (const Series& s : series_) {
    const absl::Span<const int64_t> counts = (s.window == 0 ? window_routed : routed)
        .subspan(static_cast<size_t>(s.layer) * num_experts_, num_experts_);
    const LoadBalance b = ComputeLoadBalance(counts);
    s.gini->Set(b.gini);
    s.entropy->Set(b.entropy);
    s.max_mean->Set(b.max_over_mean);
    s.cv->Set(b.cv);
    s.assignments->Set(static_cast<double>(b.assignments));
  }
}

}  // namespace moed::server
