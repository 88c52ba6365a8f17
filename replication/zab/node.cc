#include "replication/zab/node.h"

#include <algorithm>
#include <utility>

namespace rockeeper::zab {

const char* MsgTypeName(MsgType type) {
  switch (type) {
    case MsgType::kVote:
      return "VOTE";
    case MsgType::kFollowerInfo:
      return "FOLLOWERINFO";
    case MsgType::kLeaderInfo:
      return "LEADERINFO";
    case MsgType::kAckEpoch:
      return "ACKEPOCH";
    case MsgType::kDiff:
      return "DIFF";
    case MsgType::kTrunc:
      return "TRUNC";
    case MsgType::kSnap:
      return "SNAP";
    case MsgType::kProposal:
      return "PROPOSAL";
    case MsgType::kCommit:
      return "COMMIT";
    case MsgType::kInform:
      return "INFORM";
    case MsgType::kNewLeader:
      return "NEWLEADER";
    case MsgType::kAck:
      return "ACK";
    case MsgType::kUpToDate:
      return "UPTODATE";
    case MsgType::kPing:
      return "PING";
    case MsgType::kRequest:
      return "REQUEST";
  }
  return "?";
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kLooking:
      return "looking";
    case Role::kFollowing:
      return "follower";
    case Role::kLeading:
      return "leader";
    case Role::kObserving:
      return "observer";
  }
  return "?";
}

bool Ready::empty() const {
  return !truncate_after && !install_snapshot && entries.empty() &&
         !accepted_epoch && !current_epoch && messages.empty() &&
         commit_zxid == 0 && requests.empty() && session_touches.empty();
}

namespace {
ElectionConfig MakeElectionConfig(const NodeConfig& c) {
  ElectionConfig e;
  e.my_id = c.my_id;
  e.participants = c.participants;
  e.observers = c.observers;
  e.finalize_wait_ms = c.finalize_wait_ms;
  e.max_notification_interval_ms = c.max_notification_interval_ms;
  return e;
}
}  // namespace

Node::Node(NodeConfig config, const DurableState& durable, LogStorage* storage,
           int64_t now_ms)
    : config_(std::move(config)),
      storage_(storage),
      election_(MakeElectionConfig(config_), durable.last_logged_zxid,
                durable.current_epoch),
      accepted_epoch_(durable.accepted_epoch),
      current_epoch_(durable.current_epoch),
      last_zxid_(durable.last_logged_zxid),
      epoch_lasts_(durable.epoch_lasts),
      persisted_zxid_(durable.last_logged_zxid),
      committed_(durable.applied_zxid),
      applied_(durable.applied_zxid) {
  conn_ = now_ms * 16;
  GoLooking(now_ms);
}

bool Node::IsParticipant(int64_t id) const {
  return config_.participants.count(id) > 0;
}

bool Node::IsQuorum(size_t voters) const {
  return voters * 2 > config_.participants.size();
}

bool Node::serving() const {
  if (role_ == Role::kLeading) return leader_phase_ == LeaderPhase::kBroadcast;
  if (role_ == Role::kFollowing || role_ == Role::kObserving) {
    return learner_phase_ == LearnerPhase::kBroadcast;
  }
  return false;
}

int64_t Node::leading_epoch() const {
  return role_ == Role::kLeading && leader_phase_ == LeaderPhase::kBroadcast
             ? new_epoch_
             : 0;
}

Node::LearnerCounts Node::learner_counts() const {
  LearnerCounts c;
  if (role_ != Role::kLeading) return c;
  for (const auto& [id, l] : learners_) {
    ++c.learners;
    if (!l.synced) continue;
    ++(l.observer ? c.synced_observers : c.synced_followers);
  }
  return c;
}

void Node::Send(Message m, bool after_persist) {
  m.from = config_.my_id;
  if (m.type != MsgType::kVote && m.type != MsgType::kFollowerInfo) {
    if (role_ == Role::kLeading) {
      auto it = learners_.find(m.to);
      m.seq = it != learners_.end() && it->second.conn == m.conn
                  ? ++it->second.send_seq
                  : 0;  // a connection we dropped: the receiver refuses it
    } else {
      m.seq = ++send_seq_;
    }
  }
  m.after_persist = after_persist;
  ready_.messages.push_back(std::move(m));
}

void Node::AppendLocal(const Entry& e) {
  last_zxid_ = e.zxid;
  epoch_lasts_[EpochOf(e.zxid)] = e.zxid;
  ready_.entries.push_back(e);
  unpersisted_[e.zxid] = e;
}

absl::StatusOr<std::vector<Entry>> Node::ReadEntries(int64_t after,
                                                     int64_t upto) {
  std::vector<Entry> entries;
  if (after >= upto) return entries;
  // The durable part comes from storage, the rest from memory.
  const int64_t durable_upto = std::min(upto, persisted_zxid_);
  if (after < durable_upto) {
    absl::StatusOr<std::vector<Entry>> read =
        storage_->Read(after, durable_upto);
    if (!read.ok()) return read.status();
    entries = std::move(*read);
  }
  int64_t have = entries.empty() ? after : entries.back().zxid;
  for (auto it = unpersisted_.upper_bound(have);
       it != unpersisted_.end() && it->first <= upto; ++it) {
    entries.push_back(it->second);
    have = it->first;
  }
  if (have != upto && !(entries.empty() && CounterOf(upto) == 0)) {
    return absl::NotFoundError("log does not reach");
  }
  return entries;
}

void Node::TruncateLocal(int64_t zxid) {
  // Entries queued in this Ready but not yet written go too.
  while (!ready_.entries.empty() && ready_.entries.back().zxid > zxid) {
    ready_.entries.pop_back();
  }
  ready_.truncate_after = zxid;
  unpersisted_.erase(unpersisted_.upper_bound(zxid), unpersisted_.end());
  last_zxid_ = zxid;
  persisted_zxid_ = std::min(persisted_zxid_, zxid);
  for (auto it = epoch_lasts_.begin(); it != epoch_lasts_.end();) {
    if (it->first > EpochOf(zxid)) {
      it = epoch_lasts_.erase(it);
    } else {
      if (it->second > zxid) it->second = zxid;
      ++it;
    }
  }
  // An epoch whose entries are all gone leaves no trace.
  auto it = epoch_lasts_.find(EpochOf(zxid));
  if (it != epoch_lasts_.end() && CounterOf(zxid) == 0) epoch_lasts_.erase(it);
}

// ---------------------------------------------------------------- election

void Node::GoLooking(int64_t now_ms) {
  role_ = Role::kLooking;
  leader_id_ = -1;
  learners_.clear();
  outstanding_.clear();
  self_acked_newleader_ = false;
  commit_pending_ = false;
  ack_pending_ = 0;
  learner_phase_ = LearnerPhase::kConnecting;
  election_.SetOwnLog(last_zxid_, current_epoch_);
  election_.StartLooking(now_ms);
  for (const Notification& n : election_.TakeOutbox()) {
    Message m;
    m.type = MsgType::kVote;
    m.to = n.to;
    m.vote = n;
    Send(std::move(m), /*after_persist=*/false);
  }
}

void Node::StepElection(const Message& m, int64_t now_ms) {
  election_.Step(m.vote, now_ms);
  for (const Notification& n : election_.TakeOutbox()) {
    Message out;
    out.type = MsgType::kVote;
    out.to = n.to;
    out.vote = n;
    Send(std::move(out), /*after_persist=*/false);
  }
  if (role_ == Role::kLooking && election_.state() != PeerState::kLooking) {
    OnElectionDecided(now_ms);
  }
}

void Node::OnElectionDecided(int64_t now_ms) {
  leader_id_ = election_.vote().leader;
  switch (election_.state()) {
    case PeerState::kLeading:
      role_ = Role::kLeading;
      history_last_ = last_zxid_;
      new_epoch_ = 0;
      self_acked_newleader_ = false;
      next_ping_ms_ = now_ms;
      EnterPhase(LeaderPhase::kDiscovery, now_ms);
      LeaderMaybeChooseEpoch(now_ms);  // a quorum of one
      return;
    case PeerState::kFollowing:
    case PeerState::kObserving: {
      role_ = election_.state() == PeerState::kFollowing ? Role::kFollowing
                                                         : Role::kObserving;
      learner_phase_ = LearnerPhase::kConnecting;
      conn_ = std::max(conn_ + 1, now_ms * 16);
      ack_pending_ = 0;
      send_seq_ = 0;
      recv_seq_ = 0;
      last_heard_ms_ = now_ms;
      commit_seen_ = committed_;
      SendFollowerInfo(now_ms);
      return;
    }
    case PeerState::kLooking:
      return;
  }
}

// ------------------------------------------------------------------ inputs

void Node::Step(const Message& m, int64_t now_ms) {
  if (m.to != config_.my_id) return;
  if (m.type == MsgType::kVote) {
    StepElection(m, now_ms);
    return;
  }
  if (role_ == Role::kLeading) {
    StepLeader(m, now_ms);
  } else if (role_ == Role::kFollowing || role_ == Role::kObserving) {
    StepLearner(m, now_ms);
  }
  // LOOKING: quorum-channel traffic is stale; drop it.
}

void Node::Tick(int64_t now_ms) {
  if (role_ == Role::kLooking) {
    election_.Tick(now_ms);
    for (const Notification& n : election_.TakeOutbox()) {
      Message m;
      m.type = MsgType::kVote;
      m.to = n.to;
      m.vote = n;
      Send(std::move(m), /*after_persist=*/false);
    }
    if (election_.state() != PeerState::kLooking) OnElectionDecided(now_ms);
    return;
  }
  if (role_ == Role::kLeading) {
    LeaderTick(now_ms);
  } else {
    LearnerTick(now_ms);
  }
}

void Node::PeerDisconnected(int64_t peer, int64_t now_ms) {
  if (role_ == Role::kLeading) {
    learners_.erase(peer);
    LeaderTick(now_ms);
  } else if (role_ != Role::kLooking && peer == leader_id_) {
    GoLooking(now_ms);
  }
}

absl::StatusOr<int64_t> Node::Propose(std::string data, int64_t now_ms) {
  if (role_ != Role::kLeading || leader_phase_ != LeaderPhase::kBroadcast) {
    return absl::FailedPreconditionError("not the serving leader");
  }
  if (CounterOf(last_zxid_) >= 0xffffffffLL - 1) {
    // The zxid counter is exhausted: a new epoch is needed (ZooKeeper does
    // the same: "zxid lower 32 bits have rolled over").
    GoLooking(now_ms);
    return absl::FailedPreconditionError("zxid counter rolled over");
  }
  Entry e{NextZxid(), std::move(data)};
  AppendLocal(e);
  Outstanding& o = outstanding_[e.zxid];
  o.entry = e;
  for (auto& [id, l] : learners_) {
    if (!l.synced || l.observer) continue;
    Message m;
    m.type = MsgType::kProposal;
    m.to = id;
    m.conn = l.conn;
    m.zxid = e.zxid;
    m.entry = e;
    Send(std::move(m), /*after_persist=*/false);
  }
  return e.zxid;
}

absl::Status Node::Forward(std::string data) {
  if ((role_ != Role::kFollowing && role_ != Role::kObserving) ||
      learner_phase_ != LearnerPhase::kBroadcast) {
    return absl::FailedPreconditionError("not a serving learner");
  }
  Message m;
  m.type = MsgType::kRequest;
  m.to = leader_id_;
  m.conn = conn_;
  m.data = std::move(data);
  Send(std::move(m), /*after_persist=*/false);
  return absl::OkStatus();
}

int64_t Node::CommitTarget() const {
  // Apply only what is committed and durable here (after the pending
  // Ready's own appends, which the owner writes before applying).
  int64_t durable = persisted_zxid_;
  if (ready_.install_snapshot) durable = ready_.install_snapshot->zxid;
  if (!ready_.entries.empty()) durable = ready_.entries.back().zxid;
  const int64_t commit = std::min(committed_, durable);
  return commit > applied_ ? commit : 0;
}

bool Node::HasReady() const {
  return !ready_.empty() || CommitTarget() != 0 || ack_pending_ != 0 ||
         commit_pending_;
}

void Node::FlushCoalesced() {
  if (ack_pending_ != 0) {
    if (role_ == Role::kFollowing && learner_phase_ != LearnerPhase::kSyncing) {
      SendToLeader(MsgType::kAck, ack_pending_);  // after our fsync
    }
    ack_pending_ = 0;
  }
  if (commit_pending_) {
    commit_pending_ = false;
    if (role_ != Role::kLeading) return;
    for (const auto& [id, l] : learners_) {
      if (!l.synced || l.observer) continue;
      Message m;
      m.type = MsgType::kCommit;
      m.to = id;
      m.conn = l.conn;
      m.zxid = committed_;
      Send(std::move(m), /*after_persist=*/false);
    }
  }
}

Ready Node::TakeReady() {
  FlushCoalesced();
  const int64_t commit = CommitTarget();
  Ready r = std::move(ready_);
  ready_ = Ready();
  r.commit_zxid = commit;
  return r;
}

void Node::Advance(const Ready& r) {
  if (r.install_snapshot) {
    persisted_zxid_ = r.install_snapshot->zxid;
    applied_ = std::max(applied_, r.install_snapshot->zxid);
  }
  if (r.truncate_after) {
    persisted_zxid_ = std::min(persisted_zxid_, *r.truncate_after);
  }
  if (!r.entries.empty()) {
    persisted_zxid_ = std::max(persisted_zxid_, r.entries.back().zxid);
  }
  // A truncation queued after this Ready was taken wins.
  persisted_zxid_ = std::min(persisted_zxid_, last_zxid_);
  unpersisted_.erase(unpersisted_.begin(),
                     unpersisted_.upper_bound(persisted_zxid_));
  if (r.commit_zxid > applied_) applied_ = r.commit_zxid;
  if (role_ == Role::kLeading) {
    // The leader's own fsync is its ACK.
    for (auto& [zxid, o] : outstanding_) {
      if (zxid <= persisted_zxid_) o.acks.insert(config_.my_id);
    }
    TryCommit();
  }
}

// ------------------------------------------------------------------ leader

void Node::EnterPhase(LeaderPhase phase, int64_t now_ms) {
  leader_phase_ = phase;
  phase_deadline_ms_ = now_ms + config_.init_limit * config_.tick_ms;
}

void Node::StepLeader(const Message& m, int64_t now_ms) {
  if (m.type == MsgType::kFollowerInfo) {
    LeaderOnFollowerInfo(m, now_ms);
    return;
  }
  auto it = learners_.find(m.from);
  if (it == learners_.end() || it->second.conn != m.conn) return;  // stale
  LearnerState& l = it->second;
  if (m.seq != l.recv_seq + 1) {
    learners_.erase(it);  // a gap: this connection is broken
    return;
  }
  l.recv_seq = m.seq;
  l.last_heard_ms = now_ms;
  switch (m.type) {
    case MsgType::kAckEpoch:
      LeaderOnAckEpoch(l, m, now_ms);
      break;
    case MsgType::kAck:
      LeaderOnAck(m.from, l, m, now_ms);
      break;
    case MsgType::kRequest:
      if (leader_phase_ == LeaderPhase::kBroadcast) {
        ready_.requests.push_back(m);
      }
      break;
    case MsgType::kPing:
      if (!m.data.empty()) ready_.session_touches.push_back({m.from, m.data});
      break;
    default:
      break;
  }
}

void Node::LeaderOnFollowerInfo(const Message& m, int64_t now_ms) {
  const bool participant = IsParticipant(m.from);
  if (!participant && config_.observers.count(m.from) == 0) return;
  if (m.observer == participant) return;  // its role disagrees with ours
  auto existing = learners_.find(m.from);
  if (existing != learners_.end() && existing->second.conn == m.conn) {
    existing->second.last_heard_ms = now_ms;
    return;  // a repeated knock on a connection we already have
  }
  LearnerState l;
  l.conn = m.conn;
  l.observer = m.observer;
  l.accepted_epoch = m.epoch;
  l.last_heard_ms = now_ms;
  learners_[m.from] = std::move(l);
  if (leader_phase_ == LeaderPhase::kDiscovery) {
    LeaderMaybeChooseEpoch(now_ms);
    return;
  }
  // The epoch is chosen: this learner joins late.
  Message info;
  info.type = MsgType::kLeaderInfo;
  info.to = m.from;
  info.conn = m.conn;
  info.epoch = new_epoch_;
  info.zxid = MakeZxid(new_epoch_, 0);
  Send(std::move(info));
}

void Node::LeaderMaybeChooseEpoch(int64_t now_ms) {
  size_t voters = 1;  // us
  int64_t max_epoch = accepted_epoch_;
  for (const auto& [id, l] : learners_) {
    if (l.observer) continue;
    ++voters;
    max_epoch = std::max(max_epoch, l.accepted_epoch);
  }
  if (!IsQuorum(voters)) return;
  new_epoch_ = max_epoch + 1;
  accepted_epoch_ = new_epoch_;
  ready_.accepted_epoch = new_epoch_;
  // Sent after acceptedEpoch is durable (Ready::messages).
  for (const auto& [id, l] : learners_) {
    Message info;
    info.type = MsgType::kLeaderInfo;
    info.to = id;
    info.conn = l.conn;
    info.epoch = new_epoch_;
    info.zxid = MakeZxid(new_epoch_, 0);
    Send(std::move(info));
  }
  EnterPhase(LeaderPhase::kEpochAck, now_ms);
  LeaderMaybeFinishEpochAcks(now_ms);
}

void Node::LeaderOnAckEpoch(LearnerState& l, const Message& m, int64_t now_ms) {
  if (l.acked_epoch) return;
  if (!l.observer && leader_phase_ <= LeaderPhase::kEpochAck) {
    // A voter more recent than us means the election chose badly.
    if (m.epoch > current_epoch_ ||
        (m.epoch == current_epoch_ && m.zxid > last_zxid_)) {
      GoLooking(now_ms);
      return;
    }
  }
  l.acked_epoch = true;
  l.last_zxid = m.zxid;
  l.committed = m.committed;
  l.epoch_lasts = m.epoch_lasts;
  if (leader_phase_ == LeaderPhase::kEpochAck) {
    LeaderMaybeFinishEpochAcks(now_ms);
  } else if (leader_phase_ >= LeaderPhase::kSync) {
    SyncLearner(m.from, l);
  }
}

void Node::LeaderMaybeFinishEpochAcks(int64_t now_ms) {
  size_t voters = 1;
  for (const auto& [id, l] : learners_) {
    if (!l.observer && l.acked_epoch) ++voters;
  }
  if (!IsQuorum(voters)) return;
  current_epoch_ = new_epoch_;
  ready_.current_epoch = new_epoch_;
  EnterPhase(LeaderPhase::kSync, now_ms);
  self_acked_newleader_ = true;  // our history is ours; durable below
  for (auto& [id, l] : learners_) {
    if (l.acked_epoch) SyncLearner(id, l);
  }
  LeaderMaybeEstablish(now_ms);
}

void Node::SyncLearner(int64_t id, LearnerState& l) {
  // The common point of the two logs (see the header).
  int64_t common = l.committed;
  for (auto it = l.epoch_lasts.rbegin(); it != l.epoch_lasts.rend(); ++it) {
    auto mine = epoch_lasts_.find(it->first);
    if (mine == epoch_lasts_.end()) continue;
    common = std::max(common, std::min(it->second, mine->second));
    break;
  }
  Message head;
  head.to = id;
  head.conn = l.conn;
  // Observers get committed entries only (the history, before BROADCAST);
  // the rest reaches them as INFORM.
  const int64_t upto = !l.observer ? last_zxid_
                       : leader_phase_ == LeaderPhase::kBroadcast
                           ? committed_
                           : history_last_;
  absl::StatusOr<std::vector<Entry>> entries =
      common <= upto ? ReadEntries(common, upto)
                     : absl::NotFoundError("ahead of our log");
  if (entries.ok()) {
    head.type = common == l.last_zxid ? MsgType::kDiff : MsgType::kTrunc;
    head.zxid = common;
  } else {
    const std::optional<int64_t> snap_zxid = storage_->LatestSnapshotZxid();
    entries = snap_zxid ? ReadEntries(*snap_zxid, upto)
                        : absl::NotFoundError("no snapshot");
    if (!entries.ok()) {
      learners_.erase(id);  // nothing to sync it with; it will retry
      return;
    }
    head.type = MsgType::kSnap;
    head.zxid = *snap_zxid;
  }
  Send(std::move(head));
  for (const Entry& e : *entries) {
    Message p;
    p.type = MsgType::kProposal;
    p.to = id;
    p.conn = l.conn;
    p.zxid = e.zxid;
    p.entry = e;
    Send(std::move(p));
    if (!l.observer && e.zxid <= committed_ &&
        leader_phase_ == LeaderPhase::kBroadcast) {
      Message c;
      c.type = MsgType::kCommit;
      c.to = id;
      c.conn = l.conn;
      c.zxid = e.zxid;
      Send(std::move(c));
    }
  }
  Message nl;
  nl.type = MsgType::kNewLeader;
  nl.to = id;
  nl.conn = l.conn;
  nl.epoch = new_epoch_;
  nl.zxid = MakeZxid(new_epoch_, 0);
  Send(std::move(nl));
  l.synced = true;
  l.epoch_lasts.clear();
}

void Node::LeaderOnAck(int64_t from, LearnerState& l, const Message& m,
                       int64_t now_ms) {
  if (CounterOf(m.zxid) == 0) {
    // The ACK of NEWLEADER (or of UPTODATE, which we ignore).
    if (m.zxid != MakeZxid(new_epoch_, 0) || !l.synced) return;
    if (!l.acked_newleader) {
      l.acked_newleader = true;
      if (leader_phase_ == LeaderPhase::kSync) {
        LeaderMaybeEstablish(now_ms);
      } else if (leader_phase_ == LeaderPhase::kBroadcast) {
        SendUpToDate(from, l);
      }
    }
    return;
  }
  if (l.observer || !l.synced) return;
  auto it = outstanding_.find(m.zxid);
  if (it == outstanding_.end()) return;  // committed already, or unknown
  // An ACK for zxid z means the follower logged everything up to z.
  for (auto o = outstanding_.begin();
       o != outstanding_.end() && o->first <= m.zxid; ++o) {
    o->second.acks.insert(from);
  }
  TryCommit();
}

void Node::LeaderMaybeEstablish(int64_t now_ms) {
  size_t voters = self_acked_newleader_ ? 1 : 0;
  for (const auto& [id, l] : learners_) {
    if (!l.observer && l.acked_newleader) ++voters;
  }
  if (!IsQuorum(voters)) return;
  // A quorum holds our whole history: it is committed.
  EnterPhase(LeaderPhase::kBroadcast, now_ms);
  committed_ = std::max(committed_, history_last_);
  election_.SetDecidedVote(Vote{config_.my_id, last_zxid_, new_epoch_});
  for (auto& [id, l] : learners_) {
    if (l.acked_newleader) SendUpToDate(id, l);
  }
}

void Node::SendUpToDate(int64_t id, LearnerState& l) {
  Message m;
  m.type = MsgType::kUpToDate;
  m.to = id;
  m.conn = l.conn;
  m.zxid = committed_;
  Send(std::move(m));
  l.uptodate = true;
}

void Node::TryCommit() {
  while (!outstanding_.empty()) {
    auto it = outstanding_.begin();
    size_t voters = 0;
    for (int64_t id : it->second.acks) {
      if (IsParticipant(id)) ++voters;
    }
    if (!IsQuorum(voters)) return;
    committed_ = it->first;
    commit_pending_ = true;  // followers: one COMMIT for the lot
    for (const auto& [id, l] : learners_) {
      if (!l.synced || !l.observer) continue;
      // Observers get each committed entry (they saw no PROPOSAL).
      Message m;
      m.to = id;
      m.conn = l.conn;
      m.zxid = it->first;
      m.type = MsgType::kInform;
      m.entry = it->second.entry;
      Send(std::move(m), /*after_persist=*/false);
    }
    outstanding_.erase(it);
  }
}

void Node::LeaderTick(int64_t now_ms) {
  // Drop silent learners.
  for (auto it = learners_.begin(); it != learners_.end();) {
    const int64_t limit =
        (it->second.uptodate ? config_.sync_limit : config_.init_limit) *
        config_.tick_ms;
    if (now_ms - it->second.last_heard_ms > limit) {
      it = learners_.erase(it);
    } else {
      ++it;
    }
  }
  if (leader_phase_ != LeaderPhase::kBroadcast) {
    if (now_ms > phase_deadline_ms_) GoLooking(now_ms);
    return;
  }
  size_t voters = 1;
  for (const auto& [id, l] : learners_) {
    if (!l.observer && l.acked_newleader) ++voters;
  }
  if (!IsQuorum(voters)) {
    // "Not sufficient followers synced, only synced with sids: ..."
    GoLooking(now_ms);
    return;
  }
  if (now_ms >= next_ping_ms_) {
    next_ping_ms_ = now_ms + config_.tick_ms / 2;
    for (const auto& [id, l] : learners_) {
      Message m;
      m.type = MsgType::kPing;
      m.to = id;
      m.conn = l.conn;
      m.zxid = last_zxid_;
      Send(std::move(m), /*after_persist=*/false);
    }
  }
}

// ----------------------------------------------------------------- learner

void Node::SendToLeader(MsgType type, int64_t zxid, bool after_persist) {
  Message m;
  m.type = type;
  m.to = leader_id_;
  m.conn = conn_;
  m.zxid = zxid;
  Send(std::move(m), after_persist);
}

void Node::LearnerAppend(const Entry& e) {
  if (e.zxid <= last_zxid_) return;  // already logged (a duplicate)
  AppendLocal(e);
}

void Node::LearnerMaybeCommit() {
  if (learner_phase_ != LearnerPhase::kBroadcast) return;
  committed_ = std::max(committed_, std::min(commit_seen_, last_zxid_));
}

void Node::StepLearner(const Message& m, int64_t now_ms) {
  if (m.from != leader_id_ || m.conn != conn_) return;  // stale
  if (m.seq != recv_seq_ + 1) {
    GoLooking(now_ms);  // a gap: this connection is broken
    return;
  }
  recv_seq_ = m.seq;
  last_heard_ms_ = now_ms;
  switch (m.type) {
    case MsgType::kLeaderInfo: {
      if (learner_phase_ != LearnerPhase::kConnecting) return;
      if (m.epoch < accepted_epoch_) {
        GoLooking(now_ms);  // a leader from the past
        return;
      }
      Message ack;
      ack.type = MsgType::kAckEpoch;
      ack.to = leader_id_;
      ack.conn = conn_;
      ack.zxid = last_zxid_;
      ack.committed = committed_;
      ack.epoch_lasts.assign(epoch_lasts_.begin(), epoch_lasts_.end());
      if (m.epoch > accepted_epoch_) {
        accepted_epoch_ = m.epoch;
        ready_.accepted_epoch = m.epoch;
        ack.epoch = current_epoch_;
      } else {
        ack.epoch = -1;
      }
      Send(std::move(ack));  // after acceptedEpoch is durable
      learner_phase_ = LearnerPhase::kSyncing;
      return;
    }
    case MsgType::kDiff:
      return;
    case MsgType::kTrunc:
      if (m.zxid < committed_) {  // would undo committed state: refuse
        GoLooking(now_ms);
        return;
      }
      TruncateLocal(m.zxid);
      return;
    case MsgType::kSnap:
      ready_.entries.clear();
      ready_.truncate_after.reset();
      ready_.install_snapshot = SnapshotInstall{m.zxid, m.from};
      unpersisted_.clear();
      last_zxid_ = m.zxid;
      persisted_zxid_ = std::min(persisted_zxid_, m.zxid);
      epoch_lasts_.clear();
      committed_ = std::max(committed_, m.zxid);
      return;
    case MsgType::kProposal:
      LearnerAppend(m.entry);
      if (role_ == Role::kFollowing &&
          learner_phase_ != LearnerPhase::kSyncing) {
        ack_pending_ = std::max(ack_pending_, m.zxid);  // see FlushCoalesced
      }
      return;
    case MsgType::kCommit:
      commit_seen_ = std::max(commit_seen_, m.zxid);
      LearnerMaybeCommit();
      return;
    case MsgType::kInform:
      LearnerAppend(m.entry);
      commit_seen_ = std::max(commit_seen_, m.zxid);
      LearnerMaybeCommit();
      return;
    case MsgType::kNewLeader:
      if (learner_phase_ != LearnerPhase::kSyncing) return;
      current_epoch_ = m.epoch;
      ready_.current_epoch = m.epoch;
      learner_phase_ = LearnerPhase::kSynced;
      SendToLeader(MsgType::kAck, m.zxid);  // after log + epoch are durable
      // Proposals of this epoch that came with the sync were not ACKed.
      if (role_ == Role::kFollowing && EpochOf(last_zxid_) == m.epoch &&
          CounterOf(last_zxid_) != 0) {
        SendToLeader(MsgType::kAck, last_zxid_);
      }
      return;
    case MsgType::kUpToDate:
      if (learner_phase_ != LearnerPhase::kSynced) return;
      learner_phase_ = LearnerPhase::kBroadcast;
      election_.SetDecidedVote(Vote{leader_id_, last_zxid_, current_epoch_});
      commit_seen_ = std::max(commit_seen_, m.zxid);
      LearnerMaybeCommit();
      return;
    case MsgType::kPing: {
      Message reply;
      reply.type = MsgType::kPing;
      reply.to = leader_id_;
      reply.conn = conn_;
      reply.zxid = m.zxid;
      reply.data = std::move(session_touches_);  // ZooKeeper's ping body
      session_touches_.clear();
      Send(std::move(reply), /*after_persist=*/false);
      return;
    }
    default:
      return;
  }
}

void Node::SendFollowerInfo(int64_t now_ms) {
  last_info_sent_ms_ = now_ms;
  Message m;
  m.type = MsgType::kFollowerInfo;
  m.to = leader_id_;
  m.conn = conn_;
  m.epoch = accepted_epoch_;
  m.zxid = MakeZxid(accepted_epoch_, 0);
  m.observer = role_ == Role::kObserving;
  Send(std::move(m), /*after_persist=*/false);
}

void Node::LearnerTick(int64_t now_ms) {
  // The leader may not have finished its own election yet: knock again
  // until it answers (ZooKeeper's connectToLeader retries). A tenth of a
  // tick, not a whole one: the leader usually settles a few ms after us,
  // and every ms here is fail-over time (repeated knocks are idempotent).
  if (learner_phase_ == LearnerPhase::kConnecting &&
      now_ms - last_info_sent_ms_ >=
          std::max<int64_t>(1, config_.tick_ms / 10)) {
    SendFollowerInfo(now_ms);
  }
  const int64_t limit =
      (learner_phase_ == LearnerPhase::kBroadcast ? config_.sync_limit
                                                  : config_.init_limit) *
      config_.tick_ms;
  if (now_ms - last_heard_ms_ > limit) GoLooking(now_ms);
}

}  // namespace rockeeper::zab
