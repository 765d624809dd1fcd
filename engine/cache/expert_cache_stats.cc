// ExpertCacheStats: reset, accumulation and totals.
#include "engine/cache/expert_cache_stats.h"

#include <cstddef>
#include <numeric>

namespace moed::cache {
namespace {

void AddVec(std::vector<int64_t>& into, const std::vector<int64_t>& from) {
  if (into.size() < from.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] += from[i];
}

int64_t Sum(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

}  // namespace

void ExpertCacheStats::Reset(int num_layers) {
  for (auto* v : {&hits, &misses, &evictions, &prefetch_issued, &prefetch_used, &prefetch_wasted, &hit_assignments,
                  &miss_assignments}) {
    v->assign(num_layers, 0);
  }
  bytes_transferred = 0;
  load_seconds = 0;
  stall_seconds = 0;
  load_durations.clear();
}

void ExpertCacheStats::Add(const ExpertCacheStats& d) {
  AddVec(hits, d.hits);
  AddVec(misses, d.misses);
  AddVec(evictions, d.evictions);
  AddVec(prefetch_issued, d.prefetch_issued);
  AddVec(prefetch_used, d.prefetch_used);
  AddVec(prefetch_wasted, d.prefetch_wasted);
  AddVec(hit_assignments, d.hit_assignments);
  AddVec(miss_assignments, d.miss_assignments);
  bytes_transferred += d.bytes_transferred;
  load_seconds += d.load_seconds;
  stall_seconds += d.stall_seconds;
  resident_experts = d.resident_experts;
  capacity_experts = d.capacity_experts;
  if (!d.resident.empty()) resident = d.resident;
}

int64_t ExpertCacheStats::TotalHits() const { return Sum(hits); }
int64_t ExpertCacheStats::TotalMisses() const { return Sum(misses); }
int64_t ExpertCacheStats::TotalEvictions() const { return Sum(evictions); }
int64_t ExpertCacheStats::TotalPrefetchIssued() const { return Sum(prefetch_issued); }
int64_t ExpertCacheStats::TotalPrefetchUsed() const { return Sum(prefetch_used); }
int64_t ExpertCacheStats::TotalPrefetchWasted() const { return Sum(prefetch_wasted); }
int64_t ExpertCacheStats::TotalHitAssignments() const { return Sum(hit_assignments); }
int64_t ExpertCacheStats::TotalMissAssignments() const { return Sum(miss_assignments); }

}  // namespace moed::cache
