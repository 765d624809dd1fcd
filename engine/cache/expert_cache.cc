// ExpertCache: demand and prefetch loads through the transfer, timed.
#include "engine/cache/expert_cache.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "engine/common/status_macros.h"

namespace moed::cache {

absl::StatusOr<std::unique_ptr<ExpertCache>> ExpertCache::Create(const ExpertCacheConfig& config,
                                                                 ExpertTransfer* transfer) {
  if (transfer == nullptr) return absl::InvalidArgumentError("expert cache: no transfer");
  if (config.num_slots < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("expert cache: need ≥ 1 slot, got %d", config.num_slots));
  }
  if (transfer->num_slots() < config.num_slots) {
    return absl::InvalidArgumentError(absl::StrFormat("expert cache: the transfer has %d slots, the cache needs %d",
                                                      transfer->num_slots(), config.num_slots));
  }
  MOED_ASSIGN_OR_RETURN(std::unique_ptr<CachePolicy> policy,
                        CreateCachePolicy(config.policy, config.params, config.num_layers, config.num_experts));
  ResidencyMap map(config.num_layers, config.num_experts, config.num_slots, std::move(policy));
  return std::unique_ptr<ExpertCache>(new ExpertCache(std::move(map), transfer));
}

absl::Status ExpertCache::Load(const ExpertKey& key, int slot, bool stall, bool wait) {
  const auto start = std::chrono::steady_clock::now();
  MOED_RETURN_IF_ERROR(transfer_->Load(key, slot));
  if (wait) MOED_RETURN_IF_ERROR(transfer_->Wait(slot));
  ExpertCacheStats& c = map_.counters();
  c.bytes_transferred += transfer_->LoadBytes(key);
  if (transfer_->asynchronous()) {  // timed by the transfer, booked in TakeStepStats
    pending_stall_.push_back(stall);
    return absl::OkStatus();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c.load_seconds += seconds;
  c.load_durations.push_back(seconds);
  if (stall) c.stall_seconds += seconds;
  return absl::OkStatus();
}

absl::StatusOr<int> ExpertCache::Acquire(const ExpertKey& key, int64_t assignments, bool wait) {
  MOED_ASSIGN_OR_RETURN(ResidencyMap::Grant g, map_.Acquire(key, assignments));
  if (g.load) {
    absl::Status s = Load(key, g.slot, /*stall=*/true, wait);
    if (!s.ok()) {
      map_.Drop(key);
      return s;
    }
  }
  return g.slot;
}

absl::StatusOr<bool> ExpertCache::Prefetch(const ExpertKey& key) {
  if (map_.SlotOf(key).has_value() || !map_.CanAdmit(key)) return false;
  MOED_ASSIGN_OR_RETURN(ResidencyMap::Grant g, map_.Prefetch(key));
  if (absl::Status s = Load(key, g.slot, /*stall=*/false, /*wait=*/false); !s.ok()) {
    map_.Drop(key);
    return s;
  }
  prefetch_pins_.push_back(key);
  return true;
}

ExpertCacheStats ExpertCache::TakeStepStats() {
  std::vector<double> seconds;
  transfer_->TakeTimings(&seconds);
  ExpertCacheStats& c = map_.counters();
  for (double t : seconds) {
    if (pending_stall_.empty()) break;  // a broken transfer; nothing to attribute it to
    c.load_seconds += t;
    c.load_durations.push_back(t);
    // A demand load's whole copy is booked as stall: an upper bound, since the hits compute while it lands.
    if (pending_stall_.front()) c.stall_seconds += t;
    pending_stall_.pop_front();
  }
  return map_.TakeCounters();
}

void ExpertCache::EndPrefetch() {
  for (const ExpertKey& key : prefetch_pins_) map_.Unpin(key);
  prefetch_pins_.clear();
}

}  // namespace moed::cache
