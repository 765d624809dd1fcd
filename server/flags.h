// Command line + environment → ServerConfig. Flags are absl flags parsed by moed::cli; each may also come from the
// environment as MOED_<FLAG_IN_UPPER_SNAKE> (e.g. MOED_METRICS_PORT=9400) when not on the command line.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "common/cli/command_line.h"
#include "server/config.h"

namespace moed::server {

using cli::EnvLookup;
using cli::ProcessEnv;

// moed's command line for cli::HandleCommandLine: the flags of server/flags.cc, MOED_* environment fallback.
const cli::Program& MoedProgram();

// "metrics-port" / "metrics_port" → "MOED_METRICS_PORT".
std::string EnvVarForFlag(absl::string_view flag_name);

// Parses argv (flag names may use '-' or '_': --metrics-port=0 and --metrics_port=0 are the same),
// after first applying MOED_* environment values as defaults, then ServerConfigFromFlags. Errors name the flag or
// variable and what is wrong (INVALID_ARGUMENT); main handles --help and --version (cli::HandleCommandLine).
// Not thread-safe: sets the process's absl flags.
absl::StatusOr<ServerConfig> ParseServerFlags(int argc, char** argv, const EnvLookup& env);
// The config the flags hold now, checked (ValidateServerConfig).
absl::StatusOr<ServerConfig> ServerConfigFromFlags();

// The built-in model (fortune-moe) for an empty --model, found from the executable's own directory, not the
// working directory: <exe dir>/models/fortune-moe, <exe dir>/../models/fortune-moe (a build tree),
// <exe dir>/../share/moed/models/fortune-moe (an install). NOT_FOUND lists where it looked.
absl::StatusOr<std::string> FindBuiltInModel();

// One paragraph per flag: name, environment variable, default, help.
std::string UsageText();

// Range checks of a config (ports, sizes, enums); INVALID_ARGUMENT naming the flag.
absl::Status ValidateServerConfig(const ServerConfig& config);

}  // namespace moed::server
