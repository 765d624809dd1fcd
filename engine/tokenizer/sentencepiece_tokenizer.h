// SentencePiece tokenizer (tokenizer.model) with the Llama/Mistral conventions transformers applies.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/model_dir_config.h"
#include "engine/tokenizer/sentencepiece_model.h"
#include "engine/tokenizer/tokenizer_base.h"

namespace moed {

// Encode: control/unknown pieces written in the text (<s>, </s>, <unk>) are split out and become
// their ids, as transformers matches special tokens; the first text segment gets SentencePiece's
// dummy "▁" prefix, later ones (after a special token) do not (Metaspace prepend_scheme "first"); when
// tokenizer.json says prepend_scheme "first", a first segment that starts with a space gets no prefix either.
// BOS is prepended when add_bos_token is true or absent; EOS appended when add_eos_token is true.
// Decode: "▁" → space, <0xNN> → byte, control/unknown pieces → their text; one leading space stripped.
class SentencePieceTokenizer final : public TokenizerBase {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(const std::string& model_path,
                                                                       const ModelDirTokenConfig& config);
  ~SentencePieceTokenizer() override;

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view text) const override;

 private:
  SentencePieceTokenizer() = default;
  absl::Status EncodeSegment(std::string_view segment, bool first, std::vector<int32_t>& ids) const;

  std::unique_ptr<SentencePieceModel> sp_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // text → id, longest text first
  bool add_eos_ = false;
  bool prepend_first_ = false;  // ModelDirTokenConfig::metaspace_prepend_first
  std::string model_path_;
};

}  // namespace moed
