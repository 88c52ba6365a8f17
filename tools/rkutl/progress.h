// Progress of long operations on stderr: once a second, only when stderr is
// a terminal (so scripts and tests see nothing).
#ifndef ROCKEEPER_TOOLS_RKUTL_PROGRESS_H_
#define ROCKEEPER_TOOLS_RKUTL_PROGRESS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rockeeper::rkutl {

class Progress {
 public:
  // `label` names the operation ("dump", "verify"); `unit` the counted items
  // ("nodes", "records"). `total_bytes` (0 = unknown) adds a percentage.
  Progress(std::string label, std::string unit, uint64_t total_bytes = 0);
  ~Progress();  // stops reporting and clears the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Counts work done; cheap enough to call per item.
  void Add(uint64_t items, uint64_t bytes) {
    items_.fetch_add(items, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Reads the byte count from `fn` instead of Add() (for work done inside a
  // library call, e.g. bytes read by this process).
  void SetBytesSource(std::function<uint64_t()> fn);

  bool enabled() const { return enabled_; }

 private:
  void Run();
  std::string Line(absl::Duration elapsed);

  const std::string label_;
  const std::string unit_;
  const uint64_t total_bytes_;
  const bool enabled_;
  const absl::Time start_;
  std::atomic<uint64_t> items_{0};
  std::atomic<uint64_t> bytes_{0};
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::function<uint64_t()> bytes_fn_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Bytes this process has read so far (/proc/self/io rchar); 0 if unknown.
uint64_t ProcessBytesRead();

// "1.5 MiB"-style size.
std::string HumanBytes(uint64_t bytes);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_PROGRESS_H_
