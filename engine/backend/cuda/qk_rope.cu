// q/k norm + RoPE + KV-cache write kernel.
#include "engine/backend/cuda/qk_rope.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

__device__ __forceinline__ float Bias(const __nv_bfloat16* b, int i) {
  return b == nullptr ? 0.0f : __bfloat162float(b[i]);
}

// Normalises `n_heads` heads of `row` (shared memory) in place: per head over head_dim (one warp per head).
__device__ void PerHeadNorm(float* row, int n_heads, int head_dim, const __nv_bfloat16* w, float eps) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int h = warp; h < n_heads; h += nwarps) {
    float* v = row + h * head_dim;
    float ss = 0.0f;
    for (int i = lane; i < head_dim; i += 32) ss += v[i] * v[i];
    const float inv = rsqrtf(WarpSum(ss) / static_cast<float>(head_dim) + eps);
    for (int i = lane; i < head_dim; i += 32) v[i] = __bfloat162float(w[i]) * (v[i] * inv);
  }
}

// Normalises the whole `dim`-wide vector in shared memory (whole block).
__device__ void FullNorm(float* row, int dim, const __nv_bfloat16* w, float eps, float* scratch) {
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += row[i] * row[i];
  const float inv = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) row[i] = __bfloat162float(w[i]) * (row[i] * inv);
}

// Rotates `n_heads` heads in shared memory at position `pos`; one thread per (head, pair).
__device__ void Rope(float* row, int n_heads, int head_dim, const float* inv_freq, int pos) {
  const int half = head_dim / 2;
  for (int j = threadIdx.x; j < n_heads * half; j += blockDim.x) {
    const int h = j / half, i = j % half;
    const float angle = __fmul_rn(inv_freq[i], static_cast<float>(pos));
    double s, c;
    sincos(static_cast<double>(angle), &s, &c);
    float* v = row + h * head_dim;
    const float a = v[i], b = v[i + half];
    // No FMA contraction: the CPU rounds each product.
    v[i] = __fsub_rn(__fmul_rn(a, static_cast<float>(c)), __fmul_rn(b, static_cast<float>(s)));
    v[i + half] = __fadd_rn(__fmul_rn(b, static_cast<float>(c)), __fmul_rn(a, static_cast<float>(s)));
  }
}

__global__ void QkNormRopeKernel(QkRopeArgs a) {
  extern __shared__ float smem[];  // q_dim + kv_dim floats, then 33 for reductions
  const int t = blockIdx.x;
  const int q_dim = a.num_heads * a.head_dim, kv_dim = a.num_kv_heads * a.head_dim;
  float* q = smem;
  float* k = smem + q_dim;
  float* scratch = k + kv_dim;
  const float* src = a.qkv + static_cast<int64_t>(t) * (q_dim + 2 * kv_dim);
  const int64_t cache_row = a.kv_rows[t] * kv_dim;
  for (int i = threadIdx.x; i < q_dim; i += blockDim.x) q[i] = src[i] + Bias(a.q_bias, i);
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) {
    k[i] = src[q_dim + i] + Bias(a.k_bias, i);
    a.v_cache[cache_row + i] = __float2bfloat16(src[q_dim + kv_dim + i] + Bias(a.v_bias, i));
  }
  __syncthreads();
  if (a.norm == QkNormKind::kPerHead) {
    PerHeadNorm(q, a.num_heads, a.head_dim, a.q_norm, a.eps);
    PerHeadNorm(k, a.num_kv_heads, a.head_dim, a.k_norm, a.eps);
  } else if (a.norm == QkNormKind::kFull) {
    FullNorm(q, q_dim, a.q_norm, a.eps, scratch);
    FullNorm(k, kv_dim, a.k_norm, a.eps, scratch);
  }
  __syncthreads();
  const int pos = a.positions[t];
  Rope(q, a.num_heads, a.head_dim, a.inv_freq, pos);
  Rope(k, a.num_kv_heads, a.head_dim, a.inv_freq, pos);
  __syncthreads();
  float* qo = a.q_out + static_cast<int64_t>(t) * q_dim;
  for (int i = threadIdx.x; i < q_dim; i += blockDim.x) qo[i] = q[i];
  for (int i = threadIdx.x; i < kv_dim; i += blockDim.x) a.k_cache[cache_row + i] = __float2bfloat16(k[i]);
}

}  // namespace

cudaError_t LaunchQkNormRope(const QkRopeArgs& a, cudaStream_t stream) {
  if (a.tokens == 0) return cudaSuccess;
  if (a.head_dim % 2 != 0 || a.head_dim > 256 || a.inv_freq == nullptr) return cudaErrorInvalidValue;
  const size_t smem = (static_cast<size_t>(a.num_heads + a.num_kv_heads) * a.head_dim + 33) * sizeof(float);
  if (smem > 48 * 1024) {
    const cudaError_t err =
        cudaFuncSetAttribute(QkNormRopeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
  }
  QkNormRopeKernel<<<a.tokens, 256, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace moed::cuda
