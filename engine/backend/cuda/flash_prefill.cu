// Flash prefill kernel: a CTA of 4 warps takes 64 query rows of one head (16 per warp, Q fragments held in
// registers), walks the tile's keys 64 at a time through the block table (cp.async into padded shared memory, the next
// K block loading while P·V runs), and keeps each row's running max and sum in fp32 (scores in log2 units).
#include "engine/backend/cuda/flash_prefill.h"

#include <cmath>
#include <cstdint>

#include <cuda_bf16.h>

#include "engine/backend/cuda/mma_sync.cuh"

namespace moed::cuda {
namespace {

using bf16 = __nv_bfloat16;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBM = kPrefillTileRows, kBN = kPrefillTileKeys;
static_assert(kBM == kWarps * 16, "each warp owns one 16-row block of the tile");
static_assert(kBN % 16 == 0, "P·V consumes keys 16 at a time");
constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxTiles = 65535;  // gridDim.y

// Row stride (elements) of the shared Q, K and V tiles: 16 bytes of padding put the 8 rows an ldmatrix phase reads
// in 8 distinct groups of 4 banks (stride 4 words mod 32), so reads and the 16-byte cp.async writes are conflict-free.
template <int D>
__host__ __device__ constexpr int Ld() {
  return D + 8;
}
template <int D>
constexpr size_t SmemBytes() {
  return static_cast<size_t>(kBM + 2 * kBN) * Ld<D>() * sizeof(bf16);
}

// Two floats as a bf16 pair, `lo` in the low half (the lower column of an mma fragment register).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Fragment layouts (PTX ISA, mma.m16n8k16): g = lane / 4, c = 2 (lane % 4).
//   A (16×16): a0 = (g, c..c+1), a1 = (g+8, c..c+1), a2 = (g, c+8..c+9), a3 = (g+8, c+8..c+9).
//   B (16×8):  b0 = (k c..c+1, n g), b1 = (k c+8..c+9, n g).
//   C (16×8):  c0, c1 = (g, c..c+1), c2, c3 = (g+8, c..c+1).
// Q·Kᵀ: A = Q rows, B(k = d, n = key) = K[key][d]: ldmatrix of K rows (non-transposed).
// P·V:  A = P from the S accumulators (two 8-key n-tiles make one 16-key k-step), B(k = key, n = d) = V[key][d]:
//       ldmatrix.trans of V rows.
template <int D>
__global__ void __launch_bounds__(kThreads) FlashPrefillKernel(PagedAttentionArgs a,
                                                               const PrefillTile* __restrict__ tiles) {
  constexpr int LD = Ld<D>();
  constexpr int kChunks = D / 8;  // 16-byte pieces of one head row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + kBM * LD;
  bf16* sV = sK + kBN * LD;

  const int h = blockIdx.x;
  const PrefillTile tile = tiles[blockIdx.y];
  const int kvh = h / (a.num_heads / a.num_kv_heads);
  const int64_t q_dim = static_cast<int64_t>(a.num_heads) * D, kv_dim = static_cast<int64_t>(a.num_kv_heads) * D;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int window = a.sliding_window;
  const int32_t* table = a.block_tables + tile.table_offset;
  int kv_begin = 0, kv_end = 0;
  PrefillKeyRange(tile.pos0, tile.rows, window, &kv_begin, &kv_end);
  const int n_blocks = (kv_end - kv_begin + kBN - 1) / kBN;  // ≥ 1: a tile has ≥ 1 row

  // Keys n0 .. n0 + kBN - 1 of K or V (head kvh) into `s`: cp.async below kv_end, zeros past it (never a table read
  // past the sequence's blocks).
  auto load_kv = [&](bf16* s, const bf16* cache, int n0) {
    for (int i = tid; i < kBN * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks, p = n0 + r;
      bf16* dst = s + r * LD + c * 8;
      if (p < kv_end) {
        const int64_t row = static_cast<int64_t>(table[p / a.block_size]) * a.block_size + p % a.block_size;
        CpAsync16(SmemAddr(dst), cache + row * kv_dim + kvh * D + c * 8);
      } else {
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
      }
    }
  };

  load_kv(sK, a.k_cache, kv_begin);
  CpAsyncCommit();
  // Q rows × scale × log2(e) as bf16 (rows past tile.rows: zeros), so the scores come out in log2 units.
  const float qscale = a.scale * kLog2e;
  for (int i = tid; i < kBM * (D / 4); i += kThreads) {
    const int r = i / (D / 4), c = i % (D / 4);
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (r < tile.rows) {
      v = *reinterpret_cast<const float4*>(a.q + (tile.row0 + r) * q_dim + h * D + c * 4);
    }
    *reinterpret_cast<uint2*>(sQ + r * LD + c * 4) =
        make_uint2(PackBf16(v.x * qscale, v.y * qscale), PackBf16(v.z * qscale, v.w * qscale));
  }
  __syncthreads();

  const int mat = lane >> 3, mrow = lane & 7;  // ldmatrix: which matrix this lane addresses, and which row of it
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    LdMatrixX4(SmemAddr(sQ + (warp * 16 + (mat & 1) * 8 + mrow) * LD + kk * 16 + (mat >> 1) * 8), qf[kk]);
  }

  const int g = lane >> 2, tig = lane & 3;
  const int qpos[2] = {tile.pos0 + warp * 16 + g, tile.pos0 + warp * 16 + g + 8};  // this thread's two rows
  float o[D / 8][4];
#pragma unroll
  for (int jd = 0; jd < D / 8; ++jd) o[jd][0] = o[jd][1] = o[jd][2] = o[jd][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

  for (int j = 0; j < n_blocks; ++j) {
    const int n0 = kv_begin + j * kBN;
    // Groups in flight: K(j); now V(j) too.
    load_kv(sV, a.v_cache, n0);
    CpAsyncCommit();
    CpAsyncWait<1>();  // K(j) landed (this thread's part)
    __syncthreads();   // … and every thread's

    float s[kBN / 8][4];
#pragma unroll
    for (int jn = 0; jn < kBN / 8; ++jn) s[jn][0] = s[jn][1] = s[jn][2] = s[jn][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int jn = 0; jn < kBN / 8; jn += 2) {
        uint32_t b[4];
        LdMatrixX4(SmemAddr(sK + (jn * 8 + (mat >> 1) * 8 + mrow) * LD + kk * 16 + (mat & 1) * 8), b);
        Mma16816(s[jn], qf[kk], b[0], b[1]);
        Mma16816(s[jn + 1], qf[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with sK: the next K block may land there while this one finishes
    if (j + 1 < n_blocks) load_kv(sK, a.k_cache, n0 + kBN);
    CpAsyncCommit();  // possibly empty: the group count stays uniform for the waits

    if (PrefillBlockNeedsMask(n0, kv_end, tile.pos0, tile.rows, window)) {
#pragma unroll
      for (int jn = 0; jn < kBN / 8; ++jn) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int kp = n0 + jn * 8 + tig * 2 + (e & 1);
          if (kp >= kv_end || !PrefillVisible(qpos[e >> 1], kp, window)) s[jn][e] = -INFINITY;
        }
      }
    }
    // Online softmax of the thread's two rows; the 4 lanes of a quad hold one row and agree on its max.
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      float mx = -INFINITY;
#pragma unroll
      for (int jn = 0; jn < kBN / 8; ++jn) mx = fmaxf(mx, fmaxf(s[jn][2 * i], s[jn][2 * i + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[i], mx);
      const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays at 0
      const float corr = exp2f(m[i] - base);
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int jn = 0; jn < kBN / 8; ++jn) {
        s[jn][2 * i] = exp2f(s[jn][2 * i] - base);
        s[jn][2 * i + 1] = exp2f(s[jn][2 * i + 1] - base);
        sum += s[jn][2 * i] + s[jn][2 * i + 1];
      }
      l[i] = l[i] * corr + sum;  // this lane's columns only; the quad's parts are added at the end
#pragma unroll
      for (int jd = 0; jd < D / 8; ++jd) {
        o[jd][2 * i] *= corr;
        o[jd][2 * i + 1] *= corr;
      }
    }
    uint32_t pf[kBN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      pf[kk][0] = PackBf16(s[2 * kk][0], s[2 * kk][1]);
      pf[kk][1] = PackBf16(s[2 * kk][2], s[2 * kk][3]);
      pf[kk][2] = PackBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[kk][3] = PackBf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
    CpAsyncWait<1>();  // V(j) landed; K(j+1) may still be in flight
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
#pragma unroll
      for (int jd = 0; jd < D / 8; jd += 2) {
        uint32_t b[4];
        LdMatrixX4Trans(SmemAddr(sV + (kk * 16 + (mat & 1) * 8 + mrow) * LD + jd * 8 + (mat >> 1) * 8), b);
        Mma16816(o[jd], pf[kk], b[0], b[1]);
        Mma16816(o[jd + 1], pf[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // every warp is done with sV before the next V block lands there
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    const int r = warp * 16 + g + 8 * i;
    if (r >= tile.rows) continue;  // padding rows (their l may be 0)
    const float inv = 1.0f / l[i];  // > 0: a row always sees its own position
    bf16* orow = a.out + (tile.row0 + r) * q_dim + h * D;
#pragma unroll
    for (int jd = 0; jd < D / 8; ++jd) {
      *reinterpret_cast<__nv_bfloat162*>(orow + jd * 8 + tig * 2) =
          __floats2bfloat162_rn(o[jd][2 * i] * inv, o[jd][2 * i + 1] * inv);
    }
  }
}

template <int D>
cudaError_t Launch(const PagedAttentionArgs& a, const PrefillTile* tiles, int num_tiles, cudaStream_t stream) {
  // Above 48 KiB of dynamic shared memory (head_dim 128) needs the opt-in; set once per process (device 0).
  static const cudaError_t attr = cudaFuncSetAttribute(
      FlashPrefillKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(SmemBytes<D>()));
  if (attr != cudaSuccess) return attr;
  FlashPrefillKernel<D><<<dim3(a.num_heads, num_tiles), kThreads, SmemBytes<D>(), stream>>>(a, tiles);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchFlashPrefill(const PagedAttentionArgs& a, const PrefillTile* tiles, int num_tiles,
                               cudaStream_t stream) {
  if (num_tiles == 0) return cudaSuccess;
  if (!FlashPrefillSupported(a.num_heads, a.num_kv_heads, a.head_dim) || num_tiles < 0 || num_tiles > kMaxTiles ||
      a.block_size <= 0 || tiles == nullptr) {
    return cudaErrorInvalidValue;
  }
  return a.head_dim == 64 ? Launch<64>(a, tiles, num_tiles, stream) : Launch<128>(a, tiles, num_tiles, stream);
}

}  // namespace moed::cuda
