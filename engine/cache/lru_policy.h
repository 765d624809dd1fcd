// LRU: evicts the resident expert whose last access (or insertion) is the oldest.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cache/cache_policy.h"

namespace moed::cache {

class LruPolicy : public CachePolicy {
 public:
  LruPolicy(int num_layers, int num_experts);
  std::string_view name() const override { return "lru"; }
  void OnAccess(const ExpertKey& key, int64_t step) override;
  void OnInsert(const ExpertKey& key, int64_t step) override;
  void OnEvict(const ExpertKey& key) override;
  size_t ChooseVictim(absl::Span<const ExpertKey> candidates, int64_t step) override;

 private:
  int num_experts_;
  uint64_t clock_ = 0;             // bumped per access/insert: a total order finer than steps
  std::vector<uint64_t> last_use_; // (num_layers * num_experts) clock of the last access or insert
};

}  // namespace moed::cache
