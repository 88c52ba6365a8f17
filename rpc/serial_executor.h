// Two small execution helpers of the gRPC front end.
//
// WorkQueue: a few threads running posted closures (completions of writes,
// moved off the apply thread so that it never runs request code).
//
// SessionSerializer: runs each session's operations one at a time in the
// order they were started (ZooKeeper's per-session FIFO order, reads
// included); operations of different sessions, and sessionless ones, run
// concurrently. An operation receives a `done` closure and must call it
// exactly once when it has completed (possibly later, on another thread).
#ifndef ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
#define ROCKEEPER_RPC_SERIAL_EXECUTOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
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
  using Op = std::function<void(Done done)>;
  // Runs `op` now if the session is idle (or session_id is 0), else after
  // the session's earlier operations have called their `done`.
  void Run(int64_t session_id, Op op);

 private:
  void Next(int64_t session_id);
  absl::Mutex mu_;
  // Present = the session has an operation running; holds the ones waiting.
  absl::flat_hash_map<int64_t, std::deque<Op>> busy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_SERIAL_EXECUTOR_H_
