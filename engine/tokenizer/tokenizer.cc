// Tokenizer::Decode: whole-sequence decode with the semantics of tokenizers' decoders.
#include <optional>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_base.h"
#include "engine/tokenizer/utf8.h"

namespace moed {
namespace {

// A finished run of byte-fallback bytes: itself when valid UTF-8, else one U+FFFD per byte.
void AppendByteRun(const std::string& run, std::string& out) {
  if (utf8::IsValid(run)) {
    out += run;
    return;
  }
  for (size_t i = 0; i < run.size(); ++i) out += utf8::kReplacement;
}

}  // namespace

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string bytes;  // token bytes with byte runs resolved; may still hold ill-formed UTF-8
  std::string run;
  for (const int32_t id : ids) {
    if (IsByteFallback(id)) {
      run += TokenBytes(id);
      continue;
    }
    AppendByteRun(run, bytes);
    run.clear();
    bytes += TokenBytes(id);
  }
  AppendByteRun(run, bytes);
  std::string text = utf8::Lossy(bytes);
  if (strips_leading_space() && !text.empty() && text.front() == ' ') text.erase(0, 1);
  return text;
}

std::optional<unsigned char> ParseBytePiece(const std::string& piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return std::nullopt;
  unsigned value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    unsigned digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<unsigned char>(value);
}

}  // namespace moed
