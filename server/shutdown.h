// Termination signals without work in handlers: SIGTERM/SIGINT are blocked in every thread and
// received by one dedicated sigwait thread.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/status.h"

namespace moed::server {

// Blocks SIGTERM and SIGINT in the calling thread. Call first thing in main, before any thread is
// created, so every thread inherits the mask and only the SignalWaiter's sigwait sees them.
absl::Status BlockTerminationSignals();

// Owns the signal thread: the first signal wakes WaitForFirstSignal(); a second one exits the
// process at once with 128 + signal (no clean-up). The thread lives until process exit.
class SignalWaiter {
 public:
  SignalWaiter();
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;
  ~SignalWaiter();

  // Blocks until the first SIGTERM/SIGINT; returns its number.
  int WaitForFirstSignal();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  int first_signal_ = 0;
  std::thread thread_;
};

}  // namespace moed::server
