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
// Thread safety: all methods are thread-safe. The entries are spread over
// kShards shards by path hash, each with its own mutex and an equal share of
// the byte bound, so that readers on several threads (one per wire event
// loop) do not queue on one lock. ApplyChanges bumps the epoch once, before
// it edits any shard, so a Fill of a read that began before the batch is
// dropped or, if it came first, is then brought up to date by the batch.
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
  static constexpr size_t kShards = 16;
  // `max_bytes`: bound on the memory of cached znodes (estimated: path,
  // data and a fixed overhead each), max_bytes / kShards per shard; 0
  // disables the cache. A znode larger than max_bytes / 64 (a quarter of a
  // shard) is never cached.
  explicit ZnodeCache(size_t max_bytes)
      : max_bytes_(max_bytes), shard_max_bytes_(max_bytes / kShards) {}
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
  struct Shard {
    mutable absl::Mutex mu;
    // node_hash_map: entries hold an atomic and never move.
    absl::node_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
  };
  static size_t EntryBytes(absl::string_view path, const Znode& node);
  static void MergePatch(const record::v1::ZnodeRecord& patch, Znode* node);
  Shard& ShardOf(absl::string_view path) const;
  void Put(Shard& shard, absl::string_view path, Znode node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Evicts until `extra_bytes` more fit in the shard, and then some (to 7/8
  // of its bound), so that evictions come in batches.
  void EvictUntilFits(Shard& shard, size_t extra_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const size_t max_bytes_;
  const size_t shard_max_bytes_;
  std::atomic<uint64_t> epoch_{0};
  mutable std::atomic<uint64_t> hits_{0};
  mutable std::atomic<uint64_t> misses_{0};
  mutable Shard shards_[kShards];
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_CACHE_H_
