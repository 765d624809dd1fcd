// WavePlanner: which experts of one MoE layer a backend pins, in which order, and which it computes together —
// the plan both the CPU and the CUDA backend run over an ExpertCache. Plain C++: no weights, no device.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/cache/expert_cache.h"

namespace moed::cache {

// One pinned expert of a wave.
struct PlannedExpert {
  int expert = -1;
  int slot = -1;
  bool hit = false;  // resident before the wave pinned it (no copy); misses were copied by this wave
};

// Experts computed together. Every expert whose id lies in [first_expert, last_expert] and has kept assignments is
// in `experts`; waves come in increasing id ranges, so running them in order keeps each token's accumulation order.
struct Wave {
  std::vector<PlannedExpert> experts;  // pin order: hits first, then misses in id order (single-wave layers)
  int first_expert = -1, last_expert = -1;
  bool whole_layer = false;  // the one wave of a layer whose experts all fit: its range covers every kept expert

  // True when assignment (expert e) belongs to this wave.
  bool Covers(int e) const { return e >= first_expert && e <= last_expert; }
};

// Plans one MoE layer. Single-threaded (the backend's engine thread). Holds pins between Next() calls: the
// current wave's experts stay pinned until the next Next() or destruction, so no load of a later wave evicts them.
// Requires cache->pinned() == 0 at construction (no pin survives a layer).
class WavePlanner {
 public:
  // used: (num_experts) kept assignments per expert of `layer` (0 = not computed). `wait_loads`: whether a miss's
  // copy is waited for when it is pinned (synchronous backends) or left in flight; then the caller calls
  // ExpertCache::WaitLoaded(slot) before computing with any slot, hits included (a prefetch may still be landing),
  // and can launch the hits before waiting on the misses.
  WavePlanner(ExpertCache* cache, int layer, absl::Span<const int64_t> used, bool wait_loads = true);
  ~WavePlanner();
  WavePlanner(const WavePlanner&) = delete;
  WavePlanner& operator=(const WavePlanner&) = delete;

  // Unpins the previous wave, then pins (loading misses) the next one. nullptr when every needed expert has been
  // handed out. An error leaves nothing of this layer pinned.
  absl::StatusOr<const Wave*> Next();
  // Every expert with kept assignments, in id order.
  const std::vector<int>& needed() const { return needed_; }

 private:
  absl::Status Pin(int e, bool hit);
  void Release();

  ExpertCache* cache_;
  int layer_;
  std::vector<int64_t> used_;
  bool wait_loads_;
  std::vector<int> needed_;
  size_t next_ = 0;  // index into needed_ of the first expert not yet handed out
  Wave wave_;
};

// Prefetch order for a layer from its predicted top-k assignments: the experts predicted at least once, most votes
// first (ties: lower id), so a small cache prefetches the likeliest ones.
std::vector<int> PrefetchOrder(absl::Span<const int32_t> predicted, int num_experts);
// Prefetches `order` of `layer` until the cache has no admissible slot left, then ends the prefetch (unpins).
// Returns the number of loads issued.
absl::StatusOr<int> PrefetchExperts(ExpertCache* cache, int layer, absl::Span<const int> order);

}  // namespace moed::cache
