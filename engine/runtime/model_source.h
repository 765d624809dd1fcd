// What `--model` names, opened with its tokenizer: a model directory, or a synthetic model ("synthetic:<name>",
// "synthetic:<name>-small": random weights at a published shape) that borrows a tokenizer or takes ids only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed {

struct ModelSourceOptions {
  // The backend the model will run on, already resolved ("cpu" or "cuda", see ResolveBackendKind). A synthetic
  // model's weights are generated on the host for "cpu" and left for the device to generate for "cuda".
  std::string backend = "cpu";
  // A directory to load the tokenizer from instead of the model's own. Empty: the model directory's tokenizer;
  // for a synthetic model, an ids-only tokenizer (text prompts are refused with a message naming this option).
  std::string tokenizer_dir;
  float synthetic_router_skew = 0.0f;  // SyntheticOptions::router_skew
  int synthetic_layers = 0;            // SyntheticOptions::num_layers
  uint64_t synthetic_seed = 1;
};

struct OpenedModel {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};

// True when `model` names a synthetic model ("synthetic:" prefix).
bool IsSyntheticModelName(std::string_view model);

// Opens `model` (a directory or a synthetic name) and its tokenizer. Errors name what was wrong: the directory's
// file, the unknown synthetic name with the known ones, or the tokenizer directory.
absl::StatusOr<OpenedModel> OpenModel(const std::string& model, const ModelSourceOptions& options);

// A tokenizer for models served without one: Encode refuses text (INVALID_ARGUMENT, naming `hint`), and each id
// decodes to "<id>" so streamed output stays visible. `vocab_size` is the model's.
std::unique_ptr<Tokenizer> MakeIdsOnlyTokenizer(int vocab_size, std::string hint);

}  // namespace moed
