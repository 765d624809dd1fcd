// /proc/self/stat, /proc/self/fd and getrlimit into the standard process_* families.
#include "server/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <vector>

namespace moed::server {
namespace {

double BootTimeSeconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

ProcessSample ReadProcessSample() {
  ProcessSample s;
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (std::getline(stat, line)) {
    // Fields after the command name (which may hold spaces) start at ") "; field 3 is the state.
    const size_t close = line.rfind(')');
    std::istringstream rest(close == std::string::npos ? "" : line.substr(close + 2));
    std::vector<std::string> f;  // f[0] = field 3
    for (std::string t; rest >> t;) f.push_back(t);
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    if (f.size() > 21 && ticks > 0) {
      s.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;  // utime (14), stime (15)
      s.start_time_seconds = BootTimeSeconds() + std::stod(f[19]) / ticks;  // starttime (22)
      s.virtual_bytes = std::stod(f[20]);                                    // vsize (23)
      s.resident_bytes = std::stod(f[21]) * page;                            // rss (24), pages
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    int n = 0;
    while (const dirent* e = readdir(dir)) n += e->d_name[0] != '.';
    closedir(dir);
    s.open_fds = n - 1;  // the directory stream's own descriptor
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) s.max_fds = static_cast<double>(lim.rlim_cur);
  return s;
}

ProcessMetrics::ProcessMetrics(prometheus::Registry& reg, const std::string& model_name) {
  const prometheus::Labels model = {{"model_name", model_name}};
  cpu_ = &prometheus::BuildCounter().Name("process_cpu_seconds_total")
      .Help("Total user and system CPU time spent in seconds.").Register(reg).Add(model);
  rss_ = &prometheus::BuildGauge().Name("process_resident_memory_bytes").Help("Resident memory size in bytes.")
      .Register(reg).Add(model);
  vsize_ = &prometheus::BuildGauge().Name("process_virtual_memory_bytes").Help("Virtual memory size in bytes.")
      .Register(reg).Add(model);
  open_fds_ = &prometheus::BuildGauge().Name("process_open_fds").Help("Number of open file descriptors.")
      .Register(reg).Add(model);
  max_fds_ = &prometheus::BuildGauge().Name("process_max_fds").Help("Maximum number of open file descriptors.")
      .Register(reg).Add(model);
  start_time_ = &prometheus::BuildGauge().Name("process_start_time_seconds")
      .Help("Start time of the process since unix epoch in seconds.").Register(reg).Add(model);
  Refresh();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      lock.unlock();
      Refresh();
      lock.lock();
    }
  });
}

ProcessMetrics::~ProcessMetrics() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProcessMetrics::Refresh() {
  const ProcessSample s = ReadProcessSample();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (s.cpu_seconds > cpu_seen_) {
      cpu_->Increment(s.cpu_seconds - cpu_seen_);
      cpu_seen_ = s.cpu_seconds;
    }
  }
  rss_->Set(s.resident_bytes);
  vsize_->Set(s.virtual_bytes);
  open_fds_->Set(s.open_fds);
  max_fds_->Set(s.max_fds);
  start_time_->Set(s.start_time_seconds);
}

}  // namespace moed::server
