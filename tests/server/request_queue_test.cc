// RequestQueue and Outbox: the writer token, admission (queue full, shutting down), and submissions
// and cancellations from several threads against a real EngineCore (fortune-moe, CPU backend).
#include "server/request_queue.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "engine/backend/backend.h"
#include "engine/model/model.h"

namespace moed::server {
namespace {

// The stream side of a test: records what it is asked to do and acknowledges writes at once,
// as a reactor's OnWriteDone would.
class RecordingStream : public StreamWriter {
 public:
  RecordingStream() : outbox_(std::make_shared<Outbox>(this)) {}
  std::shared_ptr<Outbox> outbox() const { return outbox_; }

  void Act(OutboxAction action) override {
    while (action.kind == OutboxAction::Kind::kWrite) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        writes_.push_back(action.output);
      }
      action = outbox_->WriteDone(true);
    }
    if (action.kind != OutboxAction::Kind::kFinish) return;
    std::lock_guard<std::mutex> lock(mu_);
    ++finishes_;
    status_ = action.status;
    cv_.notify_all();
  }

  bool WaitFinished(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return finishes_ > 0; });
  }
  absl::Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }
  int finishes() {
    std::lock_guard<std::mutex> lock(mu_);
    return finishes_;
  }
  std::vector<int32_t> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> out;
    for (const auto& w : writes_) out.insert(out.end(), w.new_token_ids.begin(), w.new_token_ids.end());
    return out;
  }
  bool last_write_finished() {
    std::lock_guard<std::mutex> lock(mu_);
    return !writes_.empty() && writes_.back().finished;
  }

 private:
  std::shared_ptr<Outbox> outbox_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestOutput> writes_;
  int finishes_ = 0;
  absl::Status status_;
};

TEST(Outbox, OneWriterAtATimeAndFinishAfterTheLastMessage) {
  RecordingStream stream;  // only its outbox is used here; Act is driven by hand
  Outbox& box = *stream.outbox();
  RequestOutput first;
  first.new_token_ids = {5};
  OutboxAction a = box.Push(first);
  ASSERT_EQ(a.kind, OutboxAction::Kind::kWrite);  // the pusher took the token
  RequestOutput last;
  last.new_token_ids = {6};
  last.finished = true;
  EXPECT_EQ(box.Push(last).kind, OutboxAction::Kind::kNone);  // a write is in flight: queued
  a = box.WriteDone(true);
  ASSERT_EQ(a.kind, OutboxAction::Kind::kWrite);
  EXPECT_TRUE(a.output.finished);
  a = box.WriteDone(true);
  ASSERT_EQ(a.kind, OutboxAction::Kind::kFinish);
  EXPECT_TRUE(a.status.ok());
  EXPECT_EQ(box.Cancel().kind, OutboxAction::Kind::kNone);  // already finished
}

TEST(Outbox, CancelWhileWritingFinishesAfterTheWrite) {
  RecordingStream stream;
  Outbox& box = *stream.outbox();
  ASSERT_EQ(box.Push(RequestOutput()).kind, OutboxAction::Kind::kWrite);
  EXPECT_EQ(box.Cancel().kind, OutboxAction::Kind::kNone);
  const OutboxAction a = box.WriteDone(true);
  ASSERT_EQ(a.kind, OutboxAction::Kind::kFinish);
  EXPECT_EQ(a.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(box.Push(RequestOutput()).kind, OutboxAction::Kind::kNone);
}

TEST(Outbox, IdleCancelFinishesAtOnceAndErrorsEndTheStream) {
  RecordingStream s1;
  const OutboxAction a = s1.outbox()->Cancel();
  ASSERT_EQ(a.kind, OutboxAction::Kind::kFinish);
  EXPECT_EQ(a.status.code(), absl::StatusCode::kCancelled);

  RecordingStream s2;
  RequestOutput failed;
  failed.finished = true;
  failed.status = absl::DeadlineExceededError("late");
  const OutboxAction b = s2.outbox()->Push(failed);
  ASSERT_EQ(b.kind, OutboxAction::Kind::kFinish);
  EXPECT_EQ(b.status.code(), absl::StatusCode::kDeadlineExceeded);

  RecordingStream s3;  // a broken stream (write failed) ends as cancelled
  ASSERT_EQ(s3.outbox()->Push(RequestOutput()).kind, OutboxAction::Kind::kWrite);
  EXPECT_EQ(s3.outbox()->WriteDone(false).kind, OutboxAction::Kind::kFinish);
}

RequestOutput Tokens(int n, bool finished = false) {
  RequestOutput out;
  out.new_token_ids.assign(static_cast<size_t>(n), 7);
  out.finished = finished;
  return out;
}

// Back-pressure with explicit times: output piles up only behind a write in flight.
TEST(Outbox, OverTheBufferBudgetCutsTheStream) {
  RecordingStream stream;
  Outbox box(&stream, OutboxLimits{.max_buffered_bytes = 200, .stall_timeout = absl::Hours(1)});
  const absl::Time t0 = absl::UnixEpoch();
  ASSERT_EQ(box.Push(Tokens(1), t0).kind, OutboxAction::Kind::kWrite);  // in flight, never completed
  int pushed = 0;
  OutboxAction a;
  while (!(a = box.Push(Tokens(4), t0)).cut) {
    EXPECT_EQ(a.kind, OutboxAction::Kind::kNone);
    ASSERT_LT(++pushed, 100);
  }
  const int64_t per_push = ApproxOutputBytes(Tokens(4));
  EXPECT_EQ(pushed, 200 / per_push);  // exactly the outputs that fit in 200 bytes waited
  EXPECT_TRUE(box.cut());
  EXPECT_EQ(box.CutStatus().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(box.CutStatus().message().find("--stream-buffer-bytes"), std::string::npos) << box.CutStatus();
  EXPECT_EQ(box.Push(Tokens(1), t0).kind, OutboxAction::Kind::kNone);  // nothing more is taken
  a = box.WriteDone(true, t0);  // the client finally read: the call ends with the cut status
  ASSERT_EQ(a.kind, OutboxAction::Kind::kFinish);
  EXPECT_EQ(a.status.code(), absl::StatusCode::kResourceExhausted);
}

TEST(Outbox, AWriteInFlightPastTheStallTimeoutCutsTheStream) {
  RecordingStream stream;
  Outbox box(&stream, OutboxLimits{.max_buffered_bytes = 1 << 20, .stall_timeout = absl::Seconds(30)});
  const absl::Time t0 = absl::UnixEpoch();
  ASSERT_EQ(box.Push(Tokens(1), t0).kind, OutboxAction::Kind::kWrite);
  EXPECT_FALSE(box.Push(Tokens(1), t0 + absl::Seconds(30)).cut);  // exactly the timeout: not yet
  // A client that reads resets the clock.
  ASSERT_EQ(box.WriteDone(true, t0 + absl::Seconds(31)).kind, OutboxAction::Kind::kWrite);
  EXPECT_FALSE(box.Push(Tokens(1), t0 + absl::Seconds(60)).cut);
  const OutboxAction a = box.Push(Tokens(1), t0 + absl::Seconds(61) + absl::Milliseconds(1));
  EXPECT_TRUE(a.cut);
  EXPECT_NE(box.CutStatus().message().find("--stream-stall-timeout=30s"), std::string::npos) << box.CutStatus();
}

TEST(Outbox, TheLastOutputIsNeverCutAndAnIdleStreamNeverStalls) {
  RecordingStream stream;
  Outbox box(&stream, OutboxLimits{.max_buffered_bytes = 1024, .stall_timeout = absl::Seconds(1)});
  const absl::Time t0 = absl::UnixEpoch();
  ASSERT_EQ(box.Push(Tokens(1), t0).kind, OutboxAction::Kind::kWrite);
  ASSERT_EQ(box.WriteDone(true, t0).kind, OutboxAction::Kind::kNone);  // idle: nothing in flight
  ASSERT_EQ(box.Push(Tokens(1), t0 + absl::Hours(1)).kind, OutboxAction::Kind::kWrite);  // no stall while idle
  EXPECT_FALSE(box.Push(Tokens(1, /*finished=*/true), t0 + absl::Hours(2)).cut);  // ends the request anyway
  EXPECT_FALSE(box.cut());
}

class RequestQueueTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = std::string(MOED_SOURCE_DIR) + "/models/fortune-moe";
    auto model = LoadModel(dir);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new std::shared_ptr<const Model>(*model);
    auto tokenizer = LoadTokenizer(dir);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = new std::shared_ptr<const Tokenizer>(std::move(*tokenizer));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tokenizer_;
  }

  std::unique_ptr<RequestQueue> MakeQueue(int max_queue) {
    BackendOptions options;
    options.num_threads = 2;
    auto backend = CreateBackend("cpu", *model_, options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    EngineConfig config;
    config.max_queue = max_queue;
    config.max_running_seqs = 8;
    config.max_model_len = 256;
    auto engine = EngineCore::Create(std::move(*backend), *tokenizer_, config);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return std::make_unique<RequestQueue>(std::move(*engine), &metrics_);
  }

  static EngineRequest Request(const std::string& id, int max_tokens) {
    EngineRequest r;
    r.request_id = id;
    r.prompt_ids = {1, 370, 998, 695};
    r.sampling.temperature = 0.0f;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
  }

  static std::shared_ptr<const Model>* model_;
  static std::shared_ptr<const Tokenizer>* tokenizer_;
  ServerMetrics metrics_{MetricsModelInfo{"fortune-moe", "mixtral", "cpu", 4, 8}, PerExpertMetrics::kAuto};
};
std::shared_ptr<const Model>* RequestQueueTest::model_ = nullptr;
std::shared_ptr<const Tokenizer>* RequestQueueTest::tokenizer_ = nullptr;

TEST_F(RequestQueueTest, FullQueueRefusesAtOnceThenDrains) {
  std::unique_ptr<RequestQueue> queue = MakeQueue(/*max_queue=*/3);
  std::vector<std::unique_ptr<RecordingStream>> streams;
  for (int i = 0; i < 4; ++i) streams.push_back(std::make_unique<RecordingStream>());
  // Not started yet: submissions pile up as pending.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue->Submit(Request("q" + std::to_string(i), 3), streams[i]->outbox()).ok());
  const absl::Status full = queue->Submit(Request("q3", 3), streams[3]->outbox());
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("--max-queue=3"), std::string::npos) << full;
  queue->Start();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(streams[i]->WaitFinished(absl::Seconds(30)));
    EXPECT_TRUE(streams[i]->status().ok()) << streams[i]->status();
    EXPECT_EQ(streams[i]->tokens().size(), 3u);
    EXPECT_TRUE(streams[i]->last_write_finished());
  }
  EXPECT_TRUE(queue->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(streams[3]->finishes(), 0);  // the refused one never reached a stream
}

TEST_F(RequestQueueTest, SubmitAndCancelFromManyThreads) {
  std::unique_ptr<RequestQueue> queue = MakeQueue(/*max_queue=*/64);
  queue->Start();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 4;
  std::vector<std::unique_ptr<RecordingStream>> streams;
  for (int i = 0; i < kThreads * kPerThread; ++i) streams.push_back(std::make_unique<RecordingStream>());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        const int i = t * kPerThread + k;
        const std::string id = "m" + std::to_string(i);
        const bool cancel = i % 2 == 1;
        ASSERT_TRUE(queue->Submit(Request(id, cancel ? 200 : 6), streams[i]->outbox()).ok());
        if (!cancel) continue;
        queue->Cancel(id);
        const OutboxAction a = streams[i]->outbox()->Cancel();
        if (a.kind != OutboxAction::Kind::kNone) streams[i]->Act(a);
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<int32_t> reference = [&] {
    for (auto& s : streams) {
      if (s->WaitFinished(absl::Seconds(60)) && s->status().ok()) return s->tokens();
    }
    return std::vector<int32_t>();
  }();
  ASSERT_EQ(reference.size(), 6u);
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    ASSERT_TRUE(streams[i]->WaitFinished(absl::Seconds(60))) << i;
    EXPECT_EQ(streams[i]->finishes(), 1) << i;
    if (i % 2 == 1) {
      EXPECT_EQ(streams[i]->status().code(), absl::StatusCode::kCancelled) << i;
      EXPECT_LT(streams[i]->tokens().size(), 200u);
    } else {
      EXPECT_TRUE(streams[i]->status().ok()) << i << ": " << streams[i]->status();
      EXPECT_EQ(streams[i]->tokens(), reference) << i;  // greedy: the same prompt gives the same tokens
    }
  }
  ASSERT_TRUE(queue->WaitIdle(absl::Seconds(10)));
  // Give the engine its last idle pass, then check nothing is held.
  for (int i = 0; i < 100 && queue->StatsSnapshot().kv_blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const EngineStats stats = queue->StatsSnapshot();
  EXPECT_EQ(stats.running, 0);
  EXPECT_EQ(stats.waiting, 0);
  EXPECT_EQ(stats.kv_blocks_used, 0);
}

TEST_F(RequestQueueTest, ShutdownRefusesNewAndAbortsLive) {
  std::unique_ptr<RequestQueue> queue = MakeQueue(/*max_queue=*/8);
  // The engine thread is not started yet, so the request cannot finish on its own before the abort.
  RecordingStream running;
  ASSERT_TRUE(queue->Submit(Request("long", 200), running.outbox()).ok());
  queue->StopAccepting();
  RecordingStream late;
  EXPECT_EQ(queue->Submit(Request("late", 4), late.outbox()).code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(queue->WaitIdle(absl::Milliseconds(10)));  // live, and nothing runs it
  queue->AbortAll(absl::UnavailableError("shutting down"));
  queue->Start();
  ASSERT_TRUE(running.WaitFinished(absl::Seconds(30)));
  EXPECT_TRUE(running.tokens().empty());  // aborted when admitted, before any step
  EXPECT_EQ(running.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(queue->WaitIdle(absl::Seconds(5)));
  queue->Stop();
  EXPECT_EQ(queue->live_requests(), 0);
}

}  // namespace
}  // namespace moed::server
