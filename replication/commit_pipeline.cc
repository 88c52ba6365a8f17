#include "replication/commit_pipeline.h"

#include <pthread.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "replication/defer_scope.h"

namespace rockeeper::replication {

CommitPipeline::CommitPipeline(engine::TxnLog* log, engine::StateDb* db,
                               engine::Prep* prep,
                               engine::SnapshotStore* snapshots,
                               CommitPipelineOptions options,
                               absl::Mutex* visibility_mu)
    : log_(log),
      db_(db),
      prep_(prep),
      snapshots_(snapshots),
      options_(options),
      visibility_mu_(visibility_mu),
      scheduler_(options.snap_count > 0 ? options.snap_count : 2,
                 std::random_device{}()) {
  log_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rk-txnlog");
    LogLoop();
  });
  apply_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rk-apply");
    ApplyLoop();
  });
  snapshot_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rk-snapshot");
    SnapshotLoop();
  });
}

CommitPipeline::~CommitPipeline() { Stop(); }

void CommitPipeline::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (log_thread_.joinable()) log_thread_.join();
  if (apply_thread_.joinable()) apply_thread_.join();
  {
    absl::MutexLock lock(&mu_);
    snapshot_stop_ = true;  // after a snapshot still due is taken
  }
  if (snapshot_thread_.joinable()) snapshot_thread_.join();
}

absl::Status CommitPipeline::health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

CommitPipeline::Stats CommitPipeline::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void CommitPipeline::Propose(Txn txn, CommitCallback done,
                             std::shared_ptr<ApplyGate> gate) {
  Enqueue({std::move(txn), std::move(done), false, std::move(gate)});
}

void CommitPipeline::ProposeNoop(CommitCallback done) {
  Enqueue({Txn(), std::move(done), true, nullptr});
}

void CommitPipeline::Enqueue(Pending pending) {
  absl::Status refused;
  uint64_t claim = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!health_.ok()) {
      refused = health_;
    } else if (stopping_) {
      refused = absl::UnavailableError("commit pipeline stopped");
    } else {
      to_log_.push_back(std::move(pending));
      if (log_claimed_ && claimer_ == std::this_thread::get_id()) {
        ++claimed_txns_;  // joins the claimer's batch
        return;
      }
      // Idle throughout: this thread logs it when its scope closes (the
      // log thread's wait condition stays false unless others queue).
      const bool idle = options_.log_on_proposing_thread &&
                        DeferScope::Active() && to_log_.size() == 1 &&
                        !log_claimed_ && !logging_ && !applying_ &&
                        to_apply_.empty() && !checkpoint_waiting_;
      if (!idle) return;
      log_claimed_ = true;
      claimer_ = std::this_thread::get_id();
      claimed_txns_ = 1;
      claim = ++claim_number_;
    }
  }
  if (claim != 0) {
    DeferScope::DeferLast([this, claim] { LogOnProposingThread(claim); });
    return;
  }
  pending.done(refused, {}, pending.noop ? nullptr : &pending.txn,
               CommitNote{});
}

void CommitPipeline::Poison(const absl::Status& error) {
  {
    absl::MutexLock lock(&mu_);
    if (!health_.ok()) return;
    health_ = error;
  }
  std::fprintf(stderr, "ERROR commit pipeline stopped: %s\n",
               error.ToString().c_str());
  // Proposals after the failure will never commit: forget their overlay.
  prep_->Reset();
}

void CommitPipeline::LogLoop() {
  std::vector<Pending> batch;
  std::vector<std::string> payloads;
  std::vector<engine::LogRecord> records;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CommitPipeline* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return !p->logging_ &&
                   (p->to_log_.size() > p->ClaimedTxns() || p->stopping_);
          },
          this));
      if (to_log_.empty()) {
        log_done_ = true;
        return;
      }
      TakeLogBatch(&batch);
    }
    LogBatch(batch, payloads, records);
  }
}

void CommitPipeline::TakeLogBatch(std::vector<Pending>* batch) {
  while (!to_log_.empty() && batch->size() < options_.max_batch_txns) {
    batch->push_back(std::move(to_log_.front()));
    to_log_.pop_front();
  }
  logging_ = true;
  log_claimed_ = false;
  claimed_txns_ = 0;
}

void CommitPipeline::LogOnProposingThread(uint64_t claim) {
  std::vector<Pending> batch;
  std::vector<std::string> payloads;
  std::vector<engine::LogRecord> records;
  {
    absl::MutexLock lock(&mu_);
    // Taken by the log thread (woken by another thread's txn), or a later
    // claim: nothing left for this one.
    if (!log_claimed_ || claim_number_ != claim) return;
    if (logging_) {
      // The log thread is writing: it takes these next.
      log_claimed_ = false;
      claimed_txns_ = 0;
      return;
    }
    TakeLogBatch(&batch);
    ++stats_.proposer_logs;
  }
  LogBatch(batch, payloads, records);
}

void CommitPipeline::LogBatch(std::vector<Pending>& batch,
                              std::vector<std::string>& payloads,
                              std::vector<engine::LogRecord>& records) {
  absl::Status status = health();
  if (status.ok()) {
    payloads.clear();
    records.clear();
    for (const Pending& p : batch) {
      if (!p.noop) payloads.push_back(p.txn.SerializeAsString());
    }
    size_t next = 0;
    for (const Pending& p : batch) {
      if (!p.noop) records.push_back({p.txn.header().zxid(), payloads[next++]});
    }
    if (!records.empty()) {
      const absl::Time t0 = absl::Now();
      status = log_->AppendBatch(records);
      if (status.ok() && options_.on_log_batch) {
        options_.on_log_batch(records.size(),
                              absl::ToInt64Microseconds(absl::Now() - t0));
      }
    }
    if (!status.ok()) Poison(status);
  }
  if (!status.ok()) {
    // Before the log is released: later batches fail after this one.
    for (Pending& p : batch) {
      p.done(status, {}, p.noop ? nullptr : &p.txn, CommitNote{});
    }
    absl::MutexLock lock(&mu_);
    ++stats_.log_batches;
    ReleaseLog();
    return;
  }
  if (TakeApplyInlineOrHandOff(batch)) {
    // What the callbacks defer runs when the scope closes: after the
    // batch is applied and applying_ is clear.
    DeferScope scope;
    ApplyBatch(absl::MakeSpan(batch), /*lone=*/true);
    absl::MutexLock lock(&mu_);
    applying_ = false;
  }
}

bool CommitPipeline::TakeApplyInlineOrHandOff(std::vector<Pending>& batch) {
  // Only when nothing else waits: the log thread then has nothing to write
  // while it applies, and nothing applies before or beside this batch. A
  // closed gate may hold the applier for seconds, which the log must not.
  const bool small = batch.size() <= options_.max_inline_apply_txns;
  bool gated = false;
  for (const Pending& p : batch) {
    if (p.gate != nullptr && !p.gate->is_open()) gated = true;
  }
  absl::MutexLock lock(&mu_);
  ++stats_.log_batches;
  ReleaseLog();
  if (!small || gated || applying_ || checkpoint_waiting_ ||
      !to_apply_.empty() || !to_log_.empty()) {
    for (Pending& p : batch) to_apply_.push_back(std::move(p));
    return false;
  }
  applying_ = true;
  ++stats_.inline_applies;
  return true;
}

void CommitPipeline::ApplyLoop() {
  std::vector<Pending> batch;
  for (;;) {
    batch.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CommitPipeline* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return !p->applying_ && !p->checkpoint_waiting_ &&
                   (!p->to_apply_.empty() || p->log_done_);
          },
          this));
      if (to_apply_.empty()) return;  // log_done_
      while (!to_apply_.empty() && batch.size() < options_.max_batch_txns) {
        batch.push_back(std::move(to_apply_.front()));
        to_apply_.pop_front();
      }
      applying_ = true;
    }
    ApplyGated(batch);
    absl::MutexLock lock(&mu_);
    applying_ = false;
  }
}

void CommitPipeline::ApplyGated(std::vector<Pending>& batch) {
  size_t begin = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const std::shared_ptr<ApplyGate>& gate = batch[i].gate;
    if (gate == nullptr || gate->is_open()) continue;
    // The reads the gate waits for follow txns before it: apply those and
    // run their callbacks first (the session's own ones urgent), then wait.
    const int64_t session_id = batch[i].txn.header().session_id();
    for (size_t j = begin; j < i; ++j) {
      if (!batch[j].noop && batch[j].txn.header().session_id() == session_id) {
        batch[j].urgent = true;
      }
    }
    if (i > begin) {
      ApplyGathered(absl::MakeSpan(batch).subspan(begin, i - begin));
    }
    begin = i;
    const bool opened = gate->WaitOpen(options_.gate_timeout);
    {
      absl::MutexLock lock(&mu_);
      ++stats_.gate_waits;
      if (!opened) ++stats_.gate_timeouts;
    }
    if (!opened) {
      std::fprintf(stderr,
                   "WARN apply of txn 0x%llx waited %s for its session's "
                   "earlier reads; applying it anyway\n",
                   static_cast<unsigned long long>(
                       batch[i].noop ? 0 : batch[i].txn.header().zxid()),
                   absl::FormatDuration(options_.gate_timeout).c_str());
    }
  }
  ApplyGathered(absl::MakeSpan(batch).subspan(begin));
}

void CommitPipeline::ApplyGathered(absl::Span<Pending> batch) {
  DeferScope scope;
  ApplyBatch(batch, /*lone=*/false, /*gathered=*/true);
}

void CommitPipeline::ApplyBatch(absl::Span<Pending> batch, bool lone,
                                bool gathered) {
  std::vector<Txn> txns;
  txns.reserve(batch.size());
  for (Pending& p : batch) {
    if (!p.noop) txns.push_back(std::move(p.txn));
  }
  std::vector<WatchTrigger> triggers;
  if (visibility_mu_ != nullptr) visibility_mu_->Lock();
  struct Unlock {
    absl::Mutex* mu;
    ~Unlock() {
      if (mu != nullptr) mu->Unlock();
    }
  } unlock{visibility_mu_};
  // Durable txns are applied even after a later append failed: they are
  // acknowledged by the log and recovery would apply them anyway.
  absl::Status status =
      txns.empty() ? absl::OkStatus() : db_->Apply(txns, &triggers);
  if (!status.ok()) {
    Poison(status);
    size_t next = 0;
    for (Pending& p : batch) {
      p.done(status, {}, p.noop ? nullptr : &txns[next++], CommitNote{});
    }
    return;
  }
  if (!txns.empty()) prep_->OnApplied(txns.back().header().zxid());
  {
    absl::MutexLock lock(&mu_);
    stats_.txns_applied += txns.size();
    if (!txns.empty()) ++stats_.apply_batches;
  }
  absl::flat_hash_map<int64_t, std::vector<WatchTrigger>> by_zxid;
  for (WatchTrigger& t : triggers) by_zxid[t.zxid].push_back(std::move(t));
  static const std::vector<WatchTrigger> kNone;
  size_t next = 0;
  for (Pending& p : batch) {
    if (p.noop) {
      p.done(absl::OkStatus(), kNone, nullptr,
             CommitNote{p.urgent, lone, gathered});
      continue;
    }
    Txn& txn = txns[next++];
    auto it = by_zxid.find(txn.header().zxid());
    p.done(absl::OkStatus(), it == by_zxid.end() ? kNone : it->second, &txn,
           CommitNote{p.urgent, lone, gathered});
  }
  if (unlock.mu != nullptr) {
    unlock.mu->Unlock();
    unlock.mu = nullptr;
  }
  MaybeSnapshot(txns.size());
}

void CommitPipeline::MaybeSnapshot(size_t applied) {
  if (snapshots_ == nullptr || options_.snap_count <= 0) return;
  if (!scheduler_.OnApplied(static_cast<int64_t>(applied))) return;
  absl::MutexLock lock(&mu_);
  snapshot_due_ = true;
}

void CommitPipeline::SnapshotLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CommitPipeline* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->snapshot_due_ || p->snapshot_stop_;
          },
          this));
      if (!snapshot_due_) return;
      snapshot_due_ = false;
      if (!health_.ok()) continue;
    }
    TakeSnapshot();
  }
}

void CommitPipeline::TakeSnapshot() {
  const absl::Time start = absl::Now();
  // Most of a checkpoint's time is its flush of the memtables: do it while
  // applies go on, so that the one below finds little left to flush.
  if (absl::Status flushed = db_->Flush(); !flushed.ok()) {
    std::fprintf(stderr, "WARN flush before snapshot: %s\n",
                 flushed.ToString().c_str());
  }
  {
    absl::MutexLock lock(&mu_);
    checkpoint_waiting_ = true;
    mu_.Await(absl::Condition(
        +[](CommitPipeline* p)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return !p->applying_; },
        this));
    checkpoint_waiting_ = false;
    applying_ = true;
  }
  // Between two batches: the checkpoint is exact.
  const absl::Time paused = absl::Now();
  absl::StatusOr<engine::SnapshotStore::Pending> pending =
      snapshots_->Checkpoint(*db_);
  const int64_t paused_ms = absl::ToInt64Milliseconds(absl::Now() - paused);
  {
    absl::MutexLock lock(&mu_);
    applying_ = false;
  }
  absl::StatusOr<engine::SnapshotInfo> snap =
      pending.ok() ? snapshots_->Finish(*pending) : pending.status();
  if (!snap.ok()) {
    std::fprintf(stderr, "WARN snapshot failed: %s\n",
                 snap.status().ToString().c_str());
    return;
  }
  const int64_t took_ms = absl::ToInt64Milliseconds(absl::Now() - start);
  engine::LogSnapshotTaken(*snap, took_ms, paused_ms);
  if (options_.on_snapshot) options_.on_snapshot(*snap, took_ms);
  log_->RequestRoll();  // as ZooKeeper: a log file per snapshot interval
  {
    absl::MutexLock lock(&mu_);
    ++stats_.snapshots;
  }
  absl::StatusOr<int64_t> oldest =
      snapshots_->Purge(options_.snap_retain_count);
  if (oldest.ok()) {
    absl::StatusOr<int> purged = log_->PurgeBefore(*oldest + 1);
    if (!purged.ok()) {
      std::fprintf(stderr, "WARN log purge failed: %s\n",
                   purged.status().ToString().c_str());
    }
  }
}

}  // namespace rockeeper::replication
