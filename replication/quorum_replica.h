// QuorumReplica: one member of a ZAB ensemble. It runs the protocol core
// (zab::Node) on one driver thread against this server's txn log, epoch
// files and state DB:
//
//   Deliver / PeerDisconnected / Submit --> [driver thread]
//   DeliverAndRun --> [the calling thread, if no round runs; else queued]
//   Submit inside a DeferScope, all quiet --> [the calling thread, when its
//                                              scope closes]
//     Node::Step / Tick / Propose --> Ready:
//       truncate the log | append + one fdatasync | persist epochs
//       --> send messages (PROPOSALs before our own fsync, ACKs after)
//       --> apply committed txns (one WriteBatch), complete local requests
//
// Recovery never applies log records beyond the state DB's last applied
// zxid: whether they are committed is the leader's to say (they are applied
// once the server is UPTODATE). So a TRUNC never has to undo state.
//
// Writes submitted on a learner are forwarded to the leader (a ForwardedWrite
// in a REQUEST message); the leader preps them like its own and stamps the
// txn with their origin, proposing an error txn for a refusal, so the
// learner answers its client when it applies that txn. A learner that loses
// its leader fails its forwarded requests with Unavailable (outcome unknown:
// ZooKeeper's ConnectionLoss).
//
// Apply gates (replication/apply_gate.h): a local write submitted with a
// closed gate is proposed (or forwarded) at once, but the apply of every
// committed txn stops before its txn until the gate opens: its session's
// earlier reads run against the state before it. The driver never blocks on
// a gate: it stops applying, goes on with the protocol, and resumes when
// the gate's OnOpen hook wakes it (or, after apply_gate_timeout_ms, applies
// anyway with a WARN). Gates are keyed by zxid for the leader's own
// requests, and by request id for the requests a learner forwarded (it
// learns their zxids only from the txns). They outlive role changes: the
// reads they wait for are local and finish whatever the ensemble does.
//
// Snapshots: every snap_count applied txns (a RocksDB checkpoint at an exact
// zxid). SNAP sync: the learner fetches the leader's checkpoint through
// options.fetch_snapshot, swaps it in for its state DB (under the visibility
// mutex, so readers never see a half-installed state), empties its log and
// records the snapshot zxid as the log's base (file `logBase`).
//
// Thread safety: all public methods are thread-safe. The SendFn (and
// flush_sends, and every completion) is called by whoever runs a round: the
// driver thread, or a thread in DeliverAndRun; rounds never overlap.
#ifndef ROCKEEPER_REPLICATION_QUORUM_REPLICA_H_
#define ROCKEEPER_REPLICATION_QUORUM_REPLICA_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/prep.h"
#include "engine/snapshot.h"
#include "engine/state_db.h"
#include "engine/txn_log.h"
#include "replication/forwarding.h"
#include "replication/replica.h"
#include "replication/zab/durable.h"
#include "replication/zab/node.h"

namespace rockeeper::replication {

struct QuorumReplicaOptions {
  // ZooKeeper's dataDir: state DB (state/), snapshots (snapshots/), and the
  // epoch files.
  std::string data_dir;
  // ZooKeeper's dataLogDir. Default (empty): <data_dir>/log.
  std::string data_log_dir;
  engine::PrepOptions prep;
  engine::StateDbOptions state_db;
  // The ensemble and its timing (tickTime, initLimit, syncLimit).
  zab::NodeConfig node;
  // How long the apply waits for a closed ApplyGate before applying the txn
  // anyway (with a WARN: a session's read may then see its later write).
  // Default: 5000 ms.
  int64_t apply_gate_timeout_ms = 5000;
  // Txn log preallocation chunk. Default: 64 MiB.
  uint64_t log_preallocate_bytes = 64u << 20;
  // Txn log segment size; purges delete whole segments. Default: 64 MiB.
  uint64_t log_segment_max_bytes = 64u << 20;
  // fdatasync the log before ACKing (forceSync). Default: true.
  bool force_sync = true;
  // Driver wake-up period for ticks. Default: 10 ms.
  int64_t tick_interval_ms = 10;
  // Take a snapshot every snap_count applied txns (0 = never). Default:
  // 100000 (snapCount).
  int64_t snap_count = 100000;
  // Snapshots kept (minimum 3). Default: 3 (autopurge.snapRetainCount).
  int snap_retain_count = 3;
  // After each snapshot, delete the snapshots beyond snap_retain_count and
  // the log segments only they needed (autopurge). A learner that falls
  // behind the purged log is then synced by SNAP. Default: false.
  bool purge_after_snapshot = false;
  // Called on the driver thread after each append + fdatasync with the txns
  // written and the time it took, in µs. Default: none.
  std::function<void(size_t txns, int64_t append_us)> on_log_batch;
  // Called on the snapshot thread ("rk-snapshot") after each snapshot with
  // what was taken and the time it took (from due to named), in ms. Must be
  // quick and thread-safe. Default: none.
  std::function<void(const engine::SnapshotInfo& snapshot, int64_t took_ms)>
      on_snapshot;
  // Called on the driver thread after each group of messages it passed to
  // the SendFn (those before its fdatasync, those after): the SendFn may
  // hold messages back until then, so that one group goes out as one write
  // per peer. Null: the SendFn sends each message at once.
  std::function<void()> flush_sends;
  // Copies server `from`'s snapshot at `zxid` into the new directory
  // `target_dir` (SNAP sync); the transport provides it. Null: SNAP is not
  // possible and a learner told to install one starts over.
  std::function<absl::Status(int64_t from, int64_t zxid,
                             const std::string& target_dir)>
      fetch_snapshot;
};

class QuorumReplica : public Replica {
 public:
  using SendFn = std::function<void(zab::Message)>;

  // Opens the data dirs and starts the driver thread (LOOKING).
  static absl::StatusOr<std::unique_ptr<QuorumReplica>> Open(
      const QuorumReplicaOptions& options, SendFn send);
  // Stops the driver; pending requests complete with Unavailable.
  ~QuorumReplica() override;

  // A message from a peer (any thread).
  void Deliver(zab::Message m);
  // Messages from a peer, from a thread that may block (a raw peer stream's
  // reader): if no round of the protocol loop runs now, runs one on the
  // calling thread (Step, log append + fdatasync, sends, applies), which
  // saves the driver thread's wake-up on the path of every proposal and
  // ack; otherwise queues them as Deliver does.
  void DeliverAndRun(std::vector<zab::Message> messages);
  // The transport lost its connection to `peer`.
  void PeerDisconnected(int64_t peer);

  // Submit / SubmitGated called inside a DeferScope (a wire thread's epoll
  // round) while no round runs and nothing else is queued run that round on
  // the calling thread when the scope closes, after its other deferred work
  // (DeferScope::DeferLast), instead of waking the driver thread. A thread
  // that submits inside a scope must not wait for the completion before
  // the scope closes, and the replica must outlive that scope.
  void Submit(const engine::RequestContext& ctx,
              const engine::WriteRequest& request, Done done) override;
  bool honours_apply_gates() const override { return true; }
  void SubmitGated(const engine::RequestContext& ctx,
                   const engine::WriteRequest& request,
                   std::shared_ptr<ApplyGate> gate, Done done) override;
  ApplyGateStats apply_gate_stats() const override {
    return {gate_waits_.load(), gate_timeouts_.load()};
  }
  // Rounds run by a submitting thread as its DeferScope closed.
  uint64_t claimed_rounds() const { return claimed_rounds_.load(); }
  const engine::StateDb& db() const override {
    return *db_ptr_.load(std::memory_order_acquire);
  }
  absl::Mutex& visibility_mutex() const override { return visibility_mu_; }
  int64_t last_proposed_zxid() const override;
  absl::Status health() const override;
  ReplicaStatus status() const override;

  // See Replica. On a follower the listener sees txns other servers
  // proposed: that is how watches fire and sessions are tracked there.
  void SetApplyListener(ApplyListener fn) override;
  bool is_session_authority() const override;
  bool serving() const override { return serving_.load(); }
  void RelaySessionTouches(std::vector<int64_t> session_ids) override;
  void SetSessionTouchListener(
      std::function<void(const std::vector<int64_t>&)> fn) override;

 private:
  struct PendingSubmit {
    engine::RequestContext ctx;
    engine::WriteRequest request;
    Done done;  // null for a request a learner forwarded to us
    std::optional<ForwardedWrite> forwarded;
    std::shared_ptr<ApplyGate> gate;  // null: none
  };
  struct Completion {
    int64_t zxid = 0;  // completes once applied >= zxid
    std::shared_ptr<engine::PrepOutcome> outcome;  // null: status only
    absl::Status status;
    Done done;
    int64_t session_id = 0;
  };
  struct Forwarded {
    Done done;
    int64_t session_id = 0;
  };
  // A closed gate that holds a txn's apply back.
  struct HeldGate {
    std::shared_ptr<ApplyGate> gate;
    int64_t session_id = 0;
  };

  QuorumReplica() = default;
  void Loop();
  // One round: takes the queued work, steps the core, handles its Readies.
  // Requires driver_mu_.
  void RunRound();
  // The round a submitting thread claimed (see SubmitGated).
  // `claim`: its number (claim_number_ when it was made).
  void RunClaimedRound(uint64_t claim) ABSL_LOCKS_EXCLUDED(driver_mu_, mu_);
  // Queued submits that do not wake the driver: the claimer's.
  size_t ClaimedSubmits() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return submit_claimed_ ? claimed_submits_ : 0;
  }
  void HandleSubmit(PendingSubmit& s, int64_t now_ms);
  void ForwardSubmit(PendingSubmit& s);
  void FailForwarded(const absl::Status& status);
  void HandleReady(zab::Ready& r);
  absl::Status ApplyUpTo(int64_t zxid);
  // Applies the committed txns up to commit_target_ the gates let through.
  absl::Status ApplyCommitted();
  // Appends `records` (one write + fdatasync) on the "rk-zab-log" thread
  // while this thread applies what was committed and logged before them,
  // if there is any; else appends them here. Returns the append's status
  // (an apply error is handled as ApplyCommitted's).
  absl::Status AppendAndApplyBefore(
      const std::vector<engine::LogRecord>& records);
  void AppendLoop();  // "rk-zab-log"
  void HoldForGate(std::map<int64_t, HeldGate>& gates, int64_t key,
                   std::shared_ptr<ApplyGate> gate, int64_t session_id);
  // How many of `txns` (consecutive, from the next to apply) may be applied
  // now; sets *gated_session to the session of the gated txn it stops at.
  size_t CountUngated(const std::vector<engine::Txn>& txns,
                      std::optional<int64_t>* gated_session);
  void DropOpenGates();
  void ClearGateHooks();
  void CompleteUpTo(int64_t applied);
  void FailPending(const absl::Status& status);
  void RestartNode(int64_t now_ms);
  absl::Status InstallSnapshot(const zab::SnapshotInstall& install);
  // After `applied_txns` more applied: when a snapshot is due, asks the
  // snapshot thread for a flush of the memtables beside the applies;
  // TakeSnapshot then checkpoints (exact, between two applies) with little
  // to flush, and hands the checkpoint back to that thread, which checks and
  // names it (FinishSnapshot), then purges, while the driver goes on.
  void MaybeSnapshot(size_t applied_txns);
  void SnapshotLoop();
  void TakeSnapshot();
  struct SnapshotToFinish {
    engine::SnapshotStore::Pending pending;
    int64_t paused_ms = 0;
    absl::Time due_at;
  };
  void FinishSnapshot(const SnapshotToFinish& job);
  // Logs a line when the role, serving state, leader or epoch changed.
  void LogRoleChange(const ReplicaStatus& s);
  void Fail(const absl::Status& status);
  void PublishStatus();

  QuorumReplicaOptions options_;
  SendFn send_;
  std::unique_ptr<engine::TxnLog> log_;
  // The state DBs opened: the last is current; earlier ones were replaced by
  // SNAP installs and stay open until shutdown, for readers that do not
  // hold the visibility mutex. Modified by the driver thread only.
  std::vector<std::unique_ptr<engine::StateDb>> dbs_;
  std::atomic<engine::StateDb*> db_ptr_{nullptr};
  std::string current_state_dir_;  // its directory name under data_dir
  engine::StateDb& cur_db() { return *db_ptr_.load(); }
  std::unique_ptr<engine::Prep> prep_;
  std::unique_ptr<engine::SnapshotStore> snapshots_;
  std::unique_ptr<zab::TxnLogStorage> storage_;
  std::string epoch_dir_;
  std::unique_ptr<engine::SnapshotScheduler> scheduler_;

  // Driver-thread state.
  std::unique_ptr<zab::Node> node_;
  std::map<int64_t, std::string> unapplied_;  // logged payloads by zxid
  std::deque<Completion> completions_;
  std::deque<PendingSubmit> held_;  // leader catching up before serving
  // Requests this learner forwarded, by request id, until their txn applies.
  std::map<int64_t, Forwarded> forwarded_;
  // Closed gates of this server's requests: proposed here, by zxid; and
  // forwarded to the leader, by request id.
  std::map<int64_t, HeldGate> gates_by_zxid_;
  std::map<int64_t, HeldGate> gates_by_request_;
  // Everything up to it is committed (applied may lag behind, at a gate).
  int64_t commit_target_ = 0;
  // What LogRoleChange last logged: mode, serving, leader, current epoch.
  std::tuple<std::string, bool, int64_t, int64_t> logged_role_;
  int64_t blocked_zxid_ = 0;  // the txn the apply stopped at, since when
  int64_t blocked_since_ms_ = 0;
  std::atomic<uint64_t> gate_waits_{0};
  std::atomic<uint64_t> gate_timeouts_{0};
  std::atomic<uint64_t> claimed_rounds_{0};
  int64_t next_request_id_ = 0;
  int64_t last_proposed_ = 0;
  // For ReplicaStatus: when this server began to lead, its proposal sizes.
  absl::Time leading_since_ = absl::InfinitePast();
  ProposalSizes proposal_sizes_;
  bool was_serving_leader_ = false;
  int64_t establish_zxid_ = 0;
  bool snapshot_due_ = false;  // waiting for the flusher's pre-flush
  absl::Time snapshot_due_at_;
  ApplyListener listener_;  // guarded by visibility_mu_
  std::function<void(const std::vector<int64_t>&)> touch_listener_
      ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex visibility_mu_;
  // Held by whoever runs a round (RunRound): the driver thread, or a
  // transport thread in DeliverAndRun. The protocol state above is touched
  // only under it. Taken before mu_.
  absl::Mutex driver_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int64_t next_tick_ms_ = 0;  // under driver_mu_
  mutable absl::Mutex mu_;
  // A transport thread runs a round: the driver thread is not woken for
  // work (the round takes it; what comes later wakes it when it ends).
  bool inline_running_ ABSL_GUARDED_BY(mu_) = false;
  // A submitting thread (claimer_) will run a round for its submits when
  // its DeferScope closes (RunClaimedRound): they do not wake the driver.
  // Other work does; the next round to start takes them, and the claim.
  bool submit_claimed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id claimer_ ABSL_GUARDED_BY(mu_);
  size_t claimed_submits_ ABSL_GUARDED_BY(mu_) = 0;  // queued by claimer_
  uint64_t claim_number_ ABSL_GUARDED_BY(mu_) = 0;
  // Some thread is inside RunRound.
  bool round_running_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<zab::Message> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> disconnects_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingSubmit> submits_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Snapshot hand-off: the driver wants a flush, the snapshot thread did
  // one; checkpoints the driver took, for that thread to finish.
  bool preflush_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool preflush_done_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<SnapshotToFinish> to_finish_ ABSL_GUARDED_BY(mu_);
  // Set once the driver has stopped: the snapshot thread finishes what is
  // queued, then ends.
  bool snapshot_stop_ ABSL_GUARDED_BY(mu_) = false;
  bool gate_opened_ ABSL_GUARDED_BY(mu_) = false;  // a held gate opened
  std::vector<int64_t> touches_to_relay_ ABSL_GUARDED_BY(mu_);
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  ReplicaStatus status_ ABSL_GUARDED_BY(mu_);
  int64_t last_proposed_published_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> serving_{false};
  std::thread driver_;
  std::thread flusher_;  // "rk-snapshot": SnapshotLoop
  // AppendAndApplyBefore's hand-off to the "rk-zab-log" thread.
  absl::Mutex append_mu_;
  const std::vector<engine::LogRecord>* append_job_
      ABSL_GUARDED_BY(append_mu_) = nullptr;
  bool append_done_ ABSL_GUARDED_BY(append_mu_) = false;
  absl::Status append_status_ ABSL_GUARDED_BY(append_mu_);
  bool append_stop_ ABSL_GUARDED_BY(append_mu_) = false;
  std::thread appender_;
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_QUORUM_REPLICA_H_
