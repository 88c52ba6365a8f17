// The messages the ZAB core exchanges between servers, in a transport-neutral
// form. The quorum-channel types follow ZooKeeper 3.8's QuorumPacket types
// (Leader.java); the transport adapter encodes them (proto over gRPC) and the
// simulator passes them as they are.
//
// Channels:
// - kVote travels on the election channel: lossy, unordered is fine.
// - Every other type travels on the quorum channel between a learner and
//   the leader. A connection is named by `conn`, chosen by the learner when
//   it starts following. Within a connection each side numbers what it sends
//   (`seq` 1, 2, ...; FOLLOWERINFO, which opens it, is 0), and the receiver
//   ends the connection at the first gap, duplicate or reordering: the
//   transport may lose messages (a reconnect, a full queue) and the core
//   still never applies a log with a hole. Both sides then start over with a
//   new `conn` (the learner goes LOOKING; the leader forgets it).
#ifndef ROCKEEPER_REPLICATION_ZAB_MESSAGES_H_
#define ROCKEEPER_REPLICATION_ZAB_MESSAGES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "replication/zab/election.h"

namespace rockeeper::zab {

// One replicated txn: its zxid and opaque payload (a serialized Txn).
struct Entry {
  int64_t zxid = 0;
  std::string data;
  bool operator==(const Entry&) const = default;
};

inline int64_t EpochOf(int64_t zxid) { return zxid >> 32; }
inline int64_t CounterOf(int64_t zxid) { return zxid & 0xffffffffLL; }
inline int64_t MakeZxid(int64_t epoch, int64_t counter) {
  return (epoch << 32) | counter;
}

enum class MsgType : uint8_t {
  kVote,          // election notification (`vote`)
  kFollowerInfo,  // learner -> leader: epoch = acceptedEpoch, observer flag
  kLeaderInfo,    // leader -> learner: epoch = new epoch
  kAckEpoch,      // learner -> leader: epoch = currentEpoch (-1: already
                  // accepted), zxid = last logged, committed, epoch_lasts
  kDiff,          // leader -> learner: entries after `zxid` follow
  kTrunc,         // leader -> learner: drop log records after `zxid`
  kSnap,          // leader -> learner: install the leader's snapshot at zxid
  kProposal,      // leader -> follower: `entry`
  kCommit,        // leader -> follower: zxid
  kInform,        // leader -> observer: committed `entry`
  kNewLeader,     // leader -> learner: epoch = new epoch
  kAck,           // follower -> leader: zxid (a proposal or NEWLEADER)
  kUpToDate,      // leader -> learner: zxid = leader's commit point
  kPing,          // both ways
  kRequest,       // learner -> leader: a forwarded client write (`data`)
};

const char* MsgTypeName(MsgType type);

struct Message {
  MsgType type = MsgType::kPing;
  int64_t from = 0;
  int64_t to = 0;
  int64_t conn = 0;  // quorum-channel connection id (see above)
  int64_t seq = 0;   // position in the connection (see above)
  int64_t zxid = 0;
  int64_t epoch = 0;
  int64_t committed = 0;  // kAckEpoch: the learner's applied (committed) zxid
  bool observer = false;  // kFollowerInfo: OBSERVERINFO
  // kAckEpoch: for each epoch in the learner's log, the last zxid logged in
  // it (ascending epochs).
  std::vector<std::pair<int64_t, int64_t>> epoch_lasts;
  Entry entry;        // kProposal, kInform
  std::string data;   // kRequest; a kPing reply: session touches
  Notification vote;  // kVote
  // Not transmitted: true if the sender may send this message only after
  // the Ready it came in is durable (see Ready::messages).
  bool after_persist = false;
};

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_MESSAGES_H_
