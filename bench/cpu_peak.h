// Floors for the CPU benchmarks, measured in the benchmark's own run: memcpy bandwidth and the register-only
// multiply-add rate of the instructions the fast kernels use (fp32 FMA, vdpbf16ps).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <vector>

#include "engine/backend/cpu/kernels/isa.h"
#include "engine/common/thread_pool.h"

namespace moed::bench {

inline double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU seconds this process has used (all threads): unlike wall time, not inflated by other processes holding the
// cores of a shared machine.
inline double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// A rate measured both ways: per wall second and per CPU-second of this process.
struct Rate {
  double per_s = 0;
  double per_cpu_s = 0;
};

// `bytes` per second of pass(r), best of 5 passes (r = 0..4), by the wall clock and by this process's CPU time.
template <class Pass>
Rate BestOf5(double bytes, Pass&& pass) {
  Rate best;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = ProcessCpuSeconds();
    pass(r);
    best.per_s = std::max(best.per_s, bytes / SecondsSince(t0));
    best.per_cpu_s = std::max(best.per_cpu_s, bytes / (ProcessCpuSeconds() - c0));
  }
  return best;
}

// Bytes copied per second (each read once and written once), 256 MiB, best of 5.
inline Rate MemcpyRate() {
  const size_t n = size_t{256} << 20;
  std::vector<char> src(n, 1), dst(n, 0);
  return BestOf5(n, [&](int r) {
    std::memcpy(dst.data(), src.data(), n);
    src[r] = dst[n - 1 - r];  // keep the copies observable
  });
}
inline double MemcpyBandwidth() { return MemcpyRate().per_s; }

// Bytes read per second by one thread summing 256 MiB with 32-byte loads (nothing written), best of 5: the floor
// of a kernel that only streams weights (decode), which memcpy's read-and-write rate understates.
__attribute__((target("avx2"))) inline float SumBytesAvx2(const char* p, size_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i)));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i + 32)));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i + 64)));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(reinterpret_cast<const float*>(p + i + 96)));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float s = 0;
  for (float l : lanes) s += l;
  return s;
}
inline Rate ReadRate() {
  if (cpu::DetectedIsa() < cpu::Isa::kAvx2) return {};
  const size_t n = size_t{256} << 20;
  std::vector<char> src(n, 1);
  volatile float sink = 0;
  return BestOf5(n, [&](int) { sink = sink + SumBytesAvx2(src.data(), n); });
}

// 12 independent accumulators kept in registers (no memory traffic; FP multiply-adds cannot be folded without
// -ffast-math, so the loop runs as written): the instruction's throughput limit on one thread.
__attribute__((target("avx512f"))) inline float FmaLoopAvx512(int64_t iters) {
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_set1_ps(0.0f);
  const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_fmadd_ps(x, y, a);
  }
  float s = 0;
  for (auto& a : acc) s += _mm512_reduce_add_ps(a);
  return s;
}
__attribute__((target("avx2,fma"))) inline float FmaLoopAvx2(int64_t iters) {
  __m256 acc[12];
  for (auto& a : acc) a = _mm256_set1_ps(0.0f);
  const __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.999999f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm256_fmadd_ps(x, y, a);
  }
  float s = 0;
  alignas(32) float lanes[8];
  for (auto& a : acc) {
    _mm256_store_ps(lanes, a);
    for (float l : lanes) s += l;
  }
  return s;
}
__attribute__((target("avx512f,avx512bf16"))) inline float DpbfLoop(int64_t iters) {
  __m512 acc[12];
  for (auto& a : acc) a = _mm512_set1_ps(0.0f);
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, x);
  }
  float s = 0;
  for (auto& a : acc) s += _mm512_reduce_add_ps(a);
  return s;
}

// Multiply-adds per second over all of `pool`'s threads, best of 3: fp32 FMA at the widest width the CPU has
// (bf16 = false) or vdpbf16ps (32 per instruction); 0 when the CPU lacks the instruction.
inline Rate PeakMacRate(ThreadPool& pool, bool bf16) {
  using cpu::Isa;
  const Isa isa = cpu::DetectedIsa();
  if (bf16 ? isa < Isa::kAvx512Bf16 : isa < Isa::kAvx2) return {};
  const int64_t iters = 20'000'000;
  const int lanes = bf16 ? 32 : isa >= Isa::kAvx512 ? 16 : 8;
  std::vector<float> sink(pool.size());
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = ProcessCpuSeconds();
    pool.ParallelFor(pool.size(), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        sink[t] = bf16 ? DpbfLoop(iters) : isa >= Isa::kAvx512 ? FmaLoopAvx512(iters) : FmaLoopAvx2(iters);
      }
    });
    best = std::min(best, SecondsSince(t0));
    best_cpu = std::min(best_cpu, ProcessCpuSeconds() - c0);
  }
  const double macs = pool.size() * iters * 12.0 * lanes;
  return {macs / best, macs / best_cpu};
}
inline double PeakMacs(ThreadPool& pool, bool bf16) { return PeakMacRate(pool, bf16).per_s; }

}  // namespace moed::bench
