// Replica: what the client front ends (rpc/) need from a server's write path,
// whether standalone (StandaloneReplica, a quorum of one) or a member of a
// ZAB ensemble (QuorumReplica).
//
// Thread safety: every method is thread-safe.
#ifndef ROCKEEPER_REPLICATION_REPLICA_H_
#define ROCKEEPER_REPLICATION_REPLICA_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/prep.h"
#include "engine/state_db.h"
#include "replication/apply_gate.h"

namespace rockeeper::replication {

struct SubmitResult {
  // Non-OK: the txn could not be made durable or applied (I/O failure), or
  // the server has no leader / lost it (Unavailable); the request's fate is
  // unknown to the client (ZooKeeper: connection loss).
  absl::Status status;
  // Prep's verdict: err == kOk with the applied txn, or the ZooKeeper error
  // (and per-op codes for a failed multi).
  engine::PrepOutcome outcome;
  // Watch events the txn fired.
  std::vector<engine::WatchTrigger> triggers;
  // The zxid the reply carries: the txn's, or for a refused write the error
  // txn's that recorded the refusal (ZooKeeper logs refusals as ErrorTxns,
  // so a failed write consumes a zxid too). 0 when no txn was logged (the
  // reply then carries the last applied zxid).
  int64_t zxid = 0;
  // The apply thread waits for reads that follow this completion (see
  // CommitNote): the front end should run it ahead of other work.
  bool urgent = false;
  // Delivered on the thread that logged and applied a lone batch, inside a
  // DeferScope (defer_scope.h; see CommitNote): the front end may finish the
  // request in a closure it defers there instead of waking another thread.
  // Standalone: the log thread's lone batch; ensemble: the only request an
  // apply completes (the scope closes when the ZAB round has ended).
  bool lone = false;
  // Delivered on the apply thread inside a DeferScope that closes as soon
  // as this apply batch is done (its locks released): the front end may
  // gather the batch's hand-offs to other threads and pass them on at once
  // when it closes (one wake-up instead of one per request). Standalone.
  bool gathered = false;
};

// Serialized sizes of the txns a leader proposed (mntr's
// zk_{last,min,max}_proposal_size), in bytes; -1 before the first.
struct ProposalSizes {
  int64_t last_bytes = -1;
  int64_t min_bytes = -1;
  int64_t max_bytes = -1;
  void Add(size_t bytes) {
    const auto n = static_cast<int64_t>(bytes);
    last_bytes = n;
    if (min_bytes < 0 || n < min_bytes) min_bytes = n;
    if (n > max_bytes) max_bytes = n;
  }
};

// Where this server stands, for `rockeeper status`, srvr/mntr and the admin
// API.
struct ReplicaStatus {
  std::string mode;     // "standalone", "leader", "follower", "observer",
                        // "looking"
  bool serving = true;  // may answer clients (has a leader, caught up)
  int64_t leader_id = -1;
  int64_t current_epoch = 0;
  int64_t last_logged_zxid = 0;
  int64_t last_applied_zxid = 0;
  // Ensemble only (zeros standalone), for mntr's quorum and leader keys.
  int64_t voters = 0;  // voting members (zk_quorum_size)
  // Leader only: learner connections, and those synced (in the forwarding
  // set) by kind; when it began to lead (BROADCAST); its proposals' sizes.
  int64_t learners = 0;
  int64_t synced_followers = 0;
  int64_t synced_observers = 0;
  absl::Time leading_since = absl::InfinitePast();
  ProposalSizes proposal_sizes;
};

// How often the apply waited for an ApplyGate (see replication/apply_gate.h).
struct ApplyGateStats {
  uint64_t waits = 0;     // closed gates the apply stopped at
  uint64_t timeouts = 0;  // of those, applied anyway after the gate timeout
};

class Replica {
 public:
  using Done = std::function<void(SubmitResult)>;
  virtual ~Replica() = default;

  // Turns a write request into an applied txn. `done` runs once, on a
  // replica thread (or at once when the replica cannot take writes); keep it
  // short. Completions follow submission order. Called inside a DeferScope
  // (replication/defer_scope.h), the work may be left to the calling thread
  // for when that scope closes: do not wait for `done` inside the scope.
  virtual void Submit(const engine::RequestContext& ctx,
                      const engine::WriteRequest& request, Done done) = 0;
  // Whether SubmitGated honours its gate. Default: false (the front end then
  // holds a session's writes behind its earlier reads instead).
  virtual bool honours_apply_gates() const { return false; }
  // Submit, but the txn is applied only once `gate` is open (it may be
  // prepared and made durable before): see replication/apply_gate.h.
  // Default: ignores the gate (for replicas that do not honour gates, which
  // the front end never gives one).
  virtual void SubmitGated(const engine::RequestContext& ctx,
                           const engine::WriteRequest& request,
                           std::shared_ptr<ApplyGate> /*gate*/, Done done) {
    Submit(ctx, request, std::move(done));
  }

  virtual ApplyGateStats apply_gate_stats() const { return {}; }

  virtual const engine::StateDb& db() const = 0;
  // Held exclusively while txns are applied and their callbacks run; hold
  // it shared to read a state consistently with the callbacks' effects.
  virtual absl::Mutex& visibility_mutex() const = 0;
  virtual int64_t last_proposed_zxid() const = 0;
  virtual absl::Status health() const = 0;
  virtual ReplicaStatus status() const = 0;

  // --- Ensemble hooks (a standalone replica keeps the defaults) ----------
  // False while an ensemble member has no serving leader (or is catching
  // up): clients get UNAVAILABLE / ConnectionLoss, as ZooKeeper closes
  // connections then. Cheap (called per request).
  virtual bool serving() const { return true; }
  using ApplyListener =
      std::function<void(const std::vector<engine::Txn>& txns,
                         const std::vector<engine::WatchTrigger>& triggers)>;
  // Called with every applied batch, whoever proposed it, on the apply
  // thread under the visibility mutex (so watch events are queued before a
  // reader can see the change). When set, Submit results carry no triggers.
  // Standalone: never called (Submit results carry the triggers).
  virtual void SetApplyListener(ApplyListener fn) { (void)fn; }
  // True if this server expires sessions and reaps containers: standalone,
  // or the serving leader of an ensemble.
  virtual bool is_session_authority() const { return true; }
  // A non-authority relays the sessions its clients touched to the leader.
  virtual void RelaySessionTouches(std::vector<int64_t> session_ids) {
    (void)session_ids;
  }
  // On the leader: sessions the learners relayed.
  virtual void SetSessionTouchListener(
      std::function<void(const std::vector<int64_t>&)> fn) {
    (void)fn;
  }
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_REPLICA_H_
