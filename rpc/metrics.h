// ServerMetrics: the server's counters and histograms, rendered for
// Prometheus (/metrics on the admin HTTP server) and summarised for the
// four-letter words (srvr/mntr latency).
//
// Recording never allocates and never takes a lock: counters are relaxed
// atomics, histograms have fixed buckets chosen at compile time (one atomic
// per bucket), min/max use compare-and-swap. Readers see each value
// atomically but not a consistent cut across values (as Prometheus expects).
//
// Thread safety: every method is thread-safe.
#ifndef ROCKEEPER_RPC_METRICS_H_
#define ROCKEEPER_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "rpc/four_letter_words.h"

namespace rockeeper::rpc {

// One label value of rockeeper_requests_total{op=...}: the service's RPCs,
// named after ZooKeeper's opcodes (both protocols count in the same series).
enum class OpKind : uint8_t {
  kCreateSession,
  kCloseSession,
  kPing,
  kCreate,
  kDelete,
  kSetData,
  kSetAcl,
  kMulti,
  kExists,
  kGetData,
  kGetChildren,
  kGetAcl,
  kMultiRead,
  kGetEphemerals,
  kGetAllChildrenNumber,
  kSync,
  kAuth,
  kWhoAmI,
  kAddWatch,
  kRemoveWatches,
  kSetWatches,
  kCount,  // not an op
};
inline constexpr size_t kOpKinds = static_cast<size_t>(OpKind::kCount);
// "createSession", "create", "getData", ... (ZooKeeper's OpCode names).
absl::string_view OpLabel(OpKind op);

class Counter {
 public:
  void Add(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A histogram with fixed upper bounds (inclusive, ascending) plus +Inf.
// Values are integers in the histogram's base unit (e.g. microseconds).
class Histogram {
 public:
  static constexpr size_t kMaxBounds = 24;
  // Request-latency buckets in microseconds (100 us .. 10 s).
  Histogram();
  // `bounds` must outlive the histogram; at most kMaxBounds entries.
  Histogram(const int64_t* bounds, size_t n);
  void Observe(int64_t v);
  size_t bounds_size() const { return n_; }
  int64_t bound(size_t i) const { return bounds_[i]; }
  // Non-cumulative count of bucket i (i == bounds_size(): +Inf).
  uint64_t bucket(size_t i) const {
    return buckets_[i].load(std::memory_order_relaxed);
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  int64_t sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const int64_t* const bounds_;
  const size_t n_;
  std::array<std::atomic<uint64_t>, kMaxBounds + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> sum_{0};
};

// min/avg/max since the last Reset (srvr's "Latency min/avg/max", srst).
class MinMaxAvg {
 public:
  void Observe(int64_t v);
  void Reset();
  struct Value {
    int64_t count = 0;
    int64_t min = 0;
    int64_t max = 0;
    double avg = 0;
  };
  Value value() const;

 private:
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> min_{INT64_MAX};
  std::atomic<int64_t> max_{0};
};

class ServerMetrics {
 public:
  ServerMetrics();

  // A request finished (arrival to response); `error`: a ZooKeeper error
  // code other than 0, or a transport-level failure.
  void RecordRequest(OpKind op, int64_t latency_us, bool error);
  // A write's txn was made durable and applied (submit to apply).
  void RecordCommit(int64_t latency_us) {
    commit_latency_us_.Observe(latency_us);
  }
  // A group commit of the txn log: `txns` records written with one write and
  // one fdatasync taking `append_us`. For the commit pipeline's per-batch
  // hook; the two histograms are exported once it has been called.
  void RecordLogBatch(int64_t txns, int64_t append_us) {
    fsync_latency_us_.Observe(append_us);
    commit_batch_txns_.Observe(txns);
  }
  // A snapshot (RocksDB checkpoint) took `took_ms`; exported once called.
  void RecordSnapshot(int64_t took_ms) {
    snapshot_duration_us_.Observe(took_ms * 1000);
  }

  // The min/avg/max request latency since the last ResetStats (srvr, mntr).
  MinMaxAvg::Value latency_us() const { return srvr_latency_us_.value(); }
  void ResetStats() { srvr_latency_us_.Reset(); }

  // ZooKeeper wire protocol (clientPort).
  Counter wire_connections_accepted;
  Counter wire_packets_received;
  Counter wire_packets_sent;
  Counter wire_bytes_received;
  Counter wire_bytes_sent;
  Counter wire_bad_frames;           // malformed or oversize: connection closed
  Counter wire_slow_clients_closed;  // output above the bound
  Counter wire_reads_paused;         // a connection stopped reading (saturated)
  Counter wire_watch_events_sent;
  Counter four_letter_words;
  // Sessions.
  Counter sessions_created;
  Counter sessions_closed;
  Counter sessions_expired;
  Counter requests_throttled;  // globalOutstandingLimit
  Counter reads_offloaded;     // moved to a read I/O thread (readIoThreads)
  // Admin HTTP.
  Counter admin_requests;
  Counter admin_bad_requests;  // answered 4xx

  // Prometheus text exposition (version 0.0.4) of every metric, with the
  // gauges from `s` (taken by the caller just before).
  std::string RenderPrometheus(const ServerSnapshot& s) const;

 private:
  std::array<Counter, kOpKinds> requests_;
  std::array<Counter, kOpKinds> errors_;
  std::array<Histogram, kOpKinds> latency_us_;
  Histogram commit_latency_us_;
  Histogram fsync_latency_us_;
  Histogram commit_batch_txns_;
  Histogram snapshot_duration_us_;
  MinMaxAvg srvr_latency_us_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_METRICS_H_
