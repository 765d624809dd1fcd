// Tensor-core prefill attention (engine/backend/cuda/flash_prefill.*) with flash-decoding over the rows left to it
// (PagedAttentionArgs::rows), as the backend runs them, against the CPU attention (cpu::PagedAttention) and the simple
// kernel: fresh prefills and chunks after cached positions, partial tiles, GQA groups 1–8 and 16, windows, block
// sizes 1–16, head_dim 64 and 128. The CPU twin of the tile loop (tests/unit/backend/flash_prefill_plan_test.cc)
// measures bf16's cost at ≤ 4e-3 of (1 + |o|); the bound here adds the device's summation order.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/flash_decode.h"
#include "engine/backend/cuda/flash_prefill.h"
#include "engine/backend/cuda/host/flash_prefill_plan.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

using gpu_test::bf16;
using gpu_test::DevVec;
using gpu_test::FromBf16;
using gpu_test::MaxRelErr;
using gpu_test::RandomBf16Values;
using gpu_test::ToBf16;

struct Case {
  int heads, kv_heads, head_dim, block_size, window;
};

constexpr double kBound = 6e-3;  // the CPU twin's 4e-3 plus fp32 summation order on the device

// with_cpu false: against the simple kernel only (itself held to the CPU by the tests above and cuda_ops_test).
void ExpectPrefillMatches(const std::vector<Case>& cases, const std::vector<std::pair<int, int>>& chunks,
                          uint32_t seed, bool with_cpu = true) {
  std::mt19937 rng(seed);
  for (const Case& c : cases) {
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                             std::to_string(c.head_dim) + " block " + std::to_string(c.block_size) + " window " +
                             std::to_string(c.window);
    ASSERT_TRUE(cuda::FlashPrefillSupported(c.heads, c.kv_heads, c.head_dim)) << what;
    const int kvd = c.kv_heads * c.head_dim, qd = c.heads * c.head_dim;
    int blocks = 0;
    for (const auto& [start, n] : chunks) blocks += (start + n + c.block_size - 1) / c.block_size;
    std::vector<int32_t> free_blocks(blocks + 7);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
    const std::vector<float> kc =
        RandomBf16Values(static_cast<size_t>(free_blocks.size()) * c.block_size * kvd, 1.0f, rng);
    const std::vector<float> vc = RandomBf16Values(kc.size(), 1.0f, rng);
    std::vector<int32_t> positions, table_offsets, row_seq, flat;
    for (size_t s = 0; s < chunks.size(); ++s) {
      const auto [start, n] = chunks[s];
      const int nb = (start + n + c.block_size - 1) / c.block_size;
      const int offset = static_cast<int>(flat.size());
      flat.insert(flat.end(), free_blocks.end() - nb, free_blocks.end());
      free_blocks.resize(free_blocks.size() - nb);
      for (int j = 0; j < n; ++j) {
        positions.push_back(start + j);
        table_offsets.push_back(offset);
        row_seq.push_back(static_cast<int32_t>(s));
      }
    }
    const int n = static_cast<int>(positions.size());
    const std::vector<float> q = RandomBf16Values(static_cast<size_t>(n) * qd, 2.0f, rng);
    std::vector<cuda::PrefillTile> tiles;
    std::vector<int32_t> decode_rows;
    cuda::PlanFlashPrefill(row_seq, positions, table_offsets, c.window, &tiles, &decode_rows);
    ASSERT_FALSE(tiles.empty()) << what;

    DevVec<float> d_q(q);
    DevVec<bf16> d_k(ToBf16(kc)), d_v(ToBf16(vc)), d_ref(static_cast<size_t>(n) * qd), d_out(d_ref.size());
    DevVec<int32_t> d_pos(positions), d_off(table_offsets), d_tables(flat);
    DevVec<int32_t> d_rows(std::max<size_t>(1, decode_rows.size()));
    if (!decode_rows.empty()) d_rows.Upload(decode_rows);
    DevVec<cuda::PrefillTile> d_tiles(tiles);
    cuda::PagedAttentionArgs a;
    a.q = d_q.get();
    a.k_cache = d_k.get();
    a.v_cache = d_v.get();
    a.positions = d_pos.get();
    a.block_tables = d_tables.get();
    a.table_offsets = d_off.get();
    a.tokens = n;
    a.num_heads = c.heads;
    a.num_kv_heads = c.kv_heads;
    a.head_dim = c.head_dim;
    a.block_size = c.block_size;
    a.sliding_window = c.window;
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    a.out = d_ref.get();
    MOED_CUDA_ASSERT(cuda::LaunchPagedAttention(a, nullptr));
    const std::vector<float> simple = FromBf16(d_ref.Download());

    std::vector<float> kf = kc, vf = vc;
    cpu::KvLayerView kv{kf.data(), vf.data(), c.block_size, c.kv_heads, c.head_dim, kvd};
    std::vector<cpu::QueryRow> qrows;
    for (int t = 0; t < n; ++t) qrows.push_back({positions[t], flat.data() + table_offsets[t]});
    std::vector<float> ref(static_cast<size_t>(n) * qd);
    if (with_cpu) cpu::PagedAttention(kv, qrows, q.data(), c.heads, c.window, a.scale, ref.data(), nullptr);

    // The tiles alone: their rows written, every other row left as poisoned (NaN).
    a.out = d_out.get();
    MOED_CUDA_ASSERT(cuda::LaunchFlashPrefill(a, d_tiles.get(), static_cast<int>(tiles.size()), nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    std::vector<float> got = FromBf16(d_out.Download());
    std::vector<bool> in_tile(n, false);
    for (const cuda::PrefillTile& t : tiles) {
      for (int i = 0; i < t.rows; ++i) in_tile[t.row0 + i] = true;
    }
    for (int t = 0; t < n; ++t) {
      const size_t first = static_cast<size_t>(t) * qd, last = first + qd - 1;
      const bool nan = std::isnan(got[first]) && std::isnan(got[last]);
      EXPECT_EQ(nan, !in_tile[t]) << what << " row " << t
                                  << (in_tile[t] ? " not written" : " written outside the tiles");
    }
    // Then flash-decoding over the rest, as the backend does: the whole output against both references.
    a.rows = decode_rows.empty() ? nullptr : d_rows.get();
    a.tokens = static_cast<int>(decode_rows.size());
    const int splits = cuda::FlashDecodeSplits(a.tokens, c.kv_heads, 132);
    DevVec<char> ws(cuda::FlashDecodeWorkspaceBytes(a.tokens, c.heads, c.head_dim, splits));
    if (a.tokens > 0) MOED_CUDA_ASSERT(cuda::LaunchFlashDecode(a, splits, ws.get(), nullptr));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
    got = FromBf16(d_out.Download());
    if (with_cpu) EXPECT_LT(MaxRelErr(got, ref), kBound) << what;
    EXPECT_LT(MaxRelErr(got, simple), kBound) << what << " (against the simple kernel)";
  }
}

// (start, new tokens) per sequence: a fresh prefill over several tiles with a partial last one, chunks after cached
// positions (prefix cache / chunked prefill), a chunk too short for a tile and decode rows (flash-decoding's, through
// the row list), a chunk of exactly one tile starting mid-block.
const std::vector<std::pair<int, int>> kChunks = {{0, 150}, {300, 1}, {37, 16}, {500, 70}, {5, 9}, {3, 64}, {0, 1}};

TEST(CudaFlashPrefillTest, MatchesCpuAndTheSimpleKernel) {
  MOED_REQUIRE_GPU();
  ExpectPrefillMatches({{32, 4, 128, 16, 0}, {16, 16, 64, 16, 0}, {8, 1, 64, 8, 0}, {8, 2, 128, 16, 5},
                        {16, 2, 128, 16, 40}, {32, 2, 64, 16, 0}, {6, 3, 64, 1, 0}, {4, 4, 128, 16, 100}},
                       kChunks, 21);
}

// A 2048-token prefill of the Qwen3-30B-A3B attention shape (32/4 heads, head_dim 128) in one chunk, against the
// simple kernel (the CPU would take seconds).
TEST(CudaFlashPrefillTest, LongPrefillQwen3Shape) {
  MOED_REQUIRE_GPU();
  ExpectPrefillMatches({{32, 4, 128, 16, 0}}, {{0, 2048}}, 22, /*with_cpu=*/false);
}

// A light version for the device run's compute-sanitizer step.
TEST(CudaFlashPrefillTest, Light) {
  MOED_REQUIRE_GPU();
  ExpectPrefillMatches({{8, 2, 128, 16, 0}, {4, 4, 64, 8, 5}}, {{0, 80}, {30, 20}, {7, 1}}, 23);
}

TEST(CudaFlashPrefillTest, RefusesUnsupportedShapes) {
  MOED_REQUIRE_GPU();
  cuda::PagedAttentionArgs a;
  a.num_heads = 8;
  a.num_kv_heads = 8;
  a.head_dim = 32;
  a.block_size = 16;
  cuda::PrefillTile* tiles = nullptr;
  EXPECT_EQ(cuda::LaunchFlashPrefill(a, tiles, 0, nullptr), cudaSuccess);  // nothing to do
  DevVec<cuda::PrefillTile> one(1);
  EXPECT_EQ(cuda::LaunchFlashPrefill(a, one.get(), 1, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace moed
