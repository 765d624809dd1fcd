// ThreadPool: a small fixed pool that runs one ParallelFor at a time (the CPU backend's worker threads).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moed {

// Owned by one caller thread; ParallelFor must not be called concurrently or re-entrantly.
// The caller thread takes part in the work, so a pool of size 1 runs everything inline.
class ThreadPool {
 public:
  // num_threads total workers including the caller; 0 = std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
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

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;  // valid while a ParallelFor runs
  int64_t job_n_ = 0;
  int job_tasks_ = 0;       // ranges in the current job; range 0 is the caller's
  uint64_t generation_ = 0; // bumped per job so workers pick each job up once
  int pending_ = 0;         // worker ranges not yet finished
  bool stop_ = false;
};

}  // namespace moed
