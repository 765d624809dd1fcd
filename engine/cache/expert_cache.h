// ExpertCache: the hot-expert cache a backend drives — residency map + policy + transfer, with load timing.
// Demand loads (misses) count as stall time; prefetch loads only as load time.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/cache/cache_policy.h"
#include "engine/cache/expert_cache_stats.h"
#include "engine/cache/expert_transfer.h"
#include "engine/cache/residency_map.h"

namespace moed::cache {

struct ExpertCacheConfig {
  int num_layers = 0;
  int num_experts = 0;
  int num_slots = 0;           // resident experts in total, ≥ 1 (callers clamp to the number of routed experts)
  std::string policy = "lru";  // lru | lfu | load-aware
  PolicyParams params;
};

// Single-threaded: the backend's engine thread. `transfer` is not owned and must outlive the cache; it must
// have at least num_slots slots.
class ExpertCache {
 public:
  static absl::StatusOr<std::unique_ptr<ExpertCache>> Create(const ExpertCacheConfig& config,
                                                             ExpertTransfer* transfer);

  int capacity() const { return map_.capacity(); }
  int resident() const { return map_.resident(); }
  int pinned() const { return map_.pinned(); }
  ResidencyMap& map() { return map_; }

  // Start of a backend step.
  void BeginStep() { map_.BeginStep(); }
  // routed (num_experts): this step's router assignments in `layer` (feeds load-aware).
  void RecordRouting(int layer, absl::Span<const int64_t> routed) { map_.RecordRouting(layer, routed); }
  bool CanAdmit(const ExpertKey& key) const { return map_.CanAdmit(key); }

  // A compute access: pins `key` and returns its slot with the weights in place (a miss is loaded and waited
  // for, counted as stall). RESOURCE_EXHAUSTED when every slot is pinned (check CanAdmit).
  // `assignments`: the kept router assignments (token, top-k slot) the access serves, for the token-weighted counters.
  // wait = false: a miss's copy is only started; the caller calls WaitLoaded(slot) before computing with it
  // (an asynchronous transfer then books load and stall time itself, see ExpertTransfer::TakeTimings).
  absl::StatusOr<int> Acquire(const ExpertKey& key, int64_t assignments = 1, bool wait = true);
  // Orders the use of `slot` after its last load (the transfer's Wait).
  absl::Status WaitLoaded(int slot) { return transfer_->Wait(slot); }
  void Unpin(const ExpertKey& key) { map_.Unpin(key); }
  // Loads `key` early when it is not resident and pins it until EndPrefetch. Returns false (nothing done) when it
  // is already resident or every slot is pinned.
  absl::StatusOr<bool> Prefetch(const ExpertKey& key);
  // Unpins everything Prefetch pinned since the last EndPrefetch.
  void EndPrefetch();

  // Counters since the last call (per-step delta), with current resident/capacity.
  // An asynchronous transfer's completed load timings are folded in first.
  ExpertCacheStats TakeStepStats();

 private:
  ExpertCache(ResidencyMap map, ExpertTransfer* transfer) : map_(std::move(map)), transfer_(transfer) {}
  // Copies `key` into `slot` and (when `wait`) waits; books bytes, and for a synchronous transfer load time and
  // (when `stall`) stall time.
  absl::Status Load(const ExpertKey& key, int slot, bool stall, bool wait = true);

  ResidencyMap map_;
  ExpertTransfer* transfer_;
  std::vector<ExpertKey> prefetch_pins_;
  std::deque<bool> pending_stall_;  // asynchronous transfers: per load issued and not yet timed, whether demand
};

}  // namespace moed::cache
