// FastLeaderElection as a deterministic state machine (etcd raft style): it
// is fed received notifications and clock ticks, and returns the
// notifications to send and, eventually, its decision. No I/O, no threads,
// no clock of its own, so whole ensembles run in one process under a
// seeded simulated network (tests/replication/election_sim_test.cc).
//
// Rules (ZooKeeper 3.8 FastLeaderElection):
// - A vote is (leader, zxid, epoch); votes compare by epoch, then zxid, then
//   leader id (TotalOrderPredicate). Only participants can be voted for.
// - A LOOKING peer starts a round: logical clock + 1, votes for itself and
//   sends its vote to every participant. A notification from a higher round
//   resets its round and received votes; a lower round is ignored (and the
//   sender, if LOOKING, gets our vote back); an equal round with a better
//   vote changes our vote and we re-send it.
// - When the votes received in our round for our proposal form a quorum of
//   participants, we wait `finalize_wait_ms` for a better vote; if none
//   comes we decide: LEADING if the leader is us, else FOLLOWING (OBSERVING
//   for observers).
// - FOLLOWING/LEADING notifications (from peers already out of the
//   election) let a late joiner decide once a quorum of them names the same
//   leader that itself claims LEADING.
// - With nothing received for a while, a LOOKING peer re-sends its vote
//   (backoff from 200 ms doubling to max_notification_interval_ms).
// - Observers never vote and are never voted for: their notifications are
//   ignored by participants except for a reply.
#ifndef ROCKEEPER_REPLICATION_ZAB_ELECTION_H_
#define ROCKEEPER_REPLICATION_ZAB_ELECTION_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace rockeeper::zab {

enum class PeerState { kLooking, kFollowing, kLeading, kObserving };

struct Vote {
  int64_t leader = 0;
  int64_t zxid = 0;   // the proposed leader's last logged zxid
  int64_t epoch = 0;  // the proposed leader's current (accepted) epoch
  bool operator==(const Vote&) const = default;
};

// True if `a` beats `b` (ZooKeeper's totalOrderPredicate).
bool VoteBeats(const Vote& a, const Vote& b);

struct Notification {
  int64_t from = 0;
  int64_t to = 0;
  Vote vote;
  int64_t round = 0;  // the sender's logical clock (electionEpoch)
  PeerState state = PeerState::kLooking;
};

struct ElectionConfig {
  int64_t my_id = 0;
  std::set<int64_t> participants;  // voters, including my_id unless observer
  std::set<int64_t> observers;
  // Wait after a quorum agrees, for a better vote. Default: 200 ms.
  int64_t finalize_wait_ms = 200;
  // Re-send interval cap while LOOKING. Default: 60000 ms.
  int64_t max_notification_interval_ms = 60000;
};

class FastLeaderElection {
 public:
  // `last_zxid` and `epoch` describe this peer's log (its own vote).
  FastLeaderElection(ElectionConfig config, int64_t last_zxid, int64_t epoch);

  // Starts (or restarts, e.g. after losing the leader) a round at `now_ms`.
  void StartLooking(int64_t now_ms);
  // Processes a notification received at `now_ms`.
  void Step(const Notification& n, int64_t now_ms);
  // Advances time: finalizes a pending decision, re-sends when idle.
  void Tick(int64_t now_ms);

  // Notifications to send since the last call (cleared by the call).
  std::vector<Notification> TakeOutbox();

  PeerState state() const { return state_; }
  // The decided leader once state() != kLooking.
  const Vote& vote() const { return proposal_; }
  int64_t round() const { return round_; }
  bool is_observer() const;
  // Updates this peer's own (zxid, epoch) for its next round.
  void SetOwnLog(int64_t last_zxid, int64_t epoch);
  // Out of the election (after sync): the vote we answer LOOKING peers with
  // becomes (leader, our zxid, the new epoch), as ZooKeeper does since
  // ZOOKEEPER-1732, so that every member of an established ensemble names
  // the same (leader, epoch).
  void SetDecidedVote(const Vote& v);

 private:
  Vote OwnVote() const;
  void SendToParticipants();
  void Send(int64_t to);
  bool HasQuorum(const std::map<int64_t, Vote>& votes, const Vote& v) const;
  // Out-of-election votes agree when they name the same leader and epoch
  // (ZooKeeper's Vote.equals for non-LOOKING states).
  bool HasLeaderQuorum(const std::map<int64_t, Vote>& votes,
                       const Vote& v) const;
  void Decide(const Vote& v);
  void CheckOutOfElection(const Notification& n);

  const ElectionConfig config_;
  int64_t last_zxid_;
  int64_t epoch_;
  PeerState state_ = PeerState::kLooking;
  int64_t round_ = 0;
  Vote proposal_;
  std::map<int64_t, Vote> received_;  // this round, LOOKING senders
  std::map<int64_t, Notification> out_of_election_;
  std::optional<int64_t> finalize_at_ms_;
  int64_t last_activity_ms_ = 0;
  int64_t resend_interval_ms_ = 200;
  std::vector<Notification> outbox_;
};

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_ELECTION_H_
