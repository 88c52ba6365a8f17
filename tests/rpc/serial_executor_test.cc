// SessionSerializer: per-session FIFO with pipelined writes; DeferScope and
// WorkQueue batches.
#include "rpc/serial_executor.h"

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace rockeeper::rpc {
namespace {

// Records start order and keeps each op's callbacks for the test to call.
struct Harness {
  SessionSerializer s;
  std::vector<std::string> started;
  std::vector<SessionSerializer::Fn> ordered, done;

  void Run(int64_t sid, bool write, const std::string& name) {
    s.Run(sid, write,
          [this, name](SessionSerializer::Fn o, SessionSerializer::Fn d) {
            started.push_back(name);
            ordered.push_back(std::move(o));
            done.push_back(std::move(d));
          });
  }
};

TEST(SessionSerializerTest, WritesPipelineOnceOrdered) {
  Harness h;
  h.Run(1, true, "w1");
  h.Run(1, true, "w2");
  h.Run(1, true, "w3");
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1"}));
  h.ordered[0]();  // w1 submitted: w2 may start, w1 still running
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1", "w2"}));
  h.ordered[1]();
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1", "w2", "w3"}));
}

TEST(SessionSerializerTest, AReadWaitsForEveryEarlierWrite) {
  Harness h;
  h.Run(1, true, "w1");
  h.ordered[0]();
  h.Run(1, true, "w2");
  h.ordered[1]();
  h.Run(1, false, "r");
  h.Run(1, true, "w3");  // behind the read
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1", "w2"}));
  h.done[1]();
  EXPECT_EQ(h.started.size(), 2u);  // w1 still running
  h.done[0]();
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1", "w2", "r"}));
  h.done[2]();  // the read is done: w3 may go
  EXPECT_EQ(h.started, (std::vector<std::string>{"w1", "w2", "r", "w3"}));
}

TEST(SessionSerializerTest, DoneWithoutOrderedAndLateOrderedAreHarmless) {
  Harness h;
  h.Run(1, true, "w1");
  h.Run(1, true, "w2");
  h.done[0]();  // failed before submitting: never ordered
  EXPECT_EQ(h.started.size(), 2u);
  h.ordered[0]();  // late: ignored
  h.done[0]();     // twice: ignored
  h.ordered[1]();
  h.done[1]();
  h.Run(1, false, "r");
  EXPECT_EQ(h.started.back(), "r");
}

TEST(SessionSerializerTest, SessionsAndSessionlessAreIndependent) {
  Harness h;
  h.Run(1, false, "a1");
  h.Run(1, false, "a2");
  h.Run(2, false, "b1");
  h.Run(0, false, "x");
  h.Run(0, false, "y");
  EXPECT_EQ(h.started, (std::vector<std::string>{"a1", "b1", "x", "y"}));
  h.done[0]();
  EXPECT_EQ(h.started.back(), "a2");
}

TEST(SessionSerializerTest, SynchronousCallbacksDoNotRecurse) {
  // 100000 writes that order themselves at once: no deep recursion.
  SessionSerializer s;
  int started = 0;
  for (int i = 0; i < 100000; ++i) {
    s.Run(7, true,
          [&started](SessionSerializer::Fn o, SessionSerializer::Fn d) {
            ++started;
            o();
            d();
          });
  }
  EXPECT_EQ(started, 100000);
}

// A Task that records its start and lets the test report Ordered/Done.
class RecordingTask : public SessionSerializer::Task {
 public:
  RecordingTask(std::string name, std::vector<std::string>* started)
      : name_(std::move(name)), started_(started) {}
  void Start() override { started_->push_back(name_); }

 private:
  const std::string name_;
  std::vector<std::string>* const started_;
};

TEST(SessionSerializerTest, TasksKeepOrderWithoutClosures) {
  SessionSerializer s;
  std::vector<std::string> started;
  RecordingTask w1("w1", &started), w2("w2", &started), r("r", &started),
      w3("w3", &started);
  s.Run(1, true, &w1);
  s.Run(1, true, &w2);
  s.Run(1, false, &r);
  s.Run(1, true, &w3);
  EXPECT_EQ(started, (std::vector<std::string>{"w1"}));
  s.Ordered(&w1);
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2"}));
  s.Done(&w2);                    // done before ordered: counts as both
  EXPECT_EQ(started.size(), 2u);  // w1 still running: the read waits
  s.Done(&w1);
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2", "r"}));
  s.Ordered(&w2);  // late: ignored
  s.Done(&r);
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2", "r", "w3"}));
  s.Done(&w3);
  // A task may run again once done (the serializer forgot it).
  s.Run(1, false, &r);
  EXPECT_EQ(started.back(), "r");
  s.Done(&r);
}

// IsLast: nothing of the task's session was run after it, whatever the
// state of the tasks before it; a sessionless task always is.
TEST(SessionSerializerTest, IsLastSeesOnlyLaterTasksOfTheSession) {
  SessionSerializer s(/*writes_pass_reads=*/true);
  std::vector<std::string> started;
  RecordingTask w1("w1", &started), w2("w2", &started), r("r", &started),
      other("other", &started), free("free", &started);
  s.Run(1, SessionSerializer::Kind::kWrite, &w1);
  EXPECT_TRUE(s.IsLast(&w1));
  s.Run(2, SessionSerializer::Kind::kWrite, &other);  // another session
  EXPECT_TRUE(s.IsLast(&w1));
  s.Ordered(&w1);
  s.Run(1, SessionSerializer::Kind::kWrite, &w2);
  EXPECT_FALSE(s.IsLast(&w1));
  EXPECT_TRUE(s.IsLast(&w2));
  s.Run(1, SessionSerializer::Kind::kRead, &r);  // waits for both writes
  EXPECT_FALSE(s.IsLast(&w2));
  EXPECT_TRUE(s.IsLast(&r));
  s.Done(&w1);
  s.Done(&w2);
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "other", "w2", "r"}));
  EXPECT_TRUE(s.IsLast(&r));
  s.Done(&r);
  s.Done(&other);
  s.Run(0, SessionSerializer::Kind::kWrite, &free);
  EXPECT_TRUE(s.IsLast(&free));
}

// With writes_pass_reads (a replica that honours apply gates), a write
// starts while earlier reads of its session wait or run, with a gate that
// opens once the last of those reads is done; reads still wait for every
// earlier operation, and barriers still hold everything after them.
class GateTask : public RecordingTask {
 public:
  using RecordingTask::RecordingTask;
  void Start() override {
    RecordingTask::Start();
    gate = apply_gate();
  }
  std::shared_ptr<replication::ApplyGate> gate;
};

TEST(SessionSerializerTest, WritesPassReadsWithAGate) {
  SessionSerializer s(/*writes_pass_reads=*/true);
  using K = SessionSerializer::Kind;
  std::vector<std::string> started;
  GateTask w1("w1", &started), r1("r1", &started), w2("w2", &started),
      r2("r2", &started), w3("w3", &started), b("b", &started),
      w4("w4", &started);
  s.Run(1, K::kWrite, &w1);
  s.Run(1, K::kRead, &r1);   // waits for w1
  s.Run(1, K::kWrite, &w2);  // w1 not ordered yet: waits
  EXPECT_EQ(started, (std::vector<std::string>{"w1"}));
  s.Ordered(&w1);  // w2 passes the waiting r1, gated
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(w1.gate, nullptr);
  ASSERT_NE(w2.gate, nullptr);
  EXPECT_FALSE(w2.gate->is_open());
  s.Ordered(&w2);
  s.Run(1, K::kRead, &r2);
  s.Run(1, K::kWrite, &w3);  // passes r1 and r2
  s.Run(1, K::kBarrier, &b);
  s.Run(1, K::kWrite, &w4);  // behind the barrier
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2", "w3"}));
  ASSERT_NE(w3.gate, nullptr);
  s.Ordered(&w3);
  s.Done(&w1);  // r1 may run now; w2 and w3 stay gated until it is done
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "w2", "w3", "r1"}));
  EXPECT_FALSE(w2.gate->is_open());
  s.Done(&r1);
  EXPECT_TRUE(w2.gate->is_open());
  EXPECT_FALSE(w3.gate->is_open());  // r2 is before it and not done
  EXPECT_EQ(started.size(), 4u);     // r2 waits for w2
  s.Done(&w2);
  EXPECT_EQ(started.back(), "r2");
  s.Done(&r2);
  EXPECT_TRUE(w3.gate->is_open());
  EXPECT_EQ(started.back(), "r2");  // the barrier waits for w3
  s.Done(&w3);
  EXPECT_EQ(started.back(), "b");
  s.Done(&b);
  EXPECT_EQ(started.back(), "w4");
  EXPECT_EQ(w4.gate, nullptr);
  s.Done(&w4);
}

TEST(SessionSerializerTest, WithoutPassingReadsAReadIsABarrier) {
  SessionSerializer s;  // writes_pass_reads = false
  using K = SessionSerializer::Kind;
  std::vector<std::string> started;
  GateTask w1("w1", &started), r("r", &started), w2("w2", &started);
  s.Run(1, K::kWrite, &w1);
  s.Ordered(&w1);
  s.Run(1, K::kRead, &r);
  s.Run(1, K::kWrite, &w2);
  EXPECT_EQ(started, (std::vector<std::string>{"w1"}));
  s.Done(&w1);
  s.Done(&r);
  EXPECT_EQ(started, (std::vector<std::string>{"w1", "r", "w2"}));
  EXPECT_EQ(w2.gate, nullptr);
  s.Done(&w2);
}

// Random interleavings against the rules themselves: every start must be
// allowed by the operations before it at that moment, and every gate must
// open exactly when the reads before its write are done.
TEST(SessionSerializerTest, RandomScheduleKeepsTheRules) {
  using K = SessionSerializer::Kind;
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    SessionSerializer s(/*writes_pass_reads=*/true);
    std::mt19937 rng(seed);
    struct Op : SessionSerializer::Task {
      K kind;
      bool started = false, ordered = false, done = false;
      std::shared_ptr<replication::ApplyGate> gate;
      void Start() override {
        started = true;
        gate = apply_gate();
      }
    };
    std::vector<std::unique_ptr<Op>> ops;
    for (int step = 0; step < 300; ++step) {
      const int choice = static_cast<int>(rng() % 4);
      if (choice == 0 || ops.empty()) {
        auto op = std::make_unique<Op>();
        op->kind = static_cast<K>(rng() % 3);
        ops.push_back(std::move(op));
        s.Run(1, ops.back()->kind, ops.back().get());
      } else {
        Op* op = ops[rng() % ops.size()].get();
        if (!op->started || op->done) continue;
        if (choice == 1 && op->kind == K::kWrite) {
          op->ordered = true;
          s.Ordered(op);
        } else if (choice >= 2) {
          // A gated write is applied (done) only once its gate is open.
          if (op->gate != nullptr && !op->gate->is_open()) continue;
          op->done = true;
          s.Done(op);
        }
      }
      // Check every op against the ones before it.
      for (size_t i = 0; i < ops.size(); ++i) {
        const Op& op = *ops[i];
        bool reads_before = false, blocked = false;
        for (size_t j = 0; j < i; ++j) {
          const Op& e = *ops[j];
          if (e.done) continue;
          if (e.kind == K::kRead) reads_before = true;
          if (op.kind != K::kWrite || e.kind == K::kBarrier ||
              (e.kind == K::kWrite && !e.ordered)) {
            blocked = true;
          }
        }
        ASSERT_FALSE(op.started && !op.done && blocked)
            << "seed " << seed << " op " << i << " started too early";
        if (op.kind == K::kWrite && op.started && !op.done) {
          if (reads_before) {
            ASSERT_TRUE(op.gate != nullptr && !op.gate->is_open())
                << "seed " << seed << " op " << i << ": passes reads ungated";
          } else {
            ASSERT_TRUE(op.gate == nullptr || op.gate->is_open())
                << "seed " << seed << " op " << i << ": gate left closed";
          }
        }
        // Nothing startable is left waiting.
        if (!op.started) {
          bool may = !blocked;
          ASSERT_FALSE(may) << "seed " << seed << " op " << i << " stuck";
        }
      }
    }
  }
}

// A task whose Start completes at once, as a read does; it frees itself
// (from inside Done's caller), like the service's calls.
class InlineTask : public SessionSerializer::Task {
 public:
  InlineTask(SessionSerializer* s, int* count) : s_(s), count_(count) {}
  void Start() override {
    ++*count_;
    s_->Done(this);
    delete this;
  }

 private:
  SessionSerializer* const s_;
  int* const count_;
};

TEST(SessionSerializerTest, TasksMayCompleteAndFreeThemselvesInStart) {
  SessionSerializer s;
  int count = 0;
  for (int i = 0; i < 100000; ++i) {
    s.Run(i % 3, /*pipelined=*/false, new InlineTask(&s, &count));
  }
  EXPECT_EQ(count, 100000);
}

TEST(DeferScopeTest, RunsDeferredClosuresWhenTheScopeEnds) {
  EXPECT_FALSE(DeferScope::Active());
  std::vector<int> ran;
  {
    DeferScope outer;
    EXPECT_TRUE(DeferScope::Active());
    DeferScope::Defer([&ran] { ran.push_back(1); });
    {
      DeferScope inner;
      DeferScope::Defer([&ran] {
        ran.push_back(2);
        // Deferred from a deferred closure: runs in the same scope's end.
        DeferScope::Defer([&ran] { ran.push_back(3); });
      });
    }
    EXPECT_EQ(ran, (std::vector<int>{2, 3}));
  }
  EXPECT_EQ(ran, (std::vector<int>{2, 3, 1}));
  EXPECT_FALSE(DeferScope::Active());
}

TEST(WorkQueueTest, ClosuresRunInsideADeferScope) {
  std::atomic<int> in_scope{0};
  std::atomic<int> deferred{0};
  constexpr int kPosts = 1000;
  absl::Notification all_done;
  {
    WorkQueue q(2);
    for (int i = 0; i < kPosts; ++i) {
      q.Post([&] {
        if (DeferScope::Active()) {
          ++in_scope;
          DeferScope::Defer([&] {
            if (++deferred == kPosts) all_done.Notify();
          });
        }
      });
    }
  }  // the destructor runs what was posted, then joins
  EXPECT_TRUE(all_done.HasBeenNotified());
  EXPECT_EQ(in_scope.load(), kPosts);
  EXPECT_EQ(deferred.load(), kPosts);
}

// Inside a DeferScope, PostGathered holds its closures until the scope
// closes and then queues them all, in order; outside one it is Post.
TEST(WorkQueueTest, PostGatheredQueuesWhenTheScopeCloses) {
  absl::Mutex mu;
  std::vector<int> ran;
  auto record = [&](int i) {
    return [&, i] {
      absl::MutexLock lock(&mu);
      ran.push_back(i);
    };
  };
  auto ran_count = [&] {
    absl::MutexLock lock(&mu);
    return ran.size();
  };
  auto wait_for = [&](size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (ran_count() < n && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return ran_count() == n;
  };
  WorkQueue q(1);             // one thread: the queue's order is the run order
  q.PostGathered(record(0));  // no scope: posted at once
  ASSERT_TRUE(wait_for(1));
  {
    DeferScope scope;
    for (int i = 1; i <= 50; ++i) q.PostGathered(record(i));
    // Held: a worker had every chance to run them, had they been queued.
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_EQ(ran_count(), 1u);
  }
  ASSERT_TRUE(wait_for(51));
  {
    DeferScope scope;
    q.PostGathered(record(51));  // gathering again after a flush
  }
  ASSERT_TRUE(wait_for(52));
  absl::MutexLock lock(&mu);
  for (int i = 0; i < 52; ++i) EXPECT_EQ(ran[i], i);
}

}  // namespace
}  // namespace rockeeper::rpc
