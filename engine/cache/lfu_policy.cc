// LfuPolicy: lazily decayed per-(layer, expert) access scores.
#include "engine/cache/lfu_policy.h"

#include <cmath>

namespace moed::cache {

LfuPolicy::LfuPolicy(int num_layers, int num_experts, double half_life_steps)
    : num_experts_(num_experts),
      half_life_(half_life_steps),
      score_(static_cast<size_t>(num_layers) * num_experts, 0.0),
      score_step_(score_.size(), 0),
      last_use_(score_.size(), 0) {}

double LfuPolicy::Score(const ExpertKey& key, int64_t step) const {
  const int64_t i = key.Flat(num_experts_);
  return score_[i] * std::exp2(-static_cast<double>(step - score_step_[i]) / half_life_);
}

void LfuPolicy::OnAccess(const ExpertKey& key, int64_t step) {
  const int64_t i = key.Flat(num_experts_);
  score_[i] = Score(key, step) + 1.0;
  score_step_[i] = step;
  last_use_[i] = ++clock_;
}

void LfuPolicy::OnInsert(const ExpertKey& key, int64_t) { last_use_[key.Flat(num_experts_)] = ++clock_; }

size_t LfuPolicy::ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t step) {
  size_t best = 0;
  double best_score = Score(candidates[0], step);
  for (size_t i = 1; i < candidates.size(); ++i) {
    const double s = Score(candidates[i], step);
    const bool older = last_use_[candidates[i].Flat(num_experts_)] < last_use_[candidates[best].Flat(num_experts_)];
    if (s < best_score || (s == best_score && older)) {
      best = i;
      best_score = s;
    }
  }
  return best;
}

}  // namespace moed::cache
