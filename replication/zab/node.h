// zab::Node: one server's ZAB protocol (ZooKeeper 3.8) as a deterministic
// state machine, in the shape of etcd raft's RawNode. It is fed messages
// (Step), clock ticks (Tick) and, on the leader, client txns (Propose); it
// returns a Ready: what to persist, what to apply and what to send. It does
// no I/O, owns no thread and reads no clock, so whole ensembles run in one
// process under a seeded simulator (tests/replication/zab_sim_test.cc), and
// the real server wraps it with a disk and a network adapter.
//
// Phases (ZooKeeper's ZabState):
//   ELECTION   FastLeaderElection (election.h) on kVote messages.
//   DISCOVERY  learner: FOLLOWERINFO(acceptedEpoch) -> leader waits for a
//              quorum, picks max(acceptedEpoch)+1, persists acceptedEpoch,
//              LEADERINFO(e) -> learner persists acceptedEpoch (or refuses a
//              lower e), ACKEPOCH(currentEpoch, last zxid, log summary) ->
//              leader aborts if a learner is more recent, else persists
//              currentEpoch once a quorum acked.
//   SYNC       per learner: DIFF (entries it lacks), TRUNC(z) (drop its log
//              after z, then entries), or SNAP(s) (install the leader's
//              snapshot at s, then entries), then NEWLEADER(e). The learner
//              persists everything and currentEpoch = e before ACKing
//              NEWLEADER. A quorum of NEWLEADER ACKs (the leader counts)
//              commits the leader's whole history; UPTODATE(commit point)
//              lets each learner apply and serve.
//   BROADCAST  Propose -> PROPOSAL to followers; each ACKs after its fsync;
//              the leader commits in zxid order once a quorum of voters
//              (itself included, after its own fsync) acked; COMMIT to
//              followers, INFORM(entry) to observers.
// Liveness: the leader pings every tick/2; a learner silent for syncLimit
// ticks (initLimit while syncing) is dropped; a leader whose synced voters
// are no longer a quorum steps down to LOOKING; a learner that hears nothing
// from its leader for syncLimit ticks (initLimit before UPTODATE) goes
// LOOKING.
//
// The sync decision. Every learner sends, with ACKEPOCH, its last logged
// zxid p, its committed (applied) zxid c, and the last zxid it logged in
// each epoch. Logs obey ZAB's prefix property: two logs holding the same
// zxid agree on it and on everything before it (one leader per epoch, and a
// learner's log is synced with the epoch's leader before it takes any of
// that epoch's proposals). The common point z is therefore the larger of c
// and min(last_e(learner), last_e(leader)) for the highest epoch e both logs
// hold. z == p: DIFF; z < p: TRUNC(z). Either way the entries after z follow,
// read from the log (LogStorage); when the log no longer reaches back to z,
// SNAP instead.
//
// Safety rules this core keeps:
// - Only committed entries are ever applied (Ready::commit_zxid), and only
//   ones already durable locally: a TRUNC never has to undo state.
// - A learner applies nothing before UPTODATE: until then the leader's
//   history is not known to be committed.
// - Messages in Ready::messages may be sent only after everything else in
//   that Ready is durable (an ACK promises durability).
//
// Thread safety: none; the owner serializes every call.
#ifndef ROCKEEPER_REPLICATION_ZAB_NODE_H_
#define ROCKEEPER_REPLICATION_ZAB_NODE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "replication/zab/election.h"
#include "replication/zab/messages.h"

namespace rockeeper::zab {

// Read access to this server's own durable log and snapshots, used by the
// leader to sync learners. Implemented by the disk adapter (and the
// simulator's disk).
class LogStorage {
 public:
  virtual ~LogStorage() = default;
  // The entries with after_zxid < zxid <= upto_zxid, in order. NotFound (or
  // any error) when the log no longer holds all of them.
  virtual absl::StatusOr<std::vector<Entry>> Read(int64_t after_zxid,
                                                  int64_t upto_zxid) = 0;
  // The zxid of the newest snapshot a learner can be sent, or nullopt.
  virtual std::optional<int64_t> LatestSnapshotZxid() = 0;
};

struct NodeConfig {
  int64_t my_id = 0;
  std::set<int64_t> participants;  // voters (includes my_id unless observer)
  std::set<int64_t> observers;
  // ZooKeeper's tickTime, in ms. Default: 2000.
  int64_t tick_ms = 2000;
  // Ticks a learner may take to connect and sync. Default: 10.
  int64_t init_limit = 10;
  // Ticks a synced learner may be silent or lag. Default: 5.
  int64_t sync_limit = 5;
  // FastLeaderElection's finalize wait. Default: 200 ms.
  int64_t finalize_wait_ms = 200;
  // Cap of the election's resend interval. Default: 60000 ms.
  int64_t max_notification_interval_ms = 60000;
};

// What survives a restart, as the disk adapter found it at startup.
struct DurableState {
  int64_t accepted_epoch = 0;
  int64_t current_epoch = 0;
  // The last zxid in the log (or the snapshot's, if the log is empty).
  int64_t last_logged_zxid = 0;
  // The last applied zxid: everything up to it is committed.
  int64_t applied_zxid = 0;
  // Last logged zxid per epoch present in the log (any order).
  std::map<int64_t, int64_t> epoch_lasts;
};

enum class Role { kLooking, kFollowing, kLeading, kObserving };
const char* RoleName(Role role);

// A request to install the leader's snapshot (SNAP): fetch the snapshot at
// `zxid` from server `from`, replace the state and empty the log (the next
// entry logged follows `zxid`).
struct SnapshotInstall {
  int64_t zxid = 0;
  int64_t from = 0;
};

// Work for the owner, to be done in this order:
//   1. truncate_after / install_snapshot;
//   2. append `entries` to the log and fsync;
//   3. persist accepted_epoch / current_epoch (fsync, atomically);
//   4. send `messages` in order; a message with after_persist set, and every
//      message after it, only once 1-3 are durable (the ones before it may
//      go out at once, so a leader's PROPOSALs travel during its own fsync);
//   5. apply every logged entry with zxid <= commit_zxid not yet applied;
//   6. call Node::Advance(ready).
// `requests` are client writes forwarded by learners (leader only): the
// owner preps and Proposes them.
struct Ready {
  std::optional<int64_t> truncate_after;
  std::optional<SnapshotInstall> install_snapshot;
  std::vector<Entry> entries;
  std::optional<int64_t> accepted_epoch;
  std::optional<int64_t> current_epoch;
  std::vector<Message> messages;
  int64_t commit_zxid = 0;
  std::vector<Message> requests;
  // Leader: opaque session-touch payloads learners sent with their PING
  // replies (see Node::SetSessionTouches), by learner id.
  std::vector<std::pair<int64_t, std::string>> session_touches;

  bool empty() const;
};

class Node {
 public:
  // Starts LOOKING at `now_ms`.
  Node(NodeConfig config, const DurableState& durable, LogStorage* storage,
       int64_t now_ms);

  void Step(const Message& m, int64_t now_ms);
  void Tick(int64_t now_ms);
  // Leader in BROADCAST only: assigns the next zxid and replicates `data`.
  // FailedPrecondition otherwise (the caller answers ConnectionLoss /
  // UNAVAILABLE, or forwards to the leader).
  absl::StatusOr<int64_t> Propose(std::string data, int64_t now_ms);
  // The zxid the next Propose will assign (meaningful on a serving leader).
  int64_t NextZxid() const {
    return std::max(last_zxid_, MakeZxid(new_epoch_, 0)) + 1;
  }
  // Learner in BROADCAST only: forwards a client write to the leader.
  absl::Status Forward(std::string data);
  // Learner: `data` rides on the next PING reply to the leader (ZooKeeper
  // relays the sessions its clients touched this way). Appended to any
  // payload not yet sent (at most 1 MiB is kept while there is no leader).
  void SetSessionTouches(const std::string& data) {
    if (session_touches_.size() > (1u << 20)) session_touches_.clear();
    session_touches_ += data;
  }
  // The transport lost its connection to `peer`: give up on it at once
  // rather than waiting for a timeout.
  void PeerDisconnected(int64_t peer, int64_t now_ms);

  bool HasReady() const;
  Ready TakeReady();
  // Everything in `ready` is durable and applied (see Ready).
  void Advance(const Ready& ready);

  Role role() const { return role_; }
  // True once this server serves: leader in BROADCAST, or learner after
  // UPTODATE.
  bool serving() const;
  int64_t leader_id() const { return leader_id_; }  // -1 when unknown
  int64_t my_id() const { return config_.my_id; }
  int64_t accepted_epoch() const { return accepted_epoch_; }
  int64_t current_epoch() const { return current_epoch_; }
  int64_t last_logged_zxid() const { return last_zxid_; }
  int64_t committed_zxid() const { return committed_; }
  int64_t applied_zxid() const { return applied_; }
  // The epoch this server leads in BROADCAST (0 if not).
  int64_t leading_epoch() const;
  // Voting members of the ensemble (ZooKeeper's zk_quorum_size).
  int64_t voters() const {
    return static_cast<int64_t>(config_.participants.size());
  }
  // The leader's learner connections (ZooKeeper's mntr zk_learners and
  // zk_synced_*): every connected learner, whatever its phase, and those
  // whose sync was sent (in the forwarding set), by kind. Zeros on a
  // server that does not lead.
  struct LearnerCounts {
    int64_t learners = 0;
    int64_t synced_followers = 0;
    int64_t synced_observers = 0;
  };
  LearnerCounts learner_counts() const;

 private:
  enum class LeaderPhase { kDiscovery, kEpochAck, kSync, kBroadcast };
  enum class LearnerPhase { kConnecting, kSyncing, kSynced, kBroadcast };
  // The leader's view of one learner connection.
  struct LearnerState {
    int64_t conn = 0;
    bool observer = false;
    int64_t accepted_epoch = 0;
    bool acked_epoch = false;
    bool synced = false;  // sync sent; now in the forwarding set
    bool acked_newleader = false;
    bool uptodate = false;
    int64_t last_heard_ms = 0;
    int64_t send_seq = 0;  // last seq sent on this connection
    int64_t recv_seq = 0;  // last seq received on it
    // Info from ACKEPOCH, kept until the sync is sent.
    int64_t last_zxid = 0;
    int64_t committed = 0;
    std::vector<std::pair<int64_t, int64_t>> epoch_lasts;
  };
  struct Outstanding {
    Entry entry;
    std::set<int64_t> acks;
  };

  int64_t CommitTarget() const;
  bool IsParticipant(int64_t id) const;
  bool IsQuorum(size_t voters) const;
  void Send(Message m, bool after_persist = true);
  void GoLooking(int64_t now_ms);
  void OnElectionDecided(int64_t now_ms);
  void StepElection(const Message& m, int64_t now_ms);

  // Leader.
  void StepLeader(const Message& m, int64_t now_ms);
  void LeaderOnFollowerInfo(const Message& m, int64_t now_ms);
  void LeaderOnAckEpoch(LearnerState& l, const Message& m, int64_t now_ms);
  void LeaderOnAck(int64_t from, LearnerState& l, const Message& m,
                   int64_t now_ms);
  void LeaderMaybeChooseEpoch(int64_t now_ms);
  void LeaderMaybeFinishEpochAcks(int64_t now_ms);
  void LeaderMaybeEstablish(int64_t now_ms);
  void SyncLearner(int64_t id, LearnerState& l);
  void SendUpToDate(int64_t id, LearnerState& l);
  void TryCommit();
  // Sends what was coalesced since the last TakeReady: one ACK for the
  // proposals logged (learner), one COMMIT per follower (leader). Both are
  // cumulative: an ACK of z says everything up to z is logged, a COMMIT of
  // z that everything up to z is committed. Placed last in the Ready, so a
  // COMMIT never overtakes the PROPOSAL it covers.
  void FlushCoalesced();
  void LeaderTick(int64_t now_ms);
  void EnterPhase(LeaderPhase phase, int64_t now_ms);

  // Learner.
  void StepLearner(const Message& m, int64_t now_ms);
  void LearnerAppend(const Entry& e);
  void LearnerMaybeCommit();
  void LearnerTick(int64_t now_ms);
  void SendFollowerInfo(int64_t now_ms);
  void SendToLeader(MsgType type, int64_t zxid, bool after_persist = true);

  void AppendLocal(const Entry& e);
  void TruncateLocal(int64_t zxid);

  const NodeConfig config_;
  LogStorage* const storage_;
  FastLeaderElection election_;
  Role role_ = Role::kLooking;
  int64_t leader_id_ = -1;

  // Durable state as this core knows it (persisted or queued to persist).
  int64_t accepted_epoch_;
  int64_t current_epoch_;
  int64_t last_zxid_;  // last logged (or queued to log)
  std::map<int64_t, int64_t> epoch_lasts_;
  int64_t persisted_zxid_;  // durable in the local log
  int64_t committed_;       // known committed
  int64_t applied_;         // applied by the owner

  // Leader state.
  LeaderPhase leader_phase_ = LeaderPhase::kDiscovery;
  int64_t phase_deadline_ms_ = 0;
  int64_t new_epoch_ = 0;
  int64_t history_last_ = 0;  // the leader's last zxid when elected
  std::map<int64_t, LearnerState> learners_;
  std::map<int64_t, Outstanding> outstanding_;  // by zxid
  // Entries appended but not yet durable (not readable from storage_).
  std::map<int64_t, Entry> unpersisted_;
  // Appends entries from storage_ and unpersisted_ in (after, upto].
  absl::StatusOr<std::vector<Entry>> ReadEntries(int64_t after, int64_t upto);
  int64_t next_ping_ms_ = 0;
  bool self_acked_newleader_ = false;
  bool commit_pending_ = false;  // followers are owed COMMIT(committed_)

  // Learner state.
  LearnerPhase learner_phase_ = LearnerPhase::kConnecting;
  int64_t conn_ = 0;  // our current connection id (grows)
  int64_t send_seq_ = 0;
  int64_t recv_seq_ = 0;
  int64_t last_heard_ms_ = 0;
  int64_t last_info_sent_ms_ = 0;
  int64_t commit_seen_ = 0;  // highest COMMIT/INFORM/UPTODATE zxid received
  int64_t ack_pending_ = 0;  // highest proposal logged, not yet ACKed (0: none)
  std::string session_touches_;

  Ready ready_;
};

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_NODE_H_
