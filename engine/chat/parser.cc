// Jinja parser (see parser.h): recursive descent, one function per precedence level as the Jinja docs order them.
#include "engine/chat/parser.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/chat/lexer.h"

namespace moed::chat {
namespace {

using K = Token::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  absl::StatusOr<Body> Run() {
    Body body;
    std::string end;
    if (auto s = ParseBody({}, body, end); !s.ok()) return s;
    return body;
  }

 private:
  const Token& Peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Token& Next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool IsOp(const char* op, size_t ahead = 0) const { return Peek(ahead).kind == K::kOp && Peek(ahead).text == op; }
  bool IsName(const char* n, size_t ahead = 0) const {
    return Peek(ahead).kind == K::kName && Peek(ahead).text == n;
  }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    ++i_;
    return true;
  }
  bool SkipName(const char* n) {
    if (!IsName(n)) return false;
    ++i_;
    return true;
  }

  absl::Status Error(const Token& at, const std::string& msg) const {
    return absl::InvalidArgumentError(absl::StrCat("chat template syntax error at line ", at.line, ", column ", at.col,
                                                   ": ", msg));
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case K::kEof: return "end of template";
      case K::kBlockEnd: return "end of statement block";
      case K::kVarEnd: return "end of print statement";
      case K::kString: return "string";
      default: return "'" + t.text + "'";
    }
  }
  absl::Status Expect(K kind, const char* text, const char* what) {
    const Token& t = Peek();
    if (t.kind != kind || (text && t.text != text)) {
      return Error(t, absl::StrCat("expected ", what, ", got ", Describe(t)));
    }
    ++i_;
    return absl::OkStatus();
  }
  NodePtr Make(Node::Kind kind, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = at.line;
    n->col = at.col;
    return n;
  }

#define MOED_TRY(expr)                   \
  do {                                   \
    if (auto _s = (expr); !_s.ok()) return _s; \
  } while (0)
#define MOED_TRY_ASSIGN(lhs, expr)       \
  auto lhs##_or = (expr);                \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = std::move(*lhs##_or)

  // Parses statements and text until a block tag whose keyword is in `ends` (consumed, keyword returned in `end`).
  absl::Status ParseBody(const std::set<std::string>& ends, Body& body, std::string& end) {
    while (true) {
      const Token& t = Peek();
      if (t.kind == K::kEof) {
        if (ends.empty()) return absl::OkStatus();
        return Error(t, absl::StrCat("unexpected end of template, expected '", *ends.begin(), "'"));
      }
      if (t.kind == K::kText) {
        auto n = Make(Node::Kind::kText, t);
        n->value = Value::String(t.text);
        body.push_back(std::move(n));
        ++i_;
      } else if (t.kind == K::kVarBegin) {
        ++i_;
        auto n = Make(Node::Kind::kOutput, t);
        MOED_TRY_ASSIGN(e, Tuple(true));
        n->kids.push_back(std::move(e));
        MOED_TRY(Expect(K::kVarEnd, nullptr, "end of print statement '}}'"));
        body.push_back(std::move(n));
      } else if (t.kind == K::kBlockBegin) {
        const Token& kw = Peek(1);
        if (kw.kind != K::kName) return Error(kw, "expected a statement name after '{%'");
        if (ends.count(kw.text)) {
          i_ += 2;
          end = kw.text;
          return absl::OkStatus();
        }
        i_ += 2;
        MOED_TRY(Statement(kw, body));
      } else {
        return Error(t, "unexpected " + Describe(t));
      }
    }
  }

  absl::Status Statement(const Token& kw, Body& body) {
    const std::string& k = kw.text;
    if (k == "if") return If(kw, body);
    if (k == "for") return For(kw, body);
    if (k == "set") return Set(kw, body);
    if (k == "macro") return Macro(kw, body);
    if (k == "break" || k == "continue") {
      body.push_back(Make(k == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, kw));
      return Expect(K::kBlockEnd, nullptr, "end of statement block");
    }
    if (k == "generation") {  // transformers' AssistantTracker tag: renders its body unchanged
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
      std::string end;
      MOED_TRY(ParseBody({"endgeneration"}, body, end));
      return Expect(K::kBlockEnd, nullptr, "end of statement block");
    }
    return Error(kw, absl::StrCat("unknown or unsupported tag '", k, "'"));
  }

  absl::Status If(const Token& kw, Body& body) {
    auto n = Make(Node::Kind::kIf, kw);
    while (true) {
      MOED_TRY_ASSIGN(cond, Tuple(false));
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
      n->kids.push_back(std::move(cond));
      n->branches.emplace_back();
      std::string end;
      MOED_TRY(ParseBody({"elif", "else", "endif"}, n->branches.back(), end));
      if (end == "elif") continue;
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
      if (end == "else") {
        MOED_TRY(ParseBody({"endif"}, n->else_body, end));
        MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
      }
      break;
    }
    body.push_back(std::move(n));
    return absl::OkStatus();
  }

  absl::Status Targets(std::vector<std::string>& out) {
    do {
      if (Peek().kind != K::kName) return Error(Peek(), "expected a variable name, got " + Describe(Peek()));
      out.push_back(Next().text);
    } while (SkipOp(","));
    return absl::OkStatus();
  }

  absl::Status For(const Token& kw, Body& body) {
    auto n = Make(Node::Kind::kFor, kw);
    bool paren = SkipOp("(");
    MOED_TRY(Targets(n->targets));
    if (paren) MOED_TRY(Expect(K::kOp, ")", "')'"));
    MOED_TRY(Expect(K::kName, "in", "'in'"));
    MOED_TRY_ASSIGN(iter, Tuple(false));
    n->kids.push_back(std::move(iter));
    if (SkipName("if")) {
      MOED_TRY_ASSIGN(filter, Expression(true));
      n->kids.push_back(std::move(filter));
    } else {
      n->kids.push_back(nullptr);
    }
    if (IsName("recursive")) return Error(Peek(), "recursive loops are not supported");
    MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    std::string end;
    MOED_TRY(ParseBody({"else", "endfor"}, n->body, end));
    MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    if (end == "else") {
      MOED_TRY(ParseBody({"endfor"}, n->else_body, end));
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    }
    body.push_back(std::move(n));
    return absl::OkStatus();
  }

  absl::Status Set(const Token& kw, Body& body) {
    auto n = Make(Node::Kind::kSet, kw);
    if (Peek().kind == K::kName && IsOp(".", 1)) {
      n->name = Next().text;
      ++i_;
      if (Peek().kind != K::kName) return Error(Peek(), "expected an attribute name");
      n->attr = Next().text;
    } else {
      MOED_TRY(Targets(n->targets));
    }
    if (SkipOp("=")) {
      MOED_TRY_ASSIGN(e, Tuple(true));
      n->kids.push_back(std::move(e));
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    } else {
      if (!n->attr.empty() || n->targets.size() != 1) return Error(Peek(), "expected '='");
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "'=' or end of statement block"));
      n->block_set = true;
      std::string end;
      MOED_TRY(ParseBody({"endset"}, n->body, end));
      MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    }
    body.push_back(std::move(n));
    return absl::OkStatus();
  }

  absl::Status Macro(const Token& kw, Body& body) {
    auto n = Make(Node::Kind::kMacro, kw);
    if (Peek().kind != K::kName) return Error(Peek(), "expected a macro name");
    n->name = Next().text;
    MOED_TRY(Expect(K::kOp, "(", "'('"));
    while (!IsOp(")")) {
      if (!n->targets.empty()) MOED_TRY(Expect(K::kOp, ",", "','"));
      if (Peek().kind != K::kName) return Error(Peek(), "expected a parameter name");
      n->targets.push_back(Next().text);
      if (SkipOp("=")) {
        MOED_TRY_ASSIGN(d, Expression(true));
        n->kids.push_back(std::move(d));
      } else {
        n->kids.push_back(nullptr);
      }
    }
    ++i_;
    MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    std::string end;
    MOED_TRY(ParseBody({"endmacro"}, n->body, end));
    if (Peek().kind == K::kName) ++i_;  // {% endmacro name %}
    MOED_TRY(Expect(K::kBlockEnd, nullptr, "end of statement block"));
    body.push_back(std::move(n));
    return absl::OkStatus();
  }

  // Expressions, lowest precedence first.
  absl::StatusOr<NodePtr> Tuple(bool with_cond) {
    const Token& at = Peek();
    MOED_TRY_ASSIGN(first, Expression(with_cond));
    if (!IsOp(",")) return first;
    auto n = Make(Node::Kind::kTuple, at);
    n->kids.push_back(std::move(first));
    while (SkipOp(",")) {
      if (Peek().kind == K::kBlockEnd || Peek().kind == K::kVarEnd) break;
      MOED_TRY_ASSIGN(e, Expression(with_cond));
      n->kids.push_back(std::move(e));
    }
    return n;
  }

  absl::StatusOr<NodePtr> Expression(bool with_cond) {
    const Token& at = Peek();
    MOED_TRY_ASSIGN(e, Or());
    if (!with_cond) return e;
    while (SkipName("if")) {
      auto n = Make(Node::Kind::kCond, at);
      MOED_TRY_ASSIGN(cond, Or());
      n->kids.push_back(std::move(cond));
      n->kids.push_back(std::move(e));
      if (SkipName("else")) {
        MOED_TRY_ASSIGN(other, Expression(true));
        n->kids.push_back(std::move(other));
      } else {
        n->kids.push_back(nullptr);
      }
      e = std::move(n);
    }
    return e;
  }

  absl::StatusOr<NodePtr> Binary(absl::StatusOr<NodePtr> (Parser::*sub)(), std::vector<const char*> ops,
                                 bool names) {
    MOED_TRY_ASSIGN(left, (this->*sub)());
    while (true) {
      const char* op = nullptr;
      for (const char* o : ops) {
        if (names ? IsName(o) : IsOp(o)) op = o;
      }
      if (!op) return left;
      const Token& at = Next();
      MOED_TRY_ASSIGN(right, (this->*sub)());
      auto n = Make(Node::Kind::kBinary, at);
      n->name = op;
      n->kids.push_back(std::move(left));
      n->kids.push_back(std::move(right));
      left = std::move(n);
    }
  }
  absl::StatusOr<NodePtr> Or() { return Binary(&Parser::And, {"or"}, true); }
  absl::StatusOr<NodePtr> And() { return Binary(&Parser::Not, {"and"}, true); }
  absl::StatusOr<NodePtr> Not() {
    if (IsName("not")) {
      auto n = Make(Node::Kind::kUnary, Next());
      n->name = "not";
      MOED_TRY_ASSIGN(e, Not());
      n->kids.push_back(std::move(e));
      return n;
    }
    return Compare();
  }
  absl::StatusOr<NodePtr> Compare() {
    const Token& at = Peek();
    MOED_TRY_ASSIGN(first, Math1());
    auto n = Make(Node::Kind::kCompare, at);
    n->kids.push_back(std::move(first));
    while (true) {
      std::string op;
      if (Peek().kind == K::kOp && (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
                                    Peek().text == "<=" || Peek().text == ">" || Peek().text == ">=")) {
        op = Next().text;
      } else if (SkipName("in")) {
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        break;
      }
      MOED_TRY_ASSIGN(e, Math1());
      n->ops.push_back(op);
      n->kids.push_back(std::move(e));
    }
    if (n->ops.empty()) return std::move(n->kids[0]);
    return n;
  }
  absl::StatusOr<NodePtr> Math1() { return Binary(&Parser::Concat, {"+", "-"}, false); }
  absl::StatusOr<NodePtr> Concat() { return Binary(&Parser::Math2, {"~"}, false); }
  absl::StatusOr<NodePtr> Math2() { return Binary(&Parser::Pow, {"*", "/", "//", "%"}, false); }
  absl::StatusOr<NodePtr> Pow() { return Binary(&Parser::UnaryWithFilter, {"**"}, false); }
  absl::StatusOr<NodePtr> UnaryWithFilter() { return Unary(true); }

  absl::StatusOr<NodePtr> Unary(bool with_filter) {
    NodePtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Make(Node::Kind::kUnary, Peek());
      node->name = Next().text;
      MOED_TRY_ASSIGN(e, Unary(false));
      node->kids.push_back(std::move(e));
    } else {
      MOED_TRY_ASSIGN(p, Primary());
      MOED_TRY_ASSIGN(q, Postfix(std::move(p)));
      node = std::move(q);
    }
    if (!with_filter) return node;
    return FilterExpr(std::move(node));
  }

  absl::StatusOr<NodePtr> Primary() {
    const Token& t = Peek();
    if (t.kind == K::kName) {
      ++i_;
      auto n = Make(Node::Kind::kLiteral, t);
      if (t.text == "true" || t.text == "True") {
        n->value = Value::Bool(true);
      } else if (t.text == "false" || t.text == "False") {
        n->value = Value::Bool(false);
      } else if (t.text == "none" || t.text == "None") {
        n->value = Value::None();
      } else {
        n->kind = Node::Kind::kName;
        n->name = t.text;
      }
      return n;
    }
    if (t.kind == K::kString) {
      auto n = Make(Node::Kind::kLiteral, t);
      std::string s;
      while (Peek().kind == K::kString) s += Next().text;
      n->value = Value::String(std::move(s));
      return n;
    }
    if (t.kind == K::kInt || t.kind == K::kFloat) {
      ++i_;
      auto n = Make(Node::Kind::kLiteral, t);
      n->value = t.kind == K::kInt ? Value::Int(std::stoll(t.text)) : Value::Float(std::stod(t.text));
      return n;
    }
    if (SkipOp("(")) {
      if (SkipOp(")")) return Make(Node::Kind::kTuple, t);
      MOED_TRY_ASSIGN(e, Expression(true));
      if (IsOp(",")) {
        auto n = Make(Node::Kind::kTuple, t);
        n->kids.push_back(std::move(e));
        while (SkipOp(",") && !IsOp(")")) {
          MOED_TRY_ASSIGN(x, Expression(true));
          n->kids.push_back(std::move(x));
        }
        e = std::move(n);
      }
      MOED_TRY(Expect(K::kOp, ")", "')'"));
      return e;
    }
    if (SkipOp("[")) {
      auto n = Make(Node::Kind::kList, t);
      while (!SkipOp("]")) {
        if (!n->kids.empty()) MOED_TRY(Expect(K::kOp, ",", "',' or ']'"));
        if (SkipOp("]")) break;
        MOED_TRY_ASSIGN(e, Expression(true));
        n->kids.push_back(std::move(e));
      }
      return n;
    }
    if (SkipOp("{")) {
      auto n = Make(Node::Kind::kDict, t);
      while (!SkipOp("}")) {
        if (!n->kids.empty()) MOED_TRY(Expect(K::kOp, ",", "',' or '}'"));
        if (SkipOp("}")) break;
        MOED_TRY_ASSIGN(k, Expression(true));
        MOED_TRY(Expect(K::kOp, ":", "':'"));
        MOED_TRY_ASSIGN(v, Expression(true));
        n->kids.push_back(std::move(k));
        n->kids.push_back(std::move(v));
      }
      return n;
    }
    return Error(t, "unexpected " + Describe(t));
  }

  absl::Status CallArgs(Node& n) {
    bool first = true;
    while (!SkipOp(")")) {
      if (!first) {
        MOED_TRY(Expect(K::kOp, ",", "',' or ')'"));
        if (SkipOp(")")) break;
      }
      first = false;
      if (Peek().kind == K::kName && IsOp("=", 1)) {
        std::string key = Next().text;
        ++i_;
        MOED_TRY_ASSIGN(v, Expression(true));
        n.kwargs.emplace_back(key, std::move(v));
      } else {
        if (!n.kwargs.empty()) return Error(Peek(), "positional argument after keyword argument");
        MOED_TRY_ASSIGN(v, Expression(true));
        n.kids.push_back(std::move(v));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> Postfix(NodePtr node) {
    while (true) {
      const Token& t = Peek();
      if (SkipOp(".")) {
        const Token& a = Next();
        if (a.kind == K::kName) {
          auto n = Make(Node::Kind::kAttr, t);
          n->name = a.text;
          n->kids.push_back(std::move(node));
          node = std::move(n);
        } else if (a.kind == K::kInt) {
          auto n = Make(Node::Kind::kItem, t);
          n->kids.push_back(std::move(node));
          auto idx = Make(Node::Kind::kLiteral, a);
          idx->value = Value::Int(std::stoll(a.text));
          n->kids.push_back(std::move(idx));
          node = std::move(n);
        } else {
          return Error(a, "expected an attribute name after '.'");
        }
      } else if (SkipOp("[")) {
        NodePtr parts[3];
        int colons = 0;
        while (!IsOp("]")) {
          if (SkipOp(":")) {
            if (++colons > 2) return Error(Peek(), "too many ':' in slice");
            continue;
          }
          if (parts[colons]) return Error(Peek(), "expected ']' or ':'");
          MOED_TRY_ASSIGN(e, Expression(true));
          parts[colons] = std::move(e);
        }
        ++i_;
        auto n = Make(colons ? Node::Kind::kSlice : Node::Kind::kItem, t);
        n->kids.push_back(std::move(node));
        if (!colons && !parts[0]) return Error(t, "expected a subscript");
        for (int p = 0; p <= (colons ? 2 : 0); ++p) n->kids.push_back(std::move(parts[p]));
        node = std::move(n);
      } else if (SkipOp("(")) {
        auto n = Make(Node::Kind::kCall, t);
        n->kids.push_back(std::move(node));
        MOED_TRY(CallArgs(*n));
        node = std::move(n);
      } else {
        return node;
      }
    }
  }

  absl::StatusOr<std::string> DottedName() {
    if (Peek().kind != K::kName) return Error(Peek(), "expected a filter or test name, got " + Describe(Peek()));
    std::string name = Next().text;
    while (IsOp(".") && Peek(1).kind == K::kName) {
      i_ += 2;
      name += "." + t_[i_ - 1].text;
    }
    return name;
  }

  absl::StatusOr<NodePtr> FilterExpr(NodePtr node) {
    while (true) {
      const Token& t = Peek();
      if (SkipOp("|")) {
        auto n = Make(Node::Kind::kFilter, t);
        MOED_TRY_ASSIGN(name, DottedName());
        n->name = name;
        n->kids.push_back(std::move(node));
        if (SkipOp("(")) MOED_TRY(CallArgs(*n));
        node = std::move(n);
      } else if (SkipName("is")) {
        auto n = Make(Node::Kind::kTest, t);
        n->negated = SkipName("not");
        MOED_TRY_ASSIGN(name, DottedName());
        n->name = name;
        n->kids.push_back(std::move(node));
        const Token& a = Peek();
        if (SkipOp("(")) {
          MOED_TRY(CallArgs(*n));
        } else if ((a.kind == K::kName && a.text != "else" && a.text != "or" && a.text != "and" &&
                    a.text != "if" && a.text != "not" && a.text != "in" && a.text != "is") ||
                   a.kind == K::kString || a.kind == K::kInt || a.kind == K::kFloat || IsOp("[") || IsOp("{")) {
          MOED_TRY_ASSIGN(p, Primary());
          MOED_TRY_ASSIGN(q, Postfix(std::move(p)));
          n->kids.push_back(std::move(q));
        }
        node = std::move(n);
      } else if (SkipOp("(")) {
        auto n = Make(Node::Kind::kCall, t);
        n->kids.push_back(std::move(node));
        MOED_TRY(CallArgs(*n));
        node = std::move(n);
      } else {
        return node;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
};

}  // namespace

absl::StatusOr<Body> ParseTemplate(const std::string& source) {
  auto tokens = Tokenize(source);
  if (!tokens.ok()) return tokens.status();
  return Parser(std::move(*tokens)).Run();
}

}  // namespace moed::chat
