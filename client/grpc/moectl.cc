// moectl: command-line client of the moed daemon (generate, tokenize, info, stats, health).
// Exit codes: 0 success, 1 the call failed (gRPC code and message on stderr), 2 usage error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include <fstream>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/grpc/connection_flags.h"
#include "common/cli/command_line.h"
#include "client/grpc/experts_report.h"
#include "client/grpc/plan_ep.h"
#include "client/grpc/grpc_util.h"
#include "moed/v1/moed.grpc.pb.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "deadline of each call; 0 = none");
ABSL_FLAG(bool, json, false, "print JSON instead of text");
ABSL_FLAG(std::optional<std::string>, prompt_ids, std::nullopt, "generate: the prompt as token ids, 1,2,3");
ABSL_FLAG(std::optional<int>, max_tokens, std::nullopt, "generate: tokens to generate (unset: the server's default)");
ABSL_FLAG(std::optional<double>, temperature, std::nullopt, "generate: sampling temperature; 0 = greedy");
ABSL_FLAG(std::optional<double>, top_p, std::nullopt, "generate: nucleus sampling mass in (0, 1]");
ABSL_FLAG(std::optional<int>, top_k, std::nullopt, "generate: sample among the K likeliest tokens; 0 = all");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt, "generate: sampling seed");
ABSL_FLAG(moed::cli::Repeated, stop, {}, "generate: a stop string (repeat the flag for more)");
ABSL_FLAG(std::optional<int>, logprobs, std::nullopt, "generate: top logprobs returned with each token");
ABSL_FLAG(bool, ignore_eos, false, "generate: keep generating past end-of-sequence");
ABSL_FLAG(bool, include_routing, false, "generate: return the routing summary");
ABSL_FLAG(std::optional<int>, priority, std::nullopt, "generate: scheduling priority (lower first; < 0 needs admin)");
ABSL_FLAG(std::string, request_id, "", "generate: the request id, echoed back and logged");
ABSL_FLAG(std::string, service, "", "health: the service to check; empty = the whole server");
ABSL_FLAG(int, top_n, 5, "experts: tokens listed per expert");
ABSL_FLAG(std::string, html, "", "experts: write an HTML report to this file instead");
ABSL_FLAG(std::optional<int>, gpus, std::nullopt, "plan-ep: GPUs to place the experts on");
ABSL_FLAG(std::optional<int>, redundant, std::nullopt, "plan-ep: redundant expert replicas (unset: the planner's choice)");
ABSL_FLAG(std::string, loads, "", "plan-ep: plan a saved `moectl stats --json` instead of the daemon's loads");
ABSL_FLAG(std::string, trace, "", "plan-ep: plan a routing trace file (.gz) instead of the daemon's loads");
ABSL_FLAG(std::optional<int>, hidden_size, std::nullopt, "plan-ep: the model's hidden_size (needed with --loads, --trace)");
ABSL_FLAG(int, tokens_per_step, 256, "plan-ep --trace: tokens grouped into one step");
ABSL_FLAG(int, num_experts, 0, "plan-ep --trace: experts per layer; 0 = the largest id seen + 1");
ABSL_FLAG(std::optional<double>, sample, std::nullopt, "trace start: share (0, 1] of requests recorded");

namespace moed::client {
namespace {

constexpr char kSynopsis[] = R"(usage: moectl COMMAND [ARGS] [--flag=value ...]   (flags may come before or after COMMAND)
commands:
  generate "PROMPT" | --prompt-ids 1,2,3
      [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop S]...
      [--logprobs N] [--ignore-eos] [--include-routing] [--priority N] [--request-id ID] [--json]
      streams the completion to stdout (--json: one JSON object once finished)
  tokenize "TEXT" [--json]      token ids of TEXT
  info [--json]                 the served model and its limits
  stats [--json]                the layer x expert matrix of routed (and dropped) tokens
  experts [--top-n N] [--html FILE] [--json]
                                load heatmap and the tokens each expert receives (--html: a report page)
  plan-ep --gpus G [--redundant R] [--json]
          [--loads STATS.json | --trace TRACE.gz [--tokens-per-step 256] [--num-experts E]] [--hidden-size H]
                                expert-parallel placement of the observed loads (the daemon's last 1000
                                steps, a saved `moectl stats --json`, or a routing trace): per-GPU load, balancedness,
                                all-to-all bytes per step
  trace start [--sample P] | stop | dump | status [--json]
                                the routing trace (moed --routing-trace FILE): start, stop, dump (close
                                the records so far as FILE.1) or show it
  health [--service NAME]       grpc.health.v1 status; exit 0 only when SERVING
Exit codes: 0 success, 1 the call failed (gRPC code and message on stderr), 2 usage error.
Every flag may also be set as MOECTL_<FLAG> in the environment (MOECTL_ADDR=host:port).
)";

constexpr int kExitCallFailed = 1;
constexpr int kExitUsage = cli::kExitUsage;

int UsageError(const std::string& message) {
  std::cerr << "moectl: " << message << " (usage: moectl --help)\n";
  return kExitUsage;
}

int CallFailed(const grpc::Status& status) {
  std::cerr << "moectl: " << StatusCodeName(status.error_code()) << ": " << status.error_message() << "\n";
  return kExitCallFailed;
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct Session {
  const std::vector<std::string>& args;  // the positional arguments: COMMAND and its ARGS
  std::unique_ptr<moed::v1::Moed::Stub> stub;
  std::shared_ptr<grpc::Channel> channel;
  absl::Duration timeout;
  bool json = false;
};

// "1,2,3" → ids; INVALID_ARGUMENT naming --prompt-ids on a bad element.
absl::StatusOr<std::vector<int32_t>> ParseIdList(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: not an integer id: '", part, "'"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError(absl::StrCat("--prompt-ids: no ids in '", text, "'"));
  return ids;
}

// Fills `req` from the flags; a usage error message on bad values.
absl::Status BuildGenerateRequest(const std::vector<std::string>& args, moed::v1::GenerateRequest& req) {
  const bool has_text = args.size() >= 2;
  const std::optional<std::string> prompt_ids = absl::GetFlag(FLAGS_prompt_ids);
  if (args.size() > 2) return absl::InvalidArgumentError("generate takes one prompt argument");
  if (has_text == prompt_ids.has_value()) {
    return absl::InvalidArgumentError("generate needs exactly one of \"PROMPT\" or --prompt-ids");
  }
  if (has_text) {
    req.set_prompt(args[1]);
  } else {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(*prompt_ids);
    if (!ids.ok()) return ids.status();
    for (int32_t id : *ids) req.add_prompt_ids(id);
  }
  req.set_request_id(absl::GetFlag(FLAGS_request_id));
  req.set_include_routing(absl::GetFlag(FLAGS_include_routing));
  moed::v1::SamplingParams& s = *req.mutable_sampling();
  s.set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  for (const std::string& stop : absl::GetFlag(FLAGS_stop).values) s.add_stop(stop);
  // Range checks are the server's job: the values travel as given so that its errors are visible; unset flags
  // leave the server's defaults.
  if (auto v = absl::GetFlag(FLAGS_max_tokens)) s.set_max_tokens(*v);
  if (auto v = absl::GetFlag(FLAGS_top_k)) s.set_top_k(*v);
  if (auto v = absl::GetFlag(FLAGS_logprobs)) s.set_logprobs(*v);
  if (auto v = absl::GetFlag(FLAGS_priority)) req.set_priority(*v);
  if (auto v = absl::GetFlag(FLAGS_seed)) s.set_seed(*v);
  if (auto v = absl::GetFlag(FLAGS_temperature)) s.set_temperature(static_cast<float>(*v));
  if (auto v = absl::GetFlag(FLAGS_top_p)) s.set_top_p(static_cast<float>(*v));
  return absl::OkStatus();
}

nlohmann::json RoutingJson(const google::protobuf::RepeatedPtrField<moed::v1::LayerRouting>& routing) {
  nlohmann::json layers = nlohmann::json::array();
  for (const moed::v1::LayerRouting& l : routing) {
    layers.push_back({{"layer", l.layer()},
                      {"expert_ids", std::vector<int32_t>(l.expert_ids().begin(), l.expert_ids().end())},
                      {"token_counts", std::vector<int32_t>(l.token_counts().begin(), l.token_counts().end())},
                      {"entropy", l.entropy()}});
  }
  return layers;
}

int RunGenerate(Session& s) {
  moed::v1::GenerateRequest req;
  if (absl::Status st = BuildGenerateRequest(s.args, req); !st.ok()) return UsageError(std::string(st.message()));

  grpc::ClientContext ctx;
  SetTimeout(ctx, s.timeout);
  std::unique_ptr<grpc::ClientReader<moed::v1::GenerateResponse>> reader = s.stub->Generate(&ctx, req);
  moed::v1::GenerateResponse msg;
  nlohmann::json out = {{"token_ids", nlohmann::json::array()}, {"text", ""}};
  nlohmann::json logprobs = nlohmann::json::array();
  std::string text;
  while (reader->Read(&msg)) {
    for (int32_t id : msg.token_ids()) out["token_ids"].push_back(id);
    text += msg.text();
    if (!msg.request_id().empty()) out["request_id"] = msg.request_id();
    for (const moed::v1::TokenLogprob& lp : msg.logprobs()) {
      nlohmann::json top = nlohmann::json::array();
      for (const moed::v1::TopLogprob& t : lp.top()) top.push_back({{"token_id", t.token_id()}, {"logprob", t.logprob()}});
      logprobs.push_back({{"token_id", lp.token_id()}, {"logprob", lp.logprob()}, {"top", top}});
    }
    if (!s.json && !msg.text().empty()) {
      std::fwrite(msg.text().data(), 1, msg.text().size(), stdout);
      std::fflush(stdout);
    }
    if (!msg.finish_reason().empty()) out["finish_reason"] = msg.finish_reason();
    if (msg.has_usage()) {
      out["usage"] = {{"prompt_tokens", msg.usage().prompt_tokens()},
                      {"completion_tokens", msg.usage().completion_tokens()},
                      {"cached_tokens", msg.usage().cached_tokens()}};
    }
    if (msg.routing_size() > 0) out["routing"] = RoutingJson(msg.routing());
  }
  const grpc::Status status = reader->Finish();
  if (!s.json) std::fputs("\n", stdout);
  if (!status.ok()) return CallFailed(status);
  if (s.json) {
    out["text"] = text;
    if (!logprobs.empty()) out["logprobs"] = logprobs;
    std::cout << Dump(out) << "\n";
  }
  return 0;
}

int RunTokenize(Session& s) {
  if (s.args.size() != 2) return UsageError("tokenize takes exactly one \"TEXT\" argument");
  moed::v1::TokenizeRequest req;
  req.set_text(s.args[1]);
  moed::v1::TokenizeResponse resp;
  grpc::ClientContext ctx;
  SetTimeout(ctx, s.timeout);
  if (grpc::Status st = s.stub->Tokenize(&ctx, req, &resp); !st.ok()) return CallFailed(st);
  std::vector<int32_t> ids(resp.token_ids().begin(), resp.token_ids().end());
  if (s.json) {
    std::cout << Dump({{"token_ids", ids}}) << "\n";
    return 0;
  }
  for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
  std::cout << "\n";
  return 0;
}

int RunInfo(Session& s) {
  moed::v1::ModelInfo info;
  grpc::ClientContext ctx;
  SetTimeout(ctx, s.timeout);
  if (grpc::Status st = s.stub->GetModelInfo(&ctx, moed::v1::GetModelInfoRequest(), &info); !st.ok()) {
    return CallFailed(st);
  }
  nlohmann::json j = {
      {"model", info.model()}, {"family", info.family()}, {"backend", info.backend()},
      {"num_layers", info.num_layers()}, {"num_experts", info.num_experts()}, {"top_k", info.top_k()},
      {"context_length", info.context_length()}, {"hidden_size", info.hidden_size()},
      {"vocab_size", info.vocab_size()}, {"num_heads", info.num_heads()}, {"num_kv_heads", info.num_kv_heads()},
      {"head_dim", info.head_dim()}, {"moe_intermediate_size", info.moe_intermediate_size()},
      {"shared_expert", info.shared_expert()}, {"moe_capacity_factor", info.moe_capacity_factor()},
      {"max_tokens_limit", info.max_tokens_limit()}, {"attention", info.attention()},
      {"kv_lora_rank", info.kv_lora_rank()}, {"qk_rope_head_dim", info.qk_rope_head_dim()},
      {"v_head_dim", info.v_head_dim()}, {"kv_cache_bytes_per_token", info.kv_cache_bytes_per_token()},
      {"num_shared_experts", info.num_shared_experts()},
      {"eos_token_ids", std::vector<int32_t>(info.eos_token_ids().begin(), info.eos_token_ids().end())}};
  if (s.json) {
    std::cout << Dump(j) << "\n";
    return 0;
  }
  for (const auto& [key, value] : j.items()) std::cout << absl::StrFormat("%-22s %s\n", key, Dump(value));
  return 0;
}

// Above this many experts a layer's row is summarised (total, max/mean, hottest experts, idle count) instead of
// printed in full, so 64–256-expert models stay readable; --json keeps every number.
constexpr int kMaxMatrixColumns = 16;
constexpr int kHottestShown = 8;

void PrintLayerSummaries(const char* title, const google::protobuf::RepeatedField<int64_t>& m, int layers,
                         int experts) {
  std::cout << title << " (per layer: total, max/mean, the " << kHottestShown << " busiest experts as id:count)\n";
  std::vector<int> order(experts);
  for (int l = 0; l < layers; ++l) {
    const int64_t* row = m.data() + static_cast<int64_t>(l) * experts;
    int64_t sum = 0, max = 0;
    int idle = 0;
    for (int e = 0; e < experts; ++e) {
      sum += row[e];
      max = std::max(max, row[e]);
      idle += row[e] == 0 ? 1 : 0;
    }
    std::iota(order.begin(), order.end(), 0);
    const int shown = std::min(kHottestShown, experts);
    std::partial_sort(order.begin(), order.begin() + shown, order.end(),
                      [&](int a, int b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    std::string hottest;
    for (int i = 0; i < shown && row[order[i]] > 0; ++i) absl::StrAppend(&hottest, " ", order[i], ":", row[order[i]]);
    const double mean = static_cast<double>(sum) / experts;
    std::cout << absl::StrFormat("  layer %3d: %10d total, max/mean %s, %d of %d idle;%s\n", l, sum,
                                 mean > 0 ? absl::StrFormat("%.2f", max / mean) : "-", idle, experts,
                                 hottest.empty() ? " -" : hottest);
  }
}

void PrintMatrix(const char* title, const google::protobuf::RepeatedField<int64_t>& m, int layers, int experts) {
  if (experts > kMaxMatrixColumns) {
    PrintLayerSummaries(title, m, layers, experts);
    return;
  }
  std::cout << title << " (rows: layers, columns: experts)\n" << absl::StrFormat("%6s", "layer");
  for (int e = 0; e < experts; ++e) std::cout << absl::StrFormat(" %10d", e);
  std::cout << absl::StrFormat(" %12s\n", "max/mean");
  for (int l = 0; l < layers; ++l) {
    std::cout << absl::StrFormat("%6d", l);
    int64_t sum = 0;
    int64_t max = 0;
    for (int e = 0; e < experts; ++e) {
      const int64_t v = m.Get(l * experts + e);
      sum += v;
      max = std::max(max, v);
      std::cout << absl::StrFormat(" %10d", v);
    }
    const double mean = static_cast<double>(sum) / experts;
    std::cout << (mean > 0 ? absl::StrFormat(" %12.2f\n", max / mean) : absl::StrFormat(" %12s\n", "-"));
  }
}

int RunStats(Session& s) {
  moed::v1::ExpertStats st;
  grpc::ClientContext ctx;
  SetTimeout(ctx, s.timeout);
  if (grpc::Status call = s.stub->GetExpertStats(&ctx, moed::v1::GetExpertStatsRequest(), &st); !call.ok()) {
    return CallFailed(call);
  }
  const int layers = st.num_layers();
  const int experts = st.num_experts();
  const int cells = layers * experts;
  if (st.routed_tokens_size() != cells || (st.dropped_tokens_size() != 0 && st.dropped_tokens_size() != cells)) {
    return CallFailed(grpc::Status(grpc::INTERNAL, absl::StrCat("GetExpertStats: matrix sizes ", st.routed_tokens_size(),
                                                                 "/", st.dropped_tokens_size(), " do not match ",
                                                                 layers, " layers x ", experts, " experts")));
  }
  if (s.json) {
    nlohmann::json j = {{"num_layers", layers}, {"num_experts", experts}, {"top_k", st.top_k()},
                        {"steps", st.steps()}, {"prefix_cached_tokens", st.prefix_cached_tokens()},
                        {"routed_tokens", std::vector<int64_t>(st.routed_tokens().begin(), st.routed_tokens().end())},
                        {"dropped_tokens", std::vector<int64_t>(st.dropped_tokens().begin(), st.dropped_tokens().end())},
                        {"resident", std::vector<bool>(st.resident().begin(), st.resident().end())},
                        {"window_steps", st.window_steps()}, {"balance", nlohmann::json::array()}};
    for (const moed::v1::LayerBalance& b : st.balance()) {
      j["balance"].push_back({{"layer", b.layer()}, {"window", b.window()}, {"gini", b.gini()},
                              {"entropy", b.entropy()}, {"max_over_mean", b.max_over_mean()}, {"cv", b.cv()},
                              {"assignments", b.assignments()}});
    }
    const moed::v1::ExpertCacheStats& c = st.cache();
    j["cache"] = {{"enabled", c.enabled()}};
    if (c.enabled()) {
      j["cache"].update({{"policy", c.policy()}, {"prefetch", c.prefetch()},
                         {"capacity_experts", c.capacity_experts()}, {"resident_experts", c.resident_experts()},
                         {"hits", std::vector<int64_t>(c.hits().begin(), c.hits().end())},
                         {"misses", std::vector<int64_t>(c.misses().begin(), c.misses().end())},
                         {"evictions", std::vector<int64_t>(c.evictions().begin(), c.evictions().end())},
                         {"prefetch_issued", c.prefetch_issued()}, {"prefetch_used", c.prefetch_used()},
                         {"prefetch_wasted", c.prefetch_wasted()}, {"transfer_bytes", c.transfer_bytes()},
                         {"load_seconds", c.load_seconds()}, {"stall_seconds", c.stall_seconds()}});
    }
    std::cout << Dump(j) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("%d layers x %d experts, top-%d, %d engine steps\n", layers, experts, st.top_k(),
                               st.steps());
  PrintMatrix("routed tokens", st.routed_tokens(), layers, experts);
  if (st.prefix_cached_tokens() > 0) {
    std::cout << absl::StrFormat("prefix cache: %d prompt tokens served from cached KV blocks (not routed)\n",
                                 st.prefix_cached_tokens());
  }
  int64_t dropped = 0;
  for (int64_t v : st.dropped_tokens()) dropped += v;
  if (dropped > 0) PrintMatrix("dropped tokens", st.dropped_tokens(), layers, experts);
  if (st.balance_size() > 0) {
    std::cout << absl::StrFormat("balance (last_1000_steps = the last %d steps with assignments)\n%6s %-16s %8s %8s %9s "
                                 "%8s %12s\n", st.window_steps(), "layer", "window", "gini", "entropy", "max/mean",
                                 "cv", "assignments");
    for (const moed::v1::LayerBalance& b : st.balance()) {
      std::cout << absl::StrFormat("%6d %-16s %8.4f %8.4f %9.3f %8.4f %12d\n", b.layer(), b.window(), b.gini(),
                                   b.entropy(), b.max_over_mean(), b.cv(), b.assignments());
    }
  }
  const moed::v1::ExpertCacheStats& c = st.cache();
  if (!c.enabled()) {
    std::cout << "expert cache: off (every expert resident)\n";
    return 0;
  }
  std::cout << absl::StrFormat("expert cache: %s%s, %d of %d slots used, %d bytes loaded, %.3f s stalled\n",
                               c.policy(), c.prefetch() ? " + prefetch" : "", c.resident_experts(),
                               c.capacity_experts(), c.transfer_bytes(), c.stall_seconds());
  for (int l = 0; l < c.hits_size() && l < c.misses_size(); ++l) {
    const int64_t lookups = c.hits(l) + c.misses(l);
    std::cout << absl::StrFormat("  layer %d: hit rate %.3f (%d hits, %d misses, %d evictions)\n", l,
                                 lookups > 0 ? static_cast<double>(c.hits(l)) / lookups : 0.0, c.hits(l), c.misses(l),
                                 l < c.evictions_size() ? c.evictions(l) : 0);
  }
  std::cout << absl::StrFormat("  prefetch: %d issued, %d used, %d wasted\n", c.prefetch_issued(), c.prefetch_used(),
                               c.prefetch_wasted());
  return 0;
}

int RunExperts(Session& s) {
  moed::v1::GetExpertProfileRequest req;
  req.set_top_n(absl::GetFlag(FLAGS_top_n));  // the server checks the range
  moed::v1::ExpertStats stats;
  moed::v1::ExpertProfile profile;
  grpc::ClientContext c1, c2;
  SetTimeout(c1, s.timeout);
  SetTimeout(c2, s.timeout);
  if (grpc::Status st = s.stub->GetExpertStats(&c1, moed::v1::GetExpertStatsRequest(), &stats); !st.ok()) {
    return CallFailed(st);
  }
  if (grpc::Status st = s.stub->GetExpertProfile(&c2, req, &profile); !st.ok()) return CallFailed(st);
  if (const std::string path = absl::GetFlag(FLAGS_html); !path.empty()) {
    std::ofstream out(path, std::ios::binary);
    out << ExpertsHtml(stats, profile, req.top_n());
    if (!out.good()) {
      std::cerr << "moectl: cannot write " << path << "\n";
      return kExitCallFailed;
    }
    std::cout << "wrote " << path << "\n";
    return 0;
  }
  if (s.json) {
    nlohmann::json experts = nlohmann::json::array();
    for (const moed::v1::ExpertTokens& x : profile.experts()) {
      nlohmann::json top = nlohmann::json::array();
      for (const moed::v1::TokenCount& t : x.top_tokens()) {
        top.push_back({{"token_id", t.token_id()}, {"count", t.count()}, {"error", t.error()}, {"text", t.text()}});
      }
      experts.push_back({{"layer", x.layer()}, {"expert", x.expert()}, {"tokens", x.tokens()}, {"top_tokens", top},
                         {"class_counts", std::vector<int64_t>(x.class_counts().begin(), x.class_counts().end())}});
    }
    std::cout << Dump({{"token_classes", std::vector<std::string>(profile.token_classes().begin(),
                                                                   profile.token_classes().end())},
                       {"tokens_profiled", profile.tokens_profiled()}, {"steps", profile.steps()},
                       {"experts", experts}, {"balance_points", profile.balance_history_size()}})
              << "\n";
    return 0;
  }
  std::cout << ExpertsText(stats, profile, req.top_n());
  return 0;
}

int RunPlanEp(Session& s) {
  const std::optional<int> gpus = absl::GetFlag(FLAGS_gpus);
  const std::optional<int> redundant = absl::GetFlag(FLAGS_redundant);
  const std::optional<int> hidden = absl::GetFlag(FLAGS_hidden_size);
  if (!gpus) return UsageError("plan-ep needs --gpus G");
  if (redundant && *redundant < 0) return UsageError("--redundant must be >= 0");
  PlanEpInput in;
  if (const std::string trace = absl::GetFlag(FLAGS_trace); !trace.empty()) {
    if (!hidden) return UsageError("--trace needs --hidden-size H (the model's hidden_size)");
    absl::StatusOr<PlanEpInput> parsed =
        PlanEpInputFromTrace(trace, absl::GetFlag(FLAGS_num_experts), absl::GetFlag(FLAGS_tokens_per_step));
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    in = *std::move(parsed);
  } else if (const std::string path = absl::GetFlag(FLAGS_loads); !path.empty()) {
    std::ifstream file(path, std::ios::binary);
    if (!file) return UsageError("--loads: cannot read " + path);
    const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    absl::StatusOr<PlanEpInput> parsed = PlanEpInputFromStatsJson(text, path);
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    if (!*hidden) return UsageError("--loads needs --hidden-size H (the model's hidden_size)");
    in = *std::move(parsed);
  } else {
    moed::v1::ModelInfo info;
    moed::v1::ExpertStats st;
    grpc::ClientContext c1, c2;
    SetTimeout(c1, s.timeout);
    SetTimeout(c2, s.timeout);
    if (grpc::Status call = s.stub->GetModelInfo(&c1, moed::v1::GetModelInfoRequest(), &info); !call.ok()) {
      return CallFailed(call);
    }
    if (grpc::Status call = s.stub->GetExpertStats(&c2, moed::v1::GetExpertStatsRequest(), &st); !call.ok()) {
      return CallFailed(call);
    }
    const bool window = st.window_steps() > 0 && st.window_routed_tokens_size() == st.routed_tokens_size();
    in.num_layers = st.num_layers();
    in.num_experts = st.num_experts();
    in.top_k = st.top_k();
    in.hidden_size = info.hidden_size();
    const auto& m = window ? st.window_routed_tokens() : st.routed_tokens();
    in.routed.assign(m.begin(), m.end());
    in.steps = window ? st.window_steps() : st.steps();
    in.source = absl::StrCat("GetExpertStats of ", info.model(), window ? " (last 1000 steps window)" : "");
  }
  if (hidden) in.hidden_size = *hidden;
  absl::StatusOr<std::string> report = PlanEpReport(in, *gpus, redundant.value_or(-1), s.json);
  if (!report.ok()) return UsageError(std::string(report.status().message()));
  std::cout << *report;
  return 0;
}

int RunTrace(Session& s) {
  if (s.args.size() != 2) return UsageError("trace takes one of start, stop, dump, status");
  const std::string& what = s.args[1];
  moed::v1::RoutingTraceRequest req;
  if (what == "start") req.set_action(moed::v1::RoutingTraceRequest::START);
  else if (what == "stop") req.set_action(moed::v1::RoutingTraceRequest::STOP);
  else if (what == "dump") req.set_action(moed::v1::RoutingTraceRequest::DUMP);
  else if (what == "status") req.set_action(moed::v1::RoutingTraceRequest::STATUS);
  else return UsageError("trace: unknown action '" + what + "' (start, stop, dump, status)");
  if (auto sample = absl::GetFlag(FLAGS_sample)) req.set_sample(*sample);  // the server checks the range
  moed::v1::RoutingTraceState st;
  grpc::ClientContext ctx;
  SetTimeout(ctx, s.timeout);
  if (grpc::Status call = s.stub->ControlRoutingTrace(&ctx, req, &st); !call.ok()) return CallFailed(call);
  nlohmann::json j = {{"active", st.active()}, {"path", st.path()}, {"sample", st.sample()},
                      {"records", st.records()}, {"dropped", st.dropped()}, {"bytes", st.bytes()},
                      {"rotations", st.rotations()}};
  if (!st.dumped_path().empty()) j["dumped_path"] = st.dumped_path();
  if (s.json) {
    std::cout << Dump(j) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("routing trace %s: %s, sample %g, %d tokens written (%d bytes, %d dropped, %d "
                               "rotations)\n", st.active() ? "on" : "off", st.path(), st.sample(), st.records(),
                               st.bytes(), st.dropped(), st.rotations());
  if (!st.dumped_path().empty()) std::cout << "dumped to " << st.dumped_path() << "\n";
  return 0;
}

int RunHealth(Session& s) {
  std::string serving;
  grpc::Status st = CheckHealth(*s.channel, absl::GetFlag(FLAGS_service), s.timeout, &serving);
  if (!st.ok()) return CallFailed(st);
  std::cout << serving << "\n";
  return serving == "SERVING" ? 0 : kExitCallFailed;
}

const cli::Program& MoectlProgram() {
  static const cli::Program* program =
      new cli::Program{"moectl", kSynopsis, {"client/grpc/moectl.cc", kConnectionFlagsFile}, "MOECTL_", true};
  return *program;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args;
  if (std::optional<int> exit = cli::HandleCommandLine(MoectlProgram(), argc, argv, cli::ProcessEnv(), &args)) {
    return *exit;
  }
  if (args.empty()) return UsageError("missing COMMAND");
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout < absl::ZeroDuration()) return UsageError("--timeout must be >= 0 (0 = no deadline)");
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = ChannelFromFlags();
  if (!channel.ok()) return UsageError(std::string(channel.status().message()));
  Session s{args, nullptr, *channel, timeout, absl::GetFlag(FLAGS_json)};
  s.stub = moed::v1::Moed::NewStub(s.channel);

  const std::string& cmd = args[0];
  const bool takes_no_args =
      cmd == "info" || cmd == "stats" || cmd == "health" || cmd == "experts" || cmd == "plan-ep";
  if (takes_no_args && args.size() > 1) return UsageError(cmd + " takes no arguments");
  if (cmd == "generate") return RunGenerate(s);
  if (cmd == "tokenize") return RunTokenize(s);
  if (cmd == "info") return RunInfo(s);
  if (cmd == "stats") return RunStats(s);
  if (cmd == "health") return RunHealth(s);
  if (cmd == "experts") return RunExperts(s);
  if (cmd == "plan-ep") return RunPlanEp(s);
  if (cmd == "trace") return RunTrace(s);
  return UsageError("unknown command '" + cmd + "'");
}

}  // namespace
}  // namespace moed::client

int main(int argc, char** argv) { return moed::client::Main(argc, argv); }
