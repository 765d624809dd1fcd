// PagedAttentionFast: per-ISA work-item loops (scalar, AVX2+FMA, AVX-512 with per-function target attributes)
// and the split of (row, kv head) items across threads.
#include "engine/backend/cpu/kernels/attention_fast.h"

// GCC 12's _mm512_undefined_* (self-initialised on purpose) trips -W(maybe-)uninitialized inside its own headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

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

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) void AttendAvx512(const AttendArgs& a,
                                                                                    int64_t begin, int64_t end,
                                                                                    float* scores, float* inv) {
  const int hd = a.kv.head_dim, kvh = a.kv.num_kv_heads, group = a.num_heads / kvh;
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
        __m512 acc = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16) {
          const __mmask16 m = hd - d >= 16 ? 0xffff : static_cast<__mmask16>((1u << (hd - d)) - 1);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qh + d), _mm512_maskz_loadu_ps(m, kj + d), acc);
        }
        scores[static_cast<int64_t>(g) * sp.len + j] = _mm512_reduce_add_ps(acc) * a.scale;
      }
    }
    for (int g = 0; g < group; ++g) inv[g] = ExpNormalizer(scores + static_cast<int64_t>(g) * sp.len, sp.len);
    float* o0 = a.out + r * q_stride + static_cast<int64_t>(h * group) * hd;
    std::fill(o0, o0 + static_cast<int64_t>(group) * hd, 0.0f);
    for (int32_t j = 0; j < sp.len; ++j) {
      const float* vj = a.kv.v + a.kv.Offset(a.rows[r].block_table, sp.lo + j) + head_off;
      for (int g = 0; g < group; ++g) {
        const __m512 pv = _mm512_set1_ps(scores[static_cast<int64_t>(g) * sp.len + j]);
        float* o = o0 + static_cast<int64_t>(g) * hd;
        for (int d = 0; d < hd; d += 16) {
          const __mmask16 m = hd - d >= 16 ? 0xffff : static_cast<__mmask16>((1u << (hd - d)) - 1);
          _mm512_mask_storeu_ps(o + d, m,
                                _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(m, vj + d), _mm512_maskz_loadu_ps(m, o + d)));
        }
      }
    }
    for (int g = 0; g < group; ++g) {
      const __m512 iv = _mm512_set1_ps(inv[g]);
      float* o = o0 + static_cast<int64_t>(g) * hd;
      for (int d = 0; d < hd; d += 16) {
        const __mmask16 m = hd - d >= 16 ? 0xffff : static_cast<__mmask16>((1u << (hd - d)) - 1);
        _mm512_mask_storeu_ps(o + d, m, _mm512_mul_ps(iv, _mm512_maskz_loadu_ps(m, o + d)));
      }
    }
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
