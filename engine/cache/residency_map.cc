// ResidencyMap: slot bookkeeping, pins, eviction through the policy, and the counters.
#include "engine/cache/residency_map.h"

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"

namespace moed::cache {

ResidencyMap::ResidencyMap(int num_layers, int num_experts, int num_slots, std::unique_ptr<CachePolicy> policy)
    : num_layers_(num_layers),
      num_experts_(num_experts),
      policy_(std::move(policy)),
      slots_(num_slots),
      slot_of_(static_cast<size_t>(num_layers) * num_experts, -1) {
  counters_.Reset(num_layers);
  counters_.capacity_experts = num_slots;
}

void ResidencyMap::BeginStep() { policy_->OnStep(++step_); }

void ResidencyMap::RecordRouting(int layer, absl::Span<const int64_t> routed) {
  policy_->OnRouting(layer, routed, step_);
}

absl::Status ResidencyMap::CheckKey(const ExpertKey& key) const {
  if (key.layer < 0 || key.layer >= num_layers_ || key.expert < 0 || key.expert >= num_experts_) {
    return absl::InvalidArgumentError(absl::StrFormat("expert cache: expert (layer %d, expert %d) outside %d × %d",
                                                      key.layer, key.expert, num_layers_, num_experts_));
  }
  return absl::OkStatus();
}

std::optional<int> ResidencyMap::SlotOf(const ExpertKey& key) const {
  if (!CheckKey(key).ok()) return std::nullopt;
  const int s = slot_of_[key.Flat(num_experts_)];
  if (s < 0) return std::nullopt;
  return s;
}

bool ResidencyMap::IsPinned(const ExpertKey& key) const {
  const std::optional<int> s = SlotOf(key);
  return s.has_value() && slots_[*s].pins > 0;
}

bool ResidencyMap::CanAdmit(const ExpertKey& key) const { return SlotOf(key).has_value() || pinned_ < capacity(); }

int ResidencyMap::MakeRoom(std::optional<ExpertKey>* evicted) {
  std::vector<ExpertKey> candidates;
  std::vector<int> candidate_slots;
  for (int s = 0; s < capacity(); ++s) {
    if (!slots_[s].used) return s;
    if (slots_[s].pins == 0) {
      candidates.push_back(slots_[s].key);
      candidate_slots.push_back(s);
    }
  }
  if (candidates.empty()) return -1;
  const size_t v = policy_->ChooseVictim(candidates, step_);
  ABSL_RAW_CHECK(v < candidates.size(), "the cache policy chose a victim outside the candidates");
  const int s = candidate_slots[v];
  Slot& slot = slots_[s];
  ++counters_.evictions[slot.key.layer];
  if (slot.prefetched_unused) ++counters_.prefetch_wasted[slot.key.layer];
  policy_->OnEvict(slot.key);
  slot_of_[slot.key.Flat(num_experts_)] = -1;
  *evicted = slot.key;
  slot = Slot{};
  --resident_;
  return s;
}

absl::StatusOr<ResidencyMap::Grant> ResidencyMap::Insert(const ExpertKey& key, bool prefetch) {
  Grant g;
  g.slot = MakeRoom(&g.evicted);
  if (g.slot < 0) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "expert cache: all %d slots are pinned, no room for (layer %d, expert %d)", capacity(), key.layer,
        key.expert));
  }
  g.load = true;
  slots_[g.slot] = Slot{true, key, 1, prefetch};
  slot_of_[key.Flat(num_experts_)] = g.slot;
  ++resident_;
  ++pinned_;
  policy_->OnInsert(key, step_);
  return g;
}

absl::StatusOr<ResidencyMap::Grant> ResidencyMap::Acquire(const ExpertKey& key, int64_t assignments) {
  if (absl::Status s = CheckKey(key); !s.ok()) return s;
  const int s = slot_of_[key.Flat(num_experts_)];
  Grant g;
  if (s >= 0) {
    Slot& slot = slots_[s];
    if (slot.pins++ == 0) ++pinned_;
    if (slot.prefetched_unused) ++counters_.prefetch_used[key.layer];
    slot.prefetched_unused = false;
    ++counters_.hits[key.layer];
    counters_.hit_assignments[key.layer] += assignments;
    g.slot = s;
  } else {
    absl::StatusOr<Grant> inserted = Insert(key, /*prefetch=*/false);
    if (!inserted.ok()) return inserted.status();
    g = *inserted;
    ++counters_.misses[key.layer];
    counters_.miss_assignments[key.layer] += assignments;
  }
  policy_->OnAccess(key, step_);
  return g;
}

absl::StatusOr<ResidencyMap::Grant> ResidencyMap::Prefetch(const ExpertKey& key) {
  if (absl::Status s = CheckKey(key); !s.ok()) return s;
  const int s = slot_of_[key.Flat(num_experts_)];
  if (s >= 0) return Grant{s, false, std::nullopt};
  absl::StatusOr<Grant> inserted = Insert(key, /*prefetch=*/true);
  if (inserted.ok()) ++counters_.prefetch_issued[key.layer];
  return inserted;
}

void ResidencyMap::Unpin(const ExpertKey& key) {
  const std::optional<int> s = SlotOf(key);
  ABSL_RAW_CHECK(s.has_value() && slots_[*s].pins > 0, "expert cache: Unpin of an expert that is not pinned");
  if (--slots_[*s].pins == 0) --pinned_;
}

void ResidencyMap::Drop(const ExpertKey& key) {
  const std::optional<int> s = SlotOf(key);
  if (!s.has_value()) return;
  if (slots_[*s].pins > 0) --pinned_;
  policy_->OnEvict(key);
  slot_of_[key.Flat(num_experts_)] = -1;
  slots_[*s] = Slot{};
  --resident_;
}

ExpertCacheStats ResidencyMap::TakeCounters() {
  counters_.resident_experts = resident_;
  counters_.capacity_experts = capacity();
  counters_.resident.resize(slot_of_.size());
  for (size_t i = 0; i < slot_of_.size(); ++i) counters_.resident[i] = slot_of_[i] >= 0 ? 1 : 0;
  ExpertCacheStats out = counters_;
  counters_.Reset(num_layers_);
  return out;
}

}  // namespace moed::cache
