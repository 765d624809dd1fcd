// Added tokens of a tokenizer.json: matched exactly in the raw text before pre-tokenization.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moed {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool lstrip = false;  // the match swallows whitespace on its left
  bool rstrip = false;  // ... and on its right
};

// A piece of the input: either plain text (id < 0) or one added token.
struct TextSegment {
  size_t begin = 0, end = 0;  // byte range of plain text in the input (id < 0)
  int32_t id = -1;
};

// Immutable after construction; Split is thread-safe.
class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Leftmost-longest matches of the added tokens; the text between them becomes text segments
  // (whitespace swallowed by lstrip/rstrip tokens excluded). Empty text segments are dropped.
  std::vector<TextSegment> Split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;  // longest content first
};

}  // namespace moed
