// Txn log benchmarks with real fdatasync on the local disk.
//
//   txn_log_bench --benchmark_counters_tabular=true
//
// The log directory is created under $TXN_LOG_BENCH_DIR (default /tmp) and
// removed afterwards. Counters: txns/s (records made durable per second),
// fsyncs/s, and txns_per_fsync (the group-commit factor).
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/txn_log.h"

namespace rockeeper::engine {
namespace {

constexpr size_t kPayloadBytes = 100;

std::string MakeTempDir() {
  const char* base = ::getenv("TXN_LOG_BENCH_DIR");
  std::string tmpl =
      std::string(base != nullptr ? base : "/tmp") + "/txn_log_bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  return tmpl;
}

// A log in a fresh directory, removed on destruction.
struct BenchLog {
  explicit BenchLog(bool sync) : dir(MakeTempDir()) {
    TxnLogOptions o;
    o.dir = dir + "/log";
    o.sync = sync;
    auto opened = TxnLog::Open(o);
    if (!opened.ok()) {
      std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
      std::abort();
    }
    log = std::move(*opened);
  }
  ~BenchLog() {
    log.reset();
    std::filesystem::remove_all(dir);
  }
  std::string dir;
  std::unique_ptr<TxnLog> log;
};

void ReportRates(benchmark::State& state, const TxnLog::Stats& st) {
  state.counters["fsyncs"] = benchmark::Counter(static_cast<double>(st.fsyncs),
                                                benchmark::Counter::kIsRate);
  state.counters["txns_per_fsync"] =
      benchmark::Counter(st.fsyncs == 0 ? 0.0
                                        : static_cast<double>(st.records) /
                                              static_cast<double>(st.fsyncs));
}

// Shared by the threads of one run of BM_Append.
std::unique_ptr<BenchLog> g_log;
std::atomic<int64_t> g_next_zxid{1};

// Concurrent Append callers, one record each, group-committed.
void BM_Append(benchmark::State& state) {
  const bool sync = state.range(0) != 0;
  if (state.thread_index() == 0) {
    g_log = std::make_unique<BenchLog>(sync);  // reset by thread 0 below
    g_next_zxid = 1;
  }
  const std::string payload(kPayloadBytes, 'p');
  int64_t appended = 0;
  int64_t rejected = 0;
  for (auto _ : state) {
    for (;;) {
      // zxids must increase in queue order; a caller overtaken by a larger
      // zxid retries with a fresh one (zxids need not be contiguous).
      int64_t zxid = g_next_zxid.fetch_add(1, std::memory_order_relaxed);
      absl::Status s = g_log->log->Append(zxid, payload);
      if (s.ok()) break;
      if (s.code() != absl::StatusCode::kFailedPrecondition) {
        state.SkipWithError(s.ToString().c_str());
        break;
      }
      ++rejected;
    }
    ++appended;
  }
  state.counters["txns"] = benchmark::Counter(static_cast<double>(appended),
                                              benchmark::Counter::kIsRate);
  state.counters["retries"] = static_cast<double>(rejected);
  if (state.thread_index() == 0) {
    // All threads have left the loop (the loop end is a barrier).
    ReportRates(state, g_log->log->stats());
    g_log.reset();
  }
}
BENCHMARK(BM_Append)
    ->ArgName("sync")
    ->Arg(1)
    ->Threads(1)
    ->Threads(4)
    ->Threads(16)
    ->Threads(64)
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK(BM_Append)
    ->ArgName("sync")
    ->Arg(0)
    ->Threads(1)
    ->Threads(4)
    ->UseRealTime()
    ->MinTime(0.5);

// One caller with ready-made batches: one write + one fdatasync per batch.
void BM_AppendBatch(benchmark::State& state) {
  const size_t batch_size = static_cast<size_t>(state.range(0));
  BenchLog bl(/*sync=*/true);
  const std::string payload(kPayloadBytes, 'p');
  std::vector<LogRecord> batch(batch_size);
  int64_t zxid = 0;
  for (auto _ : state) {
    for (LogRecord& r : batch) r = LogRecord{++zxid, payload};
    absl::Status s = bl.log->AppendBatch(batch);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.counters["txns"] =
      benchmark::Counter(static_cast<double>(state.iterations() * batch_size),
                         benchmark::Counter::kIsRate);
  ReportRates(state, bl.log->stats());
}
BENCHMARK(BM_AppendBatch)
    ->ArgName("batch")
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->UseRealTime()
    ->MinTime(0.5);

// Sequential read of 200k records (what recovery and follower sync do).
void BM_Iterate(benchmark::State& state) {
  BenchLog bl(/*sync=*/false);
  const std::string payload(kPayloadBytes, 'p');
  constexpr int kRecords = 200000;
  std::vector<LogRecord> batch;
  for (int64_t z = 1; z <= kRecords; ++z) batch.push_back({z, payload});
  if (!bl.log->AppendBatch(batch).ok()) std::abort();
  int64_t records = 0;
  for (auto _ : state) {
    auto it = bl.log->NewIterator(0);
    for (; it->Valid(); it->Next()) {
      benchmark::DoNotOptimize(it->payload().data());
      ++records;
    }
    if (!it->status().ok()) std::abort();
  }
  state.counters["txns"] = benchmark::Counter(static_cast<double>(records),
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Iterate)->UseRealTime()->MinTime(0.5);

}  // namespace
}  // namespace rockeeper::engine

BENCHMARK_MAIN();
