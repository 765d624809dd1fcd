// Command-line parsing shared by moectl and moe-bench.
#include "client/grpc/cli_args.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moed::client {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<CliArgs> CliArgs::Parse(int argc, char** argv, const std::vector<FlagSpec>& specs) {
  CliArgs args;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positional || arg.size() < 3 || arg.rfind("--", 0) != 0) {
      if (arg == "--") {
        only_positional = true;
        continue;
      }
      args.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!spec->repeatable && args.values_.count(name) > 0) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " given more than once"));
    }
    std::string value = "true";
    if (spec->takes_value) {
      if (inline_value.has_value()) {
        value = *inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    } else if (inline_value.has_value()) {
      if (*inline_value != "true" && *inline_value != "false") {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value (or =true/=false)"));
      }
      if (*inline_value == "false") continue;
    }
    args.values_[name].push_back(value);
  }
  return args;
}

std::vector<std::string> CliArgs::All(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string CliArgs::GetString(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

absl::StatusOr<std::optional<int64_t>> CliArgs::GetInt(const std::string& name) const {
  if (!Has(name)) return std::optional<int64_t>();
  int64_t v = 0;
  if (!absl::SimpleAtoi(GetString(name, ""), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": not an integer: '", GetString(name, ""), "'"));
  }
  return std::optional<int64_t>(v);
}

absl::StatusOr<std::optional<uint64_t>> CliArgs::GetUint(const std::string& name) const {
  if (!Has(name)) return std::optional<uint64_t>();
  uint64_t v = 0;
  if (!absl::SimpleAtoi(GetString(name, ""), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": not a non-negative integer: '", GetString(name, ""), "'"));
  }
  return std::optional<uint64_t>(v);
}

absl::StatusOr<std::optional<double>> CliArgs::GetDouble(const std::string& name) const {
  if (!Has(name)) return std::optional<double>();
  double v = 0;
  const std::string text = GetString(name, "");
  // SimpleAtod accepts "nan", which the server must be able to see (it rejects it).
  if (!absl::SimpleAtod(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": not a number: '", text, "'"));
  }
  return std::optional<double>(v);
}

absl::StatusOr<std::optional<absl::Duration>> CliArgs::GetDuration(const std::string& name) const {
  if (!Has(name)) return std::optional<absl::Duration>();
  const std::string text = GetString(name, "");
  double seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": not a duration (e.g. 30s, 500ms, 2m): '", text, "'"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": negative duration '", text, "'"));
  }
  return std::optional<absl::Duration>(d);
}

absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& what) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not an integer id: '", part, "'"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no ids in '", text, "'"));
  return ids;
}

}  // namespace moed::client
