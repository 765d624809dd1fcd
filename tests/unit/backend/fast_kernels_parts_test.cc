// Parts of the fast CPU kernels tested on their own: the 16-way AVX-512 reduction (bitwise equal to 16 single
// reductions, which batch invariance rests on) and SiluMul against std::exp.
#include <cmath>
#include <random>
#include <vector>

#include "engine/backend/cpu/kernels/activation.h"
#include "engine/backend/cpu/kernels/isa.h"
#include "engine/backend/cpu/kernels/reduce_avx512.h"
#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
// out[4·m + i] = ReduceAdd16's lane; single[j] = _mm512_reduce_add_ps(a[j]).
__attribute__((target("avx512f"))) void Reduce(const float* values, float* out, float* single) {
  __m512 a[16];
  for (int j = 0; j < 16; ++j) {
    a[j] = _mm512_loadu_ps(values + 16 * j);
    single[j] = _mm512_reduce_add_ps(a[j]);
  }
  _mm512_storeu_ps(out, kernels::ReduceAdd16(a));
}

// Values spread over many magnitudes, so that summing in any other pairing changes the rounded result somewhere.
TEST(ReduceAdd16, EqualsSixteenSingleReductionsBitwise) {
  if (DetectedIsa() < Isa::kAvx512) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> e(-20, 20);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> v(256);
    for (float& x : v) x = std::ldexp(u(rng), e(rng));
    float out[16], single[16];
    Reduce(v.data(), out, single);
    for (int i = 0; i < 4; ++i) {
      for (int m = 0; m < 4; ++m) ASSERT_EQ(out[4 * m + i], single[4 * i + m]) << "trial " << trial;
    }
  }
}
#endif

TEST(SiluMul, WithinTwoUlpsOfStdExpAtEveryLevel) {
  std::vector<float> gate, up;
  for (float g = -110.0f; g <= 110.0f; g += 0.0137f) gate.push_back(g);
  for (float g : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.7f, -88.7f, 89.5f, -89.5f, 1e6f, -1e6f}) gate.push_back(g);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (size_t i = 0; i < gate.size(); ++i) up.push_back(u(rng));
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (isa > DetectedIsa()) continue;
    for (int64_t n : {int64_t{1}, int64_t{15}, static_cast<int64_t>(gate.size())}) {  // masked tails
      std::vector<float> out(n);
      SiluMul(isa, gate.data(), up.data(), n, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const double want = gate[i] / (1.0 + std::exp(-static_cast<double>(gate[i]))) * up[i];
        const double ulp = std::ldexp(1.0, std::ilogb(std::max(std::fabs(want), 1e-38)) - 23);
        // silu rounds three times (exp, divide, multiply) on top of e^x's own error; below 1e-36 float's e^x has
        // overflowed (e^89 > FLT_MAX) and the result is ±0 on every path.
        ASSERT_LE(std::fabs(out[i] - want), 4 * ulp + 1e-36) << IsaName(isa) << " gate " << gate[i] << " up " << up[i];
      }
    }
  }
}

}  // namespace
}  // namespace moed::cpu
