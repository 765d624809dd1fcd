// Typed, error-naming access to the fields of a JSON object.
#include "engine/model/json_fields.h"

#include <limits>

#include "engine/common/str_cat.h"

namespace moed {
namespace {

// Integer value of `v` when it is a JSON integer that fits int64.
std::optional<int64_t> AsInt64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

}  // namespace

std::string JsonPreview(const nlohmann::json& v) {
  std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

absl::StatusOr<nlohmann::json> ParseJsonText(std::string_view text, std::string_view source) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(Concat(source, ": invalid JSON: ", e.what()));
  }
}

const nlohmann::json* JsonFields::Find(std::string_view name) const {
  if (!obj_.is_object()) return nullptr;
  auto it = obj_.find(name);
  return it == obj_.end() ? nullptr : &*it;
}

bool JsonFields::Has(std::string_view name) const {
  const nlohmann::json* v = Find(name);
  return v != nullptr && !v->is_null();
}

absl::Status JsonFields::FieldError(std::string_view name, std::string_view what,
                                    absl::StatusCode code) const {
  return absl::Status(code, Concat(source_, ": field '", prefix_, name, "' ", what));
}

absl::StatusOr<int64_t> JsonFields::Int(std::string_view name) const {
  const nlohmann::json* v = Find(name);
  if (v == nullptr || v->is_null()) return FieldError(name, "is missing");
  std::optional<int64_t> i = AsInt64(*v);
  if (!i) return FieldError(name, Concat("must be an integer, found ", JsonPreview(*v)));
  return *i;
}

absl::StatusOr<int64_t> JsonFields::IntOr(std::string_view name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  return Int(name);
}

absl::StatusOr<std::optional<int64_t>> JsonFields::OptionalInt(std::string_view name) const {
  if (!Has(name)) return std::optional<int64_t>();
  absl::StatusOr<int64_t> i = Int(name);
  if (!i.ok()) return i.status();
  return std::optional<int64_t>(*i);
}

absl::StatusOr<double> JsonFields::NumberOr(std::string_view name, double fallback) const {
  const nlohmann::json* v = Find(name);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_number()) return FieldError(name, Concat("must be a number, found ", JsonPreview(*v)));
  return v->get<double>();
}

absl::StatusOr<bool> JsonFields::BoolOr(std::string_view name, bool fallback) const {
  const nlohmann::json* v = Find(name);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) return FieldError(name, Concat("must be a boolean, found ", JsonPreview(*v)));
  return v->get<bool>();
}

absl::StatusOr<std::string> JsonFields::String(std::string_view name) const {
  const nlohmann::json* v = Find(name);
  if (v == nullptr || v->is_null()) return FieldError(name, "is missing");
  if (!v->is_string()) return FieldError(name, Concat("must be a string, found ", JsonPreview(*v)));
  return v->get<std::string>();
}

absl::StatusOr<std::optional<std::string>> JsonFields::OptionalString(std::string_view name) const {
  if (!Has(name)) return std::optional<std::string>();
  absl::StatusOr<std::string> s = String(name);
  if (!s.ok()) return s.status();
  return std::optional<std::string>(*s);
}

absl::StatusOr<std::vector<int64_t>> JsonFields::IntList(std::string_view name) const {
  const nlohmann::json* v = Find(name);
  std::vector<int64_t> out;
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return FieldError(name, Concat("must be a list of integers, found ", JsonPreview(*v)));
  for (const nlohmann::json& e : *v) {
    std::optional<int64_t> i = AsInt64(e);
    if (!i) return FieldError(name, Concat("must be a list of integers, found element ", JsonPreview(e)));
    out.push_back(*i);
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> JsonFields::IntOrIntList(std::string_view name) const {
  const nlohmann::json* v = Find(name);
  if (v != nullptr && v->is_number()) {
    std::optional<int64_t> i = AsInt64(*v);
    if (!i) return FieldError(name, Concat("must be an integer or a list of integers, found ", JsonPreview(*v)));
    return std::vector<int64_t>{*i};
  }
  if (v != nullptr && !v->is_null() && !v->is_array()) {
    return FieldError(name, Concat("must be an integer or a list of integers, found ", JsonPreview(*v)));
  }
  return IntList(name);
}

}  // namespace moed
