// RoPE inverse frequencies of the CUDA backend, computed once on the host with the CPU twin's own function and
// uploaded as a table (device powf differs from the host's by an ulp, which at position 5000 moves the angle ~3e-4).
#pragma once

#include <vector>

#include "engine/model/model_spec.h"

namespace moed::cuda {

// (rope.dim / 2) floats: RopeInvFreq(spec.attention.rope), bit for bit the CPU backend's values.
std::vector<float> RopeInvFreqTable(const ModelSpec& spec);

}  // namespace moed::cuda
