#include "engine/children_cache.h"

#include <algorithm>

namespace rockeeper::engine {
namespace {

void AppendU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

}  // namespace

std::string PackNames(absl::Span<const std::string> names) {
  size_t bytes = 4;
  for (const std::string& n : names) bytes += 4 + n.size();
  std::string out;
  out.reserve(bytes);
  AppendU32(&out, static_cast<uint32_t>(names.size()));
  for (const std::string& n : names) {
    AppendU32(&out, static_cast<uint32_t>(n.size()));
    out.append(n);
  }
  return out;
}

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

ChildrenCache::Entry* ChildrenCache::FindForRead(absl::string_view parent) {
  auto it = entries_.find(parent);
  if (it == entries_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  if (!it->second.referenced.load(std::memory_order_relaxed)) {
    it->second.referenced.store(true, std::memory_order_relaxed);
  }
  return &it->second;
}

bool ChildrenCache::Contains(absl::string_view parent) const {
  if (max_bytes_ == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  return entries_.contains(parent);
}

bool ChildrenCache::Lookup(absl::string_view parent,
                           std::vector<std::string>* names) {
  if (max_bytes_ == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  const Entry* e = FindForRead(parent);
  if (e == nullptr) return false;
  names->insert(names->end(), e->names.begin(), e->names.end());
  return true;
}

size_t ChildrenCache::PackedBytes(const std::string& packed) {
  // The shared string's control block and object, and its buffer.
  return 64 + packed.capacity();
}

void ChildrenCache::DropPacked(Entry& e, size_t* total_bytes) {
  if (e.packed == nullptr) return;
  const size_t b = PackedBytes(*e.packed);
  e.bytes -= b;
  *total_bytes -= b;
  e.packed.reset();
}

bool ChildrenCache::LookupPacked(absl::string_view parent,
                                 PackedNames* packed) {
  if (max_bytes_ == 0) return false;
  uint64_t version = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    const Entry* e = FindForRead(parent);
    if (e == nullptr) return false;
    if (e->packed != nullptr) {
      *packed = e->packed;
      return true;
    }
    version = e->version;
    *packed = std::make_shared<const std::string>(PackNames(e->names));
  }
  StorePacked(parent, version, *packed);
  return true;
}

void ChildrenCache::StorePacked(absl::string_view parent,
                                uint64_t packed_version,
                                const PackedNames& packed) {
  absl::MutexLock lock(&mu_);
  // The entry it was made from, if that is still the list and unpacked.
  auto unpacked = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> Entry* {
    auto it = entries_.find(parent);
    if (it == entries_.end() || it->second.version != packed_version ||
        it->second.packed != nullptr) {
      return nullptr;
    }
    return &it->second;
  };
  if (unpacked() == nullptr) return;
  const size_t bytes = PackedBytes(*packed);
  if (bytes_ + bytes > max_bytes_) EvictUntilFits(bytes);
  Entry* e = unpacked();  // eviction may have taken it
  if (e == nullptr) return;
  e->packed = packed;
  e->bytes += bytes;
  bytes_ += bytes;
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
  e.version = ++last_version_;
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
      DropPacked(e, &bytes_);
      e.version = ++last_version_;
      e.names.emplace(pos, c.name);
      e.bytes += NameBytes(c.name);
      bytes_ += NameBytes(c.name);
    } else if (c.kind == ChildrenChange::Kind::kRemove && present) {
      DropPacked(e, &bytes_);
      e.version = ++last_version_;
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
