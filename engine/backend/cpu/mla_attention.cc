// MLA on the CPU: q (direct or through the q LoRA), latent + rope key into the cache, per-sequence expansion of the
// cached latents into per-head K/V, then causal softmax attention.
#include "engine/backend/cpu/mla_attention.h"

#include <algorithm>

#include "engine/backend/cpu/ops.h"

namespace moed::cpu {

void MlaAttention(const AttentionSpec& a, const CpuLayer& w, float eps, const std::vector<float>& inv_freq,
                  const MlaCacheView& cache, const std::vector<QueryRow>& rows, const float* h, int hidden,
                  float* out, ThreadPool* pool) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int heads = a.num_heads, qk = a.qk_head_dim, vd = a.v_head_dim, nope = a.nope_dim(), R = a.rope.dim;
  const int C = a.kv_lora_rank;
  const int64_t q_stride = static_cast<int64_t>(heads) * qk;

  // Queries (rows, heads, qk) with their rope parts rotated.
  std::vector<float> q(n * q_stride);
  if (a.q_lora_rank > 0) {
    std::vector<float> qa(n * a.q_lora_rank);
    MatMul(h, n, hidden, w.q_a_proj.data(), a.q_lora_rank, nullptr, qa.data(), pool);
    RmsNorm(qa.data(), n, a.q_lora_rank, w.q_a_norm.data(), eps);
    MatMul(qa.data(), n, a.q_lora_rank, w.q_b_proj.data(), q_stride, nullptr, q.data(), pool);
  } else {
    MatMul(h, n, hidden, w.q_proj.data(), q_stride, nullptr, q.data(), pool);
  }
  // Latent and rope key of every row, into the cache.
  std::vector<float> ckv(n * (C + R));
  MatMul(h, n, hidden, w.kv_a_proj.data(), C + R, nullptr, ckv.data(), pool);
  std::vector<float> cs;
  for (int64_t r = 0; r < n; ++r) {
    float* row = ckv.data() + r * (C + R);
    RmsNorm(row, 1, C, w.kv_a_norm.data(), eps);
    RopeCosSinAt(a.rope, inv_freq, rows[r].pos, &cs);
    RotateHeads(a.rope, cs, row + C, 1, R);
    RotateHeads(a.rope, cs, q.data() + r * q_stride, heads, qk);
    std::copy_n(row, C + R, cache.data + cache.Offset(rows[r].block_table, rows[r].pos));
  }

  // Per sequence: expand the cached latents of its positions, then attend.
  const int kvb_width = heads * (nope + vd);
  std::vector<float> latents, kvb, keys, values;
  for (int64_t begin = 0; begin < n;) {
    int64_t end = begin + 1;
    while (end < n && rows[end].block_table == rows[begin].block_table) ++end;
    int32_t len = 0;
    for (int64_t r = begin; r < end; ++r) len = std::max(len, rows[r].pos + 1);
    latents.resize(static_cast<size_t>(len) * C);
    keys.resize(static_cast<size_t>(len) * heads * qk);
    values.resize(static_cast<size_t>(len) * heads * vd);
    kvb.resize(static_cast<size_t>(len) * kvb_width);
    for (int32_t j = 0; j < len; ++j) {
      const float* cached = cache.data + cache.Offset(rows[begin].block_table, j);
      std::copy_n(cached, C, latents.data() + static_cast<int64_t>(j) * C);
    }
    MatMul(latents.data(), len, C, w.kv_b_proj.data(), kvb_width, nullptr, kvb.data(), pool);
    for (int32_t j = 0; j < len; ++j) {
      const float* rope_key = cache.data + cache.Offset(rows[begin].block_table, j) + C;
      for (int hh = 0; hh < heads; ++hh) {
        const float* src = kvb.data() + static_cast<int64_t>(j) * kvb_width + static_cast<int64_t>(hh) * (nope + vd);
        float* k = keys.data() + (static_cast<int64_t>(j) * heads + hh) * qk;
        std::copy_n(src, nope, k);
        std::copy_n(rope_key, R, k + nope);
        std::copy_n(src + nope, vd, values.data() + (static_cast<int64_t>(j) * heads + hh) * vd);
      }
    }
    const int64_t items = (end - begin) * heads;
    auto run = [&](int64_t ib, int64_t ie) {
      std::vector<float> scores, acc(vd);
      for (int64_t item = ib; item < ie; ++item) {
        const int64_t r = begin + item / heads;
        const int hh = static_cast<int>(item % heads);
        const int32_t rlen = rows[r].pos + 1;
        const float* qh = q.data() + r * q_stride + static_cast<int64_t>(hh) * qk;
        scores.resize(rlen);
        for (int32_t j = 0; j < rlen; ++j) {
          scores[j] = Dot(qh, keys.data() + (static_cast<int64_t>(j) * heads + hh) * qk, qk) * a.softmax_scale;
        }
        Softmax(scores.data(), rlen);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int32_t j = 0; j < rlen; ++j) {
          const float* vj = values.data() + (static_cast<int64_t>(j) * heads + hh) * vd;
          for (int d = 0; d < vd; ++d) acc[d] += scores[j] * vj[d];
        }
        std::copy(acc.begin(), acc.end(), out + r * heads * vd + static_cast<int64_t>(hh) * vd);
      }
    };
    if (pool == nullptr || static_cast<int64_t>(len) * items * qk < (1 << 15)) {
      run(0, items);
    } else {
      pool->ParallelFor(items, run, /*min_per_task=*/4);
    }
    begin = end;
  }
}

}  // namespace moed::cpu
