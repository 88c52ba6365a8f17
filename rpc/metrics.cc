#include "rpc/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rockeeper::rpc {
namespace {

// Request and commit latency, microseconds: 100 us .. 10 s.
constexpr int64_t kLatencyBoundsUs[] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

// Txns per group commit: 1 .. 1000 (CommitPipelineOptions::max_batch_txns).
constexpr int64_t kBatchBounds[] = {1,  2,   4,   8,   16,  32,
                                    64, 128, 256, 512, 1000};

constexpr absl::string_view kOpLabels[kOpKinds] = {
    "createSession", "closeSession",  "ping",
    "create",        "delete",        "setData",
    "setACL",        "multi",         "exists",
    "getData",       "getChildren",   "getACL",
    "multiRead",     "getEphemerals", "getAllChildrenNumber",
    "sync",          "auth",          "whoAmI",
    "addWatch",      "removeWatches", "setWatches"};

// Prometheus renders floats; bounds and sums are in base units (us).
std::string Seconds(int64_t us) {
  return absl::StrFormat("%g", static_cast<double>(us) / 1e6);
}

void Header(std::string* out, absl::string_view name, absl::string_view type,
            absl::string_view help) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type,
                  "\n");
}

void Sample(std::string* out, absl::string_view name, absl::string_view labels,
            const std::string& value) {
  absl::StrAppend(out, name, labels.empty() ? "" : "{", labels,
                  labels.empty() ? "" : "}", " ", value, "\n");
}

void Gauge(std::string* out, absl::string_view name, absl::string_view help,
           int64_t value) {
  Header(out, name, "gauge", help);
  Sample(out, name, "", absl::StrCat(value));
}

void CounterMetric(std::string* out, absl::string_view name,
                   absl::string_view help, uint64_t value) {
  Header(out, name, "counter", help);
  Sample(out, name, "", absl::StrCat(value));
}

// One histogram series in seconds (plain numbers when !seconds); `labels`
// without braces (may be empty).
void HistogramSeries(std::string* out, absl::string_view name,
                     absl::string_view labels, const Histogram& h,
                     bool seconds = true) {
  auto fmt = [seconds](int64_t v) {
    return seconds ? Seconds(v) : absl::StrCat(v);
  };
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds_size(); ++i) {
    cumulative += h.bucket(i);
    Sample(out, absl::StrCat(name, "_bucket"),
           absl::StrCat(labels, sep, "le=\"", fmt(h.bound(i)), "\""),
           absl::StrCat(cumulative));
  }
  cumulative += h.bucket(h.bounds_size());
  Sample(out, absl::StrCat(name, "_bucket"),
         absl::StrCat(labels, sep, "le=\"+Inf\""), absl::StrCat(cumulative));
  Sample(out, absl::StrCat(name, "_sum"), labels, fmt(h.sum()));
  // _count equals the +Inf bucket (read together above).
  Sample(out, absl::StrCat(name, "_count"), labels, absl::StrCat(cumulative));
}

}  // namespace

absl::string_view OpLabel(OpKind op) {
  const size_t i = static_cast<size_t>(op);
  return i < kOpKinds ? kOpLabels[i] : "unknown";
}

Histogram::Histogram()
    : Histogram(kLatencyBoundsUs, sizeof(kLatencyBoundsUs) / sizeof(int64_t)) {}

Histogram::Histogram(const int64_t* bounds, size_t n)
    : bounds_(bounds), n_(n < kMaxBounds ? n : kMaxBounds) {}

void Histogram::Observe(int64_t v) {
  // Linear scan: at most 24 well-predicted compares, no allocation.
  size_t i = 0;
  while (i < n_ && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

void MinMaxAvg::Observe(int64_t v) {
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  int64_t cur = min_.load(std::memory_order_relaxed);
  while (v < cur &&
         !min_.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
  cur = max_.load(std::memory_order_relaxed);
  while (v > cur &&
         !max_.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

void MinMaxAvg::Reset() {
  count_.store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  min_.store(INT64_MAX, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

MinMaxAvg::Value MinMaxAvg::value() const {
  Value v;
  v.count = count_.load(std::memory_order_relaxed);
  const int64_t sum = sum_.load(std::memory_order_relaxed);
  const int64_t min = min_.load(std::memory_order_relaxed);
  v.min = min == INT64_MAX ? 0 : min;
  v.max = max_.load(std::memory_order_relaxed);
  v.avg = v.count == 0
              ? 0.0
              : static_cast<double>(sum) / static_cast<double>(v.count);
  return v;
}

ServerMetrics::ServerMetrics()
    : commit_batch_txns_(kBatchBounds, sizeof(kBatchBounds) / sizeof(int64_t)) {
}

void ServerMetrics::RecordRequest(OpKind op, int64_t latency_us, bool error) {
  const size_t i = static_cast<size_t>(op);
  if (i >= kOpKinds) return;
  requests_[i].Add();
  if (error) errors_[i].Add();
  latency_us_[i].Observe(latency_us);
  srvr_latency_us_.Observe(latency_us);
}

std::string ServerMetrics::RenderPrometheus(const ServerSnapshot& s) const {
  std::string out;
  out.reserve(64 << 10);
  Header(&out, "rockeeper_build_info", "gauge",
         "Version of this server (value is always 1).");
  Sample(&out, "rockeeper_build_info",
         absl::StrCat("version=\"0.1.0\",zookeeper_version=\"3.8.0\""), "1");
  Header(&out, "rockeeper_server_state", "gauge",
         "1 for the server's current role (standalone, leader, follower, "
         "observer, looking).");
  for (absl::string_view state :
       {"standalone", "leader", "follower", "observer", "looking"}) {
    Sample(&out, "rockeeper_server_state",
           absl::StrCat("state=\"", state, "\""), s.mode == state ? "1" : "0");
  }
  Gauge(&out, "rockeeper_healthy",
        "1 while the write path accepts writes, 0 once it failed.",
        s.healthy ? 1 : 0);
  Gauge(&out, "rockeeper_uptime_seconds", "Seconds since the server started.",
        s.uptime_ms / 1000);
  Gauge(&out, "rockeeper_last_zxid", "Zxid of the last applied txn.", s.zxid);
  if (s.quorum_size > 0) {
    Gauge(&out, "rockeeper_quorum_size",
          "Voting members of the ensemble (mntr zk_quorum_size).",
          s.quorum_size);
  }
  if (s.mode == "leader") {
    Gauge(&out, "rockeeper_learners",
          "Leader: learner connections, syncing or not (mntr zk_learners).",
          s.learners);
    Gauge(&out, "rockeeper_synced_followers",
          "Leader: followers in sync (mntr zk_synced_followers).",
          s.synced_followers);
    Gauge(&out, "rockeeper_synced_observers",
          "Leader: observers in sync (mntr zk_synced_observers).",
          s.synced_observers);
  }

  Header(
      &out, "rockeeper_requests_total", "counter",
      "Client requests completed, by ZooKeeper op (wire protocol and gRPC).");
  for (size_t i = 0; i < kOpKinds; ++i) {
    Sample(&out, "rockeeper_requests_total",
           absl::StrCat("op=\"", kOpLabels[i], "\""),
           absl::StrCat(requests_[i].value()));
  }
  Header(&out, "rockeeper_request_errors_total", "counter",
         "Client requests answered with a ZooKeeper error code, by op.");
  for (size_t i = 0; i < kOpKinds; ++i) {
    Sample(&out, "rockeeper_request_errors_total",
           absl::StrCat("op=\"", kOpLabels[i], "\""),
           absl::StrCat(errors_[i].value()));
  }
  Header(&out, "rockeeper_request_duration_seconds", "histogram",
         "Request latency from arrival to response, by op.");
  for (size_t i = 0; i < kOpKinds; ++i) {
    HistogramSeries(&out, "rockeeper_request_duration_seconds",
                    absl::StrCat("op=\"", kOpLabels[i], "\""), latency_us_[i]);
  }
  Header(&out, "rockeeper_commit_duration_seconds", "histogram",
         "Write path latency: submit to durable (fsync) and applied.");
  HistogramSeries(&out, "rockeeper_commit_duration_seconds", "",
                  commit_latency_us_);
  if (commit_batch_txns_.count() > 0) {
    Header(&out, "rockeeper_fsync_duration_seconds", "histogram",
           "Txn log group commit: one write and one fdatasync.");
    HistogramSeries(&out, "rockeeper_fsync_duration_seconds", "",
                    fsync_latency_us_);
    Header(&out, "rockeeper_commit_batch_size", "histogram",
           "Txns per txn log group commit.");
    HistogramSeries(&out, "rockeeper_commit_batch_size", "", commit_batch_txns_,
                    /*seconds=*/false);
  }
  CounterMetric(&out, "rockeeper_txns_applied_total",
                "Txns written to the log and applied.",
                static_cast<uint64_t>(s.txns_applied));
  CounterMetric(&out, "rockeeper_log_batches_total",
                "Group commits of the txn log (one write and one fsync each).",
                static_cast<uint64_t>(s.log_batches));
  CounterMetric(&out, "rockeeper_apply_batches_total",
                "State DB write batches applied.",
                static_cast<uint64_t>(s.apply_batches));
  CounterMetric(&out, "rockeeper_apply_gate_waits_total",
                "Times the apply thread waited for a session's earlier reads "
                "before applying a write that passed them.",
                static_cast<uint64_t>(s.apply_gate_waits));
  CounterMetric(&out, "rockeeper_apply_gate_timeouts_total",
                "Of those waits, the ones that gave up after 5 s.",
                static_cast<uint64_t>(s.apply_gate_timeouts));
  CounterMetric(&out, "rockeeper_snapshots_total", "Snapshots taken.",
                static_cast<uint64_t>(s.snapshots_taken));
  if (snapshot_duration_us_.count() > 0) {
    Header(&out, "rockeeper_snapshot_duration_seconds", "histogram",
           "Snapshot time: flush, checkpoint of the state DB and its check.");
    HistogramSeries(&out, "rockeeper_snapshot_duration_seconds", "",
                    snapshot_duration_us_);
  }
  CounterMetric(&out, "rockeeper_children_cache_hits_total",
                "Child lists served from the children cache.",
                static_cast<uint64_t>(s.children_cache_hits));
  CounterMetric(&out, "rockeeper_children_cache_misses_total",
                "Child lists read by a prefix scan of the state DB.",
                static_cast<uint64_t>(s.children_cache_misses));
  Gauge(&out, "rockeeper_children_cache_bytes",
        "Estimated memory of the cached child lists.", s.children_cache_bytes);
  Gauge(&out, "rockeeper_row_cache_bytes",
        "Bytes held by the state DB's row cache of znode records.",
        s.row_cache_bytes);
  CounterMetric(&out, "rockeeper_znode_cache_hits_total",
                "Znode reads served from the znode cache.",
                static_cast<uint64_t>(s.znode_cache_hits));
  CounterMetric(&out, "rockeeper_znode_cache_misses_total",
                "Znode reads that went to RocksDB.",
                static_cast<uint64_t>(s.znode_cache_misses));
  Gauge(&out, "rockeeper_znode_cache_bytes",
        "Estimated memory of the cached znodes.", s.znode_cache_bytes);

  Gauge(&out, "rockeeper_znodes", "Znodes in the tree.", s.znode_count);
  Gauge(&out, "rockeeper_watches", "Watches registered.", s.watch_count);
  Gauge(&out, "rockeeper_watched_paths", "Distinct watched paths.",
        s.watched_paths);
  Gauge(&out, "rockeeper_watching_sessions", "Sessions with a watch.",
        s.watching_sessions);
  Gauge(&out, "rockeeper_sessions", "Live sessions.", s.sessions);
  Gauge(&out, "rockeeper_ephemerals", "Ephemeral znodes.", s.ephemerals_count);
  Gauge(&out, "rockeeper_connections",
        "Open ZooKeeper wire protocol connections.", s.connections);
  Gauge(&out, "rockeeper_outstanding_requests", "Requests being handled now.",
        s.outstanding);
  Gauge(&out, "rockeeper_data_dir_bytes", "Bytes under dataDir.",
        s.data_dir_bytes);
  Gauge(&out, "rockeeper_log_dir_bytes", "Bytes of txn log segments.",
        s.log_dir_bytes);
  Gauge(&out, "rockeeper_snapshot_dir_bytes", "Bytes of snapshots.",
        s.snapshot_dir_bytes);
  Gauge(&out, "rockeeper_open_fds", "Open file descriptors.", s.open_fds);
  Gauge(&out, "rockeeper_max_fds", "File descriptor limit.", s.max_fds);

  CounterMetric(&out, "rockeeper_wire_connections_accepted_total",
                "ZooKeeper protocol connections accepted.",
                wire_connections_accepted.value());
  CounterMetric(&out, "rockeeper_wire_packets_received_total",
                "ZooKeeper protocol frames read.",
                wire_packets_received.value());
  CounterMetric(&out, "rockeeper_wire_packets_sent_total",
                "ZooKeeper protocol frames written (replies and events).",
                wire_packets_sent.value());
  CounterMetric(&out, "rockeeper_wire_received_bytes_total",
                "Bytes read on clientPort.", wire_bytes_received.value());
  CounterMetric(&out, "rockeeper_wire_sent_bytes_total",
                "Bytes written on clientPort.", wire_bytes_sent.value());
  CounterMetric(&out, "rockeeper_wire_bad_frames_total",
                "Connections closed for a malformed or oversize frame.",
                wire_bad_frames.value());
  CounterMetric(&out, "rockeeper_wire_slow_clients_closed_total",
                "Connections closed because the client did not read.",
                wire_slow_clients_closed.value());
  CounterMetric(&out, "rockeeper_wire_reads_paused_total",
                "Times a clientPort connection stopped reading because "
                "globalOutstandingLimit requests were in flight.",
                wire_reads_paused.value());
  CounterMetric(&out, "rockeeper_watch_events_sent_total",
                "Watch notifications written to wire protocol clients.",
                wire_watch_events_sent.value());
  CounterMetric(&out, "rockeeper_four_letter_words_total",
                "Four-letter-word commands answered.",
                four_letter_words.value());
  CounterMetric(&out, "rockeeper_sessions_created_total", "Sessions created.",
                sessions_created.value());
  CounterMetric(&out, "rockeeper_sessions_closed_total",
                "Sessions closed by their client.", sessions_closed.value());
  CounterMetric(&out, "rockeeper_sessions_expired_total", "Sessions expired.",
                sessions_expired.value());
  CounterMetric(&out, "rockeeper_requests_throttled_total",
                "Requests refused by globalOutstandingLimit.",
                requests_throttled.value());
  CounterMetric(&out, "rockeeper_reads_offloaded_total",
                "Reads whose znode was in no cache, served by a read I/O "
                "thread (readIoThreads) instead of the thread they came on.",
                reads_offloaded.value());
  CounterMetric(&out, "rockeeper_admin_http_requests_total",
                "Admin HTTP requests answered.", admin_requests.value());
  CounterMetric(&out, "rockeeper_admin_http_bad_requests_total",
                "Admin HTTP requests answered with a 4xx status.",
                admin_bad_requests.value());
  return out;
}

}  // namespace rockeeper::rpc
