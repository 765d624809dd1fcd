// ThreadPool: every index once per job, ranges on distinct threads, and workers woken from spinning and from sleep.
#include "engine/common/thread_pool.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

// Runs `jobs` ParallelFor calls of varying size on `pool` (pausing `pause` between some of them, so workers have
// stopped spinning and sleep) and checks every index of every job is visited exactly once.
void ExpectEveryIndexOnce(ThreadPool& pool, int jobs, std::chrono::microseconds pause) {
  for (int j = 0; j < jobs; ++j) {
    const int64_t n = 1 + (j * 37) % 100;
    const int64_t min_per_task = 1 + j % 7;
    std::vector<std::atomic<int>> visits(n);
    pool.ParallelFor(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) visits[i].fetch_add(1);
    }, min_per_task);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(visits[i].load(), 1) << "job " << j << " index " << i;
    if (j % 50 == 49) std::this_thread::sleep_for(pause);
  }
}

TEST(ThreadPoolTest, EveryIndexOnceWhetherWorkersSpinOrSleep) {
  for (int spin : {0, 50, ThreadPool::kDefaultSpinMicros}) {
    SCOPED_TRACE(spin);
    ThreadPool pool(4, spin);
    ASSERT_EQ(pool.size(), 4);
    ExpectEveryIndexOnce(pool, 500, std::chrono::microseconds(2000));  // 2 ms: past every spin
  }
}

TEST(ThreadPoolTest, EachRangeOfAJobRunsOnItsOwnThread) {
  ThreadPool pool(3);
  for (int rep = 0; rep < 20; ++rep) {
    std::mutex mu;
    std::set<std::thread::id> ids;
    std::atomic<int> ranges{0};
    pool.ParallelFor(3, [&](int64_t b, int64_t e) {
      EXPECT_EQ(e - b, 1);
      ranges.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));  // overlap, so one thread can't take two
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
    });
    EXPECT_EQ(ranges.load(), 3);
    EXPECT_EQ(ids.size(), 3u);
    if (rep % 5 == 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(ThreadPoolTest, DestroysWhileWorkersSpinOrSleepOrNeverRan) {
  { ThreadPool idle(4); }
  {
    ThreadPool spinning(4, 100000);  // workers still polling when the pool goes
    std::atomic<int> sum{0};
    spinning.ParallelFor(4, [&](int64_t b, int64_t e) { sum.fetch_add(static_cast<int>(e - b)); });
    EXPECT_EQ(sum.load(), 4);
  }
  {
    ThreadPool sleeping(4, 0);
    std::atomic<int> sum{0};
    sleeping.ParallelFor(4, [&](int64_t b, int64_t e) { sum.fetch_add(static_cast<int>(e - b)); });
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(sum.load(), 4);
  }
}

TEST(ThreadPoolTest, PoolOfOneRunsInlineOnTheCaller) {
  ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  bool ran = false;
  pool.ParallelFor(10, [&](int64_t b, int64_t e) {
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 10);
    EXPECT_EQ(std::this_thread::get_id(), caller);
    ran = true;
  });
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace moed
