// Jinja lexer: template text to tokens, with `-`/`+` whitespace control, trim_blocks and lstrip_blocks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moed::chat {

struct Token {
  enum class Kind { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };
  Kind kind;
  std::string text;  // text data, name, decoded string literal, number spelling or operator
  int line;          // 1-based position of the token in the template (after newline normalization)
  int col;
};

struct LexerOptions {
  bool trim_blocks = true;    // drop the first newline after a block or comment tag
  bool lstrip_blocks = true;  // drop spaces/tabs between a line start and a block or comment tag
  bool keep_trailing_newline = false;
};

// Tokenizes the whole template (transformers' settings are the defaults). Comments produce no tokens. Errors name
// the line and column ("unterminated string", "missing end of comment tag", "unexpected '}'", ...).
// Appends code point `cp` to `out` as UTF-8 (1–4 bytes).
void AppendUtf8(uint32_t cp, std::string& out);

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source, const LexerOptions& options = {});

}  // namespace moed::chat
