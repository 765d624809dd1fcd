// The daemon's log: one line per event on stderr, as text (`I2026-11-27T13:22:35.123Z message key=value`)
// or as one JSON object per line (--log-format json). Thread-safe. (Debian 12's Abseil, 20220623, predates
// absl/log; this is the one place that writes log lines.)
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"

namespace moed::server {

enum class LogFormat { kText, kJson };
enum class LogSeverity { kInfo, kWarning, kError };

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);  // "text" | "json"
void SetLogFormat(LogFormat format);                              // before the first line; default text

struct LogField {
  std::string key;
  std::string value;
  bool number = false;  // JSON: written unquoted (the caller guarantees a JSON number)
};

// Writes one line. Text values with spaces, quotes or control bytes are quoted and escaped.
void LogEvent(LogSeverity severity, absl::string_view message, const std::vector<LogField>& fields = {});
// The line LogEvent would write (no trailing newline); for tests.
std::string FormatLogLine(LogFormat format, LogSeverity severity, absl::string_view message,
                          const std::vector<LogField>& fields);

}  // namespace moed::server
