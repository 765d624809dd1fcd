// Regex splitting with tokenizers' (Oniguruma / Rust regex) semantics on top of RE2.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace moed {

// GPT-2's pre-tokenization pattern (tokenizers' ByteLevel use_regex).
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Rewrites a tokenizers pattern into RE2 syntax: `\s`/`\S` become explicit Unicode White_Space
// classes (RE2's are ASCII-only) and the one lookahead these patterns use, `\s+(?!\S)`, becomes a
// named group whose match SplitRegex shortens by one character when a non-space follows.
// Any other lookaround is an error naming the pattern.
absl::StatusOr<std::string> TranslateSplitPattern(std::string_view pattern);

// Immutable; FindAll is thread-safe.
class SplitRegex {
 public:
  static absl::StatusOr<std::unique_ptr<SplitRegex>> Create(std::string_view pattern);
  ~SplitRegex();

  // Non-overlapping, non-empty leftmost-first matches of `text` as [begin, end) byte offsets.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;

 private:
  SplitRegex(std::unique_ptr<re2::RE2> re, int lookahead_group);
  std::unique_ptr<re2::RE2> re_;
  int lookahead_group_;  // capture index of the emulated `\s+(?!\S)`, or -1
};

// tokenizers' SplitDelimiterBehavior.
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `text` at the matches of `re`; gaps between matches are pieces of their own.
std::vector<std::string> SplitText(std::string_view text, const SplitRegex& re, SplitBehavior behavior);

}  // namespace moed
