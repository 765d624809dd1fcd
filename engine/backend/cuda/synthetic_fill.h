// Device-side generation of synthetic weights, value-for-value equal to the host rule in engine/model/synthetic_model.h.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

// dst[i] = bf16(scale · (2·SyntheticUniform(seed, i) − 1)) for i < n.
cudaError_t LaunchSyntheticFill(__nv_bfloat16* dst, int64_t n, uint64_t seed, float scale, cudaStream_t stream);

}  // namespace moed::cuda
