#include "rpc/event_hub.h"

namespace rockeeper::rpc {

void EventHub::Publish(int64_t session_id, engine::WatchEventType type,
                       const std::string& path, int64_t zxid) {
  absl::MutexLock lock(&mu_);
  SessionQueue& q = sessions_[session_id];
  q.events.push_back({++q.last_seq, type, path, zxid});
  if (q.events.size() > max_queued_) q.events.pop_front();
}

uint64_t EventHub::LastSeq(int64_t session_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  return it == sessions_.end() ? 0 : it->second.last_seq;
}

uint64_t EventHub::Attach(int64_t session_id) {
  absl::MutexLock lock(&mu_);
  SessionQueue& q = sessions_[session_id];
  q.token = next_token_++;
  q.pong = false;
  q.end = End::kNone;
  return q.token;
}

void EventHub::Detach(int64_t session_id, uint64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it != sessions_.end() && it->second.token == token) it->second.token = 0;
}

void EventHub::Ping(int64_t session_id, uint64_t token) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it != sessions_.end() && it->second.token == token) it->second.pong = true;
}

EventHub::Batch EventHub::Wait(int64_t session_id, uint64_t token,
                               absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return true;
    const SessionQueue& q = it->second;
    return q.token != token || q.end != End::kNone || q.pong ||
           !q.events.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
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
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  if (it->second.token == 0) {  // no stream ever attached
    sessions_.erase(it);
    return;
  }
  it->second.end = end;
}

}  // namespace rockeeper::rpc
