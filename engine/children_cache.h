// A bounded cache of child-name lists per parent path, in front of the
// state DB's prefix scans.
//
// Why: getChildren of a wide parent (ClickHouse's /log, /blocks, /replicas)
// is a RocksDB prefix scan over every child key; with 1000 children that
// scan took 37% of the server's CPU in the ClickHouse-like benchmark. The
// cache keeps the sorted names and StateDb::Apply edits them in place after
// each write, so a hot list stays cached while it changes.
//
// Consistency: the cached list of a parent always equals what a prefix scan
// of the DB would return at that moment, or is absent. Two rules give this:
//   * Apply calls ApplyChanges() after its WriteBatch is in the DB. The
//     edits are idempotent set operations (insert if missing, erase if
//     present), so an entry filled from a scan that already saw the write
//     stays right.
//   * A reader that missed takes epoch() before its scan and Fill()s with
//     it; Fill drops the list if any ApplyChanges() ran in between (the
//     scan may predate that write).
// Readers that hold the replica's visibility mutex shared never race with
// Apply (it runs under that mutex exclusively); the epoch rule is for the
// others (Prep, tools) and costs them at most a skipped fill.
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_ENGINE_CHILDREN_CACHE_H_
#define ROCKEEPER_ENGINE_CHILDREN_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/node_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "engine/second_chance.h"

namespace rockeeper::engine {

// One edit of a parent's child list, made by a committed txn.
// The views point into the txns being applied.
struct ChildrenChange {
  enum class Kind { kAdd, kRemove, kDropList };
  absl::string_view parent;  // kDropList: the deleted node itself
  absl::string_view name;    // empty for kDropList
  Kind kind;
};

// A child list in packed form: u32 BE count, then for each name, in order,
// u32 BE length ++ the name's bytes. This is ZooKeeper's wire encoding of a
// vector<ustring> (the body of a getChildren reply before its stat), so a
// wire front end sends it as it is; built once per version of a list and
// shared by the readers of that version.
using PackedNames = std::shared_ptr<const std::string>;
std::string PackNames(absl::Span<const std::string> names);

class ChildrenCache {
 public:
  // `max_bytes`: bound on the memory of cached lists (estimated: names plus
  // per-string and per-entry overhead); 0 disables the cache. A single list
  // larger than max_bytes / 4 is never cached.
  explicit ChildrenCache(size_t max_bytes) : max_bytes_(max_bytes) {}
  ChildrenCache(const ChildrenCache&) = delete;
  ChildrenCache& operator=(const ChildrenCache&) = delete;

  // Appends the cached names of `parent` to `names` and returns true, or
  // returns false on a miss.
  bool Lookup(absl::string_view parent, std::vector<std::string>* names);
  // Sets *packed to the packed list of `parent` and returns true, or
  // returns false on a miss. The first call after the list changed packs
  // it and keeps the packed form (counted in max_bytes) for later calls.
  bool LookupPacked(absl::string_view parent, PackedNames* packed);
  // Whether `parent`'s list is cached; counts no hit or miss, marks
  // nothing. False if the cache is disabled.
  bool Contains(absl::string_view parent) const;
  bool enabled() const { return max_bytes_ > 0; }
  // The value to pass to Fill(); read it before the scan starts.
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // Caches `names` (sorted, from a scan that began after epoch() returned
  // `epoch_before_scan`) unless an ApplyChanges() ran since.
  void Fill(absl::string_view parent, uint64_t epoch_before_scan,
            absl::Span<const std::string> names);
  // Applies the edits of a batch that is now in the DB.
  void ApplyChanges(absl::Span<const ChildrenChange> changes);
  // Drops everything (after a failed write whose state is unknown).
  void Clear();

  using Stats = CacheStats;
  Stats stats() const;

 private:
  struct Entry {
    std::vector<std::string> names;  // sorted
    // `names` packed, once a LookupPacked asked for it; dropped by an edit.
    PackedNames packed;
    // Changes with every edit (unique over the cache's life, so a refilled
    // entry never repeats one): a packed form made from another version
    // is not kept.
    uint64_t version = 0;
    size_t bytes = 0;  // counts `packed` too
    // Set by Lookup, cleared by eviction's first pass (second chance). A
    // fill starts unreferenced: a list read once (a scan) goes before one
    // read again, and an eviction right after many fills cannot un-mark
    // every entry and then take a hot one in its second pass.
    mutable std::atomic<bool> referenced{false};
  };
  static size_t NameBytes(absl::string_view name);
  static size_t EntryBytes(absl::string_view parent,
                           absl::Span<const std::string> names);
  static size_t PackedBytes(const std::string& packed);
  // Keeps `packed` (built from version `packed_version` of the list) for
  // `parent` unless the list changed or went since.
  void StorePacked(absl::string_view parent, uint64_t packed_version,
                   const PackedNames& packed);
  static void DropPacked(Entry& e, size_t* total_bytes);
  // The entry of `parent` or null, counting a hit or a miss and marking
  // the entry referenced.
  Entry* FindForRead(absl::string_view parent) ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void EvictUntilFits(size_t extra_bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  mutable absl::Mutex mu_;
  // node_hash_map: entries hold an atomic and never move.
  absl::node_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_CHILDREN_CACHE_H_
