// moed::cli: splitting, booleans that never take the next argument, Repeated and optional flags, the environment
// fallback, --help / --version precedence, and errors naming the flag.
#include "common/cli/command_line.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/time/time.h"

ABSL_FLAG(int, cli_test_port, 7, "a port");
ABSL_FLAG(bool, cli_test_verbose, false, "a switch");
ABSL_FLAG(std::optional<double>, cli_test_ratio, std::nullopt, "unset unless given");
ABSL_FLAG(moed::cli::Repeated, cli_test_stop, {}, "repeatable");
ABSL_FLAG(absl::Duration, cli_test_wait, absl::Seconds(3), "a duration");

namespace moed::cli {
namespace {

using Env = std::map<std::string, std::string>;

const Program kProgram{"tool", "usage: tool [flags] ARGS\n", {"tests/unit/cli/command_line_test.cc"}, "TOOL_", true};

absl::StatusOr<CommandLine> Parse(std::vector<std::string> args, Env env = {}, const Program& program = kProgram) {
  std::vector<char*> argv;
  static std::string prog = "tool";
  argv.push_back(prog.data());
  for (std::string& a : args) argv.push_back(a.data());
  EnvLookup lookup = [env = std::move(env)](absl::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  return ParseCommandLine(program, static_cast<int>(argv.size()), argv.data(), lookup);
}

std::string Error(const absl::StatusOr<CommandLine>& c) {
  EXPECT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(CommandLine, FormsOfAValueAndPositionals) {
  absl::FlagSaver restore;
  absl::StatusOr<CommandLine> c = Parse({"run", "--cli-test-port", "9", "x", "--cli_test_wait=250ms", "--", "--y"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->action, CommandLine::Action::kRun);
  EXPECT_EQ(c->positional, (std::vector<std::string>{"run", "x", "--y"}));
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_port), 9);
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_wait), absl::Milliseconds(250));
}

TEST(CommandLine, BooleansNeverTakeTheNextArgument) {
  absl::FlagSaver restore;
  absl::StatusOr<CommandLine> c = Parse({"--cli-test-verbose", "--cli-test-port", "1", "--cli-test-verbose", "arg"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(absl::GetFlag(FLAGS_cli_test_verbose));
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_port), 1);
  EXPECT_EQ(c->positional, (std::vector<std::string>{"arg"}));
  ASSERT_TRUE(Parse({"--cli-test-verbose=false"}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_cli_test_verbose));
  ASSERT_TRUE(Parse({"--cli-test-verbose", "--nocli-test-verbose"}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_cli_test_verbose));
  EXPECT_NE(Error(Parse({"--nocli-test-port"})).find("unknown flag --nocli-test-port"), std::string::npos);
}

TEST(CommandLine, RepeatedKeepsEveryValueWholeAndOptionalStaysUnset) {
  absl::FlagSaver restore;
  ASSERT_TRUE(Parse({}).ok());
  EXPECT_FALSE(absl::GetFlag(FLAGS_cli_test_ratio).has_value());
  EXPECT_TRUE(absl::GetFlag(FLAGS_cli_test_stop).values.empty());
  ASSERT_TRUE(Parse({"--cli-test-stop", "a,b", "--cli-test-stop=", "--cli-test-stop", "\n", "--cli-test-ratio=0.5"},
                    {{"TOOL_CLI_TEST_STOP", "from env"}})
                  .ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_stop).values, (std::vector<std::string>{"a,b", "", "\n"}));
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_ratio), 0.5);
  // Only the environment: one value, taken whole.
  ASSERT_TRUE(Parse({}, {{"TOOL_CLI_TEST_STOP", "x,y"}}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_stop).values, (std::vector<std::string>{"x,y"}));
}

TEST(CommandLine, EnvironmentIsTheFallbackAndTheCommandLineWins) {
  absl::FlagSaver restore;
  {
    absl::FlagSaver inner;
    ASSERT_TRUE(Parse({"--cli-test-port=5"}, {{"TOOL_CLI_TEST_PORT", "6"}, {"TOOL_CLI_TEST_VERBOSE", "true"}}).ok());
    EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_port), 5);
    EXPECT_TRUE(absl::GetFlag(FLAGS_cli_test_verbose));
  }
  EXPECT_NE(Error(Parse({}, {{"TOOL_CLI_TEST_PORT", "many"}})).find("TOOL_CLI_TEST_PORT: invalid value 'many'"),
            std::string::npos);
  Program no_env = kProgram;
  no_env.env_prefix.clear();
  ASSERT_TRUE(Parse({}, {{"TOOL_CLI_TEST_PORT", "many"}}, no_env).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_cli_test_port), 7);
}

TEST(CommandLine, ErrorsNameTheFlag) {
  absl::FlagSaver restore;
  EXPECT_NE(Error(Parse({"--cli-test-port=abc"})).find("--cli-test-port: invalid value 'abc'"), std::string::npos);
  EXPECT_NE(Error(Parse({"--cli_test_wait", "5"})).find("--cli-test-wait: invalid value '5'"), std::string::npos);
  EXPECT_NE(Error(Parse({"--cli-test-port"})).find("flag --cli-test-port needs a value"), std::string::npos);
  EXPECT_NE(Error(Parse({"--bogus"})).find("unknown flag --bogus"), std::string::npos);
  // A flag registered in the process but defined elsewhere is not this program's.
  Program other = kProgram;
  other.flag_files = {"some/other_file.cc"};
  EXPECT_NE(Error(Parse({"--cli-test-port=1"}, {}, other)).find("unknown flag --cli-test-port"), std::string::npos);
  Program no_args = kProgram;
  no_args.takes_positional = false;
  EXPECT_NE(Error(Parse({"stray"}, {}, no_args)).find("unexpected argument 'stray'"), std::string::npos);
}

TEST(CommandLine, HelpAndVersionWinOverEverything) {
  absl::FlagSaver restore;
  for (const char* help : {"--help", "-h", "--helpfull"}) {
    absl::StatusOr<CommandLine> c = Parse({"--cli-test-port", help, "--bogus"});
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->action, CommandLine::Action::kHelp);
  }
  absl::StatusOr<CommandLine> c = Parse({"--cli-test-port=abc", "--version"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->action, CommandLine::Action::kVersion);
  c = Parse({"--", "--help"});  // after "--", a positional
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->action, CommandLine::Action::kRun);
}

TEST(CommandLine, UsageListsEveryFlagWithItsVariableAndDefault) {
  const std::string usage = UsageText(kProgram);
  EXPECT_EQ(usage.rfind("usage: tool [flags] ARGS\n", 0), 0u) << usage;
  EXPECT_NE(usage.find("--cli-test-port (TOOL_CLI_TEST_PORT, default 7)\n      a port"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--cli-test-ratio (TOOL_CLI_TEST_RATIO, default none)"), std::string::npos) << usage;
  EXPECT_NE(usage.find("--cli-test-stop (TOOL_CLI_TEST_STOP, none; repeatable)"), std::string::npos) << usage;
  EXPECT_EQ(FlagNames(kProgram).size(), 5u);
  EXPECT_NE(VersionLine("tool").find("tool "), std::string::npos);
  EXPECT_NE(VersionLine("tool").find(" (revision "), std::string::npos);
}

}  // namespace
}  // namespace moed::cli
