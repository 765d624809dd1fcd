// Index math of the grouped MoE path (engine/backend/cuda/grouped_moe.*), shared by its kernels and the host:
// per-expert row offsets, the tile schedule over expert row ranges, the active-expert list and the launch plans.
// Header-only, host and device, no CUDA headers; unit-tested on the CPU (tests/unit/moe_schedule_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef __CUDACC__
#define MOED_SCHED_HD __host__ __device__ __forceinline__
#else
#define MOED_SCHED_HD inline
#endif

namespace moed::cuda {

constexpr int kMmaTileRows = 64;   // default rows (M) per schedule tile: the WMMA tiles, the short tensor-core tiles
constexpr int kMmaTileCols = 64;   // columns (N) of one WMMA tile; its gate_up kernel covers 32 h columns (gate + up)
constexpr int kGemvCols = 16;      // output columns of one streaming (GEMV) CTA: 8 warps × 2
constexpr int kGemvKStep = 256;    // K elements one warp reads per pass (32 lanes × 8 bf16 = 16 bytes each)

// From kept[e] (rows per expert after capacity), E experts: offsets (E+1) exclusive prefix sum of kept;
// tile_prefix (E+1) exclusive prefix sum of ceil(kept[e] / tile_rows); active (E) the experts with kept > 0 in
// ascending id, the rest of `active` set to -1; returns the number of active experts. Serial, O(E).
MOED_SCHED_HD int BuildExpertSchedule(const int32_t* kept, int E, int tile_rows, int32_t* offsets,
                                      int32_t* tile_prefix, int32_t* active) {
  int rows = 0, tiles = 0, n_active = 0;
  for (int e = 0; e < E; ++e) {
    offsets[e] = rows;
    tile_prefix[e] = tiles;
    rows += kept[e];
    tiles += (kept[e] + tile_rows - 1) / tile_rows;
    if (kept[e] > 0) active[n_active++] = e;
  }
  offsets[E] = rows;
  tile_prefix[E] = tiles;
  for (int i = n_active; i < E; ++i) active[i] = -1;
  return n_active;
}

// The expert owning tile `tile` (0 ≤ tile < tile_prefix[E]): the largest e with tile_prefix[e] ≤ tile. Experts without
// rows own no tile (their prefix equals the next one's), so the largest such e is the one with rows. O(log E).
MOED_SCHED_HD int ExpertOfTile(const int32_t* tile_prefix, int E, int tile) {
  int lo = 0, hi = E - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tile_prefix[mid] <= tile) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

// An upper bound of tile_prefix[E] for `assignments` kept rows over E experts, known on the host without the counts:
// every active expert wastes at most one partial tile, and at most min(E, assignments) are active.
inline int MaxTiles(int assignments, int E, int tile_rows) {
  return (assignments + tile_rows - 1) / tile_rows + std::min(E, assignments);
}

// Which grouped kernel a layer call uses, from what the host knows (tokens, top_k, E): the streaming kernel while
// the average active expert has at most `kGemvMaxAvgRows` rows (it re-reads its weight slice from L1 per 4 rows, and
// does the arithmetic on CUDA cores), else the tensor-core tiles.
constexpr int kGemvMaxAvgRows = 8;
inline bool UseGemv(int tokens, int top_k, int E) {
  const int64_t a = static_cast<int64_t>(tokens) * top_k;
  const int64_t active = std::min<int64_t>(E, a);
  return active > 0 && (a + active - 1) / active <= kGemvMaxAvgRows;
}

// Launch plan of one streaming (GEMV) projection: grid (col_blocks, splits, slots). slots = min(E, assignments)
// (CTAs of slots past the active count exit at once); splits divide K into ranges of k_per_split (a multiple of
// kGemvKStep, the last range shorter) when the columns alone give too few CTAs (< 4 per SM).
struct GemvPlan {
  int slots = 0, col_blocks = 0, splits = 1, k_per_split = 0;
};
inline GemvPlan PlanGemv(int assignments, int E, int cols, int K, int sm_count, bool allow_split) {
  GemvPlan p;
  p.slots = std::max(1, std::min(E, assignments));
  p.col_blocks = (cols + kGemvCols - 1) / kGemvCols;
  p.k_per_split = K;
  if (!allow_split) return p;
  const int64_t ctas = static_cast<int64_t>(p.slots) * p.col_blocks, want = 4LL * std::max(sm_count, 1);
  int splits = static_cast<int>(std::min<int64_t>(8, (want + ctas - 1) / ctas));
  // Keep at least 1024 K elements per split (two passes of a warp), in whole passes.
  splits = std::max(1, std::min(splits, K / 1024));
  const int steps = (K + kGemvKStep - 1) / kGemvKStep;
  p.k_per_split = ((steps + splits - 1) / splits) * kGemvKStep;
  p.splits = (K + p.k_per_split - 1) / p.k_per_split;
  return p;
}

}  // namespace moed::cuda
