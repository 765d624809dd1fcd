// GPT-2's byte ↔ unicode map: every byte gets a printable code point so byte-level BPE pieces are text.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moed::byte_unicode {

// Code point standing for byte `b` (printable bytes map to themselves, the rest to U+0100 + n).
char32_t ByteToChar(unsigned char b);

// The byte that code point `cp` stands for, or nullopt when `cp` is not in the map.
std::optional<unsigned char> CharToByte(char32_t cp);

// Maps every byte of `bytes` to its code point, UTF-8 encoded.
std::string Encode(std::string_view bytes);

// Maps a byte-level piece back to bytes. Returns nullopt when `piece` is not valid UTF-8 or
// holds a character outside the map (tokenizers then keeps the piece's own UTF-8 bytes).
std::optional<std::string> Decode(std::string_view piece);

}  // namespace moed::byte_unicode
