// Routing trace: sampling, a bounded queue, and a gzip writer thread with size-based rotation.
#include "engine/moe/routing_trace.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/common/json_escape.h"

namespace moed {

namespace {

// FNV-1a, then splitmix64's finalizer so that ids differing in one character spread over all bits.
uint64_t Hash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::string Rotated(const std::string& path, int k) { return k == 0 ? path : absl::StrCat(path, ".", k); }

}  // namespace

RoutingTrace::RoutingTrace(int num_layers, int num_experts) : num_layers_(num_layers), num_experts_(num_experts) {
  thread_ = std::thread([this] { WriterLoop(); });
}

RoutingTrace::~RoutingTrace() {
  (void)Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_thread_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool RoutingTrace::Sampled(std::string_view request_id, double sample) {
  if (sample >= 1.0) return true;
  // The top 53 bits of a 64-bit hash as a uniform number in [0, 1).
  return static_cast<double>(Hash(request_id) >> 11) * 0x1.0p-53 < sample;
}

absl::Status RoutingTrace::Start(const RoutingTraceOptions& o) {
  if (o.path.empty()) return absl::InvalidArgumentError("routing trace: the path is empty");
  if (!(o.sample > 0.0 && o.sample <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrFormat("routing trace: sample (%g) must be in (0, 1]", o.sample));
  }
  if (o.max_file_bytes < 4096 || o.keep_files < 1 || o.max_queued < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "routing trace: max_file_bytes (%d) must be ≥ 4096, keep_files (%d) and max_queued (%d) ≥ 1",
        o.max_file_bytes, o.keep_files, o.max_queued));
  }
  std::lock_guard<std::mutex> io(io_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  if (status_.active) return absl::FailedPreconditionError("routing trace: already active (stop it first)");
  options_ = o;
  if (absl::Status s = OpenFile(); !s.ok()) return s;
  status_ = {.active = true, .path = o.path, .sample = o.sample};
  active_.store(true, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status RoutingTrace::OpenFile() {
  gzFile f = gzopen(options_.path.c_str(), "wb6");
  if (f == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("routing trace: cannot open ", options_.path, ": ",
                                                   std::strerror(errno)));
  }
  file_ = f;
  file_bytes_ = 0;
  return absl::OkStatus();
}

void RoutingTrace::CloseFile() {
  if (file_ != nullptr) gzclose(static_cast<gzFile>(file_));
  file_ = nullptr;
}

absl::Status RoutingTrace::Rotate() {
  CloseFile();
  const int keep = options_.keep_files;
  std::remove(Rotated(options_.path, keep - 1).c_str());  // the oldest falls off (FILE itself when keep == 1)
  for (int k = keep - 1; k >= 1; --k) std::rename(Rotated(options_.path, k - 1).c_str(), Rotated(options_.path, k).c_str());
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++status_.rotations;
  }
  return OpenFile();
}

void RoutingTrace::Observe(const TokenRoutingEvent& e) {
  if (!active()) return;
  const size_t n = static_cast<size_t>(num_layers_) * std::max(0, e.top_k);
  if (e.top_k < 1 || e.experts.size() != n || e.weights.size() != n) return;
  for (int32_t x : e.experts) {
    if (x >= num_experts_) return;
  }
  double sample;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_.active) return;
    sample = options_.sample;
  }
  if (!Sampled(e.request_id, sample)) return;
  // One list per layer; a dense layer's list is empty. Weights align with experts.
  std::string experts = "[", weights = "[";
  for (int l = 0; l < num_layers_; ++l) {
    absl::StrAppend(&experts, l ? ",[" : "[");
    absl::StrAppend(&weights, l ? ",[" : "[");
    bool first = true;
    for (int j = 0; j < e.top_k; ++j) {
      const size_t at = static_cast<size_t>(l) * e.top_k + j;
      if (e.experts[at] < 0) continue;
      absl::StrAppend(&experts, first ? "" : ",", e.experts[at]);
      absl::StrAppendFormat(&weights, "%s%.6g", first ? "" : ",", e.weights[at]);
      first = false;
    }
    absl::StrAppend(&experts, "]");
    absl::StrAppend(&weights, "]");
  }
  std::string line = absl::StrCat("{\"request\":\"", JsonEscape(e.request_id), "\",\"position\":", e.position,
                                  ",\"token\":", e.token, ",\"experts\":", experts, "],\"weights\":", weights,
                                  "]}\n");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_.active) return;
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      ++status_.dropped;
      return;
    }
    queue_.push_back(std::move(line));
  }
  cv_.notify_one();
}

void RoutingTrace::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_thread_ || !queue_.empty(); });
    if (queue_.empty() && stop_thread_) return;
    std::string lines;
    int64_t n = 0;
    while (!queue_.empty()) {
      lines += queue_.front();
      queue_.pop_front();
      ++n;
    }
    writing_ = true;
    lock.unlock();
    const absl::Status written = Write(lines);
    lock.lock();
    writing_ = false;
    if (written.ok()) {
      status_.records += n;
      status_.bytes += static_cast<int64_t>(lines.size());
    } else {
      status_.dropped += n;
    }
    drained_cv_.notify_all();
  }
}

absl::Status RoutingTrace::Write(const std::string& lines) {
  std::lock_guard<std::mutex> io(io_mu_);
  if (file_ == nullptr) return absl::FailedPreconditionError("routing trace: no open file");
  // Whole lines only; a file is rotated before a line that would take it past max_file_bytes.
  size_t start = 0;
  while (start < lines.size()) {
    size_t end = start;
    while (end < lines.size()) {
      const size_t nl = lines.find('\n', end);
      const size_t next = nl == std::string::npos ? lines.size() : nl + 1;
      if (file_bytes_ + static_cast<int64_t>(next - start) > options_.max_file_bytes && (end > start || file_bytes_ > 0)) {
        break;
      }
      end = next;
    }
    if (end == start) {  // the file is full: rotate, then the line goes first into the fresh file
      if (absl::Status s = Rotate(); !s.ok()) return s;
      continue;
    }
    const auto n = static_cast<unsigned>(end - start);
    if (gzwrite(static_cast<gzFile>(file_), lines.data() + start, n) != static_cast<int>(n)) {
      return absl::InternalError("routing trace: gzwrite failed");
    }
    file_bytes_ += n;
    start = end;
  }
  return absl::OkStatus();
}

void RoutingTrace::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  drained_cv_.wait(lock, [this] { return queue_.empty() && !writing_; });
}

absl::Status RoutingTrace::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_.active) return absl::FailedPreconditionError("routing trace: not active");
  }
  cv_.notify_one();
  Drain();
  std::lock_guard<std::mutex> io(io_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  status_.active = false;
  active_.store(false, std::memory_order_relaxed);
  queue_.clear();  // records that raced with the stop
  CloseFile();
  return absl::OkStatus();
}

absl::StatusOr<std::string> RoutingTrace::Dump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!status_.active) return absl::FailedPreconditionError("routing trace: not active");
    if (options_.keep_files < 2) return absl::FailedPreconditionError("routing trace: dump needs keep_files ≥ 2");
  }
  cv_.notify_one();
  Drain();
  std::lock_guard<std::mutex> io(io_mu_);
  if (absl::Status s = Rotate(); !s.ok()) return s;
  return Rotated(options_.path, 1);
}

RoutingTraceStatus RoutingTrace::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

}  // namespace moed
