// The grouped expert GEMM kernels alone (grouped_moe.h: the tensor-core Mma kernels at both tile heights and the
// WMMA reference) on a schedule built here: experts with 0, 1, tile−1, tile, tile+1 and more rows, gathered rows,
// K, F and H not multiples of the tiles. gate_up+SwiGLU and down against fp64 CPU sums; rows past the kept ones
// stay unwritten.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/backend/cuda/grouped_moe.h"
#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "tests/gpu/gpu_test_util.h"

namespace moed {
namespace {

using gpu_test::bf16;
using gpu_test::DevVec;
using gpu_test::FromBf16;
using gpu_test::RandomBf16Values;
using gpu_test::ToBf16;

enum class Kernel { kMma, kWmma };

struct Shape {
  int H, F, tokens;
  std::vector<int32_t> kept;  // rows per expert
};

double Silu(double g) { return g / (1.0 + std::exp(-g)); }
float RoundBf16(float v) { return FromBf16(ToBf16(v)); }

void ExpectKernelsMatch(const Shape& sh, Kernel kernel, int tile_rows, uint32_t seed) {
  const int H = sh.H, F = sh.F, E = static_cast<int>(sh.kept.size());
  const std::string what = "H " + std::to_string(H) + " F " + std::to_string(F) + " tile rows " +
                           std::to_string(tile_rows) + (kernel == Kernel::kMma ? " mma" : " wmma");
  std::mt19937 rng(seed);
  std::vector<int32_t> offsets(E + 1), tiles(E + 1), active(E + 1);
  active[E] = cuda::BuildExpertSchedule(sh.kept.data(), E, tile_rows, offsets.data(), tiles.data(), active.data());
  const int rows = offsets[E], assignments = rows + 5;  // the grid bound covers more rows than are kept
  std::uniform_int_distribution<int> tok(0, sh.tokens - 1);
  std::vector<int32_t> row_token(rows);
  for (int32_t& t : row_token) t = tok(rng);

  const std::vector<float> x = RandomBf16Values(static_cast<size_t>(sh.tokens) * H, 1.0f, rng);
  const std::vector<float> h_in = RandomBf16Values(static_cast<size_t>(assignments) * F, 1.0f, rng);
  const size_t gu_size = 2 * static_cast<size_t>(F) * H, d_size = static_cast<size_t>(H) * F;
  const std::vector<float> w =
      RandomBf16Values(E * (gu_size + d_size), 1.0f / std::sqrt(static_cast<float>(H)), rng);
  DevVec<bf16> d_x(ToBf16(x)), d_hin(ToBf16(h_in)), d_w(ToBf16(w));
  std::vector<const bf16*> ptrs(2 * E);
  for (int e = 0; e < E; ++e) {
    ptrs[e] = d_w.get() + e * (gu_size + d_size);
    ptrs[E + e] = ptrs[e] + gu_size;
  }
  DevVec<const bf16*> d_ptrs(ptrs);
  DevVec<int32_t> d_off(offsets), d_tiles(tiles), d_active(active), d_rt(row_token.empty() ? std::vector<int32_t>{0}
                                                                                          : row_token);
  cuda::ExpertSchedule s;
  s.offsets = d_off.get();
  s.tile_prefix = d_tiles.get();
  s.active = d_active.get();
  s.row_token = d_rt.get();
  s.num_experts = E;
  s.tile_rows = tile_rows;
  cuda::ExpertPointers p{d_ptrs.get(), d_ptrs.get() + E};
  DevVec<bf16> d_h(static_cast<size_t>(assignments) * F);
  DevVec<float> d_y(static_cast<size_t>(assignments) * H);
  if (kernel == Kernel::kMma) {
    MOED_CUDA_ASSERT(cuda::LaunchGroupedGateUpMma(s, p, d_x.get(), H, F, assignments, d_h.get(), nullptr));
    MOED_CUDA_ASSERT(cuda::LaunchGroupedDownMma(s, p, d_hin.get(), H, F, assignments, d_y.get(), nullptr));
  } else {
    MOED_CUDA_ASSERT(cuda::LaunchGroupedGateUpWmma(s, p, d_x.get(), H, F, assignments, d_h.get(), nullptr));
    MOED_CUDA_ASSERT(cuda::LaunchGroupedDownWmma(s, p, d_hin.get(), H, F, assignments, d_y.get(), nullptr));
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess) << what;
  const std::vector<float> h = FromBf16(d_h.Download());
  const std::vector<float> y = d_y.Download();

  // Bounds. gate_up: the kernel sums in fp32, then rounds g and u to bf16; a rounding that lands the other way moves
  // g or u by one bf16 ulp (2^-8 relative), which moves silu(g)·u by at most ~10 ulps relative for |g| ≤ 10:
  // 2^-4 relative, plus 2^-12 of the largest |h| for cancellation near g = 0. An index error is O(1) everywhere.
  // down: fp32 sums of K bf16 products against fp64: K · 2^-24 · Σ|terms|, doubled.
  int bad_h = 0, bad_y = 0;
  for (int e = 0; e < E; ++e) {
    const float* wgu = w.data() + e * (gu_size + d_size);
    const float* wd = wgu + gu_size;
    for (int r = offsets[e]; r < offsets[e + 1]; ++r) {
      const float* xr = x.data() + static_cast<size_t>(row_token[r]) * H;
      for (int c = 0; c < F; ++c) {
        double g = 0.0, u = 0.0;
        for (int k = 0; k < H; ++k) {
          g += static_cast<double>(xr[k]) * wgu[static_cast<size_t>(c) * H + k];
          u += static_cast<double>(xr[k]) * wgu[static_cast<size_t>(F + c) * H + k];
        }
        const double ref = Silu(RoundBf16(static_cast<float>(g))) * RoundBf16(static_cast<float>(u));
        const double got = h[static_cast<size_t>(r) * F + c];
        if (!(std::abs(got - ref) <= 0.0625 * std::abs(ref) + 1e-4)) {
          if (++bad_h <= 5) ADD_FAILURE() << what << " h row " << r << " col " << c << ": " << got << " vs " << ref;
        }
      }
      const float* hr = h_in.data() + static_cast<size_t>(r) * F;
      for (int c = 0; c < H; ++c) {
        double sum = 0.0, mag = 0.0;
        for (int k = 0; k < F; ++k) {
          const double t = static_cast<double>(hr[k]) * wd[static_cast<size_t>(c) * F + k];
          sum += t;
          mag += std::abs(t);
        }
        const double got = y[static_cast<size_t>(r) * H + c];
        if (!(std::abs(got - sum) <= 2.0 * F * std::ldexp(1.0, -24) * mag + 1e-30)) {
          if (++bad_y <= 5) ADD_FAILURE() << what << " y row " << r << " col " << c << ": " << got << " vs " << sum;
        }
      }
    }
  }
  EXPECT_EQ(bad_h, 0) << what;
  EXPECT_EQ(bad_y, 0) << what;
  // Rows past the kept ones are not written (DevVec poisons with NaN).
  for (size_t i = static_cast<size_t>(rows) * F; i < h.size(); ++i) ASSERT_TRUE(std::isnan(h[i])) << what << " h " << i;
  for (size_t i = static_cast<size_t>(rows) * H; i < y.size(); ++i) ASSERT_TRUE(std::isnan(y[i])) << what << " y " << i;
}

TEST(CudaGroupedGemmTest, TensorCoreAndWmmaTilesMatchCpu) {
  MOED_REQUIRE_GPU();
  // K tails (136 = 4·32 + 8, 200 = 6·32 + 8), a partial gate_up column tile (200 = 3·64 + 8) and down column tile
  // (136 = 128 + 8); rows around both tile heights, empty experts first, between and last.
  const std::vector<Shape> shapes = {
      {136, 200, 300, {0, 1, 63, 64, 65, 0, 127, 128, 129, 300, 0}},
      {256, 512, 97, {5, 0, 256, 17}},
      {8, 8, 3, {2, 0, 1}},
  };
  uint32_t seed = 31;
  for (const Shape& sh : shapes) {
    ExpectKernelsMatch(sh, Kernel::kMma, cuda::kTcSmallRows, seed++);
    ExpectKernelsMatch(sh, Kernel::kMma, cuda::kTcLargeRows, seed++);
    ExpectKernelsMatch(sh, Kernel::kWmma, cuda::kMmaTileRows, seed++);
  }
}

TEST(CudaGroupedGemmTest, TileRowsMismatchIsRefused) {
  MOED_REQUIRE_GPU();
  cuda::ExpertSchedule s;
  s.num_experts = 1;
  s.tile_rows = 96;
  DevVec<bf16> x(64), h(64);
  DevVec<float> y(64);
  EXPECT_EQ(cuda::LaunchGroupedGateUpMma(s, {}, x.get(), 8, 8, 1, h.get(), nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::LaunchGroupedDownMma(s, {}, h.get(), 8, 8, 1, y.get(), nullptr), cudaErrorInvalidValue);
  s.tile_rows = cuda::kTcLargeRows;
  EXPECT_EQ(cuda::LaunchGroupedGateUpWmma(s, {}, x.get(), 8, 8, 1, h.get(), nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace moed
