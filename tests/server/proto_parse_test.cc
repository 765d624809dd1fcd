// ParseMessage names why request bytes do not parse (truncation, malformed tags, non-UTF-8 strings, with the
// field path); WorkerPool bounds its backlog; log lines are well-formed text and JSON.
#include "server/proto_parse.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "moed/v1/moed.pb.h"
#include "server/log.h"
#include "server/worker_pool.h"

namespace moed::server {
namespace {

std::string Problem(const std::string& bytes) {
  v1::GenerateRequest r;
  absl::Status s = ParseMessage(bytes, &r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(ParseMessage, ValidBytesParse) {
  v1::GenerateRequest in;
  in.set_prompt("héllo");
  in.mutable_sampling()->add_stop("\n");
  in.add_prompt_ids(3);
  v1::GenerateRequest out;
  ASSERT_TRUE(ParseMessage(in.SerializeAsString(), &out).ok());
  EXPECT_EQ(out.prompt(), "héllo");
  EXPECT_EQ(out.sampling().stop(0), "\n");
}

TEST(ParseMessage, NamesTheFieldThatIsNotUtf8) {
  EXPECT_NE(Problem(std::string("\x12\x02\xc3\x28", 4)).find("prompt is not valid UTF-8"), std::string::npos);
  EXPECT_NE(Problem(std::string("\x0a\x01\xff", 3)).find("request_id is not valid UTF-8"), std::string::npos);
  // sampling { stop: "ok" stop: <c0 af> } — an overlong encoding of '/'
  const std::string stop("\x22\x08\x32\x02ok\x32\x02\xc0\xaf", 10);
  EXPECT_NE(Problem(stop).find("sampling.stop[1] is not valid UTF-8"), std::string::npos) << Problem(stop);
  EXPECT_NE(Problem(stop).find("moed.v1.GenerateRequest"), std::string::npos);
}

TEST(ParseMessage, TruncatedAndMalformedWireData) {
  EXPECT_NE(Problem(std::string("\x12\x64" "abc", 5)).find("truncated or malformed"), std::string::npos);
  EXPECT_NE(Problem(std::string("\x22\x04\x32\x09" "ab", 6)).find("sampling is truncated or malformed"),
            std::string::npos);
  EXPECT_NE(Problem(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)).find("malformed"),
            std::string::npos);
}

TEST(WorkerPool, RefusesPastItsBacklogAndRunsEverythingItTook) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> ran{0};
  WorkerPool pool(/*threads=*/1, /*max_queued=*/2);
  auto blocker = [&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    ++ran;
  };
  ASSERT_TRUE(pool.TrySubmit(blocker));
  // The one thread is (or will be) busy with the blocker; two more may wait, the next is refused.
  while (pool.queued() != 0) std::this_thread::yield();
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_TRUE(pool.TrySubmit([&] { ++ran; }));
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  pool.Stop();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE(pool.TrySubmit([&] { ++ran; }));  // stopped
}

TEST(Log, TextQuotesWhatNeedsItAndJsonParses) {
  const std::vector<LogField> fields = {{"id", "a b\"c"}, {"n", "3", true}, {"plain", "x"}};
  const std::string text = FormatLogLine(LogFormat::kText, LogSeverity::kInfo, "request finished", fields);
  EXPECT_EQ(text[0], 'I');
  EXPECT_NE(text.find(" request finished id=\"a b\\\"c\" n=3 plain=x"), std::string::npos) << text;
  const std::string json = FormatLogLine(LogFormat::kJson, LogSeverity::kError, "m\n", fields);
  const nlohmann::json j = nlohmann::json::parse(json);
  EXPECT_EQ(j["severity"], "ERROR");
  EXPECT_EQ(j["msg"], "m\n");
  EXPECT_EQ(j["id"], "a b\"c");
  EXPECT_EQ(j["n"], 3);
  EXPECT_FALSE(ParseLogFormat("xml").ok());
}

}  // namespace
}  // namespace moed::server
