// The grouped expert GEMM on tensor cores for many rows per expert (prefill): mma.sync m16n8k16 bf16 → fp32, a
// kTcStages-deep cp.async global→shared pipeline, ldmatrix from padded (conflict-free) shared rows, CTA tiles of
// BM (64 or 128) rows × 128 weight rows with 8 warps (2 × 4, each BM/2 × 32). Each CTA finds its expert and row tile
// from the device schedule (tile_prefix); gate_up gathers its A rows through row_token and applies SwiGLU in
// registers; down writes fp32 rows. Plan and index math in host/tc_gemm_plan.h.
#include <climits>
#include <cstdint>

#include "engine/backend/cuda/grouped_moe.h"
#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "engine/backend/cuda/mma_sync.cuh"
#include "engine/backend/cuda/swiglu.cuh"

namespace moed::cuda {
namespace {

using bf16 = __nv_bfloat16;

// One CTA: row tile TcTileOf(blockIdx.x).m of the schedule (rows [m0, m0+BM) of its expert's range) × column tile
// .n. Shared memory (dynamic, TcSmemBytes(BM)): A stages [kTcStages][BM][kTcLd] then B stages [kTcStages][kTcBN][kTcLd],
// rows k-contiguous. B rows are weight rows: kGateUp → TcGateUpRow (16 gate then 16 up rows per warp column), else
// down rows n0 .. n0+127. Rows past the expert's range, weight rows past N and k past K are zero-filled.
template <int BM, bool kGateUp>
__global__ void __launch_bounds__(kTcThreads, 2)
    TcGemmKernel(ExpertSchedule s, ExpertPointers w, const bf16* __restrict__ a_src, int H, int F, int m_tiles,
                 int n_tiles, bf16* __restrict__ h_out, float* __restrict__ y_out) {
  constexpr int kWarpRows = BM / 2, kMi = kWarpRows / 16;
  constexpr int kChunksPerRow = kTcBK / 8;                 // 16-byte chunks of one shared row
  constexpr int kRowsPerPass = kTcThreads / kChunksPerRow;  // rows one pass of the block loads
  constexpr int kAPasses = BM / kRowsPerPass, kBPasses = kTcBN / kRowsPerPass;
  constexpr uint32_t kAStage = BM * kTcLd * 2, kBStage = kTcBN * kTcLd * 2;  // bytes
  static_assert(BM % kRowsPerPass == 0 && kTcBN % kRowsPerPass == 0, "whole passes");
  static_assert(kTcBK % 16 == 0 && kTcStages >= 2, "k16 steps, at least double buffering");

  const TcTile tile = TcTileOf(blockIdx.x, m_tiles, n_tiles);
  const int E = s.num_experts;
  if (tile.m >= s.tile_prefix[E]) return;
  const int e = ExpertOfTile(s.tile_prefix, E, tile.m);
  const int r0 = s.offsets[e], n = s.offsets[e + 1] - r0;
  const int m0 = (tile.m - s.tile_prefix[e]) * BM;
  const int K = kGateUp ? H : F;
  const int col0 = tile.n * TcColsPerTile(kGateUp);
  const bf16* W = kGateUp ? w.gate_up[e] : w.down[e];

  extern __shared__ __align__(16) unsigned char smem[];
  const uint32_t sa = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const uint32_t sb = sa + kTcStages * kAStage;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wm = warp >> 2, wn = warp & 3;

  // This thread's 16-byte chunks: column kc of rows row_base + pass · kRowsPerPass (TcChunkOf).
  const int kc = TcChunkOf(tid, 0).k, row_base = TcChunkOf(tid, 0).row;
  const bf16* a_ptr[kAPasses];
  bool a_ok[kAPasses];
#pragma unroll
  for (int i = 0; i < kAPasses; ++i) {
    const int m = m0 + row_base + i * kRowsPerPass;
    a_ok[i] = m < n;
    const int64_t src = a_ok[i] ? (kGateUp ? s.row_token[r0 + m] : r0 + m) : 0;
    a_ptr[i] = a_src + src * K + kc;
  }
  const bf16* b_ptr[kBPasses];
  bool b_ok[kBPasses];
#pragma unroll
  for (int i = 0; i < kBPasses; ++i) {
    const int r = row_base + i * kRowsPerPass;
    int wrow;
    if (kGateUp) {
      int col;
      wrow = TcGateUpRow(r, col0, F, &col);
      b_ok[i] = col < F;
    } else {
      wrow = col0 + r;
      b_ok[i] = wrow < H;
    }
    b_ptr[i] = W + static_cast<int64_t>(b_ok[i] ? wrow : 0) * K + kc;
  }
  const uint32_t st_off = (row_base * kTcLd + kc) * 2;
  auto load_tile = [&](int kt, int stage) {
    const int k = kt * kTcBK;
    const bool in_k = k + kc < K;  // K % 8 == 0: a chunk is wholly in or out
#pragma unroll
    for (int i = 0; i < kAPasses; ++i) {
      const bool ok = a_ok[i] && in_k;
      CpAsync16(sa + stage * kAStage + st_off + i * kRowsPerPass * kTcLd * 2, ok ? a_ptr[i] + k : a_ptr[i],
                ok ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < kBPasses; ++i) {
      const bool ok = b_ok[i] && in_k;
      CpAsync16(sb + stage * kBStage + st_off + i * kRowsPerPass * kTcLd * 2, ok ? b_ptr[i] + k : b_ptr[i],
                ok ? 16 : 0);
    }
  };

  // ldmatrix row addresses (bytes within a stage, at k = 0): TcLdmA per m16 block, TcLdmB per pair of n8 tiles.
  const TcRowK la = TcLdmA(lane), lb = TcLdmB(lane);
  uint32_t a_ld[kMi], b_ld[2];
#pragma unroll
  for (int mi = 0; mi < kMi; ++mi) a_ld[mi] = ((wm * kWarpRows + mi * 16 + la.row) * kTcLd + la.k) * 2;
#pragma unroll
  for (int p = 0; p < 2; ++p) b_ld[p] = ((wn * 32 + p * 16 + lb.row) * kTcLd + lb.k) * 2;

  float acc[kMi][4][4];
#pragma unroll
  for (int mi = 0; mi < kMi; ++mi) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[mi][j][c] = 0.0f;
    }
  }

  // Pipeline: tiles 0 .. kTcStages-2 in flight first; at step kt, tile kt has landed once at most kTcStages-2 groups
  // are pending, the barrier publishes it and frees the stage tile kt-1 used, and tile kt+kTcStages-1 goes there.
  // Every step commits one group (empty past the end) so the count stays exact.
  const int kt_n = TcKTiles(K);
#pragma unroll
  for (int st = 0; st < kTcStages - 1; ++st) {
    if (st < kt_n) load_tile(st, st);
    CpAsyncCommit();
  }
  for (int kt = 0; kt < kt_n; ++kt) {
    CpAsyncWait<kTcStages - 2>();
    __syncthreads();
    const int next = kt + kTcStages - 1;
    if (next < kt_n) load_tile(next, next % kTcStages);
    CpAsyncCommit();
    const int stage = kt % kTcStages;
    const uint32_t a_stage = sa + stage * kAStage, b_stage = sb + stage * kBStage;
#pragma unroll
    for (int kk = 0; kk < kTcBK; kk += 16) {
      uint32_t af[kMi][4], bq[2][4];
#pragma unroll
      for (int mi = 0; mi < kMi; ++mi) LdMatrixX4(a_stage + a_ld[mi] + kk * 2, af[mi]);
#pragma unroll
      for (int p = 0; p < 2; ++p) LdMatrixX4(b_stage + b_ld[p] + kk * 2, bq[p]);
#pragma unroll
      for (int mi = 0; mi < kMi; ++mi) {
#pragma unroll
        for (int j = 0; j < 4; ++j) Mma16816(acc[mi][j], af[mi], bq[j >> 1][(j & 1) * 2], bq[j >> 1][(j & 1) * 2 + 1]);
      }
    }
  }
  CpAsyncWait<0>();  // only empty groups remain

  // Epilogue from registers: acc[mi][j][c] is element TcAccAt(lane, c) of n8 tile j; c = 2·half + {0, 1} share a row.
#pragma unroll
  for (int mi = 0; mi < kMi; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const TcRowK at = TcAccAt(lane, half * 2);
      const int m = m0 + wm * kWarpRows + mi * 16 + at.row;
      if (m >= n) continue;
      const int64_t row = r0 + m;
      if (kGateUp) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {  // tiles 0, 1 gate; 2, 3 the up rows of the same h columns
          const int col = TcOutCol(true, col0, wn, j, at.k);
          if (col >= F) continue;  // F even: col < F ⇒ col + 1 < F
          __nv_bfloat162 v;
          v.x = SwiGluBf16(acc[mi][j][half * 2], acc[mi][j + 2][half * 2]);
          v.y = SwiGluBf16(acc[mi][j][half * 2 + 1], acc[mi][j + 2][half * 2 + 1]);
          *reinterpret_cast<__nv_bfloat162*>(h_out + row * F + col) = v;
        }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int col = TcOutCol(false, col0, wn, j, at.k);
          if (col >= H) continue;
          *reinterpret_cast<float2*>(y_out + row * H + col) = make_float2(acc[mi][j][half * 2], acc[mi][j][half * 2 + 1]);
        }
      }
    }
  }
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// The shared-memory opt-in is set once per instantiation (per process: moed drives one device).
template <int BM, bool kGateUp>
cudaError_t LaunchTc(const ExpertSchedule& s, const ExpertPointers& w, const bf16* a, int H, int F, int assignments,
                     bf16* h, float* y, cudaStream_t stream) {
  static const cudaError_t opt_in = cudaFuncSetAttribute(
      TcGemmKernel<BM, kGateUp>, cudaFuncAttributeMaxDynamicSharedMemorySize, TcSmemBytes(BM));
  if (opt_in != cudaSuccess) return opt_in;
  const TcGrid g = PlanTcGrid(assignments, s.num_experts, BM, kGateUp ? F : H, kGateUp);
  if (g.ctas() > INT_MAX) return cudaErrorInvalidValue;
  TcGemmKernel<BM, kGateUp><<<static_cast<unsigned>(g.ctas()), kTcThreads, TcSmemBytes(BM), stream>>>(
      s, w, a, H, F, g.m_tiles, g.n_tiles, h, y);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchGroupedGateUpMma(const ExpertSchedule& s, const ExpertPointers& w, const bf16* x, int H, int F,
                                   int assignments, bf16* h, cudaStream_t stream) {
  if (assignments == 0) return cudaSuccess;
  if (H % 8 != 0 || F % 2 != 0 || !Aligned16(x)) return cudaErrorInvalidValue;
  if (s.tile_rows == kTcLargeRows) return LaunchTc<kTcLargeRows, true>(s, w, x, H, F, assignments, h, nullptr, stream);
  if (s.tile_rows == kTcSmallRows) return LaunchTc<kTcSmallRows, true>(s, w, x, H, F, assignments, h, nullptr, stream);
  return cudaErrorInvalidValue;
}

cudaError_t LaunchGroupedDownMma(const ExpertSchedule& s, const ExpertPointers& w, const bf16* h, int H, int F,
                                 int assignments, float* partial, cudaStream_t stream) {
  if (assignments == 0) return cudaSuccess;
  if (F % 8 != 0 || H % 2 != 0 || !Aligned16(h)) return cudaErrorInvalidValue;
  if (s.tile_rows == kTcLargeRows) return LaunchTc<kTcLargeRows, false>(s, w, h, H, F, assignments, nullptr, partial, stream);
  if (s.tile_rows == kTcSmallRows) return LaunchTc<kTcSmallRows, false>(s, w, h, H, F, assignments, nullptr, partial, stream);
  return cudaErrorInvalidValue;
}

}  // namespace moed::cuda
