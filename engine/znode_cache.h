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
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
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
  // `max_bytes`: bound on the memory of cached znodes (each: its one
  // allocation and a slot of the set), max_bytes / kShards per shard; 0
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
  // As Lookup, for the apply thread: counts no hit or miss, leaves the
  // entry's eviction mark alone, and returns false (copying nothing) for a
  // znode with more than `max_data_bytes` of data.
  bool Peek(absl::string_view path, size_t max_data_bytes, Znode* node) const;
  // Whether `path` is cached; counts no hit or miss, copies nothing.
  bool Contains(absl::string_view path) const;
  // The value to pass to Fill(); read it before the DB read starts.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Caches `node` (read from the DB after epoch() returned
  // `epoch_before_read`) unless an ApplyChanges() ran since.
  void Fill(absl::string_view path, uint64_t epoch_before_read,
            const Znode& node);
  // Applies the znode writes of a batch that is now in the DB.
  void ApplyChanges(absl::Span<ZnodeChange> changes);
  // Drops everything (after a failed write whose state is unknown).
  void Clear();

  using Stats = CacheStats;
  Stats stats() const;

 private:
  // One cached znode in one allocation: this header, then the path's
  // bytes, then the data's. About 210 bytes for a 20-byte path and 100
  // bytes of data, where a map node holding a Znode and two std::strings
  // took about 310: the same bound holds ~1.5x the znodes.
  struct Entry {
    // Set by Lookup, cleared by eviction's first pass (second chance).
    mutable std::atomic<bool> referenced{true};
    bool data_null = false;
    uint32_t path_size = 0;
    uint32_t data_size = 0;
    int32_t version = 0;
    int32_t cversion = 0;
    int32_t aversion = 0;
    int32_t num_children = 0;
    int64_t czxid = 0;
    int64_t mzxid = 0;
    int64_t pzxid = 0;
    int64_t ctime_ms = 0;
    int64_t mtime_ms = 0;
    int64_t ephemeral_owner = 0;
    int64_t acl_id = 0;

    const char* bytes() const {
      return reinterpret_cast<const char*>(this + 1);
    }
    char* bytes() { return reinterpret_cast<char*>(this + 1); }
    absl::string_view path() const { return {bytes(), path_size}; }
    absl::string_view data() const { return {bytes() + path_size, data_size}; }
    // The allocation's size, plus the set's slot.
    size_t charge() const;
    void SetFixedFields(const Znode& node);
    void CopyTo(Znode* node) const;
  };
  struct FreeEntry {
    void operator()(Entry* e) const;
  };
  using EntryPtr = std::unique_ptr<Entry, FreeEntry>;
  static EntryPtr MakeEntry(absl::string_view path, const Znode& node);
  // Entries are found by their path (a string_view) without building one.
  struct EntryHash {
    using is_transparent = void;
    size_t operator()(absl::string_view path) const;
    size_t operator()(const EntryPtr& e) const { return (*this)(e->path()); }
  };
  struct EntryEq {
    using is_transparent = void;
    static absl::string_view PathOf(absl::string_view p) { return p; }
    static absl::string_view PathOf(const EntryPtr& e) { return e->path(); }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return PathOf(a) == PathOf(b);
    }
  };
  using EntrySet = absl::flat_hash_set<EntryPtr, EntryHash, EntryEq>;
  // One cache line (or more) per shard: the reader lock writes `mu`, and
  // shards sharing a line would bounce it between threads reading
  // different shards. The hit and miss counters live here for the same
  // reason (one pair for the whole cache was a line every lookup wrote).
  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    EntrySet entries ABSL_GUARDED_BY(mu);
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    mutable std::atomic<uint64_t> hits{0};
    mutable std::atomic<uint64_t> misses{0};
  };
  static size_t EntryBytes(absl::string_view path, const Znode& node);
  Shard& ShardOf(absl::string_view path) const;
  void Put(Shard& shard, absl::string_view path, const Znode& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void Erase(Shard& shard, EntrySet::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Evicts until `extra_bytes` more fit in the shard, and then some (to 7/8
  // of its bound), so that evictions come in batches. Second chance: the
  // first pass skips (and un-marks) entries read since the last eviction.
  void EvictUntilFits(Shard& shard, size_t extra_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const size_t max_bytes_;
  const size_t shard_max_bytes_;
  // Written once per applied batch, read by every Fill.
  alignas(64) std::atomic<uint64_t> epoch_{0};
  mutable Shard shards_[kShards];
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_CACHE_H_
