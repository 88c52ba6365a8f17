// rkbench drivers: N sessions x D outstanding requests over one protocol.
// A driver owns its connections; Run() spreads the sessions over a few
// threads (session i on thread i % threads, connected to server
// i % servers), each thread keeping up to D
// requests in flight per session and refilling as replies arrive.
//
// Thread-safety: Connect/Run/Close are called from one thread, one at a time;
// Run() uses its own worker threads internally. `completed()` may be read
// from any thread while Run() is in progress (progress display).
#ifndef ROCKEEPER_TOOLS_RKBENCH_DRIVER_H_
#define ROCKEEPER_TOOLS_RKBENCH_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/rkbench/histogram.h"
#include "tools/rkbench/workload.h"

namespace rockeeper::rkbench {

inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Error codes beyond ZooKeeper's: a gRPC status (kGrpcErrorBase + code) and a
// lost connection / unanswered request (ZooKeeper's CONNECTIONLOSS, -4).
inline constexpr int kGrpcErrorBase = 1000;
inline constexpr int kConnectionLoss = -4;

// Name of a ZooKeeper error code ("NONODE"), or of a gRPC status.
std::string ErrorName(int code);

// Where a phase's ops come from.
class OpSource {
 public:
  virtual ~OpSource() = default;
  // Fills `op` with the next op of session `s`; false: nothing more.
  virtual bool Next(SessionState* s, Op* op) = 0;
  virtual void Complete(SessionState* s, uint64_t tag, int err) = 0;
};

struct Limits {
  int64_t deadline_ns = 0;  // 0: none
  // Ops to issue in total (shared by all threads); nullptr: no limit.
  std::atomic<int64_t>* budget = nullptr;
  bool record_latency = true;
  // A reply with this code counts as success (setup: NODEEXISTS, -110).
  int ok_code = 0;
  // After the deadline, how long outstanding requests may take to answer.
  int64_t drain_ns = 10'000'000'000;
};

struct PhaseResult {
  uint64_t ops = 0;  // completed requests (errors included)
  std::map<int, uint64_t> errors;
  Histogram latency;
  int64_t elapsed_ns = 0;
  uint64_t errors_total() const {
    uint64_t n = 0;
    for (const auto& [code, count] : errors) n += count;
    return n;
  }
  void Merge(const PhaseResult& other) {
    ops += other.ops;
    for (const auto& [code, count] : other.errors) errors[code] += count;
    latency.Merge(other.latency);
  }
};

struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

struct DriverConfig {
  // Session i talks to servers[i % servers.size()]: a list spreads the
  // sessions round-robin over the members of an ensemble.
  std::vector<Endpoint> servers;
  int sessions = 16;
  int outstanding = 32;
  int threads = 2;
  int session_timeout_ms = 30000;
};

class Driver {
 public:
  virtual ~Driver() = default;
  // Opens every session (ZooKeeper handshake or gRPC Connect).
  virtual absl::Status Connect() = 0;
  // Runs one phase to its end: every session out of ops, the budget spent or
  // the deadline passed, then waits for outstanding replies.
  virtual PhaseResult Run(OpSource& source, const Limits& limits) = 0;
  // Closes the sessions (their ephemerals go away).
  virtual void Close() = 0;
  uint64_t completed() const {
    return completed_.load(std::memory_order_relaxed);
  }

 protected:
  std::atomic<uint64_t> completed_{0};
};

std::unique_ptr<Driver> MakeZkDriver(const DriverConfig& config,
                                     const Workload& workload);
std::unique_ptr<Driver> MakeGrpcDriver(const DriverConfig& config,
                                       const Workload& workload);

}  // namespace rockeeper::rkbench

#endif  // ROCKEEPER_TOOLS_RKBENCH_DRIVER_H_
