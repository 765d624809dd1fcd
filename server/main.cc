// moed: flags → config → MoedServer (model, backend, engine, gRPC, metrics) → wait for a signal → drain.
#include <cstdio>
#include <string_view>

#include "server/flags.h"
#include "server/server.h"
#include "server/shutdown.h"

int main(int argc, char** argv) {
  using namespace moed::server;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "--helpfull") {
      std::fputs(UsageText().c_str(), stdout);
      return 0;
    }
  }
  // Before any thread exists, so all threads inherit the blocked mask.
  if (absl::Status s = BlockTerminationSignals(); !s.ok()) {
    std::fprintf(stderr, "moed: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::StatusOr<ServerConfig> config = ParseServerFlags(argc, argv, ProcessEnv());
  if (!config.ok()) {
    std::fprintf(stderr, "moed: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  SignalWaiter signals;
  absl::StatusOr<std::unique_ptr<MoedServer>> server = MoedServer::Start(*config);
  if (!server.ok()) {
    std::fprintf(stderr, "moed: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  std::fprintf(stderr, "%s\n", (*server)->StartupLine().c_str());
  const int sig = signals.WaitForFirstSignal();
  std::fprintf(stderr, "moed: signal %d, draining (up to %s; a second signal exits at once)\n", sig,
               absl::FormatDuration(config->shutdown_timeout).c_str());
  (*server)->Shutdown(config->shutdown_timeout);
  std::fprintf(stderr, "moed: stopped\n");
  return 0;
}
