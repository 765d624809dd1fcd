// Hardware floors measured on the device in the same run: copy bandwidth and bf16 tensor-core GEMM rate.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace moed::bench {

struct DeviceFloor {
  double bandwidth_bytes_per_s = 0.0;  // device-to-device copy of 2 GiB, read + write bytes counted
  double bf16_flops_per_s = 0.0;       // cuBLAS bf16 GEMM 8192³ on random data, fp32 accumulation
};

// The rows a benchmark reports, one JSON object each (shape, size, time_ms, floor_ms, fraction = floor / time).
using BenchRows = nlohmann::json;

// Runs both measurements on device 0 (best of several repetitions). Prints nothing.
absl::StatusOr<DeviceFloor> MeasureDeviceFloor();

// "NVIDIA H100 80GB HBM3, cc 9.0" and today's date, for RESULTS.md.
void PrintDeviceHeader();

// {"device": "NVIDIA H100 80GB HBM3", "cc": "9.0", "date": "2026-11-27"} of device 0.
nlohmann::json DeviceJson();

// The common main of the GPU benchmarks: prints the device header, measures and prints the floor, then runs
// `bench` for each model, which prints its table and appends its rows. When `json_path` is not empty it writes
// {"device": DeviceJson(), "floor": {...}, "rows": [...], "error": "..."} there, also after a failure.
// Returns the process exit code (1 on the first error, which is printed).
int RunOnEachModel(
    const std::vector<std::string>& models, const std::string& json_path,
    const std::function<absl::Status(const std::string& model, const DeviceFloor& floor, BenchRows& rows)>& bench);

}  // namespace moed::bench
