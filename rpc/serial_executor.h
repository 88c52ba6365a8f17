// Two small execution helpers of the gRPC front end.
//
// WorkQueue: a few threads running posted closures (completions of writes,
// moved off the apply thread so that it never runs request code).
//
// SessionSerializer: runs each session's operations in the order they were
// started (ZooKeeper's per-session FIFO order); operations of different
// sessions, and sessionless ones, run concurrently. Writes pipeline: a
// write may start as soon as every earlier operation of its session has
// taken its place in the write order (`ordered`: a write once submitted to
// the replica, whose completions keep submission order), so one fsync can
// carry many writes of one session, as in ZooKeeper. Any other operation
// (a read, auth, sync) waits until every earlier one is done, and the ones
// after it wait for it: a read sees its session's earlier writes.
//
// An operation receives `ordered` and `done` closures. It must call `done`
// exactly once when complete (possibly later, on another thread); a
// pipelined operation should call `ordered` as soon as its place is fixed
// (calling it after `done`, or not at all, is harmless).
#ifndef ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
#define ROCKEEPER_RPC_SERIAL_EXECUTOR_H_

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

class SessionSerializer {
 public:
  using Done = std::function<void()>;
  using Op = std::function<void(Done ordered, Done done)>;
  // Runs `op` now if it may start (see above; session_id 0 always may),
  // else once the session's earlier operations allow it. `pipelined`: a
  // write (may overlap earlier ordered writes).
  void Run(int64_t session_id, bool pipelined, Op op);

 private:
  struct Session {
    std::deque<std::pair<bool, Op>> waiting;
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
