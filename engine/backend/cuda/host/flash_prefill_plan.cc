// PlanFlashPrefill: runs of one sequence's rows cut into query tiles, the rest left to flash-decoding.
#include "engine/backend/cuda/host/flash_prefill_plan.h"

#include <algorithm>
#include <cstddef>

namespace moed::cuda {

void PlanFlashPrefill(const std::vector<int32_t>& row_seq, const std::vector<int32_t>& positions,
                      const std::vector<int32_t>& table_offsets, int window, std::vector<PrefillTile>* tiles,
                      std::vector<int32_t>* decode_rows) {
  tiles->clear();
  decode_rows->clear();
  const size_t n = std::min({row_seq.size(), positions.size(), table_offsets.size()});
  for (size_t a = 0; a < n;) {
    size_t b = a + 1;
    while (b < n && row_seq[b] == row_seq[a] && table_offsets[b] == table_offsets[a] &&
           positions[b] == positions[b - 1] + 1) {
      ++b;
    }
    if (b - a >= static_cast<size_t>(kPrefillMinRows)) {
      for (size_t r = a; r < b; r += kPrefillTileRows) {
        PrefillTile t;
        t.row0 = static_cast<int32_t>(r);
        t.rows = static_cast<int32_t>(std::min<size_t>(kPrefillTileRows, b - r));
        t.pos0 = positions[r];
        t.table_offset = table_offsets[r];
        tiles->push_back(t);
      }
    } else {
      for (size_t r = a; r < b; ++r) decode_rows->push_back(static_cast<int32_t>(r));
    }
    a = b;
  }
  if (tiles->empty()) {
    decode_rows->clear();
    return;
  }
  const auto keys = [window](const PrefillTile& t) {
    int begin = 0, end = 0;
    PrefillKeyRange(t.pos0, t.rows, window, &begin, &end);
    return end - begin;
  };
  std::stable_sort(tiles->begin(), tiles->end(), [&](const PrefillTile& x, const PrefillTile& y) {
    const int kx = keys(x), ky = keys(y);
    return kx != ky ? kx > ky : x.row0 < y.row0;
  });
}

}  // namespace moed::cuda
