// Grouped expert kernels: streaming GEMV (8 warps, one output column per warp at a time, 16-byte loads, rows in
// register chunks of 4), WMMA bf16 tiles (64×64×32, two shared-memory stages; the reference of the tensor-core
// kernel in grouped_gemm_tc.cu) with the SwiGLU epilogue, and the deterministic split-K + weighted combine. Index
// math in host/moe_schedule.h.
#include "engine/backend/cuda/grouped_moe.h"

#include <mma.h>

#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/kernel_utils.cuh"
#include "engine/backend/cuda/swiglu.cuh"

namespace moed::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kGemvWarps = 8;
constexpr int kRowChunk = 4;
static_assert(kGemvCols % kGemvWarps == 0, "whole columns per warp");
static_assert(kGemvKStep == 32 * 8, "a warp pass is 32 lanes × 8 bf16");

__device__ __forceinline__ uint4 Load16(const bf16* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// acc + Σ a[i]·b[i] over 8 bf16 pairs, fp32.
__device__ __forceinline__ float Dot8(const uint4& a, const uint4& b, float acc) {
  const __nv_bfloat162* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __bfloat1622float2(pa[i]), fb = __bfloat1622float2(pb[i]);
    acc = fmaf(fa.x, fb.x, acc);
    acc = fmaf(fa.y, fb.y, acc);
  }
  return acc;
}

// The slot's expert, or -1 when the slot is past the active count.
__device__ __forceinline__ int SlotExpert(const ExpertSchedule& s) {
  const int slot = blockIdx.z;
  return slot < s.active[s.num_experts] ? s.active[slot] : -1;
}

__global__ void __launch_bounds__(kGemvWarps * 32)
    GateUpGemvKernel(ExpertSchedule s, ExpertPointers w, const bf16* __restrict__ x, int H, int F,
                     bf16* __restrict__ h) {
  const int e = SlotExpert(s);
  if (e < 0) return;
  const int r0 = s.offsets[e], n = s.offsets[e + 1] - r0;
  const bf16* W = w.gate_up[e];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int c_end = min(F, static_cast<int>(blockIdx.x + 1) * kGemvCols);
  for (int c = blockIdx.x * kGemvCols + warp; c < c_end; c += kGemvWarps) {
    const bf16* wg = W + static_cast<int64_t>(c) * H;
    const bf16* wu = W + static_cast<int64_t>(F + c) * H;
    for (int rc = 0; rc < n; rc += kRowChunk) {
      const bf16* xr[kRowChunk];
#pragma unroll
      for (int j = 0; j < kRowChunk; ++j) {
        xr[j] = x + static_cast<int64_t>(s.row_token[r0 + min(rc + j, n - 1)]) * H;
      }
      float ag[kRowChunk] = {}, au[kRowChunk] = {};
#pragma unroll 4
      for (int k = lane * 8; k < H; k += kGemvKStep) {
        const uint4 g4 = Load16(wg + k), u4 = Load16(wu + k);
#pragma unroll
        for (int j = 0; j < kRowChunk; ++j) {
          const uint4 x4 = Load16(xr[j] + k);
          ag[j] = Dot8(g4, x4, ag[j]);
          au[j] = Dot8(u4, x4, au[j]);
        }
      }
#pragma unroll
      for (int j = 0; j < kRowChunk; ++j) {
        ag[j] = WarpSum(ag[j]);
        au[j] = WarpSum(au[j]);
        if (lane == 0 && rc + j < n) h[static_cast<int64_t>(r0 + rc + j) * F + c] = SwiGluBf16(ag[j], au[j]);
      }
    }
  }
}

__global__ void __launch_bounds__(kGemvWarps * 32)
    DownGemvKernel(ExpertSchedule s, ExpertPointers w, const bf16* __restrict__ hbuf, int H, int F, int k_per_split,
                   int assignments, float* __restrict__ partial) {
  const int e = SlotExpert(s);
  if (e < 0) return;
  const int r0 = s.offsets[e], n = s.offsets[e + 1] - r0;
  const int k0 = blockIdx.y * k_per_split, k1 = min(F, k0 + k_per_split);
  float* out = partial + static_cast<int64_t>(blockIdx.y) * assignments * H;
  const bf16* W = w.down[e];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int c_end = min(H, static_cast<int>(blockIdx.x + 1) * kGemvCols);
  for (int c = blockIdx.x * kGemvCols + warp; c < c_end; c += kGemvWarps) {
    const bf16* wd = W + static_cast<int64_t>(c) * F;
    for (int rc = 0; rc < n; rc += kRowChunk) {
      const bf16* xr[kRowChunk];
#pragma unroll
      for (int j = 0; j < kRowChunk; ++j) xr[j] = hbuf + static_cast<int64_t>(r0 + min(rc + j, n - 1)) * F;
      float acc[kRowChunk] = {};
#pragma unroll 4
      for (int k = k0 + lane * 8; k < k1; k += kGemvKStep) {
        const uint4 w4 = Load16(wd + k);
#pragma unroll
        for (int j = 0; j < kRowChunk; ++j) acc[j] = Dot8(w4, Load16(xr[j] + k), acc[j]);
      }
#pragma unroll
      for (int j = 0; j < kRowChunk; ++j) {
        acc[j] = WarpSum(acc[j]);
        if (lane == 0 && rc + j < n) out[static_cast<int64_t>(r0 + rc + j) * H + c] = acc[j];
      }
    }
  }
}

// --- Tensor-core tiles (WMMA bf16 → fp32; sm_80+). ---
constexpr int kBM = kMmaTileRows, kBN = kMmaTileCols, kBK = 32, kLd = kBK + 8, kLdC = kBN + 4;
constexpr int kMmaThreads = 128;  // 4 warps, 2×2, each 32×32 of the tile
static_assert(kBM * kBK / 8 == 2 * kMmaThreads, "two 16-byte chunks of A and of B per thread and k-step");

struct MmaSmem {
  __align__(128) bf16 a[2][kBM][kLd];
  __align__(128) bf16 b[2][kBN][kLd];
  __align__(128) float c[kBM][kLdC];
};

// One tile of one expert: rows [m0, m0+64) of the expert's range, 64 B rows (kGateUp: 32 gate rows c0.. and the
// matching 32 up rows F+c0..; else 64 down rows n0..). A rows come from x through row_token (kGateUp) or from h.
template <bool kGateUp>
__global__ void __launch_bounds__(kMmaThreads)
    GroupedMmaKernel(ExpertSchedule s, ExpertPointers w, const bf16* __restrict__ a_src, int H, int F,
                     bf16* __restrict__ h_out, float* __restrict__ y_out) {
  __shared__ MmaSmem sm;
  const int E = s.num_experts, tile = blockIdx.x;
  if (tile >= s.tile_prefix[E]) return;
  const int e = ExpertOfTile(s.tile_prefix, E, tile);
  const int r0 = s.offsets[e], n = s.offsets[e + 1] - r0;
  const int m0 = (tile - s.tile_prefix[e]) * kBM;
  const int K = kGateUp ? H : F;
  const int col0 = blockIdx.y * (kGateUp ? kBN / 2 : kBN);
  const bf16* W = kGateUp ? w.gate_up[e] : w.down[e];
  const int tid = threadIdx.x, warp = tid >> 5, wm = warp >> 1, wn = warp & 1;

  const bf16* a_row[2];
  const bf16* b_row[2];
  int chunk[2];
  bool a_ok[2], b_ok[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int idx = tid + i * kMmaThreads, row = idx >> 2;
    chunk[i] = (idx & 3) * 8;
    const int m = m0 + row;
    a_ok[i] = m < n;
    const int64_t src = a_ok[i] ? (kGateUp ? s.row_token[r0 + m] : r0 + m) : 0;
    a_row[i] = a_src + src * K;
    int wrow;
    if (kGateUp) {
      const int col = col0 + (row & 31);
      b_ok[i] = col < F;
      wrow = row < 32 ? col : F + col;
    } else {
      wrow = col0 + row;
      b_ok[i] = wrow < H;
    }
    b_row[i] = W + static_cast<int64_t>(b_ok[i] ? wrow : 0) * K;
  }
  uint4 ra[2], rb[2];
  const uint4 zero = make_uint4(0, 0, 0, 0);
  auto load = [&](int k) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const bool in_k = k + chunk[i] < K;
      ra[i] = a_ok[i] && in_k ? Load16(a_row[i] + k + chunk[i]) : zero;
      rb[i] = b_ok[i] && in_k ? Load16(b_row[i] + k + chunk[i]) : zero;
    }
  };
  auto store = [&](int st) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = (tid + i * kMmaThreads) >> 2;
      *reinterpret_cast<uint4*>(&sm.a[st][row][chunk[i]]) = ra[i];
      *reinterpret_cast<uint4*>(&sm.b[st][row][chunk[i]]) = rb[i];
    }
  };

  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  }
  load(0);
  store(0);
  __syncthreads();
  int st = 0;
  for (int k = 0; k < K; k += kBK, st ^= 1) {
    const bool more = k + kBK < K;
    if (more) load(k + kBK);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &sm.a[st][wm * 32 + i * 16][kk], kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], &sm.b[st][wn * 32 + j * 16][kk], kLd);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
    }
    if (more) store(st ^ 1);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(&sm.c[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kLdC, wmma::mem_row_major);
    }
  }
  __syncthreads();
  if (kGateUp) {
    for (int idx = tid; idx < kBM * (kBN / 2); idx += kMmaThreads) {
      const int i = idx / (kBN / 2), j = idx % (kBN / 2), m = m0 + i, col = col0 + j;
      if (m < n && col < F) h_out[static_cast<int64_t>(r0 + m) * F + col] = SwiGluBf16(sm.c[i][j], sm.c[i][kBN / 2 + j]);
    }
  } else {
    for (int idx = tid; idx < kBM * kBN; idx += kMmaThreads) {
      const int i = idx / kBN, j = idx % kBN, m = m0 + i, col = col0 + j;
      if (m < n && col < H) y_out[static_cast<int64_t>(r0 + m) * H + col] = sm.c[i][j];
    }
  }
}

__global__ void CombineKernel(const float* __restrict__ partial, int splits, int64_t split_stride,
                              const int32_t* __restrict__ assign_row, const float* __restrict__ weights, int top_k,
                              int H, const float* __restrict__ shared_out, const float* __restrict__ shared_gate,
                              float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int32_t* rows = assign_row + t * top_k;
  const float* w = weights + t * top_k;
  float g = 0.0f;
  if (shared_out != nullptr) g = shared_gate == nullptr ? 1.0f : 1.0f / (1.0f + expf(-shared_gate[t]));
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = shared_out != nullptr ? g * shared_out[t * H + i] : 0.0f;
    for (int k = 0; k < top_k; ++k) {
      const int r = rows[k];
      if (r < 0) continue;
      float y = 0.0f;
      for (int sp = 0; sp < splits; ++sp) y += partial[sp * split_stride + static_cast<int64_t>(r) * H + i];
      v += w[k] * y;
    }
    out[t * H + i] = v;
  }
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

cudaError_t LaunchGroupedGateUpGemv(const ExpertSchedule& s, const ExpertPointers& w, const bf16* x, int H, int F,
                                    int assignments, bf16* h, cudaStream_t stream) {
  if (assignments == 0) return cudaSuccess;
  if (H % 8 != 0 || !Aligned16(x)) return cudaErrorInvalidValue;
  const GemvPlan p = PlanGemv(assignments, s.num_experts, F, H, 0, /*allow_split=*/false);
  GateUpGemvKernel<<<dim3(p.col_blocks, 1, p.slots), kGemvWarps * 32, 0, stream>>>(s, w, x, H, F, h);
  return cudaGetLastError();
}

cudaError_t LaunchGroupedDownGemv(const ExpertSchedule& s, const ExpertPointers& w, const bf16* h, int H, int F,
                                  int assignments, int sm_count, float* partial, int* splits, cudaStream_t stream) {
  *splits = 1;
  if (assignments == 0) return cudaSuccess;
  if (F % 8 != 0 || !Aligned16(h)) return cudaErrorInvalidValue;
  const GemvPlan p = PlanGemv(assignments, s.num_experts, H, F, sm_count, /*allow_split=*/true);
  *splits = p.splits;
  DownGemvKernel<<<dim3(p.col_blocks, p.splits, p.slots), kGemvWarps * 32, 0, stream>>>(s, w, h, H, F,
                                                                                          p.k_per_split, assignments,
                                                                                          partial);
  return cudaGetLastError();
}

cudaError_t LaunchGroupedGateUpWmma(const ExpertSchedule& s, const ExpertPointers& w, const bf16* x, int H, int F,
                                   int assignments, bf16* h, cudaStream_t stream) {
  if (assignments == 0) return cudaSuccess;
  if (H % 8 != 0 || !Aligned16(x) || s.tile_rows != kBM) return cudaErrorInvalidValue;
  const dim3 grid(MaxTiles(assignments, s.num_experts, kBM), CeilDiv(F, kBN / 2));
  GroupedMmaKernel<true><<<grid, kMmaThreads, 0, stream>>>(s, w, x, H, F, h, nullptr);
  return cudaGetLastError();
}

cudaError_t LaunchGroupedDownWmma(const ExpertSchedule& s, const ExpertPointers& w, const bf16* h, int H, int F,
                                 int assignments, float* partial, cudaStream_t stream) {
  if (assignments == 0) return cudaSuccess;
  if (F % 8 != 0 || !Aligned16(h) || s.tile_rows != kBM) return cudaErrorInvalidValue;
  const dim3 grid(MaxTiles(assignments, s.num_experts, kBM), CeilDiv(H, kBN));
  GroupedMmaKernel<false><<<grid, kMmaThreads, 0, stream>>>(s, w, h, H, F, nullptr, partial);
  return cudaGetLastError();
}

cudaError_t LaunchCombine(const float* partial, int splits, int assignments, const int32_t* assign_row,
                          const float* weights, int tokens, int top_k, int H, const float* shared_out,
                          const float* shared_gate, float* out, cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  CombineKernel<<<tokens, 256, 0, stream>>>(partial, splits, static_cast<int64_t>(assignments) * H, assign_row,
                                            weights, top_k, H, shared_out, shared_gate, out);
  return cudaGetLastError();
}

}  // namespace moed::cuda
