// Routing trace: deterministic sampling, gzip JSON lines, rotation bounds, dump and stop.
#include "engine/moe/routing_trace.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  std::string text;
  char buf[4096];
  for (int n; (n = gzread(f, buf, sizeof buf)) > 0;) text.append(buf, n);
  gzclose(f);
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    out.push_back(nlohmann::json::parse(text.substr(start, nl - start)));
  }
  EXPECT_EQ(start, text.size()) << "a partial line at the end of " << path;
  return out;
}

std::string TempPath(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "routing_trace_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

TEST(RoutingTraceTest, SamplingIsDeterministicAndRoughlyTheShare) {
  int picked = 0;
  for (int i = 0; i < 10000; ++i) {
    const std::string id = "r" + std::to_string(i);
    const bool a = RoutingTrace::Sampled(id, 0.1);
    EXPECT_EQ(a, RoutingTrace::Sampled(id, 0.1));
    picked += a;
    EXPECT_TRUE(RoutingTrace::Sampled(id, 1.0));
  }
  EXPECT_GT(picked, 800);  // 10% of 10000, binomial sd 30
  EXPECT_LT(picked, 1200);
}

TEST(RoutingTraceTest, WritesOneJsonLinePerTokenAndStops) {
  const std::string path = TempPath("trace.jsonl.gz");
  RoutingTrace trace(/*num_layers=*/2, /*num_experts=*/4);
  // top-2, layer-major, in the router's order; weights aligned with the experts.
  const std::vector<int32_t> experts = {2, 1, 0, 3};
  const std::vector<float> weights = {0.75f, 0.25f, 0.5f, 0.5f};
  trace.Observe({"r0", 3, 42, 2, experts, weights});  // not active yet: ignored
  ASSERT_TRUE(trace.Start({.path = path}).ok());
  EXPECT_EQ(trace.Start({.path = path}).code(), absl::StatusCode::kFailedPrecondition);
  trace.Observe({"r1", 5, 42, 2, experts, weights});
  trace.Observe({"r\"1", 6, 7, 2, experts, weights});  // the id is JSON-escaped
  const std::vector<int32_t> wrong_size = {1, 1};
  trace.Observe({"r1", 7, 7, 2, wrong_size, weights});  // ignored
  const std::vector<int32_t> outside = {0, 1, 4, 3};
  trace.Observe({"r1", 8, 7, 2, outside, weights});  // expert 4 of 4: ignored
  const std::vector<int32_t> dense_first = {-1, -1, 0, 3};
  trace.Observe({"r1", 9, 7, 2, dense_first, weights});
  ASSERT_TRUE(trace.Stop().ok());
  EXPECT_EQ(trace.Stop().code(), absl::StatusCode::kFailedPrecondition);
  const RoutingTraceStatus st = trace.status();
  EXPECT_FALSE(st.active);
  EXPECT_EQ(st.records, 3);
  const std::vector<nlohmann::json> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], nlohmann::json::parse(
                          R"({"request":"r1","position":5,"token":42,"experts":[[2,1],[0,3]],)"
                          R"("weights":[[0.75,0.25],[0.5,0.5]]})"));
  EXPECT_EQ(lines[1]["position"], 6);
  EXPECT_EQ(lines[1]["request"], "r\"1");
  EXPECT_EQ(lines[2]["experts"], nlohmann::json::parse("[[],[0,3]]"));
  EXPECT_EQ(lines[2]["weights"], nlohmann::json::parse("[[],[0.5,0.5]]"));
}

TEST(RoutingTraceTest, RotatesWithinTheBoundAndDumps) {
  const std::string path = TempPath("rot.jsonl.gz");
  RoutingTrace trace(1, 8);
  ASSERT_TRUE(trace.Start({.path = path, .max_file_bytes = 4096, .keep_files = 3}).ok());
  const std::vector<int32_t> experts = {0, 7};
  const std::vector<float> weights = {0.5f, 0.5f};
  int written = 0;
  for (int i = 0; i < 2000; ++i) {
    trace.Observe({"request-with-a-long-id", i, i, 2, experts, weights});
    ++written;
  }
  absl::StatusOr<std::string> dumped = trace.Dump();
  ASSERT_TRUE(dumped.ok()) << dumped.status();
  EXPECT_EQ(*dumped, path + ".1");
  ASSERT_TRUE(trace.Stop().ok());
  const RoutingTraceStatus st = trace.status();
  EXPECT_EQ(st.records + st.dropped, written);
  EXPECT_GT(st.rotations, 3);
  EXPECT_FALSE(std::filesystem::exists(path + ".3"));  // keep_files = 3: FILE, FILE.1, FILE.2
  // Every kept file holds whole lines, at most max_file_bytes of them; the dumped file ends with the last record
  // written before the dump.
  for (const std::string& f : {path + ".1", path + ".2"}) {
    gzFile g = gzopen(f.c_str(), "rb");
    ASSERT_NE(g, nullptr) << f;
    char buf[8192];
    int64_t bytes = 0;
    for (int n; (n = gzread(g, buf, sizeof buf)) > 0;) bytes += n;
    gzclose(g);
    EXPECT_GT(bytes, 0) << f;
    EXPECT_LE(bytes, 4096) << f;
  }
  const std::vector<nlohmann::json> last = ReadLines(*dumped);
  ASSERT_FALSE(last.empty());
  EXPECT_EQ(last.back()["position"], 1999);
  EXPECT_TRUE(ReadLines(path).empty());  // a fresh file after the dump, then stopped
}

TEST(RoutingTraceTest, BadOptions) {
  RoutingTrace trace(1, 2);
  EXPECT_EQ(trace.Start({.path = ""}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.Start({.path = "/tmp/x.gz", .sample = 0}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.Start({.path = "/nonexistent-dir/x.gz"}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(trace.Dump().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace moed
