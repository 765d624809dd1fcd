// Model weights on the device: bf16, one arena; q/k/v and each FFN's gate/up stored concatenated for one GEMM each.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/model/model.h"
#include "engine/model/weights.h"

namespace moed::cuda {

using bf16 = __nv_bfloat16;

// The model's one weights structure held as device pointers (shapes in engine/model/weights.h). Upload places q, k, v
// back to back, so q_proj is the (q_dim + 2*kv_dim, hidden) qkv matrix of one GEMM; likewise each FFN's gate is the
// (2*width, hidden) gate|up matrix (up == gate + width*hidden). Absent tensors are null.
using DeviceFfn = FfnOf<const bf16*>;
using DeviceLayer = LayerOf<const bf16*>;

struct DeviceWeights : WeightsOf<const bf16*> {
  int64_t bytes = 0;                 // device bytes of the arena
  DeviceBuffer arena;
};

// Copies (converting to bf16 where the checkpoint is f16/f32) every weight of `model` to the device. Absent large
// tensors of a synthetic model are generated on the device. Not enough free device memory → RESOURCE_EXHAUSTED with
// the bytes needed and free. Every copy and fill runs on `stream` (host data staged through pinned buffers in large
// chunks); returns once they are done.
// routed_on_host: the routed experts are not uploaded (their DeviceLayer pointers stay null): the hot-expert cache
// keeps them in its host tier (host/expert_host_tier.h) and copies them into device slots on demand.
absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const Model& model, cudaStream_t stream,
                                                             bool routed_on_host = false);

// Device bytes UploadWeights would place (alignment included): without the routed experts, and the routed experts.
struct WeightBytes {
  int64_t dense = 0;
  int64_t routed = 0;
};
absl::StatusOr<WeightBytes> MeasureWeights(const Model& model);

}  // namespace moed::cuda
