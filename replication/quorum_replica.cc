#include "replication/quorum_replica.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/state_dir.h"
#include "replication/defer_scope.h"

namespace rockeeper::replication {
namespace {

// The zxid a SNAP install left the log starting after (see the header).
constexpr char kLogBaseFile[] = "logBase";

int64_t NowMs() {
  // A monotonic clock: the core's timeouts must not jump with wall time.
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<QuorumReplica>> QuorumReplica::Open(
    const QuorumReplicaOptions& options, SendFn send) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create ", options.data_dir, ": ", ec.message()));
  }
  std::unique_ptr<QuorumReplica> r(new QuorumReplica());
  r->options_ = options;
  // Request ids must not repeat across restarts: txns forwarded by an
  // earlier run of this server may still be applied (catch-up) while new
  // requests wait, and must not answer them.
  r->next_request_id_ = absl::ToUnixMicros(absl::Now());
  r->send_ = std::move(send);
  r->epoch_dir_ = options.data_dir;

  engine::TxnLogOptions log_options;
  log_options.dir = options.data_log_dir.empty()
                        ? (fs::path(options.data_dir) / "log").string()
                        : options.data_log_dir;
  log_options.preallocate_bytes = options.log_preallocate_bytes;
  log_options.segment_max_bytes = options.log_segment_max_bytes;
  log_options.sync = options.force_sync;
  absl::StatusOr<std::unique_ptr<engine::TxnLog>> log =
      engine::TxnLog::Open(log_options);
  if (!log.ok()) return log.status();
  r->log_ = *std::move(log);

  // Which state dir is current ("state", or the last SNAP installed); the
  // others are leftovers of earlier installs.
  absl::StatusOr<std::string> current =
      engine::CurrentStateDirName(options.data_dir);
  if (!current.ok()) return current.status();
  r->current_state_dir_ = *current;
  engine::RemoveOtherStateDirs(options.data_dir, *current);
  engine::StateDbOptions db_options = options.state_db;
  db_options.path = (fs::path(options.data_dir) / *current).string();
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      engine::StateDb::Open(db_options);
  if (!db.ok()) return db.status();
  r->dbs_.push_back(*std::move(db));
  r->db_ptr_.store(r->dbs_.back().get());
  // No log replay here: records after last_applied_zxid may be uncommitted;
  // the leader's UPTODATE / COMMITs decide (they are applied from the log).
  r->prep_ = std::make_unique<engine::Prep>(&r->cur_db(), options.prep);
  r->snapshots_ = std::make_unique<engine::SnapshotStore>(
      (fs::path(options.data_dir) / "snapshots").string());
  if (absl::StatusOr<int> removed = r->snapshots_->RemoveUnfinished();
      !removed.ok()) {
    return removed.status();
  } else if (*removed > 0) {
    std::fprintf(stderr, "INFO removed %d unfinished snapshot(s)\n", *removed);
  }
  r->storage_ =
      std::make_unique<zab::TxnLogStorage>(r->log_.get(), r->snapshots_.get());
  absl::StatusOr<std::optional<int64_t>> base =
      zab::ReadEpochFile(r->epoch_dir_, kLogBaseFile);
  if (!base.ok()) return base.status();
  if (base->has_value()) r->storage_->set_log_base(**base);
  r->scheduler_ = std::make_unique<engine::SnapshotScheduler>(
      options.snap_count, static_cast<uint64_t>(options.node.my_id) * 7919);
  absl::StatusOr<zab::DurableState> ds = zab::LoadDurableState(
      r->epoch_dir_, *r->log_, r->cur_db().last_applied_zxid());
  if (!ds.ok()) return ds.status();
  r->node_ = std::make_unique<zab::Node>(options.node, *ds, r->storage_.get(),
                                         NowMs());
  r->PublishStatus();
  r->driver_ = std::thread([raw = r.get()] {
    pthread_setname_np(pthread_self(), "rk-zab");
    raw->Loop();
  });
  r->flusher_ = std::thread([raw = r.get()] {
    pthread_setname_np(pthread_self(), "rk-snapshot");
    raw->SnapshotLoop();
  });
  r->appender_ = std::thread([raw = r.get()] {
    pthread_setname_np(pthread_self(), "rk-zab-log");
    raw->AppendLoop();
  });
  return r;
}

QuorumReplica::~QuorumReplica() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (driver_.joinable()) driver_.join();
  {
    // Only now: the driver's last checkpoint is queued and gets finished.
    absl::MutexLock lock(&mu_);
    snapshot_stop_ = true;
  }
  if (flusher_.joinable()) flusher_.join();
  {
    absl::MutexLock lock(&append_mu_);
    append_stop_ = true;
  }
  if (appender_.joinable()) appender_.join();
}

void QuorumReplica::AppendLoop() {
  for (;;) {
    const std::vector<engine::LogRecord>* job;
    {
      absl::MutexLock lock(&append_mu_);
      append_mu_.Await(absl::Condition(
          +[](QuorumReplica* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->append_mu_) {
            return r->append_stop_ || r->append_job_ != nullptr;
          },
          this));
      if (append_stop_) return;
      job = append_job_;
    }
    const absl::Time t0 = absl::Now();
    absl::Status s = log_->AppendBatch(*job);
    if (s.ok() && options_.on_log_batch) {
      options_.on_log_batch(job->size(),
                            absl::ToInt64Microseconds(absl::Now() - t0));
    }
    absl::MutexLock lock(&append_mu_);
    append_status_ = std::move(s);
    append_job_ = nullptr;
    append_done_ = true;
  }
}

absl::Status QuorumReplica::AppendAndApplyBefore(
    const std::vector<engine::LogRecord>& records) {
  // The newest txn committed and logged before these records whose
  // payloads, from the next one to apply on, are all in memory (the log is
  // not read while it is appended to). ApplyUpTo wants an existing zxid.
  const int64_t applied = cur_db().last_applied_zxid();
  int64_t target = 0;
  auto upper = unapplied_.upper_bound(
      std::min(commit_target_, records.front().zxid - 1));
  if (upper != unapplied_.begin()) target = std::prev(upper)->first;
  const bool overlap = target > applied && unapplied_.contains(applied + 1);
  if (!overlap) {
    const absl::Time t0 = absl::Now();
    absl::Status s = log_->AppendBatch(records);
    if (s.ok() && options_.on_log_batch) {
      options_.on_log_batch(records.size(),
                            absl::ToInt64Microseconds(absl::Now() - t0));
    }
    return s;
  }
  {
    absl::MutexLock lock(&append_mu_);
    append_job_ = &records;
    append_done_ = false;
  }
  // A round under load carries new entries and the commit of earlier ones:
  // their applies (one WriteBatch, completions) overlap the fdatasync.
  absl::Status applied_status = ApplyUpTo(target);
  absl::Status s;
  {
    absl::MutexLock lock(&append_mu_);
    append_mu_.Await(absl::Condition(&append_done_));
    s = append_status_;
  }
  // Either error stops the replica (the caller Fails with it).
  return applied_status.ok() ? s : applied_status;
}

void QuorumReplica::Deliver(zab::Message m) {
  absl::MutexLock lock(&mu_);
  inbox_.push_back(std::move(m));
}

void QuorumReplica::PeerDisconnected(int64_t peer) {
  absl::MutexLock lock(&mu_);
  disconnects_.push_back(peer);
}

void QuorumReplica::Submit(const engine::RequestContext& ctx,
                           const engine::WriteRequest& request, Done done) {
  SubmitGated(ctx, request, nullptr, std::move(done));
}

void QuorumReplica::SubmitGated(const engine::RequestContext& ctx,
                                const engine::WriteRequest& request,
                                std::shared_ptr<ApplyGate> gate, Done done) {
  uint64_t claim = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!stop_ && health_.ok()) {
      submits_.push_back(PendingSubmit{ctx, request, std::move(done),
                                       std::nullopt, std::move(gate)});
      if (submit_claimed_ && claimer_ == std::this_thread::get_id()) {
        ++claimed_submits_;  // joins the claimer's round
        return;
      }
      // All quiet: this thread runs the round (the driver's wait condition
      // stays false unless other work comes).
      const bool idle = DeferScope::Active() && submits_.size() == 1 &&
                        inbox_.empty() && !submit_claimed_ &&
                        !inline_running_ && !round_running_;
      if (!idle) return;
      submit_claimed_ = true;
      claimer_ = std::this_thread::get_id();
      claimed_submits_ = 1;
      claim = ++claim_number_;
    }
  }
  if (claim != 0) {
    DeferScope::DeferLast([this, claim] { RunClaimedRound(claim); });
    return;
  }
  done(SubmitResult{absl::UnavailableError("replica stopped"), {}, {}});
}

void QuorumReplica::RunClaimedRound(uint64_t claim) {
  {
    // A round that ran meanwhile (the driver, woken by other work, or a
    // transport thread) took the submits, and the claim with them.
    absl::MutexLock lock(&mu_);
    if (!submit_claimed_ || claim_number_ != claim) return;
  }
  // What the round's completions defer lands in the scope being closed and
  // runs after this returns, with driver_mu_ released.
  absl::MutexLock driver(&driver_mu_);
  RunRound();
  claimed_rounds_.fetch_add(1, std::memory_order_relaxed);
}

int64_t QuorumReplica::last_proposed_zxid() const {
  absl::MutexLock lock(&mu_);
  return last_proposed_published_;
}

absl::Status QuorumReplica::health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

ReplicaStatus QuorumReplica::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void QuorumReplica::SetApplyListener(ApplyListener fn) {
  absl::MutexLock lock(&visibility_mu_);
  listener_ = std::move(fn);
}

bool QuorumReplica::is_session_authority() const {
  absl::MutexLock lock(&mu_);
  return status_.mode == "leader" && status_.serving;
}

void QuorumReplica::RelaySessionTouches(std::vector<int64_t> session_ids) {
  absl::MutexLock lock(&mu_);
  touches_to_relay_.insert(touches_to_relay_.end(), session_ids.begin(),
                           session_ids.end());
}

void QuorumReplica::SetSessionTouchListener(
    std::function<void(const std::vector<int64_t>&)> fn) {
  absl::MutexLock lock(&mu_);
  touch_listener_ = std::move(fn);
}

void QuorumReplica::LogRoleChange(const ReplicaStatus& s) {
  // As ZooKeeper's "LOOKING" / "LEADING" / "FOLLOWING" lines: who led
  // which epoch, and with what history, is what a post-mortem needs.
  const std::tuple<std::string, bool, int64_t, int64_t> now{
      s.mode, s.serving, s.leader_id, s.current_epoch};
  if (now == logged_role_) return;
  logged_role_ = now;
  std::fprintf(stderr,
               "INFO zab: %s%s, leader %lld, epoch accepted %lld current "
               "%lld, zxid logged 0x%llx committed 0x%llx applied 0x%llx\n",
               s.mode.c_str(), s.serving ? " (serving)" : "",
               static_cast<long long>(s.leader_id),
               static_cast<long long>(node_->accepted_epoch()),
               static_cast<long long>(s.current_epoch),
               static_cast<unsigned long long>(s.last_logged_zxid),
               static_cast<unsigned long long>(node_->committed_zxid()),
               static_cast<unsigned long long>(s.last_applied_zxid));
}

void QuorumReplica::PublishStatus() {
  ReplicaStatus s;
  s.mode = zab::RoleName(node_->role());
  if (node_->role() == zab::Role::kLooking) s.mode = "looking";
  s.serving = node_->serving();
  s.leader_id = node_->leader_id();
  s.current_epoch = node_->current_epoch();
  s.last_logged_zxid = node_->last_logged_zxid();
  s.last_applied_zxid = cur_db().last_applied_zxid();
  s.voters = node_->voters();
  if (node_->leading_epoch() == 0) {
    leading_since_ = absl::InfinitePast();
  } else if (leading_since_ == absl::InfinitePast()) {
    leading_since_ = absl::Now();
  }
  s.leading_since = leading_since_;
  const zab::Node::LearnerCounts lc = node_->learner_counts();
  s.learners = lc.learners;
  s.synced_followers = lc.synced_followers;
  s.synced_observers = lc.synced_observers;
  s.proposal_sizes = proposal_sizes_;
  LogRoleChange(s);
  serving_.store(s.serving);
  absl::MutexLock lock(&mu_);
  status_ = s;
  last_proposed_published_ = last_proposed_;
}

void QuorumReplica::DeliverAndRun(std::vector<zab::Message> messages) {
  // Closes after driver_mu_ is released: a lone completion finishes here.
  DeferScope scope;
  if (!driver_mu_.TryLock()) {
    // The driver (or another transport thread) is in a round: it takes
    // these next.
    absl::MutexLock lock(&mu_);
    for (zab::Message& m : messages) inbox_.push_back(std::move(m));
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    for (zab::Message& m : messages) inbox_.push_back(std::move(m));
    inline_running_ = true;
  }
  RunRound();
  {
    absl::MutexLock lock(&mu_);
    inline_running_ = false;  // what came meanwhile wakes the driver
  }
  driver_mu_.Unlock();
}

void QuorumReplica::RunRound() {
  std::vector<zab::Message> inbox;
  std::vector<int64_t> disconnects;
  std::deque<PendingSubmit> submits;
  bool preflushed = false;
  std::vector<int64_t> touches;
  bool gate_opened = false;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;  // the driver's shutdown takes over
    gate_opened = gate_opened_;
    gate_opened_ = false;
    preflushed = preflush_done_;
    preflush_done_ = false;
    inbox.swap(inbox_);
    disconnects.swap(disconnects_);
    submits.swap(submits_);
    touches.swap(touches_to_relay_);
    round_running_ = true;
    submit_claimed_ = false;  // the claimer's submits are in this round
    claimed_submits_ = 0;
  }
  struct RoundEnd {
    QuorumReplica* r;
    ~RoundEnd() {
      absl::MutexLock lock(&r->mu_);
      r->round_running_ = false;
    }
  } round_end{this};
  if (!touches.empty()) {
    // 8 bytes big-endian per session id: the PING reply's body.
    std::string body;
    body.reserve(touches.size() * 8);
    for (int64_t id : touches) {
      for (int shift = 56; shift >= 0; shift -= 8) {
        body.push_back(
            static_cast<char>((static_cast<uint64_t>(id) >> shift) & 0xff));
      }
    }
    node_->SetSessionTouches(std::move(body));
  }
  const int64_t now = NowMs();
  for (const zab::Message& m : inbox) node_->Step(m, now);
  for (int64_t peer : disconnects) node_->PeerDisconnected(peer, now);
  if (now >= next_tick_ms_) {
    node_->Tick(now);
    next_tick_ms_ = now + options_.tick_interval_ms;
  }
  const bool serving_leader =
      node_->role() == zab::Role::kLeading && node_->serving();
  if (was_serving_leader_ && !serving_leader) {
    // Our uncommitted proposals may be truncated by the next leader.
    FailPending(absl::UnavailableError("lost leadership"));
    prep_->Reset();
  }
  if (!was_serving_leader_ && serving_leader) {
    prep_->Reset();
    // Our history is committed now; Prep must see it applied first.
    establish_zxid_ = node_->committed_zxid();
  }
  was_serving_leader_ = serving_leader;
  const bool serving_learner = node_->role() != zab::Role::kLeading &&
                               node_->role() != zab::Role::kLooking &&
                               node_->serving();
  if (!serving_learner && !forwarded_.empty()) {
    FailForwarded(absl::UnavailableError("lost the leader"));
  }
  for (PendingSubmit& s : submits) held_.push_back(std::move(s));
  if (gate_opened) DropOpenGates();
  // Requests (and ones forwarded to us, which arrive in Readies), then
  // the Readies they cause, a few rounds, so nothing waits for a tick.
  for (int round = 0; round < 8; ++round) {
    // Txns held at a gate that opened (or timed out).
    absl::Status applied = ApplyCommitted();
    if (!applied.ok()) {
      Fail(applied);
      break;
    }
    // A new leader applies its history before it preps anything on top.
    const bool caught_up = cur_db().last_applied_zxid() >= establish_zxid_;
    while (!held_.empty() && (!serving_leader || caught_up)) {
      PendingSubmit s = std::move(held_.front());
      held_.pop_front();
      HandleSubmit(s, now);
    }
    for (int guard = 0; node_->HasReady() && guard < 64; ++guard) {
      zab::Ready r = node_->TakeReady();
      HandleReady(r);
    }
    if (held_.empty()) break;
  }
  if (preflushed && snapshot_due_) TakeSnapshot();
  PublishStatus();
}

void QuorumReplica::Loop() {
  {
    absl::MutexLock driver(&driver_mu_);
    next_tick_ms_ = NowMs();
  }
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      // While a transport thread runs a round inline it takes the work as
      // well: waking this thread for it would only cost a context switch.
      auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ ||
               (!inline_running_ && (!inbox_.empty() || !disconnects_.empty() ||
                                     submits_.size() > ClaimedSubmits() ||
                                     gate_opened_ || preflush_done_));
      };
      mu_.AwaitWithTimeout(absl::Condition(&work),
                           absl::Milliseconds(options_.tick_interval_ms));
      if (stop_) break;
    }
    DeferScope scope;  // closes after driver_mu_ is released
    absl::MutexLock driver(&driver_mu_);
    RunRound();
  }
  absl::MutexLock driver(&driver_mu_);
  FailPending(absl::UnavailableError("replica stopped"));
  std::deque<PendingSubmit> rest;
  {
    absl::MutexLock lock(&mu_);
    rest.swap(submits_);
  }
  for (PendingSubmit& s : held_) rest.push_back(std::move(s));
  for (PendingSubmit& s : rest) {
    if (s.done) {
      s.done(SubmitResult{absl::UnavailableError("replica stopped"), {}, {}});
    }
  }
  FailForwarded(absl::UnavailableError("replica stopped"));
  ClearGateHooks();
}

void QuorumReplica::ForwardSubmit(PendingSubmit& s) {
  ForwardedWrite w;
  w.origin_server = options_.node.my_id;
  w.request_id = ++next_request_id_;
  w.ctx = s.ctx;
  w.request = std::move(s.request);
  absl::Status st = node_->Forward(EncodeForwardedWrite(w));
  if (!st.ok()) {
    s.done(SubmitResult{absl::UnavailableError(st.message()), {}, {}});
    return;
  }
  forwarded_[w.request_id] = Forwarded{std::move(s.done), s.ctx.session_id};
  HoldForGate(gates_by_request_, w.request_id, std::move(s.gate),
              s.ctx.session_id);
}

void QuorumReplica::FailForwarded(const absl::Status& status) {
  // Their gates stay: the txns may still commit, and the reads they wait
  // for still run.
  std::map<int64_t, Forwarded> failed;
  failed.swap(forwarded_);
  for (auto& [id, f] : failed) f.done(SubmitResult{status, {}, {}});
}

void QuorumReplica::HoldForGate(std::map<int64_t, HeldGate>& gates, int64_t key,
                                std::shared_ptr<ApplyGate> gate,
                                int64_t session_id) {
  if (gate == nullptr || gate->is_open()) return;
  gate->OnOpen([this] {
    absl::MutexLock lock(&mu_);
    gate_opened_ = true;
  });
  gates[key] = HeldGate{std::move(gate), session_id};
}

void QuorumReplica::DropOpenGates() {
  for (auto* gates : {&gates_by_zxid_, &gates_by_request_}) {
    std::erase_if(*gates,
                  [](const auto& kv) { return kv.second.gate->is_open(); });
  }
}

void QuorumReplica::ClearGateHooks() {
  for (auto* gates : {&gates_by_zxid_, &gates_by_request_}) {
    for (auto& [key, held] : *gates) held.gate->ClearOnOpen();
    gates->clear();
  }
}

size_t QuorumReplica::CountUngated(const std::vector<engine::Txn>& txns,
                                   std::optional<int64_t>* gated_session) {
  if (gates_by_zxid_.empty() && gates_by_request_.empty()) return txns.size();
  for (size_t i = 0; i < txns.size(); ++i) {
    const auto& h = txns[i].header();
    std::map<int64_t, HeldGate>* gates = &gates_by_zxid_;
    auto it = gates->find(h.zxid());
    if (it == gates->end() && h.origin_server() == options_.node.my_id) {
      gates = &gates_by_request_;
      it = gates->find(h.origin_request_id());
    }
    if (it == gates->end()) continue;
    if (it->second.gate->is_open()) {
      gates->erase(it);
      continue;
    }
    const int64_t now = NowMs();
    if (blocked_zxid_ != h.zxid()) {
      blocked_zxid_ = h.zxid();
      blocked_since_ms_ = now;
      gate_waits_.fetch_add(1, std::memory_order_relaxed);
    } else if (now - blocked_since_ms_ >= options_.apply_gate_timeout_ms) {
      std::fprintf(stderr,
                   "WARN apply of txn 0x%llx waited %lld ms for its session's "
                   "earlier reads; applying it anyway\n",
                   static_cast<unsigned long long>(h.zxid()),
                   static_cast<long long>(now - blocked_since_ms_));
      gate_timeouts_.fetch_add(1, std::memory_order_relaxed);
      it->second.gate->ClearOnOpen();
      gates->erase(it);
      continue;
    }
    *gated_session = it->second.session_id;
    return i;
  }
  return txns.size();
}

void QuorumReplica::HandleSubmit(PendingSubmit& s, int64_t now_ms) {
  if (s.done && node_->role() != zab::Role::kLeading &&
      node_->role() != zab::Role::kLooking && node_->serving()) {
    ForwardSubmit(s);
    return;
  }
  if (node_->role() != zab::Role::kLeading || !node_->serving()) {
    if (!s.done) return;  // forwarded to a leader that lost office
    const int64_t leader = node_->leader_id();
    s.done(SubmitResult{
        absl::UnavailableError(
            leader >= 0 && node_->serving()
                ? absl::StrCat("not the leader; the leader is server ", leader)
                : std::string("no leader (the ensemble is electing one)")),
        {},
        {}});
    return;
  }
  const int64_t zxid = node_->NextZxid();
  const int64_t time_ms = absl::ToUnixMillis(absl::Now());
  absl::StatusOr<engine::PrepOutcome> outcome =
      prep_->Prepare(s.ctx, s.request, zxid, time_ms);
  if (s.forwarded) {
    // Answer through the log: the txn, or an error txn for a refusal.
    engine::PrepOutcome o;
    if (outcome.ok()) {
      o = *std::move(outcome);
    } else {
      o.err = engine::ZkError::kSystemError;
    }
    engine::Txn txn = o.txn ? *std::move(o.txn)
                            : MakeErrorTxn(*s.forwarded, o, zxid, time_ms);
    txn.mutable_header()->set_origin_server(s.forwarded->origin_server);
    txn.mutable_header()->set_origin_request_id(s.forwarded->request_id);
    std::string bytes = txn.SerializeAsString();
    const size_t size = bytes.size();
    absl::StatusOr<int64_t> proposed = node_->Propose(std::move(bytes), now_ms);
    if (!proposed.ok() || *proposed != zxid) {
      prep_->Reset();
    } else {
      last_proposed_ = zxid;
      proposal_sizes_.Add(size);
    }
    return;
  }
  Completion c;
  c.done = std::move(s.done);
  c.session_id = s.ctx.session_id;
  c.zxid = last_proposed_;  // a refused request completes in order
  if (!outcome.ok()) {
    c.status = outcome.status();
    completions_.push_back(std::move(c));
    CompleteUpTo(cur_db().last_applied_zxid());
    return;
  }
  c.outcome = std::make_shared<engine::PrepOutcome>(*std::move(outcome));
  {
    // A refusal is logged as an error txn, as ZooKeeper does: it takes this
    // zxid, which the reply carries.
    std::string bytes =
        c.outcome->txn.has_value()
            ? c.outcome->txn->SerializeAsString()
            : MakeErrorTxn(s.ctx, s.request, *c.outcome, zxid, time_ms)
                  .SerializeAsString();
    const size_t size = bytes.size();
    absl::StatusOr<int64_t> proposed = node_->Propose(std::move(bytes), now_ms);
    if (!proposed.ok() || *proposed != zxid) {
      prep_->Reset();
      c.status = absl::UnavailableError("could not propose");
      c.outcome.reset();
    } else {
      last_proposed_ = zxid;
      proposal_sizes_.Add(size);
      c.zxid = zxid;
      HoldForGate(gates_by_zxid_, zxid, std::move(s.gate), s.ctx.session_id);
    }
  }
  completions_.push_back(std::move(c));
  CompleteUpTo(cur_db().last_applied_zxid());
}

void QuorumReplica::HandleReady(zab::Ready& r) {
  size_t sent = 0;
  for (; sent < r.messages.size() && !r.messages[sent].after_persist; ++sent) {
    send_(std::move(r.messages[sent]));
  }
  if (sent > 0 && options_.flush_sends) options_.flush_sends();
  absl::Status s;
  if (r.install_snapshot) {
    s = InstallSnapshot(*r.install_snapshot);
    if (!s.ok()) {
      // The state is untouched: start over; the leader will try again.
      std::fprintf(stderr, "WARN SNAP sync from server %lld failed: %s\n",
                   static_cast<long long>(r.install_snapshot->from),
                   s.ToString().c_str());
      RestartNode(NowMs());
      return;
    }
  }
  if (r.truncate_after) {
    if (log_->last_zxid() > *r.truncate_after) {
      std::fprintf(stderr,
                   "INFO TRUNC from the leader: dropping the log after 0x%llx "
                   "(it ended at 0x%llx)\n",
                   static_cast<unsigned long long>(*r.truncate_after),
                   static_cast<unsigned long long>(log_->last_zxid()));
    }
    s = log_->TruncateAfter(*r.truncate_after);
    unapplied_.erase(unapplied_.upper_bound(*r.truncate_after),
                     unapplied_.end());
  }
  if (s.ok() && !r.entries.empty()) {
    std::vector<engine::LogRecord> records;
    records.reserve(r.entries.size());
    for (const zab::Entry& e : r.entries) {
      if (e.zxid <= log_->last_zxid()) continue;  // already there (restart)
      records.push_back(engine::LogRecord{e.zxid, e.data});
    }
    if (!records.empty()) {
      // This Ready's commit may let earlier entries apply during the sync.
      commit_target_ = std::max(commit_target_, r.commit_zxid);
      s = AppendAndApplyBefore(records);
    }
    for (zab::Entry& e : r.entries) unapplied_[e.zxid] = std::move(e.data);
  }
  if (s.ok() && r.accepted_epoch) {
    s = zab::WriteEpochFile(epoch_dir_, zab::kAcceptedEpochFile,
                            *r.accepted_epoch);
  }
  if (s.ok() && r.current_epoch) {
    s = zab::WriteEpochFile(epoch_dir_, zab::kCurrentEpochFile,
                            *r.current_epoch);
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  for (size_t i = sent; i < r.messages.size(); ++i) {
    send_(std::move(r.messages[i]));
  }
  if (r.messages.size() > sent && options_.flush_sends) {
    options_.flush_sends();
  }
  if (r.commit_zxid > 0) {
    commit_target_ = std::max(commit_target_, r.commit_zxid);
    s = ApplyCommitted();
    if (!s.ok()) {
      Fail(s);
      return;
    }
  }
  node_->Advance(r);
  if (!r.session_touches.empty()) {
    std::vector<int64_t> ids;
    for (const auto& [from, body] : r.session_touches) {
      for (size_t i = 0; i + 8 <= body.size(); i += 8) {
        uint64_t id = 0;
        for (size_t j = 0; j < 8; ++j) {
          id = (id << 8) | static_cast<uint8_t>(body[i + j]);
        }
        ids.push_back(static_cast<int64_t>(id));
      }
    }
    std::function<void(const std::vector<int64_t>&)> fn;
    {
      absl::MutexLock lock(&mu_);
      fn = touch_listener_;
    }
    if (fn) fn(ids);
  }
  for (zab::Message& m : r.requests) {
    absl::StatusOr<ForwardedWrite> w = DecodeForwardedWrite(m.data);
    if (!w.ok() || w->origin_server != m.from) {
      std::fprintf(stderr, "WARN bad forwarded write from server %lld\n",
                   static_cast<long long>(m.from));
      continue;
    }
    PendingSubmit s{w->ctx, w->request, nullptr, std::nullopt, nullptr};
    s.forwarded = *std::move(w);
    held_.push_back(std::move(s));
  }
}

absl::Status QuorumReplica::InstallSnapshot(const zab::SnapshotInstall& in) {
  namespace fs = std::filesystem;
  if (!options_.fetch_snapshot) {
    return absl::UnimplementedError("no snapshot transfer configured");
  }
  const std::string name = absl::StrCat("state.snap-", in.zxid);
  const fs::path incoming = fs::path(options_.data_dir) / name;
  std::error_code ec;
  if (name == current_state_dir_) {
    return absl::FailedPreconditionError("this snapshot is our state already");
  }
  fs::remove_all(incoming, ec);
  absl::Status s = options_.fetch_snapshot(in.from, in.zxid, incoming.string());
  if (!s.ok()) return s;
  engine::StateDbOptions o = options_.state_db;
  o.path = incoming.string();
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      engine::StateDb::Open(o);
  if (!db.ok()) return db.status();
  if ((*db)->last_applied_zxid() != in.zxid) {
    return absl::DataLossError(absl::StrCat(
        "snapshot 0x", absl::Hex(in.zxid), " from server ", in.from,
        " is at zxid 0x", absl::Hex((*db)->last_applied_zxid())));
  }
  // Switch readers over. The old DB stays open (retired, until shutdown):
  // a reader that does not hold the visibility mutex may still be using it.
  {
    absl::MutexLock visible(&visibility_mu_);
    dbs_.push_back(*std::move(db));
    db_ptr_.store(dbs_.back().get(), std::memory_order_release);
    prep_ = std::make_unique<engine::Prep>(dbs_.back().get(), options_.prep);
  }
  // The next start opens this one (the old dir is deleted then).
  s = engine::SetCurrentStateDirName(options_.data_dir, name);
  if (!s.ok()) {
    Fail(s);
    return absl::OkStatus();
  }
  current_state_dir_ = name;
  // The log restarts after the snapshot: nothing logged before matters.
  unapplied_.clear();
  s = log_->TruncateAfter(0);
  if (s.ok()) s = zab::WriteEpochFile(epoch_dir_, kLogBaseFile, in.zxid);
  if (!s.ok()) {
    Fail(s);
    return absl::OkStatus();
  }
  storage_->set_log_base(in.zxid);
  std::fprintf(stderr, "INFO installed snapshot 0x%llx from server %lld\n",
               static_cast<unsigned long long>(in.zxid),
               static_cast<long long>(in.from));
  return absl::OkStatus();
}

void QuorumReplica::MaybeSnapshot(size_t applied_txns) {
  if (options_.snap_count <= 0 ||
      !scheduler_->OnApplied(static_cast<int64_t>(applied_txns)) ||
      snapshot_due_) {
    return;  // a snapshot still on its way absorbs this one
  }
  // Most of a checkpoint's time is its flush of the memtables: the flusher
  // thread does it while this thread goes on; TakeSnapshot follows.
  snapshot_due_ = true;
  snapshot_due_at_ = absl::Now();
  absl::MutexLock lock(&mu_);
  preflush_wanted_ = true;
}

void QuorumReplica::SnapshotLoop() {
  for (;;) {
    engine::StateDb* db = nullptr;
    std::optional<SnapshotToFinish> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](QuorumReplica* r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(r->mu_) {
            return r->preflush_wanted_ || !r->to_finish_.empty() ||
                   r->snapshot_stop_;
          },
          this));
      if (!to_finish_.empty()) {
        // Even when stopping: a checkpoint taken is not left unnamed.
        job = std::move(to_finish_.front());
        to_finish_.pop_front();
      } else if (snapshot_stop_) {
        return;
      } else {
        preflush_wanted_ = false;
        db = db_ptr_.load();  // every StateDb opened stays open until we stop
      }
    }
    if (job.has_value()) {
      FinishSnapshot(*job);
      continue;
    }
    if (absl::Status s = db->Flush(); !s.ok()) {
      std::fprintf(stderr, "WARN flush before snapshot: %s\n",
                   s.ToString().c_str());
    }
    absl::MutexLock lock(&mu_);
    preflush_done_ = true;
  }
}

void QuorumReplica::TakeSnapshot() {
  snapshot_due_ = false;
  // On the driver thread, between two applies: the checkpoint is exact.
  const absl::Time paused = absl::Now();
  absl::StatusOr<engine::SnapshotStore::Pending> pending =
      snapshots_->Checkpoint(cur_db());
  const int64_t paused_ms = absl::ToInt64Milliseconds(absl::Now() - paused);
  if (!pending.ok()) {
    std::fprintf(stderr, "WARN snapshot failed: %s\n",
                 pending.status().ToString().c_str());
    return;
  }
  absl::MutexLock lock(&mu_);
  to_finish_.push_back({*std::move(pending), paused_ms, snapshot_due_at_});
}

void QuorumReplica::FinishSnapshot(const SnapshotToFinish& job) {
  absl::StatusOr<engine::SnapshotInfo> snap = snapshots_->Finish(job.pending);
  if (!snap.ok()) {
    std::fprintf(stderr, "WARN snapshot failed: %s\n",
                 snap.status().ToString().c_str());
    return;
  }
  const int64_t took_ms = absl::ToInt64Milliseconds(absl::Now() - job.due_at);
  engine::LogSnapshotTaken(*snap, took_ms, job.paused_ms);
  if (options_.on_snapshot) options_.on_snapshot(*snap, took_ms);
  log_->RequestRoll();  // as ZooKeeper: a log file per snapshot interval
  if (!options_.purge_after_snapshot) return;
  // Beside the driver: the log's purge is serialized with its appends and
  // truncations, and a follower's sync reads the log through an iterator
  // opened before it checks that the log reaches back far enough.
  absl::StatusOr<int64_t> oldest =
      snapshots_->Purge(options_.snap_retain_count);
  if (oldest.ok() && *oldest > 0) (void)log_->PurgeBefore(*oldest + 1);
}

absl::Status QuorumReplica::ApplyUpTo(int64_t zxid) {
  const int64_t applied = cur_db().last_applied_zxid();
  if (zxid <= applied) return absl::OkStatus();
  std::vector<engine::Txn> txns;
  // Payloads logged since we started are in memory; older ones (logged
  // before a restart) come from the log.
  auto first = unapplied_.upper_bound(applied);
  if (first == unapplied_.end() || first->first != applied + 1) {
    std::unique_ptr<engine::TxnLogIterator> it = log_->NewIterator(applied + 1);
    for (; it->Valid() && it->zxid() <= zxid; it->Next()) {
      if (unapplied_.count(it->zxid()) > 0) break;
      engine::Txn t;
      if (!t.ParseFromArray(it->payload().data(),
                            static_cast<int>(it->payload().size()))) {
        return absl::DataLossError(
            absl::StrCat("txn 0x", absl::Hex(it->zxid()), " does not parse"));
      }
      txns.push_back(std::move(t));
    }
    if (!it->status().ok()) return it->status();
  }
  for (auto it = unapplied_.upper_bound(
           txns.empty() ? applied : txns.back().header().zxid());
       it != unapplied_.end() && it->first <= zxid; ++it) {
    engine::Txn t;
    if (!t.ParseFromString(it->second)) {
      return absl::DataLossError(
          absl::StrCat("txn 0x", absl::Hex(it->first), " does not parse"));
    }
    txns.push_back(std::move(t));
  }
  if (txns.empty() || txns.back().header().zxid() != zxid) {
    return absl::DataLossError(absl::StrCat(
        "committed txns up to 0x", absl::Hex(zxid), " are not all logged"));
  }
  // Stop before a txn whose session's earlier reads have not run yet.
  std::optional<int64_t> gated_session;
  const size_t ungated = CountUngated(txns, &gated_session);
  if (ungated == 0) return absl::OkStatus();
  if (ungated < txns.size()) {
    txns.resize(ungated);
    zxid = txns.back().header().zxid();
  }
  // The gated txn's reads follow its session's completions: first in line.
  auto urgent = [&gated_session](int64_t session_id) {
    return gated_session.has_value() && *gated_session == session_id;
  };
  std::vector<engine::WatchTrigger> triggers;
  {
    absl::MutexLock visible(&visibility_mu_);
    absl::Status s = cur_db().Apply(txns, &triggers);
    if (!s.ok()) return s;
    prep_->OnApplied(zxid);
    if (listener_) listener_(txns, triggers);
    unapplied_.erase(unapplied_.begin(), unapplied_.upper_bound(zxid));
    // Local requests complete with their own triggers.
    absl::flat_hash_map<int64_t, std::vector<engine::WatchTrigger>> by_zxid;
    if (!listener_) {
      for (engine::WatchTrigger& t : triggers) {
        by_zxid[t.zxid].push_back(std::move(t));
      }
    }
    // A single request completed by this apply is "lone": its front end may
    // finish it on this thread once the round is over (DeferScope), instead
    // of waking a worker thread; more go to the workers as usual.
    size_t completing = 0;
    for (const engine::Txn& t : txns) {
      if (t.header().origin_server() == options_.node.my_id &&
          forwarded_.contains(t.header().origin_request_id())) {
        ++completing;
      }
    }
    for (auto c = completions_.begin();
         c != completions_.end() && c->zxid <= zxid && completing < 2; ++c) {
      ++completing;
    }
    const bool lone = completing == 1 && DeferScope::Active();
    // Requests this learner forwarded: answered by their txns.
    for (const engine::Txn& t : txns) {
      if (t.header().origin_server() != options_.node.my_id) continue;
      auto f = forwarded_.find(t.header().origin_request_id());
      if (f == forwarded_.end()) continue;
      SubmitResult result{absl::OkStatus(), OutcomeOfTxn(t), {}};
      result.zxid = t.header().zxid();
      result.urgent = urgent(f->second.session_id);
      result.lone = lone;
      auto tr = by_zxid.find(t.header().zxid());
      if (tr != by_zxid.end()) result.triggers = std::move(tr->second);
      Done done = std::move(f->second.done);
      forwarded_.erase(f);
      done(std::move(result));
    }
    while (!completions_.empty() && completions_.front().zxid <= zxid) {
      Completion c = std::move(completions_.front());
      completions_.pop_front();
      const bool has_txn = c.outcome && c.outcome->txn.has_value();
      // Moved, not copied: the completion owns the only reference.
      SubmitResult result{
          c.status,
          c.outcome ? std::move(*c.outcome) : engine::PrepOutcome{},
          {}};
      result.urgent = urgent(c.session_id);
      result.lone = lone;
      if (has_txn) {
        auto t = by_zxid.find(c.zxid);
        if (t != by_zxid.end()) result.triggers = std::move(t->second);
      }
      c.done(std::move(result));
    }
  }
  MaybeSnapshot(txns.size());
  return absl::OkStatus();
}

absl::Status QuorumReplica::ApplyCommitted() {
  const int64_t applied = cur_db().last_applied_zxid();
  // Committed txns not yet logged here (a SNAP install empties the log;
  // the entries after the snapshot follow) wait for their append.
  const int64_t target =
      std::min(commit_target_, std::max(log_->last_zxid(), applied));
  if (target <= applied) return absl::OkStatus();
  return ApplyUpTo(target);
}

void QuorumReplica::CompleteUpTo(int64_t applied) {
  while (!completions_.empty() && completions_.front().zxid <= applied) {
    Completion c = std::move(completions_.front());
    completions_.pop_front();
    SubmitResult r{c.status,
                   c.outcome ? std::move(*c.outcome) : engine::PrepOutcome{},
                   {}};
    if (c.outcome) r.zxid = c.zxid;
    c.done(std::move(r));
  }
}

void QuorumReplica::FailPending(const absl::Status& status) {
  while (!completions_.empty()) {
    Completion c = std::move(completions_.front());
    completions_.pop_front();
    // Whatever was proposed (a txn, or the error txn of a refusal that
    // may rest on uncommitted txns) is in doubt.
    if (c.outcome) {
      c.done(SubmitResult{status, {}, {}});
    } else {
      c.done(SubmitResult{
          c.status, c.outcome ? *c.outcome : engine::PrepOutcome{}, {}});
    }
  }
}

void QuorumReplica::RestartNode(int64_t now_ms) {
  FailPending(absl::UnavailableError("replication restarted"));
  FailForwarded(absl::UnavailableError("replication restarted"));
  prep_->Reset();
  unapplied_.clear();
  absl::StatusOr<zab::DurableState> ds =
      zab::LoadDurableState(epoch_dir_, *log_, cur_db().last_applied_zxid());
  if (!ds.ok()) {
    Fail(ds.status());
    return;
  }
  node_ =
      std::make_unique<zab::Node>(options_.node, *ds, storage_.get(), now_ms);
}

void QuorumReplica::Fail(const absl::Status& status) {
  std::fprintf(stderr, "ERROR replication stopped: %s\n",
               status.ToString().c_str());
  FailPending(status);
  FailForwarded(status);
  absl::MutexLock lock(&mu_);
  health_ = status;
  stop_ = true;  // the server must restart; recovery starts from the disk
}

}  // namespace rockeeper::replication
