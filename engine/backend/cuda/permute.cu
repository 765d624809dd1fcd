// Permute / gather / un-permute / SwiGLU kernels of the MoE path.
#include "engine/backend/cuda/permute.h"

#include <algorithm>

#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/kernel_utils.cuh"
#include "engine/backend/cuda/router.h"

namespace moed::cuda {
namespace {

constexpr int kPermuteThreads = 1024;
constexpr int kPermuteWarps = kPermuteThreads / 32;

// Expert id of assignment i, clamped into [0, E): the router never produces another, and a bad id must not become
// an out-of-bounds shared-memory write.
__device__ __forceinline__ int ExpertOf(const PermuteArgs& a, int i) {
  return min(max(a.experts[i], 0), a.num_experts - 1);
}

// One block. Pass 1 counts assignments per expert; pass 2 walks tiles of 1024 assignments in order, ranking each
// assignment among earlier ones of its expert (warp match + per-warp counts), so ranks are in token order.
__global__ void __launch_bounds__(kPermuteThreads) PermuteKernel(PermuteArgs a) {
  __shared__ int s_routed[kMaxExperts];
  __shared__ int s_base[kMaxExperts];    // assignments of each expert seen in earlier tiles
  __shared__ int s_offset[kMaxExperts + 1];
  __shared__ int s_kept[kMaxExperts];
  __shared__ int s_tiles[kMaxExperts + 1];
  __shared__ int s_active[kMaxExperts];
  __shared__ int s_num_active;
  __shared__ int s_warp[kPermuteWarps][kMaxExperts];  // per tile: count of expert e in warp w, then exclusive scan
  const int E = a.num_experts;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    s_routed[e] = 0;
    s_base[e] = 0;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < a.assignments; i += blockDim.x) atomicAdd(&s_routed[ExpertOf(a, i)], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    s_kept[e] = static_cast<int>(min(static_cast<int64_t>(s_routed[e]), a.capacity));
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    s_num_active = BuildExpertSchedule(s_kept, E, max(a.tile_rows, 1), s_offset, s_tiles, s_active);
  }
  __syncthreads();
  for (int e = threadIdx.x; e < E; e += blockDim.x) {
    a.counts[e] = s_routed[e];
    a.counts[E + e] = s_kept[e];
    if (a.active != nullptr) a.active[e] = s_active[e];
  }
  for (int e = threadIdx.x; e <= E; e += blockDim.x) {
    a.offsets[e] = s_offset[e];
    if (a.tile_prefix != nullptr) a.tile_prefix[e] = s_tiles[e];
  }
  if (threadIdx.x == 0 && a.active != nullptr) a.active[E] = s_num_active;

  for (int tile = 0; tile < a.assignments; tile += blockDim.x) {
    const int i = tile + threadIdx.x;
    const bool valid = i < a.assignments;
    const int e = valid ? ExpertOf(a, i) : -1;
    for (int j = threadIdx.x; j < kPermuteWarps * E; j += blockDim.x) s_warp[j / E][j % E] = 0;
    __syncthreads();
    const unsigned same = __match_any_sync(kFullMask, e);
    const int rank_in_warp = __popc(same & ((1u << lane) - 1u));
    if (valid && rank_in_warp == 0) s_warp[warp][e] = __popc(same);
    __syncthreads();
    // Exclusive scan over warps per expert; the tile total goes into s_base afterwards.
    for (int x = threadIdx.x; x < E; x += blockDim.x) {
      int acc = 0;
      for (int w = 0; w < kPermuteWarps; ++w) {
        const int c = s_warp[w][x];
        s_warp[w][x] = acc;
        acc += c;
      }
      s_routed[x] = acc;            // reuse: this tile's count of expert x
    }
    __syncthreads();
    if (valid) {
      const int64_t rank = static_cast<int64_t>(s_base[e]) + s_warp[warp][e] + rank_in_warp;
      if (rank < a.capacity) {
        const int row = s_offset[e] + static_cast<int>(rank);
        a.assign_row[i] = row;
        a.row_token[row] = i / a.top_k;
      } else {
        a.assign_row[i] = -1;
      }
    }
    __syncthreads();
    for (int x = threadIdx.x; x < E; x += blockDim.x) s_base[x] += s_routed[x];
    __syncthreads();
  }
}

__global__ void GatherRowsKernel(const __nv_bfloat16* src, const int32_t* index, int dim, __nv_bfloat16* dst) {
  const int64_t r = blockIdx.x;
  const __nv_bfloat16* s = src + static_cast<int64_t>(index[r]) * dim;
  __nv_bfloat16* d = dst + r * dim;
  if (dim % 8 == 0) {  // 16-byte vectors
    const uint4* s4 = reinterpret_cast<const uint4*>(s);
    uint4* d4 = reinterpret_cast<uint4*>(d);
    for (int i = threadIdx.x; i < dim / 8; i += blockDim.x) d4[i] = s4[i];
    return;
  }
  for (int i = threadIdx.x; i < dim; i += blockDim.x) d[i] = s[i];
}

__global__ void UnpermuteKernel(const float* expert_out, const int32_t* assign_row, const float* weights, int top_k,
                                int dim, const float* shared_out, const float* shared_gate, float* out) {
  const int64_t t = blockIdx.x;
  const int32_t* rows = assign_row + t * top_k;
  const float* w = weights + t * top_k;
  float g = 0.0f;
  if (shared_out != nullptr) g = shared_gate == nullptr ? 1.0f : 1.0f / (1.0f + expf(-shared_gate[t]));
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = shared_out != nullptr ? g * shared_out[t * dim + i] : 0.0f;
    for (int k = 0; k < top_k; ++k) {
      if (rows[k] >= 0) v += w[k] * expert_out[static_cast<int64_t>(rows[k]) * dim + i];
    }
    out[t * dim + i] = v;
  }
}

__global__ void SwiGluKernel(const __nv_bfloat16* gate_up, int64_t rows, int ffn, __nv_bfloat16* h) {
  const int64_t n = rows * ffn;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = j / ffn, c = j % ffn;
    const float g = __bfloat162float(gate_up[r * 2 * ffn + c]);
    const float u = __bfloat162float(gate_up[r * 2 * ffn + ffn + c]);
    h[j] = __float2bfloat16(g / (1.0f + expf(-g)) * u);
  }
}

}  // namespace

cudaError_t LaunchPermute(const PermuteArgs& a, cudaStream_t stream) {
  if (a.num_experts < 1 || a.num_experts > kMaxExperts || a.top_k < 1) return cudaErrorInvalidValue;
  PermuteKernel<<<1, kPermuteThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const __nv_bfloat16* src, const int32_t* index, int rows, int dim, __nv_bfloat16* dst,
                             cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  GatherRowsKernel<<<rows, 128, 0, stream>>>(src, index, dim, dst);
  return cudaGetLastError();
}

cudaError_t LaunchUnpermute(const float* expert_out, const int32_t* assign_row, const float* weights, int tokens,
                            int top_k, int dim, const float* shared_out, const float* shared_gate, float* out,
                            cudaStream_t stream) {
  if (tokens == 0) return cudaSuccess;
  UnpermuteKernel<<<tokens, 256, 0, stream>>>(expert_out, assign_row, weights, top_k, dim, shared_out, shared_gate,
                                              out);
  return cudaGetLastError();
}

cudaError_t LaunchSwiGlu(const __nv_bfloat16* gate_up, int64_t rows, int ffn, __nv_bfloat16* h,
                         cudaStream_t stream) {
  const int64_t n = rows * ffn;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = std::min<int64_t>((n + 255) / 256, 132 * 16);
  SwiGluKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(gate_up, rows, ffn, h);
  return cudaGetLastError();
}

}  // namespace moed::cuda
