#include "engine/children_cache.h"

#include <algorithm>

namespace rockeeper::engine {

size_t ChildrenCache::NameBytes(absl::string_view name) {
  // The string object plus its heap buffer when it does not fit inline.
  return sizeof(std::string) + (name.size() > 15 ? name.size() + 1 : 0);
}

size_t ChildrenCache::EntryBytes(absl::string_view parent,
                                 absl::Span<const std::string> names) {
  // Map node, key and vector; then the names.
  size_t bytes = 96 + parent.size();
  for (const std::string& n : names) bytes += NameBytes(n);
  return bytes;
}

bool ChildrenCache::Lookup(absl::string_view parent,
                           std::vector<std::string>* names) {
  if (max_bytes_ == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(parent);
  if (it == entries_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  if (!it->second.referenced.load(std::memory_order_relaxed)) {
    it->second.referenced.store(true, std::memory_order_relaxed);
  }
  names->insert(names->end(), it->second.names.begin(), it->second.names.end());
  return true;
}

void ChildrenCache::Fill(absl::string_view parent, uint64_t epoch_before_scan,
                         absl::Span<const std::string> names) {
  if (max_bytes_ == 0) return;
  const size_t bytes = EntryBytes(parent, names);
  if (bytes > max_bytes_ / 4) return;
  absl::MutexLock lock(&mu_);
  if (epoch_.load(std::memory_order_relaxed) != epoch_before_scan) return;
  if (entries_.contains(parent)) return;  // another reader filled it
  EvictUntilFits(bytes);
  Entry& e = entries_[parent];
  e.names.assign(names.begin(), names.end());
  e.bytes = bytes;
  bytes_ += bytes;
}

void ChildrenCache::ApplyChanges(absl::Span<const ChildrenChange> changes) {
  if (max_bytes_ == 0 || changes.empty()) return;
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  if (entries_.empty()) return;
  for (const ChildrenChange& c : changes) {
    auto it = entries_.find(c.parent);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    if (c.kind == ChildrenChange::Kind::kDropList) {
      bytes_ -= e.bytes;
      entries_.erase(it);
      continue;
    }
    auto pos = std::lower_bound(e.names.begin(), e.names.end(), c.name);
    const bool present = pos != e.names.end() && *pos == c.name;
    if (c.kind == ChildrenChange::Kind::kAdd && !present) {
      e.names.emplace(pos, c.name);
      e.bytes += NameBytes(c.name);
      bytes_ += NameBytes(c.name);
    } else if (c.kind == ChildrenChange::Kind::kRemove && present) {
      e.bytes -= NameBytes(*pos);
      bytes_ -= NameBytes(*pos);
      e.names.erase(pos);
    }
  }
  if (bytes_ > max_bytes_) EvictUntilFits(0);
}

void ChildrenCache::Clear() {
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  entries_.clear();
  bytes_ = 0;
}

void ChildrenCache::EvictUntilFits(size_t extra_bytes) {
  EvictSecondChance(entries_, &bytes_,
                    extra_bytes >= max_bytes_ ? 0 : max_bytes_ - extra_bytes);
}

ChildrenCache::Stats ChildrenCache::stats() const {
  absl::ReaderMutexLock lock(&mu_);
  return Stats{hits_.load(std::memory_order_relaxed),
               misses_.load(std::memory_order_relaxed), entries_.size(),
               bytes_};
}

}  // namespace rockeeper::engine
