// Command-line parsing shared by moectl and moe-bench: "--flag value", "--flag=value", boolean
// switches, repeatable flags and positional arguments; typed getters that report bad values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace moed::client {

struct FlagSpec {
  std::string name;         // without the leading "--"
  bool takes_value = true;  // false: a boolean switch
  bool repeatable = false;
};

class CliArgs {
 public:
  // Parses argv[1..argc) against `specs`. INVALID_ARGUMENT names an unknown flag, a missing value
  // or a non-repeatable flag given twice.
  static absl::StatusOr<CliArgs> Parse(int argc, char** argv, const std::vector<FlagSpec>& specs);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // All values of a repeatable flag, in order (empty when absent).
  std::vector<std::string> All(const std::string& name) const;

  std::string GetString(const std::string& name, const std::string& fallback) const;
  absl::StatusOr<std::optional<int64_t>> GetInt(const std::string& name) const;
  absl::StatusOr<std::optional<uint64_t>> GetUint(const std::string& name) const;
  absl::StatusOr<std::optional<double>> GetDouble(const std::string& name) const;
  // Durations as "30s", "500ms", "2m" or a plain number of seconds; "0" means none.
  absl::StatusOr<std::optional<absl::Duration>> GetDuration(const std::string& name) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;  // switches hold "true"
};

// Parses "1,2,3" into ids; INVALID_ARGUMENT naming `what` on a bad element.
absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text, const std::string& what);

}  // namespace moed::client
