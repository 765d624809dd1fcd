// Finished requests by reason with length histograms; process_* families read from /proc/self.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "prometheus/text_serializer.h"
#include "server/metrics.h"
#include "server/process_metrics.h"
#include "server/request_metrics.h"

namespace moed::server {
namespace {

std::string Text(prometheus::Registry& reg) { return prometheus::TextSerializer().Serialize(reg.Collect()); }

TEST(RequestMetrics, FinishedByReasonWithLengths) {
  prometheus::Registry reg;
  RequestMetrics m(reg, "fortune-moe");
  const std::string fresh = Text(reg);
  for (const char* reason : {"length", "stop", "eos", "aborted", "deadline", "error"}) {
    const std::string series = std::string("moed_requests_finished_total{finish_reason=\"") + reason +
                               "\",model_name=\"fortune-moe\"} 0";
    EXPECT_NE(fresh.find(series), std::string::npos) << series << "\n" << fresh;
  }
  m.Finished(FinishReason::kLength, 7, 16);
  m.Finished(FinishReason::kEos, 3, 1);
  m.Finished(FinishReason::kNone, 100, 100);  // not a finish: ignored
  const std::string text = Text(reg);
  EXPECT_NE(text.find("moed_requests_finished_total{finish_reason=\"length\",model_name=\"fortune-moe\"} 1"),
            std::string::npos) << text;
  EXPECT_NE(text.find("moed_requests_finished_total{finish_reason=\"eos\",model_name=\"fortune-moe\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("moed_request_prompt_tokens_sum{model_name=\"fortune-moe\"} 10"), std::string::npos) << text;
  EXPECT_NE(text.find("moed_request_generation_tokens_count{model_name=\"fortune-moe\"} 2"), std::string::npos);
  // 16 generated tokens fall in the (10, 20] bucket, 1 in (0, 1].
  EXPECT_NE(text.find("moed_request_generation_tokens_bucket{model_name=\"fortune-moe\",le=\"10\"} 1"),
            std::string::npos) << text;
  EXPECT_NE(text.find("moed_request_generation_tokens_bucket{model_name=\"fortune-moe\",le=\"20\"} 2"),
            std::string::npos);
}

TEST(ProcessMetrics, SampleSeesMemoryFdsAndCpu) {
  const ProcessSample a = ReadProcessSample();
  EXPECT_GT(a.resident_bytes, 1 << 20);
  EXPECT_GE(a.virtual_bytes, a.resident_bytes);
  EXPECT_GE(a.open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(a.max_fds, a.open_fds);
  EXPECT_GT(a.start_time_seconds, 1.6e9);
  const int fd = open("/proc/self/stat", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadProcessSample().open_fds, a.open_fds + 1);
  close(fd);
  // Spin until the kernel has charged at least one more clock tick of CPU time (no wall-clock assumptions).
  volatile double sink = 0;
  double cpu = a.cpu_seconds;
  for (long i = 0; i < 2000000000L && cpu <= a.cpu_seconds; ++i) {
    sink = sink + static_cast<double>(i) * 1e-9;
    if (i % 1000000 == 0) cpu = ReadProcessSample().cpu_seconds;
  }
  EXPECT_GT(cpu, a.cpu_seconds);
}

TEST(ProcessMetrics, FamiliesWithModelName) {
  prometheus::Registry reg;
  ProcessMetrics m(reg, "fortune-moe");
  const std::string text = Text(reg);
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_NE(text.find(std::string(name) + "{model_name=\"fortune-moe\"} "), std::string::npos) << name << text;
  }
  EXPECT_EQ(text.find("process_resident_memory_bytes{model_name=\"fortune-moe\"} 0\n"), std::string::npos);
}

}  // namespace
}  // namespace moed::server
