// Model: a ModelSpec plus typed views of every weight, and the storage (mmap'd shards or an arena) behind them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model_spec.h"
#include "engine/model/tensor.h"
#include "engine/model/weights.h"

namespace moed {

// The checkpoint's tensors, bound by the family's weight-name map (see weights.h for the shapes).
using FfnWeights = FfnOf<TensorView>;
using LayerWeights = LayerOf<TensorView>;
using ModelWeights = WeightsOf<TensorView>;

// Owns the bytes behind the views (shard mappings or generated buffers). Immutable after load;
// safe to share between threads.
class Model {
 public:
  ModelSpec spec;
  ModelWeights weights;
  std::string source;  // directory it was loaded from, or "synthetic:<name>"

  // Keeps storage alive; the loader puts mmap'd files or arenas here.
  std::vector<std::shared_ptr<const void>> storage;
};

// Loads <dir>/config.json and the safetensors weights (single file or sharded via
// model.safetensors.index.json), mmap'd. Every tensor the spec needs is checked for presence,
// shape and dtype; errors name the file, the tensor, and expected vs found.
absl::StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& model_dir);

}  // namespace moed
