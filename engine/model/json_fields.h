// Typed, error-naming access to the fields of a JSON object (config.json, index files).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace moed {

// Parses `text` as JSON; errors name `source` and the parser's position message.
absl::StatusOr<nlohmann::json> ParseJsonText(std::string_view text, std::string_view source);

// `v` as compact JSON, cut to at most 80 characters, for error messages.
std::string JsonPreview(const nlohmann::json& v);

// Reads fields of one JSON object. Errors look like
// "<source>: field '<prefix><name>' is missing" or "... must be an integer".
// Borrows `object` and `source`; both must outlive the reader.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string_view source, std::string prefix = "")
      : obj_(object), source_(source), prefix_(std::move(prefix)) {}

  // True when the field exists and is not null.
  bool Has(std::string_view name) const;
  // The raw field, or nullptr when absent.
  const nlohmann::json* Find(std::string_view name) const;

  absl::StatusOr<int64_t> Int(std::string_view name) const;
  // Absent or null → `fallback`.
  absl::StatusOr<int64_t> IntOr(std::string_view name, int64_t fallback) const;
  // Absent or null → std::nullopt.
  absl::StatusOr<std::optional<int64_t>> OptionalInt(std::string_view name) const;
  // Accepts integers and floats.
  absl::StatusOr<double> NumberOr(std::string_view name, double fallback) const;
  absl::StatusOr<bool> BoolOr(std::string_view name, bool fallback) const;
  absl::StatusOr<std::string> String(std::string_view name) const;
  absl::StatusOr<std::optional<std::string>> OptionalString(std::string_view name) const;
  // An integer or a list of integers → list; absent or null → empty.
  absl::StatusOr<std::vector<int64_t>> IntOrIntList(std::string_view name) const;
  // A list of integers; absent or null → empty.
  absl::StatusOr<std::vector<int64_t>> IntList(std::string_view name) const;

  // An error about field `name` ("<source>: field '<prefix><name>' <what>").
  absl::Status FieldError(std::string_view name, std::string_view what,
                          absl::StatusCode code = absl::StatusCode::kInvalidArgument) const;

 private:
  const nlohmann::json& obj_;
  std::string_view source_;
  std::string prefix_;
};

}  // namespace moed
