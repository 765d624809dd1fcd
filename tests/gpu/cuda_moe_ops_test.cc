// CUDA MoE kernels against the CPU router (engine/moe/router.h) and fp32 references: softmax/top-k/renormalisation,
// permutation with capacity, gather, weighted un-permutation, and the whole MoE block (RunMoe).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cpu/ops.h"
#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "engine/backend/cuda/moe_layer.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/router.h"
#include "engine/moe/router.h"
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
struct RouteCase {
  int experts, top_k;
  bool normalize;
};
constexpr RouteCase kRouteCases[] = {{8, 1, true}, {8, 2, true}, {16, 4, false}, {64, 8, false},
                                     {128, 8, true}, {32, 4, true}, {128, 2, false}};

// Weight bound: the kernel repeats the CPU router's float operations in the same order (max, exp(l − max), a
// sequential sum, division, a sequential sum of the kept weights). They differ only where glibc's expf (≤ 0.502 ulp)
// and the device's double exp rounded to float disagree — by one ulp of one exp, measured at ~6e-4 of random
// arguments — which moves a weight by a few ulps through the sums and divisions: 16 ulps (2^-20) relative.
// Expert ids are compared exactly: equal probabilities go to the lower id on both sides.
void ExpectRoutesEqual(const std::vector<float>& logits, int n, const RouteCase& c, const std::string& what) {
  DevVec<float> d_logits(logits), d_w(static_cast<size_t>(n) * c.top_k);
  DevVec<int32_t> d_e(static_cast<size_t>(n) * c.top_k);
  MOED_CUDA_ASSERT(cuda::LaunchRouterTopK(d_logits.get(), n, c.experts, c.top_k, c.normalize, d_e.get(), d_w.get(),
                                          nullptr));
  // The CPU's reference sees a NaN logit as the kernel's contract says: −∞.
  std::vector<float> cpu_logits = logits;
  for (float& v : cpu_logits) {
    if (std::isnan(v)) v = -INFINITY;
  }
  std::vector<int32_t> ref_e(d_e.size());
  std::vector<float> ref_w(d_w.size());
  RouterSpec router;
  router.norm_topk_prob = c.normalize;
  RouteTopK(cpu_logits.data(), n, c.experts, c.top_k, router, nullptr, ref_e.data(), ref_w.data());
  const std::vector<int32_t> got_e = d_e.Download();
  const std::vector<float> got_w = d_w.Download();
  ASSERT_EQ(got_e, ref_e) << what;
  for (size_t i = 0; i < ref_w.size(); ++i) {
    ASSERT_LE(std::abs(got_w[i] - ref_w[i]), std::ldexp(std::abs(ref_w[i]), -20)) << what << " slot " << i;
  }
}

TEST(CudaMoeOpsTest, RouterMatchesCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (const RouteCase& c : kRouteCases) {
    for (int n : kTokenCounts) {
      std::vector<float> logits(static_cast<size_t>(n) * c.experts);
      for (float& v : logits) v = nd(rng);
      ExpectRoutesEqual(logits, n, c, "E " + std::to_string(c.experts) + " k " + std::to_string(c.top_k) + " n " +
                                          std::to_string(n));
      // Exact ties (logits on a coarse grid) and probabilities that underflow to 0 (spread of 200): lower id first.
      for (float& v : logits) v = std::round(nd(rng));
      for (size_t i = 0; i < logits.size(); i += 3) logits[i] = -200.0f;
      ExpectRoutesEqual(logits, n, c, "ties, E " + std::to_string(c.experts) + " n " + std::to_string(n));
    }
  }
}

// Bad logits must not turn into bad ids (the permutation indexes shared memory with them): NaN is −∞; a row with
// no number routes uniformly (lowest ids); ±∞ stays in range.
TEST(CudaMoeOpsTest, RouterSurvivesNanAndInfinities) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(15);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (const RouteCase& c : kRouteCases) {
    const int n = 64;
    std::vector<float> logits(static_cast<size_t>(n) * c.experts);
    for (float& v : logits) v = nd(rng);
    for (size_t i = 0; i < logits.size(); i += 5) logits[i] = NAN;
    ExpectRoutesEqual(logits, n, c, "some NaN, E " + std::to_string(c.experts));

    for (int t = 0; t < n; ++t) {
      for (int e = 0; e < c.experts; ++e) {
        float& v = logits[static_cast<size_t>(t) * c.experts + e];
        v = t % 4 == 0 ? NAN : t % 4 == 1 ? -INFINITY : t % 4 == 2 ? (e % 3 == 0 ? INFINITY : 1.0f) : nd(rng);
      }
    }
    DevVec<float> d_logits(logits), d_w(static_cast<size_t>(n) * c.top_k);
    DevVec<int32_t> d_e(static_cast<size_t>(n) * c.top_k);
    MOED_CUDA_ASSERT(cuda::LaunchRouterTopK(d_logits.get(), n, c.experts, c.top_k, c.normalize, d_e.get(), d_w.get(),
                                            nullptr));
    const std::vector<int32_t> ids = d_e.Download();
    const std::vector<float> w = d_w.Download();
    for (int t = 0; t < n; ++t) {
      std::vector<int32_t> row(ids.begin() + t * c.top_k, ids.begin() + (t + 1) * c.top_k);
      for (int k = 0; k < c.top_k; ++k) {
        ASSERT_GE(row[k], 0) << "token " << t;
        ASSERT_LT(row[k], c.experts) << "token " << t;
        ASSERT_TRUE(std::isfinite(w[t * c.top_k + k])) << "token " << t;
      }
      std::sort(row.begin(), row.end());
      ASSERT_EQ(std::adjacent_find(row.begin(), row.end()), row.end()) << "token " << t << ": an expert twice";
      if (t % 4 <= 1) {  // no number in the row: uniform, so the lowest ids
        for (int k = 0; k < c.top_k; ++k) EXPECT_EQ(ids[t * c.top_k + k], k) << "token " << t;
      }
    }
  }
}

// Reference permutation: ApplyCapacity, then kept assignments grouped by expert in token order.
TEST(CudaMoeOpsTest, PermuteIsAStableCountingSortWithCapacity) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(12);
  for (const RouteCase& c : kRouteCases) {
    for (int n : kTokenCounts) {
      for (float factor : {0.0f, 1.0f, 0.5f}) {
        const int A = n * c.top_k;
        std::vector<int32_t> experts(A);
        // Skewed choices so some experts overflow their capacity.
        for (int32_t& e : experts) e = std::min<int>(c.experts - 1, static_cast<int>(std::abs(std::normal_distribution<float>(0, c.experts / 4.0f)(rng))));
        const int64_t cap = ExpertCapacity(factor, A, c.experts);
        DevVec<int32_t> d_experts(experts), d_counts(2 * c.experts), d_off(c.experts + 1), d_row_token(A),
            d_assign(A);
        cuda::PermuteArgs a;
        a.experts = d_experts.get();
        a.assignments = A;
        a.top_k = c.top_k;
        a.num_experts = c.experts;
        a.capacity = cap;
        a.counts = d_counts.get();
        a.offsets = d_off.get();
        a.row_token = d_row_token.get();
        a.assign_row = d_assign.get();
        MOED_CUDA_ASSERT(cuda::LaunchPermute(a, nullptr));

        std::vector<uint8_t> kept(A);
        std::vector<int64_t> routed(c.experts, 0), dropped(c.experts, 0);
        ApplyCapacity(experts.data(), A, c.experts, cap, kept.data(), routed.data(), dropped.data());
        std::vector<int32_t> offsets(c.experts + 1, 0);
        for (int e = 0; e < c.experts; ++e) offsets[e + 1] = offsets[e] + static_cast<int32_t>(routed[e] - dropped[e]);
        std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
        std::vector<int32_t> ref_assign(A, -1), ref_row_token(offsets.back());
        for (int i = 0; i < A; ++i) {
          if (!kept[i]) continue;
          ref_assign[i] = fill[experts[i]]++;
          ref_row_token[ref_assign[i]] = i / c.top_k;
        }
        const std::vector<int32_t> counts = d_counts.Download();
        for (int e = 0; e < c.experts; ++e) {
          ASSERT_EQ(counts[e], routed[e]) << "expert " << e;
          ASSERT_EQ(counts[c.experts + e], routed[e] - dropped[e]) << "expert " << e;
        }
        ASSERT_EQ(d_off.Download(), offsets);
        ASSERT_EQ(d_assign.Download(), ref_assign) << "E " << c.experts << " n " << n << " factor " << factor;
        std::vector<int32_t> got_rows = d_row_token.Download();
        got_rows.resize(offsets.back());
        ASSERT_EQ(got_rows, ref_row_token);
      }
    }
  }
}

// Expert ids outside [0, E) (which the router never makes) are clamped, not used as shared-memory indices.
TEST(CudaMoeOpsTest, PermuteClampsBadExpertIds) {
  MOED_REQUIRE_GPU();
  const int E = 8, top_k = 2, A = 64;
  std::vector<int32_t> experts(A), clamped(A);
  for (int i = 0; i < A; ++i) {
    experts[i] = i % 3 == 0 ? -5 - i : i % 3 == 1 ? E + i : i % E;
    clamped[i] = std::min(std::max(experts[i], 0), E - 1);
  }
  DevVec<int32_t> d_experts(experts), d_counts(2 * E), d_off(E + 1), d_row_token(A), d_assign(A);
  cuda::PermuteArgs a;
  a.experts = d_experts.get();
  a.assignments = A;
  a.top_k = top_k;
  a.num_experts = E;
  a.capacity = A;
  a.counts = d_counts.get();
  a.offsets = d_off.get();
  a.row_token = d_row_token.get();
  a.assign_row = d_assign.get();
  MOED_CUDA_ASSERT(cuda::LaunchPermute(a, nullptr));
  const std::vector<int32_t> counts = d_counts.Download();
  for (int e = 0; e < E; ++e) {
    EXPECT_EQ(counts[e], std::count(clamped.begin(), clamped.end(), e)) << "expert " << e;
  }
}

TEST(CudaMoeOpsTest, GatherAndUnpermuteMatchCpu) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(13);
  const int dim = 96, top_k = 4;
  for (int n : kTokenCounts) {
    for (bool shared : {false, true}) {
      const int A = n * top_k;
      const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * dim, 1.0f, rng);
      std::vector<int32_t> index(A);
      for (int32_t& i : index) i = rng() % n;
      DevVec<bf16> d_x(ToBf16(x)), d_g(static_cast<size_t>(A) * dim);
      DevVec<int32_t> d_index(index);
      MOED_CUDA_ASSERT(cuda::LaunchGatherRows(d_x.get(), d_index.get(), A, dim, d_g.get(), nullptr));
      const std::vector<float> g = FromBf16(d_g.Download());
      for (int r = 0; r < A; ++r) {
        for (int i = 0; i < dim; ++i) ASSERT_EQ(g[r * dim + i], x[index[r] * dim + i]);
      }

      const std::vector<float> ys = RandomBf16Values(static_cast<size_t>(A) * dim, 1.0f, rng);
      const std::vector<float> w = RandomBf16Values(A, 1.0f, rng);
      const std::vector<float> so = RandomBf16Values(static_cast<size_t>(n) * dim, 1.0f, rng);
      const std::vector<float> sg = RandomBf16Values(n, 3.0f, rng);
      std::vector<int32_t> assign(A);
      for (int i = 0; i < A; ++i) assign[i] = rng() % 5 == 0 ? -1 : static_cast<int32_t>(rng() % A);
      DevVec<float> d_ys(ys), d_w(w), d_so(so), d_sg(sg), d_out(static_cast<size_t>(n) * dim);
      DevVec<int32_t> d_assign(assign);
      MOED_CUDA_ASSERT(cuda::LaunchUnpermute(d_ys.get(), d_assign.get(), d_w.get(), n, top_k, dim,
                                             shared ? d_so.get() : nullptr, shared ? d_sg.get() : nullptr,
                                             d_out.get(), nullptr));
      std::vector<float> ref(static_cast<size_t>(n) * dim, 0.0f);
      for (int t = 0; t < n; ++t) {
        for (int i = 0; i < dim; ++i) {
          float v = shared ? so[t * dim + i] / (1.0f + std::exp(-sg[t])) : 0.0f;
          for (int k = 0; k < top_k; ++k) {
            const int r = assign[t * top_k + k];
            if (r >= 0) v += w[t * top_k + k] * ys[static_cast<size_t>(r) * dim + i];
          }
          ref[t * dim + i] = v;
        }
      }
      EXPECT_LT(MaxRelErr(d_out.Download(), ref), 1e-5) << "n " << n << " shared " << shared;
    }
  }
}

// Owns one random MoE layer on the device and its fp32 copy on the host.
struct RandomMoe {
  cuda::MoeShape shape;
  std::vector<float> router;                   // (E, H)
  std::vector<std::vector<float>> gate_up, down;  // per expert (2F, H) / (H, F)
  std::vector<float> shared_gate_up, shared_down, shared_gate;
  std::vector<std::unique_ptr<DevVec<bf16>>> owned;
  cuda::DeviceLayer layer;

  const bf16* Dev(const std::vector<float>& v) {
    owned.push_back(std::make_unique<DevVec<bf16>>(ToBf16(v)));
    return owned.back()->get();
  }

  RandomMoe(const cuda::MoeShape& s, std::mt19937& rng) : shape(s) {
    const int E = s.num_experts, H = s.hidden, F = s.ffn;
    router = RandomBf16Values(static_cast<size_t>(E) * H, 0.2f, rng);
    layer.router = Dev(router);
    for (int e = 0; e < E; ++e) {
      gate_up.push_back(RandomBf16Values(static_cast<size_t>(2) * F * H, std::sqrt(3.0f / H), rng));
      down.push_back(RandomBf16Values(static_cast<size_t>(H) * F, std::sqrt(3.0f / F), rng));
      const bf16* g = Dev(gate_up.back());  // gate rows then up rows
      layer.experts.push_back({g, g + static_cast<int64_t>(F) * H, Dev(down.back()), F});
    }
    if (s.shared_ffn > 0) {
      shared_gate_up = RandomBf16Values(static_cast<size_t>(2) * s.shared_ffn * H, std::sqrt(3.0f / H), rng);
      shared_down = RandomBf16Values(static_cast<size_t>(H) * s.shared_ffn, std::sqrt(3.0f / s.shared_ffn), rng);
      shared_gate = RandomBf16Values(H, 0.2f, rng);
      const bf16* g = Dev(shared_gate_up);
      layer.shared_expert = {g, g + static_cast<int64_t>(s.shared_ffn) * H, Dev(shared_down), s.shared_ffn};
      layer.shared_expert_gate = Dev(shared_gate);
    }
  }

  // fp32 FFN of one row.
  static std::vector<float> Ffn(const float* x, const std::vector<float>& gu, const std::vector<float>& dn, int H,
                                int F) {
    std::vector<float> g(2 * F), y(H);
    cpu::MatMul(x, 1, H, gu.data(), 2 * F, nullptr, g.data(), nullptr);
    cpu::SiluMul(g.data(), g.data() + F, F);
    cpu::MatMul(g.data(), 1, F, dn.data(), H, nullptr, y.data(), nullptr);
    return y;
  }

  // CPU reference given the router's choice (experts/weights from RouteTopK on `logits`).
  std::vector<float> Reference(const std::vector<float>& x, const std::vector<float>& logits, int n, int64_t cap,
                               std::vector<int64_t>* routed, std::vector<int64_t>* dropped) const {
    const int E = shape.num_experts, K = shape.top_k, H = shape.hidden;
    std::vector<int32_t> ex(static_cast<size_t>(n) * K);
    std::vector<float> w(ex.size());
    RouterSpec router;
    router.norm_topk_prob = shape.normalize;
    RouteTopK(logits.data(), n, E, K, router, nullptr, ex.data(), w.data());
    std::vector<uint8_t> kept(ex.size());
    routed->assign(E, 0);
    dropped->assign(E, 0);
    ApplyCapacity(ex.data(), ex.size(), E, cap, kept.data(), routed->data(), dropped->data());
    std::vector<float> out(static_cast<size_t>(n) * H, 0.0f);
    for (int t = 0; t < n; ++t) {
      const float* xt = x.data() + static_cast<size_t>(t) * H;
      for (int k = 0; k < K; ++k) {
        if (!kept[t * K + k]) continue;
        const int e = ex[t * K + k];
        const std::vector<float> y = Ffn(xt, gate_up[e], down[e], H, shape.ffn);
        for (int i = 0; i < H; ++i) out[t * H + i] += w[t * K + k] * y[i];
      }
      if (shape.shared_ffn == 0) continue;
      const std::vector<float> y = Ffn(xt, shared_gate_up, shared_down, H, shape.shared_ffn);
      const float g = 1.0f / (1.0f + std::exp(-cpu::Dot(xt, shared_gate.data(), H)));
      for (int i = 0; i < H; ++i) out[t * H + i] += g * y[i];
    }
    return out;
  }
};

TEST(CudaMoeOpsTest, MoeBlockMatchesCpuReference) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(14);
  auto handle = cuda::CublasHandle::Create(nullptr);
  ASSERT_TRUE(handle.ok()) << handle.status();
  const cuda::MoeShape shapes[] = {{128, 8, 2, 64, true, 0}, {128, 16, 4, 32, false, 96}, {256, 64, 8, 64, false, 0},
                                   {128, 128, 8, 48, true, 0}, {64, 8, 1, 32, true, 0}};
  for (const cuda::MoeShape& s : shapes) {
    RandomMoe moe(s, rng);
    cuda::MoeWorkspace ws;
    for (int n : kTokenCounts) {
      for (float factor : {0.0f, 0.75f}) {
        const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * s.hidden, 1.0f, rng);
        DevVec<bf16> d_x(ToBf16(x));
        DevVec<float> d_out(static_cast<size_t>(n) * s.hidden);
        const int64_t cap = ExpertCapacity(factor, static_cast<int64_t>(n) * s.top_k, s.num_experts);
        cuda::MoeCounts counts;
        std::vector<int32_t> chosen;
        const absl::Status st =
            cuda::RunMoe(*handle, nullptr, s, moe.layer, d_x.get(), n, cap, d_out.get(), &ws, &counts, &chosen, nullptr);
        ASSERT_TRUE(st.ok()) << st;
        // Route the reference on the device's router logits so a near-tie cannot flip an expert between the two.
        std::vector<float> logits(static_cast<size_t>(n) * s.num_experts);
        ASSERT_EQ(cudaMemcpy(logits.data(), ws.logits.get(), logits.size() * sizeof(float), cudaMemcpyDeviceToHost),
                  cudaSuccess);
        std::vector<float> ref_logits(logits.size());
        cpu::MatMul(x.data(), n, s.hidden, moe.router.data(), s.num_experts, nullptr, ref_logits.data(), nullptr);
        EXPECT_LT(MaxRelErr(logits, ref_logits), 1e-3);
        std::vector<int64_t> routed, dropped;
        const std::vector<float> ref = moe.Reference(x, logits, n, cap, &routed, &dropped);
        const std::vector<float> got = d_out.Download();
        float scale = 0.0f;
        for (float v : ref) scale = std::max(scale, std::abs(v));
        double worst = 0.0;
        for (size_t i = 0; i < ref.size(); ++i) worst = std::max<double>(worst, std::abs(got[i] - ref[i]));
        EXPECT_LE(worst, 2e-2 * std::max(scale, 1e-3f)) << "E " << s.num_experts << " n " << n << " factor " << factor;
        for (int e = 0; e < s.num_experts; ++e) {
          EXPECT_EQ(counts.routed[e], routed[e]) << "expert " << e;
          EXPECT_EQ(counts.routed[e] - counts.kept[e], dropped[e]) << "expert " << e;
        }
        EXPECT_EQ(chosen.size(), static_cast<size_t>(n) * s.top_k);
      }
    }
  }
}


// The device-side grouped path (RunMoeGrouped), both expert kernels, against the CPU reference with the per-expert
// path's bound, and against the per-expert path itself: the same router ids, the same counts, outputs within the
// bound. Its counts and ids stay on the device (no host synchronisation); the test downloads them.
void ExpectGroupedMatches(const std::vector<cuda::MoeShape>& shapes, const std::vector<int>& token_counts,
                          uint32_t seed) {
  std::mt19937 rng(seed);
  auto handle = cuda::CublasHandle::Create(nullptr);
  ASSERT_TRUE(handle.ok()) << handle.status();
  int sm_count = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  for (const cuda::MoeShape& s : shapes) {
    ASSERT_TRUE(cuda::GroupedMoeSupported(s));
    RandomMoe moe(s, rng);
    cuda::DeviceBuffer table;
    cuda::ExpertPointers ptrs;
    ASSERT_TRUE(cuda::BuildExpertPointers(moe.layer, s.num_experts, nullptr, &table, &ptrs).ok());
    cuda::MoeWorkspace ws_old, ws_new;
    for (int n : token_counts) {
      for (float factor : {0.0f, 0.75f}) {
        const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * s.hidden, 1.0f, rng);
        DevVec<bf16> d_x(ToBf16(x));
        const int64_t cap = ExpertCapacity(factor, static_cast<int64_t>(n) * s.top_k, s.num_experts);
        DevVec<float> d_old(static_cast<size_t>(n) * s.hidden);
        cuda::MoeCounts counts;
        std::vector<int32_t> chosen;
        ASSERT_TRUE(cuda::RunMoe(*handle, nullptr, s, moe.layer, d_x.get(), n, cap, d_old.get(), &ws_old, &counts,
                                 &chosen, nullptr)
                        .ok());
        std::vector<float> logits(static_cast<size_t>(n) * s.num_experts);
        ASSERT_EQ(cudaMemcpy(logits.data(), ws_old.logits.get(), logits.size() * sizeof(float),
                             cudaMemcpyDeviceToHost),
                  cudaSuccess);
        std::vector<int64_t> routed, dropped;
        const std::vector<float> ref = moe.Reference(x, logits, n, cap, &routed, &dropped);
        float scale = 0.0f;
        for (float v : ref) scale = std::max(scale, std::abs(v));
        const double bound = 2e-2 * std::max(scale, 1e-3f);
        const std::vector<float> old_out = d_old.Download();
        for (cuda::GroupedKernel k :
             {cuda::GroupedKernel::kGemv, cuda::GroupedKernel::kMma, cuda::GroupedKernel::kWmma}) {
          const std::string what = "E " + std::to_string(s.num_experts) + " H " + std::to_string(s.hidden) + " n " +
                                   std::to_string(n) + " factor " + std::to_string(factor) +
                                   (k == cuda::GroupedKernel::kGemv ? " gemv"
                                    : k == cuda::GroupedKernel::kMma ? " mma"
                                                                      : " wmma");
          DevVec<float> d_new(static_cast<size_t>(n) * s.hidden);
          DevVec<int32_t> d_counts(2 * s.num_experts), d_experts(static_cast<size_t>(n) * s.top_k);
          cuda::GroupedMoeOutputs outs{d_counts.get(), d_experts.get()};
          const absl::Status st = cuda::RunMoeGrouped(*handle, nullptr, s, moe.layer, ptrs, d_x.get(), n, cap,
                                                      d_new.get(), &ws_new, outs, sm_count, k);
          ASSERT_TRUE(st.ok()) << st << " " << what;
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
          const std::vector<float> got = d_new.Download();
          double worst = 0.0, worst_old = 0.0;
          for (size_t i = 0; i < ref.size(); ++i) {
            worst = std::max<double>(worst, std::abs(got[i] - ref[i]));
            worst_old = std::max<double>(worst_old, std::abs(got[i] - old_out[i]));
          }
          EXPECT_LE(worst, bound) << what;
          EXPECT_LE(worst_old, bound) << what << " (against the per-expert path)";
          EXPECT_EQ(d_experts.Download(), chosen) << what;
          const std::vector<int32_t> c = d_counts.Download();
          for (int e = 0; e < s.num_experts; ++e) {
            EXPECT_EQ(c[e], counts.routed[e]) << what << " expert " << e;
            EXPECT_EQ(c[s.num_experts + e], counts.kept[e]) << what << " expert " << e;
          }
        }
      }
    }
  }
}

TEST(CudaMoeOpsTest, GroupedMoeMatchesCpuAndThePerExpertPath) {
  MOED_REQUIRE_GPU();
  // The last shape makes the down GEMV split K (F = 2048: two splits of 1024).
  ExpectGroupedMatches({{128, 8, 2, 64, true, 0}, {128, 16, 4, 32, false, 96}, {256, 64, 8, 64, false, 0},
                        {128, 128, 8, 48, true, 0}, {64, 8, 1, 32, true, 0}, {128, 8, 2, 2048, true, 0}},
                       {std::begin(kTokenCounts), std::end(kTokenCounts)}, 21);
}

// Enough rows per expert for the tall tensor-core tiles (host/tc_gemm_plan.h TcTileRows: ≥ 256 on average), with
// K, ffn and hidden off the tile sizes (136 = 4·32 + 8, 200 = 3·64 + 8).
TEST(CudaMoeOpsTest, GroupedMoeTallTilesMatchCpuAndThePerExpertPath) {
  MOED_REQUIRE_GPU();
  ASSERT_EQ(cuda::TcTileRows(1100, 1, 4), cuda::kTcLargeRows);
  ASSERT_EQ(cuda::TcTileRows(1100, 2, 8), cuda::kTcLargeRows);
  ExpectGroupedMatches({{64, 4, 1, 32, true, 0}, {136, 8, 2, 200, true, 0}}, {1100}, 23);
}

// A light version for the device run's compute-sanitizer step (bench/cuda/on_device.sh memcheck): both kernels,
// partial tiles, split-K, capacity drops, a shared expert.
TEST(CudaMoeOpsTest, GroupedMoeLight) {
  MOED_REQUIRE_GPU();
  ExpectGroupedMatches({{128, 16, 4, 32, false, 96}, {128, 8, 2, 2048, true, 0}}, {1, 70}, 22);
}

// The shared expert on a second stream (MoeWorkspace::side): the same bits as on the compute stream, for both MoE
// paths, eager and replayed from a captured CUDA graph (the fork/join events must carry the capture across).
TEST(CudaMoeOpsTest, SharedExpertOnASideStreamIsBitIdenticalAndCapturable) {
  MOED_REQUIRE_GPU();
  std::mt19937 rng(31);
  cudaStream_t main = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&main, cudaStreamNonBlocking), cudaSuccess);
  {
    auto handle = cuda::CublasHandle::Create(main);
    ASSERT_TRUE(handle.ok()) << handle.status();
    cuda::DeviceBuffer cublas_ws;  // fixed, as the backend's: a capture must not see cuBLAS allocate
    constexpr size_t kWs = 32u << 20;
    ASSERT_TRUE(cublas_ws.Reserve(kWs, "cuBLAS workspace").ok());
    ASSERT_EQ(cublasSetWorkspace(handle->get(), cublas_ws.get(), kWs), CUBLAS_STATUS_SUCCESS);
    auto side = cuda::SideStream::Create(kWs);
    ASSERT_TRUE(side.ok()) << side.status();
    int sm_count = 0;
    ASSERT_EQ(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
    const cuda::MoeShape s{128, 16, 4, 32, false, 96};
    RandomMoe moe(s, rng);
    cuda::DeviceBuffer table;
    cuda::ExpertPointers ptrs;
    ASSERT_TRUE(cuda::BuildExpertPointers(moe.layer, s.num_experts, main, &table, &ptrs).ok());
    for (int n : {1, 70}) {
      const std::string what = "n " + std::to_string(n);
      const std::vector<float> x = RandomBf16Values(static_cast<size_t>(n) * s.hidden, 1.0f, rng);
      DevVec<bf16> d_x(ToBf16(x));
      const int64_t cap = ExpertCapacity(0.0f, static_cast<int64_t>(n) * s.top_k, s.num_experts);
      cuda::MoeWorkspace ws_one, ws_two;
      ws_two.side = side->get();
      auto grouped = [&](cuda::MoeWorkspace* ws, float* out) {
        return cuda::RunMoeGrouped(*handle, main, s, moe.layer, ptrs, d_x.get(), n, cap, out, ws,
                                   cuda::GroupedMoeOutputs{}, sm_count);
      };
      DevVec<float> one(static_cast<size_t>(n) * s.hidden), two(one.size()), graphed(one.size());
      ASSERT_TRUE(grouped(&ws_one, one.get()).ok()) << what;
      ASSERT_TRUE(grouped(&ws_two, two.get()).ok()) << what;
      EXPECT_FALSE(ws_two.side_pending) << what;
      ASSERT_EQ(cudaStreamSynchronize(main), cudaSuccess) << what;
      const std::vector<float> want = one.Download();
      EXPECT_EQ(two.Download(), want) << what << ": grouped path";
      // Captured (the workspaces are reserved by the eager call) and replayed.
      ASSERT_EQ(cudaStreamBeginCapture(main, cudaStreamCaptureModeThreadLocal), cudaSuccess) << what;
      const absl::Status st = grouped(&ws_two, graphed.get());
      cudaGraph_t graph = nullptr;
      ASSERT_EQ(cudaStreamEndCapture(main, &graph), cudaSuccess) << what << ": the side stream was not joined";
      ASSERT_TRUE(st.ok()) << st << " " << what;
      cudaGraphExec_t exec = nullptr;
      ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess) << what;
      ASSERT_EQ(cudaGraphLaunch(exec, main), cudaSuccess) << what;
      ASSERT_EQ(cudaStreamSynchronize(main), cudaSuccess) << what;
      EXPECT_EQ(graphed.Download(), want) << what << ": graph replay";
      (void)cudaGraphExecDestroy(exec);
      (void)cudaGraphDestroy(graph);
      // The per-expert path (host-synchronised) with and without the side stream.
      DevVec<float> p_one(one.size()), p_two(one.size());
      cuda::MoeCounts counts;
      ASSERT_TRUE(cuda::RunMoe(*handle, main, s, moe.layer, d_x.get(), n, cap, p_one.get(), &ws_one, &counts, nullptr,
                               nullptr).ok());
      ASSERT_TRUE(cuda::RunMoe(*handle, main, s, moe.layer, d_x.get(), n, cap, p_two.get(), &ws_two, &counts, nullptr,
                               nullptr).ok());
      ASSERT_EQ(cudaStreamSynchronize(main), cudaSuccess) << what;
      EXPECT_EQ(p_two.Download(), p_one.Download()) << what << ": per-expert path";
    }
  }
  ASSERT_EQ(cudaStreamDestroy(main), cudaSuccess);
}

}  // namespace
}  // namespace moed
