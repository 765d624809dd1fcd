// LogEvent: text or JSON lines on stderr under one mutex.
#include "server/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/common/json_escape.h"

namespace moed::server {
namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};
std::mutex g_mu;

bool NeedsQuotes(absl::string_view s) {
  if (s.empty()) return true;
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

const char* SeverityName(LogSeverity s) {
  switch (s) {
    case LogSeverity::kInfo: return "INFO";
    case LogSeverity::kWarning: return "WARNING";
    case LogSeverity::kError: return "ERROR";
  }
  return "INFO";
}

}  // namespace

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat("--log-format must be text or json, got '", name, "'"));
}

void SetLogFormat(LogFormat format) { g_format.store(format); }

std::string FormatLogLine(LogFormat format, LogSeverity severity, absl::string_view message,
                          const std::vector<LogField>& fields) {
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  if (format == LogFormat::kJson) {
    std::string out = absl::StrCat("{\"ts\":\"", ts, "\",\"severity\":\"", SeverityName(severity), "\",\"msg\":\"",
                                   JsonEscape(std::string_view(message.data(), message.size())), "\"");
    for (const LogField& f : fields) {
      absl::StrAppend(&out, ",\"", JsonEscape(f.key), "\":");
      if (f.number) {
        absl::StrAppend(&out, f.value);
      } else {
        absl::StrAppend(&out, "\"", JsonEscape(f.value), "\"");
      }
    }
    out.push_back('}');
    return out;
  }
  std::string out = absl::StrCat(std::string(1, SeverityName(severity)[0]), ts, " ", message);
  for (const LogField& f : fields) {
    if (NeedsQuotes(f.value)) {
      absl::StrAppend(&out, " ", f.key, "=\"", JsonEscape(f.value), "\"");
    } else {
      absl::StrAppend(&out, " ", f.key, "=", f.value);
    }
  }
  return out;
}

void LogEvent(LogSeverity severity, absl::string_view message, const std::vector<LogField>& fields) {
  const std::string line = FormatLogLine(g_format.load(), severity, message, fields) + "\n";
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace moed::server
