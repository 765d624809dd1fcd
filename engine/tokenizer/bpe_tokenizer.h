// Tokenizer from a tokenizer.json with a BPE model: byte-level (GPT-2/Qwen/OLMoE) or Metaspace with
// byte fallback (Llama/Mistral).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/model_dir_config.h"
#include "engine/tokenizer/pretokenizer.h"
#include "engine/tokenizer/tokenizer_base.h"
#include "nlohmann/json.hpp"

namespace moed {

// Encode: added tokens split out → normalizer → pre-tokenizer → BPE → post-processor template
// (e.g. BOS). Decode follows the decoder: ByteLevel maps characters back to bytes; a Metaspace /
// Replace+ByteFallback decoder turns "▁" into a space, <0xNN> into bytes and may strip one
// leading space. Immutable after Load; thread-safe.
class BpeTokenizer final : public TokenizerBase {
 public:
  // `path` is only used in error messages.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(const nlohmann::json& json, const std::string& path,
                                                                const ModelDirTokenConfig& config);
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Load(const std::string& path, const ModelDirTokenConfig& config);

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override;

 private:
  BpeTokenizer(BpeModel model, AddedTokenMatcher added, Normalizer normalizer, PreTokenizer pre_tokenizer)
      : model_(std::move(model)), added_(std::move(added)), normalizer_(std::move(normalizer)),
        pre_tokenizer_(std::move(pre_tokenizer)) {}
  absl::Status ReadPostProcessor(const nlohmann::json& post);  // fills prefix/suffix ids and BOS

  BpeModel model_;
  AddedTokenMatcher added_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  std::vector<int32_t> prefix_ids_;  // post-processor tokens before the sequence (BOS)
  std::vector<int32_t> suffix_ids_;  // ... and after it
  std::string path_;
};

}  // namespace moed
