// The cached grouped MoE path's host tables: launch records (pointer row, group-restricted tile prefix and active
// list over the layer's unchanged offsets) and the page ranges pinned for the host tier.
#include <cstring>
#include <vector>

#include "engine/backend/cuda/host/pin_ranges.h"
#include "engine/backend/cuda/host/wave_launch.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

struct Record {
  std::vector<uintptr_t> gate_up, down;
  std::vector<int32_t> tile_prefix, active;
};

Record Read(const std::vector<char>& bytes, int E) {
  Record r;
  const auto* p = reinterpret_cast<const uintptr_t*>(bytes.data());
  r.gate_up.assign(p, p + E);
  r.down.assign(p + E, p + 2 * E);
  const auto* i = reinterpret_cast<const int32_t*>(p + 2 * E);
  r.tile_prefix.assign(i, i + E + 1);
  r.active.assign(i + E + 1, i + 2 * E + 2);
  return r;
}

TEST(WaveLaunchTest, RecordRestrictsTheScheduleToTheGroup) {
  constexpr int E = 6, F = 8, H = 16, kTile = 4;
  const int32_t kept[E] = {5, 0, 3, 9, 1, 0};
  std::vector<char> bytes(LaunchRecordBytes(E), 0x7f);
  const std::vector<SlotExpert> group = {{3, 0x10000}, {0, 0x20000}, {1, 0x30000}};  // expert 1 has no kept rows
  EXPECT_EQ(WriteLaunchRecord(kept, E, group, F, H, kTile, bytes.data()), 2);
  const Record r = Read(bytes, E);
  EXPECT_EQ(r.gate_up, (std::vector<uintptr_t>{0x20000, 0x30000, 0, 0x10000, 0, 0}));
  const uintptr_t down_at = 2 * F * H * 2;
  EXPECT_EQ(r.down, (std::vector<uintptr_t>{0x20000 + down_at, 0x30000 + down_at, 0, 0x10000 + down_at, 0, 0}));
  // Tiles: expert 0 owns ceil(5/4) = 2, expert 3 ceil(9/4) = 3; experts outside the group own none.
  EXPECT_EQ(r.tile_prefix, (std::vector<int32_t>{0, 2, 2, 2, 5, 5, 5}));
  EXPECT_EQ(r.active, (std::vector<int32_t>{0, 3, -1, -1, -1, -1, 2}));
  for (int t = 0; t < 2; ++t) EXPECT_EQ(ExpertOfTile(r.tile_prefix.data(), E, t), 0);
  for (int t = 2; t < 5; ++t) EXPECT_EQ(ExpertOfTile(r.tile_prefix.data(), E, t), 3);
}

// Any split of the layer's experts into groups covers each kept expert's tiles exactly once.
TEST(WaveLaunchTest, GroupsPartitionTheLayersTiles) {
  constexpr int E = 8, kTile = 2;
  const int32_t kept[E] = {1, 4, 0, 2, 7, 3, 0, 1};
  std::vector<int32_t> whole_offsets(E + 1), whole_tiles(E + 1), whole_active(E);
  BuildExpertSchedule(kept, E, kTile, whole_offsets.data(), whole_tiles.data(), whole_active.data());
  const std::vector<std::vector<int>> split = {{4, 1}, {0, 7, 5}, {3, 2, 6}};
  std::vector<int> tiles_of(E, 0);
  int groups_tiles = 0;
  for (const std::vector<int>& g : split) {
    std::vector<SlotExpert> group;
    for (int e : g) group.push_back({e, 0x1000u * (e + 1)});
    std::vector<char> bytes(LaunchRecordBytes(E));
    WriteLaunchRecord(kept, E, group, 4, 8, kTile, bytes.data());
    const Record r = Read(bytes, E);
    groups_tiles += r.tile_prefix[E];
    for (int t = 0; t < r.tile_prefix[E]; ++t) ++tiles_of[ExpertOfTile(r.tile_prefix.data(), E, t)];
  }
  EXPECT_EQ(groups_tiles, whole_tiles[E]);
  for (int e = 0; e < E; ++e) EXPECT_EQ(tiles_of[e], (kept[e] + kTile - 1) / kTile) << "expert " << e;
}

TEST(WaveLaunchTest, RecordBytesAreSixteenByteAligned) {
  for (int E : {1, 7, 8, 64, 256}) {
    EXPECT_EQ(LaunchRecordBytes(E) % 16, 0);
    EXPECT_GE(LaunchRecordBytes(E), 2 * E * 8 + 2 * (E + 1) * 4);
  }
}

TEST(PinRangesTest, PagesWidenedAndOverlapsMerged) {
  constexpr uintptr_t P = 4096;
  const std::vector<AddressRange> got = PageRanges(
      {{P + 10, P + 100}, {P + 200, 2 * P + 5}, {5 * P, 6 * P}, {4 * P, 5 * P}, {9 * P, 9 * P}, {7 * P + 1, 7 * P + 2}},
      P);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].begin, P);  // the two parts sharing page 1 become one range over pages 1-2
  EXPECT_EQ(got[0].end, 3 * P);
  EXPECT_EQ(got[1].begin, 4 * P);  // touching, not overlapping: kept apart
  EXPECT_EQ(got[1].end, 5 * P);
  EXPECT_EQ(got[2].begin, 5 * P);
  EXPECT_EQ(got[3].begin, 7 * P);
  EXPECT_EQ(got[3].end, 8 * P);
}

}  // namespace
}  // namespace moed::cuda
