// CreateCachePolicy: policy name → policy object, with parameter checks.
#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/cache/cache_policy.h"
#include "engine/cache/lfu_policy.h"
#include "engine/cache/load_aware_policy.h"
#include "engine/cache/lru_policy.h"

namespace moed::cache {

bool IsCachePolicyName(std::string_view name) { return name == "lru" || name == "lfu" || name == "load-aware"; }

absl::StatusOr<std::unique_ptr<CachePolicy>> CreateCachePolicy(std::string_view name, const PolicyParams& params,
                                                              int num_layers, int num_experts) {
  if (num_layers < 1 || num_experts < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "expert cache policy: need ≥ 1 layer and ≥ 1 expert, got %d and %d", num_layers, num_experts));
  }
  if (name == "lru") return std::make_unique<LruPolicy>(num_layers, num_experts);
  if (name == "lfu") {
    if (!(params.lfu_half_life_steps > 0) || !std::isfinite(params.lfu_half_life_steps)) {
      return absl::InvalidArgumentError(absl::StrFormat("expert cache policy lfu: half-life must be > 0 steps, got %g",
                                                        params.lfu_half_life_steps));
    }
    return std::make_unique<LfuPolicy>(num_layers, num_experts, params.lfu_half_life_steps);
  }
  if (name == "load-aware") {
    if (params.rebuild_every_steps < 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "expert cache policy load-aware: rebuild interval must be ≥ 1 step, got %d", params.rebuild_every_steps));
    }
    return std::make_unique<LoadAwarePolicy>(num_layers, num_experts, params.rebuild_every_steps);
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown expert cache policy '%s' (valid: lru, lfu, load-aware)", std::string(name)));
}

}  // namespace moed::cache
