// LoadAwarePolicy: cumulative routing counts, snapshotted every N steps; victim = coldest by snapshot.
#include "engine/cache/load_aware_policy.h"

#include <algorithm>
#include <numeric>

namespace moed::cache {

LoadAwarePolicy::LoadAwarePolicy(int num_layers, int num_experts, int rebuild_every_steps)
    : num_layers_(num_layers),
      num_experts_(num_experts),
      rebuild_every_(rebuild_every_steps),
      counts_(static_cast<size_t>(num_layers) * num_experts, 0),
      snapshot_(counts_.size(), 0),
      last_use_(counts_.size(), 0) {}

void LoadAwarePolicy::OnStep(int64_t step) {
  if (step == 0 || step % rebuild_every_ != 0) return;
  snapshot_ = counts_;
  ++rebuilds_;
}

void LoadAwarePolicy::OnAccess(const ExpertKey& key, int64_t) { last_use_[key.Flat(num_experts_)] = ++clock_; }

void LoadAwarePolicy::OnInsert(const ExpertKey& key, int64_t) { last_use_[key.Flat(num_experts_)] = ++clock_; }

void LoadAwarePolicy::OnRouting(int layer, absl::Span<const int64_t> routed, int64_t) {
  if (layer < 0 || layer >= num_layers_) return;
  const size_t n = std::min<size_t>(routed.size(), num_experts_);
  for (size_t e = 0; e < n; ++e) counts_[static_cast<size_t>(layer) * num_experts_ + e] += routed[e];
}

size_t LoadAwarePolicy::ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t) {
  size_t best = 0;
  for (size_t i = 1; i < candidates.size(); ++i) {
    const int64_t a = candidates[i].Flat(num_experts_), b = candidates[best].Flat(num_experts_);
    if (snapshot_[a] < snapshot_[b] || (snapshot_[a] == snapshot_[b] && last_use_[a] < last_use_[b])) best = i;
  }
  return best;
}

std::vector<ExpertKey> LoadAwarePolicy::HotSet(size_t n) const {
  std::vector<int64_t> order(snapshot_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return snapshot_[a] > snapshot_[b]; });
  order.resize(std::min(n, order.size()));
  std::vector<ExpertKey> hot;
  for (int64_t i : order) {
    hot.push_back({static_cast<int32_t>(i / num_experts_), static_cast<int32_t>(i % num_experts_)});
  }
  return hot;
}

}  // namespace moed::cache
