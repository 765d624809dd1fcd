// PagedAttentionFast at every instruction-set level this CPU has, against the fp32 reference PagedAttention on
// random paged caches: GQA group sizes, head_dim tails, sliding windows, scattered block tables, thread splits.
#include "engine/backend/cpu/kernels/attention_fast.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

struct Case {
  int num_heads, num_kv_heads, head_dim, block_size, window;
  std::vector<int32_t> positions;  // one query row per entry, all of one sequence
};

TEST(PagedAttentionFast, MatchesReferenceAtEveryLevel) {
  const Case cases[] = {
      {4, 2, 16, 4, 0, {0}},
      {4, 2, 64, 16, 0, {0, 1, 2, 3, 4, 5, 6}},
      {8, 8, 72, 4, 0, {37}},
      {32, 4, 128, 16, 0, {130, 131}},
      {6, 2, 40, 8, 5, {3, 20, 21}},
      {16, 4, 64, 16, 64, {200}},
      {2, 1, 8, 2, 0, {9}},
  };
  ThreadPool pool(3);
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const Case& c : cases) {
    const int32_t max_pos = *std::max_element(c.positions.begin(), c.positions.end());
    const int blocks = (max_pos + c.block_size) / c.block_size;
    // Blocks scattered over a pool twice as large, in random order.
    std::vector<int32_t> table(2 * blocks);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    table.resize(blocks);
    // The CPU backend's layout: per token K (kv heads × head_dim) then V, in one array.
    const int64_t width = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
    std::vector<float> cache(2 * blocks * c.block_size * 2 * width);
    for (size_t i = 0; i < cache.size(); ++i) cache[i] = (i / width) % 2 == 0 ? u(rng) * 3.0f : u(rng);
    const KvLayerView kv{cache.data(), cache.data() + width, c.block_size, c.num_kv_heads, c.head_dim, 2 * width};
    std::vector<QueryRow> rows;
    for (int32_t p : c.positions) rows.push_back({p, table.data()});
    const int64_t q_dim = static_cast<int64_t>(c.num_heads) * c.head_dim;
    std::vector<float> q(rows.size() * q_dim);
    for (float& x : q) x = u(rng) * 3.0f;
    // The usual 1/sqrt(head_dim), and another scale (DeepSeek's yarn mscale changes it).
    const float scale = c.window == 5 ? 0.3f : 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    std::vector<float> ref(q.size());
    PagedAttention(kv, rows, q.data(), c.num_heads, c.window, scale, ref.data(), nullptr);
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
      if (isa > DetectedIsa()) continue;
      for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
        std::vector<float> out(q.size(), NAN);
        PagedAttentionFast(isa, kv, rows, q.data(), c.num_heads, c.window, scale, out.data(), p);
        for (size_t i = 0; i < out.size(); ++i) {
          // Outputs are convex combinations of V in [-1, 1]; fp32 with another summation order: measured ≤ 3e-7.
          ASSERT_NEAR(out[i], ref[i], 2e-6) << IsaName(isa) << " heads " << c.num_heads << "/" << c.num_kv_heads
                                            << " hd " << c.head_dim << " window " << c.window << " at " << i;
        }
      }
    }
  }
}

// Batch invariance: a query row attended alone gives bitwise the outputs it gets inside a prefill of many rows
// (spans shorter and longer than the 16-key score blocks, head_dim with and without a tail chunk, > 128 dimensions).
TEST(PagedAttentionFast, RowAloneEqualsRowInsidePrefill) {
  std::mt19937 rng(29);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  ThreadPool pool(2);
  for (int head_dim : {24, 32, 128, 144}) {
    const int num_heads = 8, num_kv_heads = 2, block_size = 16, rows_n = 45;
    const int blocks = (rows_n + block_size - 1) / block_size;
    std::vector<int32_t> table(blocks);
    std::iota(table.begin(), table.end(), 0);
    const int64_t width = static_cast<int64_t>(num_kv_heads) * head_dim;
    std::vector<float> cache(blocks * block_size * 2 * width);
    for (float& x : cache) x = u(rng);
    const KvLayerView kv{cache.data(), cache.data() + width, block_size, num_kv_heads, head_dim, 2 * width};
    std::vector<QueryRow> rows;
    for (int32_t p = 0; p < rows_n; ++p) rows.push_back({p, table.data()});
    const int64_t q_dim = static_cast<int64_t>(num_heads) * head_dim;
    std::vector<float> q(rows.size() * q_dim);
    for (float& x : q) x = u(rng) * 3.0f;
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
      if (isa > DetectedIsa()) continue;
      std::vector<float> all(q.size());
      PagedAttentionFast(isa, kv, rows, q.data(), num_heads, 0, 0.2f, all.data(), &pool);
      for (size_t r = 0; r < rows.size(); ++r) {
        std::vector<float> one(q_dim);
        PagedAttentionFast(isa, kv, {rows[r]}, q.data() + r * q_dim, num_heads, 0, 0.2f, one.data(), nullptr);
        for (int64_t i = 0; i < q_dim; ++i) {
          ASSERT_EQ(one[i], all[r * q_dim + i]) << IsaName(isa) << " hd " << head_dim << " row " << r << " at " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace moed::cpu
