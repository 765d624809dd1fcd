// Jinja lexer (see lexer.h). Whitespace rules follow the Jinja documentation's "Whitespace Control" section.
#include "engine/chat/lexer.h"

#include <cctype>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moed::chat {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Normalizes \r\n and \r to \n and drops one trailing newline unless it is kept.
std::string Normalize(const std::string& in, bool keep_trailing_newline) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}


class Lexer {
 public:
  Lexer(std::string src, const LexerOptions& opt) : src_(std::move(src)), opt_(opt) {}

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = FindTagStart(pos);
      std::string text = src_.substr(pos, tag == std::string::npos ? std::string::npos : tag - pos);
      if (tag == std::string::npos) {
        Emit(Token::Kind::kText, text, pos);
        break;
      }
      char type = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && IsSpace(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && opt_.lstrip_blocks && type != '{') {
        size_t line_start = text.rfind('\n');
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        bool at_line_start = line_start > 0 || pos == 0 || src_[pos - 1] == '\n';
        bool blank = line_start < text.size();
        for (size_t i = line_start; i < text.size() && blank; ++i) blank = IsSpace(text[i]);
        if (at_line_start && blank) text.resize(line_start);
      }
      Emit(Token::Kind::kText, text, pos);
      size_t after = tag + 2 + (sign ? 1 : 0);
      absl::StatusOr<size_t> next = type == '#' ? Comment(tag, after) : Tag(tag, after, type == '%');
      if (!next.ok()) return next.status();
      pos = *next;
    }
    tokens_.push_back({Token::Kind::kEof, "", line_, col_});
    LineCol(src_.size(), tokens_.back().line, tokens_.back().col);
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void LineCol(size_t offset, int& line, int& col) {
    if (offset < scan_) {
      scan_ = 0;
      line_ = col_ = 1;
    }
    for (; scan_ < offset; ++scan_) {
      if (src_[scan_] == '\n') {
        ++line_;
        col_ = 1;
      } else {
        ++col_;
      }
    }
    line = line_;
    col = col_;
  }

  void Emit(Token::Kind kind, std::string text, size_t offset) {
    if (kind == Token::Kind::kText && text.empty()) return;
    Token t{kind, std::move(text), 0, 0};
    LineCol(offset, t.line, t.col);
    tokens_.push_back(std::move(t));
  }

  absl::Status Error(size_t offset, const std::string& msg) {
    int line, col;
    LineCol(offset, line, col);
    return absl::InvalidArgumentError(absl::StrCat("chat template syntax error at line ", line, ", column ", col,
                                                   ": ", msg));
  }

  // Skips a comment; returns the offset after its end tag (and the whitespace it strips).
  absl::StatusOr<size_t> Comment(size_t start, size_t body) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) return Error(start, "missing end of comment tag");
    size_t after = end + 2;
    char sign = end > body ? src_[end - 1] : 0;
    if (sign == '-') {
      while (after < src_.size() && IsSpace(src_[after])) ++after;
    } else if (sign != '+' && opt_.trim_blocks && after < src_.size() && src_[after] == '\n') {
      ++after;
    }
    return after;
  }

  // Lexes the inside of a `{{ }}` or `{% %}` tag; returns the offset after its end (and stripped whitespace).
  absl::StatusOr<size_t> Tag(size_t start, size_t pos, bool block) {
    Emit(block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, block ? "{%" : "{{", start);
    const char* end_tag = block ? "%}" : "}}";
    std::vector<char> brackets;
    while (true) {
      while (pos < src_.size() && IsSpace(src_[pos])) ++pos;
      if (pos >= src_.size()) return Error(start, block ? "missing end of block tag" : "missing end of print tag");
      if (brackets.empty()) {
        size_t end = std::string::npos;
        char sign = 0;
        if ((src_[pos] == '-' || src_[pos] == '+') && src_.compare(pos + 1, 2, end_tag) == 0) {
          sign = src_[pos];
          end = pos + 3;
        } else if (src_.compare(pos, 2, end_tag) == 0) {
          end = pos + 2;
        }
        if (end != std::string::npos) {
          Emit(block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, end_tag, pos);
          if (sign == '-') {
            while (end < src_.size() && IsSpace(src_[end])) ++end;
          } else if (block && sign != '+' && opt_.trim_blocks && end < src_.size() && src_[end] == '\n') {
            ++end;
          }
          return end;
        }
      }
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t b = pos;
        while (pos < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
        Emit(Token::Kind::kName, src_.substr(b, pos - b), b);
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t b = pos;
        bool is_float = false;
        auto digits = [&] {
          while (pos < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_')) ++pos;
        };
        digits();
        if (pos + 1 < src_.size() && src_[pos] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos + 1]))) {
          is_float = true;
          ++pos;
          digits();
        }
        if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
          size_t e = pos + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
            is_float = true;
            pos = e;
            digits();
          }
        }
        std::string num;
        for (size_t i = b; i < pos; ++i) {
          if (src_[i] != '_') num += src_[i];
        }
        Emit(is_float ? Token::Kind::kFloat : Token::Kind::kInt, num, b);
      } else if (c == '\'' || c == '"') {
        absl::StatusOr<size_t> next = String(pos);
        if (!next.ok()) return next.status();
        pos = *next;
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op(1, c);
        for (const char* t : kTwo) {
          if (src_.compare(pos, 2, t) == 0) op = t;
        }
        if (op.size() == 1 && std::string("+-/*%~[](){}><=.:|,;").find(c) == std::string::npos) {
          return Error(pos, absl::StrCat("unexpected char '", std::string(1, c), "'"));
        }
        if (op == "(" || op == "[" || op == "{") {
          brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
        } else if (op == ")" || op == "]" || op == "}") {
          if (brackets.empty()) return Error(pos, absl::StrCat("unexpected '", op, "'"));
          if (brackets.back() != c) {
            return Error(pos, absl::StrCat("unexpected '", op, "', expected '", std::string(1, brackets.back()), "'"));
          }
          brackets.pop_back();
        }
        Emit(Token::Kind::kOp, op, pos);
        pos += op.size();
      }
    }
  }

  // A quoted string literal with Python's escapes (\n, \t, \\, \', \xHH, \uXXXX, ...; unknown escapes kept).
  absl::StatusOr<size_t> String(size_t start) {
    char q = src_[start];
    std::string out;
    size_t i = start + 1;
    for (; i < src_.size() && src_[i] != q; ++i) {
      if (src_[i] != '\\') {
        out += src_[i];
        continue;
      }
      if (++i >= src_.size()) break;
      char e = src_[i];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n >= src_.size()) return Error(i, "truncated \\" + std::string(1, e) + " escape");
          uint32_t cp = std::stoul(src_.substr(i + 1, n), nullptr, 16);
          AppendUtf8(cp, out);
          i += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = 0;
            size_t n = 0;
            for (; n < 3 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++n, ++i) cp = cp * 8 + (src_[i] - '0');
            --i;
            AppendUtf8(cp, out);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    if (i >= src_.size()) return Error(start, "unterminated string");
    Emit(Token::Kind::kString, out, start);
    return i + 1;
  }

  std::string src_;
  LexerOptions opt_;
  std::vector<Token> tokens_;
  size_t scan_ = 0;  // LineCol's cursor (restarts when asked for an earlier offset)
  int line_ = 1, col_ = 1;
};

}  // namespace

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source, const LexerOptions& options) {
  return Lexer(Normalize(source, options.keep_trailing_newline), options).Run();
}

}  // namespace moed::chat
