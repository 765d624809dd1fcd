// SentencePieceTokenizer: libsentencepiece for the segmentation, our own tables for decoding.
#include "engine/tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"

namespace moed {
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& model_path, const ModelDirTokenConfig& config) {
  std::unique_ptr<SentencePieceTokenizer> tok(new SentencePieceTokenizer());
  tok->model_path_ = model_path;
  std::string error;
  tok->sp_ = SentencePieceModel::Load(model_path, &error);
  if (tok->sp_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": cannot load SentencePiece model: ", error));
  }
  const int n = tok->sp_->size();
  tok->ResizeTables(n);
  for (int id = 0; id < n; ++id) {
    const std::string piece = tok->sp_->IdToPiece(id);
    if (tok->sp_->IsControl(id) || tok->sp_->IsUnknown(id)) {
      tok->token_bytes_[id] = piece;
      tok->special_[id] = 1;
      if (!piece.empty()) tok->specials_.emplace_back(piece, id);
      continue;
    }
    const std::optional<unsigned char> byte = tok->sp_->IsByte(id) ? ParseBytePiece(piece) : std::nullopt;
    if (byte) {
      tok->token_bytes_[id] = std::string(1, static_cast<char>(*byte));
      tok->byte_fallback_[id] = 1;
      continue;
    }
    std::string text;
    for (size_t pos = 0; pos < piece.size();) {
      if (piece.compare(pos, 3, "\xE2\x96\x81") == 0) {  // "▁"
        text.push_back(' ');
        pos += 3;
      } else {
        text.push_back(piece[pos++]);
      }
    }
    tok->token_bytes_[id] = std::move(text);
  }
  std::stable_sort(tok->specials_.begin(), tok->specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  tok->strips_leading_space_ = true;
  if (config.add_bos_token.value_or(true)) {
    const int bos = tok->sp_->bos_id();
    if (bos < 0 || bos >= n) {
      return absl::InvalidArgumentError(absl::StrCat(model_path, ": add_bos_token is set but the model has no BOS piece"));
    }
    tok->bos_id_ = bos;
  }
  tok->add_eos_ = config.add_eos_token.value_or(false);
  tok->prepend_first_ = config.metaspace_prepend_first;
  tok->eos_ids_ = config.eos_token_ids;
  if (tok->eos_ids_.empty() && tok->sp_->eos_id() >= 0) tok->eos_ids_.push_back(tok->sp_->eos_id());
  return tok;
}

absl::Status SentencePieceTokenizer::EncodeSegment(std::string_view segment, bool first,
                                                   std::vector<int32_t>& ids) const {
  if (segment.empty()) return absl::OkStatus();
  std::vector<int> piece_ids;
  std::string error;
  const bool prefix = first && !(prepend_first_ && segment.front() == ' ');
  if (!sp_->Encode(segment, prefix, &piece_ids, &error)) {
    return absl::InternalError(absl::StrCat(model_path_, ": SentencePiece encode failed: ", error));
  }
  ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(std::string_view text) const {
  std::vector<int32_t> ids;
  if (bos_id_) ids.push_back(*bos_id_);
  size_t segment_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const auto match = std::find_if(specials_.begin(), specials_.end(),
                                    [&](const auto& s) { return text.substr(pos).starts_with(s.first); });
    if (match == specials_.end()) {
      ++pos;
      continue;
    }
    MOED_RETURN_IF_ERROR(EncodeSegment(text.substr(segment_start, pos - segment_start), segment_start == 0, ids));
    ids.push_back(match->second);
    pos += match->first.size();
    segment_start = pos;
  }
  MOED_RETURN_IF_ERROR(EncodeSegment(text.substr(segment_start), segment_start == 0, ids));
  if (add_eos_ && !eos_ids_.empty()) ids.push_back(eos_ids_.front());
  return ids;
}

}  // namespace moed
