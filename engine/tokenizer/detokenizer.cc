// IncrementalDetokenizer: streams whole UTF-8 characters; same output as Tokenizer::Decode.
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace moed {

void IncrementalDetokenizer::EndByteRun() {
  if (!byte_run_invalid_ && !byte_run_.empty()) {
    if (utf8::IsValid(byte_run_)) {
      pending_ += byte_run_;
    } else {
      for (size_t i = 0; i < byte_run_.size(); ++i) pending_ += utf8::kReplacement;
    }
  }
  byte_run_.clear();
  byte_run_invalid_ = false;
}

std::string IncrementalDetokenizer::EmitComplete(bool flush) {
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const size_t len = utf8::ValidCharLength(pending_, pos);
    if (len > 0) {
      out.append(pending_, pos, len);
      pos += len;
      continue;
    }
    if (!flush && utf8::IsIncompletePrefix(pending_, pos)) break;  // may complete with the next token
    out += utf8::kReplacement;
    pos += utf8::MaximalSubpartLength(pending_, pos);
  }
  pending_.erase(0, pos);
  if (!emitted_any_ && !out.empty()) {
    emitted_any_ = true;
    if (tokenizer_.strips_leading_space() && out.front() == ' ') out.erase(0, 1);
  }
  return out;
}

std::string IncrementalDetokenizer::Push(int32_t id) {
  if (!tokenizer_.IsByteFallback(id)) {
    EndByteRun();
    pending_ += tokenizer_.TokenBytes(id);
    return EmitComplete(/*flush=*/false);
  }
  // A byte run is resolved as a whole (valid → its text, else U+FFFD per byte), so a valid-so-far
  // run is held until it ends; once it can never be valid, each byte is one U+FFFD right away.
  const std::string byte = tokenizer_.TokenBytes(id);
  if (byte_run_invalid_) {
    pending_ += utf8::kReplacement;
    return EmitComplete(/*flush=*/false);
  }
  byte_run_ += byte;
  size_t pos = 0;
  while (pos < byte_run_.size()) {
    const size_t len = utf8::ValidCharLength(byte_run_, pos);
    if (len == 0) break;
    pos += len;
  }
  const bool can_still_be_valid = pos == byte_run_.size() || utf8::IsIncompletePrefix(byte_run_, pos);
  if (can_still_be_valid) return std::string();
  for (size_t i = 0; i < byte_run_.size(); ++i) pending_ += utf8::kReplacement;
  byte_run_.clear();
  byte_run_invalid_ = true;
  return EmitComplete(/*flush=*/false);
}

std::string IncrementalDetokenizer::Finish() {
  EndByteRun();
  return EmitComplete(/*flush=*/true);
}

}  // namespace moed
