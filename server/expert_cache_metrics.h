// ExpertCacheMetrics: the moed_expert_cache_* Prometheus families, fed from the engine's cache counters.
#pragma once

#include <vector>

#include "engine/cache/expert_cache_stats.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moed::server {

// Families (layer labels are the model's layer indices):
//   moed_expert_cache_hits_total{layer}, _misses_total{layer}: kept router assignments (token, top-k slot) served by
//     a resident expert / by one that had to be loaded; per layer hits + misses = kept assignments while the cache
//     is on (both stay 0 when it is off: every expert is resident).
//   moed_expert_cache_loads_total{layer,kind="demand|prefetch"}: host → device-tier copies of one expert.
//   moed_expert_cache_evictions_total{layer}, moed_expert_cache_prefetches_total{result="used|wasted"},
//   moed_expert_cache_resident_experts, moed_expert_cache_capacity_experts (= the routed experts when off),
//   moed_expert_cache_load_seconds (histogram, one observation per load), moed_expert_cache_transfer_bytes_total,
//   moed_expert_cache_stall_seconds_total (time compute waited for demand loads).
// Engine thread only.
class ExpertCacheMetrics {
 public:
  // routed_experts: MoE layers × experts, reported as resident and capacity while the cache is off.
  ExpertCacheMetrics(prometheus::Registry& registry, int num_layers, int routed_experts);

  // total / prev: the engine's counters since start now and at the previous call (counters advance by the
  // difference); last_step: the delta of the step just run (its load_durations feed the histogram).
  void Update(const cache::ExpertCacheStats& total, const cache::ExpertCacheStats& prev,
              const cache::ExpertCacheStats& last_step);

 private:
  int num_layers_ = 0;
  std::vector<prometheus::Counter*> hits_, misses_, evictions_, demand_loads_, prefetch_loads_;  // per layer
  prometheus::Counter* prefetch_used_ = nullptr;
  prometheus::Counter* prefetch_wasted_ = nullptr;
  prometheus::Gauge* resident_ = nullptr;
  prometheus::Gauge* capacity_ = nullptr;
  prometheus::Histogram* load_seconds_ = nullptr;
  prometheus::Counter* transfer_bytes_ = nullptr;
  prometheus::Counter* stall_seconds_ = nullptr;
};

}  // namespace moed::server
