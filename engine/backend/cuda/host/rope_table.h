// RoPE inverse frequencies of the CUDA backend, computed once on the host with the CPU twin's own function and
// uploaded as a table (device powf differs from the host's by an ulp, which at position 5000 moves the angle ~3e-4).
#pragma once

#include <vector>

#include "engine/model/model_spec.h"

namespace moed::cuda {

// (head_dim / 2) floats: inv_freq[i] = 1 / theta^(2i / head_dim), bit for bit the CPU backend's values.
std::vector<float> RopeInvFreqTable(const ModelSpec& spec);

}  // namespace moed::cuda
