// SessionSerializer: per-session FIFO with pipelined writes; DeferScope and
// WorkQueue batches.
#include "rpc/serial_executor.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
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

}  // namespace
}  // namespace rockeeper::rpc
