#include "rpc/serial_executor.h"

#include <pthread.h>

#include <memory>

namespace rockeeper::rpc {
namespace {

thread_local DeferScope* t_scope = nullptr;

// Most closures a WorkQueue thread takes at once: enough to batch a group
// commit's completions, few enough that the first reply is not held long.
constexpr size_t kWorkBatch = 64;

}  // namespace

DeferScope::DeferScope() : outer_(t_scope) { t_scope = this; }

DeferScope::~DeferScope() {
  // Deferred closures may defer more: run until none is left.
  for (size_t i = 0; i < deferred_.size(); ++i) {
    std::function<void()> fn = std::move(deferred_[i]);
    fn();
  }
  t_scope = outer_;
}

bool DeferScope::Active() { return t_scope != nullptr; }

void DeferScope::Defer(std::function<void()> fn) {
  t_scope->deferred_.push_back(std::move(fn));
}

WorkQueue::WorkQueue(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "rk-work");
      Loop();
    });
  }
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
  std::vector<std::function<void()>> batch;
  batch.reserve(kWorkBatch);
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
            return !q->queue_.empty() || q->stopping_;
          },
          this));
      if (queue_.empty()) return;
      while (!queue_.empty() && batch.size() < kWorkBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    {
      DeferScope scope;
      for (auto& fn : batch) fn();
    }
    batch.clear();
  }
}

void SessionSerializer::Run(int64_t session_id, bool pipelined, Task* task) {
  task->session_id_ = session_id;
  task->pipelined_ = pipelined;
  task->state_.store(0, std::memory_order_relaxed);
  task->next_ = nullptr;
  if (session_id == 0) {
    task->Start();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Session& s = sessions_[session_id];
    if (s.tail != nullptr) {
      s.tail->next_ = task;
    } else {
      s.head = task;
    }
    s.tail = task;
    if (s.pumping) return;  // the pumping thread will get to it
    s.pumping = true;
  }
  Pump(session_id);
}

void SessionSerializer::Ordered(Task* task) {
  const int64_t session_id = task->session_id_;
  if (session_id == 0) return;
  int expected = 0;
  if (task->state_.compare_exchange_strong(expected, 1)) {
    Finish(session_id, /*done=*/false);
  }
}

void SessionSerializer::Done(Task* task) {
  const int64_t session_id = task->session_id_;
  if (session_id == 0) return;
  // Exactly one of ordered-then-done or done-alone counts as "ordered".
  const int before = task->state_.exchange(2);
  // `task` may be freed from here on.
  if (before == 2) return;  // called twice: ignore
  if (before == 0) {
    Finish(session_id, /*done=*/true);
    return;
  }
  // Already ordered: only `running` drops.
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    --it->second.running;
    if (it->second.pumping) return;
    it->second.pumping = true;
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
    Task* task = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      Session& s = it->second;
      const bool may_start =
          s.head != nullptr &&
          (s.head->pipelined_ ? s.unordered == 0 : s.running == 0);
      if (!may_start) {
        s.pumping = false;
        if (s.running == 0 && s.head == nullptr) sessions_.erase(it);
        return;
      }
      task = s.head;
      s.head = task->next_;
      if (s.head == nullptr) s.tail = nullptr;
      ++s.running;
      ++s.unordered;
    }
    task->Start();
  }
}

namespace {

// A closure pair as a Task: alive while its closures are held.
class FnTask final : public SessionSerializer::Task {
 public:
  FnTask(SessionSerializer* serializer, SessionSerializer::Op op)
      : serializer_(serializer), op_(std::move(op)) {}
  std::shared_ptr<FnTask> self;  // dropped by Start
  void Start() override {
    std::shared_ptr<FnTask> me = std::move(self);
    SessionSerializer* serializer = serializer_;
    SessionSerializer::Op op = std::move(op_);
    op([serializer, me] { serializer->Ordered(me.get()); },
       [serializer, me] { serializer->Done(me.get()); });
  }

 private:
  SessionSerializer* const serializer_;
  SessionSerializer::Op op_;
};

}  // namespace

void SessionSerializer::Run(int64_t session_id, bool pipelined, Op op) {
  auto task = std::make_shared<FnTask>(this, std::move(op));
  task->self = task;
  Run(session_id, pipelined, task.get());
}

}  // namespace rockeeper::rpc
