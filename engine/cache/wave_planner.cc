// WavePlanner: hits pinned before misses when a layer fits, id-ordered waves when it does not; prefetch order.
#include "engine/cache/wave_planner.h"

#include <algorithm>
#include <numeric>

#include "absl/base/internal/raw_logging.h"
#include "engine/common/status_macros.h"

namespace moed::cache {

WavePlanner::WavePlanner(ExpertCache* cache, int layer, absl::Span<const int64_t> used, bool wait_loads)
    : cache_(cache), layer_(layer), used_(used.begin(), used.end()), wait_loads_(wait_loads) {
  ABSL_RAW_CHECK(cache_->pinned() == 0, "no expert stays pinned between layers");
  for (int e = 0; e < static_cast<int>(used_.size()); ++e) {
    if (used_[e] > 0) needed_.push_back(e);
  }
}

WavePlanner::~WavePlanner() { Release(); }

void WavePlanner::Release() {
  for (const PlannedExpert& p : wave_.experts) cache_->Unpin({layer_, p.expert});
  wave_ = Wave{};
}

absl::Status WavePlanner::Pin(int e, bool hit) {
  MOED_ASSIGN_OR_RETURN(const int slot, cache_->Acquire({layer_, e}, used_[e], wait_loads_));
  wave_.experts.push_back({e, slot, hit});
  return absl::OkStatus();
}

absl::StatusOr<const Wave*> WavePlanner::Next() {
  Release();
  if (next_ >= needed_.size()) return nullptr;
  absl::Status status;
  if (next_ == 0 && static_cast<int>(needed_.size()) <= cache_->capacity()) {
    // Everything fits: pin the hits first so this layer's misses never evict them, then load the misses.
    std::vector<int> misses;
    for (int e : needed_) {
      if (!cache_->map().SlotOf({layer_, e}).has_value()) {
        misses.push_back(e);
      } else if (status.ok()) {
        status = Pin(e, /*hit=*/true);
      }
    }
    for (int e : misses) {
      if (!status.ok()) break;
      status = Pin(e, /*hit=*/false);
    }
    wave_.whole_layer = true;
    next_ = needed_.size();
    wave_.first_expert = needed_.front();
    wave_.last_expert = needed_.back();
  } else {
    // More experts than slots: a wave of consecutive needed ids, as many as the slots admit.
    size_t j = next_;
    for (; j < needed_.size() && status.ok() && cache_->CanAdmit({layer_, needed_[j]}); ++j) {
      const bool hit = cache_->map().SlotOf({layer_, needed_[j]}).has_value();
      status = Pin(needed_[j], hit);
    }
    if (status.ok()) {
      ABSL_RAW_CHECK(j > next_, "an empty wave: a slot must be free once the previous wave is unpinned");
      wave_.first_expert = needed_[next_];
      wave_.last_expert = needed_[j - 1];
    }
    next_ = j;
  }
  if (!status.ok()) {
    Release();
    next_ = needed_.size();
    return status;
  }
  return &wave_;
}

std::vector<int> PrefetchOrder(absl::Span<const int32_t> predicted, int num_experts) {
  std::vector<int64_t> votes(num_experts, 0);
  for (int32_t e : predicted) ++votes[e];
  std::vector<int> order(num_experts);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return votes[a] > votes[b]; });
  order.erase(std::find_if(order.begin(), order.end(), [&](int e) { return votes[e] == 0; }), order.end());
  return order;
}

absl::StatusOr<int> PrefetchExperts(ExpertCache* cache, int layer, absl::Span<const int> order) {
  int issued = 0;
  absl::Status status;
  for (int e : order) {
    absl::StatusOr<bool> loaded = cache->Prefetch({layer, e});
    if (!loaded.ok()) {
      status = loaded.status();
      break;
    }
    issued += *loaded ? 1 : 0;
  }
  cache->EndPrefetch();
  if (!status.ok()) return status;
  return issued;
}

}  // namespace moed::cache
