// Flash-decoding kernels: split (one CTA per row, KV head and context share; a group of hd/8 lanes per position,
// 16-byte loads, per-group online softmax merged in shared memory) and reduce (one CTA per row and query head).
#include "engine/backend/cuda/flash_decode.h"

#include <algorithm>

#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kWarps = 4;
constexpr int kMaxGroups = kWarps * 32 / 4;  // head_dim ≥ 32 → ≥ 4 lanes per position

// Partial results of split `sp` of (computed row i — an index into a.rows when set —, head h): o (head_dim)
// unnormalised, then m and l.
__device__ __forceinline__ float* PartialOf(float* ws, int i, int h, int sp, int heads, int splits, int hd) {
  return ws + ((static_cast<int64_t>(i) * heads + h) * splits + sp) * (hd + 2);
}

__global__ void __launch_bounds__(kWarps * 32) FlashSplitKernel(PagedAttentionArgs a, int splits, float* ws) {
  __shared__ float s_q[kFlashMaxGroup][256];
  __shared__ float s_acc[kFlashMaxGroup][kWarps * 32 * 8];  // [g][group * hd + d], groups × hd ≤ 1024
  __shared__ float s_m[kMaxGroups][kFlashMaxGroup], s_l[kMaxGroups][kFlashMaxGroup];
  const int kvh_count = a.num_kv_heads, hd = a.head_dim, G = a.num_heads / kvh_count;
  const int ri = blockIdx.x / kvh_count, kvh = blockIdx.x % kvh_count, sp = blockIdx.y;
  const int t = a.rows != nullptr ? a.rows[ri] : ri;  // partials are indexed by `ri`, the rest by `t`
  const int q_dim = a.num_heads * hd, kv_dim = kvh_count * hd;
  const int pos = a.positions[t];
  const int lo = a.sliding_window > 0 ? max(0, pos - a.sliding_window + 1) : 0;
  int p0 = 0, p1 = 0;
  FlashSplitRange(lo, pos, splits, sp, &p0, &p1);
  const int32_t* table = a.block_tables + a.table_offsets[t];

  for (int i = threadIdx.x; i < G * hd; i += blockDim.x) {
    const int g = i / hd, d = i % hd;
    s_q[g][d] = a.q[static_cast<int64_t>(t) * q_dim + (kvh * G + g) * hd + d] * a.scale;
  }
  __syncthreads();
  const int lpr = hd / 8;  // lanes per position, a power of two in [4, 32]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / lpr, sl = lane % lpr, per_warp = 32 / lpr;
  const int group = warp * per_warp + sub, groups = kWarps * per_warp;
  float m[kFlashMaxGroup], l[kFlashMaxGroup], acc[kFlashMaxGroup][8];
#pragma unroll
  for (int g = 0; g < kFlashMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[g][i] = 0.0f;
  }
  // Warp-uniform trip count (the shuffles need every lane): a group past p1 computes but does not accumulate.
  for (int pb = p0 + warp * per_warp; pb < p1; pb += groups) {
    const int p = pb + sub;
    const bool valid = p < p1;
    uint4 k4 = make_uint4(0, 0, 0, 0), v4 = k4;
    if (valid) {
      const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
      k4 = __ldg(reinterpret_cast<const uint4*>(a.k_cache + row * kv_dim + kvh * hd + sl * 8));
      v4 = __ldg(reinterpret_cast<const uint4*>(a.v_cache + row * kv_dim + kvh * hd + sl * 8));
    }
    float k[8], v[8];
    const __nv_bfloat162* k2 = reinterpret_cast<const __nv_bfloat162*>(&k4);
    const __nv_bfloat162* v2 = reinterpret_cast<const __nv_bfloat162*>(&v4);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 kf = __bfloat1622float2(k2[i]), vf = __bfloat1622float2(v2[i]);
      k[2 * i] = kf.x;
      k[2 * i + 1] = kf.y;
      v[2 * i] = vf.x;
      v[2 * i + 1] = vf.y;
    }
#pragma unroll
    for (int g = 0; g < kFlashMaxGroup; ++g) {
      if (g >= G) break;
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) s += s_q[g][sl * 8 + i] * k[i];
      for (int o = lpr / 2; o > 0; o >>= 1) s += __shfl_xor_sync(kFullMask, s, o);
      if (!valid) continue;
      const float m_new = fmaxf(m[g], s);
      const float corr = __expf(m[g] - m_new), w = __expf(s - m_new);
      l[g] = l[g] * corr + w;
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[g][i] = acc[g][i] * corr + w * v[i];
      m[g] = m_new;
    }
  }
  // Merge the position groups of the CTA.
#pragma unroll
  for (int g = 0; g < kFlashMaxGroup; ++g) {
    if (g >= G) break;
    if (sl == 0) {
      s_m[group][g] = m[g];
      s_l[group][g] = l[g];
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) s_acc[g][group * hd + sl * 8 + i] = acc[g][i];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * (hd + 2); i += blockDim.x) {
    const int g = i / (hd + 2), d = i % (hd + 2);
    float m_all = -INFINITY;
    for (int q = 0; q < groups; ++q) m_all = fmaxf(m_all, s_m[q][g]);
    float v = 0.0f;
    if (d == hd) {
      v = m_all;
    } else {
      for (int q = 0; q < groups; ++q) {
        if (s_m[q][g] == -INFINITY) continue;
        const float c = __expf(s_m[q][g] - m_all);
        v += c * (d < hd ? s_acc[g][q * hd + d] : s_l[q][g]);
      }
    }
    // Layout: o[0..hd), m at hd, l at hd + 1.
    PartialOf(ws, ri, kvh * G + g, sp, a.num_heads, splits, hd)[d] = v;
  }
}

__global__ void FlashReduceKernel(PagedAttentionArgs a, int splits, const float* ws) {
  const int ri = blockIdx.x / a.num_heads, h = blockIdx.x % a.num_heads, hd = a.head_dim;
  const int t = a.rows != nullptr ? a.rows[ri] : ri;
  const float* base = ws + (static_cast<int64_t>(ri) * a.num_heads + h) * splits * (hd + 2);
  float m_all = -INFINITY;
  for (int sp = 0; sp < splits; ++sp) m_all = fmaxf(m_all, base[sp * (hd + 2) + hd]);
  float l_all = 0.0f;
  for (int sp = 0; sp < splits; ++sp) {
    const float m = base[sp * (hd + 2) + hd];
    if (m != -INFINITY) l_all += base[sp * (hd + 2) + hd + 1] * __expf(m - m_all);
  }
  bf16* orow = a.out + static_cast<int64_t>(t) * a.num_heads * hd + h * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float v = 0.0f;
    for (int sp = 0; sp < splits; ++sp) {
      const float m = base[sp * (hd + 2) + hd];
      if (m != -INFINITY) v += base[sp * (hd + 2) + d] * __expf(m - m_all);
    }
    orow[d] = __float2bfloat16(v / l_all);
  }
}

}  // namespace

size_t FlashDecodeWorkspaceBytes(int rows, int num_heads, int head_dim, int splits) {
  return static_cast<size_t>(std::max(rows, 1)) * num_heads * splits * (head_dim + 2) * sizeof(float);
}

bool FlashDecodeSupported(int num_heads, int num_kv_heads, int head_dim) {
  const bool pow2 = head_dim >= 32 && head_dim <= 256 && (head_dim & (head_dim - 1)) == 0;
  return pow2 && num_kv_heads > 0 && num_heads % num_kv_heads == 0 && num_heads / num_kv_heads <= kFlashMaxGroup;
}

cudaError_t LaunchFlashDecode(const PagedAttentionArgs& a, int splits, void* workspace, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (!FlashDecodeSupported(a.num_heads, a.num_kv_heads, a.head_dim)) return LaunchPagedAttention(a, stream);
  if (splits < 1 || splits > kFlashMaxSplits || workspace == nullptr) return cudaErrorInvalidValue;
  float* ws = static_cast<float*>(workspace);
  FlashSplitKernel<<<dim3(a.tokens * a.num_kv_heads, splits), kWarps * 32, 0, stream>>>(a, splits, ws);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  FlashReduceKernel<<<a.tokens * a.num_heads, 128, 0, stream>>>(a, splits, ws);
  return cudaGetLastError();
}

}  // namespace moed::cuda
