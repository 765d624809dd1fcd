// CUDA kernels against CPU references on random inputs and several shapes: embedding, RMSNorm + residual, GEMM,
// q/k norm + RoPE + KV write, paged attention (prefill and decode, GQA ratios, sliding window), SwiGLU, synthetic fill.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/ops.h"
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/embedding.h"
#include "engine/backend/cuda/host/rope_table.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/qk_rope.h"
#include "engine/backend/cuda/rmsnorm.h"
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/model/rope.h"
#include "engine/model/synthetic_model.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

using gpu_test::bf16;
using gpu_test::DevVec;
using gpu_test::FromBf16;
using gpu_test::MaxRelErr;
using gpu_test::RandomBf16Values;
using gpu_test::ToBf16;

constexpr int kTokenCounts[] = {1, 7, 64, 1000};

// A spec with default RoPE of `theta` over heads of `head_dim`.
ModelSpec RopeModel(float theta, int head_dim) {
  ModelSpec s;
  s.attention.rope.theta = theta;
  s.attention.rope.dim = s.attention.head_dim = head_dim;
  return s;
}

// MOED_CUDA_CHECK's checker names the operation in the error (no device needed: launch errors are returned as is).
TEST(LaunchCheckerTest, ErrorsNameTheOperation) {
  const cuda::LaunchChecker on(true), off(false);
  for (const cuda::LaunchChecker* c : {&on, &off}) {
    const absl::Status launch = c->After(cudaErrorInvalidValue, nullptr, "layer 3 router top-k");
    EXPECT_FALSE(launch.ok());
    EXPECT_NE(launch.message().find("layer 3 router top-k"), std::string::npos) << launch;
    const absl::Status gemm = c->After(absl::InternalError("cuBLAS error in cublasGemmEx"), nullptr, "qkv GEMM");
    EXPECT_EQ(gemm.code(), absl::StatusCode::kInternal);
    EXPECT_NE(gemm.message().find("qkv GEMM: cuBLAS error"), std::string::npos) << gemm;
  }
}

// The one GPU test that always runs past the device check: it says what was found.
TEST(CudaDeviceTest, DeviceIsUsableAndDescribed) {
  MOED_REQUIRE_GPU();
  const CudaDeviceReport r = CheckCudaDevice();
  EXPECT_EQ(r.state, CudaDeviceState::kUsable);
  EXPECT_FALSE(r.detail.empty());
  std::printf("CUDA device: %s\n", r.detail.c_str());
}

TEST(CudaOpsTest, EmbeddingGathersRows) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(1);
  const int vocab = 300, hidden = 72;
  const std::vector<float> table = RandomBf16Values(vocab * hidden, 2.0f, rng);
  DevVec<bf16> d_table(ToBf16(table));
  for (int n : kTokenCounts) {
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids) id = rng() % vocab;
    DevVec<int32_t> d_ids(ids);
    DevVec<float> d_out(static_cast<size_t>(n) * hidden);
    MOED_CUDA_ASSERT(cuda::LaunchEmbedding(d_ids.get(), n, d_table.get(), hidden, d_out.get(), nullptr));
    const std::vector<float> out = d_out.Download();
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < hidden; ++i) ASSERT_EQ(out[t * hidden + i], table[ids[t] * hidden + i]) << t << "," << i;
    }
  }
}

TEST(CudaOpsTest, AddRmsNormMatchesCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (int dim : {64, 2048, 4096}) {
    for (int n : kTokenCounts) {
      for (bool with_delta : {false, true}) {
        const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * dim, 3.0f, rng);
        const std::vector<float> delta = RandomBf16Values(x.size(), 1.0f, rng);
        const std::vector<float> w = RandomBf16Values(dim, 1.5f, rng);
        DevVec<float> d_res(x);
        DevVec<float> d_delta(delta);
        DevVec<bf16> d_w(ToBf16(w));
        DevVec<bf16> d_out(x.size());
        MOED_CUDA_ASSERT(cuda::LaunchAddRmsNorm(d_res.get(), with_delta ? d_delta.get() : nullptr, n, dim, d_w.get(),
                                                1e-5f, d_out.get(), nullptr));
        std::vector<float> ref_res = x;
        if (with_delta) {
          for (size_t i = 0; i < x.size(); ++i) ref_res[i] += delta[i];
        }
        std::vector<float> ref(x.size());
        cpu::RmsNormTo(ref_res.data(), n, dim, w.data(), 1e-5f, ref.data());
        EXPECT_LT(MaxRelErr(d_res.Download(), ref_res), 1e-6) << "dim " << dim << " n " << n;
        EXPECT_LT(MaxRelErr(FromBf16(d_out.Download()), ref), 1e-2) << "dim " << dim << " n " << n;
      }
    }
  }
}

TEST(CudaOpsTest, GemmMatchesCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(3);
  auto handle = cuda::CublasHandle::Create(nullptr);
  ASSERT_TRUE(handle.ok()) << handle.status();
  for (int n : kTokenCounts) {
    for (auto [in, out] : {std::pair{64, 96}, std::pair{512, 1}, std::pair{1024, 384}}) {
      const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * in, 1.0f, rng);
      const std::vector<float> w = RandomBf16Values(static_cast<size_t>(out) * in, 1.0f, rng);
      DevVec<bf16> d_x(ToBf16(x)), d_w(ToBf16(w));
      DevVec<float> d_y(static_cast<size_t>(n) * out);
      DevVec<bf16> d_yb(static_cast<size_t>(n) * out);
      ASSERT_TRUE(cuda::GemmXWt(*handle, d_x.get(), n, in, d_w.get(), out, d_y.get(), cuda::OutType::kF32).ok());
      ASSERT_TRUE(cuda::GemmXWt(*handle, d_x.get(), n, in, d_w.get(), out, d_yb.get(), cuda::OutType::kBF16).ok());
      std::vector<float> ref(static_cast<size_t>(n) * out);
      cpu::MatMul(x.data(), n, in, w.data(), out, nullptr, ref.data(), nullptr);
      EXPECT_LT(MaxRelErr(d_y.Download(), ref), 1e-3) << n << " " << in << " " << out;
      EXPECT_LT(MaxRelErr(FromBf16(d_yb.Download()), ref), 1e-2) << n << " " << in << " " << out;
    }
  }
}

struct QkCase {
  QkNorm norm;
  int heads, kv_heads, head_dim;
  bool bias;
};

TEST(CudaOpsTest, QkNormRopeMatchesCpuAndWritesCache) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(4);
  const QkCase cases[] = {{QkNorm::kNone, 4, 2, 16, false},  {QkNorm::kNone, 32, 8, 128, true},
                          {QkNorm::kPerHead, 32, 4, 128, false}, {QkNorm::kFull, 16, 16, 128, false},
                          {QkNorm::kPerHead, 4, 2, 16, false},  {QkNorm::kFull, 4, 2, 16, false}};
  for (const QkCase& c : cases) {
    for (int n : kTokenCounts) {
      const int qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim, row = qd + 2 * kvd;
      const int cache_rows = n + 37;
      const std::vector<float> qkv = RandomBf16Values(static_cast<size_t>(n) * row, 2.0f, rng);
      const std::vector<float> qb = RandomBf16Values(qd, 0.5f, rng), kb = RandomBf16Values(kvd, 0.5f, rng),
                               vb = RandomBf16Values(kvd, 0.5f, rng);
      const bool full = c.norm == QkNorm::kFull;
      const std::vector<float> qn = RandomBf16Values(full ? qd : c.head_dim, 1.5f, rng);
      const std::vector<float> kn = RandomBf16Values(full ? kvd : c.head_dim, 1.5f, rng);
      std::vector<int32_t> pos(n);
      std::vector<int64_t> rows(cache_rows);
      std::iota(rows.begin(), rows.end(), 0);
      std::shuffle(rows.begin(), rows.end(), rng);
      rows.resize(n);
      // Positions up to 40000: a RoPE angle off by one ulp of inv_freq at position p is off by ~p·6e-8·inv_freq.
      for (int32_t& p : pos) p = rng() % 40000;
      pos[0] = 39999;
      DevVec<float> d_qkv(qkv), d_q(static_cast<size_t>(n) * qd);
      DevVec<bf16> d_qb(ToBf16(qb)), d_kb(ToBf16(kb)), d_vb(ToBf16(vb)), d_qn(ToBf16(qn)), d_kn(ToBf16(kn));
      DevVec<int32_t> d_pos(pos);
      DevVec<int64_t> d_rows(rows);
      DevVec<bf16> d_k(static_cast<size_t>(cache_rows) * kvd), d_v(static_cast<size_t>(cache_rows) * kvd);
      cuda::QkRopeArgs a;
      a.qkv = d_qkv.get();
      if (c.bias) {
        a.q_bias = d_qb.get();
        a.k_bias = d_kb.get();
        a.v_bias = d_vb.get();
      }
      a.norm = static_cast<cuda::QkNormKind>(static_cast<int>(c.norm));
      a.q_norm = d_qn.get();
      a.k_norm = d_kn.get();
      a.eps = 1e-6f;
      const std::vector<float> inv_freq = cuda::RopeInvFreqTable(RopeModel(1e6f, c.head_dim));
      DevVec<float> d_inv_freq(inv_freq);
      a.inv_freq = d_inv_freq.get();
      a.positions = d_pos.get();
      a.kv_rows = d_rows.get();
      a.tokens = n;
      a.num_heads = c.heads;
      a.num_kv_heads = c.kv_heads;
      a.head_dim = c.head_dim;
      a.q_out = d_q.get();
      a.k_cache = d_k.get();
      a.v_cache = d_v.get();
      MOED_CUDA_ASSERT(cuda::LaunchQkNormRope(a, nullptr));
      const std::vector<float> q = d_q.Download(), kc = FromBf16(d_k.Download()), vc = FromBf16(d_v.Download());

      std::vector<float> ref_q(static_cast<size_t>(n) * qd), got_k, ref_k, got_v, ref_v;
      for (int t = 0; t < n; ++t) {
        std::vector<float> rq(qkv.begin() + t * row, qkv.begin() + t * row + qd);
        std::vector<float> rk(qkv.begin() + t * row + qd, qkv.begin() + t * row + qd + kvd);
        std::vector<float> rv(qkv.begin() + t * row + qd + kvd, qkv.begin() + (t + 1) * row);
        for (int i = 0; c.bias && i < qd; ++i) rq[i] += qb[i];
        for (int i = 0; c.bias && i < kvd; ++i) {
          rk[i] += kb[i];
          rv[i] += vb[i];
        }
        if (c.norm == QkNorm::kPerHead) {
          cpu::RmsNorm(rq.data(), c.heads, c.head_dim, qn.data(), 1e-6f);
          cpu::RmsNorm(rk.data(), c.kv_heads, c.head_dim, kn.data(), 1e-6f);
        } else if (full) {
          cpu::RmsNorm(rq.data(), 1, qd, qn.data(), 1e-6f);
          cpu::RmsNorm(rk.data(), 1, kvd, kn.data(), 1e-6f);
        }
        const RopeSpec rope = RopeModel(1e6f, c.head_dim).attention.rope;
        for (int h = 0; h < c.heads; ++h) ApplyRope(rope, inv_freq.data(), pos[t], rq.data() + h * c.head_dim);
        for (int h = 0; h < c.kv_heads; ++h) ApplyRope(rope, inv_freq.data(), pos[t], rk.data() + h * c.head_dim);
        std::copy(rq.begin(), rq.end(), ref_q.begin() + t * qd);
        ref_k.insert(ref_k.end(), rk.begin(), rk.end());
        ref_v.insert(ref_v.end(), rv.begin(), rv.end());
        got_k.insert(got_k.end(), kc.begin() + rows[t] * kvd, kc.begin() + (rows[t] + 1) * kvd);
        got_v.insert(got_v.end(), vc.begin() + rows[t] * kvd, vc.begin() + (rows[t] + 1) * kvd);
      }
      // q is fp32 on both sides with the same angles (same table, fp32 product, double sin/cos): what differs is
      // the norm's summation order and rsqrtf (a few ulps), so 1e-5 relative. One ulp off in inv_freq at position
      // 40000 moves a rotated value by ~1e-3 of its size, far outside. K and V are stored as bf16: the rounding
      // itself (bf16 unit roundoff, 2^-8 relative) plus that fp32 noise.
      EXPECT_LT(MaxRelErr(q, ref_q), 1e-5) << "heads " << c.heads << " n " << n;
      EXPECT_LT(MaxRelErr(got_k, ref_k), std::ldexp(1.0, -8) + 1e-5) << "heads " << c.heads << " n " << n;
      EXPECT_LT(MaxRelErr(got_v, ref_v), std::ldexp(1.0, -8) + 1e-5) << "heads " << c.heads << " n " << n;
    }
  }
}

struct AttnCase {
  int heads, kv_heads, head_dim, block_size, window;
};

// Several sequences of random context lengths, each querying either its whole context (prefill) or its last
// position (decode), over shuffled KV blocks.
TEST(CudaOpsTest, PagedAttentionMatchesCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(5);
  const AttnCase cases[] = {{4, 2, 16, 4, 0},   {32, 8, 128, 16, 0}, {32, 4, 128, 16, 0},
                            {16, 16, 128, 16, 0}, {8, 1, 64, 8, 0},  {8, 2, 32, 16, 5}};
  for (const AttnCase& c : cases) {
    for (int decode : {0, 1}) {
      const int kvd = c.kv_heads * c.head_dim, qd = c.heads * c.head_dim;
      const int num_blocks = 256;
      std::vector<int32_t> free_blocks(num_blocks);
      std::iota(free_blocks.begin(), free_blocks.end(), 0);
      std::shuffle(free_blocks.begin(), free_blocks.end(), rng);
      const std::vector<float> kc = RandomBf16Values(static_cast<size_t>(num_blocks) * c.block_size * kvd, 1.0f, rng);
      const std::vector<float> vc = RandomBf16Values(kc.size(), 1.0f, rng);
      std::vector<std::vector<int32_t>> tables;
      std::vector<cpu::QueryRow> qrows;
      std::vector<int32_t> positions, table_offsets, flat;
      const int lens[] = {1, 7, 64, 300};
      for (int len : lens) {
        const int nb = (len + c.block_size - 1) / c.block_size;
        tables.emplace_back(free_blocks.end() - nb, free_blocks.end());
        free_blocks.resize(free_blocks.size() - nb);
        const int offset = static_cast<int>(flat.size());
        flat.insert(flat.end(), tables.back().begin(), tables.back().end());
        for (int p = decode ? len - 1 : 0; p < len; ++p) {
          positions.push_back(p);
          table_offsets.push_back(offset);
        }
      }
      for (size_t t = 0; t < positions.size(); ++t) {
        qrows.push_back({positions[t], flat.data() + table_offsets[t]});
      }
      const int n = static_cast<int>(positions.size());
      const std::vector<float> q = RandomBf16Values(static_cast<size_t>(n) * qd, 1.0f, rng);
      DevVec<float> d_q(q);
      DevVec<bf16> d_k(ToBf16(kc)), d_v(ToBf16(vc)), d_out(static_cast<size_t>(n) * qd);
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
      a.out = d_out.get();
      MOED_CUDA_ASSERT(cuda::LaunchPagedAttention(a, nullptr));

      std::vector<float> kf = kc, vf = vc;
      cpu::KvLayerView kv{kf.data(), vf.data(), c.block_size, c.kv_heads, c.head_dim,
                          static_cast<int64_t>(c.kv_heads) * c.head_dim};
      std::vector<float> ref(static_cast<size_t>(n) * qd);
      cpu::PagedAttention(kv, qrows, q.data(), c.heads, c.window, 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                          ref.data(), nullptr);
      EXPECT_LT(MaxRelErr(FromBf16(d_out.Download()), ref), 1e-2)
          << "heads " << c.heads << "/" << c.kv_heads << " hd " << c.head_dim << " decode " << decode;
    }
  }
}

TEST(CudaOpsTest, SwiGluMatchesCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(6);
  for (int rows : kTokenCounts) {
    for (int ffn : {24, 768, 1024}) {
      const std::vector<float> gu = RandomBf16Values(static_cast<size_t>(rows) * 2 * ffn, 4.0f, rng);
      DevVec<bf16> d_gu(ToBf16(gu)), d_h(static_cast<size_t>(rows) * ffn);
      MOED_CUDA_ASSERT(cuda::LaunchSwiGlu(d_gu.get(), rows, ffn, d_h.get(), nullptr));
      std::vector<float> ref(static_cast<size_t>(rows) * ffn);
      for (int r = 0; r < rows; ++r) {
        std::vector<float> g(gu.begin() + r * 2 * ffn, gu.begin() + r * 2 * ffn + ffn);
        cpu::SiluMul(g.data(), gu.data() + r * 2 * ffn + ffn, ffn);
        std::copy(g.begin(), g.end(), ref.begin() + r * ffn);
      }
      EXPECT_LT(MaxRelErr(FromBf16(d_h.Download()), ref), 1e-2) << rows << " " << ffn;
    }
  }
}

TEST(CudaOpsTest, SyntheticFillEqualsHostRule) {
  MOED_REQUIRE_GPU();
  for (int64_t n : {1, 1000, 1 << 20}) {
    const uint64_t seed = 0x1234567 + n;
    const float scale = 0.03f;
    DevVec<bf16> d(n);
    MOED_CUDA_ASSERT(cuda::LaunchSyntheticFill(d.get(), n, seed, scale, nullptr));
    const std::vector<bf16> got = d.Download();
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t want = FloatToBf16(scale * (2.0f * SyntheticUniform(seed, i) - 1.0f));
      uint16_t bits;
      std::memcpy(&bits, &got[i], sizeof bits);
      ASSERT_EQ(bits, want) << "element " << i;
    }
  }
}

}  // namespace
}  // namespace moed
