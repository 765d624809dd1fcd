// sigwait-based signal thread: first SIGTERM/SIGINT starts the drain, a second one exits at once.
#include "server/shutdown.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <pthread.h>

#include "absl/strings/str_cat.h"

namespace moed::server {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

absl::Status BlockTerminationSignals() {
  const sigset_t set = TerminationSignals();
  const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (rc != 0) return absl::InternalError(absl::StrCat("pthread_sigmask: ", std::strerror(rc)));
  return absl::OkStatus();
}

SignalWaiter::SignalWaiter() : thread_([this] { Run(); }) {}

// The thread blocks in sigwait until process exit; detach so destruction never waits on it.
SignalWaiter::~SignalWaiter() { thread_.detach(); }

int SignalWaiter::WaitForFirstSignal() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return first_signal_ != 0; });
  return first_signal_;
}

void SignalWaiter::Run() {
  const sigset_t set = TerminationSignals();
  int count = 0;
  while (true) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (++count == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      first_signal_ = sig;
      cv_.notify_all();
      continue;
    }
    std::fprintf(stderr, "moed: second signal (%d), exiting at once\n", sig);
    std::_Exit(128 + sig);
  }
}

}  // namespace moed::server
