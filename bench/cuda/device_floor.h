// Hardware floors measured on the device in the same run: copy bandwidth and bf16 tensor-core GEMM rate.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moed::bench {

struct DeviceFloor {
  double bandwidth_bytes_per_s = 0.0;  // device-to-device copy of 2 GiB, read + write bytes counted
  double bf16_flops_per_s = 0.0;       // cuBLAS bf16 GEMM 8192³, fp32 accumulation
};

// Runs both measurements on device 0 (best of several repetitions). Prints nothing.
absl::StatusOr<DeviceFloor> MeasureDeviceFloor();

// "NVIDIA H100 80GB HBM3, cc 9.0" and today's date, for RESULTS.md.
void PrintDeviceHeader();

// The common main of the GPU benchmarks: prints the device header, measures and prints the floor, then runs
// `bench` for each model. Returns the process exit code (1 on the first error, which is printed).
int RunOnEachModel(const std::vector<std::string>& models,
                   const std::function<absl::Status(const std::string& model, const DeviceFloor& floor)>& bench);

}  // namespace moed::bench
