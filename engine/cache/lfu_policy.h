// LFU with exponential decay: each access adds 1 to an expert's score, and scores halve every
// `half_life_steps` steps; the victim has the lowest decayed score (ties: least recently used).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cache/cache_policy.h"

namespace moed::cache {

class LfuPolicy : public CachePolicy {
 public:
  LfuPolicy(int num_layers, int num_experts, double half_life_steps);
  std::string_view name() const override { return "lfu"; }
  void OnAccess(const ExpertKey& key, int64_t step) override;
  void OnInsert(const ExpertKey& key, int64_t step) override;
  void OnEvict(const ExpertKey&) override {}  // scores outlive residency: a returning hot expert keeps its history
  size_t ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t step) override;

  // key's score decayed to `step` (accesses at step s weigh 2^-((step - s) / half_life)).
  double Score(const ExpertKey& key, int64_t step) const;

 private:
  int num_experts_;
  double half_life_;
  uint64_t clock_ = 0;
  std::vector<double> score_;       // (num_layers * num_experts) score as of score_step_
  std::vector<int64_t> score_step_; // step the score was last decayed to
  std::vector<uint64_t> last_use_;  // tie-break: clock of the last access or insert
};

}  // namespace moed::cache
