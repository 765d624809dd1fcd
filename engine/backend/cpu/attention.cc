// Paged attention: one (row, head) pair per work item, scores in fp32, softmax max-subtracted.
#include "engine/backend/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "engine/backend/cpu/ops.h"
#include "engine/model/rope.h"

namespace moed::cpu {

void WriteKv(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* k, const float* v) {
  const int64_t width = kv.kv_width();
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t off = kv.Offset(rows[r].block_table, rows[r].pos);
    std::copy_n(k + r * width, width, kv.k + off);
    std::copy_n(v + r * width, width, kv.v + off);
  }
}

void PagedAttention(const KvLayerView& kv, const std::vector<QueryRow>& rows, const float* q, int num_heads,
                    int sliding_window, float scale, float* out, ThreadPool* pool) {
  const int hd = kv.head_dim;
  const int group = num_heads / kv.num_kv_heads;
  const int64_t q_stride = static_cast<int64_t>(num_heads) * hd;
  const int64_t items = static_cast<int64_t>(rows.size()) * num_heads;

  auto run = [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    std::vector<float> acc(hd);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / num_heads;
      const int h = static_cast<int>(item % num_heads);
      const QueryRow& row = rows[r];
      const int32_t lo = sliding_window > 0 ? std::max(0, row.pos - sliding_window + 1) : 0;
      const int32_t len = row.pos - lo + 1;
      const float* qh = q + r * q_stride + static_cast<int64_t>(h) * hd;
      const int64_t head_off = static_cast<int64_t>(h / group) * hd;
      scores.resize(len);
      for (int32_t j = 0; j < len; ++j) {
        scores[j] = Dot(qh, kv.k + kv.Offset(row.block_table, lo + j) + head_off, hd) * scale;
      }
      Softmax(scores.data(), len);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t j = 0; j < len; ++j) {
        const float* vj = kv.v + kv.Offset(row.block_table, lo + j) + head_off;
        const float p = scores[j];
        for (int d = 0; d < hd; ++d) acc[d] += p * vj[d];
      }
      std::copy(acc.begin(), acc.end(), out + r * q_stride + static_cast<int64_t>(h) * hd);
    }
  };
  // Short contexts: a thread hand-off costs more than the work.
  int64_t work = 0;
  for (const QueryRow& row : rows) {
    work += sliding_window > 0 ? std::min<int64_t>(row.pos + 1, sliding_window) : row.pos + 1;
  }
  work *= q_stride;
  if (pool == nullptr || work < (1 << 15)) {
    run(0, items);
    return;
  }
  pool->ParallelFor(items, run, /*min_per_task=*/4);
}

void NormAndRotateQk(const AttentionSpec& a, const float* q_norm, const float* k_norm, float eps,
                     const std::vector<float>& inv_freq, const std::vector<QueryRow>& rows, float* q, float* k) {
  const int64_t n = static_cast<int64_t>(rows.size()), qd = a.q_dim(), kvd = a.kv_dim();
  const int hd = a.head_dim;
  if (a.qk_norm == QkNorm::kPerHead) {
    RmsNorm(q, n * a.num_heads, hd, q_norm, eps);
    RmsNorm(k, n * a.num_kv_heads, hd, k_norm, eps);
  } else if (a.qk_norm == QkNorm::kFull) {
    RmsNorm(q, n, qd, q_norm, eps);
    RmsNorm(k, n, kvd, k_norm, eps);
  }
  std::vector<float> cs;
  for (int64_t r = 0; r < n; ++r) {
    RopeCosSinAt(a.rope, inv_freq, rows[r].pos, &cs);
    RotateHeads(a.rope, cs, q + r * qd, a.num_heads, hd);
    RotateHeads(a.rope, cs, k + r * kvd, a.num_kv_heads, hd);
  }
}

void RopeCosSinAt(const RopeSpec& rope, const std::vector<float>& inv_freq, int32_t pos, std::vector<float>* cs) {
  // Dynamic NTK grows the base past the original context: the table of this position (seq_len = pos + 1).
  std::vector<float> grown;
  const float* table = inv_freq.data();
  if (rope.type == RopeType::kDynamic && pos + 1 > rope.original_max_position) {
    grown = RopeInvFreq(rope, static_cast<int64_t>(pos) + 1);
    table = grown.data();
  }
  cs->resize(rope.dim);
  RopeCosSin(rope, table, pos, cs->data(), cs->data() + rope.dim / 2);
}

void RotateHeads(const RopeSpec& rope, const std::vector<float>& cs, float* x, int heads, int head_dim) {
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim + (head_dim - rope.dim);
    ApplyRopeCosSin(rope, cs.data(), cs.data() + rope.dim / 2, v);
  }
}

}  // namespace moed::cpu
