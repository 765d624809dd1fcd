// Token classes for expert specialization: what kind of text a token id stands for, from its decoded bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace moed {

// A partition of the vocabulary. Leading/trailing spaces do not change a token's class ("▁the" is letters)
// unless the token is only whitespace.
enum class TokenClass : uint8_t {
  kLetters,      // letters only (ASCII, Latin-1/Extended, Greek, Cyrillic)
  kDigits,       // 0-9 only
  kPunctuation,  // prose punctuation only: . , ! ? ; : ' " - ( ) and the like
  kWhitespace,   // spaces, tabs, newlines only
  kCjk,          // contains a CJK ideograph, kana, hangul or CJK punctuation
  kCodeSymbols,  // symbols only, at least one of { } [ ] < > = + * / \ | & ^ % $ # @ ~ ` _
  kBytes,        // a byte-fallback piece or bytes that are not whole UTF-8 characters
  kSpecial,      // a special/control token (BOS, EOS, ...) or one that decodes to nothing
  kMixed,        // anything else: letters with digits or symbols, emoji, other scripts
  kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(TokenClass::kCount)> kTokenClassNames = {
    "letters", "digits", "punctuation", "whitespace", "cjk", "code_symbols", "bytes", "special", "mixed"};

// `bytes`: what the token contributes to decoded text (Tokenizer::TokenBytes).
TokenClass ClassifyToken(std::string_view bytes, bool is_special, bool is_byte_fallback);

}  // namespace moed
