// LruPolicy: a per-(layer, expert) use clock; the victim is the candidate with the smallest clock.
#include "engine/cache/lru_policy.h"

namespace moed::cache {

LruPolicy::LruPolicy(int num_layers, int num_experts)
    : num_experts_(num_experts), last_use_(static_cast<size_t>(num_layers) * num_experts, 0) {}

void LruPolicy::OnAccess(const ExpertKey& key, int64_t) { last_use_[key.Flat(num_experts_)] = ++clock_; }

void LruPolicy::OnInsert(const ExpertKey& key, int64_t) { last_use_[key.Flat(num_experts_)] = ++clock_; }

void LruPolicy::OnEvict(const ExpertKey& key) { last_use_[key.Flat(num_experts_)] = 0; }

size_t LruPolicy::ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t) {
  size_t best = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    if (last_use_[candidates[i].Flat(num_experts_)] < last_use_[candidates[best].Flat(num_experts_)]) best = i;
  }
  return best;
}

}  // namespace moed::cache
