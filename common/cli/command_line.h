// One command-line parser for every moed binary (moed, moectl, moe-bench, moe-run): each declares its options as
// ABSL_FLAGs (one definition, one default); ParseCommandLine sets them from argv (and, where the binary wants it,
// the environment), answers --help and --version, and reports bad input as INVALID_ARGUMENT naming the flag.
// Debian 12's Abseil (20220623) exits the process from absl::ParseCommandLine on a bad flag, so splitting argv is
// ours; every value is parsed by Abseil's own flag parser (CommandLineFlag::ParseFrom).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moed::cli {

// The exit code of a usage error (a bad flag or argument); 0 after --help and --version.
inline constexpr int kExitUsage = 2;

// The value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;
EnvLookup ProcessEnv();  // the real environment (getenv)
EnvLookup NoEnv();       // an empty environment

// What one binary accepts.
struct Program {
  std::string name;      // "moectl": the prefix of every error line and the first word of --version
  std::string synopsis;  // --help prints it before the list of flags (subcommands, what the binary does)
  // The binary's flags: the ABSL_FLAGs defined in source files whose path ends with one of these (so a new flag in
  // those files needs no other edit). Any other registered flag is "unknown".
  std::vector<std::string> flag_files;
  // Non-empty: a flag absent from the command line may come from the environment as <env_prefix><FLAG_NAME>
  // (upper case, '_' for '-'), e.g. "MOED_" → MOED_METRICS_PORT. The command line wins.
  std::string env_prefix;
  bool takes_positional = false;  // false: a positional argument is an error (moectl takes its COMMAND and ARGS)
};

struct CommandLine {
  enum class Action { kRun, kHelp, kVersion };
  Action action = Action::kRun;
  std::vector<std::string> positional;  // in order; everything after a bare "--" is positional
};

// Parses argv[1..argc) into the program's flags. Flags are --name=value or --name value (names with '-' or '_'
// alike); a boolean flag is --name (true), --name=false or --noname, and never takes the next argument. A flag of
// type Repeated adds one value per occurrence; std::optional<T> flags stay nullopt unless given.
// --help / -h / --helpfull and --version anywhere win over everything else, bad flags included.
// Errors (INVALID_ARGUMENT) name the flag or environment variable: unknown flag, missing or unparseable value,
// unexpected positional argument. Not thread-safe: sets process-wide flags.
absl::StatusOr<CommandLine> ParseCommandLine(const Program& program, int argc, char** argv, const EnvLookup& env);

// ParseCommandLine for main(): prints --help / --version to stdout, or the error as one line "<name>: <message>"
// to stderr. Returns the exit code when main should return now (0 or kExitUsage), nullopt to go on.
std::optional<int> HandleCommandLine(const Program& program, int argc, char** argv, const EnvLookup& env,
                                     std::vector<std::string>* positional = nullptr);

// The synopsis, then one paragraph per flag: --name (environment variable, default), help.
std::string UsageText(const Program& program);
// "<program> <version> (revision <git revision>)".
std::string VersionLine(absl::string_view program);
// ("MOED_", "metrics-port") → "MOED_METRICS_PORT".
std::string EnvVarFor(absl::string_view env_prefix, absl::string_view flag_name);
// The program's flag names (underscored, sorted).
std::vector<std::string> FlagNames(const Program& program);

// A flag value given any number of times, each occurrence one value taken whole (commas and all):
// ABSL_FLAG(moed::cli::Repeated, stop, {}, "...") and `--stop a --stop b,c` → {"a", "b,c"}.
struct Repeated {
  std::vector<std::string> values;
};
bool AbslParseFlag(absl::string_view text, Repeated* out, std::string* error);
std::string AbslUnparseFlag(const Repeated& r);

}  // namespace moed::cli
