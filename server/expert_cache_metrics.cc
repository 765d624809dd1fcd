// ExpertCacheMetrics: families built once with every label set; counters advance by the difference of totals.
#include "server/expert_cache_metrics.h"

#include <string>

namespace moed::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// From a 10 µs memcpy of a small expert to a second-long PCIe copy of a large one.
const prometheus::Histogram::BucketBoundaries kLoadBuckets = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};

int64_t At(const std::vector<int64_t>& v, size_t i) { return i < v.size() ? v[i] : 0; }

void Advance(prometheus::Counter* c, double now, double before) {
  if (now > before) c->Increment(now - before);
}

}  // namespace

ExpertCacheMetrics::ExpertCacheMetrics(prometheus::Registry& reg, int num_layers, int routed_experts)
    : num_layers_(num_layers) {
  auto& hits = BuildCounter().Name("moed_expert_cache_hits_total")
      .Help("Kept router assignments served by an expert already resident in the device tier.").Register(reg);
  auto& misses = BuildCounter().Name("moed_expert_cache_misses_total")
      .Help("Kept router assignments whose expert had to be loaded into the device tier first.").Register(reg);
  auto& evictions = BuildCounter().Name("moed_expert_cache_evictions_total")
      .Help("Experts evicted from the device tier, by the evicted expert's layer.").Register(reg);
  auto& loads = BuildCounter().Name("moed_expert_cache_loads_total")
      .Help("Host to device-tier copies of one expert: demand (a miss) or prefetch.").Register(reg);
  for (int l = 0; l < num_layers_; ++l) {
    const std::string layer = std::to_string(l);
    hits_.push_back(&hits.Add({{"layer", layer}}));
    misses_.push_back(&misses.Add({{"layer", layer}}));
    evictions_.push_back(&evictions.Add({{"layer", layer}}));
    demand_loads_.push_back(&loads.Add({{"layer", layer}, {"kind", "demand"}}));
    prefetch_loads_.push_back(&loads.Add({{"layer", layer}, {"kind", "prefetch"}}));
  }
  auto& prefetches = BuildCounter().Name("moed_expert_cache_prefetches_total")
      .Help("Prefetched experts by outcome: used (accessed before leaving the device tier) or wasted.").Register(reg);
  prefetch_used_ = &prefetches.Add({{"result", "used"}});
  prefetch_wasted_ = &prefetches.Add({{"result", "wasted"}});
  resident_ = &BuildGauge().Name("moed_expert_cache_resident_experts")
      .Help("Routed experts resident in the device tier.").Register(reg).Add({});
  capacity_ = &BuildGauge().Name("moed_expert_cache_capacity_experts")
      .Help("Device-tier expert slots (all routed experts when the cache is off).").Register(reg).Add({});
  load_seconds_ = &BuildHistogram().Name("moed_expert_cache_load_seconds")
      .Help("Wall time of one expert load into the device tier.").Register(reg).Add({}, kLoadBuckets);
  transfer_bytes_ = &BuildCounter().Name("moed_expert_cache_transfer_bytes_total")
      .Help("Bytes copied from the host tier into the device tier.").Register(reg).Add({});
  stall_seconds_ = &BuildCounter().Name("moed_expert_cache_stall_seconds_total")
      .Help("Time compute waited for demand loads.").Register(reg).Add({});
  resident_->Set(routed_experts);
  capacity_->Set(routed_experts);
}

void ExpertCacheMetrics::Update(const cache::ExpertCacheStats& total, const cache::ExpertCacheStats& prev,
                                const cache::ExpertCacheStats& last_step) {
  if (!total.enabled()) return;  // cache off: the start-up values stand
  for (int l = 0; l < num_layers_; ++l) {
    const size_t i = static_cast<size_t>(l);
    Advance(hits_[l], At(total.hit_assignments, i), At(prev.hit_assignments, i));
    Advance(misses_[l], At(total.miss_assignments, i), At(prev.miss_assignments, i));
    Advance(evictions_[l], At(total.evictions, i), At(prev.evictions, i));
    Advance(demand_loads_[l], At(total.misses, i), At(prev.misses, i));
    Advance(prefetch_loads_[l], At(total.prefetch_issued, i), At(prev.prefetch_issued, i));
  }
  Advance(prefetch_used_, total.TotalPrefetchUsed(), prev.TotalPrefetchUsed());
  Advance(prefetch_wasted_, total.TotalPrefetchWasted(), prev.TotalPrefetchWasted());
  Advance(transfer_bytes_, total.bytes_transferred, prev.bytes_transferred);
  Advance(stall_seconds_, total.stall_seconds, prev.stall_seconds);
  for (double seconds : last_step.load_durations) load_seconds_->Observe(seconds);
  resident_->Set(static_cast<double>(total.resident_experts));
  capacity_->Set(static_cast<double>(total.capacity_experts));
}

}  // namespace moed::server
