#include "rpc/serial_executor.h"

#include <pthread.h>

#include <memory>

namespace rockeeper::rpc {
namespace {

// Most closures a WorkQueue thread takes at once: enough to batch a group
// commit's completions, few enough that the first reply is not held long.
constexpr size_t kWorkBatch = 64;

// What PostGathered holds on this thread until its DeferScope closes.
struct Gathered {
  WorkQueue* queue = nullptr;
  std::vector<std::function<void()>> fns;
};
thread_local Gathered t_gathered;

}  // namespace

WorkQueue::WorkQueue(int threads, const char* name) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name] {
      pthread_setname_np(pthread_self(), name);
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

void WorkQueue::PostGathered(std::function<void()> fn) {
  if (!DeferScope::Active()) {
    Post(std::move(fn));
    return;
  }
  Gathered& g = t_gathered;
  if (g.queue != this) {
    PostWhatThisThreadGathered();  // another queue's (not expected)
    g.queue = this;
  }
  // The first one of a gathering queues them all when the scope closes.
  if (g.fns.empty()) DeferScope::Defer(&WorkQueue::PostWhatThisThreadGathered);
  g.fns.push_back(std::move(fn));
}

void WorkQueue::PostWhatThisThreadGathered() {
  Gathered& g = t_gathered;
  if (g.fns.empty()) return;
  {
    absl::MutexLock lock(&g.queue->mu_);
    for (auto& fn : g.fns) g.queue->queue_.push_back(std::move(fn));
  }
  g.fns.clear();  // keeps its capacity for the next batch
}

void WorkQueue::TakeBatch(std::vector<std::function<void()>>& batch) {
  while (!queue_.empty() && batch.size() < kWorkBatch) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

void WorkQueue::PostFront(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_front(std::move(fn));
}

bool WorkQueue::RunOne() {
  std::function<void()> fn;
  {
    absl::MutexLock lock(&mu_);
    if (queue_.empty()) return false;
    fn = std::move(queue_.front());
    queue_.pop_front();
  }
  DeferScope scope;
  fn();
  return true;
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
      TakeBatch(batch);
    }
    {
      DeferScope scope;
      for (auto& fn : batch) fn();
    }
    batch.clear();
  }
}

void SessionSerializer::Run(int64_t session_id, Kind kind, Task* task) {
  task->session_id_ = session_id;
  task->kind_ =
      (kind == Kind::kRead && !writes_pass_reads_) ? Kind::kBarrier : kind;
  task->state_ = Task::State::kWaiting;
  task->prev_ = task->next_ = nullptr;
  task->gate_.reset();
  if (session_id == 0) {
    task->Start();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Session& s = sessions_[session_id];
    task->prev_ = s.tail;
    if (s.tail != nullptr) {
      s.tail->next_ = task;
    } else {
      s.head = task;
    }
    s.tail = task;
    if (!ClaimPump(session_id)) return;  // the pumping thread will get to it
  }
  Pump(session_id);
}

void SessionSerializer::Ordered(Task* task) {
  const int64_t session_id = task->session_id_;
  if (session_id == 0) return;
  {
    absl::MutexLock lock(&mu_);
    // Late (after Done) or twice: harmless.
    if (task->state_ != Task::State::kStarted) return;
    task->state_ = Task::State::kOrdered;
    if (!ClaimPump(session_id)) return;
  }
  Pump(session_id);
}

void SessionSerializer::Done(Task* task) {
  const int64_t session_id = task->session_id_;
  if (session_id == 0) return;
  {
    absl::MutexLock lock(&mu_);
    // Twice, or before it started (a misuse): ignore.
    if (task->state_ == Task::State::kDone ||
        task->state_ == Task::State::kWaiting) {
      return;
    }
    task->state_ = Task::State::kDone;
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    Session& s = it->second;
    (task->prev_ != nullptr ? task->prev_->next_ : s.head) = task->next_;
    (task->next_ != nullptr ? task->next_->prev_ : s.tail) = task->prev_;
    const bool was_read = task->kind_ == Kind::kRead;
    task->prev_ = task->next_ = nullptr;
    // `task` may be freed from here on (by its owner, after we return).
    if (was_read) OpenGates(s);
    if (!ClaimPump(session_id)) return;
  }
  Pump(session_id);
}

bool SessionSerializer::IsLast(const Task* task) {
  if (task->session_id_ == 0) return true;
  absl::MutexLock lock(&mu_);
  return task->next_ == nullptr;
}

bool SessionSerializer::AnyEarlierRead(
    const Task* write, absl::FunctionRef<bool(const Task& read)> conflicts) {
  absl::MutexLock lock(&mu_);
  if (write->state_ == Task::State::kDone) return false;
  for (const Task* t = write->prev_; t != nullptr; t = t->prev_) {
    if (t->kind_ == Kind::kRead && conflicts(*t)) return true;
  }
  return false;
}

bool SessionSerializer::ClaimPump(int64_t session_id) {
  Session& s = sessions_[session_id];
  if (s.pumping) return false;
  s.pumping = true;
  return true;
}

void SessionSerializer::OpenGates(Session& s) {
  for (Task* t = s.head; t != nullptr && t->kind_ != Kind::kRead;
       t = t->next_) {
    if (t->gate_ != nullptr) t->gate_->Open();
  }
}

SessionSerializer::Task* SessionSerializer::NextToStart(Session& s) {
  bool reads_before = false;  // a read not done precedes the candidate
  for (Task* t = s.head; t != nullptr; t = t->next_) {
    if (t->state_ == Task::State::kWaiting) {
      if (t == s.head) return t;  // nothing earlier left
      if (t->kind_ == Kind::kWrite) {
        // Everything before is an ordered write or a read (else we would
        // have stopped): it may go, gated if it passes reads.
        if (reads_before) {
          t->gate_ = std::make_shared<replication::ApplyGate>(helper_);
        }
        return t;
      }
      if (t->kind_ == Kind::kBarrier) return nullptr;
      reads_before = true;  // a waiting read: later writes may pass it
      continue;
    }
    // Started: later writes may pass an ordered write or a read.
    if (t->kind_ == Kind::kRead) {
      reads_before = true;
    } else if (!(t->kind_ == Kind::kWrite &&
                 t->state_ == Task::State::kOrdered)) {
      return nullptr;
    }
  }
  return nullptr;
}

void SessionSerializer::Pump(int64_t session_id) {
  for (;;) {
    Task* task = nullptr;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(session_id);
      Session& s = it->second;
      task = NextToStart(s);
      if (task == nullptr) {
        s.pumping = false;
        if (s.head == nullptr) sessions_.erase(it);
        return;
      }
      task->state_ = Task::State::kStarted;
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

void SessionSerializer::Run(int64_t session_id, Kind kind, Op op) {
  auto task = std::make_shared<FnTask>(this, std::move(op));
  task->self = task;
  Run(session_id, kind, task.get());
}

}  // namespace rockeeper::rpc
