// The expert cache bench's device figures (bench/cuda/expert_cache_bench.py): host-to-device bandwidth of pinned
// memory, the D2D copy bandwidth, the free device memory, and the share of the full synthetic model's routed experts
// that would stay resident on this device (the fraction the reduced-layer run imposes).
// Usage: gpu-expert-cache-floor-bench [--model mixtral-8x7b] [--kv-bytes N] [--json FILE]
#include <cstdio>
#include <fstream>
#include <string>

#include <cuda_runtime.h>

#include "absl/strings/numbers.h"
#include "bench/cuda/device_floor.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/cuda_weights.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/cache/slot_sizing.h"
#include "engine/common/status_macros.h"
#include "engine/model/synthetic_model.h"

namespace moed::bench {
namespace {

constexpr int64_t kActivationHeadroom = int64_t{1} << 30;  // as the CUDA backend leaves beside the slots

// Best of `reps` pinned host → device copies of 1 GiB, in bytes per second.
absl::StatusOr<double> MeasureH2D(int reps) {
  const size_t bytes = size_t{1} << 30;
  cuda::PinnedBuffer host;
  cuda::DeviceBuffer dev;
  MOED_RETURN_IF_ERROR(host.Reserve(bytes, "H2D probe (host)"));
  MOED_RETURN_IF_ERROR(dev.Reserve(bytes, "H2D probe"));
  cudaEvent_t a, b;
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
  float best_ms = 1e30f;
  for (int r = 0; r < reps; ++r) {
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(a));
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dev.get(), host.as<char>(), bytes, cudaMemcpyHostToDevice));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(b));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(b));
    float ms = 0;
    MOED_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, a, b));
    best_ms = std::min(best_ms, ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return bytes / (best_ms / 1e3);
}

int Main(int argc, char** argv) {
  std::string model = "mixtral-8x7b", json_path;
  int64_t kv_bytes = int64_t{1} << 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") {
      model = value;
    } else if (flag == "--json") {
      json_path = value;
    } else if (flag == "--kv-bytes") {
      if (!absl::SimpleAtoi(value, &kv_bytes)) return std::fprintf(stderr, "--kv-bytes: not a number\n"), 2;
    } else {
      return std::fprintf(stderr, "unknown flag %s\n", flag.c_str()), 2;
    }
  }
  nlohmann::json out = {{"device", DeviceJson()}};
  auto fail = [&](const absl::Status& st) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    out["error"] = std::string(st.message());
    if (!json_path.empty()) std::ofstream(json_path) << out.dump(1) << "\n";
    return 1;
  };
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return fail(absl::UnavailableError("cudaMemGetInfo failed"));
  SyntheticOptions so;
  so.materialize = false;
  auto m = CreateSyntheticModel(model, so);
  if (!m.ok()) return fail(m.status());
  auto bytes = cuda::MeasureWeights(**m);
  if (!bytes.ok()) return fail(bytes.status());
  auto floor = MeasureDeviceFloor();
  if (!floor.ok()) return fail(floor.status());
  auto h2d = MeasureH2D(5);
  if (!h2d.ok()) return fail(h2d.status());
  const int64_t room = static_cast<int64_t>(free_b) - bytes->dense - kv_bytes - kActivationHeadroom;
  const double fraction = cache::LargestFittingFraction(bytes->routed, room);
  out["free_bytes"] = free_b;
  out["total_bytes"] = total_b;
  out["model"] = model;
  out["dense_bytes"] = bytes->dense;
  out["routed_bytes"] = bytes->routed;
  out["kv_bytes"] = kv_bytes;
  out["resident_fraction"] = fraction;
  out["copy_bytes_per_s"] = floor->bandwidth_bytes_per_s;
  out["h2d_bytes_per_s"] = *h2d;
  std::printf("# %s: dense %.2f GiB, routed experts %.2f GiB; %.2f GiB free of %.2f GiB -> %.2f of the routed experts "
              "resident\n# D2D copy %.2f TB/s, pinned H2D %.1f GB/s\n",
              model.c_str(), bytes->dense / 1073741824.0, bytes->routed / 1073741824.0, free_b / 1073741824.0,
              total_b / 1073741824.0, fraction, floor->bandwidth_bytes_per_s / 1e12, *h2d / 1e9);
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(1) << "\n";
  return 0;
}

}  // namespace
}  // namespace moed::bench

int main(int argc, char** argv) { return moed::bench::Main(argc, argv); }
