// Jinja filters/tests/globals and Python string/dict methods (see builtins.h). Semantics follow the Jinja template
// designer documentation and the Python str documentation.
#include "engine/chat/builtins.h"

#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/chat/lexer.h"

namespace moed::chat {
namespace {

// UTF-8 <-> code points.
std::u32string Decode(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out += cp;
    i += n;
  }
  return out;
}
std::string Encode(const std::u32string& s) {
  std::string out;
  for (char32_t cp : s) AppendUtf8(static_cast<uint32_t>(cp), out);
  return out;
}

// Python's str.isspace() set.
bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

absl::Status TypeError(const std::string& msg) { return absl::InvalidArgumentError(msg); }

// Argument `i` (positional) or `name` (keyword), or `def`.
Value Arg(CallArgs& a, size_t i, const char* name, Value def = Value::Undefined()) {
  for (auto& [k, v] : a.keyword) {
    if (k == name) return v;
  }
  return i < a.positional.size() ? a.positional[i] : def;
}

absl::StatusOr<std::string> StrArg(CallArgs& a, size_t i, const char* name, const char* fn) {
  Value v = Arg(a, i, name);
  if (!v.is_string()) return TypeError(absl::StrCat(fn, "() argument '", name, "' must be str, not ", v.TypeName()));
  return v.str();
}

std::string Strip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string u = Decode(s), set;
  bool ws = chars.is_undefined() || chars.is_none();
  if (!ws) set = Decode(chars.str());
  auto strip = [&](char32_t c) { return ws ? IsPySpace(c) : set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left) {
    while (b < e && strip(u[b])) ++b;
  }
  if (right) {
    while (e > b && strip(u[e - 1])) --e;
  }
  return Encode(u.substr(b, e - b));
}

std::string MapCase(std::string s, int mode) {  // 0 lower, 1 upper, 2 title, 3 capitalize (ASCII letters)
  bool start = true;
  for (char& c : s) {
    bool alpha = std::isalpha(static_cast<unsigned char>(c));
    if (mode == 0 || (mode == 3 && !start)) c = std::tolower(static_cast<unsigned char>(c));
    if (mode == 1) c = std::toupper(static_cast<unsigned char>(c));
    if (mode == 2) c = start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c));
    if (mode == 3 && start) c = std::toupper(static_cast<unsigned char>(c));
    if (mode == 2) start = !alpha;
    if (mode == 3) start = false;
  }
  return s;
}

std::string Replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;  // Python inserts between characters; templates never rely on it
  std::string out;
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out += s.substr(pos, hit - pos) + to;
    pos = hit + from.size();
  }
  return out + s.substr(pos);
}

List Split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_undefined() || sep.is_none()) {
    std::u32string u = Decode(s);
    size_t i = 0;
    while (true) {
      while (i < u.size() && IsPySpace(u[i])) ++i;
      if (i >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = u.size();
        while (e > i && IsPySpace(u[e - 1])) --e;
        out.push_back(Value::String(Encode(u.substr(i, e - i))));
        break;
      }
      size_t b = i;
      while (i < u.size() && !IsPySpace(u[i])) ++i;
      out.push_back(Value::String(Encode(u.substr(b, i - b))));
    }
    return out;
  }
  const std::string& d = sep.str();
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(Value::String(s.substr(pos, hit - pos)));
    pos = hit + d.size();
  }
  out.push_back(Value::String(s.substr(pos)));
  return out;
}

bool AffixMatch(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const std::string& a) {
    return a.size() <= s.size() && s.compare(prefix ? 0 : s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.kind() == Value::Kind::kList) {
    for (const Value& a : affix.list()) {
      if (a.is_string() && one(a.str())) return true;
    }
    return false;
  }
  return affix.is_string() && one(affix.str());
}

absl::StatusOr<Value> StringMethod(const std::string& s, const std::string& name, CallArgs& a) {
  if (name == "startswith" || name == "endswith") {
    Value affix = Arg(a, 0, "prefix");
    if (!affix.is_string() && affix.kind() != Value::Kind::kList) {
      return TypeError(name + " first arg must be str or a tuple of str, not " + affix.TypeName());
    }
    return Value::Bool(AffixMatch(s, affix, name == "startswith"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return Value::String(Strip(s, Arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split") {
    Value sep = Arg(a, 0, "sep");
    Value maxsplit = Arg(a, 1, "maxsplit", Value::Int(-1));
    if (sep.is_string() && sep.str().empty()) return TypeError("empty separator");
    return Value::MakeList(Split(s, sep, maxsplit.as_int()));
  }
  if (name == "upper") return Value::String(MapCase(s, 1));
  if (name == "lower") return Value::String(MapCase(s, 0));
  if (name == "title") return Value::String(MapCase(s, 2));
  if (name == "capitalize") return Value::String(MapCase(s, 3));
  if (name == "replace") {
    auto from = StrArg(a, 0, "old", "replace");
    auto to = StrArg(a, 1, "new", "replace");
    if (!from.ok()) return from.status();
    if (!to.ok()) return to.status();
    return Value::String(Replace(s, *from, *to, Arg(a, 2, "count", Value::Int(-1)).as_int()));
  }
  if (name == "find" || name == "rfind" || name == "count") {
    auto sub = StrArg(a, 0, "sub", name.c_str());
    if (!sub.ok()) return sub.status();
    if (name == "count") {
      int64_t n = 0;
      for (size_t p = s.find(*sub); p != std::string::npos && !sub->empty(); p = s.find(*sub, p + sub->size())) ++n;
      return Value::Int(n);
    }
    size_t p = name == "find" ? s.find(*sub) : s.rfind(*sub);
    return Value::Int(p == std::string::npos ? -1 : static_cast<int64_t>(CodePointCount(s.substr(0, p))));
  }
  if (name == "join") {
    auto items = Iterate(Arg(a, 0, "iterable"));
    if (!items.ok()) return items.status();
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i].is_string()) return TypeError("sequence item " + std::to_string(i) + ": expected str instance");
      out += (i ? s : "") + (*items)[i].str();
    }
    return Value::String(out);
  }
  if (name == "splitlines") {
    List out;
    for (const Value& v : Split(s, Value::String("\n"), -1)) out.push_back(v);
    if (!out.empty() && out.back().str().empty()) out.pop_back();
    return Value::MakeList(std::move(out));
  }
  if (name == "isdigit" || name == "isspace" || name == "isalpha") {
    std::u32string u = Decode(s);
    bool ok = !u.empty();
    for (char32_t c : u) {
      ok = ok && (name == "isspace" ? IsPySpace(c)
                  : name == "isdigit" ? (c >= '0' && c <= '9')
                                      : ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'));
    }
    return Value::Bool(ok);
  }
  return absl::NotFoundError("");
}

absl::StatusOr<Value> DictMethod(const Value& d, const std::string& name, CallArgs& a) {
  if (name == "items" || name == "keys" || name == "values") {
    List out;
    for (auto& [k, v] : d.dict()) {
      if (name == "items") out.push_back(Value::MakeList({Value::String(k), v}));
      if (name == "keys") out.push_back(Value::String(k));
      if (name == "values") out.push_back(v);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "get") {
    Value key = Arg(a, 0, "key");
    Value* hit = key.is_string() ? d.Find(key.str()) : nullptr;
    return hit ? *hit : Arg(a, 1, "default", Value::None());
  }
  return absl::NotFoundError("");
}

Value Bound(const Value& self, const std::string& name) {
  return Value::Function(name, [self, name](CallArgs& a) -> absl::StatusOr<Value> {
    return self.is_string() ? StringMethod(self.str(), name, a) : DictMethod(self, name, a);
  });
}

bool IsStringMethod(const std::string& n) {
  static const char* kNames[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split", "upper", "lower",
                                 "title", "capitalize", "replace", "find", "rfind", "count", "join", "splitlines",
                                 "isdigit", "isspace", "isalpha"};
  for (const char* k : kNames) {
    if (n == k) return true;
  }
  return false;
}

std::string UndefinedHint(const Value& obj, const Value& name) {
  std::string type = obj.kind() == Value::Kind::kNamespace ? "jinja2.utils.Namespace" : obj.TypeName();
  if (name.is_string()) return absl::StrCat("'", type, " object' has no attribute '", name.str(), "'");
  return absl::StrCat(type, " object has no element ", name.Repr());
}

absl::StatusOr<Value> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return Value::Int(0);
    case Value::Kind::kString: return Value::Int(static_cast<int64_t>(CodePointCount(v.str())));
    case Value::Kind::kList: return Value::Int(static_cast<int64_t>(v.list().size()));
    case Value::Kind::kDict: return Value::Int(static_cast<int64_t>(v.dict().size()));
    default: return TypeError("object of type '" + v.TypeName() + "' has no len()");
  }
}

}  // namespace

size_t CodePointCount(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

absl::StatusOr<List> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return List{};
    case Value::Kind::kList: return v.list();
    case Value::Kind::kDict: {
      List keys;
      for (auto& [k, _] : v.dict()) keys.push_back(Value::String(k));
      return keys;
    }
    case Value::Kind::kString: {
      List chars;
      for (char32_t c : Decode(v.str())) chars.push_back(Value::String(Encode(std::u32string(1, c))));
      return chars;
    }
    default: return TypeError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

Value GetAttr(const Value& v, const std::string& name) {
  if (v.is_string() && IsStringMethod(name)) return Bound(v, name);
  if (v.kind() == Value::Kind::kDict && (name == "items" || name == "keys" || name == "values" || name == "get")) {
    return Bound(v, name);
  }
  if (v.is_mapping()) {
    if (Value* hit = v.Find(name)) return *hit;
  }
  return Value::Undefined(UndefinedHint(v, Value::String(name)));
}

Value GetItem(const Value& v, const Value& key) {
  if (v.is_mapping() && key.is_string()) {
    if (Value* hit = v.Find(key.str())) return *hit;
  }
  if ((v.kind() == Value::Kind::kList || v.is_string()) && key.kind() == Value::Kind::kInt) {
    int64_t i = key.as_int();
    if (v.is_string()) {
      std::u32string u = Decode(v.str());
      int64_t n = static_cast<int64_t>(u.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::String(Encode(u.substr(i, 1)));
    } else {
      int64_t n = static_cast<int64_t>(v.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return v.list()[i];
    }
  }
  if (key.is_string()) return GetAttr(v, key.str());
  return Value::Undefined(UndefinedHint(v, key));
}

absl::StatusOr<Value> Slice(const Value& v, const Value& start, const Value& stop, const Value& step) {
  auto as_opt = [](const Value& x, int64_t def) { return x.is_undefined() || x.is_none() ? def : x.as_int(); };
  int64_t st = as_opt(step, 1);
  if (st == 0) return TypeError("slice step cannot be zero");
  std::u32string u;
  int64_t n;
  if (v.is_string()) {
    u = Decode(v.str());
    n = static_cast<int64_t>(u.size());
  } else if (v.kind() == Value::Kind::kList) {
    n = static_cast<int64_t>(v.list().size());
  } else {
    return TypeError(absl::StrCat("'", v.TypeName(), "' object is not subscriptable"));
  }
  auto clamp = [&](int64_t i, int64_t lo, int64_t hi) {
    if (i < 0) i += n;
    return i < lo ? lo : i > hi ? hi : i;
  };
  int64_t b = st > 0 ? clamp(as_opt(start, 0), 0, n) : clamp(as_opt(start, n - 1), -1, n - 1);
  int64_t e = st > 0 ? clamp(as_opt(stop, n), 0, n) : (stop.is_undefined() || stop.is_none() ? -1 : clamp(stop.as_int(), -1, n - 1));
  std::u32string su;
  List sl;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (v.is_string()) {
      su += u[i];
    } else {
      sl.push_back(v.list()[i]);
    }
  }
  return v.is_string() ? Value::String(Encode(su)) : Value::MakeList(std::move(sl));
}

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& v, CallArgs& a) {
  if (name == "trim") return Value::String(Strip(v.ToString(), Arg(a, 0, "chars"), true, true));
  if (name == "tojson") {
    Value indent = Arg(a, 0, "indent");
    auto json = v.ToJson(indent.kind() == Value::Kind::kInt ? static_cast<int>(indent.as_int()) : -1);
    if (!json.ok()) return json.status();
    return Value::String(*json);
  }
  if (name == "length" || name == "count") return Length(v);
  if (name == "string") return Value::String(v.ToString());
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    return TypeError("filter '" + name + "' is not supported (autoescape is off in chat templates)");
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    int mode = name == "lower" ? 0 : name == "upper" ? 1 : name == "title" ? 2 : 3;
    return Value::String(MapCase(v.ToString(), mode));
  }
  if (name == "replace") {
    Value from = Arg(a, 0, "old"), to = Arg(a, 1, "new");
    return Value::String(Replace(v.ToString(), from.ToString(), to.ToString(), Arg(a, 2, "count", Value::Int(-1)).as_int()));
  }
  if (name == "default" || name == "d") {
    bool boolean = Arg(a, 1, "boolean", Value::Bool(false)).Truthy();
    if (v.is_undefined() || (boolean && !v.Truthy())) return Arg(a, 0, "default_value", Value::String(""));
    return v;
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::MakeList();
    if (v.kind() != Value::Kind::kDict) return TypeError("Can only get item pairs from a mapping.");
    return DictMethod(v, "items", a);
  }
  if (name == "list") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    return Value::MakeList(std::move(*items));
  }
  if (name == "join") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    Value attr = Arg(a, 1, "attribute");
    std::string sep = Arg(a, 0, "d", Value::String("")).ToString(), out;
    for (size_t i = 0; i < items->size(); ++i) {
      Value item = attr.is_undefined() ? (*items)[i] : GetItem((*items)[i], attr);
      out += (i ? sep : "") + item.ToString();
    }
    return Value::String(out);
  }
  if (name == "first" || name == "last") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    if (items->empty()) return Value::Undefined("No first item, sequence was empty.");
    return name == "first" ? items->front() : items->back();
  }
  if (name == "reverse") {
    if (v.is_string()) return Slice(v, Value::Undefined(), Value::Undefined(), Value::Int(-1));
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    return Value::MakeList(List(items->rbegin(), items->rend()));
  }
  if (name == "int") {
    if (v.is_number()) return Value::Int(static_cast<int64_t>(v.as_float()));
    try {
      return Value::Int(std::stoll(v.ToString()));
    } catch (...) {
      return Arg(a, 0, "default", Value::Int(0));
    }
  }
  if (name == "float") {
    if (v.is_number()) return Value::Float(v.as_float());
    try {
      return Value::Float(std::stod(v.ToString()));
    } catch (...) {
      return Arg(a, 0, "default", Value::Float(0));
    }
  }
  if (name == "abs") {
    if (v.kind() == Value::Kind::kFloat) return Value::Float(std::abs(v.as_float()));
    if (v.is_number()) return Value::Int(std::abs(v.as_int()));
    return TypeError("bad operand type for abs(): '" + v.TypeName() + "'");
  }
  if (name == "map") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    Value attr = Arg(a, 99, "attribute");
    if (attr.is_undefined()) return TypeError("map filter supports only attribute=");
    List out;
    for (const Value& item : *items) {
      Value got = GetItem(item, attr);
      out.push_back(got.is_undefined() ? Arg(a, 99, "default") : got);
    }
    return Value::MakeList(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") {
    auto items = Iterate(v);
    if (!items.ok()) return items.status();
    if (a.positional.empty()) return TypeError(name + " needs an attribute name");
    Value attr = a.positional[0];
    std::string test = a.positional.size() > 1 ? a.positional[1].ToString() : "";
    CallArgs test_args;
    test_args.positional.assign(a.positional.begin() + std::min<size_t>(2, a.positional.size()), a.positional.end());
    List out;
    for (const Value& item : *items) {
      Value field = GetItem(item, attr);
      bool hit;
      if (test.empty()) {
        hit = field.Truthy();
      } else {
        auto t = ApplyTest(test, field, test_args);
        if (!t.ok()) return t.status();
        hit = *t;
      }
      if (hit == (name == "selectattr")) out.push_back(item);
    }
    return Value::MakeList(std::move(out));
  }
  return absl::NotFoundError("no filter named '" + name + "'");
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, CallArgs& a) {
  using Kind = Value::Kind;
  Value other = Arg(a, 0, "other");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == Kind::kInt;
  if (name == "float") return v.kind() == Kind::kFloat;
  if (name == "boolean") return v.kind() == Kind::kBool;
  if (name == "true") return v.kind() == Kind::kBool && v.as_bool();
  if (name == "false") return v.kind() == Kind::kBool && !v.as_bool();
  if (name == "mapping") return v.kind() == Kind::kDict;
  if (name == "iterable") {
    return v.is_undefined() || v.is_string() || v.kind() == Kind::kList || v.kind() == Kind::kDict;
  }
  if (name == "sequence") return v.is_string() || v.kind() == Kind::kList || v.kind() == Kind::kDict;
  if (name == "callable") return v.kind() == Kind::kCallable;
  if (name == "odd" || name == "even") {
    if (!v.is_number()) return TypeError("'" + name + "' test needs a number");
    return (v.as_int() % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") return other.as_int() != 0 && v.as_int() % other.as_int() == 0;
  if (name == "eq" || name == "equalto" || name == "==") return v.Equals(other);
  if (name == "ne" || name == "!=") return !v.Equals(other);
  if (name == "sameas") {
    if (v.kind() != other.kind()) return false;
    return v.is_none() || v.is_undefined() || (v.kind() == Kind::kBool && v.as_bool() == other.as_bool()) ||
           (v.kind() == Kind::kList && &v.list() == &other.list()) || (v.is_mapping() && &v.dict() == &other.dict());
  }
  if (name == "lt" || name == "<" || name == "le" || name == "<=" || name == "gt" || name == ">" || name == "ge" ||
      name == ">=") {
    if (!((v.is_number() && other.is_number()) || (v.is_string() && other.is_string()))) {
      return TypeError("'" + name + "' not supported between instances of '" + v.TypeName() + "' and '" +
                       other.TypeName() + "'");
    }
    int c = v.is_string() ? v.str().compare(other.str()) : (v.as_float() < other.as_float() ? -1 : v.as_float() > other.as_float());
    if (name == "lt" || name == "<") return c < 0;
    if (name == "le" || name == "<=") return c <= 0;
    if (name == "gt" || name == ">") return c > 0;
    return c >= 0;
  }
  if (name == "in") {
    auto items = Iterate(other);
    if (!items.ok()) return items.status();
    if (other.is_string()) return v.is_string() && other.str().find(v.str()) != std::string::npos;
    for (const Value& x : *items) {
      if (x.Equals(v)) return true;
    }
    return false;
  }
  if (name == "lower" || name == "upper") {
    std::string s = v.ToString();
    return s == MapCase(s, name == "lower" ? 0 : 1);
  }
  return absl::NotFoundError("no test named '" + name + "'");
}

void AddGlobals(Dict& g) {
  g.emplace_back("raise_exception", Value::Function("raise_exception", [](CallArgs& a) -> absl::StatusOr<Value> {
                   return absl::Status(kRaisedCode, Arg(a, 0, "message").ToString());
                 }));
  g.emplace_back("namespace", Value::Function("namespace", [](CallArgs& a) -> absl::StatusOr<Value> {
                   Value ns = Value::MakeDict({}, /*is_namespace=*/true);
                   for (const Value& p : a.positional) {
                     if (p.kind() != Value::Kind::kDict) return TypeError("namespace() takes mappings and keywords");
                     for (auto& [k, v] : p.dict()) ns.Set(k, v);
                   }
                   for (auto& [k, v] : a.keyword) ns.Set(k, v);
                   return ns;
                 }));
  g.emplace_back("dict", Value::Function("dict", [](CallArgs& a) -> absl::StatusOr<Value> {
                   Value d = Value::MakeDict();
                   for (auto& [k, v] : a.keyword) d.Set(k, v);
                   return d;
                 }));
  g.emplace_back("range", Value::Function("range", [](CallArgs& a) -> absl::StatusOr<Value> {
                   int64_t b = 0, e, s = 1;
                   if (a.positional.empty() || a.positional.size() > 3) return TypeError("range expects 1 to 3 ints");
                   for (const Value& p : a.positional) {
                     if (p.kind() != Value::Kind::kInt) return TypeError("range() arguments must be int");
                   }
                   if (a.positional.size() == 1) {
                     e = a.positional[0].as_int();
                   } else {
                     b = a.positional[0].as_int();
                     e = a.positional[1].as_int();
                     if (a.positional.size() == 3) s = a.positional[2].as_int();
                   }
                   if (s == 0) return TypeError("range() arg 3 must not be zero");
                   List out;
                   for (int64_t i = b; s > 0 ? i < e : i > e; i += s) {
                     if (out.size() >= 100000) return TypeError("range() is too large for a chat template");
                     out.push_back(Value::Int(i));
                   }
                   return Value::MakeList(std::move(out));
                 }));
  g.emplace_back("strftime_now", Value::Function("strftime_now", [](CallArgs& a) -> absl::StatusOr<Value> {
                   std::time_t now = std::time(nullptr);
                   std::tm tm{};
                   localtime_r(&now, &tm);
                   char buf[256];
                   size_t n = std::strftime(buf, sizeof buf, Arg(a, 0, "format").ToString().c_str(), &tm);
                   return Value::String(std::string(buf, n));
                 }));
}

}  // namespace moed::chat
