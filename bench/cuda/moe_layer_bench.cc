// MoE layer alone at published shapes (Mixtral-8x7B, OLMoE-1B-7B, Qwen3-30B-A3B), 1..16384 tokens: time per call
// vs the floor max(bytes of the experts touched / copy bandwidth, FLOPs / bf16 GEMM rate), both measured here.
// All paths in one run, each row naming its path: "grouped" (device-side, RunMoeGrouped, its kernels chosen as moed
// chooses them: GEMV for few rows, tensor-core tiles for many), "grouped-wmma" (the same with the older WMMA tiles,
// the tensor-core kernel's reference; only where the tiles are chosen) and "per-expert" (cuBLAS per expert, RunMoe,
// the reference).
// Usage: gpu-moe-layer-bench [--models a,b] [--tokens 1,64,16384] [--skew 0] [--iters 20]
//        [--paths grouped,grouped-wmma,per-expert] [--json FILE]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/cuda/device_floor.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/moe_layer.h"
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/common/status_macros.h"
#include "engine/model/dtype.h"
#include "engine/model/synthetic_model.h"

namespace moed::bench {
namespace {

using cuda::bf16;

struct Args {
  std::vector<std::string> models = SyntheticModelNames();
  std::vector<int> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
  float skew = 0.0f;
  int iters = 20;
  std::vector<std::string> paths = {"grouped", "grouped-wmma", "per-expert"};
  std::string json;  // rows written here as JSON (device_floor.h)
};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--models") {
      a.models = absl::StrSplit(value, ',');
    } else if (flag == "--tokens") {
      a.tokens.clear();
      for (absl::string_view t : absl::StrSplit(value, ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(t, &n) || n < 1) return absl::InvalidArgumentError("--tokens: bad count '" + std::string(t) + "'");
        a.tokens.push_back(n);
      }
    } else if (flag == "--paths") {
      a.paths = absl::StrSplit(value, ',');
      for (const std::string& p : a.paths) {
        if (p != "grouped" && p != "grouped-wmma" && p != "per-expert") {
          return absl::InvalidArgumentError("--paths: grouped, grouped-wmma or per-expert");
        }
      }
    } else if (flag == "--skew") {
      if (!absl::SimpleAtof(value, &a.skew)) return absl::InvalidArgumentError("--skew: not a number");
    } else if (flag == "--json") {
      a.json = value;
    } else if (flag == "--iters") {
      if (!absl::SimpleAtoi(value, &a.iters) || a.iters < 1) return absl::InvalidArgumentError("--iters: bad count");
    } else {
      return absl::InvalidArgumentError("unknown flag " + flag);
    }
  }
  return a;
}

absl::Status BenchModel(const std::string& name, const Args& args, const DeviceFloor& floor, BenchRows& rows) {
  MOED_ASSIGN_OR_RETURN(const ModelSpec spec, SyntheticModelSpec(name, false));
  const int64_t H = spec.hidden_size, F = spec.moe_intermediate_size, E = spec.num_experts;
  cuda::MoeShape s{static_cast<int>(H), static_cast<int>(E), spec.top_k, static_cast<int>(F), spec.router.norm_topk_prob, 0};

  // One layer's weights, generated on the device; the router on the host (skewed rows).
  cuda::DeviceBuffer weights, router_buf, x_buf, out_buf;
  const int64_t per_expert = 3 * H * F;
  MOED_RETURN_IF_ERROR(weights.Reserve(E * per_expert * sizeof(bf16), "expert weights"));
  MOED_CUDA_RETURN_IF_ERROR(
      cuda::LaunchSyntheticFill(weights.as<bf16>(), E * per_expert, 7, std::sqrt(3.0f / H), nullptr));
  std::vector<uint16_t> router(E * H);
  for (int64_t i = 0; i < E * H; ++i) {
    const float row_scale = std::exp(-args.skew * static_cast<float>(i / H) / static_cast<float>(E));
    router[i] = FloatToBf16(row_scale * std::sqrt(3.0f / H) * (2.0f * SyntheticUniform(11, i) - 1.0f));
  }
  MOED_RETURN_IF_ERROR(router_buf.Reserve(router.size() * 2, "router"));
  MOED_CUDA_RETURN_IF_ERROR(cudaMemcpy(router_buf.get(), router.data(), router.size() * 2, cudaMemcpyHostToDevice));
  cuda::DeviceLayer layer;
  layer.router = router_buf.as<bf16>();
  for (int64_t e = 0; e < E; ++e) {
    const bf16* base = weights.as<bf16>() + e * per_expert;
    layer.experts.push_back({base, base + H * F, base + 2 * H * F, static_cast<int>(F)});
  }
  MOED_ASSIGN_OR_RETURN(cuda::CublasHandle cublas, cuda::CublasHandle::Create(nullptr));
  cuda::MoeWorkspace ws;
  cuda::DeviceBuffer ptr_table, d_counts;
  cuda::ExpertPointers ptrs;
  MOED_RETURN_IF_ERROR(cuda::BuildExpertPointers(layer, static_cast<int>(E), nullptr, &ptr_table, &ptrs));
  MOED_RETURN_IF_ERROR(d_counts.Reserve(2 * E * sizeof(int32_t), "expert counts"));
  int sm_count = 0;
  MOED_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, 0));
  std::printf("\n## MoE layer, %s shape: hidden %ld, ffn %ld, %ld experts, top-%d, router skew %.2f\n", name.c_str(),
              static_cast<long>(H), static_cast<long>(F), static_cast<long>(E), spec.top_k, args.skew);
  std::printf("%-13s %8s %10s %10s %8s %9s %12s %10s\n", "path", "tokens", "time_ms", "floor_ms", "of_floor",
              "touched", "GB/s_eff", "TFLOP/s");
  for (int T : args.tokens) {
    MOED_RETURN_IF_ERROR(x_buf.Reserve(static_cast<size_t>(T) * H * sizeof(bf16), "activations"));
    MOED_RETURN_IF_ERROR(out_buf.Reserve(static_cast<size_t>(T) * H * sizeof(float), "outputs"));
    MOED_CUDA_RETURN_IF_ERROR(cuda::LaunchSyntheticFill(x_buf.as<bf16>(), T * H, 1000 + T, 1.0f, nullptr));
    for (const std::string& path : args.paths) {
      const bool wmma = path == "grouped-wmma", grouped = path == "grouped" || wmma;
      if (wmma && cuda::UseGemv(T, s.top_k, static_cast<int>(E))) continue;  // the tiles are not used here
      cuda::MoeCounts counts;
      auto run = [&]() {
        if (grouped) {
          return cuda::RunMoeGrouped(cublas, nullptr, s, layer, ptrs, x_buf.as<bf16>(), T,
                                     static_cast<int64_t>(T) * s.top_k, out_buf.as<float>(), &ws,
                                     {d_counts.as<int32_t>(), nullptr}, sm_count,
                                     wmma ? cuda::GroupedKernel::kWmma : cuda::GroupedKernel::kAuto);
        }
        return cuda::RunMoe(cublas, nullptr, s, layer, x_buf.as<bf16>(), T, static_cast<int64_t>(T) * s.top_k,
                            out_buf.as<float>(), &ws, &counts, nullptr, nullptr);
      };
      for (int i = 0; i < 3; ++i) MOED_RETURN_IF_ERROR(run());
      cudaEvent_t a, b;
      MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
      MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
      MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(a));
      for (int i = 0; i < args.iters; ++i) MOED_RETURN_IF_ERROR(run());
      MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(b));
      MOED_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(b));
      float ms = 0.0f;
      MOED_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, a, b));
      (void)cudaEventDestroy(a);
      (void)cudaEventDestroy(b);
      const double t = ms / 1e3 / args.iters;
      if (grouped) {  // the grouped path leaves its counts on the device: routed | kept
        std::vector<int32_t> c(2 * E);
        MOED_CUDA_RETURN_IF_ERROR(
            cudaMemcpy(c.data(), d_counts.get(), c.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));
        counts.kept.assign(c.begin() + E, c.end());
      }
      int touched = 0;
      for (int32_t k : counts.kept) touched += k > 0;
      const double bytes = (static_cast<double>(touched) * per_expert + E * H) * sizeof(bf16);
      const double flops = 2.0 * T * (static_cast<double>(s.top_k) * per_expert + E * H);
      const double fl = std::max(bytes / floor.bandwidth_bytes_per_s, flops / floor.bf16_flops_per_s);
      std::printf("%-13s %8d %10.4f %10.4f %7.1f%% %9d %12.1f %10.1f\n", path.c_str(), T, t * 1e3, fl * 1e3,
                  100.0 * fl / t, touched, bytes / t / 1e9, flops / t / 1e12);
      rows.push_back(
          {{"bench", "moe_layer"},
           {"model", name},
           {"path", path},
           {"tokens", T},
           {"time_ms", t * 1e3},
           {"floor_ms", fl * 1e3},
           {"fraction", fl / t},
           {"experts_touched", touched},
           {"floor_kind", bytes / floor.bandwidth_bytes_per_s >= flops / floor.bf16_flops_per_s ? "hbm" : "flop"}});
    }
  }
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "%s\n", std::string(args.status().message()).c_str());
    return 2;
  }
  return RunOnEachModel(args->models, args->json, [&](const std::string& m, const DeviceFloor& floor, BenchRows& rows) {
    return BenchModel(m, *args, floor, rows);
  });
}

}  // namespace
}  // namespace moed::bench

int main(int argc, char** argv) { return moed::bench::Main(argc, argv); }
