// ApplyGate: holds a proposed txn's apply back until the reads that its
// session issued before it have run.
//
// Why: ZooKeeper executes a session's requests in the order they were sent,
// yet it proposes (and fsyncs) a write at once, even while a read sent
// before it still waits for an earlier write to commit; only the write's
// apply waits for that read. Without this, a client that pipelines reads
// and writes in one session (ClickHouse does, with one session per server)
// gets one read-write alternation per commit latency. The front end
// (rpc/serial_executor.h) submits such a write with a gate and opens the
// gate when the reads before it are done; the commit pipeline logs the txn
// at once and waits for the gate before applying it, so the reads never
// see it.
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_REPLICATION_APPLY_GATE_H_
#define ROCKEEPER_REPLICATION_APPLY_GATE_H_

#include <algorithm>
#include <functional>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rockeeper::replication {

// Work a thread waiting for a gate may do meanwhile: the front end's queued
// completions, which lead to the reads the gate waits for. Running them on
// the waiting (apply) thread saves two thread hops per wait.
class GateHelper {
 public:
  virtual ~GateHelper() = default;
  // Runs one piece of queued work; false if there was none. Thread-safe.
  virtual bool RunOne() = 0;
};

class ApplyGate {
 public:
  explicit ApplyGate(std::shared_ptr<GateHelper> helper = nullptr)
      : helper_(std::move(helper)) {}
  ApplyGate(const ApplyGate&) = delete;
  ApplyGate& operator=(const ApplyGate&) = delete;

  // Lets the txn be applied. Idempotent. Runs the OnOpen hook, if any.
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
    if (on_open_) {
      std::function<void()> fn = std::move(on_open_);
      on_open_ = nullptr;
      fn();
    }
  }
  // For an owner that does not wait in WaitOpen (a replica whose apply runs
  // on an event loop): `fn` runs once when the gate opens, at once if it is
  // open already, on the opening thread and under the gate's lock, so that
  // after ClearOnOpen returns it never runs. Keep it short; it must not call
  // this gate. Replaces an earlier hook.
  void OnOpen(std::function<void()> fn) {
    absl::MutexLock lock(&mu_);
    if (open_) {
      fn();
      return;
    }
    on_open_ = std::move(fn);
  }
  void ClearOnOpen() {
    absl::MutexLock lock(&mu_);
    on_open_ = nullptr;
  }
  bool is_open() const {
    absl::MutexLock lock(&mu_);
    return open_;
  }
  // Waits until the gate is open or `timeout` passed, running the helper's
  // work while there is some; returns is_open().
  bool WaitOpen(absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      if (is_open()) return true;
      if (helper_ != nullptr && helper_->RunOne()) continue;
      absl::MutexLock lock(&mu_);
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return open_;
      // With a helper, look for new work now and then.
      mu_.AwaitWithTimeout(
          absl::Condition(&open_),
          helper_ != nullptr ? std::min(left, absl::Milliseconds(1)) : left);
      if (open_) return true;
    }
  }

 private:
  const std::shared_ptr<GateHelper> helper_;
  mutable absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_open_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_APPLY_GATE_H_
