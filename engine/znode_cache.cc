#include "engine/znode_cache.h"

#include <utility>

#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

size_t ZnodeCache::EntryBytes(absl::string_view path, const Znode& node) {
  // Map node, key and Znode objects; then the heap buffers of the strings.
  return 64 + sizeof(std::string) + sizeof(Entry) +
         (path.size() > 15 ? path.size() + 1 : 0) +
         (node.data.size() > 15 ? node.data.size() + 1 : 0);
}

bool ZnodeCache::Lookup(absl::string_view path, Znode* node) const {
  if (max_bytes_ == 0) return false;
  absl::ReaderMutexLock lock(&mu_);
  auto it = entries_.find(path);
  if (it == entries_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  it->second.referenced.store(true, std::memory_order_relaxed);
  *node = it->second.node;
  return true;
}

void ZnodeCache::Fill(absl::string_view path, uint64_t epoch_before_read,
                      const Znode& node) {
  if (max_bytes_ == 0) return;
  absl::MutexLock lock(&mu_);
  if (epoch_.load(std::memory_order_relaxed) != epoch_before_read) return;
  if (entries_.contains(path)) return;  // another reader filled it
  Put(path, node);
}

void ZnodeCache::ApplyChanges(absl::Span<ZnodeChange> changes) {
  if (max_bytes_ == 0 || changes.empty()) return;
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  for (ZnodeChange& c : changes) {
    switch (c.kind) {
      case ZnodeChange::Kind::kPut:
        Put(c.path, std::move(c.node));
        break;
      case ZnodeChange::Kind::kErase:
        Erase(c.path);
        break;
      case ZnodeChange::Kind::kPatch: {
        auto it = entries_.find(c.path);
        if (it == entries_.end()) break;
        Entry& e = it->second;
        MergePatch(c.patch, &e.node);
        const size_t bytes = EntryBytes(c.path, e.node);
        bytes_ = bytes_ - e.bytes + bytes;
        e.bytes = bytes;
        if (bytes_ > max_bytes_) EvictUntilFits(0);
        break;
      }
    }
  }
}

void ZnodeCache::MergePatch(const record::v1::ZnodeRecord& p, Znode* n) {
  // The merge operator's rule (engine/znode_merge.cc): the fields present in
  // the patch win.
  if (p.has_czxid()) n->czxid = p.czxid();
  if (p.has_mzxid()) n->mzxid = p.mzxid();
  if (p.has_pzxid()) n->pzxid = p.pzxid();
  if (p.has_ctime_ms()) n->ctime_ms = p.ctime_ms();
  if (p.has_mtime_ms()) n->mtime_ms = p.mtime_ms();
  if (p.has_version()) n->version = p.version();
  if (p.has_cversion()) n->cversion = p.cversion();
  if (p.has_aversion()) n->aversion = p.aversion();
  if (p.has_ephemeral_owner()) n->ephemeral_owner = p.ephemeral_owner();
  if (p.has_num_children()) n->num_children = p.num_children();
  if (p.has_acl_id()) n->acl_id = p.acl_id();
  if (p.has_data()) n->data = p.data();
  if (p.has_data_null()) n->data_null = p.data_null();
}

void ZnodeCache::Put(absl::string_view path, Znode node) {
  const size_t bytes = EntryBytes(path, node);
  auto it = entries_.find(path);
  if (it != entries_.end() && bytes <= max_bytes_ / 16) {
    Entry& e = it->second;  // in place: no node to free and allocate
    e.node = std::move(node);
    bytes_ = bytes_ - e.bytes + bytes;
    e.bytes = bytes;
    if (bytes_ > max_bytes_) EvictUntilFits(0);
    return;
  }
  if (it != entries_.end()) {
    bytes_ -= it->second.bytes;
    entries_.erase(it);
  }
  if (bytes > max_bytes_ / 16) return;
  if (bytes_ + bytes > max_bytes_) EvictUntilFits(bytes);
  Entry& e = entries_[path];
  e.node = std::move(node);
  e.bytes = bytes;
  bytes_ += bytes;
}

void ZnodeCache::Erase(absl::string_view path) {
  auto it = entries_.find(path);
  if (it == entries_.end()) return;
  bytes_ -= it->second.bytes;
  entries_.erase(it);
}

void ZnodeCache::Clear() {
  absl::MutexLock lock(&mu_);
  epoch_.fetch_add(1, std::memory_order_release);
  entries_.clear();
  bytes_ = 0;
}

void ZnodeCache::EvictUntilFits(size_t extra_bytes) {
  const size_t target = max_bytes_ - max_bytes_ / 8;
  EvictSecondChance(entries_, &bytes_,
                    extra_bytes >= target ? 0 : target - extra_bytes);
}

ZnodeCache::Stats ZnodeCache::stats() const {
  absl::ReaderMutexLock lock(&mu_);
  return Stats{hits_.load(std::memory_order_relaxed),
               misses_.load(std::memory_order_relaxed), entries_.size(),
               bytes_};
}

}  // namespace rockeeper::engine
