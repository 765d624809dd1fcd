// moe-bench: load generator for moed. Drives Generate streams at a fixed concurrency or a Poisson
// request rate, always stops by itself (request count and/or duration), prints one JSON report.
// Exit codes: 0 the run finished (failed requests are reported, not fatal), 1 setup call failed,
// 2 usage error.
#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/grpc/bench_call.h"
#include "client/grpc/connection_flags.h"
#include "client/grpc/grpc_util.h"
#include "client/grpc/latency_stats.h"
#include "common/cli/command_line.h"
#include "nlohmann/json.hpp"

namespace moed::client {
namespace {

constexpr char kSynopsis[] = R"(usage: moe-bench [--addr HOST:PORT] (--concurrency N | --rate R [--concurrency MAX])
    [--num-requests N] [--duration 60s]
    (--prompt-len L --output-len M [--seed S] | --prompts-file F | --prompt-ids-file F) [--output-len M]
    [--shared-prefix-len N --num-prefixes P] [--ignore-eos] [--temperature T] [--timeout 120s]
Sends Generate streams until N requests were sent or the duration passed (at least one bound; 64
requests when neither is given), waits for those in flight, and prints one JSON report.
--rate: requests per second with exponential gaps; --concurrency alone: closed loop of N streams.
--prompt-len: synthetic prompts of L random token ids (seeded); --prompts-file: one prompt per line;
--prompt-ids-file: one prompt per line as token ids separated by spaces (the same tokens for another engine's client).
--shared-prefix-len N (< L) with --prompt-len: the first N ids of request i are prefix i mod P of P seeded random
prefixes (--num-prefixes, default 1), the other L - N ids its own: N/L of each prompt is shared.
Exit codes: 0 the run finished (failed requests are reported, not fatal), 1 setup call failed, 2 usage error.
)";

struct Options {
  std::string addr;
  int concurrency = 0;          // 0: unlimited (rate mode only)
  double rate = 0.0;            // requests/s; 0: closed loop
  int64_t num_requests = -1;    // -1: bounded by duration only
  absl::Duration duration = absl::InfiniteDuration();
  int prompt_len = 32;
  int output_len = 32;
  std::vector<std::string> prompts;  // from --prompts-file; empty: synthetic ids
  std::vector<std::vector<int>> prompt_ids;  // from --prompt-ids-file; empty: synthetic ids
  int shared_prefix_len = 0;         // leading ids of each synthetic prompt taken from a shared prefix
  int num_prefixes = 1;
  std::vector<std::vector<int>> prefixes;  // (num_prefixes, shared_prefix_len), made once the vocabulary is known
  bool ignore_eos = false;
  float temperature = 0.0f;
  uint64_t seed = 0;
  absl::Duration timeout = absl::Seconds(120);
};
const Options kDefaults;  // the one place the flags' defaults live

}  // namespace
}  // namespace moed::client

using moed::client::kDefaults;
ABSL_FLAG(std::optional<int>, concurrency, std::nullopt,
          "streams in flight: a closed loop of N (alone), or the cap of --rate (default: no cap)");
ABSL_FLAG(std::optional<double>, rate, std::nullopt, "requests per second with exponential gaps (open loop)");
ABSL_FLAG(std::optional<int64_t>, num_requests, std::nullopt,
          "requests to send (default: 64 unless --duration bounds the run)");
ABSL_FLAG(std::optional<absl::Duration>, duration, std::nullopt, "stop sending after this long");
ABSL_FLAG(std::optional<int>, prompt_len, std::nullopt, "synthetic prompts of this many random token ids (default 32)");
ABSL_FLAG(int, output_len, kDefaults.output_len, "max_tokens of each request");
ABSL_FLAG(std::string, prompts_file, "", "one prompt per line instead of synthetic ids");
ABSL_FLAG(std::string, prompt_ids_file, "", "one prompt per line as space-separated token ids instead of synthetic ids");
ABSL_FLAG(std::optional<int>, shared_prefix_len, std::nullopt,
          "with --prompt-len: the first N ids of each prompt come from one of --num-prefixes shared prefixes");
ABSL_FLAG(std::optional<int>, num_prefixes, std::nullopt, "shared prefixes (with --shared-prefix-len; default 1)");
ABSL_FLAG(bool, ignore_eos, kDefaults.ignore_eos, "generate past end-of-sequence (every request gives --output-len)");
ABSL_FLAG(float, temperature, kDefaults.temperature, "sampling temperature; 0 = greedy");
ABSL_FLAG(uint64_t, seed, kDefaults.seed, "seed of the synthetic prompts and of request i's sampling (seed + i)");
ABSL_FLAG(absl::Duration, timeout, kDefaults.timeout, "deadline of each request");

namespace moed::client {
namespace {

absl::Status ReadPromptsFile(const std::string& path, std::vector<std::string>& prompts) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--prompts-file: cannot open '", path, "'"));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat("--prompts-file: no prompts in '", path, "'"));
  return absl::OkStatus();
}

absl::Status ReadPromptIdsFile(const std::string& path, std::vector<std::vector<int>>& prompts) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--prompt-ids-file: cannot open '", path, "'"));
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    std::vector<int> ids;
    for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
      int id = 0;
      if (!absl::SimpleAtoi(word, &id) || id < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--prompt-ids-file: line ", line_no, " of '", path, "': '", word, "' is not a token id"));
      }
      ids.push_back(id);
    }
    if (!ids.empty()) prompts.push_back(std::move(ids));
  }
  if (prompts.empty()) return absl::InvalidArgumentError(absl::StrCat("--prompt-ids-file: no prompts in '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<Options> OptionsFromFlags() {
  Options o;
  const std::optional<int> conc = absl::GetFlag(FLAGS_concurrency);
  const std::optional<int64_t> num = absl::GetFlag(FLAGS_num_requests);
  const std::optional<int> plen = absl::GetFlag(FLAGS_prompt_len);
  const std::optional<double> rate = absl::GetFlag(FLAGS_rate);
  const std::optional<absl::Duration> dur = absl::GetFlag(FLAGS_duration);
  const std::optional<int> shared = absl::GetFlag(FLAGS_shared_prefix_len);
  const std::optional<int> nprefix = absl::GetFlag(FLAGS_num_prefixes);
  const std::string prompts_file = absl::GetFlag(FLAGS_prompts_file);
  const std::string ids_file = absl::GetFlag(FLAGS_prompt_ids_file);
  o.addr = absl::GetFlag(FLAGS_addr);
  o.output_len = absl::GetFlag(FLAGS_output_len);
  o.timeout = absl::GetFlag(FLAGS_timeout);
  if (!conc && !rate) return absl::InvalidArgumentError("give --concurrency N or --rate R");
  if (conc && *conc < 1) return absl::InvalidArgumentError("--concurrency must be >= 1");
  if (rate && !(*rate > 0)) return absl::InvalidArgumentError("--rate must be > 0 requests/s");
  if (num && *num < 1) return absl::InvalidArgumentError("--num-requests must be >= 1");
  if (dur && *dur <= absl::ZeroDuration()) return absl::InvalidArgumentError("--duration must be > 0");
  if (plen && *plen < 1) return absl::InvalidArgumentError("--prompt-len must be >= 1");
  if (o.output_len < 1) return absl::InvalidArgumentError("--output-len must be >= 1");
  if (o.timeout < absl::ZeroDuration()) return absl::InvalidArgumentError("--timeout must be >= 0 (0 = none)");
  if (plen && !prompts_file.empty()) {
    return absl::InvalidArgumentError("--prompt-len and --prompts-file exclude each other");
  }
  if (!ids_file.empty() && (plen || !prompts_file.empty() || shared)) {
    return absl::InvalidArgumentError("--prompt-ids-file excludes --prompt-len, --prompts-file and --shared-prefix-len");
  }
  if (nprefix && !shared) return absl::InvalidArgumentError("--num-prefixes needs --shared-prefix-len");
  if (shared && !prompts_file.empty()) {
    return absl::InvalidArgumentError("--shared-prefix-len applies to synthetic prompts (--prompt-len), not --prompts-file");
  }
  o.prompt_len = plen.value_or(o.prompt_len);
  if (shared && (*shared < 0 || *shared >= o.prompt_len)) {
    return absl::InvalidArgumentError(absl::StrCat("--shared-prefix-len must be in [0, --prompt-len) = [0, ",
                                                   o.prompt_len, "), got ", *shared));
  }
  if (nprefix && *nprefix < 1) return absl::InvalidArgumentError("--num-prefixes must be >= 1");
  o.shared_prefix_len = shared.value_or(o.shared_prefix_len);
  o.num_prefixes = nprefix.value_or(o.num_prefixes);
  o.concurrency = conc.value_or(o.concurrency);
  o.rate = rate.value_or(o.rate);
  o.num_requests = num.value_or(o.num_requests);
  if (dur) o.duration = *dur;
  if (o.num_requests < 0 && !dur) o.num_requests = 64;
  o.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  o.temperature = absl::GetFlag(FLAGS_temperature);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (!prompts_file.empty()) {
    if (absl::Status st = ReadPromptsFile(prompts_file, o.prompts); !st.ok()) return st;
  }
  if (!ids_file.empty()) {
    if (absl::Status st = ReadPromptIdsFile(ids_file, o.prompt_ids); !st.ok()) return st;
  }
  return o;
}

// Collects results from gRPC threads; the main thread waits on it.
class Tally {
 public:
  void Started() {
    std::lock_guard<std::mutex> lock(mu_);
    ++in_flight_;
  }
  void Done(CallResult r) {
    std::lock_guard<std::mutex> lock(mu_);
    results_.push_back(std::move(r));
    --in_flight_;
    cv_.notify_all();
  }
  // Waits until fewer than `limit` calls are in flight or `until` passes; true when below the limit.
  bool WaitBelow(int limit, Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, until, [&] { return in_flight_ < limit; });
  }
  std::vector<CallResult> TakeAll() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(results_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::vector<CallResult> results_;
};

moed::v1::GenerateRequest MakeRequest(const Options& o, int64_t index, int vocab, std::mt19937_64& rng) {
  moed::v1::GenerateRequest req;
  req.set_request_id(absl::StrCat("bench-", index));
  if (!o.prompts.empty()) {
    req.set_prompt(o.prompts[index % o.prompts.size()]);
  } else if (!o.prompt_ids.empty()) {
    for (int t : o.prompt_ids[index % o.prompt_ids.size()]) req.add_prompt_ids(t);
  } else {
    // Ids 0..2 are the usual unk/BOS/EOS specials; stay clear of them.
    std::uniform_int_distribution<int> id(std::min(3, vocab - 1), vocab - 1);
    int i = 0;
    if (!o.prefixes.empty()) {
      for (int t : o.prefixes[index % o.prefixes.size()]) req.add_prompt_ids(t);
      i = o.shared_prefix_len;
    }
    for (; i < o.prompt_len; ++i) req.add_prompt_ids(id(rng));
  }
  moed::v1::SamplingParams& s = *req.mutable_sampling();
  s.set_max_tokens(o.output_len);
  s.set_temperature(o.temperature);
  s.set_ignore_eos(o.ignore_eos);
  s.set_seed(o.seed + static_cast<uint64_t>(index));
  return req;
}

nlohmann::json Report(const Options& o, const std::vector<CallResult>& results, double wall_s) {
  int64_t ok = 0;
  int64_t in_tokens = 0;
  int64_t cached_tokens = 0;
  int64_t out_tokens = 0;
  std::map<std::string, int64_t> errors;
  std::map<std::string, std::string> first_error;
  std::vector<double> ttft, itl, e2e, tpot;
  for (const CallResult& r : results) {
    out_tokens += r.output_tokens;
    if (r.code != grpc::OK) {
      const std::string name = StatusCodeName(r.code);
      ++errors[name];
      first_error.emplace(name, r.error);
      continue;
    }
    ++ok;
    in_tokens += r.prompt_tokens;
    cached_tokens += r.cached_tokens;
    e2e.push_back(r.e2e_s * 1e3);
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s * 1e3);
    for (double g : r.itl_s) itl.push_back(g * 1e3);
    if (r.output_tokens > 1) tpot.push_back((r.e2e_s - r.ttft_s) * 1e3 / (r.output_tokens - 1));
  }
  const double d = wall_s > 0 ? wall_s : 1e-9;
  return {
      {"config", {{"addr", o.addr}, {"concurrency", o.concurrency}, {"rate", o.rate},
                  {"num_requests", o.num_requests}, {"prompt_len", o.prompts.empty() && o.prompt_ids.empty() ? o.prompt_len : -1},
                  {"output_len", o.output_len}, {"ignore_eos", o.ignore_eos}, {"temperature", o.temperature},
                  {"shared_prefix_len", o.shared_prefix_len}, {"num_prefixes", o.prefixes.size()}}},
      {"requests", {{"ok", ok}, {"failed", static_cast<int64_t>(results.size()) - ok}}},
      {"errors", errors},
      {"error_examples", first_error},
      {"duration_s", wall_s},
      {"request_throughput", ok / d},
      {"input_tokens", in_tokens},
      {"cached_tokens", cached_tokens},  // of input_tokens, served from the server's prefix cache
      {"output_tokens", out_tokens},
      {"output_tokens_per_s", out_tokens / d},
      {"total_tokens_per_s", (in_tokens + out_tokens) / d},
      {"ttft_ms", Summarize(ttft)},
      {"itl_ms", Summarize(itl)},
      {"tpot_ms", Summarize(tpot)},
      {"e2e_ms", Summarize(e2e)},
  };
}

int Main(int argc, char** argv) {
  const cli::Program program{"moe-bench", kSynopsis, {"client/grpc/moe_bench.cc", kConnectionFlagsFile}, "", false};
  if (std::optional<int> exit = cli::HandleCommandLine(program, argc, argv, cli::NoEnv())) return *exit;
  absl::StatusOr<Options> opts = OptionsFromFlags();
  if (!opts.ok()) {
    std::cerr << "moe-bench: " << opts.status().message() << "\n";
    return cli::kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> made = ChannelFromFlags();
  if (!made.ok()) {
    std::cerr << "moe-bench: " << made.status().message() << "\n";
    return cli::kExitUsage;
  }
  std::shared_ptr<grpc::Channel> channel = *made;
  std::unique_ptr<moed::v1::Moed::Stub> stub = moed::v1::Moed::NewStub(channel);

  moed::v1::ModelInfo info;
  grpc::ClientContext info_ctx;
  SetTimeout(info_ctx, absl::Seconds(10));
  if (grpc::Status st = stub->GetModelInfo(&info_ctx, moed::v1::GetModelInfoRequest(), &info); !st.ok()) {
    std::cerr << "moe-bench: GetModelInfo: " << StatusCodeName(st.error_code()) << ": " << st.error_message() << "\n";
    return 1;
  }

  Options o = *opts;
  std::mt19937_64 rng(o.seed);
  if (o.shared_prefix_len > 0) {  // the shared prefixes come first from the seeded stream
    std::uniform_int_distribution<int> id(std::min(3, info.vocab_size() - 1), info.vocab_size() - 1);
    o.prefixes.assign(o.num_prefixes, {});
    for (auto& p : o.prefixes) {
      for (int i = 0; i < o.shared_prefix_len; ++i) p.push_back(id(rng));
    }
  }
  Tally tally;
  std::exponential_distribution<double> gap(o.rate > 0 ? o.rate : 1.0);
  const Clock::duration timeout = absl::ToChronoNanoseconds(o.timeout);
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = o.duration == absl::InfiniteDuration()
                                    ? Clock::time_point::max()
                                    : start + absl::ToChronoNanoseconds(o.duration);
  const int limit = o.concurrency > 0 ? o.concurrency : std::numeric_limits<int>::max();
  Clock::time_point next_arrival = start;
  for (int64_t i = 0; o.num_requests < 0 || i < o.num_requests; ++i) {
    if (o.rate > 0) {
      if (i > 0) next_arrival += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(gap(rng)));
      if (next_arrival >= end) break;
      std::this_thread::sleep_until(next_arrival);
    }
    if (!tally.WaitBelow(limit, end)) break;
    if (Clock::now() >= end) break;
    tally.Started();
    new BenchCall(*stub, MakeRequest(o, i, info.vocab_size(), rng), timeout,
                  [&tally](CallResult r) { tally.Done(std::move(r)); });
  }
  tally.WaitBelow(1, Clock::time_point::max());
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << Report(o, tally.TakeAll(), wall_s).dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace moed::client

int main(int argc, char** argv) { return moed::client::Main(argc, argv); }
