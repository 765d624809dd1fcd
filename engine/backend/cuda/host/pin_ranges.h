// Which host address ranges to pin (cudaHostRegister) for a set of expert weight parts: each part widened to whole
// pages, overlapping ranges merged, so a page shared by two tensors of one mapped shard is registered once.
// Header-only, no CUDA headers; unit-tested on the CPU (tests/unit/backend/pin_ranges_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace moed::cuda {

struct AddressRange {
  uintptr_t begin = 0, end = 0;  // [begin, end)
};

// Parts (empty ones ignored) widened outwards to multiples of `page` (a power of two), sorted, and merged where they
// overlap (ranges that only touch stay apart: they may be different mappings).
inline std::vector<AddressRange> PageRanges(std::vector<AddressRange> parts, uintptr_t page) {
  std::vector<AddressRange> out;
  parts.erase(std::remove_if(parts.begin(), parts.end(), [](const AddressRange& r) { return r.end <= r.begin; }),
              parts.end());
  for (AddressRange& r : parts) {
    r.begin &= ~(page - 1);
    r.end = (r.end + page - 1) & ~(page - 1);
  }
  std::sort(parts.begin(), parts.end(), [](const AddressRange& a, const AddressRange& b) { return a.begin < b.begin; });
  for (const AddressRange& r : parts) {
    if (!out.empty() && r.begin < out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace moed::cuda
