// GPT-2 bytes_to_unicode: bytes '!'..'~', '¡'..'¬', '®'..'ÿ' keep their code point; the other 68
// bytes, in increasing order, take U+0100, U+0101, ...
#include "engine/tokenizer/byte_unicode.h"

#include <array>

#include "engine/tokenizer/utf8.h"

namespace moed::byte_unicode {
namespace {

bool KeepsCodePoint(int b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int, 0x144> char_to_byte{};  // code points < U+0144 only; -1 = not in map
  Tables() {
    char_to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = KeepsCodePoint(b) ? static_cast<char32_t>(b) : 0x100 + next++;
      byte_to_char[b] = cp;
      char_to_byte[cp] = b;
    }
  }
};

const Tables& GetTables() {
  static const Tables tables;
  return tables;
}

}  // namespace

char32_t ByteToChar(unsigned char b) { return GetTables().byte_to_char[b]; }

std::optional<unsigned char> CharToByte(char32_t cp) {
  const Tables& t = GetTables();
  if (cp >= t.char_to_byte.size() || t.char_to_byte[cp] < 0) return std::nullopt;
  return static_cast<unsigned char>(t.char_to_byte[cp]);
}

std::string Encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) utf8::Append(ByteToChar(static_cast<unsigned char>(c)), out);
  return out;
}

std::optional<std::string> Decode(std::string_view piece) {
  std::string out;
  size_t pos = 0;
  while (pos < piece.size()) {
    const size_t len = utf8::ValidCharLength(piece, pos);
    if (len == 0) return std::nullopt;
    const std::optional<unsigned char> b = CharToByte(utf8::DecodeAt(piece, pos, len));
    if (!b) return std::nullopt;
    out.push_back(static_cast<char>(*b));
    pos += len;
  }
  return out;
}

}  // namespace moed::byte_unicode
