// cpu-kernels-bench: each fast CPU kernel against its floor, measured in the same run, and against the fp32
// reference kernel on the same shapes.
//   decode GEMV (n = 1): weight bytes ÷ memcpy bandwidth (matrices cycled through 256+ MiB so they come from DRAM);
//   decode batches (n = 1–8 tokens of one expert, both fast kernel sets): weight bytes ÷ the read-only bandwidth;
//   prefill GEMM (n = 512): FLOPs ÷ a measured register-only FMA (or vdpbf16ps) rate on the same threads;
//   paged attention: time against the reference.
//   cpu-kernels-bench [--threads N] [--reps N] [--hidden 1024] [--ffn 2816]
// Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "engine/backend/cpu/attention.h"
#include "engine/backend/cpu/kernels/attention_fast.h"
#include "engine/backend/cpu/kernels/isa.h"
#include "engine/backend/cpu/kernels/linear.h"
#include "engine/backend/cpu/ops.h"
#include "engine/common/thread_pool.h"
#include "bench/cpu_peak.h"
#include "nlohmann/json.hpp"

namespace moed::cpu {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best-of-reps seconds of fn().
template <class F>
double Best(int reps, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, Since(t0));
  }
  return best;
}

struct Matrices {  // `count` (rows, cols) bf16 matrices and their fp32 widening
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<std::vector<float>> f32;
  int64_t rows, cols;
};

Matrices MakeMatrices(int count, int64_t rows, int64_t cols, bool with_f32) {
  Matrices m{{}, {}, rows, cols};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (int c = 0; c < count; ++c) {
    std::vector<uint16_t> b(rows * cols);
    for (auto& v : b) v = FloatToBf16(u(rng));
    if (with_f32) {
      std::vector<float> f(b.size());
      for (size_t i = 0; i < b.size(); ++i) f[i] = Bf16ToFloat(b[i]);
      m.f32.push_back(std::move(f));
    }
    m.bf16.push_back(std::move(b));
  }
  return m;
}

int Run(int argc, char** argv) {
  int threads = 2, reps = 5;
  int64_t hidden = 1024, ffn = 2816;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], v = argv[i + 1];
    bool ok = true;
    if (flag == "--threads") ok = absl::SimpleAtoi(v, &threads) && threads > 0;
    else if (flag == "--reps") ok = absl::SimpleAtoi(v, &reps) && reps > 0;
    else if (flag == "--hidden") ok = absl::SimpleAtoi(v, &hidden) && hidden > 0;
    else if (flag == "--ffn") ok = absl::SimpleAtoi(v, &ffn) && ffn > 0;
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "cpu-kernels-bench: bad flag %s %s\n", flag.c_str(), v.c_str());
      return 2;
    }
  }
  ThreadPool pool(threads);
  nlohmann::json j;
  j["threads"] = threads;
  j["detected_isa"] = std::string(IsaName(DetectedIsa()));
  const double bw = bench::MemcpyBandwidth();
  j["memcpy_bytes_per_s"] = bw;
  const double peak_fma = bench::PeakMacs(pool, false);
  const double peak_bf16 = bench::PeakMacs(pool, true);
  j["peak_fp32_fma_macs_per_s"] = peak_fma;
  j["peak_bf16_dot_macs_per_s"] = peak_bf16;

  std::vector<Isa> levels;
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (i <= DetectedIsa()) levels.push_back(i);
  }
  // Decode GEMV: gate-shaped (ffn, hidden) and down-shaped (hidden, ffn) matrices, cycled through ≥ 256 MiB of bf16.
  for (auto [rows, cols] : {std::pair{ffn, hidden}, std::pair{hidden, ffn}}) {
    const int count = static_cast<int>(std::max<int64_t>(8, (int64_t{256} << 20) / (rows * cols * 2)));
    const Matrices m = MakeMatrices(count, rows, cols, /*with_f32=*/true);
    std::vector<float> x(cols, 0.01f), y(rows);
    nlohmann::json row{{"shape", {rows, cols}}, {"n", 1}};
    const double bytes = rows * cols * 2.0;
    row["floor_us_bf16"] = 1e6 * bytes / bw;
    row["floor_us_fp32"] = 2e6 * bytes / bw;
    for (Isa isa : levels) {
      const KernelConfig cfg{isa, 0};
      const double t = Best(reps, [&] {
        for (int c = 0; c < count; ++c) {
          Linear(cfg, x.data(), 1, {m.bf16[c].data(), DType::kBF16, rows, cols}, nullptr, y.data(), &pool);
        }
      }) / count;
      row["fast_bf16_us"][std::string(IsaName(isa))] = 1e6 * t;
    }
    const double tref = Best(reps, [&] {
      for (int c = 0; c < count; ++c) MatMul(x.data(), 1, cols, m.f32[c].data(), rows, nullptr, y.data(), &pool);
    }) / count;
    row["reference_fp32_us"] = 1e6 * tref;
    j["decode_gemv"].push_back(row);
  }
  // Decode batches: n = 1–8 tokens through gate-shaped matrices (one expert's few tokens), cycled through ≥ 256 MiB,
  // with the routed experts' kernels of --cpu-kernels fast (bf16 x, vdpbf16ps) and fast-fp32 (fp32 x). Floor: the
  // weight bytes at the single-stream read rate measured here (one thread reads; with more, each reads its rows).
  {
    const bench::Rate read = bench::ReadRate();
    j["read_bytes_per_s"] = read.per_s;
    const int64_t rows = ffn, cols = hidden;
    const int count = static_cast<int>(std::max<int64_t>(8, (int64_t{256} << 20) / (rows * cols * 2)));
    const Matrices m = MakeMatrices(count, rows, cols, /*with_f32=*/false);
    const double bytes = rows * cols * 2.0;
    for (int64_t n : {1, 2, 3, 4, 6, 8}) {
      std::vector<float> x(n * cols, 0.01f), y(n * rows);
      nlohmann::json row{{"shape", {rows, cols}}, {"n", n}, {"floor_us", 1e6 * bytes / read.per_s}};
      for (const auto& [name, cfg] : {std::pair{"fast", KernelConfig{DetectedIsa(), 1}},
                                      std::pair{"fast-fp32", KernelConfig{DetectedIsa(), 0}}}) {
        const double t = Best(reps, [&] {
          for (int c = 0; c < count; ++c) {
            Linear(cfg, x.data(), n, {m.bf16[c].data(), DType::kBF16, rows, cols}, nullptr, y.data(), &pool);
          }
        }) / count;
        row[std::string(name) + "_us"] = 1e6 * t;
        row[std::string(name) + "_weight_gb_per_s"] = bytes / t / 1e9;
      }
      j["decode_batch_gemv"].push_back(row);
    }
  }
  // Prefill GEMM: 512 tokens through one gate-shaped matrix.
  {
    const int64_t n = 512, rows = ffn, cols = hidden;
    const Matrices m = MakeMatrices(1, rows, cols, true);
    std::vector<float> x(n * cols), y(n * rows);
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
    const double macs = static_cast<double>(n) * rows * cols;
    nlohmann::json row{{"shape", {rows, cols}}, {"n", n}};
    if (peak_fma > 0) row["floor_ms_fp32_fma"] = 1e3 * macs / peak_fma;
    if (peak_bf16 > 0) row["floor_ms_bf16_dot"] = 1e3 * macs / peak_bf16;
    for (Isa isa : levels) {
      const KernelConfig cfg{isa, isa >= Isa::kAvx512Bf16 ? 16 : 0};
      const double t = Best(reps, [&] {
        Linear(cfg, x.data(), n, {m.bf16[0].data(), DType::kBF16, rows, cols}, nullptr, y.data(), &pool);
      });
      row["fast_bf16_ms"][std::string(IsaName(isa))] = 1e3 * t;
      row["fast_bf16_gmacs"][std::string(IsaName(isa))] = macs / t / 1e9;
    }
    const double tref =
        Best(reps, [&] { MatMul(x.data(), n, cols, m.f32[0].data(), rows, nullptr, y.data(), &pool); });
    row["reference_fp32_ms"] = 1e3 * tref;
    row["reference_fp32_gmacs"] = macs / tref / 1e9;
    j["prefill_gemm"] = row;
  }
  // Paged attention: 512 query rows of one sequence (a prefill) and 1 row at position 511 (decode), 8/2 heads, hd 128.
  {
    const int heads = 8, kvh = 2, hd = 128, block = 16, ctx = 512;
    std::vector<int32_t> table(ctx / block);
    for (int b = 0; b < ctx / block; ++b) table[b] = (b * 7) % (ctx / block);
    const int64_t width = static_cast<int64_t>(kvh) * hd;
    std::vector<float> cache(ctx * 2 * width);  // the backend's layout: per token K then V
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& f : cache) f = u(rng);
    const KvLayerView kv{cache.data(), cache.data() + width, block, kvh, hd, 2 * width};
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int nrows : {1, ctx}) {
      std::vector<QueryRow> rows;
      for (int r = 0; r < nrows; ++r) rows.push_back({nrows == 1 ? ctx - 1 : r, table.data()});
      std::vector<float> q(nrows * heads * hd, 0.1f), out(q.size());
      nlohmann::json row{{"query_rows", nrows}, {"context", ctx}};
      row["reference_us"] =
          1e6 * Best(reps, [&] { PagedAttention(kv, rows, q.data(), heads, 0, scale, out.data(), &pool); });
      for (Isa isa : levels) {
        row["fast_us"][std::string(IsaName(isa))] =
            1e6 * Best(reps, [&] { PagedAttentionFast(isa, kv, rows, q.data(), heads, 0, scale, out.data(), &pool); });
      }
      j["attention"].push_back(row);
    }
  }
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace moed::cpu

int main(int argc, char** argv) { return moed::cpu::Run(argc, argv); }
