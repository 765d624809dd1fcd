// WorkerPool: a fixed set of threads running jobs from a bounded FIFO — the tokenizer pool, so that
// tokenizing prompts never runs on (or blocks) gRPC's callback threads and its backlog is capped.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moed::server {

// Thread-safe. Jobs run in submission order, each on one of the pool's threads.
class WorkerPool {
 public:
  // `threads` ≥ 1 workers; at most `max_queued` jobs wait (running ones not counted).
  WorkerPool(int threads, int max_queued);
  ~WorkerPool();  // Stop()

  // False (and the job is dropped) when max_queued jobs already wait or the pool is stopped.
  bool TrySubmit(std::function<void()> job);
  int queued() const;

  // Runs every job already queued, then joins the threads; later TrySubmit calls return false. Idempotent.
  void Stop();

 private:
  void Work();

  const int max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace moed::server
