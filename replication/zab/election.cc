#include "replication/zab/election.h"

#include <algorithm>
#include <limits>

namespace rockeeper::zab {

bool VoteBeats(const Vote& a, const Vote& b) {
  if (a.epoch != b.epoch) return a.epoch > b.epoch;
  if (a.zxid != b.zxid) return a.zxid > b.zxid;
  return a.leader > b.leader;
}

FastLeaderElection::FastLeaderElection(ElectionConfig config, int64_t last_zxid,
                                       int64_t epoch)
    : config_(std::move(config)), last_zxid_(last_zxid), epoch_(epoch) {
  proposal_ = OwnVote();
}

bool FastLeaderElection::is_observer() const {
  return config_.participants.count(config_.my_id) == 0;
}

void FastLeaderElection::SetOwnLog(int64_t last_zxid, int64_t epoch) {
  last_zxid_ = last_zxid;
  epoch_ = epoch;
}

Vote FastLeaderElection::OwnVote() const {
  if (is_observer()) {
    constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
    return Vote{kMin, kMin, kMin};  // never a candidate
  }
  return Vote{config_.my_id, last_zxid_, epoch_};
}

void FastLeaderElection::StartLooking(int64_t now_ms) {
  state_ = PeerState::kLooking;
  ++round_;
  proposal_ = OwnVote();
  received_.clear();
  out_of_election_.clear();
  finalize_at_ms_.reset();
  resend_interval_ms_ = 200;
  last_activity_ms_ = now_ms;
  SendToParticipants();
}

void FastLeaderElection::Send(int64_t to) {
  if (to == config_.my_id) return;
  outbox_.push_back({config_.my_id, to, proposal_, round_, state_});
}

void FastLeaderElection::SendToParticipants() {
  for (int64_t p : config_.participants) Send(p);
  if (!is_observer()) {
    // Our own vote counts towards our quorum.
    received_[config_.my_id] = proposal_;
  }
}

bool FastLeaderElection::HasQuorum(const std::map<int64_t, Vote>& votes,
                                   const Vote& v) const {
  size_t agree = 0;
  for (int64_t p : config_.participants) {
    auto it = votes.find(p);
    if (it != votes.end() && it->second == v) ++agree;
  }
  return agree * 2 > config_.participants.size();
}

bool FastLeaderElection::HasLeaderQuorum(const std::map<int64_t, Vote>& votes,
                                         const Vote& v) const {
  size_t agree = 0;
  for (int64_t p : config_.participants) {
    auto it = votes.find(p);
    if (it != votes.end() && it->second.leader == v.leader &&
        it->second.epoch == v.epoch) {
      ++agree;
    }
  }
  return agree * 2 > config_.participants.size();
}

void FastLeaderElection::SetDecidedVote(const Vote& v) {
  if (state_ != PeerState::kLooking) proposal_ = v;
}

void FastLeaderElection::Decide(const Vote& v) {
  proposal_ = v;
  finalize_at_ms_.reset();
  if (is_observer()) {
    state_ = PeerState::kObserving;
  } else {
    state_ =
        v.leader == config_.my_id ? PeerState::kLeading : PeerState::kFollowing;
  }
}

void FastLeaderElection::CheckOutOfElection(const Notification& n) {
  // A quorum of peers out of the election names this leader, and the
  // leader itself says it is LEADING: join it (late joiner).
  std::map<int64_t, Vote> votes;
  bool leader_leads = false;
  for (const auto& [sid, note] : out_of_election_) {
    votes[sid] = note.vote;
    if (sid == n.vote.leader && note.state == PeerState::kLeading &&
        note.vote.leader == n.vote.leader && note.vote.epoch == n.vote.epoch) {
      leader_leads = true;
    }
  }
  if (leader_leads && HasLeaderQuorum(votes, n.vote)) {
    round_ = n.round;
    Decide(n.vote);
  }
}

void FastLeaderElection::Step(const Notification& n, int64_t now_ms) {
  const bool from_participant = config_.participants.count(n.from) > 0;
  const bool from_observer = config_.observers.count(n.from) > 0;
  if (!from_participant && !from_observer) return;  // not in our config
  if (state_ != PeerState::kLooking) {
    // Out of the election: tell a LOOKING peer whom we follow.
    if (n.state == PeerState::kLooking) Send(n.from);
    return;
  }
  last_activity_ms_ = now_ms;
  if (!from_participant) {  // an observer: not a voter, just answer
    if (n.state == PeerState::kLooking) Send(n.from);
    return;
  }
  const bool candidate_ok = config_.participants.count(n.vote.leader) > 0;
  if (n.state == PeerState::kLooking) {
    if (n.round > round_) {
      round_ = n.round;
      received_.clear();
      finalize_at_ms_.reset();
      const Vote own = OwnVote();
      proposal_ = candidate_ok && VoteBeats(n.vote, own) ? n.vote : own;
      SendToParticipants();
    } else if (n.round < round_) {
      Send(n.from);  // bring the sender up to our round
      return;
    } else if (candidate_ok && VoteBeats(n.vote, proposal_)) {
      proposal_ = n.vote;
      finalize_at_ms_.reset();
      SendToParticipants();
    }
    if (candidate_ok) received_[n.from] = n.vote;
    if (HasQuorum(received_, proposal_)) {
      if (!finalize_at_ms_) finalize_at_ms_ = now_ms + config_.finalize_wait_ms;
    } else {
      finalize_at_ms_.reset();
    }
    return;
  }
  // FOLLOWING / LEADING / OBSERVING senders.
  if (n.state == PeerState::kObserving || !candidate_ok) return;
  out_of_election_[n.from] = n;
  if (n.round == round_) {
    received_[n.from] = n.vote;
    const bool leader_ok =
        n.vote.leader == config_.my_id ||
        (out_of_election_.count(n.vote.leader) > 0 &&
         out_of_election_[n.vote.leader].state == PeerState::kLeading);
    if (leader_ok && HasQuorum(received_, n.vote)) {
      Decide(n.vote);
      return;
    }
  }
  CheckOutOfElection(n);
}

void FastLeaderElection::Tick(int64_t now_ms) {
  if (state_ != PeerState::kLooking) return;
  if (finalize_at_ms_ && now_ms >= *finalize_at_ms_) {
    if (HasQuorum(received_, proposal_)) {
      Decide(proposal_);
      return;
    }
    finalize_at_ms_.reset();
  }
  if (now_ms - last_activity_ms_ >= resend_interval_ms_) {
    SendToParticipants();
    last_activity_ms_ = now_ms;
    resend_interval_ms_ =
        std::min(resend_interval_ms_ * 2, config_.max_notification_interval_ms);
  }
}

std::vector<Notification> FastLeaderElection::TakeOutbox() {
  std::vector<Notification> out;
  out.swap(outbox_);
  return out;
}

}  // namespace rockeeper::zab
