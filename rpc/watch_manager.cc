#include "rpc/watch_manager.h"

#include <map>
#include <set>

#include "engine/path_utils.h"

namespace rockeeper::rpc {

using engine::WatchEventType;

WatchManager::Table& WatchManager::TableFor(WatchKind kind) {
  switch (kind) {
    case WatchKind::kData: return data_;
    case WatchKind::kExist: return exist_;
    case WatchKind::kChild: return child_;
    case WatchKind::kPersistent: return persistent_;
    case WatchKind::kPersistentRecursive: return recursive_;
  }
  return data_;
}

void WatchManager::Add(int64_t session_id, const std::string& path,
                       WatchKind kind) {
  absl::MutexLock lock(&mu_);
  TableFor(kind)[path].insert(session_id);
  by_session_[session_id].insert(path);
}

int WatchManager::Remove(int64_t session_id, const std::string& path,
                         const std::vector<WatchKind>& kinds) {
  absl::MutexLock lock(&mu_);
  int removed = 0;
  for (WatchKind kind : kinds) {
    Table& table = TableFor(kind);
    auto it = table.find(path);
    if (it == table.end()) continue;
    removed += static_cast<int>(it->second.erase(session_id));
    if (it->second.empty()) table.erase(it);
  }
  return removed;
}

bool WatchManager::Contains(int64_t session_id, const std::string& path,
                            const std::vector<WatchKind>& kinds) const {
  absl::MutexLock lock(&mu_);
  for (WatchKind kind : kinds) {
    const Table& table =
        const_cast<WatchManager*>(this)->TableFor(kind);  // read only
    auto it = table.find(path);
    if (it != table.end() && it->second.contains(session_id)) return true;
  }
  return false;
}

void WatchManager::RemoveSession(int64_t session_id) {
  absl::MutexLock lock(&mu_);
  auto it = by_session_.find(session_id);
  if (it == by_session_.end()) return;
  for (const std::string& path : it->second) {
    for (Table* table : {&data_, &exist_, &child_, &persistent_, &recursive_}) {
      auto t = table->find(path);
      if (t == table->end()) continue;
      t->second.erase(session_id);
      if (t->second.empty()) table->erase(t);
    }
  }
  by_session_.erase(it);
}

void WatchManager::Fire(Table& table, const std::string& path, bool one_shot,
                        Sessions* out) {
  auto it = table.find(path);
  if (it == table.end()) return;
  out->insert(it->second.begin(), it->second.end());
  if (one_shot) table.erase(it);
}

std::vector<Notification> WatchManager::Trigger(
    const engine::WatchTrigger& trigger) {
  absl::MutexLock lock(&mu_);
  Sessions sessions;
  const std::string& path = trigger.path;
  switch (trigger.type) {
    case WatchEventType::kNodeCreated:
    case WatchEventType::kNodeDataChanged:
      Fire(data_, path, true, &sessions);
      Fire(exist_, path, true, &sessions);
      break;
    case WatchEventType::kNodeDeleted:
      Fire(data_, path, true, &sessions);
      Fire(exist_, path, true, &sessions);
      Fire(child_, path, true, &sessions);
      break;
    case WatchEventType::kNodeChildrenChanged:
      Fire(child_, path, true, &sessions);
      break;
  }
  Fire(persistent_, path, false, &sessions);
  if (trigger.type != WatchEventType::kNodeChildrenChanged &&
      !recursive_.empty()) {
    for (std::string p = path;; p = std::string(engine::ParentPath(p))) {
      Fire(recursive_, p, false, &sessions);
      if (p == "/") break;
    }
  }
  std::vector<Notification> out;
  out.reserve(sessions.size());
  for (int64_t s : sessions) out.push_back({s, trigger.type, path});
  return out;
}

size_t WatchManager::watch_count() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const Table* table : {&data_, &exist_, &child_, &persistent_, &recursive_}) {
    for (const auto& [path, sessions] : *table) n += sessions.size();
  }
  return n;
}

}  // namespace rockeeper::rpc

namespace rockeeper::rpc {

WatchManager::Summary WatchManager::summary() const {
  absl::MutexLock lock(&mu_);
  Summary s;
  absl::flat_hash_set<std::string> paths;
  absl::flat_hash_set<int64_t> sessions;
  for (const Table* table :
       {&data_, &exist_, &child_, &persistent_, &recursive_}) {
    for (const auto& [path, ids] : *table) {
      paths.insert(path);
      sessions.insert(ids.begin(), ids.end());
      s.watches += ids.size();
    }
  }
  s.paths = paths.size();
  s.sessions = sessions.size();
  return s;
}

std::vector<std::pair<int64_t, std::vector<std::string>>>
WatchManager::BySession() const {
  std::map<int64_t, std::set<std::string>> m;
  {
    absl::MutexLock lock(&mu_);
    for (const Table* table :
         {&data_, &exist_, &child_, &persistent_, &recursive_}) {
      for (const auto& [path, ids] : *table) {
        for (int64_t id : ids) m[id].insert(path);
      }
    }
  }
  std::vector<std::pair<int64_t, std::vector<std::string>>> out;
  out.reserve(m.size());
  for (auto& [id, paths] : m) {
    out.emplace_back(id, std::vector<std::string>(paths.begin(), paths.end()));
  }
  return out;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> WatchManager::ByPath()
    const {
  std::map<std::string, std::set<int64_t>> m;
  {
    absl::MutexLock lock(&mu_);
    for (const Table* table :
         {&data_, &exist_, &child_, &persistent_, &recursive_}) {
      for (const auto& [path, ids] : *table)
        m[path].insert(ids.begin(), ids.end());
    }
  }
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.reserve(m.size());
  for (auto& [path, ids] : m) {
    out.emplace_back(path, std::vector<int64_t>(ids.begin(), ids.end()));
  }
  return out;
}

}  // namespace rockeeper::rpc
