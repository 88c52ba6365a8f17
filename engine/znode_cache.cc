#include "engine/znode_cache.h"

#include <utility>

#include "absl/hash/hash.h"
#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

size_t ZnodeCache::EntryBytes(absl::string_view path, const Znode& node) {
  // Map node, key and Znode objects; then the heap buffers of the strings.
  return 64 + sizeof(std::string) + sizeof(Entry) +
         (path.size() > 15 ? path.size() + 1 : 0) +
         (node.data.size() > 15 ? node.data.size() + 1 : 0);
}

ZnodeCache::Shard& ZnodeCache::ShardOf(absl::string_view path) const {
  // The high bits: the maps inside the shards use the low ones.
  const size_t h = absl::Hash<absl::string_view>{}(path);
  return shards_[(h >> 56) % kShards];
}

bool ZnodeCache::Lookup(absl::string_view path, Znode* node) const {
  if (max_bytes_ == 0) return false;
  Shard& shard = ShardOf(path);
  absl::ReaderMutexLock lock(&shard.mu);
  auto it = shard.entries.find(path);
  if (it == shard.entries.end()) {
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
  Shard& shard = ShardOf(path);
  absl::MutexLock lock(&shard.mu);
  if (epoch_.load(std::memory_order_acquire) != epoch_before_read) return;
  if (shard.entries.contains(path)) return;  // another reader filled it
  Put(shard, path, node);
}

void ZnodeCache::ApplyChanges(absl::Span<ZnodeChange> changes) {
  if (max_bytes_ == 0 || changes.empty()) return;
  // Before any shard changes: a Fill that checks the epoch after this
  // drops what it read (possibly before the batch reached the DB).
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  for (ZnodeChange& c : changes) {
    Shard& shard = ShardOf(c.path);
    absl::MutexLock lock(&shard.mu);
    switch (c.kind) {
      case ZnodeChange::Kind::kPut:
        Put(shard, c.path, std::move(c.node));
        break;
      case ZnodeChange::Kind::kErase: {
        auto it = shard.entries.find(c.path);
        if (it == shard.entries.end()) break;
        shard.bytes -= it->second.bytes;
        shard.entries.erase(it);
        break;
      }
      case ZnodeChange::Kind::kPatch: {
        auto it = shard.entries.find(c.path);
        if (it == shard.entries.end()) break;
        Entry& e = it->second;
        MergePatch(c.patch, &e.node);
        const size_t bytes = EntryBytes(c.path, e.node);
        shard.bytes = shard.bytes - e.bytes + bytes;
        e.bytes = bytes;
        if (shard.bytes > shard_max_bytes_) EvictUntilFits(shard, 0);
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

void ZnodeCache::Put(Shard& shard, absl::string_view path, Znode node) {
  const size_t bytes = EntryBytes(path, node);
  const size_t largest = shard_max_bytes_ / 4;
  auto it = shard.entries.find(path);
  if (it != shard.entries.end() && bytes <= largest) {
    Entry& e = it->second;  // in place: no node to free and allocate
    e.node = std::move(node);
    shard.bytes = shard.bytes - e.bytes + bytes;
    e.bytes = bytes;
    if (shard.bytes > shard_max_bytes_) EvictUntilFits(shard, 0);
    return;
  }
  if (it != shard.entries.end()) {
    shard.bytes -= it->second.bytes;
    shard.entries.erase(it);
  }
  if (bytes > largest) return;
  if (shard.bytes + bytes > shard_max_bytes_) EvictUntilFits(shard, bytes);
  Entry& e = shard.entries[path];
  e.node = std::move(node);
  e.bytes = bytes;
  shard.bytes += bytes;
}

void ZnodeCache::Clear() {
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    shard.entries.clear();
    shard.bytes = 0;
  }
}

void ZnodeCache::EvictUntilFits(Shard& shard, size_t extra_bytes) {
  const size_t target = shard_max_bytes_ - shard_max_bytes_ / 8;
  EvictSecondChance(shard.entries, &shard.bytes,
                    extra_bytes >= target ? 0 : target - extra_bytes);
}

ZnodeCache::Stats ZnodeCache::stats() const {
  Stats out{hits_.load(std::memory_order_relaxed),
            misses_.load(std::memory_order_relaxed), 0, 0};
  for (const Shard& shard : shards_) {
    absl::ReaderMutexLock lock(&shard.mu);
    out.entries += shard.entries.size();
    out.bytes += shard.bytes;
  }
  return out;
}

}  // namespace rockeeper::engine
