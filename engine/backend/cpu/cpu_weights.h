// fp32 copies of a Model's weights (the model's one weights structure, held as float vectors), converted once when
// the CPU backend is created.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/model/weights.h"

namespace moed::cpu {

using Floats = std::vector<float>;  // empty = absent

using CpuFfn = FfnOf<Floats>;
using CpuLayer = LayerOf<Floats>;
using CpuWeights = WeightsOf<Floats>;

// Converts every weight the spec needs to fp32, checking presence and element counts.
// Errors name the tensor and expected vs found sizes.
absl::StatusOr<CpuWeights> ConvertWeights(const Model& model);
// Checks the spec as above but converts only the layers l with layers[l] (layers: num_layers entries), and the
// embedding, final norm and lm_head when `ends`; the rest stay empty (the fast path runs them).
absl::StatusOr<CpuWeights> ConvertWeights(const Model& model, const std::vector<bool>& layers, bool ends);

}  // namespace moed::cpu
