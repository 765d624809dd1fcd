// ReadRoutingTrace reads back what RoutingTrace writes; malformed records are refused naming the line.
#include "engine/moe/routing_trace_reader.h"

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/moe/routing_trace.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

std::string TempPath(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "routing_trace_reader_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

TEST(RoutingTraceReaderTest, ReadsWhatTheTraceWrites) {
  const std::string path = TempPath("trace.jsonl.gz");
  RoutingTrace trace(/*num_layers=*/2, /*num_experts=*/4);
  // top-2, layer-major, in the router's order.
  const std::vector<int32_t> a = {2, 1, 0, 3}, b = {0, 1, -1, -1};  // b: its second layer dense
  const std::vector<float> wa = {0.75f, 0.25f, 0.5f, 0.5f}, wb = {0.625f, 0.375f, 0.0f, 0.0f};
  ASSERT_TRUE(trace.Start({.path = path}).ok());
  trace.Observe({"r1", 5, 42, 2, a, wa});
  trace.Observe({"r2", 0, 7, 2, b, wb});
  ASSERT_TRUE(trace.Stop().ok());
  auto got = ReadRoutingTrace(path);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].request, "r1");
  EXPECT_EQ((*got)[0].position, 5);
  EXPECT_EQ((*got)[0].token, 42);
  EXPECT_EQ((*got)[0].experts, (std::vector<std::vector<int32_t>>{{2, 1}, {0, 3}}));
  EXPECT_EQ((*got)[0].weights, (std::vector<std::vector<float>>{{0.75f, 0.25f}, {0.5f, 0.5f}}));
  EXPECT_EQ((*got)[1].experts, (std::vector<std::vector<int32_t>>{{0, 1}, {}}));
  EXPECT_EQ((*got)[1].weights, (std::vector<std::vector<float>>{{0.625f, 0.375f}, {}}));
  EXPECT_EQ(ReadRoutingTrace(path, 1)->size(), 1u);
}

TEST(RoutingTraceReaderTest, RefusesMalformedRecordsNamingTheLine) {
  auto write = [](const std::string& path, const std::string& text) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
  };
  const std::string path = TempPath("bad.jsonl.gz");
  const std::string good = R"({"request":"r","position":0,"token":1,"experts":[[1,2]]})";
  write(path, good + "\n{not json\n");
  auto r = ReadRoutingTrace(path);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status();
  write(path, good + "\n" + R"({"request":"r","position":1,"token":1,"experts":[[1],[2]]})" + "\n");
  EXPECT_NE(ReadRoutingTrace(path).status().message().find("2 layers"), std::string::npos);
  write(path, R"({"request":"r","token":1,"experts":[[1]]})");
  EXPECT_NE(ReadRoutingTrace(path).status().message().find("position"), std::string::npos);
  EXPECT_EQ(ReadRoutingTrace(TempPath("missing.gz")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace moed
