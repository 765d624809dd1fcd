// Token classification by the code points of a token's decoded bytes.
#include "engine/moe/token_class.h"

#include <optional>
#include <vector>

namespace moed {
namespace {

// Whole UTF-8 code points of `s`, or nullopt when `s` is not valid UTF-8 on its own.
std::optional<std::vector<uint32_t>> CodePoints(std::string_view s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return std::nullopt;
    uint32_t cp = len == 1 ? b : b & (0xFF >> (len + 1));
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 0x2) return std::nullopt;
      cp = (cp << 6) | (c & 0x3F);
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

bool IsSpace(uint32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0B || c == 0x0C ||
                                  c == 0xA0 || c == 0x3000 || c == 0x2581; }
bool IsCjk(uint32_t c) {
  return (c >= 0x3000 && c <= 0x30FF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
         (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF) ||
         (c >= 0x20000 && c <= 0x2FA1F);
}
bool IsLetter(uint32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) ||
         (c >= 0x370 && c <= 0x52F);
}
bool IsDigit(uint32_t c) { return c >= '0' && c <= '9'; }
bool IsCodeSymbol(uint32_t c) {
  static constexpr std::string_view kCode = "{}[]<>=+*/\\|&^%$#@~`_";
  return c < 0x80 && kCode.find(static_cast<char>(c)) != std::string_view::npos;
}
bool IsProsePunct(uint32_t c) {
  static constexpr std::string_view kPunct = ".,!?;:'\"-()";
  return (c < 0x80 && kPunct.find(static_cast<char>(c)) != std::string_view::npos) ||
         (c >= 0x2010 && c <= 0x205E) || c == 0xA1 || c == 0xBF || c == 0xAB || c == 0xBB;
}

}  // namespace

TokenClass ClassifyToken(std::string_view bytes, bool is_special, bool is_byte_fallback) {
  if (is_special) return TokenClass::kSpecial;
  if (is_byte_fallback) return TokenClass::kBytes;
  if (bytes.empty()) return TokenClass::kSpecial;
  const std::optional<std::vector<uint32_t>> cps = CodePoints(bytes);
  if (!cps) return TokenClass::kBytes;
  int letters = 0, digits = 0, punct = 0, code = 0, other = 0, visible = 0;
  for (uint32_t c : *cps) {
    if (IsSpace(c)) continue;
    ++visible;
    if (IsCjk(c)) return TokenClass::kCjk;
    if (IsLetter(c)) ++letters;
    else if (IsDigit(c)) ++digits;
    else if (IsCodeSymbol(c)) ++code;
    else if (IsProsePunct(c)) ++punct;
    else ++other;
  }
  if (visible == 0) return TokenClass::kWhitespace;
  if (other > 0) return TokenClass::kMixed;
  if (letters == visible) return TokenClass::kLetters;
  if (digits == visible) return TokenClass::kDigits;
  if (punct == visible) return TokenClass::kPunctuation;
  if (code > 0 && code + punct == visible) return TokenClass::kCodeSymbols;
  return TokenClass::kMixed;
}

}  // namespace moed
