// Flags and MOED_* environment: defaults, env fallback, command line precedence, errors naming the flag.
#include "server/flags.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/flags/reflection.h"

namespace moed::server {
namespace {

using Env = std::map<std::string, std::string>;

EnvLookup FakeEnv(Env env) {
  return [env = std::move(env)](absl::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<ServerConfig> Parse(std::vector<std::string> args, Env env = {}) {
  absl::FlagSaver restore;  // each parse starts from the compiled-in defaults
  std::vector<char*> argv;
  static std::string prog = "moed";
  argv.push_back(prog.data());
  for (std::string& a : args) argv.push_back(a.data());
  return ParseServerFlags(static_cast<int>(argv.size()), argv.data(), FakeEnv(std::move(env)));
}

TEST(Flags, EnvVarNames) {
  EXPECT_EQ(EnvVarForFlag("metrics-port"), "MOED_METRICS_PORT");
  EXPECT_EQ(EnvVarForFlag("max_running_seqs"), "MOED_MAX_RUNNING_SEQS");
}

TEST(Flags, Defaults) {
  absl::StatusOr<ServerConfig> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model, "");  // the built-in model, found next to the binary by main
  EXPECT_EQ(c->host, "127.0.0.1");  // not every interface unless asked
  EXPECT_EQ(c->port, 50051);
  EXPECT_EQ(c->metrics_port, 9400);
  EXPECT_EQ(c->backend, "auto");
  EXPECT_EQ(c->cpu_kernels, "fast");
  EXPECT_EQ(c->max_running_seqs, 64);
  EXPECT_EQ(c->max_batch_tokens, 512);
  EXPECT_EQ(c->max_queue, 256);
  EXPECT_EQ(c->kv_block_size, 16);
  EXPECT_TRUE(c->enable_prefix_caching);
  EXPECT_EQ(c->metrics_per_expert, PerExpertMetrics::kAuto);
  EXPECT_EQ(c->shutdown_timeout, absl::Seconds(30));
  EXPECT_EQ(c->default_max_tokens, 16);
  EXPECT_EQ(c->max_stop_strings, 8);
  EXPECT_EQ(c->max_stop_length, 64);
  EXPECT_EQ(c->max_logprobs, 20);
  EXPECT_EQ(c->max_prompt_bytes, 0);  // derived from the context
  EXPECT_EQ(c->max_receive_message_bytes, 4 << 20);
  EXPECT_EQ(c->stream_stall_timeout, absl::Seconds(30));
  EXPECT_FALSE(c->enable_reflection);
}

TEST(Flags, BooleanFlagsNeverTakeTheNextArgument) {
  absl::StatusOr<ServerConfig> c = Parse({"--expert-cache-prefetch", "--port", "1", "--enable-reflection"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->expert_cache_prefetch);
  EXPECT_TRUE(c->enable_reflection);
  EXPECT_EQ(c->port, 1);
  c = Parse({"--expert-cache-prefetch=false"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->expert_cache_prefetch);
}

TEST(Flags, DashesUnderscoresAndSeparateValues) {
  absl::StatusOr<ServerConfig> c = Parse({"--metrics-port=0", "--max_queue", "7", "--shutdown-timeout=2s",
                                          "--metrics-per-expert", "off", "--moe-capacity-factor=1.25"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_port, 0);
  EXPECT_EQ(c->max_queue, 7);
  EXPECT_EQ(c->shutdown_timeout, absl::Seconds(2));
  EXPECT_EQ(c->metrics_per_expert, PerExpertMetrics::kOff);
  EXPECT_FLOAT_EQ(c->moe_capacity_factor, 1.25f);
  EXPECT_FALSE(Parse({"--enable-prefix-caching=false"})->enable_prefix_caching);
  EXPECT_FALSE(Parse({}, {{"MOED_ENABLE_PREFIX_CACHING", "false"}})->enable_prefix_caching);
}

// The CUDA path selectors: the new paths by default, the reference paths by name, anything else refused by name.
TEST(Flags, CudaPathFlags) {
  absl::StatusOr<ServerConfig> c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cuda_moe, "grouped");
  EXPECT_EQ(c->cuda_attention, "flash");
  EXPECT_EQ(c->cuda_sampling, "radix");
  EXPECT_TRUE(c->cuda_graphs);
  c = Parse({"--cuda-moe=per-expert", "--cuda-attention", "simple", "--cuda-sampling=bisect", "--cuda-graphs=false"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cuda_moe, "per-expert");
  EXPECT_EQ(c->cuda_attention, "simple");
  EXPECT_EQ(c->cuda_sampling, "bisect");
  EXPECT_FALSE(c->cuda_graphs);
  EXPECT_FALSE(Parse({}, {{"MOED_CUDA_GRAPHS", "false"}})->cuda_graphs);
  for (const char* bad : {"--cuda-moe=cutlass", "--cuda-attention=paged", "--cuda-sampling=sort"}) {
    c = Parse({bad});
    ASSERT_FALSE(c.ok()) << bad;
    const std::string flag = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(std::string(c.status().message()).find(flag), std::string::npos) << c.status();
  }
}

TEST(Flags, EnvironmentIsTheFallbackAndTheCommandLineWins) {
  absl::StatusOr<ServerConfig> c =
      Parse({"--port=123"}, {{"MOED_METRICS_PORT", "9500"}, {"MOED_PORT", "999"}, {"MOED_BACKEND", "cpu"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->metrics_port, 9500);
  EXPECT_EQ(c->port, 123);
  EXPECT_EQ(c->backend, "cpu");
  // The saver restored the defaults: a parse without env sees them again.
  EXPECT_EQ(Parse({})->metrics_port, 9400);
}

TEST(Flags, ErrorsNameTheFlagOrVariable) {
  auto message = [](const absl::StatusOr<ServerConfig>& c) { return std::string(c.status().message()); };
  absl::StatusOr<ServerConfig> c = Parse({"--port=abc"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(message(c).find("--port"), std::string::npos) << message(c);

  c = Parse({}, {{"MOED_MAX_QUEUE", "lots"}});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("MOED_MAX_QUEUE"), std::string::npos) << message(c);

  c = Parse({"--no-such-flag=1"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("unknown flag --no-such-flag"), std::string::npos) << message(c);

  c = Parse({"--port=70000"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--port must be in [0, 65535]"), std::string::npos) << message(c);

  c = Parse({"--backend=tpu"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--backend"), std::string::npos) << message(c);

  c = Parse({"--cpu-kernels=turbo"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--cpu-kernels must be fast, fast-fp32 or reference, got 'turbo'"), std::string::npos) << message(c);

  c = Parse({"--metrics-per-expert=sometimes"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--metrics-per-expert"), std::string::npos) << message(c);

  c = Parse({"--max-running-seqs=0"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--max-running-seqs must be >= 1"), std::string::npos) << message(c);

  c = Parse({"--moe-capacity-factor=-1"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("--moe-capacity-factor"), std::string::npos) << message(c);

  c = Parse({"positional"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("unexpected argument 'positional'"), std::string::npos) << message(c);

  c = Parse({"--port"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(message(c).find("needs a value"), std::string::npos) << message(c);
}

TEST(Flags, UsageListsEveryFlagWithItsVariable) {
  const std::string usage = UsageText();
  EXPECT_NE(usage.find("--metrics-port (MOED_METRICS_PORT, default 9400)"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--max-receive-message-bytes"), std::string::npos);
}

}  // namespace
}  // namespace moed::server
