// Launch plan of the grouped tensor-core GEMM (engine/backend/cuda/grouped_gemm_tc.cu): tile sizes, pipeline depth,
// shared-memory size, the tile rows chosen per call, and the grouped raster order of CTAs over (row tile, column
// tile). Header-only, host and device, no CUDA headers; unit-tested on the CPU (tests/unit/backend/tc_gemm_plan_test.cc).
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/backend/cuda/host/moe_schedule.h"

namespace moed::cuda {

constexpr int kTcThreads = 256;   // 8 warps: 2 along M × 4 along N
constexpr int kTcBN = 128;        // B rows (weight rows) per CTA; gate_up: 64 gate + 64 up rows = 64 h columns
constexpr int kTcBK = 32;         // K elements per pipeline stage
constexpr int kTcStages = 4;      // cp.async stages in flight (kTcStages - 1 tiles ahead of the math)
constexpr int kTcPad = 8;         // bf16 of padding per shared row: 80-byte rows keep ldmatrix conflict-free
constexpr int kTcLd = kTcBK + kTcPad;
constexpr int kTcGroupM = 8;      // row tiles per raster group (CTAs of a group share their weight tiles in L2)
constexpr int kTcSmallRows = 64;  // the two tile heights (BM) of the kernel
constexpr int kTcLargeRows = 128;
static_assert(kTcSmallRows == kMmaTileRows, "a schedule built with the default tile rows runs the small tiles");

// Dynamic shared memory of one CTA with row tiles of `bm` rows: kTcStages × (A bm rows + B kTcBN rows) × kTcLd bf16.
constexpr int TcSmemBytes(int bm) { return kTcStages * (bm + kTcBN) * kTcLd * 2; }

// h columns (gate_up) or output columns (down) one CTA covers.
constexpr int TcColsPerTile(bool gate_up) { return gate_up ? kTcBN / 2 : kTcBN; }

// K tiles of one CTA's main loop (the last one zero-filled past K).
constexpr int TcKTiles(int K) { return (K + kTcBK - 1) / kTcBK; }

// Tile rows for a call: the tall tiles once the average active expert has enough rows to fill them (less padding
// waste than the gain from fewer, larger tiles), else the short ones. From what the host knows (no counts).
constexpr int kTcLargeMinAvgRows = 256;
inline int TcTileRows(int tokens, int top_k, int E) {
  const int64_t a = static_cast<int64_t>(tokens) * top_k;
  const int64_t active = std::max<int64_t>(1, std::min<int64_t>(E, a));
  return (a + active - 1) / active >= kTcLargeMinAvgRows ? kTcLargeRows : kTcSmallRows;
}

// Grid of one projection: CTAs = m_tiles × n_tiles, m_tiles the host bound MaxTiles (CTAs past tile_prefix[E] exit).
struct TcGrid {
  int m_tiles = 0, n_tiles = 0;
  int64_t ctas() const { return static_cast<int64_t>(m_tiles) * n_tiles; }
};
inline TcGrid PlanTcGrid(int assignments, int E, int tile_rows, int cols, bool gate_up) {
  TcGrid g;
  g.m_tiles = MaxTiles(assignments, E, tile_rows);
  g.n_tiles = (cols + TcColsPerTile(gate_up) - 1) / TcColsPerTile(gate_up);
  return g;
}

// CTA `bid` (0 ≤ bid < m_tiles × n_tiles) → its (row tile, column tile). Groups of kTcGroupM row tiles, each group
// walking all column tiles with the row tile varying fastest, so CTAs in flight together touch few weight tiles and
// few row tiles. A bijection onto [0, m_tiles) × [0, n_tiles).
struct TcTile {
  int m = 0, n = 0;
};
MOED_SCHED_HD TcTile TcTileOf(int bid, int m_tiles, int n_tiles) {
  const int per_group = kTcGroupM * n_tiles;
  const int group = bid / per_group;
  const int first_m = group * kTcGroupM;
  const int gm = m_tiles - first_m < kTcGroupM ? m_tiles - first_m : kTcGroupM;
  const int local = bid - group * per_group;
  return TcTile{first_m + local % gm, local / gm};
}

// B (weight) row of shared row r (0 ≤ r < kTcBN) for the gate_up tile of h columns col0 .. col0+63: each warp
// column (32 rows) holds 16 gate rows then the 16 up rows of the same h columns, so a thread's gate and up
// accumulators sit in its own registers. Returns the h column in *col (the row is valid iff *col < F).
MOED_SCHED_HD int TcGateUpRow(int r, int col0, int F, int* col) {
  const int group = r >> 5, within = r & 31;
  *col = col0 + group * 16 + (within & 15);
  return within < 16 ? *col : F + *col;
}

// Fragment coordinates (rows and k or columns within the CTA tile) that the kernel's lanes address. Kept here so
// the CPU test can replay them against the PTX layouts of ldmatrix and mma.m16n8k16.
struct TcRowK {
  int row = 0, k = 0;
};
// 16-byte chunk `pass` of thread `tid` in a stage load: row (tid / 4) + 64·pass, k 8·(tid % 4).
MOED_SCHED_HD TcRowK TcChunkOf(int tid, int pass) {
  constexpr int kChunksPerRow = kTcBK / 8, kRowsPerPass = kTcThreads / kChunksPerRow;
  return TcRowK{tid / kChunksPerRow + pass * kRowsPerPass, (tid % kChunksPerRow) * 8};
}
// ldmatrix.x4 row address of `lane` for the A fragment of the 16×16 block at (row, k) = (0, 0): lanes 0-15 rows
// 0-15 at k 0, lanes 16-31 rows 0-15 at k 8 (registers a0..a3 of m16n8k16).
MOED_SCHED_HD TcRowK TcLdmA(int lane) { return TcRowK{lane & 15, (lane >> 4) * 8}; }
// ldmatrix.x4 row address of `lane` for two n8 B fragments (16 weight rows × k16): lanes 0-7 n 0-7 k 0, 8-15 n 0-7
// k 8, 16-23 n 8-15 k 0, 24-31 n 8-15 k 8 → b0 b1 of the first n8 tile, then b0 b1 of the second.
MOED_SCHED_HD TcRowK TcLdmB(int lane) { return TcRowK{(lane & 7) + (lane >> 4) * 8, ((lane >> 3) & 1) * 8}; }
// Accumulator element c (0..3) of `lane` in a 16×8 mma tile: rows lane/4 (c 0, 1) and lane/4 + 8 (c 2, 3), columns
// 2·(lane % 4) + c % 2 (k is the column here).
MOED_SCHED_HD TcRowK TcAccAt(int lane, int c) { return TcRowK{(lane >> 2) + (c >> 1) * 8, (lane & 3) * 2 + (c & 1)}; }
// Output column (h column for gate_up, output column for down) of n8 tile j (gate_up: j < 2; j + 2 holds the up
// rows of the same columns) of warp column wn, at column offset `c` (0..7) within the n8 tile, from the CTA's col0.
MOED_SCHED_HD int TcOutCol(bool gate_up, int col0, int wn, int j, int c) {
  return col0 + wn * (gate_up ? 16 : 32) + j * 8 + c;
}

}  // namespace moed::cuda
