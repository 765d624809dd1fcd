// SpaceSaving: a bounded heavy-hitters sketch (Metwally, Agrawal, El Abbadi 2005) of int32 items, e.g. token ids.
#pragma once

#include <cstdint>
#include <vector>

namespace moed {

// Keeps at most `capacity` counters. Every item whose true count exceeds total() / capacity is kept; a kept
// item's true count lies in [count - error, count]. Exact while at most `capacity` distinct items were added.
// Not thread-safe.
class SpaceSaving {
 public:
  struct Entry {
    int32_t item = 0;
    int64_t count = 0;  // an upper bound of the true count
    int64_t error = 0;  // count - error is a lower bound
  };

  explicit SpaceSaving(int capacity);  // capacity ≥ 1 (smaller values are raised to 1)

  void Add(int32_t item, int64_t count = 1);  // count ≥ 1
  // The `n` largest counts, largest first (ties: smaller item first).
  std::vector<Entry> Top(int n) const;
  int64_t total() const { return total_; }
  int capacity() const { return capacity_; }

 private:
  int capacity_;
  int64_t total_ = 0;
  std::vector<Entry> entries_;  // unordered, size ≤ capacity_
};

}  // namespace moed
