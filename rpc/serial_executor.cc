#include "rpc/serial_executor.h"

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

void SessionSerializer::Run(int64_t session_id, Op op) {
  if (session_id == 0) {
    op([] {});
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    auto [it, idle] = busy_.try_emplace(session_id);
    if (!idle) {
      it->second.push_back(std::move(op));
      return;
    }
  }
  op([this, session_id] { Next(session_id); });
}

void SessionSerializer::Next(int64_t session_id) {
  Op op;
  {
    absl::MutexLock lock(&mu_);
    auto it = busy_.find(session_id);
    if (it == busy_.end()) return;
    if (it->second.empty()) {
      busy_.erase(it);
      return;
    }
    op = std::move(it->second.front());
    it->second.pop_front();
  }
  op([this, session_id] { Next(session_id); });
}

}  // namespace rockeeper::rpc
