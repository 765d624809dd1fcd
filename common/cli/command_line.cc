// The shared command-line parser: argv splitting, environment fallback, --help and --version.
#include "common/cli/command_line.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "moed/version.h"

namespace moed::cli {
namespace {

std::string Underscored(absl::string_view name) { return absl::StrReplaceAll(name, {{"-", "_"}}); }
std::string Dashed(absl::string_view name) { return absl::StrReplaceAll(name, {{"_", "-"}}); }

// The program's flag called `name` (underscored), or nullptr.
absl::CommandLineFlag* FindOwnFlag(const Program& program, absl::string_view name) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return nullptr;
  for (const std::string& file : program.flag_files) {
    if (absl::EndsWith(flag->Filename(), file)) return flag;
  }
  return nullptr;
}

// Sets one flag from text. `origin` names where the text came from ("--port", "MOED_PORT").
absl::Status SetFlag(absl::CommandLineFlag& flag, absl::string_view value, absl::string_view origin) {
  std::string error;
  if (!flag.ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": invalid value '", value, "': ", error));
  }
  return absl::OkStatus();
}

bool IsHelp(absl::string_view arg) { return arg == "--help" || arg == "-h" || arg == "--helpfull"; }

}  // namespace

EnvLookup ProcessEnv() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

EnvLookup NoEnv() {
  return [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
}

std::string EnvVarFor(absl::string_view env_prefix, absl::string_view flag_name) {
  return absl::StrCat(env_prefix, absl::AsciiStrToUpper(Underscored(flag_name)));
}

std::vector<std::string> FlagNames(const Program& program) {
  std::vector<std::string> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (FindOwnFlag(program, name) != nullptr) names.push_back(std::string(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<CommandLine> ParseCommandLine(const Program& program, int argc, char** argv, const EnvLookup& env) {
  CommandLine out;
  for (int i = 1; i < argc && absl::string_view(argv[i]) != "--"; ++i) {
    if (IsHelp(argv[i])) out.action = CommandLine::Action::kHelp;
    if (absl::string_view(argv[i]) == "--version" && out.action == CommandLine::Action::kRun) {
      out.action = CommandLine::Action::kVersion;
    }
  }
  if (out.action != CommandLine::Action::kRun) return out;

  // Environment first: it becomes the default the command line may override.
  if (!program.env_prefix.empty()) {
    for (const std::string& name : FlagNames(program)) {
      const std::string var = EnvVarFor(program.env_prefix, name);
      std::optional<std::string> value = env(var);
      if (!value.has_value()) continue;
      absl::Status s = SetFlag(*FindOwnFlag(program, name), *value, var);
      if (!s.ok()) return s;
    }
  }
  std::set<std::string> repeated_seen;  // Repeated flags given on this command line (the first one replaces)
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (only_positional || arg.size() < 3 || !absl::StartsWith(arg, "--")) {
      if (!only_positional && arg == "--") {
        only_positional = true;
        continue;
      }
      if (!program.takes_positional) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "' (flags are --name=value)"));
      }
      out.positional.push_back(std::string(arg));
      continue;
    }
    arg.remove_prefix(2);
    const size_t eq = arg.find('=');
    const std::string name = Underscored(arg.substr(0, eq));
    std::optional<std::string> value;
    if (eq != absl::string_view::npos) value = std::string(arg.substr(eq + 1));
    absl::CommandLineFlag* flag = FindOwnFlag(program, name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !value.has_value()) {
      flag = FindOwnFlag(program, name.substr(2));  // --noname turns a boolean off
      if (flag != nullptr && !flag->IsOfType<bool>()) flag = nullptr;
      if (flag != nullptr) value = "false";
    }
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", Dashed(name), " (see --help)"));
    const std::string origin = absl::StrCat("--", Dashed(flag->Name()));
    if (!value.has_value()) {
      if (flag->IsOfType<bool>()) {
        value = "true";  // a boolean never takes the next argument
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag ", origin, " needs a value"));
      }
    }
    if (flag->IsOfType<Repeated>()) {
      // Each occurrence adds a value: the flag's text form is every value behind a NUL (see AbslParseFlag).
      const bool first = repeated_seen.insert(name).second;
      value = absl::StrCat(first ? "" : flag->CurrentValue(), absl::string_view("\0", 1), *value);
    }
    absl::Status s = SetFlag(*flag, *value, origin);
    if (!s.ok()) return s;
  }
  return out;
}

std::optional<int> HandleCommandLine(const Program& program, int argc, char** argv, const EnvLookup& env,
                                     std::vector<std::string>* positional) {
  absl::StatusOr<CommandLine> parsed = ParseCommandLine(program, argc, argv, env);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", program.name.c_str(), std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  switch (parsed->action) {
    case CommandLine::Action::kHelp:
      std::fputs(UsageText(program).c_str(), stdout);
      return 0;
    case CommandLine::Action::kVersion:
      std::printf("%s\n", VersionLine(program.name).c_str());
      return 0;
    case CommandLine::Action::kRun:
      break;
  }
  if (positional != nullptr) *positional = std::move(parsed->positional);
  return std::nullopt;
}

std::string UsageText(const Program& program) {
  std::string out = program.synopsis;
  if (!out.empty() && out.back() != '\n') out += '\n';
  absl::StrAppend(&out, "flags (--name=value or --name value; a boolean is --name, --name=false or --noname):\n");
  for (const std::string& name : FlagNames(program)) {
    absl::CommandLineFlag* flag = FindOwnFlag(program, name);
    std::string where = program.env_prefix.empty() ? "" : absl::StrCat(EnvVarFor(program.env_prefix, name), ", ");
    std::string def = flag->IsOfType<Repeated>() ? "none; repeatable" : absl::StrCat("default ", flag->DefaultValue());
    if (def == "default ") def = "default none";
    absl::StrAppend(&out, "  --", Dashed(name), " (", where, def, ")\n      ", flag->Help(), "\n");
  }
  absl::StrAppend(&out, "  --help, --version\n");
  return out;
}

std::string VersionLine(absl::string_view program) {
  return absl::StrCat(program, " ", MOED_VERSION, " (revision ", MOED_REVISION, ")");
}

bool AbslParseFlag(absl::string_view text, Repeated* out, std::string* /*error*/) {
  out->values.clear();
  if (text.empty()) return true;
  if (text[0] != '\0') {  // one value as a person wrote it (the environment, a default)
    out->values.push_back(std::string(text));
    return true;
  }
  text.remove_prefix(1);
  for (absl::string_view v : absl::StrSplit(text, absl::ByChar('\0'))) out->values.push_back(std::string(v));
  return true;
}

std::string AbslUnparseFlag(const Repeated& r) {
  std::string out;
  for (const std::string& v : r.values) absl::StrAppend(&out, absl::string_view("\0", 1), v);
  return out;
}

}  // namespace moed::cli
