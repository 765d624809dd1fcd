// RoPE table: delegates to the CPU backend's RopeInvFreq so both backends rotate by the same angles.
#include "engine/backend/cuda/host/rope_table.h"

#include "engine/backend/cpu/ops.h"

namespace moed::cuda {

std::vector<float> RopeInvFreqTable(const ModelSpec& spec) {
  std::vector<float> table(spec.head_dim > 0 ? spec.head_dim / 2 : 0);
  if (!table.empty()) cpu::RopeInvFreq(spec.rope_theta, spec.head_dim, table.data());
  return table;
}

}  // namespace moed::cuda
