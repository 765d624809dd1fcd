// ThreadPool implementation: workers spin briefly on a generation counter, then wait on a condition variable.
#include "engine/common/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace moed {
namespace {

// Range `task` of `tasks` equal splits of [0, n).
std::pair<int64_t, int64_t> SplitRange(int64_t n, int tasks, int task) {
  const int64_t begin = n * task / tasks;
  const int64_t end = n * (task + 1) / tasks;
  return {begin, end};
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls done() for up to `micros` microseconds; true as soon as it holds.
template <class Done>
bool SpinUntil(Done&& done, int micros) {
  if (micros <= 0) return done();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(micros);
  for (int i = 0;; ++i) {
    if (done()) return true;
    CpuRelax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= deadline) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int num_threads, int spin_micros) : spin_micros_(spin_micros) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);  // wakes spinning workers too
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
    pending_.store(tasks - 1);
    generation_.fetch_add(1);
  }
  work_cv_.notify_all();  // cheap when every worker is still spinning (no waiter to wake)
  const auto [begin, end] = SplitRange(n, tasks, 0);
  fn(begin, end);
  if (!SpinUntil([this] { return pending_.load(std::memory_order_acquire) == 0; }, spin_micros_)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_.load() == 0; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  job_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // A new job is announced by a generation bump: poll it for a while (the next parallel region of a step usually
    // starts within microseconds), then sleep until notified.
    if (!SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; }, spin_micros_)) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return generation_.load() != seen; });
    }
    const std::function<void(int64_t, int64_t)>* job;
    int64_t n;
    int tasks;
    {
      // The job's fields are read under the lock, with the generation they belong to: a worker outside the last
      // job (index ≥ its tasks) may wake after the caller has already posted the next one.
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_.load()) return;
      seen = generation_.load();
      job = job_;
      n = job_n_;
      tasks = job_tasks_;
    }
    if (job == nullptr || index >= tasks) continue;  // this job has fewer ranges than workers
    const auto [begin, end] = SplitRange(n, tasks, index);
    (*job)(begin, end);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be between its check and its wait
      done_cv_.notify_one();
    }
  }
}

}  // namespace moed
