// ProcessMetrics: the standard process_* families (CPU time, memory, file descriptors) read from /proc/self, which
// prometheus-cpp does not collect. Refreshed by its own thread once a second.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace moed::server {

// What one read of /proc/self gives; fields are 0 when unreadable (non-Linux).
struct ProcessSample {
  double cpu_seconds = 0;           // user + system time since the process started
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double open_fds = 0;
  double max_fds = 0;               // soft RLIMIT_NOFILE
  double start_time_seconds = 0;    // since the Unix epoch
};
ProcessSample ReadProcessSample();

// Families, named as every Prometheus client library's process collector names them (no moed_ prefix, so stock
// dashboards and alerts work), each with a `model_name` label:
//   process_cpu_seconds_total (counter), process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_open_fds, process_max_fds, process_start_time_seconds (gauges).
class ProcessMetrics {
 public:
  ProcessMetrics(prometheus::Registry& registry, const std::string& model_name);
  ~ProcessMetrics();  // stops and joins the refresh thread

  void Refresh();  // reads /proc/self now (also called by the thread)

 private:
  prometheus::Counter* cpu_ = nullptr;
  prometheus::Gauge* rss_ = nullptr;
  prometheus::Gauge* vsize_ = nullptr;
  prometheus::Gauge* open_fds_ = nullptr;
  prometheus::Gauge* max_fds_ = nullptr;
  prometheus::Gauge* start_time_ = nullptr;
  std::mutex mu_;                 // guards cpu_seen_ and stop_
  double cpu_seen_ = 0;           // CPU seconds already added to the counter
  bool stop_ = false;
  std::condition_variable stop_cv_;
  std::thread thread_;
};

}  // namespace moed::server
