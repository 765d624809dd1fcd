// UTF-8 helpers: well-formedness follows Unicode Table 3-7 (no overlongs, surrogates or > U+10FFFF).
#include "engine/tokenizer/utf8.h"

#include <cstdint>

namespace moed::utf8 {
namespace {

// Expected total length of a sequence led by `b`, or 0 when `b` cannot start one.
size_t LeadLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Allowed range of the second byte after lead `b` (Table 3-7).
bool SecondByteOk(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

// Number of bytes from pos that form a valid prefix of the sequence (≤ expected length).
size_t ValidPrefix(std::string_view s, size_t pos, size_t* expected) {
  const auto lead = static_cast<uint8_t>(s[pos]);
  *expected = LeadLength(lead);
  if (*expected == 0) return 0;
  size_t n = 1;
  while (n < *expected && pos + n < s.size()) {
    const auto b = static_cast<uint8_t>(s[pos + n]);
    const bool ok = n == 1 ? SecondByteOk(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

}  // namespace

void Append(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t ValidCharLength(std::string_view s, size_t pos) {
  size_t expected = 0;
  const size_t n = ValidPrefix(s, pos, &expected);
  return (expected != 0 && n == expected) ? n : 0;
}

char32_t DecodeAt(std::string_view s, size_t pos, size_t len) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (len == 1) return b0;
  static constexpr uint8_t kLeadMask[5] = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t cp = b0 & kLeadMask[len];
  for (size_t i = 1; i < len; ++i) cp = (cp << 6) | (static_cast<uint8_t>(s[pos + i]) & 0x3F);
  return cp;
}

size_t MaximalSubpartLength(std::string_view s, size_t pos) {
  size_t expected = 0;
  const size_t n = ValidPrefix(s, pos, &expected);
  return n == 0 ? 1 : n;
}

bool IsIncompletePrefix(std::string_view s, size_t pos) {
  size_t expected = 0;
  const size_t n = ValidPrefix(s, pos, &expected);
  return expected > 1 && n == s.size() - pos && n < expected;
}

std::string Lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t len = ValidCharLength(s, pos);
    if (len > 0) {
      out.append(s.substr(pos, len));
      pos += len;
      continue;
    }
    out.append(kReplacement);
    pos += MaximalSubpartLength(s, pos);
  }
  return out;
}

bool IsValid(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t len = ValidCharLength(s, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

}  // namespace moed::utf8
