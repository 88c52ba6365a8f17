#include "rpc/session_tracker.h"

#include <algorithm>
#include <random>

#include "absl/time/clock.h"

namespace rockeeper::rpc {

SessionTracker::SessionTracker(int64_t server_id) {
  const uint64_t ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
  next_id_ = static_cast<int64_t>(((ms << 24) >> 8) |
                                  (static_cast<uint64_t>(server_id) << 56));
}

int64_t SessionTracker::NextSessionId() {
  absl::MutexLock lock(&mu_);
  int64_t id = next_id_++;
  if (id == INT64_MIN || id == 0) id = next_id_++;  // reserved markers
  return id;
}

std::string SessionTracker::NewPassword() {
  std::random_device rd;
  std::string pw(16, '\0');
  for (char& c : pw) c = static_cast<char>(rd());
  return pw;
}

void SessionTracker::Add(int64_t id, int32_t timeout_ms, std::string password,
                         std::string client_ip) {
  absl::MutexLock lock(&mu_);
  SessionInfo& s = sessions_[id];
  s.id = id;
  s.client_ip = std::move(client_ip);
  s.timeout_ms = timeout_ms;
  s.password = std::move(password);
  s.expires_at = absl::Now() + absl::Milliseconds(timeout_ms);
}

void SessionTracker::Remove(int64_t id) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(id);
}

bool SessionTracker::Touch(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return false;
  const absl::Time now = absl::Now();
  if (enforce_deadlines_ && now > it->second.expires_at) {
    return false;  // already expired
  }
  it->second.expires_at = now + absl::Milliseconds(it->second.timeout_ms);
  // Bounded: a learner hands these to the leader every half tick.
  if (touched_.size() < (1u << 20)) touched_.push_back(id);
  return true;
}

std::vector<int64_t> SessionTracker::TakeTouched() {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> out;
  out.swap(touched_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void SessionTracker::ResetDeadlines() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (auto& [id, s] : sessions_) {
    s.expires_at = now + absl::Milliseconds(s.timeout_ms);
  }
}

void SessionTracker::set_enforce_deadlines(bool enforce) {
  absl::MutexLock lock(&mu_);
  enforce_deadlines_ = enforce;
}

std::optional<SessionInfo> SessionTracker::Get(int64_t id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second;
}

void SessionTracker::AddAuth(int64_t id, engine::AuthId auth) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  for (const auto& a : it->second.auth_ids) {
    if (a == auth) return;
  }
  it->second.auth_ids.push_back(std::move(auth));
}

std::vector<int64_t> SessionTracker::Expired(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> out;
  for (const auto& [id, s] : sessions_) {
    if (now > s.expires_at) out.push_back(id);
  }
  return out;
}

size_t SessionTracker::CountForIp(const std::string& client_ip) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, s] : sessions_) n += (s.client_ip == client_ip);
  return n;
}

size_t SessionTracker::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

std::vector<SessionInfo> SessionTracker::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<SessionInfo> out;
  out.reserve(sessions_.size());
  for (const auto& [id, info] : sessions_) out.push_back(info);
  return out;
}

}  // namespace rockeeper::rpc
