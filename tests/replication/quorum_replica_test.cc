// QuorumReplica: three ensemble members in one process, each with its own
// real txn log, epoch files and RocksDB state DB, connected by an in-process
// router (the network transport has its own test). Checks election,
// replication to every member, failover when the leader goes away, catch-up
// of a member that comes back, refusal of writes without a quorum, and
// apply gates (a committed txn waits for its session's earlier reads).
#include "replication/quorum_replica.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"
#include "replication/defer_scope.h"
#include "tests/engine/test_util.h"

namespace rockeeper::replication {
namespace {

using engine::testing::Create;
using engine::testing::TempDir;

// Hands messages to one replica as a raw peer stream's reader thread does:
// on a thread of its own, whatever has queued up as one DeliverAndRun call
// (which runs a round on this thread when the replica's driver idles).
class Courier {
 public:
  explicit Courier(QuorumReplica* to) : to_(to), thread_([this] { Run(); }) {}
  ~Courier() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }
  void Push(zab::Message m) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(m));
  }

 private:
  void Run() {
    for (;;) {
      std::vector<zab::Message> batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Courier* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
              return c->stop_ || !c->queue_.empty();
            },
            this));
        if (stop_) return;
        batch.swap(queue_);
      }
      to_->DeliverAndRun(std::move(batch));
    }
  }

  QuorumReplica* const to_;
  absl::Mutex mu_;
  std::vector<zab::Message> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the rest is built
};

// Routes messages between the replicas that are up. Messages to odd ids go
// through a Courier (DeliverAndRun, as from a raw peer stream), to even ids
// through Deliver (as from a gRPC stream), so every ensemble mixes both.
class Router {
 public:
  void Attach(int64_t id, QuorumReplica* r) {
    absl::MutexLock lock(&mu_);
    up_[id] = r;
    if (id % 2 == 1) couriers_[id] = std::make_unique<Courier>(r);
  }
  void Detach(int64_t id) {
    std::unique_ptr<Courier> courier;
    {
      absl::MutexLock lock(&mu_);
      up_.erase(id);
      auto it = couriers_.find(id);
      if (it != couriers_.end()) {
        courier = std::move(it->second);
        couriers_.erase(it);
      }
    }
    // Joined outside mu_: its round may be routing a message right now.
    courier.reset();
  }
  // Messages to and from a frozen member are dropped (as SIGSTOP would
  // leave them unread), until Thaw.
  void Freeze(int64_t id) {
    absl::MutexLock lock(&mu_);
    frozen_.insert(id);
  }
  void Thaw(int64_t id) {
    absl::MutexLock lock(&mu_);
    frozen_.erase(id);
  }
  void Route(zab::Message m) {
    absl::MutexLock lock(&mu_);
    if (frozen_.count(m.to) > 0 || frozen_.count(m.from) > 0) return;
    auto courier = couriers_.find(m.to);
    if (courier != couriers_.end()) {
      courier->second->Push(std::move(m));
      return;
    }
    auto it = up_.find(m.to);
    if (it != up_.end()) it->second->Deliver(std::move(m));
  }

 private:
  absl::Mutex mu_;
  std::map<int64_t, QuorumReplica*> up_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::unique_ptr<Courier>> couriers_ ABSL_GUARDED_BY(mu_);
  std::set<int64_t> frozen_ ABSL_GUARDED_BY(mu_);
};

class Ensemble {
 public:
  // snap_count > 0: snapshots every snap_count txns, and logs purged behind
  // them, so a member that falls behind is synced by SNAP.
  explicit Ensemble(int n, int64_t snap_count = 0,
                    int64_t apply_gate_timeout_ms = 5000)
      : n_(n),
        snap_count_(snap_count),
        apply_gate_timeout_ms_(apply_gate_timeout_ms) {
    for (int id = 1; id <= n; ++id) Start(id);
  }

  std::string DataDir(int64_t id) const {
    return dir_.Sub(absl::StrCat("server", id));
  }
  ~Ensemble() {
    for (int id = 1; id <= n_; ++id) Stop(id);
  }

  void Start(int64_t id) {
    QuorumReplicaOptions o;
    o.data_dir = DataDir(id);
    o.snap_count = snap_count_;
    o.apply_gate_timeout_ms = apply_gate_timeout_ms_;
    o.purge_after_snapshot = snap_count_ > 0;
    o.log_segment_max_bytes = 4096;  // so purges delete segments
    o.fetch_snapshot = [this](int64_t from, int64_t zxid,
                              const std::string& target) {
      // What the transport does over the network, done with a copy.
      return engine::SnapshotStore::Restore(
          DataDir(from) + "/snapshots/" +
              engine::SnapshotStore::NameForZxid(zxid),
          target);
    };
    o.log_preallocate_bytes = 1 << 20;
    o.state_db.block_cache_bytes = 8 << 20;
    o.state_db.write_buffer_bytes = 1 << 20;
    o.node.my_id = id;
    for (int i = 1; i <= n_; ++i) o.node.participants.insert(i);
    o.on_snapshot = [this, id](const engine::SnapshotInfo& snap, int64_t) {
      char thread[16] = {};
      pthread_getname_np(pthread_self(), thread, sizeof(thread));
      absl::MutexLock lock(&snap_mu_);
      snapshots_.push_back({id, snap.zxid});
      snapshot_threads_.insert(thread);
    };
    o.node.tick_ms = 100;
    o.node.init_limit = 10;
    o.node.sync_limit = 5;
    auto r = QuorumReplica::Open(
        o, [this](zab::Message m) { router_.Route(std::move(m)); });
    ASSERT_TRUE(r.ok()) << r.status();
    replicas_[id] = *std::move(r);
    router_.Attach(id, replicas_[id].get());
  }

  void Stop(int64_t id) {
    router_.Detach(id);
    replicas_[id].reset();
  }

  QuorumReplica* get(int64_t id) { return replicas_[id].get(); }
  // (server, zxid) of every snapshot taken so far.
  std::vector<std::pair<int64_t, int64_t>> snapshots() {
    absl::MutexLock lock(&snap_mu_);
    return snapshots_;
  }
  // Names of the threads that finished them.
  std::set<std::string> snapshot_threads() {
    absl::MutexLock lock(&snap_mu_);
    return snapshot_threads_;
  }
  Router& router() { return router_; }

  // Polls (bounded) until every running replica serves under one leader.
  std::optional<int64_t> WaitForLeader(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      std::optional<int64_t> leader;
      bool all = true;
      for (auto& [id, r] : replicas_) {
        if (r == nullptr) continue;
        ReplicaStatus s = r->status();
        if (!s.serving) all = false;
        if (s.mode == "leader" && s.serving) leader = id;
      }
      if (all && leader) return leader;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return std::nullopt;
  }

  // Submits `path` on the leader and waits for the result.
  SubmitResult Write(int64_t leader, const std::string& path) {
    absl::Mutex mu;
    std::optional<SubmitResult> got;
    get(leader)->Submit({}, Create(path, "v"), [&](SubmitResult r) {
      absl::MutexLock lock(&mu);
      got = std::move(r);
    });
    absl::MutexLock lock(&mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return got.has_value();
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30)));
    return got.value_or(
        SubmitResult{absl::DeadlineExceededError("no answer"), {}, {}});
  }

  // Polls until every running replica has applied `zxid`; then their state
  // digests must be equal.
  void ExpectConverged(int64_t zxid) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (auto& [id, r] : replicas_) {
      if (r == nullptr) continue;
      while (r->db().last_applied_zxid() < zxid && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(10));
      }
      EXPECT_GE(r->db().last_applied_zxid(), zxid) << "server " << id;
    }
    std::optional<uint64_t> digest;
    for (auto& [id, r] : replicas_) {
      if (r == nullptr) continue;
      absl::ReaderMutexLock lock(&r->visibility_mutex());
      auto d = r->db().ComputeDigest();
      ASSERT_TRUE(d.ok());
      if (!digest) digest = *d;
      EXPECT_EQ(*d, *digest) << "server " << id << " differs";
    }
  }

 private:
  const int n_;
  const int64_t snap_count_;
  const int64_t apply_gate_timeout_ms_;
  TempDir dir_;
  Router router_;
  std::map<int64_t, std::unique_ptr<QuorumReplica>> replicas_;
  absl::Mutex snap_mu_;
  std::vector<std::pair<int64_t, int64_t>> snapshots_ ABSL_GUARDED_BY(snap_mu_);
  std::set<std::string> snapshot_threads_ ABSL_GUARDED_BY(snap_mu_);
};

TEST(QuorumReplicaTest, ElectsOneLeaderAndReplicatesEveryWrite) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  int followers = 0;
  for (int id = 1; id <= 3; ++id) {
    followers += e.get(id)->status().mode == "follower" ? 1 : 0;
  }
  EXPECT_EQ(followers, 2);
  int64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    SubmitResult r = e.Write(*leader, absl::StrCat("/n", i));
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_EQ(r.outcome.err, engine::ZkError::kOk);
    last = r.outcome.txn->header().zxid();
  }
  EXPECT_EQ(zab::EpochOf(last), e.get(*leader)->status().current_epoch);
  e.ExpectConverged(last);
  // A Prep error is answered too, in order.
  SubmitResult dup = e.Write(*leader, "/n0");
  EXPECT_TRUE(dup.status.ok());
  EXPECT_EQ(dup.outcome.err, engine::ZkError::kNodeExists);
  // A write on a follower is forwarded to the leader and answered when the
  // follower applies it; a refusal comes back as the ZooKeeper error.
  const int64_t follower = *leader == 1 ? 2 : 1;
  SubmitResult f = e.Write(follower, "/via-follower");
  ASSERT_TRUE(f.status.ok()) << f.status;
  ASSERT_EQ(f.outcome.err, engine::ZkError::kOk);
  ASSERT_TRUE(f.outcome.txn.has_value());
  EXPECT_TRUE(e.get(follower)->db().GetZnode("/via-follower").ok());
  SubmitResult f2 = e.Write(follower, "/n1");
  ASSERT_TRUE(f2.status.ok()) << f2.status;
  EXPECT_EQ(f2.outcome.err, engine::ZkError::kNodeExists);
  EXPECT_FALSE(f2.outcome.txn.has_value());
  // (The refusal took a zxid too, as ZooKeeper's error txns do.)
  e.ExpectConverged(e.get(*leader)->last_proposed_zxid());
}

// A write submitted inside a DeferScope while the replica is quiet runs
// its round on the submitting thread when the scope closes: on the leader
// it is in the log (appended and synced) by the time the scope has closed.
// On a follower the round forwards it. Threads submitting in and out of
// scopes on every member at once: all complete, the members converge.
TEST(QuorumReplicaTest, SubmitsInDeferScopesRunTheirRoundOnTheSubmitter) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  ASSERT_TRUE(e.Write(*leader, "/warm").status.ok());
  QuorumReplica* l = e.get(*leader);
  int logged_at_close = 0;
  const uint64_t claimed_before = l->claimed_rounds();
  for (int i = 0; i < 30; ++i) {
    absl::Mutex mu;
    bool done = false;
    const uint64_t claimed = l->claimed_rounds();
    int64_t zxid_after_close = 0;
    {
      DeferScope scope;
      l->Submit({}, Create(absl::StrCat("/s", i), "v"), [&](SubmitResult r) {
        EXPECT_TRUE(r.status.ok()) << r.status;
        absl::MutexLock lock(&mu);
        done = true;
      });
    }
    if (l->claimed_rounds() > claimed) {
      zxid_after_close = l->status().last_logged_zxid;
      if (zxid_after_close >= l->last_proposed_zxid()) ++logged_at_close;
    }
    absl::MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30)));
  }
  const uint64_t claimed = l->claimed_rounds() - claimed_before;
  EXPECT_GT(claimed, 0u) << "no submit ran its own round";
  EXPECT_EQ(static_cast<uint64_t>(logged_at_close), claimed);

  const int64_t follower = *leader == 1 ? 2 : 1;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      QuorumReplica* r = e.get(t % 3 + 1);
      for (int i = 0; i < 40; ++i) {
        std::optional<DeferScope> scope;
        if ((i + t) % 3 != 0) scope.emplace();
        r->Submit({}, Create(absl::StrCat("/m", t, "-", i), "v"),
                  [&](SubmitResult res) {
                    EXPECT_TRUE(res.status.ok()) << res.status;
                    EXPECT_EQ(res.outcome.err, engine::ZkError::kOk);
                    answered.fetch_add(1);
                  });
      }
    });
  }
  for (auto& th : threads) th.join();
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (answered.load() < 240 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(answered.load(), 240);
  SubmitResult f = e.Write(follower, "/last");
  ASSERT_TRUE(f.status.ok()) << f.status;
  e.ExpectConverged(l->last_proposed_zxid());
  EXPECT_TRUE(e.get(follower)->db().GetZnode("/m5-39").ok());
}

// Another thread's write while a submit is claimed wakes the driver, whose
// round takes both: a claim never holds other sessions' writes until the
// claimer's scope closes.
TEST(QuorumReplicaTest, AnotherThreadsSubmitIsNotHeldBehindAClaim) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  QuorumReplica* l = e.get(*leader);
  ASSERT_TRUE(e.Write(*leader, "/warm").status.ok());
  std::atomic<int> answered{0};
  auto count = [&](SubmitResult r) {
    EXPECT_TRUE(r.status.ok()) << r.status;
    answered.fetch_add(1);
  };
  const uint64_t claimed_before = l->claimed_rounds();
  for (int i = 0; i < 10; ++i) {
    const int want = answered.load() + 2;
    DeferScope scope;
    l->Submit({}, Create(absl::StrCat("/c", i), "v"), count);
    std::thread other(
        [&] { l->Submit({}, Create(absl::StrCat("/o", i), "v"), count); });
    other.join();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (answered.load() < want && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(answered.load(), want) << "held until the scope closed";
  }
  // The rounds that answered them took the claims: none was left to run.
  EXPECT_EQ(l->claimed_rounds(), claimed_before);
  e.ExpectConverged(l->last_proposed_zxid());
}

TEST(QuorumReplicaTest, FailsOverAndTheOldLeaderCatchesUp) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(e.Write(*leader, absl::StrCat("/a", i)).status.ok());
  }
  const int64_t old_leader = *leader;
  e.Stop(old_leader);
  const absl::Time lost = absl::Now();
  leader = e.WaitForLeader(absl::Seconds(30));
  ASSERT_TRUE(leader.has_value());
  ASSERT_NE(*leader, old_leader);
  std::printf("new leader %lld after %.0f ms\n",
              static_cast<long long>(*leader),
              absl::ToDoubleMilliseconds(absl::Now() - lost));
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    SubmitResult r = e.Write(*leader, absl::StrCat("/b", i));
    ASSERT_TRUE(r.status.ok()) << r.status;
    last = r.outcome.txn->header().zxid();
  }
  // Everything written before the failover is still there.
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(e.get(*leader)->db().GetZnode(absl::StrCat("/a", i)).ok());
  }
  e.Start(old_leader);  // comes back from its disk and catches up
  ASSERT_TRUE(e.WaitForLeader(absl::Seconds(30)).has_value());
  e.ExpectConverged(last);
  EXPECT_EQ(e.get(old_leader)->status().mode, "follower");
}

// The leader logs proposals its frozen followers never see, then goes down
// with them; the followers elect a new leader and move on. When the old
// leader returns, its tail is truncated, never applied: every member ends
// with the same state, without the tail.
TEST(QuorumReplicaTest, AnUncommittedTailIsTruncatedOnTheOldLeader) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  ASSERT_TRUE(e.Write(*leader, "/committed").status.ok());
  const int64_t old_leader = *leader;
  const int64_t a = old_leader == 1 ? 2 : 1;
  const int64_t b = 6 - old_leader - a;
  e.router().Freeze(a);
  e.router().Freeze(b);
  const int64_t logged = e.get(old_leader)->status().last_logged_zxid;
  absl::Mutex mu;
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    e.get(old_leader)
        ->Submit({}, Create(absl::StrCat("/uncommitted", i), "u"),
                 [&](SubmitResult r) {
                   absl::MutexLock lock(&mu);
                   EXPECT_FALSE(r.status.ok());
                   ++answered;
                 });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (e.get(old_leader)->status().last_logged_zxid < logged + 20 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(e.get(old_leader)->status().last_logged_zxid, logged + 20);
  e.Stop(old_leader);  // its pending writes fail
  e.Stop(a);
  e.Stop(b);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(answered, 20);
  }
  e.router().Thaw(a);
  e.router().Thaw(b);
  e.Start(a);
  e.Start(b);
  leader = e.WaitForLeader(absl::Seconds(30));
  ASSERT_TRUE(leader.has_value());
  SubmitResult after = e.Write(*leader, "/after");
  ASSERT_TRUE(after.status.ok()) << after.status;
  e.Start(old_leader);
  ASSERT_TRUE(e.WaitForLeader(absl::Seconds(30)).has_value());
  e.ExpectConverged(after.outcome.txn->header().zxid());
  QuorumReplica* back = e.get(old_leader);
  EXPECT_TRUE(back->db().GetZnode("/after").ok());
  EXPECT_TRUE(back->db().GetZnode("/committed").ok());
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(back->db().GetZnode(absl::StrCat("/uncommitted", i)).ok());
  }
}

TEST(QuorumReplicaTest, RefusesWritesWithoutAQuorum) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  ASSERT_TRUE(e.Write(*leader, "/x").status.ok());
  const int64_t a = *leader == 1 ? 2 : 1;
  const int64_t b = 6 - *leader - a;
  e.Stop(a);
  e.Stop(b);
  // The leader steps down within syncLimit ticks; then writes fail fast.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (e.get(*leader)->status().serving && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(e.get(*leader)->status().serving);
  SubmitResult r = e.Write(*leader, "/y");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
  // Both come back: the ensemble serves again.
  e.Start(a);
  e.Start(b);
  leader = e.WaitForLeader(absl::Seconds(30));
  ASSERT_TRUE(leader.has_value());
  SubmitResult ok = e.Write(*leader, "/z");
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  e.ExpectConverged(ok.outcome.txn->header().zxid());
  EXPECT_TRUE(e.get(a)->db().GetZnode("/x").ok());
}

// Every member snapshots every 10-20 txns (the flusher thread flushes
// first, the driver then checkpoints between two applies): each snapshot
// holds exactly the znodes created at or below its zxid.
TEST(QuorumReplicaTest, SnapshotsFollowAFlushAndAreExact) {
  Ensemble e(3, /*snap_count=*/20);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  std::vector<int64_t> czxids;
  auto per_member = [&e] {
    std::map<int64_t, int> count;
    for (const auto& [id, zxid] : e.snapshots()) count[id]++;
    return count;
  };
  auto every_member_took_two = [&] {
    const std::map<int64_t, int> count = per_member();
    return count.size() == 3 &&
           std::all_of(count.begin(), count.end(),
                       [](const auto& c) { return c.second >= 2; });
  };
  // 200 txns make 10-20 snapshots due per member; one that falls due while
  // the previous one is on its way is absorbed by it, so on a loaded
  // machine (slow checkpoints) writing goes on, bounded, until every
  // member took two.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (int i = 0; i < 200 || (!every_member_took_two() && i < 5000 &&
                              absl::Now() < deadline);
       ++i) {
    SubmitResult r = e.Write(*leader, absl::StrCat("/s", i));
    ASSERT_TRUE(r.status.ok()) << r.status;
    czxids.push_back(r.outcome.txn->header().zxid());
  }
  e.ExpectConverged(czxids.back());
  ASSERT_TRUE(every_member_took_two())
      << "members with a snapshot: " << per_member().size()
      << "; writes: " << czxids.size();
  // Checked and named beside the driver, which only took the checkpoints.
  EXPECT_EQ(e.snapshot_threads(), std::set<std::string>{"rk-snapshot"});
  for (int64_t id = 1; id <= 3; ++id) e.Stop(id);
  for (const auto& [id, count] : per_member()) {
    std::fprintf(stderr, "server %lld took %d snapshots\n",
                 static_cast<long long>(id), count);
  }
  for (int64_t id = 1; id <= 3; ++id) {
    // Every checkpoint taken was finished, also those queued at the stop.
    for (const auto& entry :
         std::filesystem::directory_iterator(e.DataDir(id) + "/snapshots")) {
      EXPECT_EQ(entry.path().filename().string().find("snapshot.tmp"),
                std::string::npos)
          << entry.path();
    }
    // The ones the purge kept (the newest 3).
    EXPECT_GT(engine::testing::ExpectSnapshotsExact(
                  e.DataDir(id) + "/snapshots", czxids,
                  [](size_t i) { return absl::StrCat("/s", i); }),
              0u)
        << "server " << id;
  }
}

// The first zxid of the oldest txn log segment in `log_dir` ("log.<zxid as
// 16 hex digits>"); 0 if there is none.
int64_t FirstLogZxid(const std::string& log_dir) {
  uint64_t first = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(log_dir, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t zxid = 0;
    if (name.size() == 20 && name.rfind("log.", 0) == 0 &&
        absl::SimpleHexAtoi(name.substr(4), &zxid) &&
        (first == 0 || zxid < first)) {
      first = zxid;
    }
  }
  return static_cast<int64_t>(first);
}

TEST(QuorumReplicaTest, MembersBehindThePurgedLogAreSyncedBySnapshot) {
  Ensemble e(3, /*snap_count=*/20);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  const int64_t lagging = *leader == 1 ? 2 : 1;
  const int64_t wiped = 6 - *leader - lagging;
  SubmitResult before = e.Write(*leader, "/before");
  ASSERT_TRUE(before.status.ok());
  const int64_t before_zxid = before.outcome.txn->header().zxid();
  e.Stop(lagging);
  // Writes until, snapshots and purges later (on the leader's snapshot
  // thread, so not at a fixed count), the leader's log no longer reaches
  // back to where `lagging` stopped. Bounded.
  int written = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (FirstLogZxid(e.DataDir(*leader) + "/log") <= before_zxid + 1) {
    ASSERT_LT(absl::Now(), deadline) << "the leader's log was never purged";
    ASSERT_TRUE(e.Write(*leader, absl::StrCat("/s", written++)).status.ok());
  }
  ASSERT_GT(written, 0);
  const std::string last_written = absl::StrCat("/s", written - 1);
  e.Start(lagging);
  ASSERT_TRUE(e.WaitForLeader(absl::Seconds(30)).has_value());
  // A member that lost its whole data dir comes back empty.
  e.Stop(wiped);
  std::filesystem::remove_all(e.DataDir(wiped));
  e.Start(wiped);
  leader = e.WaitForLeader(absl::Seconds(30));
  ASSERT_TRUE(leader.has_value());
  SubmitResult last = e.Write(*leader, "/after");
  ASSERT_TRUE(last.status.ok()) << last.status;
  e.ExpectConverged(last.outcome.txn->header().zxid());
  for (int64_t id : {lagging, wiped}) {
    EXPECT_TRUE(std::filesystem::exists(e.DataDir(id) + "/logBase"))
        << "server " << id << " was not synced by SNAP";
    EXPECT_TRUE(e.get(id)->db().GetZnode("/before").ok());
    EXPECT_TRUE(e.get(id)->db().GetZnode(last_written).ok());
  }
}

// A result slot filled by a Done callback, in the order callbacks ran.
struct Answers {
  absl::Mutex mu;
  std::vector<std::string> order ABSL_GUARDED_BY(mu);
  Replica::Done Slot(std::string name) {
    return [this, name](SubmitResult r) {
      EXPECT_TRUE(r.status.ok()) << name << ": " << r.status;
      absl::MutexLock lock(&mu);
      order.push_back(name);
    };
  }
  size_t count() {
    absl::MutexLock lock(&mu);
    return order.size();
  }
  // Polls (bounded) until `n` answers came.
  bool WaitFor(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return order.size() >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
};

bool WaitUntilApplied(QuorumReplica* r, const std::string& path) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    {
      absl::ReaderMutexLock lock(&r->visibility_mutex());
      if (r->db().GetZnode(path).ok()) return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

// A gated write submitted on `on` (the leader, or a follower that forwards
// it) is committed everywhere, but `on` applies neither it nor the txns
// behind it until its gate opens.
void CheckGateHoldsTheApply(Ensemble& e, int64_t on, int64_t other) {
  ASSERT_TRUE(e.get(on)->honours_apply_gates());
  auto gate = std::make_shared<ApplyGate>();
  Answers answers;
  engine::RequestContext session_a;
  session_a.session_id = 0x1001;
  engine::RequestContext session_b;
  session_b.session_id = 0x2002;
  e.get(on)->SubmitGated(session_a, Create("/gated", "v"), gate,
                         answers.Slot("gated"));
  e.get(on)->Submit(session_b, Create("/behind", "v"), answers.Slot("behind"));
  // Committed: another member applied both.
  ASSERT_TRUE(WaitUntilApplied(e.get(other), "/behind"));
  ASSERT_TRUE(WaitUntilApplied(e.get(other), "/gated"));
  // Not applied on `on`, nor answered; polled for a while, as nothing will
  // happen there until the gate opens.
  const absl::Time until = absl::Now() + absl::Milliseconds(300);
  while (absl::Now() < until) {
    {
      absl::ReaderMutexLock lock(&e.get(on)->visibility_mutex());
      ASSERT_FALSE(e.get(on)->db().GetZnode("/gated").ok());
      ASSERT_FALSE(e.get(on)->db().GetZnode("/behind").ok());
    }
    ASSERT_EQ(answers.count(), 0u);
    absl::SleepFor(absl::Milliseconds(10));
  }
  // `on` may learn of the commit later than `other` (bounded poll).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (e.get(on)->apply_gate_stats().waits == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(e.get(on)->apply_gate_stats().waits, 1u);
  gate->Open();
  ASSERT_TRUE(answers.WaitFor(2, absl::Seconds(30)));
  {
    absl::MutexLock lock(&answers.mu);
    EXPECT_EQ(answers.order, (std::vector<std::string>{"gated", "behind"}));
  }
  EXPECT_TRUE(e.get(on)->db().GetZnode("/gated").ok());
  EXPECT_TRUE(e.get(on)->db().GetZnode("/behind").ok());
  EXPECT_EQ(e.get(on)->apply_gate_stats().timeouts, 0u);
  e.ExpectConverged(e.get(other)->db().last_applied_zxid());
}

TEST(QuorumReplicaTest, LeaderAppliesAGatedTxnOnlyOnceItsGateOpens) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  const int64_t follower = *leader == 1 ? 2 : 1;
  CheckGateHoldsTheApply(e, *leader, follower);
}

TEST(QuorumReplicaTest, FollowerAppliesAForwardedGatedTxnOnlyOnceItsGateOpens) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  const int64_t follower = *leader == 1 ? 2 : 1;
  CheckGateHoldsTheApply(e, follower, *leader);
}

TEST(QuorumReplicaTest, AGateThatNeverOpensTimesOut) {
  Ensemble e(3, /*snap_count=*/0, /*apply_gate_timeout_ms=*/200);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  const int64_t follower = *leader == 1 ? 2 : 1;
  for (int64_t on : {*leader, follower}) {
    Answers answers;
    const std::string path = absl::StrCat("/never", on);
    e.get(on)->SubmitGated({}, Create(path, "v"), std::make_shared<ApplyGate>(),
                           answers.Slot("never"));
    ASSERT_TRUE(answers.WaitFor(1, absl::Seconds(30)));
    EXPECT_TRUE(e.get(on)->db().GetZnode(path).ok());
    EXPECT_EQ(e.get(on)->apply_gate_stats().waits, 1u);
    EXPECT_EQ(e.get(on)->apply_gate_stats().timeouts, 1u);
  }
  // Writes after it flow again.
  SubmitResult r = e.Write(*leader, "/after");
  ASSERT_TRUE(r.status.ok()) << r.status;
  e.ExpectConverged(r.outcome.txn->header().zxid());
}

TEST(QuorumReplicaTest, AnOpenGateHoldsNothing) {
  Ensemble e(3);
  std::optional<int64_t> leader = e.WaitForLeader(absl::Seconds(20));
  ASSERT_TRUE(leader.has_value());
  auto gate = std::make_shared<ApplyGate>();
  gate->Open();
  Answers answers;
  e.get(*leader)->SubmitGated({}, Create("/open", "v"), gate,
                              answers.Slot("open"));
  ASSERT_TRUE(answers.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(e.get(*leader)->apply_gate_stats().waits, 0u);
}

}  // namespace
}  // namespace rockeeper::replication
