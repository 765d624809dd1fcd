// Small file-system helpers: whole-file reads and path joining, errors as absl::Status.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace moed {

// Reads the whole file. NOT_FOUND when it does not exist; errors name the path and the OS reason.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// True when `path` names an existing regular file (following symlinks).
bool IsRegularFile(const std::string& path);

// "dir/name", without doubling a trailing '/' of `dir`; `dir` empty → `name`.
std::string JoinPath(std::string_view dir, std::string_view name);

}  // namespace moed
