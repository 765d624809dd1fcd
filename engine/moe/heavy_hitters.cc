// SpaceSaving counters over a small unordered array: linear scans suit the few dozen counters per expert.
#include "engine/moe/heavy_hitters.h"

#include <algorithm>

namespace moed {

SpaceSaving::SpaceSaving(int capacity) : capacity_(std::max(1, capacity)) { entries_.reserve(capacity_); }

void SpaceSaving::Add(int32_t item, int64_t count) {
  if (count <= 0) return;
  total_ += count;
  for (Entry& e : entries_) {
    if (e.item == item) {
      e.count += count;
      return;
    }
  }
  if (static_cast<int>(entries_.size()) < capacity_) {
    entries_.push_back({item, count, 0});
    return;
  }
  // Full: the item takes over the smallest counter, inheriting its count as possible over-estimate.
  Entry& min = *std::min_element(entries_.begin(), entries_.end(),
                                 [](const Entry& a, const Entry& b) { return a.count < b.count; });
  min = {item, min.count + count, min.count};
}

std::vector<SpaceSaving::Entry> SpaceSaving::Top(int n) const {
  std::vector<Entry> out = entries_;
  std::sort(out.begin(), out.end(),
            [](const Entry& a, const Entry& b) { return a.count != b.count ? a.count > b.count : a.item < b.item; });
  if (n >= 0 && static_cast<size_t>(n) < out.size()) out.resize(n);
  return out;
}

}  // namespace moed
