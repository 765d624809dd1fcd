// Concat: absl::StrCat that also takes std::string_view (Debian's Abseil has its own absl::string_view type).
#pragma once

#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace moed {

// std::string_view → absl::string_view (distinct types when Abseil is built without std::string_view).
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

namespace internal_concat {
inline absl::string_view Arg(std::string_view s) { return ToAbsl(s); }
template <typename T>
const T& Arg(const T& v) {
  return v;
}
}  // namespace internal_concat

// Like absl::StrCat; std::string_view arguments are accepted too.
template <typename... Args>
std::string Concat(const Args&... args) {
  return absl::StrCat(internal_concat::Arg(args)...);
}

}  // namespace moed
