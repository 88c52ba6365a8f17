// CommitPipeline: the standalone write path after Prep (a quorum of one).
//
//   Propose(txn) --> [log thread]  AppendBatch: one write + one fdatasync for
//                                   every txn that arrived during the previous
//                                   sync (group commit)
//                --> [apply thread] StateDb::Apply of every durable txn in one
//                                   WriteBatch, Prep::OnApplied
//                --> done(status, watch triggers) per txn, in zxid order
//
// When a small durable batch finds nothing else queued and the apply thread
// idle, the log thread applies it itself: a lone session's write then costs
// no wake-up of a second thread (a cross-CPU wake is 30-50 µs on a VM).
//
// A txn proposed inside a DeferScope (replication/defer_scope.h: a wire
// thread's epoll round, a batch of completions) while the whole pipeline is
// idle is logged by the proposing thread instead, when its scope closes
// (after the scope's other deferred work, such as replies): the txns
// proposed meanwhile, by any thread, join that write, and a small batch is
// then applied there too, so a lone write wakes no other thread at all. The
// log thread leaves the queue alone until that thread is done.
//
// Snapshots (every snap_count txns) are taken by a third thread: it flushes
// the memtables while applies go on, then holds applies off only for the
// checkpoint itself (exact: between two batches, `applying_` held), and
// checks, names and purges after. The log never waits for a snapshot.
// Under load the two stages overlap as drawn. One batch applies at a time
// (`applying_`), in zxid order either way.
//
// Under ZAB the same two stages remain; between them the leader waits for a
// quorum of ACKs (the log thread's durability is this server's ACK).
//
// Failure: a failed append or apply poisons the pipeline: the txn and every
// later one complete with the error, Prep's overlay is reset, and later
// Propose calls fail at once (the server must restart; recovery replays the
// log). Acknowledged (done with OK) txns are durable in the log.
//
// Thread safety: Propose may be called from any thread, but the caller must
// serialize Prep::Prepare + Propose so that txns arrive in zxid order. A
// thread that proposes inside a DeferScope must not wait for the txn's
// completion before that scope closes (it may be the one to log it): open a
// scope of its own around the Propose, closed before the wait. The pipeline
// must outlive the scopes of the threads that propose into it (a server
// stops its front ends before its replica).
#ifndef ROCKEEPER_REPLICATION_COMMIT_PIPELINE_H_
#define ROCKEEPER_REPLICATION_COMMIT_PIPELINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "engine/prep.h"
#include "engine/snapshot.h"
#include "engine/state_db.h"
#include "engine/txn_log.h"
#include "replication/apply_gate.h"

namespace rockeeper::replication {

using engine::Txn;
using engine::WatchTrigger;

// How a txn's completion is delivered (see CommitCallback).
struct CommitNote {
  // The apply thread is about to wait for an ApplyGate of a later txn of
  // the same session, whose reads follow this txn's completion: hand the
  // completion on ahead of other work.
  bool urgent = false;
  // The log thread applied this txn's batch itself (a lone batch, see the
  // file comment) and calls back inside a DeferScope (defer_scope.h) that
  // closes once the batch is applied and visibility_mu released: what the
  // callback defers runs there, on the log thread, before it logs again, so
  // a lone write can be answered without waking another thread. Defer only
  // short work.
  bool lone = false;
  // The apply thread calls back inside a DeferScope that closes right after
  // this batch's callbacks (visibility_mu released by then): what the
  // callback defers runs there, before the apply thread waits for a gate
  // or takes the next batch.
  bool gathered = false;
};

// Called once per proposed txn, on the applying thread (the apply thread, or
// the log thread for a batch it applies itself), after it is applied
// (status OK) or failed. `triggers` are the watch events it fired. `txn` is
// the proposed txn, handed back so that the caller need not keep a copy
// (it may move from it), also when it failed; null for ProposeNoop.
using CommitCallback = std::function<void(
    const absl::Status& status, const std::vector<WatchTrigger>& triggers,
    Txn* txn, CommitNote note)>;

struct CommitPipelineOptions {
  // Most txns written with one fsync / applied in one WriteBatch.
  // Default: 1000.
  size_t max_batch_txns = 1000;
  // Take a snapshot every snap_count applied txns (0 = never). Default:
  // 100000, as ZooKeeper's snapCount.
  int64_t snap_count = 100000;
  // Largest durable batch the log thread applies itself when nothing else
  // is queued and the apply thread is idle (0 = always hand over to the
  // apply thread). Default: 16 txns.
  size_t max_inline_apply_txns = 16;
  // Whether a txn proposed inside a DeferScope into an idle pipeline is
  // logged by the proposing thread when its scope closes (see the file
  // comment), instead of waking the log thread. Default: true.
  bool log_on_proposing_thread = true;
  // Snapshots kept by the purge after each snapshot (minimum 3). Default: 3.
  int snap_retain_count = 3;
  // Called on the log thread after each group commit with the txns written
  // and the time AppendBatch took (write + fdatasync), in µs. Must be quick
  // and thread-safe. Default: none.
  std::function<void(size_t txns, int64_t append_us)> on_log_batch;
  // Called on the snapshot thread after each snapshot with what was taken
  // and the time it took (flush, checkpoint and check), in ms. Must be
  // quick and thread-safe. Default: none.
  std::function<void(const engine::SnapshotInfo& snapshot, int64_t took_ms)>
      on_snapshot;
  // Longest wait for a closed ApplyGate before the txn is applied anyway
  // (with a warning): the reads it waits for are in-memory work, so only a
  // front end that stopped serving them can keep it closed this long.
  // Default: 5 s.
  absl::Duration gate_timeout = absl::Seconds(5);
};

class CommitPipeline {
 public:
  // All pointers must outlive the pipeline. `snapshots` may be null.
  // `visibility_mu`, if not null, is held exclusively from the start of each
  // Apply until the batch's callbacks have run: readers holding it shared
  // never see a txn's effects without the callbacks' (watch events') effects.
  CommitPipeline(engine::TxnLog* log, engine::StateDb* db, engine::Prep* prep,
                 engine::SnapshotStore* snapshots,
                 CommitPipelineOptions options,
                 absl::Mutex* visibility_mu = nullptr);
  // Stops (see Stop).
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Queues `txn` (zxid greater than every earlier one). `done` runs later on
  // the applying thread, or at once if the pipeline is stopped or poisoned.
  // With a `gate`, the txn is logged at once but applied only once the gate
  // is open: the txns before it are applied and their callbacks run first
  // (outside visibility_mu), and the apply thread waits for the gate.
  void Propose(Txn txn, CommitCallback done,
               std::shared_ptr<ApplyGate> gate = nullptr);
  // Queues a completion without a txn (a request that Prep refused): `done`
  // runs after every txn proposed before it, so a session's requests
  // complete in the order they were submitted.
  void ProposeNoop(CommitCallback done);

  // Completes everything already proposed, then stops both threads.
  void Stop();

  // OK, or the error that poisoned the pipeline.
  absl::Status health() const;

  struct Stats {
    uint64_t txns_applied = 0;
    uint64_t log_batches = 0;    // = fsync groups
    uint64_t apply_batches = 0;  // = WriteBatches
    uint64_t snapshots = 0;
    uint64_t gate_waits = 0;      // closed gates the apply thread waited for
    uint64_t gate_timeouts = 0;   // of those, applied after gate_timeout
    uint64_t inline_applies = 0;  // batches the log thread applied itself
    // Log batches written by a proposing thread (they count in log_batches,
    // and in inline_applies when that thread applied them too).
    uint64_t proposer_logs = 0;
  };
  Stats stats() const;

 private:
  struct Pending {
    Txn txn;
    CommitCallback done;
    bool noop = false;
    std::shared_ptr<ApplyGate> gate;
    bool urgent = false;  // see CommitNote
  };
  void Enqueue(Pending pending);
  void LogLoop();
  // On a proposing thread, for its claim number `claim`: logs what is
  // queued, as the log thread would, unless the log thread took it (or
  // is writing: then it takes it next).
  void LogOnProposingThread(uint64_t claim);
  // Takes up to max_batch_txns queued txns for the thread that will log
  // them (sets logging_); drops any claim (its txns are in the batch).
  void TakeLogBatch(std::vector<Pending>* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `batch` (taken from to_log_ by the thread holding the log) to the
  // log, then applies it on this thread or hands it to the apply thread;
  // releases the log in the same critical section as that hand-off, so that
  // batches are applied in log order.
  void LogBatch(std::vector<Pending>& batch, std::vector<std::string>& payloads,
                std::vector<engine::LogRecord>& records)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ApplyLoop();
  // True if this thread applies `batch` itself (see the file comment): it
  // then holds applying_ and must clear it. Else `batch` is queued for the
  // apply thread. Either way counts the log batch and releases the log.
  bool TakeApplyInlineOrHandOff(std::vector<Pending>& batch)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseLog() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { logging_ = false; }
  // Queued txns that do not wake the log thread: the claimer's.
  size_t ClaimedTxns() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return log_claimed_ ? claimed_txns_ : 0;
  }
  // Applies `batch` in segments that end before each closed gate.
  void ApplyGated(std::vector<Pending>& batch);
  // `lone`: applied by the log thread (see CommitNote); `gathered`: the
  // caller opened a DeferScope around this call (CommitNote::gathered).
  void ApplyBatch(absl::Span<Pending> batch, bool lone = false,
                  bool gathered = false);
  // ApplyBatch(batch, false, true) inside a DeferScope of its own.
  void ApplyGathered(absl::Span<Pending> batch);
  void Poison(const absl::Status& error) ABSL_LOCKS_EXCLUDED(mu_);
  // After a batch of `applied` txns: tells the snapshot thread if one is
  // due. A snapshot still being taken absorbs one that falls due meanwhile
  // (as ZooKeeper skips a snapshot while the previous one runs).
  void MaybeSnapshot(size_t applied) ABSL_LOCKS_EXCLUDED(mu_);
  void SnapshotLoop();
  // Flush, exact checkpoint (applies held off), check, log roll, purge.
  void TakeSnapshot() ABSL_LOCKS_EXCLUDED(mu_);

  engine::TxnLog* const log_;
  engine::StateDb* const db_;
  engine::Prep* const prep_;
  engine::SnapshotStore* const snapshots_;
  const CommitPipelineOptions options_;
  absl::Mutex* const visibility_mu_;
  engine::SnapshotScheduler scheduler_;

  mutable absl::Mutex mu_;
  std::deque<Pending> to_log_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> to_apply_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool log_done_ ABSL_GUARDED_BY(mu_) = false;
  // A batch is being applied (by either thread): the other must not start.
  bool applying_ ABSL_GUARDED_BY(mu_) = false;
  // A thread (the log thread or a proposing thread) is writing a batch.
  bool logging_ ABSL_GUARDED_BY(mu_) = false;
  // A proposing thread (claimer_) will log what it queued when its scope
  // closes (LogOnProposingThread): its txns do not wake the log thread.
  // Another thread's txn does; the log thread then takes the whole queue
  // and the claim with it.
  bool log_claimed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id claimer_ ABSL_GUARDED_BY(mu_);
  size_t claimed_txns_ ABSL_GUARDED_BY(mu_) = 0;  // queued by the claimer
  uint64_t claim_number_ ABSL_GUARDED_BY(mu_) = 0;
  // A snapshot is due; the snapshot thread takes it.
  bool snapshot_due_ ABSL_GUARDED_BY(mu_) = false;
  // The snapshot thread waits for the batch being applied to end: no new
  // batch starts (it would starve the checkpoint under load).
  bool checkpoint_waiting_ ABSL_GUARDED_BY(mu_) = false;
  // Both other threads are done: the snapshot thread ends.
  bool snapshot_stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread log_thread_;
  std::thread apply_thread_;
  std::thread snapshot_thread_;
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_COMMIT_PIPELINE_H_
