// RoPE table: the model definition's RopeInvFreq (the one the CPU backend uses), so both backends rotate by the same
// angles.
#include "engine/backend/cuda/host/rope_table.h"

#include "engine/model/rope.h"

namespace moed::cuda {

std::vector<float> RopeInvFreqTable(const ModelSpec& spec) {
  if (spec.attention.rope.dim <= 0) return {};
  return RopeInvFreq(spec.attention.rope);
}

}  // namespace moed::cuda
