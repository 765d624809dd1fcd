// Helpers of the GPU tests: skipping without a device, device vectors with poisoned contents, random bf16 data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/cuda_backend.h"
#include "engine/model/dtype.h"
#include "gtest/gtest.h"

namespace moed::gpu_test {
// MOED_REQUIRE_GPU=1 in the environment: a device run, where "no device" is a failure, not a skip.
inline bool GpuRequired() {
  const char* env = std::getenv("MOED_REQUIRE_GPU");
  return env != nullptr && std::string(env) == "1";
}
}  // namespace moed::gpu_test

// Skips the current test only when there is truly no CUDA device (CI, the build machine) and MOED_REQUIRE_GPU is not
// 1; a device that is there but unusable (driver/runtime mismatch, another runtime error, compute capability < 8.0)
// fails the test with CheckCudaDevice's detail. Use at the top of a TEST body.
#define MOED_REQUIRE_GPU()                                                                               \
  do {                                                                                                   \
    const ::moed::CudaDeviceReport moed_device_ = ::moed::CheckCudaDevice();                             \
    if (moed_device_.state == ::moed::CudaDeviceState::kNoDevice && !::moed::gpu_test::GpuRequired()) {  \
      GTEST_SKIP() << moed_device_.detail;                                                               \
    }                                                                                                    \
    ASSERT_EQ(moed_device_.state, ::moed::CudaDeviceState::kUsable)                                      \
        << moed_device_.detail << (::moed::gpu_test::GpuRequired() ? " (MOED_REQUIRE_GPU=1)" : "");      \
  } while (0)

#define MOED_CUDA_ASSERT(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

namespace moed::gpu_test {

// The repository root: $MOED_SOURCE_DIR when set (the GPU machine runs a copy of the tree elsewhere), else the
// path compiled in.
inline std::string SourceDir() {
  const char* env = std::getenv("MOED_SOURCE_DIR");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(MOED_SOURCE_DIR);
}

// A device array of n T's, filled with 0xFF bytes (NaN for float/bf16, -1 for ints) so unwritten outputs show.
template <typename T>
class DevVec {
 public:
  explicit DevVec(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(&p_, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess);
    Poison();
  }
  explicit DevVec(const std::vector<T>& host) : DevVec(host.size()) { Upload(host); }
  ~DevVec() { cudaFree(p_); }
  DevVec(const DevVec&) = delete;
  DevVec& operator=(const DevVec&) = delete;

  void Poison() { EXPECT_EQ(cudaMemset(p_, 0xFF, std::max<size_t>(n_, 1) * sizeof(T)), cudaSuccess); }
  void Upload(const std::vector<T>& host) {
    EXPECT_EQ(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> Download() const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<T> host(n_);
    EXPECT_EQ(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T* get() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

using bf16 = __nv_bfloat16;

inline bf16 ToBf16(float f) {
  const uint16_t bits = FloatToBf16(f);
  bf16 b;
  std::memcpy(&b, &bits, sizeof b);
  return b;
}
inline float FromBf16(bf16 b) {
  uint16_t bits;
  std::memcpy(&bits, &b, sizeof bits);
  return Bf16ToFloat(bits);
}

// n uniform values in [-scale, scale], already rounded to bf16 precision (so host and device see the same numbers).
inline std::vector<float> RandomBf16Values(size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = Bf16ToFloat(FloatToBf16(d(rng)));
  return v;
}
inline std::vector<bf16> ToBf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToBf16(v[i]);
  return out;
}
inline std::vector<float> FromBf16(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FromBf16(v[i]);
  return out;
}

// Max |a − b| / (1 + |b|) over all elements; NaN (an unwritten element) → +inf.
inline double MaxRelErr(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double e = std::abs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::abs(static_cast<double>(b[i])));
    if (!(e == e)) return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

}  // namespace moed::gpu_test
