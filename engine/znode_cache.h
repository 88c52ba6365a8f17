// A bounded cache of whole znodes by path, in front of the state DB's point
// reads (StateDb::GetZnode).
//
// Why: Prep reads the znode of every write it checks (the node of a setData
// or delete, the parent of a create), and a standalone server under sets
// spent about half of its request thread there, in RocksDB. RocksDB's row
// cache cannot help writes: it is keyed by SST file, and every flush or
// compaction of a write-heavy workload moves the keys just written to new
// files. This cache is keyed by path and kept current by the writes.
//
// Consistency: a cached znode always equals what a read of the DB would
// return at that moment, or is absent. The rules, as ChildrenCache's:
//   * Apply calls ApplyChanges() after its WriteBatch is in the DB, with the
//     batch's znode writes in order: a Put replaces the entry, a merge patch
//     is merged into it (the merge operator's rule: fields present in the
//     patch win), a Delete erases it.
//   * A reader that missed takes epoch() before its DB read and Fill()s
//     with it; Fill drops the znode if any ApplyChanges() ran in between.
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_ENGINE_ZNODE_CACHE_H_
#define ROCKEEPER_ENGINE_ZNODE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "engine/second_chance.h"
#include "engine/znode.h"
#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

// One write of a znode by a committed txn, in batch order. `path` points
// into the txns being applied.
struct ZnodeChange {
  enum class Kind { kPut, kPatch, kErase };
  absl::string_view path;
  Kind kind;
  Znode node;                     // kPut: the whole new znode
  record::v1::ZnodeRecord patch;  // kPatch: the fields it sets
};

class ZnodeCache {
 public:
  // `max_bytes`: bound on the memory of cached znodes (estimated: path,
  // data and a fixed overhead each); 0 disables the cache. A znode larger
  // than max_bytes / 16 is never cached.
  explicit ZnodeCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  ZnodeCache(const ZnodeCache&) = delete;
  ZnodeCache& operator=(const ZnodeCache&) = delete;

  bool enabled() const { return max_bytes_ > 0; }
  // Copies the cached znode of `path` to *node and returns true, or returns
  // false on a miss.
  bool Lookup(absl::string_view path, Znode* node) const;
  // The value to pass to Fill(); read it before the DB read starts.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Caches `node` (read from the DB after epoch() returned
  // `epoch_before_read`) unless an ApplyChanges() ran since.
  void Fill(absl::string_view path, uint64_t epoch_before_read,
            const Znode& node);
  // Applies the znode writes of a batch that is now in the DB. kPut nodes
  // are moved from.
  void ApplyChanges(absl::Span<ZnodeChange> changes);
  // Drops everything (after a failed write whose state is unknown).
  void Clear();

  using Stats = CacheStats;
  Stats stats() const;

 private:
  struct Entry {
    Znode node;
    size_t bytes = 0;
    // Set by Lookup, cleared by eviction's first pass (second chance).
    mutable std::atomic<bool> referenced{true};
  };
  static size_t EntryBytes(absl::string_view path, const Znode& node);
  static void MergePatch(const record::v1::ZnodeRecord& patch, Znode* node);
  void Put(absl::string_view path, Znode node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Erase(absl::string_view path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts until `extra_bytes` more fit, and then some (to 7/8 of the
  // bound), so that evictions come in batches.
  void EvictUntilFits(size_t extra_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  std::atomic<uint64_t> epoch_{0};
  mutable std::atomic<uint64_t> hits_{0};
  mutable std::atomic<uint64_t> misses_{0};
  mutable absl::Mutex mu_;
  // node_hash_map: entries hold an atomic and never move.
  absl::node_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_CACHE_H_
