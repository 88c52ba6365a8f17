// Small execution helpers of the client front ends.
//
// WorkQueue: a few threads running posted closures (completions of writes,
// moved off the apply thread so that it never runs request code). A thread
// takes what is queued in batches and runs each batch inside a DeferScope.
//
// DeferScope (replication/defer_scope.h): closures deferred while a scope is
// open on a thread run when it closes, on that thread.
//
// SessionSerializer: runs each session's operations in the order they were
// started (ZooKeeper's per-session FIFO order); operations of different
// sessions, and sessionless ones, run concurrently. Three kinds:
//   * a write may start as soon as every earlier operation of its session is
//     a write that has taken its place in the write order (`ordered`: once
//     submitted to the replica, whose completions keep submission order), so
//     one fsync can carry many writes of one session, as in ZooKeeper;
//   * a read waits until every earlier operation is done (it sees its
//     session's earlier writes);
//   * anything else (auth, sync, close, watches) is a barrier: it waits for
//     every earlier operation, and every later one waits for it.
// With `writes_pass_reads`, a write may also start while earlier reads of
// its session are still waiting or running, as ZooKeeper proposes a write
// at once: it then gets an ApplyGate (apply_gate()), which must reach the
// replica with the write (Replica::SubmitGated); the serializer opens it when
// the last of those reads is done, so the write is applied after them and
// they never see it. Without it a read is a barrier, for replicas that do
// not honour gates. The order is the order of the calls to Run: a front end
// that calls Run from one thread in the order it read a connection's
// requests keeps that order.
//
// An operation is a Task (the serializer allocates nothing but the gate of
// a write that passes reads) or a closure pair. It must report Done exactly
// once when complete (possibly later, on another thread); a write should report
// Ordered as soon as its place is fixed (after Done, or not at all, is
// harmless).
#ifndef ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
#define ROCKEEPER_RPC_SERIAL_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "replication/apply_gate.h"
#include "replication/defer_scope.h"

namespace rockeeper::rpc {

class WorkQueue {
 public:
  // `name`: the threads' name (at most 15 characters).
  explicit WorkQueue(int threads, const char* name = "rk-work");
  ~WorkQueue();  // runs what was posted, then joins
  void Post(std::function<void()> fn);
  // Queues `fn` ahead of everything queued.
  void PostFront(std::function<void()> fn);
  // As Post, but inside a DeferScope `fn` waits in the scope with whatever
  // else this thread gathered for this queue, and all are queued together
  // when the scope closes: one lock and one wake-up for the lot instead of
  // one each. Outside a scope, Post. For callers whose scope closes soon.
  void PostGathered(std::function<void()> fn);
  // Runs the first queued closure on the calling thread (inside a
  // DeferScope), as a worker would; false if none was queued.
  bool RunOne();

 private:
  // Moves up to a batch of queued closures into `batch`.
  void TakeBatch(std::vector<std::function<void()>>& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues what this thread gathered (PostGathered).
  static void PostWhatThisThreadGathered();
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// DeferScope (replication/defer_scope.h) is used here under its short name.
using replication::DeferScope;

class SessionSerializer {
 public:
  enum class Kind : uint8_t { kWrite, kRead, kBarrier };

  // An operation; owned by whoever runs it, which keeps it alive until
  // both its Start returned and SessionSerializer::Done returned.
  class Task {
   public:
    virtual ~Task() = default;
    // Runs the operation (on the thread of Run, or of the Done/Ordered call
    // that let it start).
    virtual void Start() = 0;
    // For a write that started before earlier reads of its session were
    // done: the gate to submit it with. Null otherwise. Set before Start.
    const std::shared_ptr<replication::ApplyGate>& apply_gate() const {
      return gate_;
    }

   private:
    friend class SessionSerializer;
    enum class State : uint8_t { kWaiting, kStarted, kOrdered, kDone };
    int64_t session_id_ = 0;
    Kind kind_ = Kind::kBarrier;
    State state_ = State::kWaiting;  // guarded by the serializer's mutex
    Task* prev_ = nullptr;           // in its session's list, in order
    Task* next_ = nullptr;
    std::shared_ptr<replication::ApplyGate> gate_;
  };

  // `helper`: given to every gate (see replication/apply_gate.h); may be
  // null.
  explicit SessionSerializer(
      bool writes_pass_reads = false,
      std::shared_ptr<replication::GateHelper> helper = nullptr)
      : writes_pass_reads_(writes_pass_reads), helper_(std::move(helper)) {}

  // Starts `task` now if it may start (see above; session_id 0 always
  // may), else once the session's earlier operations allow it.
  void Run(int64_t session_id, Kind kind, Task* task);
  // Old form: `pipelined` = a write, else a barrier.
  void Run(int64_t session_id, bool pipelined, Task* task) {
    Run(session_id, pipelined ? Kind::kWrite : Kind::kBarrier, task);
  }
  bool writes_pass_reads() const { return writes_pass_reads_; }
  // `task`'s place in its session's write order is fixed.
  void Ordered(Task* task);
  // `task` is complete.
  void Done(Task* task);
  // True if no operation of `task`'s session was started after it (by
  // Run): its Done would start nothing unless one arrives meanwhile.
  bool IsLast(const Task* task);
  // Calls `conflicts` (under the serializer's lock: keep it quick) with each
  // read before `write` in its session that is not done; true as soon as
  // one call returns true. A write that passed reads and conflicts with
  // none of them needs no gate: they cannot observe it.
  bool AnyEarlierRead(const Task* write,
                      absl::FunctionRef<bool(const Task& read)> conflicts);

  // The same with closures (allocates; for tests and rare callers).
  using Fn = std::function<void()>;
  using Op = std::function<void(Fn ordered, Fn done)>;
  void Run(int64_t session_id, Kind kind, Op op);
  void Run(int64_t session_id, bool pipelined, Op op) {
    Run(session_id, pipelined ? Kind::kWrite : Kind::kBarrier, std::move(op));
  }

 private:
  struct Session {
    Task* head = nullptr;  // every operation not done yet, in order
    Task* tail = nullptr;
    bool pumping = false;
  };
  // The first operation of `s` that may start now, or null; sets its gate
  // if it is a write passing reads.
  Task* NextToStart(Session& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens the gates of the writes before the session's first read that is
  // not done.
  static void OpenGates(Session& s);
  // Starts what may start, one at a time on this thread. REQUIRES: the
  // caller set s.pumping under mu_ (so only one thread pumps a session).
  void Pump(int64_t session_id);
  // Under mu_: if nobody pumps the session, claims it (returns true).
  bool ClaimPump(int64_t session_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const bool writes_pass_reads_;
  const std::shared_ptr<replication::GateHelper> helper_;
  absl::Mutex mu_;
  // Present = the session has operations running or waiting.
  absl::flat_hash_map<int64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
