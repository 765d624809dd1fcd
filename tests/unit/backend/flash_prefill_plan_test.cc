// The tensor-core prefill attention's host side (engine/backend/cuda/host/flash_prefill_plan.h): which rows become
// tiles and which stay with flash-decoding, that the kernel's key blocks and mask skipping show each query exactly its
// causal/window keys, and a CPU twin of the kernel's tile loop (bf16 Q and P, log2-domain online softmax, zero-filled
// partial blocks, the block-table walk) against the CPU attention, which measures what bf16 costs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cuda/host/flash_prefill_plan.h"
#include "engine/model/dtype.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

float RoundBf16(float x) { return Bf16ToFloat(FloatToBf16(x)); }

// A step's rows as StepPlan lays them out: sequences back to back, chunk i at positions start[i] .. start[i]+n[i]-1.
struct Rows {
  std::vector<int32_t> row_seq, positions, table_offsets;
};
Rows MakeRows(const std::vector<std::pair<int, int>>& chunks) {  // (start, n) per sequence
  Rows r;
  for (size_t s = 0; s < chunks.size(); ++s) {
    for (int j = 0; j < chunks[s].second; ++j) {
      r.row_seq.push_back(static_cast<int32_t>(s));
      r.positions.push_back(chunks[s].first + j);
      r.table_offsets.push_back(static_cast<int32_t>(100 * s));
    }
  }
  return r;
}

TEST(FlashPrefillPlanTest, SupportedShapes) {
  EXPECT_TRUE(FlashPrefillSupported(32, 4, 128));
  EXPECT_TRUE(FlashPrefillSupported(16, 16, 64));
  EXPECT_TRUE(FlashPrefillSupported(64, 2, 128));  // any GQA group
  EXPECT_FALSE(FlashPrefillSupported(8, 8, 32));
  EXPECT_FALSE(FlashPrefillSupported(8, 8, 256));
  EXPECT_FALSE(FlashPrefillSupported(8, 3, 64));
  EXPECT_FALSE(FlashPrefillSupported(8, 0, 64));
}

TEST(FlashPrefillPlanTest, DecodeStepsHaveNoTilesAndNoRowList) {
  const Rows r = MakeRows({{10, 1}, {500, 1}, {0, 1}});
  std::vector<PrefillTile> tiles = {PrefillTile{}};
  std::vector<int32_t> decode_rows = {7};
  PlanFlashPrefill(r.row_seq, r.positions, r.table_offsets, 0, &tiles, &decode_rows);
  EXPECT_TRUE(tiles.empty());
  EXPECT_TRUE(decode_rows.empty());  // flash-decoding takes every row, as without the plan
  // Short chunks only (< kPrefillMinRows): the same.
  const Rows s = MakeRows({{3, kPrefillMinRows - 1}, {0, 2}});
  PlanFlashPrefill(s.row_seq, s.positions, s.table_offsets, 0, &tiles, &decode_rows);
  EXPECT_TRUE(tiles.empty());
  EXPECT_TRUE(decode_rows.empty());
}

TEST(FlashPrefillPlanTest, EveryRowInExactlyOneTileOrTheDecodeList) {
  const std::vector<std::pair<int, int>> chunks = {{40, 1},  {0, 200},  {37, kPrefillMinRows - 1}, {5, kPrefillMinRows},
                                                   {900, 1}, {64, 129}, {1000, 64}};
  const Rows r = MakeRows(chunks);
  for (int window : {0, 50}) {
    std::vector<PrefillTile> tiles;
    std::vector<int32_t> decode_rows;
    PlanFlashPrefill(r.row_seq, r.positions, r.table_offsets, window, &tiles, &decode_rows);
    std::vector<int> seen(r.positions.size(), 0);
    for (const PrefillTile& t : tiles) {
      ASSERT_GE(t.rows, 1);
      ASSERT_LE(t.rows, kPrefillTileRows);
      for (int i = 0; i < t.rows; ++i) {
        const int row = t.row0 + i;
        ++seen[row];
        EXPECT_EQ(r.positions[row], t.pos0 + i);
        EXPECT_EQ(r.table_offsets[row], t.table_offset);
        EXPECT_EQ(r.row_seq[row], r.row_seq[t.row0]);
      }
    }
    for (int32_t row : decode_rows) ++seen[row];
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "row " << i;
    EXPECT_TRUE(std::is_sorted(decode_rows.begin(), decode_rows.end()));
    // Rows of chunks shorter than kPrefillMinRows are exactly the decode rows: 1 + 15 + 1.
    EXPECT_EQ(decode_rows.size(), static_cast<size_t>(1 + kPrefillMinRows - 1 + 1));
    // 200 → 4 tiles, 16 → 1, 129 → 3, 64 → 1.
    EXPECT_EQ(tiles.size(), 9u);
    // The longest key ranges first.
    for (size_t i = 1; i < tiles.size(); ++i) {
      int b0, e0, b1, e1;
      PrefillKeyRange(tiles[i - 1].pos0, tiles[i - 1].rows, window, &b0, &e0);
      PrefillKeyRange(tiles[i].pos0, tiles[i].rows, window, &b1, &e1);
      EXPECT_GE(e0 - b0, e1 - b1);
    }
  }
}

TEST(FlashPrefillPlanTest, RunsBreakAtNonConsecutivePositionsAndTables) {
  Rows r = MakeRows({{0, 20}});
  r.positions[10] += 5;  // positions 0..9, 15..24: two runs of 10 (each < kPrefillMinRows)
  std::vector<PrefillTile> tiles;
  std::vector<int32_t> decode_rows;
  PlanFlashPrefill(r.row_seq, r.positions, r.table_offsets, 0, &tiles, &decode_rows);
  EXPECT_TRUE(tiles.empty());
  Rows q = MakeRows({{0, 40}});
  for (int i = 20; i < 40; ++i) q.table_offsets[i] = 7;
  PlanFlashPrefill(q.row_seq, q.positions, q.table_offsets, 0, &tiles, &decode_rows);
  ASSERT_EQ(tiles.size(), 2u);
  EXPECT_EQ(tiles[0].rows + tiles[1].rows, 40);
}

// The kernel's walk of one tile: key blocks from PrefillKeyRange, each key masked (when the block needs it) by
// PrefillVisible below kv_end. Every (row, key) pair left must be exactly the causal/window set, each key once.
TEST(FlashPrefillPlanTest, KeyBlocksAndMasksShowEachQueryExactlyItsKeys) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 3000; ++trial) {
    const int pos0 = trial % 5 == 0 ? 0 : static_cast<int>(rng() % 700);
    const int rows = 1 + static_cast<int>(rng() % kPrefillTileRows);
    const int window = trial % 3 == 0 ? 1 + static_cast<int>(rng() % 150) : 0;
    int kv_begin = 0, kv_end = 0;
    PrefillKeyRange(pos0, rows, window, &kv_begin, &kv_end);
    ASSERT_EQ(kv_end, pos0 + rows);
    // seen[r][kp]: how often row r was shown key kp (past kv_end: a zero-filled slot).
    std::vector<std::vector<int>> seen(rows, std::vector<int>(kv_end + kPrefillTileKeys, 0));
    int masked_blocks = 0, blocks = 0;
    for (int n0 = kv_begin; n0 < kv_end; n0 += kPrefillTileKeys) {
      const bool mask = PrefillBlockNeedsMask(n0, kv_end, pos0, rows, window);
      masked_blocks += mask;
      ++blocks;
      for (int r = 0; r < rows; ++r) {
        for (int kp = n0; kp < n0 + kPrefillTileKeys; ++kp) {
          if (mask && (kp >= kv_end || !PrefillVisible(pos0 + r, kp, window))) continue;
          ++seen[r][kp];
        }
      }
    }
    for (int r = 0; r < rows; ++r) {
      const int qp = pos0 + r, lo = window > 0 ? std::max(0, qp - window + 1) : 0;
      for (int kp = 0; kp < kv_end + kPrefillTileKeys; ++kp) {
        ASSERT_EQ(seen[r][kp], kp >= lo && kp <= qp ? 1 : 0)
            << "pos0 " << pos0 << " rows " << rows << " window " << window << " row " << r << " key " << kp;
      }
    }
    // Without a window, the mask is skipped wherever it can be: every block wholly at or before pos0 runs unmasked,
    // and only the blocks reaching past pos0 (rows / 64 + 1 at most) are masked.
    if (window == 0) {
      EXPECT_EQ(blocks - masked_blocks, (pos0 + 1) / kPrefillTileKeys);
      EXPECT_LE(masked_blocks, 1 + (rows + kPrefillTileKeys - 1) / kPrefillTileKeys);
    }
  }
}

// The kernel's arithmetic on the CPU for one tile and head: Q·scale·log2(e) rounded to bf16, scores over zero-filled
// key blocks, masked to -inf where the block needs it, exp2 online softmax with the all-masked guard, P rounded to
// bf16 for P·V, the output rounded to bf16. Writes rows [row0, row0 + rows) of head h.
void TwinTile(const PrefillTile& t, int h, int heads, int kv_heads, int hd, int block_size, int window, float scale,
              const std::vector<int32_t>& tables, const std::vector<float>& q, const std::vector<float>& kc,
              const std::vector<float>& vc, std::vector<float>* out) {
  const int kvh = h / (heads / kv_heads), kvd = kv_heads * hd, qd = heads * hd;
  int kv_begin = 0, kv_end = 0;
  PrefillKeyRange(t.pos0, t.rows, window, &kv_begin, &kv_end);
  const float qscale = scale * 1.4426950408889634f;
  for (int r = 0; r < t.rows; ++r) {
    std::vector<float> qr(hd), o(hd, 0.0f);
    for (int d = 0; d < hd; ++d) qr[d] = RoundBf16(q[static_cast<size_t>(t.row0 + r) * qd + h * hd + d] * qscale);
    float m = -INFINITY, l = 0.0f;
    for (int n0 = kv_begin; n0 < kv_end; n0 += kPrefillTileKeys) {
      const bool mask = PrefillBlockNeedsMask(n0, kv_end, t.pos0, t.rows, window);
      std::vector<float> s(kPrefillTileKeys, 0.0f);
      std::vector<int64_t> at(kPrefillTileKeys, -1);
      for (int j = 0; j < kPrefillTileKeys; ++j) {
        const int kp = n0 + j;
        if (kp < kv_end) {
          at[j] = (static_cast<int64_t>(tables[t.table_offset + kp / block_size]) * block_size + kp % block_size) *
                      kvd + kvh * hd;
          for (int d = 0; d < hd; ++d) s[j] += qr[d] * kc[at[j] + d];
        }
        if (mask && (kp >= kv_end || !PrefillVisible(t.pos0 + r, kp, window))) s[j] = -INFINITY;
      }
      const float m_new = std::max(m, *std::max_element(s.begin(), s.end()));
      const float base = m_new == -INFINITY ? 0.0f : m_new;
      const float corr = std::exp2(m - base);
      m = m_new;
      l *= corr;
      for (float& x : o) x *= corr;
      for (int j = 0; j < kPrefillTileKeys; ++j) {
        const float p = std::exp2(s[j] - base);
        l += p;
        if (at[j] < 0) continue;  // zero-filled V
        for (int d = 0; d < hd; ++d) o[d] += RoundBf16(p) * vc[at[j] + d];
      }
    }
    for (int d = 0; d < hd; ++d) (*out)[static_cast<size_t>(t.row0 + r) * qd + h * hd + d] = RoundBf16(o[d] / l);
  }
}

struct Case {
  int heads, kv_heads, head_dim, block_size, window;
};

TEST(FlashPrefillPlanTest, CpuTwinOfTheTileLoopMatchesTheCpuAttention) {
  std::mt19937 rng(11);
  const std::vector<Case> cases = {{8, 2, 128, 16, 0}, {4, 4, 64, 16, 0}, {8, 1, 64, 8, 5}, {4, 2, 128, 1, 70},
                                   {6, 3, 64, 16, 0}};
  // (start, new tokens) per sequence: fresh prefills, prefills after cached positions (prefix cache / chunked
  // prefill), a chunk too short for a tile, a decode row, partial last tiles.
  const std::vector<std::pair<int, int>> chunks = {{0, 100}, {37, 16}, {200, 70}, {5, 1}, {0, 15}, {3, 64}};
  double worst_all = 0.0;
  for (const Case& c : cases) {
    const int kvd = c.kv_heads * c.head_dim, qd = c.heads * c.head_dim;
    std::vector<int32_t> tables;
    std::vector<std::vector<int32_t>> seq_tables;
    int next_block = 0;
    Rows r;
    for (size_t s = 0; s < chunks.size(); ++s) {
      const int end = chunks[s].first + chunks[s].second;
      const int nb = (end + c.block_size - 1) / c.block_size;
      const int offset = static_cast<int>(tables.size());
      for (int b = 0; b < nb; ++b) tables.push_back(next_block++);
      for (int j = 0; j < chunks[s].second; ++j) {
        r.row_seq.push_back(static_cast<int32_t>(s));
        r.positions.push_back(chunks[s].first + j);
        r.table_offsets.push_back(offset);
      }
    }
    // Shuffle the physical blocks so the table walk matters.
    std::vector<int32_t> perm(next_block);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int32_t& b : tables) b = perm[b];
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> kc(static_cast<size_t>(next_block) * c.block_size * kvd), vc(kc.size());
    for (float& x : kc) x = RoundBf16(u(rng));  // the cache holds bf16
    for (float& x : vc) x = RoundBf16(u(rng));
    const int n = static_cast<int>(r.positions.size());
    std::vector<float> q(static_cast<size_t>(n) * qd);
    for (float& x : q) x = 2.0f * u(rng);
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

    std::vector<cpu::QueryRow> qrows;
    for (int t = 0; t < n; ++t) qrows.push_back({r.positions[t], tables.data() + r.table_offsets[t]});
    cpu::KvLayerView kv{kc.data(), vc.data(), c.block_size, c.kv_heads, c.head_dim, kvd};
    std::vector<float> ref(static_cast<size_t>(n) * qd);
    cpu::PagedAttention(kv, qrows, q.data(), c.heads, c.window, scale, ref.data(), nullptr);

    std::vector<PrefillTile> tiles;
    std::vector<int32_t> decode_rows;
    PlanFlashPrefill(r.row_seq, r.positions, r.table_offsets, c.window, &tiles, &decode_rows);
    ASSERT_FALSE(tiles.empty());
    std::vector<float> got(ref.size(), NAN);
    for (const PrefillTile& t : tiles) {
      for (int h = 0; h < c.heads; ++h) {
        TwinTile(t, h, c.heads, c.kv_heads, c.head_dim, c.block_size, c.window, scale, tables, q, kc, vc, &got);
      }
    }
    for (int32_t row : decode_rows) {  // flash-decoding's rows: taken from the reference here
      std::copy_n(ref.begin() + static_cast<size_t>(row) * qd, qd, got.begin() + static_cast<size_t>(row) * qd);
    }
    double worst = 0.0;
    for (size_t i = 0; i < ref.size(); ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "element " << i << " not written";
      worst = std::max(worst, std::abs(static_cast<double>(got[i]) - ref[i]) / (1.0 + std::abs(ref[i])));
    }
    // bf16 output rounding alone is up to 2^-9 of (1 + |o|); Q and P rounding add less than that.
    EXPECT_LT(worst, 4e-3) << "heads " << c.heads << "/" << c.kv_heads << " hd " << c.head_dim << " window "
                           << c.window;
    worst_all = std::max(worst_all, worst);
  }
  std::printf("CPU twin of the flash prefill tile loop: max |twin - cpu| / (1 + |cpu|) = %.3g\n", worst_all);
}

}  // namespace
}  // namespace moed::cuda
