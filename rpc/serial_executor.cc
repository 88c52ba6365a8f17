#include "rpc/serial_executor.h"

#include <atomic>
#include <memory>

namespace rockeeper::rpc {

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

WorkQueue::~WorkQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) t.join();
}

void WorkQueue::Post(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void WorkQueue::Loop() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
            return !q->queue_.empty() || q->stopping_;
          },
          this));
      if (queue_.empty()) return;
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void SessionSerializer::Run(int64_t session_id, bool pipelined, Op op) {
  if (session_id == 0) {
    op([] {}, [] {});
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Session& s = sessions_[session_id];
    s.waiting.emplace_back(pipelined, std::move(op));
    if (s.pumping) return;  // the pumping thread will get to it
    s.pumping = true;
  }
  Pump(session_id);
}

void SessionSerializer::Finish(int64_t session_id, bool done) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    if (done) --s.running;
    --s.unordered;
    if (s.pumping) return;
    s.pumping = true;
  }
  Pump(session_id);
}

void SessionSerializer::Pump(int64_t session_id) {
  for (;;) {
    Op op;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      Session& s = it->second;
      const bool may_start =
          !s.waiting.empty() &&
          (s.waiting.front().first ? s.unordered == 0 : s.running == 0);
      if (!may_start) {
        s.pumping = false;
        if (s.running == 0 && s.waiting.empty()) sessions_.erase(it);
        return;
      }
      op = std::move(s.waiting.front().second);
      s.waiting.pop_front();
      ++s.running;
      ++s.unordered;
    }
    // Exactly one of ordered-then-done or done-alone counts as "ordered".
    auto state = std::make_shared<std::atomic<int>>(0);  // 1 ordered, 2 done
    Done ordered = [this, session_id, state] {
      int expected = 0;
      if (state->compare_exchange_strong(expected, 1)) {
        Finish(session_id, /*done=*/false);
      }
    };
    Done done = [this, session_id, state] {
      const int before = state->exchange(2);
      if (before == 2) return;  // called twice: ignore
      if (before == 1) {
        // Already ordered: only `running` drops.
        bool pump = false;
        {
          absl::MutexLock lock(&mu_);
          auto it = sessions_.find(session_id);
          if (it == sessions_.end()) return;
          --it->second.running;
          if (!it->second.pumping) {
            it->second.pumping = true;
            pump = true;
          }
        }
        if (pump) Pump(session_id);
        return;
      }
      Finish(session_id, /*done=*/true);
    };
    op(std::move(ordered), std::move(done));
  }
}

}  // namespace rockeeper::rpc
