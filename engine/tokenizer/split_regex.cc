// SplitRegex: pattern translation for RE2 and the split behaviours of tokenizers' Split.
#include "engine/tokenizer/split_regex.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/utf8.h"
#include "re2/re2.h"

namespace moed {
namespace {

// Unicode White_Space, as ranges usable inside a character class.
constexpr std::string_view kWhiteSpaceRanges =
    R"(\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
constexpr std::string_view kLookaheadSpaces = R"(\s+(?!\S))";
constexpr std::string_view kLookaheadGroupName = "moed_ws_lookahead";

size_t LastCharLength(std::string_view s) {
  size_t n = 1;
  while (n < s.size() && (static_cast<unsigned char>(s[s.size() - n]) & 0xC0) == 0x80) ++n;
  return n;
}

}  // namespace

absl::StatusOr<std::string> TranslateSplitPattern(std::string_view pattern_view) {
  const std::string pattern(pattern_view);
  std::string out;
  bool in_class = false;
  size_t i = 0;
  while (i < pattern.size()) {
    if (!in_class && pattern_view.substr(i).starts_with(kLookaheadSpaces)) {
      out += "(?P<" + std::string(kLookaheadGroupName) + ">[" + std::string(kWhiteSpaceRanges) + "]+)";
      i += kLookaheadSpaces.size();
      continue;
    }
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      i += 2;
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpaceRanges) : "[" + std::string(kWhiteSpaceRanges) + "]";
      } else if (e == 'S') {
        if (in_class) {
          return absl::InvalidArgumentError(
              absl::StrCat("split pattern '", pattern, "': \\S inside a character class is not supported"));
        }
        out += "[^" + std::string(kWhiteSpaceRanges) + "]";
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (!in_class && c == '(' && pattern_view.substr(i).starts_with("(?") && i + 2 < pattern.size() &&
        (pattern[i + 2] == '=' || pattern[i + 2] == '!' || pattern[i + 2] == '<')) {
      const bool named_group = pattern_view.substr(i).starts_with("(?<") && i + 3 < pattern.size() &&
                               pattern[i + 3] != '=' && pattern[i + 3] != '!';
      if (!named_group) {
        return absl::InvalidArgumentError(absl::StrCat(
            "split pattern '", pattern, "': lookaround at offset ", i, " is not supported (RE2 has none)"));
      }
      out.append("(?P<");
      i += 3;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out.push_back(c);
      ++i;
      // A ']' or '^]' right after '[' is a literal, not the end of the class.
      if (i < pattern.size() && pattern[i] == '^') out.push_back(pattern[i++]);
      if (i < pattern.size() && pattern[i] == ']') out.push_back(pattern[i++]);
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out.push_back(c);
    ++i;
  }
  return out;
}

SplitRegex::SplitRegex(std::unique_ptr<re2::RE2> re, int lookahead_group)
    : re_(std::move(re)), lookahead_group_(lookahead_group) {}

SplitRegex::~SplitRegex() = default;

absl::StatusOr<std::unique_ptr<SplitRegex>> SplitRegex::Create(std::string_view pattern_view) {
  const std::string pattern(pattern_view);
  absl::StatusOr<std::string> translated = TranslateSplitPattern(pattern);
  if (!translated.ok()) return translated.status();
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(*translated, options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("split pattern '", pattern, "' does not compile with RE2: ", re->error()));
  }
  const auto& groups = re->NamedCapturingGroups();
  const auto it = groups.find(std::string(kLookaheadGroupName));
  const int group = it == groups.end() ? -1 : it->second;
  return std::unique_ptr<SplitRegex>(new SplitRegex(std::move(re), group));
}

std::vector<std::pair<size_t, size_t>> SplitRegex::FindAll(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  const int nsub = lookahead_group_ < 0 ? 1 : lookahead_group_ + 1;
  std::vector<re2::StringPiece> sub(nsub);
  const re2::StringPiece input(text.data(), text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    if (!re_->Match(input, pos, text.size(), re2::RE2::UNANCHORED, sub.data(), nsub)) break;
    const size_t begin = sub[0].data() - text.data();
    size_t end = begin + sub[0].size();
    if (end == begin) {  // empty match: tokenizers yields no piece; step over one character
      pos = begin + std::max<size_t>(1, utf8::ValidCharLength(text, begin));
      continue;
    }
    // `\s+(?!\S)`: a whitespace run followed by a non-space gives its last character back,
    // unless that would leave it empty (then the pattern's plain `\s+` takes the one character).
    if (lookahead_group_ >= 0 && sub[lookahead_group_].data() != nullptr && end < text.size()) {
      const size_t last = LastCharLength(text.substr(begin, end - begin));
      if (end - begin > last) end -= last;
    }
    matches.emplace_back(begin, end);
    pos = end;
  }
  return matches;
}

std::vector<std::string> SplitText(std::string_view text, const SplitRegex& re, SplitBehavior behavior) {
  // Pieces as (begin, end, is_match), covering the text.
  struct Span {
    size_t begin, end;
    bool is_match;
  };
  std::vector<Span> spans;
  size_t prev = 0;
  for (const auto& [b, e] : re.FindAll(text)) {
    if (b > prev) spans.push_back({prev, b, false});
    spans.push_back({b, e, true});
    prev = e;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), false});

  std::vector<std::string> pieces;
  auto piece = [&](const Span& s) { return std::string(text.substr(s.begin, s.end - s.begin)); };
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) pieces.push_back(piece(s));
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) pieces.push_back(piece(s));
      }
      break;
    // A match joins its neighbour only when that neighbour is not a match itself (tokenizers).
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !pieces.empty()) {
          pieces.back() += piece(s);
        } else {
          pieces.push_back(piece(s));
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool next_match = false;  // walking backwards: whether the span after this one is a match
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !next_match && !pieces.empty()) {
          pieces.back() = piece(*it) + pieces.back();
        } else {
          pieces.push_back(piece(*it));
        }
        next_match = it->is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && previous_match) {
          pieces.back() += piece(s);
        } else {
          pieces.push_back(piece(s));
        }
        previous_match = s.is_match;
      }
      break;
    }
  }
  return pieces;
}

}  // namespace moed
