// The Jinja interpreter's value: Python-like undefined/none/bool/int/float/str/list/dict/namespace/callable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moed::chat {

class Value;
using List = std::vector<Value>;
// A dict keeps insertion order, as Python's does (tojson and items depend on it). Keys are strings.
using Dict = std::vector<std::pair<std::string, Value>>;

// Positional and keyword arguments of a call; a callable returns a value or an error message (the caller adds the
// template position).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Callable = std::function<absl::StatusOr<Value>(CallArgs&)>;

// Lists, dicts and namespaces are shared by reference, as in Python (a namespace is mutated through `set ns.x`).
// Values are not thread-safe; one render owns its values.
class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };

  Value() = default;  // undefined
  static Value Undefined(std::string hint = "") {
    Value v;
    v.str_ = std::move(hint);
    return v;
  }
  static Value None() { return Value(Kind::kNone); }
  static Value Bool(bool b) {
    Value v(Kind::kBool);
    v.int_ = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v(Kind::kInt);
    v.int_ = i;
    return v;
  }
  static Value Float(double d) {
    Value v(Kind::kFloat);
    v.float_ = d;
    return v;
  }
  static Value String(std::string s) {
    Value v(Kind::kString);
    v.str_ = std::move(s);
    return v;
  }
  static Value MakeList(List items = {}) {
    Value v(Kind::kList);
    v.list_ = std::make_shared<List>(std::move(items));
    return v;
  }
  // A tuple is a list that prints as (a, b); Jinja tuple literals make one.
  static Value MakeTuple(List items) {
    Value v = MakeList(std::move(items));
    v.int_ = 1;
    return v;
  }
  static Value MakeDict(Dict items = {}, bool is_namespace = false) {
    Value v(is_namespace ? Kind::kNamespace : Kind::kDict);
    v.dict_ = std::make_shared<Dict>(std::move(items));
    return v;
  }
  static Value Function(std::string name, Callable fn) {
    Value v(Kind::kCallable);
    v.str_ = std::move(name);
    v.fn_ = std::make_shared<Callable>(std::move(fn));
    return v;
  }
  // JSON (object key order kept) to a value: objects become dicts, arrays lists, numbers int or float.
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool is_mapping() const { return kind_ == Kind::kDict || kind_ == Kind::kNamespace; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }
  double as_float() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& str() const { return str_; }  // string value; for undefined, the hint naming what is missing
  List& list() const { return *list_; }
  Dict& dict() const { return *dict_; }
  const Callable& callable() const { return *fn_; }

  // Dict member by key, nullptr when absent.
  Value* Find(const std::string& key) const;
  void Set(const std::string& key, Value v) const;

  // Python truthiness.
  bool Truthy() const;
  // Python str(): what `{{ value }}` prints and `~` concatenates. Undefined prints as "".
  std::string ToString() const;
  // Python repr() (strings quoted), used inside container reprs.
  std::string Repr() const;
  // Python ==.
  bool Equals(const Value& other) const;
  // json.dumps(value, ensure_ascii=False, indent=indent, separators=default, sort_keys=false), as transformers'
  // tojson filter; errors for undefined, namespaces and callables.
  absl::StatusOr<std::string> ToJson(int indent = -1) const;
  // Python type name for error messages ("str", "dict", "NoneType", ...).
  std::string TypeName() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Callable> fn_;
};

// Python repr of a float ("1.0", "0.1", "1e-05", "inf").
std::string FloatRepr(double d);

}  // namespace moed::chat
