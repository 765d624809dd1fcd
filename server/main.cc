// moed: flags → config → MoedServer (model, backend, engine, gRPC, metrics) → wait for a signal → drain.
#include <cstdio>
#include <optional>

#include "common/cli/command_line.h"
#include "moed/version.h"
#include "server/flags.h"
#include "server/log.h"
#include "server/server.h"
#include "server/shutdown.h"

int main(int argc, char** argv) {
  using namespace moed::server;
  // Before any thread exists, so all threads inherit the blocked mask.
  if (absl::Status s = BlockTerminationSignals(); !s.ok()) {
    std::fprintf(stderr, "moed: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (std::optional<int> exit = moed::cli::HandleCommandLine(MoedProgram(), argc, argv, ProcessEnv())) return *exit;
  absl::StatusOr<ServerConfig> config = ServerConfigFromFlags();
  if (!config.ok()) {
    std::fprintf(stderr, "moed: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  SetLogFormat(*ParseLogFormat(config->log_format));  // validated with the flags
  if (config->model.empty()) {
    absl::StatusOr<std::string> builtin = FindBuiltInModel();
    if (!builtin.ok()) {
      std::fprintf(stderr, "moed: %s\n", std::string(builtin.status().message()).c_str());
      return 2;
    }
    config->model = *builtin;
  }
  SignalWaiter signals;
  absl::StatusOr<std::unique_ptr<MoedServer>> server = MoedServer::Start(*config);
  if (!server.ok()) {
    LogEvent(LogSeverity::kError, "moed: cannot start", {{"error", std::string(server.status().message())}});
    return 2;
  }
  LogEvent(LogSeverity::kInfo, (*server)->StartupLine(), {{"version", MOED_VERSION}, {"revision", MOED_REVISION}});
  const int sig = signals.WaitForFirstSignal();
  LogEvent(LogSeverity::kInfo, "moed: draining (a second signal exits at once)",
           {{"signal", std::to_string(sig), true}, {"timeout", absl::FormatDuration(config->shutdown_timeout)}});
  (*server)->Shutdown(config->shutdown_timeout);
  LogEvent(LogSeverity::kInfo, "moed: stopped");
  return 0;
}
