// SessionSerializer: per-session FIFO with pipelined writes.
#include "rpc/serial_executor.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rockeeper::rpc {
namespace {

// Records start order and keeps each op's callbacks for the test to call.
struct Harness {
  SessionSerializer s;
  std::vector<std::string> started;
  std::vector<SessionSerializer::Done> ordered, done;

  void Run(int64_t sid, bool write, const std::string& name) {
    s.Run(sid, write,
          [this, name](SessionSerializer::Done o, SessionSerializer::Done d) {
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
          [&started](SessionSerializer::Done o, SessionSerializer::Done d) {
            ++started;
            o();
            d();
          });
  }
  EXPECT_EQ(started, 100000);
}

}  // namespace
}  // namespace rockeeper::rpc
