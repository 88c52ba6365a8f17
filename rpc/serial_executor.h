// Small execution helpers of the client front ends.
//
// WorkQueue: a few threads running posted closures (completions of writes,
// moved off the apply thread so that it never runs request code). A thread
// takes what is queued in batches and runs each batch inside a DeferScope.
//
// DeferScope: closures deferred while a scope is open on a thread run when
// it closes, on that thread. The ZooKeeper front end defers a connection's
// socket write this way, so the replies completed by one batch of work
// (a WorkQueue batch, one epoll round) leave with one send().
//
// SessionSerializer: runs each session's operations in the order they were
// started (ZooKeeper's per-session FIFO order); operations of different
// sessions, and sessionless ones, run concurrently. Writes pipeline: a
// write may start as soon as every earlier operation of its session has
// taken its place in the write order (`ordered`: a write once submitted to
// the replica, whose completions keep submission order), so one fsync can
// carry many writes of one session, as in ZooKeeper. Any other operation
// (a read, auth, sync) waits until every earlier one is done, and the ones
// after it wait for it: a read sees its session's earlier writes. The order
// is the order of the calls to Run: a front end that calls Run from one
// thread in the order it read a connection's requests keeps that order.
//
// An operation is a Task (no allocation by the serializer) or a closure
// pair. It must report Done exactly once when complete (possibly later, on
// another thread); a pipelined operation should report Ordered as soon as
// its place is fixed (after Done, or not at all, is harmless).
#ifndef ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
#define ROCKEEPER_RPC_SERIAL_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace rockeeper::rpc {

class WorkQueue {
 public:
  explicit WorkQueue(int threads);
  ~WorkQueue();  // runs what was posted, then joins
  void Post(std::function<void()> fn);

 private:
  void Loop();
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// Not copyable; scopes nest (the innermost open scope of the thread takes
// the deferred closures).
class DeferScope {
 public:
  DeferScope();
  ~DeferScope();  // runs the deferred closures in order (and theirs)
  DeferScope(const DeferScope&) = delete;
  DeferScope& operator=(const DeferScope&) = delete;

  // Is a scope open on this thread?
  static bool Active();
  // Runs `fn` when the thread's innermost scope closes. REQUIRES: Active().
  static void Defer(std::function<void()> fn);

 private:
  DeferScope* const outer_;
  std::vector<std::function<void()>> deferred_;
};

class SessionSerializer {
 public:
  // An operation; owned by whoever runs it, which keeps it alive until
  // both its Start returned and SessionSerializer::Done returned.
  class Task {
   public:
    virtual ~Task() = default;
    // Runs the operation (on the thread of Run, or of the Done/Ordered call
    // that let it start).
    virtual void Start() = 0;

   private:
    friend class SessionSerializer;
    int64_t session_id_ = 0;
    bool pipelined_ = false;
    std::atomic<int> state_{0};  // 0 started, 1 ordered, 2 done
    Task* next_ = nullptr;       // in its session's waiting list
  };

  // Starts `task` now if it may start (see above; session_id 0 always
  // may), else once the session's earlier operations allow it.
  // `pipelined`: a write (may overlap earlier ordered writes).
  void Run(int64_t session_id, bool pipelined, Task* task);
  // `task`'s place in its session's write order is fixed.
  void Ordered(Task* task);
  // `task` is complete.
  void Done(Task* task);

  // The same with closures (allocates; for tests and rare callers).
  using Fn = std::function<void()>;
  using Op = std::function<void(Fn ordered, Fn done)>;
  void Run(int64_t session_id, bool pipelined, Op op);

 private:
  struct Session {
    Task* head = nullptr;  // waiting, in order
    Task* tail = nullptr;
    int running = 0;    // started, not done
    int unordered = 0;  // started, neither ordered nor done
    bool pumping = false;
  };
  // Starts what may start, one at a time on this thread. REQUIRES: the
  // caller set s.pumping under mu_ (so only one thread pumps a session).
  void Pump(int64_t session_id);
  void Finish(int64_t session_id, bool done);
  absl::Mutex mu_;
  // Present = the session has operations running or waiting.
  absl::flat_hash_map<int64_t, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
