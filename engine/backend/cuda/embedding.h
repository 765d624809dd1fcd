// Embedding gather: out (n, hidden) fp32 = table[ids[i]] (bf16 table (vocab, hidden)).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

// ids must be < vocab (validated on the host before the launch).
cudaError_t LaunchEmbedding(const int32_t* ids, int n, const __nv_bfloat16* table, int hidden, float* out,
                            cudaStream_t stream);

}  // namespace moed::cuda
