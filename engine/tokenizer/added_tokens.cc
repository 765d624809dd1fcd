// AddedTokenMatcher: a straightforward scan; the supported models have at most a few hundred tokens.
#include "engine/tokenizer/added_tokens.h"

#include <algorithm>

#include "engine/tokenizer/utf8.h"

namespace moed {
namespace {

// Unicode White_Space code points (what tokenizers' lstrip/rstrip strip).
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Start of the run of whitespace characters that ends at `end` (no earlier than `floor`).
size_t WhiteSpaceStartBefore(std::string_view text, size_t end, size_t floor) {
  size_t pos = end;
  while (pos > floor) {
    size_t start = pos - 1;
    while (start > floor && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const size_t len = utf8::ValidCharLength(text, start);
    if (len != pos - start || !IsWhiteSpace(utf8::DecodeAt(text, start, len))) break;
    pos = start;
  }
  return pos;
}

size_t WhiteSpaceEndAfter(std::string_view text, size_t begin) {
  size_t pos = begin;
  while (pos < text.size()) {
    const size_t len = utf8::ValidCharLength(text, pos);
    if (len == 0 || !IsWhiteSpace(utf8::DecodeAt(text, pos, len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
}

std::vector<TextSegment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<TextSegment> out;
  size_t text_start = 0;  // start of the pending plain-text segment
  auto flush_text = [&](size_t end) {
    if (end > text_start) out.push_back({text_start, end, -1});
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const auto match = std::find_if(tokens_.begin(), tokens_.end(),
                                    [&](const AddedToken& t) { return text.substr(pos).starts_with(t.content); });
    if (match == tokens_.end()) {
      ++pos;
      continue;
    }
    const size_t match_begin = match->lstrip ? WhiteSpaceStartBefore(text, pos, text_start) : pos;
    flush_text(match_begin);
    out.push_back({match_begin, pos + match->content.size(), match->id});
    pos += match->content.size();
    if (match->rstrip) pos = WhiteSpaceEndAfter(text, pos);
    text_start = pos;
  }
  flush_text(text.size());
  return out;
}

}  // namespace moed
