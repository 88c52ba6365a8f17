#include "engine/znode_cache.h"

#include <cstring>
#include <new>
#include <utility>

#include "absl/hash/hash.h"
#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

namespace {

// A slot of the flat set (a pointer) and its control byte, at the set's
// highest load (7/8), rounded up.
constexpr size_t kSlotBytes = 10;

// Entry and Znode name their stat fields alike.
template <typename From, typename To>
void CopyStatFields(const From& f, To* t) {
  t->data_null = f.data_null;
  t->version = f.version;
  t->cversion = f.cversion;
  t->aversion = f.aversion;
  t->num_children = f.num_children;
  t->czxid = f.czxid;
  t->mzxid = f.mzxid;
  t->pzxid = f.pzxid;
  t->ctime_ms = f.ctime_ms;
  t->mtime_ms = f.mtime_ms;
  t->ephemeral_owner = f.ephemeral_owner;
  t->acl_id = f.acl_id;
}

}  // namespace

size_t ZnodeCache::Entry::charge() const {
  return sizeof(Entry) + path_size + data_size + kSlotBytes;
}

void ZnodeCache::Entry::SetFixedFields(const Znode& n) {
  CopyStatFields(n, this);
}

void ZnodeCache::Entry::CopyTo(Znode* n) const {
  CopyStatFields(*this, n);
  const absl::string_view d = data();
  n->data.assign(d.data(), d.size());
}

void ZnodeCache::FreeEntry::operator()(Entry* e) const {
  e->~Entry();
  ::operator delete(static_cast<void*>(e));
}

ZnodeCache::EntryPtr ZnodeCache::MakeEntry(absl::string_view path,
                                           const Znode& node) {
  void* mem = ::operator new(sizeof(Entry) + path.size() + node.data.size());
  EntryPtr e(::new (mem) Entry);
  e->path_size = static_cast<uint32_t>(path.size());
  e->data_size = static_cast<uint32_t>(node.data.size());
  e->SetFixedFields(node);
  std::memcpy(e->bytes(), path.data(), path.size());
  std::memcpy(e->bytes() + path.size(), node.data.data(), node.data.size());
  return e;
}

size_t ZnodeCache::EntryHash::operator()(absl::string_view path) const {
  return absl::Hash<absl::string_view>{}(path);
}

size_t ZnodeCache::EntryBytes(absl::string_view path, const Znode& node) {
  return sizeof(Entry) + path.size() + node.data.size() + kSlotBytes;
}

ZnodeCache::Shard& ZnodeCache::ShardOf(absl::string_view path) const {
  // The high bits: the sets inside the shards use the low ones.
  const size_t h = absl::Hash<absl::string_view>{}(path);
  return shards_[(h >> 56) % kShards];
}

bool ZnodeCache::Lookup(absl::string_view path, Znode* node) const {
  if (max_bytes_ == 0) return false;
  Shard& shard = ShardOf(path);
  absl::ReaderMutexLock lock(&shard.mu);
  auto it = shard.entries.find(path);
  if (it == shard.entries.end()) {
    shard.misses.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  shard.hits.fetch_add(1, std::memory_order_relaxed);
  // Only when it changes: a hot entry (a parent every create reads) stays
  // a clean line the readers share.
  if (!(*it)->referenced.load(std::memory_order_relaxed)) {
    (*it)->referenced.store(true, std::memory_order_relaxed);
  }
  (*it)->CopyTo(node);
  return true;
}

bool ZnodeCache::Peek(absl::string_view path, size_t max_data_bytes,
                      Znode* node) const {
  if (max_bytes_ == 0) return false;
  Shard& shard = ShardOf(path);
  absl::ReaderMutexLock lock(&shard.mu);
  auto it = shard.entries.find(path);
  if (it == shard.entries.end() || (*it)->data_size > max_data_bytes) {
    return false;
  }
  (*it)->CopyTo(node);
  return true;
}

bool ZnodeCache::Contains(absl::string_view path) const {
  if (max_bytes_ == 0) return false;
  Shard& shard = ShardOf(path);
  absl::ReaderMutexLock lock(&shard.mu);
  return shard.entries.contains(path);
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
        Put(shard, c.path, c.node);
        break;
      case ZnodeChange::Kind::kErase: {
        auto it = shard.entries.find(c.path);
        if (it != shard.entries.end()) Erase(shard, it);
        break;
      }
      case ZnodeChange::Kind::kPatch: {
        auto it = shard.entries.find(c.path);
        if (it == shard.entries.end()) break;
        if (!c.patch.has_data()) {  // the sizes stay: in place
          MergePatchStat(c.patch, it->get());
          break;
        }
        Znode node;
        (*it)->CopyTo(&node);
        MergePatch(c.patch, &node);
        Put(shard, c.path, node);
        break;
      }
    }
  }
}

void ZnodeCache::Erase(Shard& shard, EntrySet::iterator it) {
  shard.bytes -= (*it)->charge();
  shard.entries.erase(it);
}

void ZnodeCache::Put(Shard& shard, absl::string_view path, const Znode& node) {
  auto it = shard.entries.find(path);
  if (it != shard.entries.end()) Erase(shard, it);
  const size_t bytes = EntryBytes(path, node);
  if (bytes > shard_max_bytes_ / 4) return;
  if (shard.bytes + bytes > shard_max_bytes_) EvictUntilFits(shard, bytes);
  shard.entries.insert(MakeEntry(path, node));
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
  const size_t goal = extra_bytes >= target ? 0 : target - extra_bytes;
  for (int pass = 0; pass < 2 && shard.bytes > goal; ++pass) {
    for (auto it = shard.entries.begin();
         it != shard.entries.end() && shard.bytes > goal;) {
      if (pass == 0 &&
          (*it)->referenced.exchange(false, std::memory_order_relaxed)) {
        ++it;
        continue;
      }
      shard.bytes -= (*it)->charge();
      shard.entries.erase(it++);
    }
  }
}

ZnodeCache::Stats ZnodeCache::stats() const {
  Stats out{0, 0, 0, 0};
  for (const Shard& shard : shards_) {
    out.hits += shard.hits.load(std::memory_order_relaxed);
    out.misses += shard.misses.load(std::memory_order_relaxed);
    absl::ReaderMutexLock lock(&shard.mu);
    out.entries += shard.entries.size();
    out.bytes += shard.bytes;
  }
  return out;
}

}  // namespace rockeeper::engine
