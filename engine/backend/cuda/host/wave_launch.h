// The cached grouped MoE path's per-launch tables (engine/backend/cuda/cached_moe_layer.cc): for one group of a wave
// (experts whose weights sit in known slots), the expert pointer row and the group-restricted tile prefix and active
// list. Header-only, no CUDA headers; unit-tested on the CPU (tests/unit/backend/wave_launch_test.cc).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cuda/host/moe_schedule.h"

namespace moed::cuda {

// One expert of a launch group and the device address of the slot holding its weights: [gate (F,H) | up (F,H) |
// down (H,F)] bf16, back to back from the slot's first byte.
struct SlotExpert {
  int expert = -1;
  uintptr_t slot_address = 0;
};

// The bytes of one launch record, as the kernels read it (ExpertSchedule / ExpertPointers, grouped_moe.h):
//   gate_up pointers (E) | down pointers (E) | tile_prefix (E+1) int32 | active (E+1) int32, padded to 16 bytes.
inline int64_t LaunchRecordBytes(int E) {
  const int64_t b = 2 * static_cast<int64_t>(E) * sizeof(uintptr_t) + 2 * static_cast<int64_t>(E + 1) * 4;
  return (b + 15) / 16 * 16;
}

// Writes the launch record of `group` (experts in any order, each at most once) into `record` (LaunchRecordBytes(E)
// bytes). `kept` (E): the whole layer's kept rows per expert. Pointers of experts outside the group are 0; the tile
// prefix counts only the group's experts' tiles (others own none), the active list holds the group's experts with
// kept rows, ascending, -1 padded, active[E] = their count. The layer's offsets (its permutation) stay as they are:
// each expert's rows keep their place in the partial sums, so any split of a layer into groups computes the same
// rows. `ffn`, `hidden`: the expert's width and the model's hidden size (the down matrix starts 2·F·H elements in).
// Returns the number of active experts of the group.
inline int WriteLaunchRecord(const int32_t* kept, int E, const std::vector<SlotExpert>& group, int ffn, int hidden,
                             int tile_rows, void* record) {
  auto* gate_up = static_cast<uintptr_t*>(record);
  uintptr_t* down = gate_up + E;
  auto* tile_prefix = reinterpret_cast<int32_t*>(down + E);
  int32_t* active = tile_prefix + E + 1;
  std::vector<int32_t> masked(E, 0), offsets(E + 1);
  for (int e = 0; e < E; ++e) gate_up[e] = down[e] = 0;
  const uintptr_t down_at = static_cast<uintptr_t>(2) * ffn * hidden * 2;  // bytes: 2·F·H bf16
  for (const SlotExpert& x : group) {
    masked[x.expert] = kept[x.expert];
    gate_up[x.expert] = x.slot_address;
    down[x.expert] = x.slot_address + down_at;
  }
  const int n = BuildExpertSchedule(masked.data(), E, tile_rows, offsets.data(), tile_prefix, active);
  active[E] = n;
  return n;
}

}  // namespace moed::cuda
