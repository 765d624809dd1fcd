// The eviction-policy interface of the hot-expert cache and the factory that picks one by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/cache/expert_key.h"

namespace moed::cache {

// Told every event of the cache it serves; picks victims. Single-threaded (the cache's owner thread).
// `step` is the cache's step counter: 0, 1, 2, ... one per backend Step.
class CachePolicy {
 public:
  virtual ~CachePolicy() = default;
  virtual std::string_view name() const = 0;
  // Start of step `step` (called before any other event of that step).
  virtual void OnStep(int64_t step) { (void)step; }
  // A compute access of `key` (it is resident: a hit, or a miss just loaded).
  virtual void OnAccess(const ExpertKey& key, int64_t step) = 0;
  // `key` was copied into a slot (a demand miss or a prefetch).
  virtual void OnInsert(const ExpertKey& key, int64_t step) = 0;
  // `key` left its slot.
  virtual void OnEvict(const ExpertKey& key) = 0;
  // The router's assignments of one layer in this step: routed (num_experts), the counts StepOutput::routed carries.
  virtual void OnRouting(int layer, absl::Span<const int64_t> routed, int64_t step) {
    (void)layer, (void)routed, (void)step;
  }
  // The victim among `candidates` (resident, unpinned, non-empty); returns its index in `candidates`.
  virtual size_t ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t step) = 0;
};

struct PolicyParams {
  double lfu_half_life_steps = 32.0;  // lfu: an access's weight halves every this many steps, > 0
  int rebuild_every_steps = 16;       // load-aware: the hot set is rebuilt from routing counts every N steps, ≥ 1
};

// True for the names CreateCachePolicy accepts: "lru", "lfu", "load-aware".
bool IsCachePolicyName(std::string_view name);

// "lru", "lfu" or "load-aware". Unknown names and bad parameters → INVALID_ARGUMENT naming the valid values.
absl::StatusOr<std::unique_ptr<CachePolicy>> CreateCachePolicy(std::string_view name, const PolicyParams& params,
                                                              int num_layers, int num_experts);

}  // namespace moed::cache
