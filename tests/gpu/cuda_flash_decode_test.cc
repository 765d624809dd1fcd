// Flash-decoding attention (engine/backend/cuda/flash_decode.*) against the CPU twin (cpu::PagedAttention) and the
// reference kernel (LaunchPagedAttention), for decode and prefill rows, GQA groups 1–8, sliding windows, and every
// split count from 1 to 32 (empty splits included).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/flash_decode.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

using gpu_test::bf16;
using gpu_test::DevVec;
using gpu_test::FromBf16;
using gpu_test::MaxRelErr;
using gpu_test::RandomBf16Values;
using gpu_test::ToBf16;

struct Case {
  int heads, kv_heads, head_dim, block_size, window;
};

TEST(CudaFlashDecodeTest, SupportedShapes) {
  EXPECT_TRUE(cuda::FlashDecodeSupported(32, 4, 128));
  EXPECT_FALSE(cuda::FlashDecodeSupported(32, 2, 128));  // 16 query heads per KV head
  EXPECT_FALSE(cuda::FlashDecodeSupported(8, 8, 24));    // not a power of two
  EXPECT_FALSE(cuda::FlashDecodeSupported(8, 8, 16));    // < 32
}

void ExpectFlashMatches(const std::vector<Case>& cases, uint32_t seed) {
  std::mt19937 rng(seed);
  for (const Case& c : cases) {
    for (int decode : {1, 0}) {
      const int kvd = c.kv_heads * c.head_dim, qd = c.heads * c.head_dim;
      const int num_blocks = 2048 / c.block_size * 3;
      std::vector<int32_t> free_blocks(num_blocks);
      std::iota(free_blocks.begin(), free_blocks.end(), 0);
      std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
      const std::vector<float> kc = RandomBf16Values(static_cast<size_t>(num_blocks) * c.block_size * kvd, 1.0f, rng);
      const std::vector<float> vc = RandomBf16Values(kc.size(), 1.0f, rng);
      std::vector<int32_t> positions, table_offsets, flat;
      const std::vector<int> lens = decode ? std::vector<int>{1, 7, 64, 300, 2000} : std::vector<int>{1, 7, 64, 300};
      for (int len : lens) {
        const int nb = (len + c.block_size - 1) / c.block_size;
        const int offset = static_cast<int>(flat.size());
        flat.insert(flat.end(), free_blocks.end() - nb, free_blocks.end());
        free_blocks.resize(free_blocks.size() - nb);
        for (int p = decode ? len - 1 : 0; p < len; ++p) {
          positions.push_back(p);
          table_offsets.push_back(offset);
        }
      }
      std::vector<cpu::QueryRow> qrows;
      for (size_t t = 0; t < positions.size(); ++t) qrows.push_back({positions[t], flat.data() + table_offsets[t]});
      const int n = static_cast<int>(positions.size());
      const std::vector<float> q = RandomBf16Values(static_cast<size_t>(n) * qd, 1.0f, rng);
      DevVec<float> d_q(q);
      DevVec<bf16> d_k(ToBf16(kc)), d_v(ToBf16(vc)), d_ref(static_cast<size_t>(n) * qd);
      DevVec<int32_t> d_pos(positions), d_off(table_offsets), d_tables(flat);
      cuda::PagedAttentionArgs a;
      a.q = d_q.get();
      a.k_cache = d_k.get();
      a.v_cache = d_v.get();
      a.positions = d_pos.get();
      a.block_tables = d_tables.get();
      a.table_offsets = d_off.get();
      a.tokens = n;
      a.num_heads = c.heads;
      a.num_kv_heads = c.kv_heads;
      a.head_dim = c.head_dim;
      a.block_size = c.block_size;
      a.sliding_window = c.window;
      a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      a.out = d_ref.get();
      MOED_CUDA_ASSERT(cuda::LaunchPagedAttention(a, nullptr));
      const std::vector<float> old_out = FromBf16(d_ref.Download());

      std::vector<float> kf = kc, vf = vc;
      cpu::KvLayerView kv{kf.data(), vf.data(), c.block_size, c.kv_heads, c.head_dim, kvd};
      std::vector<float> ref(static_cast<size_t>(n) * qd);
      cpu::PagedAttention(kv, qrows, q.data(), c.heads, c.window, a.scale, ref.data(), nullptr);
      for (int splits : {1, 3, 32}) {
        const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                                 std::to_string(c.head_dim) + " window " + std::to_string(c.window) + " decode " +
                                 std::to_string(decode) + " splits " + std::to_string(splits);
        DevVec<bf16> d_out(static_cast<size_t>(n) * qd);
        DevVec<char> ws(cuda::FlashDecodeWorkspaceBytes(n, c.heads, c.head_dim, splits));
        a.out = d_out.get();
        MOED_CUDA_ASSERT(cuda::LaunchFlashDecode(a, splits, ws.get(), nullptr));
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
        const std::vector<float> got = FromBf16(d_out.Download());
        // The reference kernel's bound against the CPU (bf16 output: 2^-8 relative, plus summation order).
        EXPECT_LT(MaxRelErr(got, ref), 1e-2) << what;
        EXPECT_LT(MaxRelErr(got, old_out), 1e-2) << what << " (against the reference kernel)";
      }
    }
  }
}

TEST(CudaFlashDecodeTest, MatchesCpuAndTheReferenceKernel) {
  MOED_REQUIRE_GPU();
  ExpectFlashMatches({{32, 8, 128, 16, 0}, {32, 4, 128, 16, 0}, {16, 16, 64, 16, 0}, {8, 1, 64, 8, 0},
                      {8, 2, 32, 16, 5}, {4, 4, 256, 16, 0}, {16, 2, 128, 16, 40}, {4, 2, 24, 4, 0}},
                     9);
}

// A light version for the device run's compute-sanitizer step: GQA group 8, head_dim 32 and 256, a window.
TEST(CudaFlashDecodeTest, Light) {
  MOED_REQUIRE_GPU();
  ExpectFlashMatches({{32, 4, 128, 16, 0}, {8, 2, 32, 16, 5}, {4, 4, 256, 16, 0}}, 10);
}

}  // namespace
}  // namespace moed
