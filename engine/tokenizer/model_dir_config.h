// BOS/EOS facts of a model directory: tokenizer_config.json, generation_config.json, config.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moed {

struct ModelDirTokenConfig {
  std::optional<bool> add_bos_token;  // tokenizer_config.json; nullopt when absent
  std::optional<bool> add_eos_token;
  std::optional<std::string> tokenizer_class;
  std::optional<std::string> bos_token;  // token text from tokenizer_config.json
  std::optional<std::string> eos_token;
  std::vector<int32_t> eos_token_ids;  // generation_config.json, else config.json (int or list)
  // tokenizer.json (read only beside a tokenizer.model) pre-tokenizes with Metaspace prepend_scheme "first": the
  // "▁" is prepended to the first segment only when it does not already start with a space. False otherwise
  // (legacy files prepend always, as SentencePiece's add_dummy_prefix does).
  bool metaspace_prepend_first = false;
};

// Reads the optional JSON files of `model_dir`. A file that is absent is skipped; a file that is
// present but malformed is an error naming it.
absl::StatusOr<ModelDirTokenConfig> ReadModelDirTokenConfig(const std::string& model_dir);

// Reads and parses a JSON file; errors name the file.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);

}  // namespace moed
