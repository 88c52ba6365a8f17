#include "rpc/event_hub.h"

namespace rockeeper::rpc {

void EventHub::Notify(int64_t session_id) {
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.token == 0) return;
    notify = it->second.notify;
  }
  if (notify) notify();
}

void EventHub::Publish(int64_t session_id, engine::WatchEventType type,
                       const std::string& path, int64_t zxid) {
  {
    absl::MutexLock lock(&mu_);
    SessionQueue& q = sessions_[session_id];
    q.events.push_back({++q.last_seq, type, path, zxid});
    if (q.events.size() > max_queued_) q.events.pop_front();
  }
  Notify(session_id);
}

uint64_t EventHub::LastSeq(int64_t session_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? 0 : it->second.last_seq;
}

uint64_t EventHub::Attach(int64_t session_id, std::function<void()> notify) {
  std::function<void()> previous;
  uint64_t token = 0;
  {
    absl::MutexLock lock(&mu_);
    SessionQueue& q = sessions_[session_id];
    previous = std::move(q.notify);  // the replaced stream learns it on Take
    q.token = token = next_token_++;
    q.pong = false;
    q.end = End::kNone;
    q.notify = std::move(notify);
  }
  if (previous) previous();
  return token;
}

void EventHub::Detach(int64_t session_id, uint64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it != sessions_.end() && it->second.token == token) {
    it->second.token = 0;
    it->second.notify = nullptr;
  }
}

void EventHub::Ping(int64_t session_id, uint64_t token) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.token != token) return;
    it->second.pong = true;
  }
  Notify(session_id);
}

EventHub::Batch EventHub::Take(int64_t session_id, uint64_t token) {
  absl::MutexLock lock(&mu_);
  Batch batch;
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) {
    batch.end = End::kClosed;
    return batch;
  }
  SessionQueue& q = it->second;
  if (q.token != token) {
    batch.end = End::kReplaced;
    return batch;
  }
  batch.events.assign(q.events.begin(), q.events.end());
  batch.done_through = q.events.empty() ? q.last_seq : q.events.front().seq - 1;
  batch.pong = q.pong;
  q.pong = false;
  batch.end = q.end;
  if (q.end != End::kNone) sessions_.erase(it);
  return batch;
}

void EventHub::Ack(int64_t session_id, uint64_t seq) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  auto& events = it->second.events;
  while (!events.empty() && events.front().seq <= seq) events.pop_front();
}

void EventHub::Close(int64_t session_id, End end) {
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    if (it->second.token == 0) {  // no stream attached
      sessions_.erase(it);
      return;
    }
    it->second.end = end;
  }
  Notify(session_id);
}

}  // namespace rockeeper::rpc
