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

#include "client/grpc/cli_args.h"
#include "client/grpc/experts_report.h"
#include "client/grpc/plan_ep.h"
#include "client/grpc/grpc_util.h"
#include "moed/v1/moed.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace moed::client {
namespace {

constexpr char kUsage[] = R"(usage: moectl [--addr HOST:PORT] [--timeout 30s] COMMAND [ARGS]
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
--addr defaults to $MOECTL_ADDR or 127.0.0.1:50051; --timeout 0 means no deadline.
Secured servers: --tls-ca PEM (TLS), --tls-cert PEM --tls-key PEM (mTLS), --token T (default $MOED_TOKEN).
--version prints the version.
)";

const std::vector<FlagSpec> kFlags = [] {
  std::vector<FlagSpec> flags = {
      {"addr"}, {"timeout"}, {"max-tokens"}, {"temperature"}, {"top-p"}, {"top-k"}, {"seed"},
      {"stop", true, true}, {"logprobs"}, {"ignore-eos", false}, {"include-routing", false},
      {"priority"}, {"request-id"}, {"prompt-ids"}, {"json", false}, {"service"}, {"help", false},
      {"top-n"}, {"html"}, {"gpus"}, {"redundant"}, {"loads"}, {"hidden-size"}, {"sample"}, {"trace"},
      {"tokens-per-step"}, {"num-experts"},
  };
  flags.insert(flags.end(), SecurityFlags().begin(), SecurityFlags().end());
  return flags;
}();

constexpr int kExitCallFailed = 1;
constexpr int kExitUsage = 2;

int UsageError(const std::string& message) {
  std::cerr << "moectl: " << message << "\n" << kUsage;
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
  const CliArgs& args;
  std::unique_ptr<moed::v1::Moed::Stub> stub;
  std::shared_ptr<grpc::Channel> channel;
  absl::Duration timeout;
  bool json = false;
};

// Fills `req` from the flags; a usage error message on bad values.
absl::Status BuildGenerateRequest(const CliArgs& args, moed::v1::GenerateRequest& req) {
  const bool has_text = args.positional().size() >= 2;
  if (args.positional().size() > 2) return absl::InvalidArgumentError("generate takes one prompt argument");
  if (has_text == args.Has("prompt-ids")) {
    return absl::InvalidArgumentError("generate needs exactly one of \"PROMPT\" or --prompt-ids");
  }
  if (has_text) {
    req.set_prompt(args.positional()[1]);
  } else {
    absl::StatusOr<std::vector<int32_t>> ids = ParseIdList(args.GetString("prompt-ids", ""), "--prompt-ids");
    if (!ids.ok()) return ids.status();
    for (int32_t id : *ids) req.add_prompt_ids(id);
  }
  req.set_request_id(args.GetString("request-id", ""));
  req.set_include_routing(args.Has("include-routing"));
  moed::v1::SamplingParams& s = *req.mutable_sampling();
  s.set_ignore_eos(args.Has("ignore-eos"));
  for (const std::string& stop : args.All("stop")) s.add_stop(stop);

  absl::StatusOr<std::optional<int64_t>> max_tokens = args.GetInt("max-tokens");
  absl::StatusOr<std::optional<int64_t>> top_k = args.GetInt("top-k");
  absl::StatusOr<std::optional<int64_t>> logprobs = args.GetInt("logprobs");
  absl::StatusOr<std::optional<int64_t>> priority = args.GetInt("priority");
  absl::StatusOr<std::optional<uint64_t>> seed = args.GetUint("seed");
  absl::StatusOr<std::optional<double>> temperature = args.GetDouble("temperature");
  absl::StatusOr<std::optional<double>> top_p = args.GetDouble("top-p");
  for (const absl::Status& st : {max_tokens.status(), top_k.status(), logprobs.status(), priority.status(),
                                 seed.status(), temperature.status(), top_p.status()}) {
    if (!st.ok()) return st;
  }
  // Range checks are the server's job: the values travel as given so that its errors are visible.
  if (*max_tokens) s.set_max_tokens(static_cast<int32_t>(**max_tokens));
  if (*top_k) s.set_top_k(static_cast<int32_t>(**top_k));
  if (*logprobs) s.set_logprobs(static_cast<int32_t>(**logprobs));
  if (*priority) req.set_priority(static_cast<int32_t>(**priority));
  if (*seed) s.set_seed(**seed);
  if (*temperature) s.set_temperature(static_cast<float>(**temperature));
  if (*top_p) s.set_top_p(static_cast<float>(**top_p));
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
  if (s.args.positional().size() != 2) return UsageError("tokenize takes exactly one \"TEXT\" argument");
  moed::v1::TokenizeRequest req;
  req.set_text(s.args.positional()[1]);
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
  absl::StatusOr<std::optional<int64_t>> top_n = s.args.GetInt("top-n");
  if (!top_n.ok()) return UsageError(std::string(top_n.status().message()));
  moed::v1::GetExpertProfileRequest req;
  req.set_top_n(static_cast<int32_t>(top_n->value_or(5)));  // the server checks the range
  moed::v1::ExpertStats stats;
  moed::v1::ExpertProfile profile;
  grpc::ClientContext c1, c2;
  SetTimeout(c1, s.timeout);
  SetTimeout(c2, s.timeout);
  if (grpc::Status st = s.stub->GetExpertStats(&c1, moed::v1::GetExpertStatsRequest(), &stats); !st.ok()) {
    return CallFailed(st);
  }
  if (grpc::Status st = s.stub->GetExpertProfile(&c2, req, &profile); !st.ok()) return CallFailed(st);
  if (s.args.Has("html")) {
    const std::string path = s.args.GetString("html", "");
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
  absl::StatusOr<std::optional<int64_t>> gpus = s.args.GetInt("gpus");
  absl::StatusOr<std::optional<int64_t>> redundant = s.args.GetInt("redundant");
  absl::StatusOr<std::optional<int64_t>> hidden = s.args.GetInt("hidden-size");
  for (const absl::Status& st : {gpus.status(), redundant.status(), hidden.status()}) {
    if (!st.ok()) return UsageError(std::string(st.message()));
  }
  if (!*gpus) return UsageError("plan-ep needs --gpus G");
  if (*redundant && **redundant < 0) return UsageError("--redundant must be >= 0");
  PlanEpInput in;
  if (s.args.Has("trace")) {
    absl::StatusOr<std::optional<int64_t>> tps = s.args.GetInt("tokens-per-step");
    absl::StatusOr<std::optional<int64_t>> experts = s.args.GetInt("num-experts");
    if (!tps.ok()) return UsageError(std::string(tps.status().message()));
    if (!experts.ok()) return UsageError(std::string(experts.status().message()));
    if (!*hidden) return UsageError("--trace needs --hidden-size H (the model's hidden_size)");
    absl::StatusOr<PlanEpInput> parsed = PlanEpInputFromTrace(
        s.args.GetString("trace", ""), static_cast<int>(experts->value_or(0)), static_cast<int>(tps->value_or(256)));
    if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
    in = *std::move(parsed);
  } else if (s.args.Has("loads")) {
    const std::string path = s.args.GetString("loads", "");
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
  if (*hidden) in.hidden_size = static_cast<int>(**hidden);
  absl::StatusOr<std::string> report =
      PlanEpReport(in, static_cast<int>(**gpus), *redundant ? static_cast<int>(**redundant) : -1, s.json);
  if (!report.ok()) return UsageError(std::string(report.status().message()));
  std::cout << *report;
  return 0;
}

int RunTrace(Session& s) {
  if (s.args.positional().size() != 2) return UsageError("trace takes one of start, stop, dump, status");
  const std::string& what = s.args.positional()[1];
  moed::v1::RoutingTraceRequest req;
  if (what == "start") req.set_action(moed::v1::RoutingTraceRequest::START);
  else if (what == "stop") req.set_action(moed::v1::RoutingTraceRequest::STOP);
  else if (what == "dump") req.set_action(moed::v1::RoutingTraceRequest::DUMP);
  else if (what == "status") req.set_action(moed::v1::RoutingTraceRequest::STATUS);
  else return UsageError("trace: unknown action '" + what + "' (start, stop, dump, status)");
  absl::StatusOr<std::optional<double>> sample = s.args.GetDouble("sample");
  if (!sample.ok()) return UsageError(std::string(sample.status().message()));
  if (*sample) req.set_sample(**sample);  // the server checks the range
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
  grpc::Status st = CheckHealth(*s.channel, s.args.GetString("service", ""), s.timeout, &serving);
  if (!st.ok()) return CallFailed(st);
  std::cout << serving << "\n";
  return serving == "SERVING" ? 0 : kExitCallFailed;
}

int Main(int argc, char** argv) {
  absl::StatusOr<CliArgs> args = CliArgs::Parse(argc, argv, kFlags);
  if (!args.ok()) return UsageError(std::string(args.status().message()));
  if (args->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  if (args->Has("version")) {
    std::cout << VersionLine("moectl") << "\n";
    return 0;
  }
  if (args->positional().empty()) return UsageError("missing COMMAND");
  absl::StatusOr<std::optional<absl::Duration>> timeout = args->GetDuration("timeout");
  if (!timeout.ok()) return UsageError(std::string(timeout.status().message()));

  const char* env_addr = std::getenv("MOECTL_ADDR");
  const std::string addr = args->GetString("addr", env_addr != nullptr ? env_addr : "127.0.0.1:50051");
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(addr, SecurityFromArgs(*args));
  if (!channel.ok()) return UsageError(std::string(channel.status().message()));
  Session s{*args, nullptr, *channel, timeout->value_or(absl::Seconds(30)), args->Has("json")};
  s.stub = moed::v1::Moed::NewStub(s.channel);

  const std::string& cmd = args->positional()[0];
  const bool takes_no_args =
      cmd == "info" || cmd == "stats" || cmd == "health" || cmd == "experts" || cmd == "plan-ep";
  if (takes_no_args && args->positional().size() > 1) return UsageError(cmd + " takes no arguments");
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
