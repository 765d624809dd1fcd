// The evaluator (see interpreter.h): statements append to one output string, expressions yield Values. Scopes are
// a stack of frames: globals+vars, the template's top level, then one per for-loop iteration and macro call, as
// Jinja scopes them (so `set` inside a loop does not leak out; namespaces exist for that).
#include "engine/chat/interpreter.h"

#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/chat/builtins.h"

namespace moed::chat {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

#define MOED_TRY(expr)                          \
  do {                                          \
    if (auto _s = (expr); !_s.ok()) return _s;  \
  } while (0)
#define MOED_TRY_ASSIGN(lhs, expr)              \
  auto lhs##_or = (expr);                       \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = std::move(*lhs##_or)

class Interpreter {
 public:
  explicit Interpreter(const Dict& vars) {
    frames_.emplace_back();
    Dict globals;
    AddGlobals(globals);
    for (auto& [k, v] : globals) frames_.back()[k] = v;
    for (auto& [k, v] : vars) frames_.back()[k] = v;
    frames_.emplace_back();
  }

  absl::StatusOr<std::string> Run(const Body& body) {
    std::string out;
    auto flow = Exec(body, out);
    if (!flow.ok()) return flow.status();
    return out;
  }

 private:
  using Frame = absl::flat_hash_map<std::string, Value>;

  static absl::Status Located(const Node& n, const absl::Status& s) {
    if (s.code() == kRaisedCode) return absl::InvalidArgumentError(s.message());
    if (absl::StartsWith(s.message(), "chat template")) return s;
    return absl::InvalidArgumentError(
        absl::StrCat("chat template error at line ", n.line, ", column ", n.col, ": ", s.message()));
  }
  static absl::Status Err(const Node& n, const std::string& msg) {
    return Located(n, absl::InvalidArgumentError(msg));
  }
  // Using an undefined value beyond printing/testing it is an error carrying Jinja's hint.
  static absl::Status UndefErr(const Node& n, const Value& v) {
    return Err(n, v.str().empty() ? "value is undefined" : v.str());
  }

  Value Lookup(const std::string& name) const {
    for (auto f = frames_.rbegin(); f != frames_.rend(); ++f) {
      if (auto it = f->find(name); it != f->end()) return it->second;
    }
    return Value::Undefined("'" + name + "' is undefined");
  }

  absl::StatusOr<Flow> Exec(const Body& body, std::string& out) {
    for (const NodePtr& n : body) {
      MOED_TRY_ASSIGN(flow, ExecOne(*n, out));
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> ExecOne(const Node& n, std::string& out) {
    switch (n.kind) {
      case Node::Kind::kText: out += n.value.str(); return Flow::kNormal;
      case Node::Kind::kOutput: {
        MOED_TRY_ASSIGN(v, Eval(*n.kids[0]));
        out += v.ToString();
        return Flow::kNormal;
      }
      case Node::Kind::kIf:
        for (size_t i = 0; i < n.kids.size(); ++i) {
          MOED_TRY_ASSIGN(c, Eval(*n.kids[i]));
          if (c.Truthy()) return Exec(n.branches[i], out);
        }
        return Exec(n.else_body, out);
      case Node::Kind::kFor: return For(n, out);
      case Node::Kind::kSet: return Set(n);
      case Node::Kind::kMacro: DefineMacro(n); return Flow::kNormal;
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
      default: return Err(n, "expression used as a statement");
    }
  }

  absl::Status Assign(const Node& n, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = v;
      return absl::OkStatus();
    }
    MOED_TRY_ASSIGN(items, Iterate(v));
    if (items.size() != targets.size()) {
      return Err(n, absl::StrCat("cannot unpack ", items.size(), " values into ", targets.size(), " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) frames_.back()[targets[i]] = items[i];
    return absl::OkStatus();
  }

  absl::StatusOr<Flow> Set(const Node& n) {
    Value v;
    if (n.block_set) {
      std::string captured;
      MOED_TRY(Exec(n.body, captured).status());
      v = Value::String(captured);
    } else {
      MOED_TRY_ASSIGN(e, Eval(*n.kids[0]));
      v = e;
    }
    if (!n.attr.empty()) {
      Value ns = Lookup(n.name);
      if (ns.kind() != Value::Kind::kNamespace) return Err(n, "cannot assign attribute on non-namespace object");
      ns.Set(n.attr, v);
      return Flow::kNormal;
    }
    MOED_TRY(Assign(n, n.targets, v));
    return Flow::kNormal;
  }

  absl::StatusOr<Flow> For(const Node& n, std::string& out) {
    MOED_TRY_ASSIGN(iterable, Eval(*n.kids[0]));
    auto items_or = Iterate(iterable);
    if (!items_or.ok()) return Located(*n.kids[0], items_or.status());
    List items = std::move(*items_or);
    if (n.kids[1]) {  // {% for x in xs if cond %}: filter first, so loop.* count the kept items
      List kept;
      for (const Value& item : items) {
        frames_.emplace_back();
        auto s = Assign(n, n.targets, item);
        auto c = s.ok() ? Eval(*n.kids[1]) : absl::StatusOr<Value>(s);
        frames_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return Exec(n.else_body, out);
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      frames_.emplace_back();
      Value loop = Value::MakeDict({
          {"index0", Value::Int(i)},
          {"index", Value::Int(i + 1)},
          {"revindex0", Value::Int(len - i - 1)},
          {"revindex", Value::Int(len - i)},
          {"first", Value::Bool(i == 0)},
          {"last", Value::Bool(i == len - 1)},
          {"length", Value::Int(len)},
          {"depth", Value::Int(1)},
          {"depth0", Value::Int(0)},
          {"previtem", i > 0 ? items[i - 1] : Value::Undefined("there is no previous item")},
          {"nextitem", i + 1 < len ? items[i + 1] : Value::Undefined("there is no next item")},
      });
      loop.Set("cycle", Value::Function("cycle", [i](CallArgs& a) -> absl::StatusOr<Value> {
                 if (a.positional.empty()) return absl::InvalidArgumentError("no items for cycling given");
                 return a.positional[i % a.positional.size()];
               }));
      frames_.back()["loop"] = loop;
      auto s = Assign(n, n.targets, items[i]);
      auto flow = s.ok() ? Exec(n.body, out) : absl::StatusOr<Flow>(s);
      frames_.pop_back();
      if (!flow.ok()) return flow.status();
      if (*flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void DefineMacro(const Node& n) {
    const Node* node = &n;
    frames_.back()[n.name] = Value::Function(n.name, [this, node](CallArgs& a) -> absl::StatusOr<Value> {
      // A recursive macro must not overflow the stack: Python's own recursion limit stops Jinja near 1000 frames.
      if (frames_.size() > kMaxFrames) return absl::InvalidArgumentError("maximum macro recursion depth exceeded");
      Frame frame;
      for (size_t i = 0; i < node->targets.size(); ++i) {
        Value v = i < a.positional.size() ? a.positional[i] : Value::Undefined("'" + node->targets[i] + "' is undefined");
        for (auto& [k, kv] : a.keyword) {
          if (k == node->targets[i]) v = kv;
        }
        if (v.is_undefined() && node->kids[i]) {
          auto d = Eval(*node->kids[i]);
          if (!d.ok()) return d.status();
          v = *d;
        }
        frame[node->targets[i]] = v;
      }
      frames_.push_back(std::move(frame));
      std::string out;
      auto flow = Exec(node->body, out);
      frames_.pop_back();
      if (!flow.ok()) return flow.status();
      return Value::String(out);
    });
  }

  absl::Status Args(const Node& n, size_t first, CallArgs& a) {
    for (size_t i = first; i < n.kids.size(); ++i) {
      MOED_TRY_ASSIGN(v, Eval(*n.kids[i]));
      a.positional.push_back(v);
    }
    for (auto& [k, e] : n.kwargs) {
      MOED_TRY_ASSIGN(v, Eval(*e));
      a.keyword.emplace_back(k, v);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Value> Eval(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kLiteral: return n.value;
      case Node::Kind::kName: return Lookup(n.name);
      case Node::Kind::kAttr: {
        MOED_TRY_ASSIGN(obj, Eval(*n.kids[0]));
        if (obj.is_undefined()) return UndefErr(n, obj);
        return GetAttr(obj, n.name);
      }
      case Node::Kind::kItem: {
        MOED_TRY_ASSIGN(obj, Eval(*n.kids[0]));
        MOED_TRY_ASSIGN(key, Eval(*n.kids[1]));
        if (obj.is_undefined()) return UndefErr(n, obj);
        return GetItem(obj, key);
      }
      case Node::Kind::kSlice: {
        MOED_TRY_ASSIGN(obj, Eval(*n.kids[0]));
        if (obj.is_undefined()) return UndefErr(n, obj);
        Value parts[3];
        for (int p = 0; p < 3; ++p) {
          if (!n.kids[p + 1]) continue;
          MOED_TRY_ASSIGN(v, Eval(*n.kids[p + 1]));
          if (!v.is_none() && v.kind() != Value::Kind::kInt) return Err(n, "slice indices must be integers or None");
          parts[p] = v;
        }
        auto r = Slice(obj, parts[0], parts[1], parts[2]);
        if (!r.ok()) return Located(n, r.status());
        return r;
      }
      case Node::Kind::kCall: {
        MOED_TRY_ASSIGN(fn, Eval(*n.kids[0]));
        if (fn.is_undefined()) return UndefErr(n, fn);
        if (fn.kind() != Value::Kind::kCallable) return Err(n, "'" + fn.TypeName() + "' object is not callable");
        CallArgs a;
        MOED_TRY(Args(n, 1, a));
        auto r = fn.callable()(a);
        if (!r.ok()) return Located(n, r.status());
        return r;
      }
      case Node::Kind::kFilter: {
        MOED_TRY_ASSIGN(v, Eval(*n.kids[0]));
        CallArgs a;
        MOED_TRY(Args(n, 1, a));
        if (v.is_undefined() && n.name != "default" && n.name != "d" && n.name != "length" && n.name != "count" &&
            n.name != "items" && n.name != "list" && n.name != "join" && n.name != "string" && n.name != "trim") {
          return UndefErr(n, v);
        }
        auto r = ApplyFilter(n.name, v, a);
        if (!r.ok()) return Located(n, r.status());
        return r;
      }
      case Node::Kind::kTest: {
        MOED_TRY_ASSIGN(v, Eval(*n.kids[0]));
        CallArgs a;
        MOED_TRY(Args(n, 1, a));
        auto r = ApplyTest(n.name, v, a);
        if (!r.ok()) return Located(n, r.status());
        return Value::Bool(*r != n.negated);
      }
      case Node::Kind::kUnary: {
        MOED_TRY_ASSIGN(v, Eval(*n.kids[0]));
        if (n.name == "not") return Value::Bool(!v.Truthy());
        if (v.is_undefined()) return UndefErr(n, v);
        if (!v.is_number()) return Err(n, "bad operand type for unary " + n.name + ": '" + v.TypeName() + "'");
        if (n.name == "+") return v.kind() == Value::Kind::kFloat ? v : Value::Int(v.as_int());
        return v.kind() == Value::Kind::kFloat ? Value::Float(-v.as_float()) : Value::Int(-v.as_int());
      }
      case Node::Kind::kBinary: return Binary(n);
      case Node::Kind::kCompare: return Compare(n);
      case Node::Kind::kCond: {
        MOED_TRY_ASSIGN(c, Eval(*n.kids[0]));
        if (c.Truthy()) return Eval(*n.kids[1]);
        if (!n.kids[2]) return Value::Undefined("the inline if-expression on line " + std::to_string(n.line) +
                                                " evaluated to false and no else section was defined.");
        return Eval(*n.kids[2]);
      }
      case Node::Kind::kList:
      case Node::Kind::kTuple: {
        List items;
        for (const NodePtr& k : n.kids) {
          MOED_TRY_ASSIGN(v, Eval(*k));
          items.push_back(v);
        }
        return n.kind == Node::Kind::kTuple ? Value::MakeTuple(std::move(items)) : Value::MakeList(std::move(items));
      }
      case Node::Kind::kDict: {
        Value d = Value::MakeDict();
        for (size_t i = 0; i + 1 < n.kids.size(); i += 2) {
          MOED_TRY_ASSIGN(k, Eval(*n.kids[i]));
          MOED_TRY_ASSIGN(v, Eval(*n.kids[i + 1]));
          if (!k.is_string()) return Err(*n.kids[i], "dict keys must be strings in chat templates");
          d.Set(k.str(), v);
        }
        return d;
      }
      default: return Err(n, "statement used as an expression");
    }
  }

  absl::StatusOr<Value> Binary(const Node& n) {
    MOED_TRY_ASSIGN(a, Eval(*n.kids[0]));
    const std::string& op = n.name;
    if (op == "and") return a.Truthy() ? Eval(*n.kids[1]) : a;
    if (op == "or") return a.Truthy() ? a : Eval(*n.kids[1]);
    MOED_TRY_ASSIGN(b, Eval(*n.kids[1]));
    if (op == "~") return Value::String(a.ToString() + b.ToString());
    if (a.is_undefined()) return UndefErr(n, a);
    if (b.is_undefined()) return UndefErr(n, b);
    auto unsupported = [&] {
      return Err(n, "unsupported operand type(s) for " + op + ": '" + a.TypeName() + "' and '" + b.TypeName() + "'");
    };
    if (op == "+") {
      if (a.is_string() && b.is_string()) return Value::String(a.str() + b.str());
      if (a.is_string()) return Err(n, "can only concatenate str (not \"" + b.TypeName() + "\") to str");
      if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList) {
        List items = a.list();
        items.insert(items.end(), b.list().begin(), b.list().end());
        return Value::MakeList(std::move(items));
      }
    }
    if (op == "*" && (a.is_string() || b.is_string())) {
      const Value& s = a.is_string() ? a : b;
      const Value& k = a.is_string() ? b : a;
      if (k.kind() != Value::Kind::kInt && k.kind() != Value::Kind::kBool) return unsupported();
      std::string out;
      for (int64_t i = 0; i < k.as_int() && out.size() < (1u << 24); ++i) out += s.str();
      return Value::String(out);
    }
    if (!a.is_number() || !b.is_number()) return unsupported();
    bool fl = a.kind() == Value::Kind::kFloat || b.kind() == Value::Kind::kFloat;
    if (op == "/") {
      if (b.as_float() == 0) return Err(n, "division by zero");
      return Value::Float(a.as_float() / b.as_float());
    }
    if (fl) {
      double x = a.as_float(), y = b.as_float();
      if ((op == "//" || op == "%") && y == 0) return Err(n, "float division by zero");
      if (op == "+") return Value::Float(x + y);
      if (op == "-") return Value::Float(x - y);
      if (op == "*") return Value::Float(x * y);
      if (op == "//") return Value::Float(std::floor(x / y));
      if (op == "%") return Value::Float(x - y * std::floor(x / y));
      if (op == "**") return Value::Float(std::pow(x, y));
    } else {
      int64_t x = a.as_int(), y = b.as_int();
      if ((op == "//" || op == "%") && y == 0) return Err(n, "integer division or modulo by zero");
      if (op == "+") return Value::Int(x + y);
      if (op == "-") return Value::Int(x - y);
      if (op == "*") return Value::Int(x * y);
      int64_t q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
      if (op == "//") return Value::Int(q);
      if (op == "%") return Value::Int(x - q * y);
      if (op == "**") return y >= 0 ? Value::Int(static_cast<int64_t>(std::pow(x, y))) : Value::Float(std::pow(x, y));
    }
    return unsupported();
  }

  absl::StatusOr<Value> Compare(const Node& n) {
    MOED_TRY_ASSIGN(left, Eval(*n.kids[0]));
    for (size_t i = 0; i < n.ops.size(); ++i) {
      MOED_TRY_ASSIGN(right, Eval(*n.kids[i + 1]));
      const std::string& op = n.ops[i];
      bool r;
      if (op == "==" || op == "!=") {
        r = left.Equals(right) == (op == "==");
      } else if (op == "in" || op == "not in") {
        if (right.is_string() && !left.is_string()) {
          return Err(n, "'in <string>' requires string as left operand, not " + left.TypeName());
        }
        CallArgs a;
        a.positional.push_back(right);
        auto t = ApplyTest("in", left, a);
        if (!t.ok()) return Located(n, t.status());
        r = *t == (op == "in");
      } else {
        if (left.is_undefined()) return UndefErr(n, left);
        if (right.is_undefined()) return UndefErr(n, right);
        CallArgs a;
        a.positional.push_back(right);
        auto t = ApplyTest(op, left, a);
        if (!t.ok()) return Located(n, t.status());
        r = *t;
      }
      if (!r) return Value::Bool(false);
      left = right;
    }
    return Value::Bool(true);
  }

  static constexpr size_t kMaxFrames = 200;
  std::vector<Frame> frames_;
};

}  // namespace

absl::StatusOr<std::string> Render(const Body& body, const Dict& vars) { return Interpreter(vars).Run(body); }

}  // namespace moed::chat
