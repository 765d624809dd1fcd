// Checked numeric reads of config.json fields shared by the family parsers (internal to engine/model).
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/common/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/model/json_fields.h"

namespace moed::config {

// Sanity caps that keep later size arithmetic far from overflow.
inline constexpr int64_t kMaxDim = 1 << 20;
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxExperts = 1 << 16;
inline constexpr int64_t kMaxVocab = 1 << 24;

// A required integer in [1, max].
inline absl::StatusOr<int> PositiveInt(const JsonFields& f, std::string_view name, int64_t max = kMaxDim) {
  MOED_ASSIGN_OR_RETURN(int64_t v, f.Int(name));
  if (v < 1) return f.FieldError(name, Concat("must be positive, found ", v));
  if (v > max) return f.FieldError(name, Concat("is ", v, ", above the supported maximum ", max));
  return static_cast<int>(v);
}

// An optional integer in [1, max]; absent or null → fallback.
inline absl::StatusOr<int> PositiveIntOr(const JsonFields& f, std::string_view name, int fallback,
                                         int64_t max = kMaxDim) {
  if (!f.Has(name)) return fallback;
  return PositiveInt(f, name, max);
}

// An optional integer in [0, max]; absent or null → fallback.
inline absl::StatusOr<int> NonNegativeIntOr(const JsonFields& f, std::string_view name, int fallback,
                                            int64_t max = kMaxDim) {
  MOED_ASSIGN_OR_RETURN(int64_t v, f.IntOr(name, fallback));
  if (v < 0 || v > max) return f.FieldError(name, Concat("must be in [0, ", max, "], found ", v));
  return static_cast<int>(v);
}

// An optional finite number > 0; absent or null → fallback.
inline absl::StatusOr<double> PositiveNumberOr(const JsonFields& f, std::string_view name, double fallback) {
  MOED_ASSIGN_OR_RETURN(double v, f.NumberOr(name, fallback));
  if (!(v > 0) || v > std::numeric_limits<float>::max()) {
    return f.FieldError(name, Concat("must be a positive number, found ", v));
  }
  return v;
}

}  // namespace moed::config
