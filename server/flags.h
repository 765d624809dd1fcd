// Command line + environment → ServerConfig. Flags are absl flags; each may also come from the
// environment as MOED_<FLAG_IN_UPPER_SNAKE> (e.g. MOED_METRICS_PORT=9400) when not on the command line.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "server/config.h"

namespace moed::server {

// Returns the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;
EnvLookup ProcessEnv();  // reads the real environment (getenv)

// "metrics-port" / "metrics_port" → "MOED_METRICS_PORT".
std::string EnvVarForFlag(absl::string_view flag_name);

// Parses argv (flag names may use '-' or '_': --metrics-port=0 and --metrics_port=0 are the same),
// after first applying MOED_* environment values as defaults. Errors name the flag or variable and
// what is wrong (INVALID_ARGUMENT); the caller handles --help (UsageText) before calling.
// Not thread-safe: sets the process's absl flags.
absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv, const EnvLookup& env);

// The built-in model (fortune-moe) for an empty --model, found from the executable's own directory, not the
// working directory: <exe dir>/models/fortune-moe, <exe dir>/../models/fortune-moe (a build tree),
// <exe dir>/../share/moed/models/fortune-moe (an install). NOT_FOUND lists where it looked.
absl::StatusOr<std::string> FindBuiltInModel();

// One paragraph per flag: name, environment variable, default, help.
std::string UsageText();

// Range checks of a config (ports, sizes, enums); INVALID_ARGUMENT naming the flag.
absl::Status ValidateServerConfig(const ServerConfig& config);

}  // namespace moed::server
