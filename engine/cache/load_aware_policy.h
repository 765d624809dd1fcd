// Load-aware: the hot set comes from the routing statistics. Routed-token counts per (layer, expert)
// accumulate every step; every `rebuild_every_steps` steps they become the load snapshot the policy ranks by.
// The victim is the coldest resident expert by that snapshot (ties: least recently used).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cache/cache_policy.h"

namespace moed::cache {

class LoadAwarePolicy : public CachePolicy {
 public:
  LoadAwarePolicy(int num_layers, int num_experts, int rebuild_every_steps);
  std::string_view name() const override { return "load-aware"; }
  void OnStep(int64_t step) override;
  void OnAccess(const ExpertKey& key, int64_t step) override;
  void OnInsert(const ExpertKey& key, int64_t step) override;
  void OnEvict(const ExpertKey&) override {}
  void OnRouting(int layer, absl::Span<const int64_t> routed, int64_t step) override;
  size_t ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t step) override;

  // The snapshot load of `key` (routed tokens counted up to the last rebuild).
  int64_t Load(const ExpertKey& key) const { return snapshot_[key.Flat(num_experts_)]; }
  // The `n` hottest experts of the snapshot, hottest first (ties: lower layer, then lower expert id).
  std::vector<ExpertKey> HotSet(size_t n) const;
  int64_t rebuilds() const { return rebuilds_; }

 private:
  int num_layers_, num_experts_, rebuild_every_;
  int64_t rebuilds_ = 0;
  uint64_t clock_ = 0;
  std::vector<int64_t> counts_;    // (num_layers * num_experts) routed tokens so far
  std::vector<int64_t> snapshot_;  // counts_ as of the last rebuild
  std::vector<uint64_t> last_use_;
};

}  // namespace moed::cache
