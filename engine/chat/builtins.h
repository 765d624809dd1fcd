// Jinja filters, tests, globals and the Python str/dict methods chat templates call, over chat::Value.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/chat/value.h"

namespace moed::chat {

// Errors returned here carry a bare message; the interpreter prefixes the template position. A raise_exception call
// returns kRaisedCode so the interpreter can pass the template's own message through unchanged.
inline constexpr absl::StatusCode kRaisedCode = absl::StatusCode::kAborted;

// `value | name(args)`; NotFound when no such filter exists.
absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& value, CallArgs& args);
// `value is name(args)`; NotFound when no such test exists.
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& value, CallArgs& args);
// `value.name` for strings, dicts and namespaces: a bound method, a dict member, or undefined with Jinja's hint.
Value GetAttr(const Value& value, const std::string& name);
// `value[key]`: dict member, list/string element (negative indices count from the end), or undefined.
Value GetItem(const Value& value, const Value& key);
// `value[start:stop:step]` on lists and strings (code points), Python semantics.
absl::StatusOr<Value> Slice(const Value& value, const Value& start, const Value& stop, const Value& step);
// The global functions: raise_exception, namespace, range, dict, strftime_now.
void AddGlobals(Dict& globals);
// Items a for loop visits: list elements, dict keys, string characters; undefined visits nothing.
absl::StatusOr<List> Iterate(const Value& value);
// Number of code points of a UTF-8 string.
size_t CodePointCount(const std::string& s);

}  // namespace moed::chat
