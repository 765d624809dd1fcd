// LoadTokenizer: picks SentencePiece (tokenizer.model) or BPE (tokenizer.json) for a model directory.
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/tokenizer/bpe_tokenizer.h"
#include "engine/tokenizer/model_dir_config.h"
#include "engine/tokenizer/sentencepiece_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": not a directory (expected a model directory)"));
  }
  MOED_ASSIGN_OR_RETURN(const ModelDirTokenConfig config, ReadModelDirTokenConfig(model_dir));
  const std::string sp_model = (fs::path(model_dir) / "tokenizer.model").string();
  if (fs::exists(sp_model)) {
    MOED_ASSIGN_OR_RETURN(auto tok, SentencePieceTokenizer::Load(sp_model, config));
    return std::unique_ptr<Tokenizer>(std::move(tok));
  }
  const std::string json = (fs::path(model_dir) / "tokenizer.json").string();
  if (fs::exists(json)) {
    MOED_ASSIGN_OR_RETURN(auto tok, BpeTokenizer::Load(json, config));
    return std::unique_ptr<Tokenizer>(std::move(tok));
  }
  return absl::NotFoundError(absl::StrCat(model_dir, ": neither tokenizer.model nor tokenizer.json found"));
}

}  // namespace moed
