// PagedAttentionFast: per-ISA work-item loops (scalar, AVX2+FMA, AVX-512 with per-function target attributes)
// and the split of (row, kv head) items across threads.
#include "engine/backend/cpu/kernels/attention_fast.h"

// GCC 12's _mm512_undefined_* (self-initialised on purpose) trips -W(maybe-)uninitialized inside its own headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "engine/backend/cpu/kernels/exp_avx512.h"
#include "engine/backend/cpu/kernels/reduce_avx512.h"

namespace moed::cpu {
namespace kernels {
namespace {

// The positions one row attends to.
struct Span {
  int32_t lo = 0;
  int32_t len = 0;
};
inline Span SpanOf(const QueryRow& row, int sliding_window) {
  const int32_t lo = sliding_window > 0 ? std::max(0, row.pos - sliding_window + 1) : 0;
  return {lo, row.pos - lo + 1};
}

// scores (len) ← exp(scores − max); returns 1 / Σ.
inline float ExpNormalizer(float* scores, int32_t len) {
  const float m = *std::max_element(scores, scores + len);
  float sum = 0.0f;
  for (int32_t j = 0; j < len; ++j) {
    scores[j] = std::exp(scores[j] - m);
    sum += scores[j];
  }
  return 1.0f / sum;
}

}  // namespace

void AttendScalar(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* /*inv*/) {
  const int hd = a.kv.head_dim, kvh = a.kv.num_kv_heads, group = a.num_heads / kvh;
  const int64_t q_stride = static_cast<int64_t>(a.num_heads) * hd;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = item / kvh;
    const int h = static_cast<int>(item % kvh);
    const Span sp = SpanOf(a.rows[r], a.sliding_window);
    const int64_t head_off = static_cast<int64_t>(h) * hd;
    for (int g = 0; g < group; ++g) {
      const float* qh = a.q + r * q_stride + static_cast<int64_t>(h * group + g) * hd;
      float* s = scores + static_cast<int64_t>(g) * sp.len;
      for (int32_t j = 0; j < sp.len; ++j) {
        const float* kj = a.kv.k + a.kv.Offset(a.rows[r].block_table, sp.lo + j) + head_off;
        float acc = 0.0f;
        for (int d = 0; d < hd; ++d) acc += qh[d] * kj[d];
        s[j] = acc * a.scale;
      }
      const float inv = ExpNormalizer(s, sp.len);
      float* o = a.out + r * q_stride + static_cast<int64_t>(h * group + g) * hd;
      std::fill(o, o + hd, 0.0f);
      for (int32_t j = 0; j < sp.len; ++j) {
        const float* vj = a.kv.v + a.kv.Offset(a.rows[r].block_table, sp.lo + j) + head_off;
        for (int d = 0; d < hd; ++d) o[d] += s[j] * vj[d];
      }
      for (int d = 0; d < hd; ++d) o[d] *= inv;
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)

__attribute__((target("avx2,fma"))) void AttendAvx2(const AttendArgs& a, int64_t begin, int64_t end,
                                                     float* scores, float* inv) {
  const int hd = a.kv.head_dim, kvh = a.kv.num_kv_heads, group = a.num_heads / kvh;
  const int hd8 = hd - hd % 8;
  const int64_t q_stride = static_cast<int64_t>(a.num_heads) * hd;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = item / kvh;
    const int h = static_cast<int>(item % kvh);
    const Span sp = SpanOf(a.rows[r], a.sliding_window);
    const int64_t head_off = static_cast<int64_t>(h) * hd;
    const float* q0 = a.q + r * q_stride + static_cast<int64_t>(h * group) * hd;
    for (int32_t j = 0; j < sp.len; ++j) {  // one K row serves the whole group
      const float* kj = a.kv.k + a.kv.Offset(a.rows[r].block_table, sp.lo + j) + head_off;
      for (int g = 0; g < group; ++g) {
        const float* qh = q0 + static_cast<int64_t>(g) * hd;
        __m256 acc = _mm256_setzero_ps();
        for (int d = 0; d < hd8; d += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + d), _mm256_loadu_ps(kj + d), acc);
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        float s = _mm_cvtss_f32(s4);
        for (int d = hd8; d < hd; ++d) s += qh[d] * kj[d];
        scores[static_cast<int64_t>(g) * sp.len + j] = s * a.scale;
      }
    }
    for (int g = 0; g < group; ++g) inv[g] = ExpNormalizer(scores + static_cast<int64_t>(g) * sp.len, sp.len);
    float* o0 = a.out + r * q_stride + static_cast<int64_t>(h * group) * hd;
    std::fill(o0, o0 + static_cast<int64_t>(group) * hd, 0.0f);
    for (int32_t j = 0; j < sp.len; ++j) {
      const float* vj = a.kv.v + a.kv.Offset(a.rows[r].block_table, sp.lo + j) + head_off;
      for (int g = 0; g < group; ++g) {
        const float p = scores[static_cast<int64_t>(g) * sp.len + j];
        const __m256 pv = _mm256_set1_ps(p);
        float* o = o0 + static_cast<int64_t>(g) * hd;
        for (int d = 0; d < hd8; d += 8) {
          _mm256_storeu_ps(o + d, _mm256_fmadd_ps(pv, _mm256_loadu_ps(vj + d), _mm256_loadu_ps(o + d)));
        }
        for (int d = hd8; d < hd; ++d) o[d] += p * vj[d];
      }
    }
    for (int g = 0; g < group; ++g) {
      float* o = o0 + static_cast<int64_t>(g) * hd;
      for (int d = 0; d < hd; ++d) o[d] *= inv[g];
    }
  }
}

#define MOED_ATTN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace {

MOED_ATTN_AVX512 inline __mmask16 ChunkMask(int hd, int d) {
  return hd - d >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (hd - d)) - 1);
}

// 16 floats at p, or the first ones under mask m (the rest 0). kWhole: every chunk is whole (head_dim % 16 == 0)
// and the load is a plain one — masked loads ran several times slower here even with a full mask.
template <bool kWhole>
MOED_ATTN_AVX512 inline __m512 Load16(__mmask16 m, const float* p) {
  if constexpr (kWhole) {
    return _mm512_loadu_ps(p);
  } else {
    return _mm512_maskz_loadu_ps(m, p);
  }
}

// Walks one sequence's positions through its block table in order without dividing per position: Row() is the cache
// row of the current position (K or V of `base`, which includes the head offset). A block's table entry is read only
// when a position in it is (the table covers the span, not one past it).
struct Cursor {
  const KvLayerView* kv;
  const int32_t* table;
  const float* base;
  int32_t block, within;
  const float* row = nullptr;  // null: not yet looked up in the table
  Cursor(const KvLayerView& v, const QueryRow& r, const float* b, int32_t pos)
      : kv(&v), table(r.block_table), base(b), block(pos / v.block_size), within(pos % v.block_size) {}
  const float* Row() {
    if (row == nullptr) row = base + (static_cast<int64_t>(table[block]) * kv->block_size + within) * kv->row_stride;
    return row;
  }
  void Next() {
    if (++within == kv->block_size) {
      within = 0;
      ++block;
      row = nullptr;
    } else if (row != nullptr) {
      row += kv->row_stride;
    }
  }
};

// s[j] = scale · q·k_j for j < len (keys from position lo), where each q·k_j is the sum _mm512_reduce_add_ps gives of
// one accumulator fed 16 dimensions per FMA in order: 16 keys at a time, reduced together by ReduceAdd16 (bitwise the
// same sums), the tail one key at a time.
template <bool kWhole>
MOED_ATTN_AVX512 void Scores(const AttendArgs& a, const QueryRow& row, int32_t lo, int32_t len, int64_t head_off,
                             const float* qh, float* s) {
  const int hd = a.kv.head_dim;
  const __m512 scale = _mm512_set1_ps(a.scale);
  Cursor key(a.kv, row, a.kv.k + head_off, lo);
  int32_t j = 0;
  for (; j + 16 <= len; j += 16) {
    const float* kp[16];
    for (int i = 0; i < 16; ++i, key.Next()) kp[i] = key.Row();
    __m512 acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
      const __mmask16 m = ChunkMask(hd, d);
      const __m512 qv = Load16<kWhole>(m, qh + d);
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(qv, Load16<kWhole>(m, kp[i] + d), acc[i]);
    }
    // ReduceAdd16's lane 4·m + i sums its input 4·i + m: feed key 4·m + i there, so lane L holds key L.
    __m512 in[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) in[i] = acc[4 * (i % 4) + i / 4];
    _mm512_storeu_ps(s + j, _mm512_mul_ps(ReduceAdd16(in), scale));
  }
  for (; j < len; ++j, key.Next()) {
    __m512 acc = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
      const __mmask16 m = ChunkMask(hd, d);
      acc = _mm512_fmadd_ps(Load16<kWhole>(m, qh + d), Load16<kWhole>(m, key.Row() + d), acc);
    }
    s[j] = _mm512_reduce_add_ps(acc) * a.scale;
  }
}

// s[j] ← e^(s[j] − max s) for j < len; returns 1 / Σ. The sum runs in 16 lanes over j, then _mm512_reduce_add_ps:
// an order fixed by len.
MOED_ATTN_AVX512 float ExpNormalizerAvx512(float* s, int32_t len) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int32_t j = 0; j < len; j += 16) {
    const __mmask16 m = ChunkMask(len, j);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, s + j));
  }
  const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int32_t j = 0; j < len; j += 16) {
    const __mmask16 m = ChunkMask(len, j);
    const __m512 e = _mm512_maskz_mov_ps(m, ExpAvx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), top)));
    _mm512_mask_storeu_ps(s + j, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sum);
}

// o[d0, d0 + 16·C) = inv · Σ_j p[j] · v_j[d0, d0 + 16·C). Each element sums even and odd j in two registers
// (independent FMA chains when C is small), added at the end: an order fixed by len.
template <int C, bool kWhole>
MOED_ATTN_AVX512 void WeightedValues(const AttendArgs& a, const QueryRow& row, int32_t lo, int32_t len,
                                     int64_t head_off, const float* p, float inv, int d0, float* o) {
  const int hd = a.kv.head_dim;
  __mmask16 m[C];
  __m512 even[C], odd[C];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    m[c] = ChunkMask(hd, d0 + 16 * c);
    even[c] = _mm512_setzero_ps();
    odd[c] = _mm512_setzero_ps();
  }
  Cursor val(a.kv, row, a.kv.v + head_off + d0, lo);
  int32_t j = 0;
  for (; j + 2 <= len; j += 2) {
    const __m512 p0 = _mm512_set1_ps(p[j]);
    const float* v0 = val.Row();
    val.Next();
    const __m512 p1 = _mm512_set1_ps(p[j + 1]);
    const float* v1 = val.Row();
    val.Next();
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      even[c] = _mm512_fmadd_ps(p0, Load16<kWhole>(m[c], v0 + 16 * c), even[c]);
      odd[c] = _mm512_fmadd_ps(p1, Load16<kWhole>(m[c], v1 + 16 * c), odd[c]);
    }
  }
  if (j < len) {
    const __m512 p0 = _mm512_set1_ps(p[j]);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) even[c] = _mm512_fmadd_ps(p0, Load16<kWhole>(m[c], val.Row() + 16 * c), even[c]);
  }
  const __m512 iv = _mm512_set1_ps(inv);
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    _mm512_mask_storeu_ps(o + d0 + 16 * c, m[c], _mm512_mul_ps(iv, _mm512_add_ps(even[c], odd[c])));
  }
}

// Per (row, kv head): scores of every query head of the group, softmax, then the weighted values of each head with
// its output in registers (up to 128 dimensions per pass over the values).
template <bool kWhole>
MOED_ATTN_AVX512 void AttendItems(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv) {
  const int hd = a.kv.head_dim, kvh = a.kv.num_kv_heads, group = a.num_heads / kvh;
  const int64_t q_stride = static_cast<int64_t>(a.num_heads) * hd;
  const int chunks = (hd + 15) / 16;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t r = item / kvh;
    const int h = static_cast<int>(item % kvh);
    const QueryRow& row = a.rows[r];
    const Span sp = SpanOf(row, a.sliding_window);
    const int64_t head_off = static_cast<int64_t>(h) * hd;
    const float* q0 = a.q + r * q_stride + static_cast<int64_t>(h * group) * hd;
    for (int g = 0; g < group; ++g) {
      float* s = scores + static_cast<int64_t>(g) * sp.len;
      Scores<kWhole>(a, row, sp.lo, sp.len, head_off, q0 + static_cast<int64_t>(g) * hd, s);
      inv[g] = ExpNormalizerAvx512(s, sp.len);
    }
    float* o0 = a.out + r * q_stride + static_cast<int64_t>(h * group) * hd;
    for (int g = 0; g < group; ++g) {
      const float* p = scores + static_cast<int64_t>(g) * sp.len;
      float* o = o0 + static_cast<int64_t>(g) * hd;
      for (int c0 = 0; c0 < chunks; c0 += 8) {
        const int d0 = 16 * c0;
        switch (std::min(8, chunks - c0)) {
          case 1: WeightedValues<1, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 2: WeightedValues<2, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 3: WeightedValues<3, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 4: WeightedValues<4, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 5: WeightedValues<5, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 6: WeightedValues<6, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          case 7: WeightedValues<7, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
          default: WeightedValues<8, kWhole>(a, row, sp.lo, sp.len, head_off, p, inv[g], d0, o); break;
        }
      }
    }
  }
}

}  // namespace

MOED_ATTN_AVX512 void AttendAvx512(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv) {
  if (a.kv.head_dim % 16 == 0) {
    AttendItems<true>(a, begin, end, scores, inv);
  } else {
    AttendItems<false>(a, begin, end, scores, inv);
  }
}

#else

void AttendAvx2(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv) {
  AttendScalar(a, begin, end, scores, inv);
}
void AttendAvx512(const AttendArgs& a, int64_t begin, int64_t end, float* scores, float* inv) {
  AttendScalar(a, begin, end, scores, inv);
}

#endif

}  // namespace kernels

void PagedAttentionFast(Isa isa, const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* q,
                        int num_heads, int sliding_window, float scale, float* out, ThreadPool* pool) {
  const int group = num_heads / kv.num_kv_heads;
  const kernels::AttendArgs args{kv, rows.data(), q, out, num_heads, sliding_window, scale};
  int64_t work = 0, longest = 0;
  for (const QueryRow& row : rows) {
    const int64_t len = kernels::SpanOf(row, sliding_window).len;
    work += len;
    longest = std::max(longest, len);
  }
  work *= static_cast<int64_t>(num_heads) * kv.head_dim;
  auto fn = kernels::AttendScalar;
  switch (std::min(isa, DetectedIsa())) {
    case Isa::kAvx512Bf16:
    case Isa::kAvx512: fn = kernels::AttendAvx512; break;
    case Isa::kAvx2: fn = kernels::AttendAvx2; break;
    case Isa::kScalar: break;
  }
  const int64_t items = static_cast<int64_t>(rows.size()) * kv.num_kv_heads;
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(group) * (longest + 1));
    fn(args, begin, end, scratch.data(), scratch.data() + static_cast<int64_t>(group) * longest);
  };
  // Short contexts: below ~256K multiply-adds (work counts half of them) a thread hand-off costs about what it saves.
  if (pool == nullptr || pool->size() == 1 || work < (1 << 17)) {
    run(0, items);
    return;
  }
  pool->ParallelFor(items, run);
}

}  // namespace moed::cpu
