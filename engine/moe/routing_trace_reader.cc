// ReadRoutingTrace: gunzip, split lines, parse each record with nlohmann::json.
#include "engine/moe/routing_trace_reader.h"

#include <zlib.h>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

absl::StatusOr<TracedToken> ParseRecord(const std::string& line, int64_t line_no) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrFormat("routing trace line %d: %s", line_no, why));
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (!j.contains("request") || !j["request"].is_string()) return bad("no string \"request\"");
  if (!j.contains("position") || !j["position"].is_number_integer()) return bad("no integer \"position\"");
  if (!j.contains("token") || !j["token"].is_number_integer()) return bad("no integer \"token\"");
  if (!j.contains("experts") || !j["experts"].is_array()) return bad("no \"experts\" array");
  TracedToken t;
  t.request = j["request"].get<std::string>();
  t.position = j["position"].get<int32_t>();
  t.token = j["token"].get<int32_t>();
  for (const nlohmann::json& layer : j["experts"]) {
    if (!layer.is_array()) return bad("\"experts\" is not an array of arrays");
    std::vector<int32_t>& ids = t.experts.emplace_back();
    for (const nlohmann::json& e : layer) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0) return bad("an expert id is not a non-negative integer");
      ids.push_back(e.get<int32_t>());
    }
  }
  if (!j.contains("weights")) return t;
  if (!j["weights"].is_array() || j["weights"].size() != t.experts.size()) {
    return bad("\"weights\" is not one array per layer");
  }
  for (size_t l = 0; l < t.experts.size(); ++l) {
    const nlohmann::json& layer = j["weights"][l];
    if (!layer.is_array() || layer.size() != t.experts[l].size()) return bad("\"weights\" do not align with \"experts\"");
    std::vector<float>& w = t.weights.emplace_back();
    for (const nlohmann::json& x : layer) {
      if (!x.is_number()) return bad("a weight is not a number");
      w.push_back(x.get<float>());
    }
  }
  return t;
}

}  // namespace

absl::StatusOr<std::vector<TracedToken>> ReadRoutingTrace(const std::string& path, int64_t max_records) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrFormat("routing trace: cannot open '%s'", path));
  std::string text;
  char buf[1 << 16];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) text.append(buf, n);
  gzclose(f);
  std::vector<TracedToken> out;
  int64_t line_no = 0;
  for (size_t start = 0; start < text.size() && (max_records < 0 || static_cast<int64_t>(out.size()) < max_records);) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    ++line_no;
    if (nl > start) {
      absl::StatusOr<TracedToken> t = ParseRecord(text.substr(start, nl - start), line_no);
      if (!t.ok()) return t.status();
      if (!out.empty() && t->experts.size() != out.front().experts.size()) {
        return absl::InvalidArgumentError(absl::StrFormat("routing trace line %d: %d layers, the first record has %d",
                                                          line_no, t->experts.size(), out.front().experts.size()));
      }
      out.push_back(std::move(t).value());
    }
    start = nl + 1;
  }
  return out;
}

}  // namespace moed
