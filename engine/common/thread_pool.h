// ThreadPool: a small fixed pool that runs one ParallelFor at a time (the CPU backend's worker threads).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moed {

// Owned by one caller thread; ParallelFor must not be called concurrently or re-entrantly.
// The caller thread takes part in the work, so a pool of size 1 runs everything inline.
// Waiting: workers poll for the next job for spin_micros after each one, and the caller polls for the workers'
// ranges as long, before either sleeps on a condition variable. A decode step runs dozens of short parallel
// regions microseconds apart; a futex wake-up per region (tens of µs in a VM) cost more than the regions saved.
// The price is up to spin_micros of CPU per worker after the last region of a burst.
class ThreadPool {
 public:
  static constexpr int kDefaultSpinMicros = 200;
  // num_threads total workers including the caller; 0 = std::thread::hardware_concurrency(). spin_micros 0 =
  // sleep at once.
  explicit ThreadPool(int num_threads, int spin_micros = kDefaultSpinMicros);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, n) into at most size() contiguous ranges and calls fn(begin, end) on each, in parallel;
  // returns when all are done. Each index is visited exactly once. min_per_task bounds the split so tiny
  // ranges stay on the caller thread.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_task = 1);

 private:
  void WorkerLoop(int index);

  const int spin_micros_;
  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards the job fields; generation_ and stop_ are written under it too
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;  // valid while a ParallelFor runs
  int64_t job_n_ = 0;
  int job_tasks_ = 0;                  // ranges in the current job; range 0 is the caller's
  std::atomic<uint64_t> generation_{0};  // bumped per job (and at stop) so workers pick each job up once
  std::atomic<int> pending_{0};          // worker ranges not yet finished
  std::atomic<bool> stop_{false};
};

}  // namespace moed
