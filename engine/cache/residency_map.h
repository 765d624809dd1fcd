// ResidencyMap: (layer, expert) → slot over a bounded pool of slots, with pins, policy-driven eviction and the
// hit/miss/eviction/prefetch counters. Bookkeeping only: copying weights is the ExpertTransfer's job.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cache/cache_policy.h"
#include "engine/cache/expert_cache_stats.h"
#include "engine/cache/expert_key.h"

namespace moed::cache {

// Pinning: a pinned slot is never evicted. When every slot is pinned, a request for one more expert
// fails with RESOURCE_EXHAUSTED (nothing changes); callers check CanAdmit first and run what they hold.
// Single-threaded (the owner's thread).
class ResidencyMap {
 public:
  ResidencyMap(int num_layers, int num_experts, int num_slots, std::unique_ptr<CachePolicy> policy);

  struct Grant {
    int slot = -1;
    bool load = false;                  // the caller must copy the expert into `slot` now
    std::optional<ExpertKey> evicted;   // the expert that left `slot` to make room
  };

  int capacity() const { return static_cast<int>(slots_.size()); }
  int resident() const { return resident_; }
  int pinned() const { return pinned_; }
  int64_t step() const { return step_; }
  CachePolicy& policy() { return *policy_; }

  // Advances the step counter (first call → step 0) and tells the policy.
  void BeginStep();
  void RecordRouting(int layer, absl::Span<const int64_t> routed);

  std::optional<int> SlotOf(const ExpertKey& key) const;
  bool IsPinned(const ExpertKey& key) const;
  // True when Acquire/Prefetch of `key` would succeed: resident, a free slot, or an unpinned victim.
  bool CanAdmit(const ExpertKey& key) const;

  // A compute access: counts a hit or a miss, makes `key` resident (evicting via the policy on a miss) and pins it.
  // `assignments`: the kept router assignments this access serves (booked as hit/miss assignments).
  // INVALID_ARGUMENT for a key outside the table; RESOURCE_EXHAUSTED when every slot is pinned.
  absl::StatusOr<Grant> Acquire(const ExpertKey& key, int64_t assignments = 1);
  // A prefetch: when `key` is not resident, loads it like a miss but counts prefetch_issued (no hit or miss), marks
  // it unused and pins it. A resident key is left alone: slot = its slot, load = false, nothing counted or pinned.
  absl::StatusOr<Grant> Prefetch(const ExpertKey& key);
  // Drops one pin of a pinned key (a broken invariant otherwise).
  void Unpin(const ExpertKey& key);
  // Forgets a resident key whose load failed (its slot holds no valid weights): frees the slot, pins included,
  // counting nothing.
  void Drop(const ExpertKey& key);

  // Counters since the last TakeCounters (per layer); resident/capacity filled in.
  ExpertCacheStats& counters() { return counters_; }
  ExpertCacheStats TakeCounters();

 private:
  struct Slot {
    bool used = false;
    ExpertKey key;
    int pins = 0;
    bool prefetched_unused = false;
  };
  absl::Status CheckKey(const ExpertKey& key) const;
  // A free slot, else evicts the policy's victim among unpinned residents; -1 when every slot is pinned.
  int MakeRoom(std::optional<ExpertKey>* evicted);
  absl::StatusOr<Grant> Insert(const ExpertKey& key, bool prefetch);

  int num_layers_, num_experts_;
  std::unique_ptr<CachePolicy> policy_;
  std::vector<Slot> slots_;
  std::vector<int> slot_of_;  // (num_layers * num_experts) slot or -1
  int resident_ = 0, pinned_ = 0;
  int64_t step_ = -1;
  ExpertCacheStats counters_;
};

}  // namespace moed::cache
