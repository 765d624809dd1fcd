// ThreadPool implementation: workers wait on a condition variable for a generation bump.
#include "engine/common/thread_pool.h"

#include <algorithm>

namespace moed {
namespace {

// Range `task` of `tasks` equal splits of [0, n).
std::pair<int64_t, int64_t> SplitRange(int64_t n, int tasks, int task) {
  const int64_t begin = n * task / tasks;
  const int64_t end = n * (task + 1) / tasks;
  return {begin, end};
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_task) {
  if (n <= 0) return;
  min_per_task = std::max<int64_t>(1, min_per_task);
  const int tasks = static_cast<int>(std::min<int64_t>(size(), std::max<int64_t>(1, n / min_per_task)));
  if (tasks <= 1) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_tasks_ = tasks;
    pending_ = tasks - 1;
    ++generation_;
  }
  work_cv_.notify_all();
  const auto [begin, end] = SplitRange(n, tasks, 0);
  fn(begin, end);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    int tasks;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      n = job_n_;
      tasks = job_tasks_;
    }
    if (index >= tasks) continue;  // this job has fewer ranges than workers
    const auto [begin, end] = SplitRange(n, tasks, index);
    (*job)(begin, end);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --pending_;
    }
    done_cv_.notify_one();
  }
}

}  // namespace moed
