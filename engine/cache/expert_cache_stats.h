// ExpertCacheStats: the hot-expert cache's counters — a per-step delta (StepOutput::expert_cache) or a running total.
#pragma once

#include <cstdint>
#include <vector>

namespace moed::cache {

// An access is one (step, layer, expert) whose weights a step's compute reads: an expert that got at least one
// kept assignment in that layer and step. Every access is a hit or a miss, so per layer
// hits + misses = the number of experts with routed > 0 in that step (capacity never drops all of an expert).
struct ExpertCacheStats {
  // (num_layers) each; empty when the cache is off. Evictions and prefetch counts are booked to the layer of
  // the expert concerned.
  std::vector<int64_t> hits;
  std::vector<int64_t> misses;
  std::vector<int64_t> evictions;
  std::vector<int64_t> prefetch_issued;  // loads started by prefetch
  std::vector<int64_t> prefetch_used;    // prefetched experts accessed before leaving their slot
  std::vector<int64_t> prefetch_wasted;  // prefetched experts evicted before any access
  // Token-weighted view of the same accesses: the kept router assignments (token, top-k slot) an access served,
  // booked as hits when the expert was resident, misses when it had to be loaded. Per layer and step,
  // hit_assignments + miss_assignments = the layer's kept assignments (routed − dropped).
  std::vector<int64_t> hit_assignments;
  std::vector<int64_t> miss_assignments;
  int64_t bytes_transferred = 0;         // host tier → slot bytes, demand and prefetch loads
  double load_seconds = 0;               // wall time of every load
  double stall_seconds = 0;              // wall time compute waited for loads (demand misses)
  std::vector<double> load_durations;    // seconds, one per load of this step (a delta only; Add does not append)
  int64_t resident_experts = 0;          // at the end of the step
  int64_t capacity_experts = 0;          // slots; 0 = cache off (every expert resident)
  std::vector<uint8_t> resident;         // (num_layers * num_experts) 1 = in a slot, at the end of the step;
                                         // empty when the cache is off

  bool enabled() const { return capacity_experts > 0; }
  // Zeroes every counter and sizes the per-layer vectors (keeps resident/capacity).
  void Reset(int num_layers);
  // Adds `delta`'s counters (sizing the vectors on first use) and takes its resident/capacity.
  void Add(const ExpertCacheStats& delta);

  int64_t TotalHits() const;
  int64_t TotalMisses() const;
  int64_t TotalEvictions() const;
  int64_t TotalPrefetchIssued() const;
  int64_t TotalPrefetchUsed() const;
  int64_t TotalPrefetchWasted() const;
  int64_t TotalHitAssignments() const;
  int64_t TotalMissAssignments() const;
};

}  // namespace moed::cache
