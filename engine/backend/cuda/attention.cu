// Paged attention kernel: one block per (token, query head); warps split the positions, lanes split head_dim;
// online softmax per warp, merged across warps at the end.
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 8;  // head_dim ≤ 256

__global__ void __launch_bounds__(kWarps * 32) PagedAttentionKernel(PagedAttentionArgs a) {
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][256];
  const int i = blockIdx.x / a.num_heads, h = blockIdx.x % a.num_heads;
  const int t = a.rows != nullptr ? a.rows[i] : i;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int hd = a.head_dim, q_dim = a.num_heads * hd, kv_dim = a.num_kv_heads * hd;
  const int kvh = h / (a.num_heads / a.num_kv_heads);
  const int pos = a.positions[t];
  const int lo = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  const int32_t* table = a.block_tables + a.table_offsets[t];

  float q[kMaxPerLane], acc[kMaxPerLane];
  const float* qrow = a.q + static_cast<int64_t>(t) * q_dim + h * hd;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    q[j] = d < hd ? qrow[d] * a.scale : 0.0f;
    acc[j] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int p = lo + warp; p <= pos; p += kWarps) {
    const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
    const __nv_bfloat16* krow = a.k_cache + row * kv_dim + kvh * hd;
    const __nv_bfloat16* vrow = a.v_cache + row * kv_dim + kvh * hd;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) s += q[j] * __bfloat162float(krow[d]);
    }
    s = WarpSum(s);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new);
    const float w = __expf(s - m_new);
    l = l * corr + w;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; ++j) {
      const int d = lane + 32 * j;
      acc[j] = acc[j] * corr + (d < hd ? w * __bfloat162float(vrow[d]) : 0.0f);
    }
    m = m_new;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < kMaxPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < hd) s_acc[warp][d] = acc[j];
  }
  __syncthreads();
  float m_all = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m_all = fmaxf(m_all, s_m[w]);
  float l_all = 0.0f;
  for (int w = 0; w < kWarps; ++w) l_all += s_m[w] == -INFINITY ? 0.0f : s_l[w] * __expf(s_m[w] - m_all);
  __nv_bfloat16* orow = a.out + static_cast<int64_t>(t) * q_dim + h * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float v = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      if (s_m[w] != -INFINITY) v += s_acc[w][d] * __expf(s_m[w] - m_all);
    }
    orow[d] = __float2bfloat16(v / l_all);
  }
}

}  // namespace

cudaError_t LaunchPagedAttention(const PagedAttentionArgs& a, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim > 256 || a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0) return cudaErrorInvalidValue;
  PagedAttentionKernel<<<a.tokens * a.num_heads, kWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace moed::cuda
