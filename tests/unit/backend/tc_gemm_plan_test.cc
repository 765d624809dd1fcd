// The grouped tensor-core GEMM's host plan and index math (engine/backend/cuda/host/tc_gemm_plan.h): the raster
// order is a bijection, the tile rows and shared-memory sizes fit the GPUs built for, and one CTA tile replayed on
// the CPU — stage loads with zero fill, ldmatrix and mma.m16n8k16 emulated from the PTX ISA's fragment layouts,
// the register epilogue — gives exactly the tile's products in the right output cells, each written once.
#include <algorithm>
#include <array>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

TEST(TcGemmPlanTest, RasterIsABijectionAndGroupsRowTiles) {
  for (int m_tiles : {1, 3, 8, 9, 17, 264}) {
    for (int n_tiles : {1, 2, 32, 224}) {
      std::vector<int> seen(static_cast<size_t>(m_tiles) * n_tiles, 0);
      for (int bid = 0; bid < m_tiles * n_tiles; ++bid) {
        const TcTile t = TcTileOf(bid, m_tiles, n_tiles);
        ASSERT_GE(t.m, 0);
        ASSERT_LT(t.m, m_tiles);
        ASSERT_GE(t.n, 0);
        ASSERT_LT(t.n, n_tiles);
        ++seen[static_cast<size_t>(t.m) * n_tiles + t.n];
        // Consecutive CTAs walk the row tiles of one group before the next column tile.
        if (bid > 0 && m_tiles >= kTcGroupM && bid < kTcGroupM * n_tiles) {
          const TcTile prev = TcTileOf(bid - 1, m_tiles, n_tiles);
          EXPECT_TRUE((t.n == prev.n && t.m == prev.m + 1) || (t.n == prev.n + 1 && t.m == 0));
        }
      }
      for (int c : seen) ASSERT_EQ(c, 1) << m_tiles << " × " << n_tiles;
    }
  }
}

TEST(TcGemmPlanTest, TileRowsAndSharedMemoryFit) {
  EXPECT_EQ(TcTileRows(16384, 2, 8), kTcLargeRows);    // Mixtral prefill: 4096 rows per expert
  EXPECT_EQ(TcTileRows(64, 2, 8), kTcSmallRows);       // 16 rows per expert
  EXPECT_EQ(TcTileRows(2048, 8, 128), kTcSmallRows);   // Qwen3 2048-token prefill: 128 rows per expert
  EXPECT_EQ(TcTileRows(1024, 2, 8), kTcLargeRows);     // exactly 256 rows per expert
  EXPECT_EQ(TcTileRows(1, 1, 8), kTcSmallRows);
  // Per-block opt-in limits: 99 KiB (sm_86/89), 163 KiB (sm_80), 227 KiB (sm_90); two large CTAs per SM on sm_80
  // (164 KiB per SM, 1 KiB reserved per CTA) and sm_90 (228 KiB).
  EXPECT_LE(TcSmemBytes(kTcLargeRows), 99 * 1024);
  EXPECT_LE(2 * (TcSmemBytes(kTcLargeRows) + 1024), 164 * 1024);
  EXPECT_EQ(TcSmemBytes(kTcLargeRows), kTcStages * (128 + 128) * 40 * 2);
  // Rows of 80 bytes: the 8 rows one ldmatrix phase reads start in 8 different 16-byte bank groups.
  std::set<int> groups;
  for (int r = 0; r < 8; ++r) groups.insert((r * kTcLd * 2 / 16) % 8);
  EXPECT_EQ(groups.size(), 8u);
  EXPECT_EQ(TcKTiles(4096), 128);
  EXPECT_EQ(TcKTiles(136), 5);  // the last tile: 8 of 32 k, the rest zero-filled
  const TcGrid g = PlanTcGrid(32768, 8, kTcLargeRows, 14336, true);
  EXPECT_EQ(g.m_tiles, 256 + 8);
  EXPECT_EQ(g.n_tiles, 224);
}

TEST(TcGemmPlanTest, GateUpRowsPairGateAndUpPerWarpColumn) {
  const int F = 100, col0 = 64;
  std::set<int> rows;
  for (int r = 0; r < kTcBN; ++r) {
    int col = -1;
    const int w = TcGateUpRow(r, col0, F, &col);
    EXPECT_EQ(col, col0 + (r / 32) * 16 + (r % 16));
    EXPECT_EQ(w, (r % 32) < 16 ? col : F + col);
    rows.insert(w);
  }
  EXPECT_EQ(rows.size(), static_cast<size_t>(kTcBN));
}

// --- One CTA tile on the CPU, with ldmatrix and mma emulated from the PTX ISA's fragment layouts. ---

// ldmatrix.m8n8.x4.b16 (no .trans): lane 8q + r gives the address of row r of matrix q; lane t receives in register q
// the elements (row t/4, columns 2·(t%4), 2·(t%4)+1) of matrix q. `smem` rows of kTcLd; returns [lane][reg][2].
using Regs = std::array<std::array<std::array<float, 2>, 4>, 32>;
Regs LdMatrixX4(const std::vector<float>& smem, const std::array<TcRowK, 32>& addr) {
  Regs out{};
  for (int t = 0; t < 32; ++t) {
    for (int q = 0; q < 4; ++q) {
      const TcRowK a = addr[8 * q + t / 4];
      for (int i = 0; i < 2; ++i) out[t][q][i] = smem[static_cast<size_t>(a.row) * kTcLd + a.k + 2 * (t % 4) + i];
    }
  }
  return out;
}

// mma.m16n8k16.row.col f32.bf16: with g = lane/4 and q = lane%4, A element a_i (register i/2, half i%2) is at row
// g + 8·((i/2)%2), column 2q + i%2 + 8·(i/4); B element b_i at k 2q + i%2 + 8·(i/2), column g; C element c_i at
// row g + 8·(i/2), column 2q + i%2. `a` and `b` per lane; d[lane][4] += A·B.
void Mma(const std::array<std::array<float, 8>, 32>& a, const std::array<std::array<float, 4>, 32>& b,
         std::array<std::array<float, 4>, 32>& d) {
  float A[16][16], B[16][8];
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, q = t % 4;
    for (int i = 0; i < 8; ++i) A[g + 8 * ((i / 2) % 2)][2 * q + i % 2 + 8 * (i / 4)] = a[t][i];
    for (int i = 0; i < 4; ++i) B[2 * q + i % 2 + 8 * (i / 2)][g] = b[t][i];
  }
  for (int t = 0; t < 32; ++t) {
    const int g = t / 4, q = t % 4;
    for (int i = 0; i < 4; ++i) {
      const int r = g + 8 * (i / 2), c = 2 * q + i % 2;
      for (int k = 0; k < 16; ++k) d[t][i] += A[r][k] * B[k][c];
    }
  }
}

// Replays the kernel's tile (tile_prefix row tile of `n` rows starting at m0 = 0, column tile col0) on the CPU and
// checks every output cell: gate_up → (gate, up) dot products of the gathered rows, down → the row's products.
void ReplayTile(int bm, bool gate_up, int n, int K, int F_or_H, int col0, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> v(-3, 3);
  const int N = F_or_H, w_rows = gate_up ? 2 * N : N;
  std::vector<float> A(static_cast<size_t>(n) * K), W(static_cast<size_t>(w_rows) * K);
  for (float& x : A) x = static_cast<float>(v(rng));
  for (float& x : W) x = static_cast<float>(v(rng));
  const int warp_rows = bm / 2, mi_n = warp_rows / 16;
  // acc[warp][mi][j][lane][c]
  std::vector<std::array<std::array<float, 4>, 32>> acc(8 * mi_n * 4);
  for (auto& a : acc) for (auto& l : a) l.fill(0.0f);
  for (int kt = 0; kt < TcKTiles(K); ++kt) {
    const int k = kt * kTcBK;
    // Stage load as the kernel issues it: poison first, then every chunk written (zero past rows / columns / K).
    std::vector<float> sa(static_cast<size_t>(bm) * kTcLd, 1e30f), sb(static_cast<size_t>(kTcBN) * kTcLd, 1e30f);
    for (int tid = 0; tid < kTcThreads; ++tid) {
      for (int pass = 0; pass < bm / (kTcThreads / 4); ++pass) {
        const TcRowK c = TcChunkOf(tid, pass);
        const bool ok = c.row < n && k + c.k < K;
        for (int i = 0; i < 8; ++i) {
          sa[static_cast<size_t>(c.row) * kTcLd + c.k + i] = ok ? A[static_cast<size_t>(c.row) * K + k + c.k + i] : 0.0f;
        }
      }
      for (int pass = 0; pass < kTcBN / (kTcThreads / 4); ++pass) {
        const TcRowK c = TcChunkOf(tid, pass);
        int wrow, col = 0;
        bool ok;
        if (gate_up) {
          wrow = TcGateUpRow(c.row, col0, N, &col);
          ok = col < N;
        } else {
          wrow = col0 + c.row;
          ok = wrow < N;
        }
        ok = ok && k + c.k < K;
        for (int i = 0; i < 8; ++i) {
          sb[static_cast<size_t>(c.row) * kTcLd + c.k + i] = ok ? W[static_cast<size_t>(wrow) * K + k + c.k + i] : 0.0f;
        }
      }
    }
    for (int warp = 0; warp < 8; ++warp) {
      const int wm = warp >> 2, wn = warp & 3;
      for (int kk = 0; kk < kTcBK; kk += 16) {
        std::array<TcRowK, 32> addr;
        std::vector<Regs> af(mi_n);
        for (int mi = 0; mi < mi_n; ++mi) {
          for (int lane = 0; lane < 32; ++lane) {
            const TcRowK l = TcLdmA(lane);
            addr[lane] = {wm * warp_rows + mi * 16 + l.row, kk + l.k};
          }
          af[mi] = LdMatrixX4(sa, addr);
        }
        Regs bq[2];
        for (int p = 0; p < 2; ++p) {
          for (int lane = 0; lane < 32; ++lane) {
            const TcRowK l = TcLdmB(lane);
            addr[lane] = {wn * 32 + p * 16 + l.row, kk + l.k};
          }
          bq[p] = LdMatrixX4(sb, addr);
        }
        for (int mi = 0; mi < mi_n; ++mi) {
          for (int j = 0; j < 4; ++j) {
            std::array<std::array<float, 8>, 32> a;
            std::array<std::array<float, 4>, 32> b;
            for (int t = 0; t < 32; ++t) {
              for (int r = 0; r < 4; ++r) a[t][2 * r] = af[mi][t][r][0], a[t][2 * r + 1] = af[mi][t][r][1];
              const int r0 = (j & 1) * 2;  // b0 b1 = register r0, b2 b3 = register r0 + 1 of x4 number j / 2
              b[t] = {bq[j >> 1][t][r0][0], bq[j >> 1][t][r0][1], bq[j >> 1][t][r0 + 1][0], bq[j >> 1][t][r0 + 1][1]};
            }
            Mma(a, b, acc[(warp * mi_n + mi) * 4 + j]);
          }
        }
      }
    }
  }
  // Epilogue as the kernel writes it; every (row < n, column < N) cell of the tile exactly once.
  const int cols = TcColsPerTile(gate_up);
  std::vector<int> written(static_cast<size_t>(bm) * cols, 0);
  auto dot = [&](int row, int wrow) {
    float s = 0.0f;
    for (int k = 0; k < K; ++k) s += A[static_cast<size_t>(row) * K + k] * W[static_cast<size_t>(wrow) * K + k];
    return s;
  };
  for (int warp = 0; warp < 8; ++warp) {
    const int wm = warp >> 2, wn = warp & 3;
    for (int mi = 0; mi < mi_n; ++mi) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int c = 0; c < 4; ++c) {
          const TcRowK at = TcAccAt(lane, c);
          const int m = wm * warp_rows + mi * 16 + at.row;
          for (int j = 0; j < (gate_up ? 2 : 4); ++j) {
            const int col = TcOutCol(gate_up, col0, wn, j, at.k);
            if (m >= n || col >= N) continue;
            ++written[static_cast<size_t>(m) * cols + col - col0];
            const float got = acc[(warp * mi_n + mi) * 4 + j][lane][c];
            ASSERT_EQ(got, dot(m, col)) << "row " << m << " col " << col;
            if (gate_up) ASSERT_EQ(acc[(warp * mi_n + mi) * 4 + j + 2][lane][c], dot(m, N + col)) << "up " << m;
          }
        }
      }
    }
  }
  for (int m = 0; m < bm; ++m) {
    for (int c = 0; c < cols; ++c) {
      EXPECT_EQ(written[static_cast<size_t>(m) * cols + c], m < n && col0 + c < N ? 1 : 0) << m << " " << c;
    }
  }
}

TEST(TcGemmPlanTest, OneTileReplayedMatchesItsProducts) {
  uint32_t seed = 1;
  for (int bm : {kTcSmallRows, kTcLargeRows}) {
    for (bool gate_up : {true, false}) {
      // Full tile, K of several stages; partial rows and columns with K not a multiple of kTcBK.
      ReplayTile(bm, gate_up, bm, 96, gate_up ? 64 : 128, 0, seed++);
      ReplayTile(bm, gate_up, bm - 19, 40, gate_up ? 64 + 24 : 128 + 40, gate_up ? 64 : 128, seed++);
      ReplayTile(bm, gate_up, 1, 8, 8, 0, seed++);
    }
  }
}

}  // namespace
}  // namespace moed::cuda
