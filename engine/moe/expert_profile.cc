// Expert specialization sketches and the balance history behind GetExpertProfile.
#include "engine/moe/expert_profile.h"

#include <algorithm>

#include "engine/moe/load_balance.h"

namespace moed {

namespace {
constexpr size_t kClasses = static_cast<size_t>(TokenClass::kCount);
}  // namespace

ExpertProfiler::ExpertProfiler(int num_layers, int num_experts, int sketch_capacity,
                               std::vector<TokenClass> token_class, int history_points)
    : num_layers_(num_layers),
      num_experts_(num_experts),
      token_class_(std::move(token_class)),
      history_points_(static_cast<size_t>(std::max(1, history_points))),
      sketches_(static_cast<size_t>(num_layers) * num_experts, SpaceSaving(sketch_capacity)),
      class_counts_(static_cast<size_t>(num_layers) * num_experts * kClasses, 0) {}

void ExpertProfiler::AddToken(int32_t token, absl::Span<const int32_t> experts, int top_k) {
  if (token < 0 || static_cast<size_t>(token) >= token_class_.size() || top_k < 1 ||
      experts.size() != static_cast<size_t>(num_layers_) * top_k) {
    return;
  }
  for (int32_t e : experts) {
    if (e >= num_experts_) return;
  }
  const size_t cls = static_cast<size_t>(token_class_[token]);
  bool any = false;
  for (size_t a = 0; a < experts.size(); ++a) {
    if (experts[a] < 0) continue;
    const size_t i = a / top_k * num_experts_ + experts[a];  // (layer, expert)
    sketches_[i].Add(token, 1);
    class_counts_[i * kClasses + cls] += 1;
    any = true;
  }
  if (any) ++tokens_;
}

void ExpertProfiler::AddBalancePoint(int64_t step, absl::Span<const int64_t> window_routed) {
  if (window_routed.size() != sketches_.size()) return;
  BalancePoint p;
  p.step = step;
  for (int l = 0; l < num_layers_; ++l) {
    const LoadBalance b = ComputeLoadBalance(window_routed.subspan(static_cast<size_t>(l) * num_experts_, num_experts_));
    p.gini.push_back(static_cast<float>(b.gini));
    p.entropy.push_back(static_cast<float>(b.entropy));
    p.max_over_mean.push_back(static_cast<float>(b.max_over_mean));
  }
  history_.push_back(std::move(p));
  if (history_.size() > history_points_) history_.pop_front();
}

std::shared_ptr<const ExpertProfileSnapshot> ExpertProfiler::Snapshot(int top_n, int64_t steps) const {
  auto s = std::make_shared<ExpertProfileSnapshot>();
  s->num_layers = num_layers_;
  s->num_experts = num_experts_;
  s->tokens = tokens_;
  s->steps = steps;
  s->top.reserve(sketches_.size());
  for (const SpaceSaving& sk : sketches_) s->top.push_back(sk.Top(top_n));
  s->class_counts = class_counts_;
  s->history.assign(history_.begin(), history_.end());
  return s;
}

}  // namespace moed
