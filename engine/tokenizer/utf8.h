// UTF-8 helpers for tokenizers: code point iteration, encoding, and lossy (U+FFFD) decoding.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace moed::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Appends the UTF-8 encoding of code point `cp` (must be a valid scalar value) to `out`.
void Append(char32_t cp, std::string& out);

// Length in bytes of the well-formed character starting at s[pos], or 0 when the bytes there
// are not a complete well-formed character (invalid or truncated).
size_t ValidCharLength(std::string_view s, size_t pos);

// Decodes the character at s[pos] (must be well-formed: ValidCharLength > 0).
char32_t DecodeAt(std::string_view s, size_t pos, size_t len);

// Length of the "maximal subpart" at s[pos]: the longest prefix of a well-formed sequence
// (at least 1 byte). Used to replace ill-formed bytes exactly as Rust's from_utf8_lossy and
// Python's errors='replace' do: each maximal subpart becomes one U+FFFD.
size_t MaximalSubpartLength(std::string_view s, size_t pos);

// True when s[pos..] is a proper prefix of some well-formed character (could still complete).
bool IsIncompletePrefix(std::string_view s, size_t pos);

// Whole-string lossy decode: ill-formed subparts → U+FFFD.
std::string Lossy(std::string_view s);

// True when `s` is entirely well-formed UTF-8.
bool IsValid(std::string_view s);

}  // namespace moed::utf8
