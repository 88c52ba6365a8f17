// The standalone write path: Prep -> group-committed log -> batched Apply ->
// completions in submission order; recovery and snapshots.
#include "replication/standalone_replica.h"

#include <pthread.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "replication/defer_scope.h"
#include "tests/engine/test_util.h"

namespace rockeeper::replication {
namespace {

using engine::ZkError;
using engine::testing::Create;
using engine::testing::TempDir;

// Collects completions; Wait() polls with a bounded deadline.
class Completions {
 public:
  StandaloneReplica::Done Add(int64_t tag) {
    return [this, tag](SubmitResult r) {
      absl::MutexLock lock(&mu_);
      results_.emplace_back(tag, std::move(r));
    };
  }
  bool Wait(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(60));
  }
  std::vector<std::pair<int64_t, SubmitResult>> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::pair<int64_t, SubmitResult>> results_ ABSL_GUARDED_BY(mu_);
};

StandaloneReplicaOptions Options(const TempDir& dir) {
  StandaloneReplicaOptions o;
  o.data_dir = dir.Sub("data");
  o.log_preallocate_bytes = 1 << 20;
  o.state_db.block_cache_bytes = 8 << 20;
  o.state_db.write_buffer_bytes = 1 << 20;
  return o;
}

std::unique_ptr<StandaloneReplica> Open(const StandaloneReplicaOptions& o) {
  auto r = StandaloneReplica::Open(o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : nullptr;
}

TEST(StandaloneReplicaTest, CompletesInSubmissionOrderWithErrors) {
  TempDir dir;
  auto r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  Completions c;
  r->Submit({}, Create("/a", "1"), c.Add(0));
  r->Submit({}, Create("/a", "2"), c.Add(1));  // NODEEXISTS
  r->Submit({}, engine::SetDataRequest{"/a", "3", 0}, c.Add(2));
  r->Submit({}, engine::DeleteRequest{"/missing", -1}, c.Add(3));
  r->Submit({}, Create("/b"), c.Add(4));
  ASSERT_TRUE(c.Wait(5));
  auto res = c.results();
  ASSERT_EQ(res.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(res[i].first, i);
  const ZkError want[] = {ZkError::kOk, ZkError::kNodeExists, ZkError::kOk,
                          ZkError::kNoNode, ZkError::kOk};
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(res[i].second.status.ok());
    EXPECT_EQ(res[i].second.outcome.err, want[i]) << i;
  }
  // Watch triggers belong to their txn.
  ASSERT_EQ(res[0].second.triggers.size(), 2u);
  EXPECT_EQ(res[0].second.triggers[0].path, "/a");
  EXPECT_EQ(res[0].second.triggers[0].type,
            engine::WatchEventType::kNodeCreated);
  ASSERT_EQ(res[2].second.triggers.size(), 1u);
  EXPECT_EQ(res[2].second.triggers[0].type,
            engine::WatchEventType::kNodeDataChanged);
  EXPECT_TRUE(res[1].second.triggers.empty());
  auto a = r->db().GetZnode("/a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->data, "3");
  EXPECT_EQ(a->version, 1);
  // zxids: as in ZooKeeper, a refused write is logged as an error txn and
  // consumes a zxid too; each reply carries its own.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(res[i].second.zxid, i + 1) << i;
  EXPECT_EQ(r->last_proposed_zxid(), 5);
  EXPECT_EQ(r->db().last_applied_zxid(), 5);
  // The error txns survive a restart like any other txn.
  r.reset();
  r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->db().last_applied_zxid(), 5);
  r->Submit({}, Create("/c"), c.Add(5));
  ASSERT_TRUE(c.Wait(6));
  EXPECT_EQ(c.results()[5].second.zxid, 6);
}

TEST(StandaloneReplicaTest, ConcurrentSubmittersAreGroupCommitted) {
  TempDir dir;
  auto r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 400;
  Completions c;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        r->Submit({}, Create(absl::StrCat("/t", t, "-", i)),
                  c.Add(t * kPerThread + i));
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(c.Wait(kThreads * kPerThread));
  auto res = c.results();
  // Each thread's requests complete in the order it submitted them.
  std::vector<int64_t> last(kThreads, -1);
  for (const auto& [tag, result] : res) {
    ASSERT_TRUE(result.status.ok()) << result.status;
    ASSERT_EQ(result.outcome.err, ZkError::kOk);
    const int64_t t = tag / kPerThread;
    EXPECT_GT(tag, last[t]);
    last[t] = tag;
  }
  const auto stats = r->pipeline_stats();
  EXPECT_EQ(stats.txns_applied, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LT(stats.log_batches, stats.txns_applied) << "no group commit";
  EXPECT_EQ(*r->db().CountDescendants("/"), 3 + kThreads * kPerThread);
}

// A lone session's write, with the apply thread idle, is applied by the log
// thread itself (no second wake-up); with max_inline_apply_txns = 0 never.
// A replica whose log thread applies batches of up to `max_inline` txns.
std::unique_ptr<StandaloneReplica> OpenWithInlineApply(const TempDir& dir,
                                                       size_t max_inline) {
  auto options = Options(dir);
  options.pipeline.max_inline_apply_txns = max_inline;
  return Open(options);
}

TEST(StandaloneReplicaTest, ALoneWriteIsAppliedByTheLogThread) {
  for (const size_t max_inline : {size_t{16}, size_t{0}}) {
    TempDir dir;
    auto r = OpenWithInlineApply(dir, max_inline);
    ASSERT_NE(r, nullptr);
    Completions c;
    for (int i = 0; i < 10; ++i) {
      r->Submit({}, Create(absl::StrCat("/n", i)), c.Add(i));
      ASSERT_TRUE(c.Wait(i + 1));
      EXPECT_TRUE(r->db().GetZnode(absl::StrCat("/n", i)).ok());
    }
    const auto stats = r->pipeline_stats();
    EXPECT_EQ(stats.txns_applied, 10u);
    EXPECT_EQ(stats.inline_applies, max_inline > 0 ? 10u : 0u) << max_inline;
  }
}

// The completion of a write the log thread applied is marked lone and runs
// inside a DeferScope there: a closure it defers runs on the same thread,
// after the callback returned and with the visibility mutex free (a reader
// can take it). Without inline applies nothing is lone: the apply thread
// calls back inside a scope of its own (gathered), with the same guarantees.
TEST(StandaloneReplicaTest, ALoneWriteCompletesInADeferScopeOnTheLogThread) {
  for (const size_t max_inline : {size_t{16}, size_t{0}}) {
    TempDir dir;
    auto r = OpenWithInlineApply(dir, max_inline);
    ASSERT_NE(r, nullptr);
    struct Seen {
      bool lone = false;
      bool gathered = false;
      bool scope = false;
      std::thread::id callback_thread;
      std::thread::id deferred_thread;
      bool deferred_after_callback = false;
      bool visibility_free = false;
    };
    absl::Mutex mu;
    std::vector<Seen> seen;
    for (int i = 0; i < 5; ++i) {
      r->Submit({}, Create(absl::StrCat("/n", i)), [&](SubmitResult result) {
        auto s = std::make_shared<Seen>();
        s->lone = result.lone;
        s->gathered = result.gathered;
        s->scope = DeferScope::Active();
        s->callback_thread = std::this_thread::get_id();
        auto finish = [&, s] {
          absl::MutexLock lock(&mu);
          seen.push_back(*s);
        };
        if (!s->scope) {
          finish();
          return;
        }
        auto returned = std::make_shared<bool>(false);
        DeferScope::Defer([&, s, returned, finish] {
          s->deferred_thread = std::this_thread::get_id();
          s->deferred_after_callback = *returned;
          s->visibility_free = r->visibility_mutex().ReaderTryLock();
          if (s->visibility_free) r->visibility_mutex().ReaderUnlock();
          finish();
        });
        *returned = true;
      });
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      for (;;) {
        {
          absl::MutexLock lock(&mu);
          if (seen.size() == static_cast<size_t>(i + 1)) break;
        }
        ASSERT_LT(absl::Now(), deadline) << "write " << i << " never completed";
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
    absl::MutexLock lock(&mu);
    for (const Seen& s : seen) {
      // The log thread's lone batch, or the apply thread's batch: either
      // way in a scope that closes once the apply is done.
      EXPECT_EQ(s.lone, max_inline > 0);
      EXPECT_EQ(s.gathered, max_inline == 0);
      EXPECT_TRUE(s.scope);
      if (!s.scope) continue;
      EXPECT_EQ(s.deferred_thread, s.callback_thread);
      EXPECT_TRUE(s.deferred_after_callback);
      EXPECT_TRUE(s.visibility_free);
    }
  }
}

// DeferLast closures run after every Defer closure, including those that
// Defer closures add; what a last closure defers runs too, in order.
TEST(DeferScopeTest, LastClosuresRunAfterTheOthers) {
  std::vector<std::string> ran;
  {
    DeferScope scope;
    DeferScope::Defer([&] {
      ran.push_back("a");
      DeferScope::Defer([&] { ran.push_back("c"); });
    });
    DeferScope::DeferLast([&] {
      ran.push_back("last1");
      DeferScope::Defer([&] { ran.push_back("d"); });
      DeferScope::DeferLast([&] { ran.push_back("last2"); });
    });
    DeferScope::Defer([&] { ran.push_back("b"); });
    EXPECT_TRUE(ran.empty());
  }
  EXPECT_EQ(ran,
            (std::vector<std::string>{"a", "b", "c", "last1", "d", "last2"}));
  EXPECT_FALSE(DeferScope::Active());
}

// A write proposed inside a DeferScope into an idle pipeline is logged and
// applied by the proposing thread when the scope closes, and completes
// there (lone): the log thread does not take it meanwhile. Switched off,
// the log thread does it all.
TEST(StandaloneReplicaTest, AWriteInADeferScopeIsLoggedByTheProposingThread) {
  for (const bool on : {true, false}) {
    TempDir dir;
    auto options = Options(dir);
    options.pipeline.log_on_proposing_thread = on;
    auto r = Open(options);
    ASSERT_NE(r, nullptr);
    for (int i = 0; i < 5; ++i) {
      std::atomic<bool> called{false};
      std::thread::id callback_thread;
      bool lone = false;
      {
        DeferScope scope;
        r->Submit({}, Create(absl::StrCat("/n", i)), [&](SubmitResult res) {
          EXPECT_TRUE(res.status.ok()) << res.status;
          callback_thread = std::this_thread::get_id();
          lone = res.lone;
          called.store(true);
        });
        if (on) {
          // Held for this thread: nothing can have logged it yet.
          absl::SleepFor(absl::Milliseconds(20));
          EXPECT_FALSE(called.load()) << i;
          EXPECT_EQ(r->status().last_logged_zxid, i);
        }
      }
      if (on) {
        EXPECT_TRUE(called.load()) << "not completed when the scope closed";
        EXPECT_EQ(callback_thread, std::this_thread::get_id());
        EXPECT_TRUE(lone);
      } else {
        const absl::Time deadline = absl::Now() + absl::Seconds(60);
        while (!called.load() && absl::Now() < deadline) {
          absl::SleepFor(absl::Milliseconds(1));
        }
        ASSERT_TRUE(called.load());
        EXPECT_NE(callback_thread, std::this_thread::get_id());
      }
      EXPECT_TRUE(r->db().GetZnode(absl::StrCat("/n", i)).ok());
    }
    const auto stats = r->pipeline_stats();
    EXPECT_EQ(stats.proposer_logs, on ? 5u : 0u);
    EXPECT_EQ(stats.log_batches, 5u);
    EXPECT_EQ(stats.inline_applies, 5u);
  }
}

// The claimer's later writes in the same scope join its batch: one log
// write, applied there, completions in order.
TEST(StandaloneReplicaTest, TheProposersLaterWritesJoinItsBatch) {
  TempDir dir;
  auto r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  Completions c;
  {
    DeferScope scope;
    for (int i = 0; i < 3; ++i) {
      r->Submit({}, Create(absl::StrCat("/a", i)), c.Add(i));
    }
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(r->status().last_logged_zxid, 0) << "the log thread took them";
  }
  ASSERT_TRUE(c.Wait(3));
  auto res = c.results();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(res[i].first, i);
    EXPECT_TRUE(res[i].second.lone) << i;
  }
  const auto stats = r->pipeline_stats();
  EXPECT_EQ(stats.log_batches, 1u);
  EXPECT_EQ(stats.proposer_logs, 1u);
  EXPECT_EQ(stats.txns_applied, 3u);
}

// A write from another thread while the log is claimed wakes the log
// thread, which takes the whole queue, the claimed write included: a claim
// never holds up other sessions' writes until the claimer's scope closes.
TEST(StandaloneReplicaTest, AnotherThreadsWriteIsNotHeldBehindAClaim) {
  TempDir dir;
  auto r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  Completions c;
  {
    DeferScope scope;
    r->Submit({}, Create("/claimed"), c.Add(0));
    std::thread other([&] { r->Submit({}, Create("/other"), c.Add(1)); });
    other.join();
    // Both complete while the claimer's scope is still open.
    ASSERT_TRUE(c.Wait(2));
  }
  auto res = c.results();
  EXPECT_EQ(res[0].first, 0);
  EXPECT_EQ(res[1].first, 1);
  const auto stats = r->pipeline_stats();
  EXPECT_EQ(stats.proposer_logs, 0u);
  EXPECT_EQ(stats.txns_applied, 2u);
  EXPECT_TRUE(r->db().GetZnode("/claimed").ok());
}

// Threads proposing in and out of DeferScopes at once: every write
// completes once, each thread's in its order, the log holds them all (a
// reopen replays to the same state), and proposing threads logged some.
// A claim needs a moment when the pipeline is idle, which a busy (e.g.
// sanitized) run may not give in one round: rounds repeat, bounded, until
// one was taken.
TEST(StandaloneReplicaTest, ProposersAndTheLogThreadShareTheLogSafely) {
  TempDir dir;
  auto options = Options(dir);
  options.pipeline.snap_count = 300;  // checkpoints meanwhile, too
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;
  constexpr int kPerRound = kThreads * kPerThread;
  constexpr int kMaxRounds = 10;
  Completions c;
  int rounds = 0;
  while (rounds < kMaxRounds &&
         (rounds == 0 || r->pipeline_stats().proposer_logs == 0)) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(rounds * kThreads + t);
        int i = 0;
        while (i < kPerThread) {
          const int n = std::min<int>(1 + rng() % 4, kPerThread - i);
          const bool scoped = rng() % 4 != 0;
          std::optional<DeferScope> scope;
          if (scoped) scope.emplace();
          for (int k = 0; k < n; ++k, ++i) {
            r->Submit({}, Create(absl::StrCat("/r", rounds, "t", t, "-", i)),
                      c.Add(rounds * kPerRound + t * kPerThread + i));
          }
          scope.reset();
          if (rng() % 8 == 0) absl::SleepFor(absl::Microseconds(rng() % 500));
        }
      });
    }
    for (auto& th : threads) th.join();
    ++rounds;
    ASSERT_TRUE(c.Wait(rounds * kPerRound));
  }
  const int total = rounds * kPerRound;
  auto res = c.results();
  ASSERT_EQ(res.size(), static_cast<size_t>(total));
  std::vector<int64_t> last(kThreads, -1);
  std::vector<int64_t> zxids;
  for (const auto& [tag, result] : res) {
    ASSERT_TRUE(result.status.ok()) << result.status;
    ASSERT_EQ(result.outcome.err, ZkError::kOk);
    const int64_t t = (tag / kPerThread) % kThreads;
    EXPECT_GT(tag, last[t]);
    last[t] = tag;
    zxids.push_back(result.zxid);
  }
  // Completions in zxid order, no gap.
  for (size_t i = 0; i < zxids.size(); ++i) {
    EXPECT_EQ(zxids[i], static_cast<int64_t>(i) + 1);
  }
  const auto stats = r->pipeline_stats();
  EXPECT_GT(stats.proposer_logs, 0u) << "no claim in " << rounds << " rounds";
  EXPECT_EQ(stats.txns_applied, static_cast<uint64_t>(total));
  r.reset();
  r = Open(options);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->db().last_applied_zxid(), total);
  EXPECT_EQ(*r->db().CountDescendants("/"), 3 + total);
}

// A gated write alone in its log batch is not applied by the log thread:
// waiting for its gate there would stop the log, and later writes would not
// become durable until the gate opened.
TEST(StandaloneReplicaTest, ALoneGatedWriteDoesNotHoldTheLog) {
  TempDir dir;
  auto options = Options(dir);
  options.pipeline.gate_timeout = absl::Seconds(120);
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  Completions c;
  auto gate = std::make_shared<ApplyGate>();
  r->SubmitGated({}, Create("/a"), gate, c.Add(0));
  auto logged = [&](int64_t zxid) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (r->status().last_logged_zxid < zxid && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return r->status().last_logged_zxid >= zxid;
  };
  ASSERT_TRUE(logged(1));
  r->Submit({}, Create("/b"), c.Add(1));
  EXPECT_TRUE(logged(2)) << "the log waited for /a's gate";
  EXPECT_TRUE(c.results().empty());
  gate->Open();
  ASSERT_TRUE(c.Wait(2));
  EXPECT_EQ(c.results()[0].first, 0);
  EXPECT_TRUE(r->db().GetZnode("/b").ok());
}

// A gated write is made durable at once but applied only once its gate
// opens; the writes before it are applied and complete first, and the ones
// after it wait behind it.
// Tells that a thread waits at a gate: WaitOpen asks its helper for work.
class GateWaitSeen : public GateHelper {
 public:
  bool RunOne() override {
    seen_.store(true);
    return false;
  }
  bool seen() const { return seen_.load(); }

 private:
  std::atomic<bool> seen_{false};
};

TEST(StandaloneReplicaTest, GatedWriteIsLoggedButAppliedOnlyOnceOpen) {
  TempDir dir;
  auto r = Open(Options(dir));
  ASSERT_NE(r, nullptr);
  ASSERT_TRUE(r->honours_apply_gates());
  Completions c;
  auto waits = std::make_shared<GateWaitSeen>();
  auto gate = std::make_shared<ApplyGate>(waits);
  r->Submit({}, Create("/a"), c.Add(0));
  r->SubmitGated({}, Create("/b"), gate, c.Add(1));
  r->Submit({}, Create("/c"), c.Add(2));
  ASSERT_TRUE(c.Wait(1));
  const int64_t b_zxid = r->last_proposed_zxid() - 1;
  // Poll (bounded) until /c, behind the gate, is durable too.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (r->status().last_logged_zxid < b_zxid + 1 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_GE(r->status().last_logged_zxid, b_zxid + 1);
  // And until the apply thread waits at the gate: only then is it the gate
  // that holds /b and /c (and not a slow apply thread).
  while (!waits->seen() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_TRUE(waits->seen());
  EXPECT_EQ(c.results().size(), 1u);
  EXPECT_TRUE(r->db().GetZnode("/a").ok());
  EXPECT_TRUE(absl::IsNotFound(r->db().GetZnode("/b").status()));
  EXPECT_TRUE(absl::IsNotFound(r->db().GetZnode("/c").status()));
  EXPECT_EQ(r->db().last_applied_zxid(), b_zxid - 1);
  gate->Open();
  ASSERT_TRUE(c.Wait(3));
  auto res = c.results();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(res[i].first, i);
    EXPECT_EQ(res[i].second.outcome.err, ZkError::kOk);
  }
  EXPECT_TRUE(r->db().GetZnode("/c").ok());
  EXPECT_EQ(r->pipeline_stats().gate_waits, 1u);
  EXPECT_EQ(r->pipeline_stats().gate_timeouts, 0u);
}

// A gate nobody opens holds the apply thread for gate_timeout only.
TEST(StandaloneReplicaTest, AGateThatNeverOpensTimesOut) {
  TempDir dir;
  auto options = Options(dir);
  options.pipeline.gate_timeout = absl::Milliseconds(50);
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  Completions c;
  r->SubmitGated({}, Create("/a"), std::make_shared<ApplyGate>(), c.Add(0));
  r->Submit({}, Create("/b"), c.Add(1));
  ASSERT_TRUE(c.Wait(2));
  EXPECT_EQ(c.results()[0].second.outcome.err, ZkError::kOk);
  EXPECT_TRUE(r->db().GetZnode("/b").ok());
  EXPECT_EQ(r->pipeline_stats().gate_timeouts, 1u);
}

TEST(StandaloneReplicaTest, ReopenRecoversAndContinuesZxids) {
  TempDir dir;
  const auto options = Options(dir);
  int64_t last = 0;
  {
    auto r = Open(options);
    ASSERT_NE(r, nullptr);
    Completions c;
    for (int i = 0; i < 100; ++i) {
      r->Submit({}, Create(absl::StrCat("/n", i), std::string(i, 'x')),
                c.Add(i));
    }
    ASSERT_TRUE(c.Wait(100));
    last = r->last_proposed_zxid();
  }
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->db().last_applied_zxid(), last);
  EXPECT_EQ(r->last_proposed_zxid(), last);
  auto n = r->db().GetZnode("/n42");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->data, std::string(42, 'x'));
  Completions c;
  r->Submit({}, Create("/after"), c.Add(0));
  ASSERT_TRUE(c.Wait(1));
  EXPECT_EQ(r->db().GetZnode("/after")->czxid, last + 1);
}

// Snapshots are taken by their own thread, beside the applies (lone writes
// the log thread applies, and bursts the apply thread applies), and each is
// exact: it holds every znode created at or below its zxid and none after.
TEST(StandaloneReplicaTest, SnapshotsAreTakenBesideTheAppliesAndAreExact) {
  TempDir dir;
  auto options = Options(dir);
  options.pipeline.snap_count = 10;  // one due every 5-10 txns
  absl::Mutex mu;
  std::vector<std::string> threads;
  options.pipeline.on_snapshot = [&](const engine::SnapshotInfo&,
                                     int64_t took_ms) {
    char name[16] = {0};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    EXPECT_GE(took_ms, 0);
    absl::MutexLock lock(&mu);
    threads.push_back(name);
  };
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  Completions c;
  constexpr int kLone = 40;
  constexpr int kBurst = 400;
  for (int i = 0; i < kLone; ++i) {
    r->Submit({}, Create(absl::StrCat("/s", i)), c.Add(i));
    ASSERT_TRUE(c.Wait(i + 1));
  }
  for (int i = kLone; i < kLone + kBurst; ++i) {
    r->Submit({}, Create(absl::StrCat("/s", i)), c.Add(i));
  }
  ASSERT_TRUE(c.Wait(kLone + kBurst));
  std::vector<int64_t> czxids;
  for (int i = 0; i < kLone + kBurst; ++i) {
    auto node = r->db().GetZnode(absl::StrCat("/s", i));
    ASSERT_TRUE(node.ok());
    czxids.push_back(node->czxid);
  }
  const auto stats = r->pipeline_stats();
  r.reset();  // stops the pipeline, after a snapshot still due
  EXPECT_GT(stats.inline_applies, 0u);
  {
    absl::MutexLock lock(&mu);
    ASSERT_GE(threads.size(), 2u);
    for (const std::string& t : threads) EXPECT_EQ(t, "rk-snapshot");
  }
  EXPECT_GT(engine::testing::ExpectSnapshotsExact(
                options.data_dir + "/snapshots", czxids,
                [](size_t i) { return absl::StrCat("/s", i); }),
            0u);
}

// Each wave of 50 txns makes one snapshot due (snap_count 50); waiting for
// it before the next wave keeps one from absorbing the next.
// A server killed during a snapshot leaves its temp checkpoint dir (hard
// links to SST files): the next start deletes it.
TEST(StandaloneReplicaTest, StartDeletesAnUnfinishedSnapshot) {
  TempDir dir;
  auto options = Options(dir);
  {
    auto r = Open(options);
    ASSERT_NE(r, nullptr);
    Completions c;
    r->Submit({}, Create("/a"), c.Add(0));
    ASSERT_TRUE(c.Wait(1));
  }
  const std::string tmp = options.data_dir + "/snapshots/snapshot.tmp.1";
  std::filesystem::create_directories(tmp);
  std::ofstream(tmp + "/000009.sst") << "a hard link to an old SST file";
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_TRUE(std::filesystem::exists(options.data_dir + "/snapshots"));
}

TEST(StandaloneReplicaTest, SnapshotsEverySnapCountAndPurges) {
  TempDir dir;
  auto options = Options(dir);
  options.pipeline.snap_count = 50;
  options.pipeline.max_batch_txns = 10;
  auto r = Open(options);
  ASSERT_NE(r, nullptr);
  Completions c;
  for (int wave = 0; wave < 8; ++wave) {
    for (int i = wave * 50; i < (wave + 1) * 50; ++i) {
      r->Submit({}, Create(absl::StrCat("/s", i)), c.Add(i));
    }
    ASSERT_TRUE(c.Wait((wave + 1) * 50));
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (r->pipeline_stats().snapshots < static_cast<uint64_t>(wave + 1)) {
      ASSERT_LT(absl::Now(), deadline) << "no snapshot after wave " << wave;
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  r.reset();  // stops the pipeline: no snapshot still being taken
  engine::SnapshotStore store(options.data_dir + "/snapshots");
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);  // 8 taken, purged down to 3
  for (const auto& s : *list) EXPECT_LE(s.zxid, 400);
  EXPECT_GE(list->back().zxid, 300);
}

}  // namespace
}  // namespace rockeeper::replication
