#include "tools/rkutl/progress.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace rockeeper::rkutl {

std::string HumanBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

uint64_t ProcessBytesRead() {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "rchar:") return value;
  }
  return 0;
}

Progress::Progress(std::string label, std::string unit, uint64_t total_bytes)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_bytes_(total_bytes),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(absl::Now()) {
  if (enabled_) thread_ = std::thread([this] { Run(); });
}

Progress::~Progress() {
  if (!enabled_) return;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Progress::SetBytesSource(std::function<uint64_t()> fn) {
  absl::MutexLock lock(&mu_);
  bytes_fn_ = std::move(fn);
}

std::string Progress::Line(absl::Duration elapsed) {
  uint64_t bytes = bytes_.load(std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    if (bytes_fn_) bytes = bytes_fn_();
  }
  const uint64_t items = items_.load(std::memory_order_relaxed);
  const double secs = std::max(absl::ToDoubleSeconds(elapsed), 1e-3);
  std::string line = absl::StrCat(label_, ": ");
  if (items > 0) {
    absl::StrAppendFormat(&line, "%d %s (%.0f/s), ", items, unit_,
                          static_cast<double>(items) / secs);
  }
  if (bytes == 0 && total_bytes_ == 0) {
    line.resize(line.size() - 2);  // no ", "
    return line;
  }
  absl::StrAppend(&line, HumanBytes(bytes));
  if (total_bytes_ > 0) {
    absl::StrAppendFormat(
        &line, " of %s (%.0f%%)", HumanBytes(total_bytes_),
        100.0 * static_cast<double>(bytes) / static_cast<double>(total_bytes_));
  }
  absl::StrAppend(
      &line, ", ",
      HumanBytes(static_cast<uint64_t>(static_cast<double>(bytes) / secs)),
      "/s");
  return line;
}

void Progress::Run() {
  bool printed = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Condition stopped(&stop_);
      if (mu_.AwaitWithTimeout(stopped, absl::Seconds(1))) break;
    }
    const std::string line = Line(absl::Now() - start_);
    std::fprintf(stderr, "\r%-79s", line.c_str());
    std::fflush(stderr);
    printed = true;
  }
  if (printed) {
    std::fprintf(stderr, "\r%79s\r", "");
    std::fflush(stderr);
  }
}

}  // namespace rockeeper::rkutl
