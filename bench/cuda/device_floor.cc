// Device floor measurements (D2D copy bandwidth, bf16 GEMM rate).
#include "bench/cuda/device_floor.h"

#include <cstdio>
#include <ctime>
#include <fstream>

#include <cuda_runtime.h>

#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/common/status_macros.h"

namespace moed::bench {

namespace {

// Best time in seconds of `reps` runs of `fn` on the default stream.
template <typename Fn>
absl::StatusOr<double> BestTime(int reps, Fn fn) {
  cudaEvent_t a, b;
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
  MOED_CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(a));
    MOED_RETURN_IF_ERROR(fn());
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(b));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(b));
    float ms = 0.0f;
    MOED_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, a, b));
    if (i > 0 && ms / 1e3 < best) best = ms / 1e3;  // the first run warms up
  }
  (void)cudaEventDestroy(a);
  (void)cudaEventDestroy(b);
  return best;
}

}  // namespace

absl::StatusOr<DeviceFloor> MeasureDeviceFloor() {
  DeviceFloor f;
  const size_t bytes = size_t{2} << 30;
  cuda::DeviceBuffer src, dst;
  MOED_RETURN_IF_ERROR(src.Reserve(bytes, "bandwidth probe"));
  MOED_RETURN_IF_ERROR(dst.Reserve(bytes, "bandwidth probe"));
  MOED_ASSIGN_OR_RETURN(const double copy_s, BestTime(6, [&]() -> absl::Status {
    return cuda::CudaStatus(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice), "D2D copy");
  }));
  f.bandwidth_bytes_per_s = 2.0 * bytes / copy_s;

  const int64_t n = 8192;
  cuda::DeviceBuffer a, b, c;
  MOED_RETURN_IF_ERROR(a.Reserve(n * n * 2, "GEMM probe"));
  MOED_RETURN_IF_ERROR(b.Reserve(n * n * 2, "GEMM probe"));
  MOED_RETURN_IF_ERROR(c.Reserve(n * n * 2, "GEMM probe"));
  // Random values: on constant data a Hopper GEMM runs ~12% faster than on real data, which would flatter every ratio.
  MOED_CUDA_RETURN_IF_ERROR(cuda::LaunchSyntheticFill(a.as<__nv_bfloat16>(), n * n, 101, 1.0f, nullptr));
  MOED_CUDA_RETURN_IF_ERROR(cuda::LaunchSyntheticFill(b.as<__nv_bfloat16>(), n * n, 102, 1.0f / 90.0f, nullptr));
  MOED_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  MOED_ASSIGN_OR_RETURN(cuda::CublasHandle h, cuda::CublasHandle::Create(nullptr));
  MOED_ASSIGN_OR_RETURN(const double gemm_s, BestTime(6, [&]() {
    return cuda::GemmXWt(h, a.as<__nv_bfloat16>(), n, n, b.as<__nv_bfloat16>(), n, c.get(), cuda::OutType::kBF16);
  }));
  f.bf16_flops_per_s = 2.0 * n * n * n / gemm_s;
  return f;
}

namespace {

std::string Today() {
  const std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  return date;
}

void WriteJson(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream out(path);
  out << j.dump(1) << "\n";
  if (!out) std::fprintf(stderr, "--json: cannot write %s\n", path.c_str());
}

}  // namespace

nlohmann::json DeviceJson() {
  nlohmann::json j = {{"date", Today()}};
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return j;
  j["device"] = p.name;
  j["cc"] = std::to_string(p.major) + "." + std::to_string(p.minor);
  j["memory_gib"] = p.totalGlobalMem / 1073741824.0;
  return j;
}

int RunOnEachModel(
    const std::vector<std::string>& models, const std::string& json_path,
    const std::function<absl::Status(const std::string& model, const DeviceFloor& floor, BenchRows& rows)>& bench) {
  PrintDeviceHeader();
  nlohmann::json report = {{"device", DeviceJson()}, {"rows", nlohmann::json::array()}};
  auto floor = MeasureDeviceFloor();
  if (!floor.ok()) {
    std::fprintf(stderr, "floor: %s\n", std::string(floor.status().message()).c_str());
    report["error"] = "floor: " + std::string(floor.status().message());
    WriteJson(json_path, report);
    return 1;
  }
  std::printf("# floor: D2D copy %.2f TB/s (read+write), bf16 GEMM 8192^3 on random data %.1f TFLOP/s\n",
              floor->bandwidth_bytes_per_s / 1e12, floor->bf16_flops_per_s / 1e12);
  report["floor"] = {{"copy_bytes_per_s", floor->bandwidth_bytes_per_s}, {"bf16_flops_per_s", floor->bf16_flops_per_s}};
  for (const std::string& m : models) {
    if (const absl::Status st = bench(m, *floor, report["rows"]); !st.ok()) {
      std::fprintf(stderr, "%s: %s\n", m.c_str(), std::string(st.message()).c_str());
      report["error"] = m + ": " + std::string(st.message());
      WriteJson(json_path, report);
      return 1;
    }
    WriteJson(json_path, report);  // what is done so far survives a later crash or time-out
  }
  return 0;
}

void PrintDeviceHeader() {
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return;
  std::printf("# device: %s (cc %d.%d, %.1f GiB), date: %s\n", p.name, p.major, p.minor,
              p.totalGlobalMem / 1073741824.0, Today().c_str());
}

}  // namespace moed::bench
