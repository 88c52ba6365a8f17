// The state DB: znodes, sessions, ephemerals, ACLs and meta in RocksDB column
// families (key layouts in engine/keys.h), plus the Apply path.
//
// Durability: Apply writes with the RocksDB WAL disabled and atomic_flush on,
// so the DB on disk is always a consistent state as of `last_applied_zxid`
// (stored in `meta` by the same WriteBatch). The txn log is the write-ahead
// log; recovery (engine/recovery.h) replays it after last_applied_zxid.
//
// Thread safety: reads are safe from any thread. Apply must be called by one
// thread at a time (the apply thread).
#ifndef ROCKEEPER_ENGINE_STATE_DB_H_
#define ROCKEEPER_ENGINE_STATE_DB_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "engine/acl.h"
#include "engine/children_cache.h"
#include "engine/znode.h"
#include "engine/znode_cache.h"
#include "rockeeper/record/v1/records.pb.h"
#include "rockeeper/record/v1/txn.pb.h"
#include "rocksdb/db.h"

namespace rockeeper::engine {

using record::v1::SessionRecord;
using record::v1::Stat;
using record::v1::Txn;

// Raw ephemeral_owner markers (ZooKeeper's EphemeralType).
inline constexpr int64_t kContainerOwner = INT64_MIN;  // 0x8000000000000000
inline constexpr int64_t kTtlOwnerMask =
    static_cast<int64_t>(0xFF00000000000000ULL);

// True if the raw owner denotes a real session (not container / TTL / none).
bool IsSessionOwner(int64_t raw_owner);
bool IsContainerOwner(int64_t raw_owner);
bool IsTtlOwner(int64_t raw_owner);
int64_t TtlOfOwner(int64_t raw_owner);  // ms

// Checks that a Txn from the log or the network is well formed (body set,
// valid paths, sane counts) before Apply touches the DB. InvalidArgument
// names the problem. Semantics (does the parent exist?) are Prep's job.
absl::Status ValidateTxn(const Txn& txn);
// How many znodes a txn adds (negative: removes).
int64_t ZnodeCountDelta(const Txn& txn);

// The Stat a client sees: cversion = 2*persisted - numChildren, and
// ephemeralOwner 0 for container and TTL nodes.
Stat ClientStat(const Znode& node);

// A watch trigger produced by Apply, for the server's watch manager.
enum class WatchEventType : int32_t {
  kNodeCreated = 1,
  kNodeDeleted = 2,
  kNodeDataChanged = 3,
  kNodeChildrenChanged = 4,
};
struct WatchTrigger {
  std::string path;
  WatchEventType type;
  int64_t zxid;
};

struct StateDbOptions {
  // Directory of the RocksDB instance (dataDir/state). Created if missing.
  std::string path;
  // Shared block cache for all column families. Default: 256 MiB.
  size_t block_cache_bytes = 256u << 20;
  // Memtable size per column family. Default: 64 MiB.
  size_t write_buffer_bytes = 64u << 20;
  // Bound on the memory of cached child-name lists (engine/children_cache.h),
  // estimated. 0 disables the cache. Default: 32 MiB.
  size_t children_cache_bytes = 32u << 20;
  // Bound on the memory of cached znodes by path (engine/znode_cache.h),
  // kept current by the writes: Prep's reads of the nodes it checks, and
  // gets. 0 disables the cache. Default: 512 MiB (~2.3M znodes of 100 B
  // fit).
  size_t znode_cache_bytes = 512u << 20;
  // RocksDB row cache: whole znode records found in SST files, so a repeated
  // get skips the index, filter and data block lookups. It does not cache
  // memtable hits (those are cheap) and needs no invalidation (SST files are
  // immutable). Redundant behind the znode cache, and on reads it misses
  // (a tree larger than the caches) a cost: a lookup, a copy and an
  // insert per get. 0 disables it. Default: 0.
  size_t row_cache_bytes = 0;
  // SST files RocksDB keeps open, each holding a file descriptor; -1 keeps
  // every one open. 0 derives it from RLIMIT_NOFILE when the DB opens: -1
  // if the soft limit is at least kAllSstFilesOpenFdLimit, else half the
  // soft limit (at least 64), so a large tree (100M znodes are ~1500 files
  // of 8 MiB) under a low limit (systemd's default soft limit is 1024)
  // reopens tables from RocksDB's table cache instead of failing with
  // EMFILE. Default: 0.
  int max_open_files = 0;
  // Open without the ability to write (tools, snapshots). Default: false.
  bool read_only = false;
};

// The RLIMIT_NOFILE soft limit from which StateDbOptions::max_open_files 0
// keeps every SST file open.
inline constexpr uint64_t kAllSstFilesOpenFdLimit = 65536;
// StateDbOptions::max_open_files as RocksDB takes it (-1: no bound), for
// the current soft RLIMIT_NOFILE.
int MaxOpenSstFiles(int configured);

class StateDb {
 public:
  static absl::StatusOr<std::unique_ptr<StateDb>> Open(
      const StateDbOptions& options);
  ~StateDb();
  StateDb(const StateDb&) = delete;
  StateDb& operator=(const StateDb&) = delete;

  // --- Reads -------------------------------------------------------------
  // NotFound if the node does not exist.
  absl::StatusOr<Znode> GetZnode(absl::string_view path) const;
  // Whether GetZnode(path) would find its answer without reading the disk:
  // the znode is in the znode cache, or RocksDB finds it (or its absence)
  // in its memtables and block cache (ReadOptions::read_tier
  // kBlockCacheTier). A znode found that way goes into the znode cache, so
  // the GetZnode that follows finds it there. Never reads the disk; an
  // error counts as false (the read then runs where it may block, and
  // reports the error). Thread-safe.
  bool ZnodeResident(absl::string_view path) const;
  // As ZnodeResident, for a getChildren: the znode, and its child list in
  // the children cache (with the children cache disabled, only the znode
  // is checked). Thread-safe.
  bool ChildrenResident(absl::string_view path) const;
  // Child names (not paths) in byte order, appended to `names`. Served from
  // the children cache when it holds the list.
  absl::Status ListChildren(absl::string_view path,
                            std::vector<std::string>* names) const;
  // The same names packed (PackNames in engine/children_cache.h): from the
  // cache, shared with other readers of the same version of the list, when
  // it holds the list.
  absl::Status ListChildrenPacked(absl::string_view path,
                                  PackedNames* packed) const;
  // Number of descendants at any depth (getAllChildrenNumber).
  absl::StatusOr<int64_t> CountDescendants(absl::string_view path) const;
  // Node count (the node itself plus all descendants) and total data bytes
  // of the subtree at `path` (NotFound if it does not exist). Scans the
  // subtree: for quota setup, not hot paths.
  struct Usage {
    int64_t count = 0;
    int64_t bytes = 0;
  };
  absl::StatusOr<Usage> SubtreeUsage(absl::string_view path) const;
  // Full paths of the ephemerals owned by `session_id`, in byte order.
  absl::Status ListEphemerals(int64_t session_id,
                              std::vector<std::string>* paths) const;
  // Paths of all container nodes (indexed in `ephemerals` under the
  // container marker owner), for the container reaper.
  absl::Status ListContainers(std::vector<std::string>* paths) const;
  // (path, ttl_ms) of all TTL nodes (indexed under their TTL owner).
  absl::Status ListTtlNodes(
      std::vector<std::pair<std::string, int64_t>>* nodes) const;
  absl::StatusOr<SessionRecord> GetSession(int64_t session_id) const;
  absl::Status ListSessions(std::vector<SessionRecord>* sessions) const;
  // The ACL list of an acl id (kOpenAclId = OPEN_ACL_UNSAFE).
  absl::StatusOr<AclVector> GetAcl(int64_t acl_id) const;

  int64_t last_applied_zxid() const {
    return last_applied_zxid_.load(std::memory_order_acquire);
  }
  // Number of znodes (built-ins included), kept exact by Apply.
  int64_t znode_count() const { return znode_count_.load(); }
  ZnodeCache::Stats znode_cache_stats() const { return znode_cache_->stats(); }
  ChildrenCache::Stats children_cache_stats() const {
    return children_cache_->stats();
  }
  // Bytes held by the row cache (0 when it is off).
  size_t row_cache_usage_bytes() const;

  // --- Apply -------------------------------------------------------------
  // Applies committed txns, in order, in one WriteBatch. zxids must be
  // strictly increasing and greater than last_applied_zxid(). Appends the
  // watch triggers of the batch to `triggers` (may be null).
  absl::Status Apply(absl::Span<const Txn> txns,
                     std::vector<WatchTrigger>* triggers);

  // --- Meta --------------------------------------------------------------
  // Persisted with the RocksDB WAL and sync (ZAB epochs must be durable).
  absl::Status SetEpochs(int64_t current_epoch, int64_t accepted_epoch);
  int64_t current_epoch() const;
  int64_t accepted_epoch() const;
  std::string db_id() const { return db_id_; }

  // A digest of the replicated state: every znode (decoded record), session,
  // ephemeral, ACL list, next_acl_id and last_applied_zxid; not db_id or
  // epochs. Two servers that applied the same txns have equal digests.
  // Scans everything: for tests and verification tools, not hot paths.
  absl::StatusOr<uint64_t> ComputeDigest() const;

  // Flushes memtables of all column families (atomically) to SST files.
  absl::Status Flush();
  rocksdb::DB* rocksdb() const { return db_.get(); }

 private:
  StateDb() = default;
  absl::Status LoadMeta();
  absl::Status InitializeEmpty();
  absl::Status LoadAcls();
  // Returns the id of `acl`, allocating one (and adding it to `batch`) if new.
  // New ids are recorded in `acl_ids_in_batch_` until the batch is written:
  // a failed Apply forgets them (RollBackAcls) so no id stays cached that
  // was never persisted.
  int64_t InternAcl(const AclVector& acl, rocksdb::WriteBatch* batch);
  void RollBackAcls();
  absl::Status ApplyOne(const Txn& txn, rocksdb::WriteBatch* batch,
                        std::vector<WatchTrigger>* triggers);
  void ApplyCreate(const record::v1::CreateTxn& c, const Txn& txn,
                   rocksdb::WriteBatch* batch,
                   std::vector<WatchTrigger>* triggers);
  void ApplyDelete(const record::v1::DeleteTxn& d, int64_t zxid,
                   rocksdb::WriteBatch* batch,
                   std::vector<WatchTrigger>* triggers);
  void ApplySetData(const record::v1::SetDataTxn& s, const Txn& txn,
                    rocksdb::WriteBatch* batch,
                    std::vector<WatchTrigger>* triggers);
  void ApplySetAcl(const record::v1::SetAclTxn& s, rocksdb::WriteBatch* batch);
  // A znode the batch being applied patched (see batch_znodes_).
  struct BatchZnode {
    // The whole znode as of the batch's writes so far, or nullopt where
    // that is unknown.
    std::optional<Znode> node;
    // `node` holds patches not yet in the WriteBatch: one Put of it goes in
    // before any other write of the path and at the end of the batch.
    bool unwritten = false;
  };
  // Writes `patch` into `path`'s record and notes it for the znode cache:
  // into the whole znode when the batch knows it (written as one Put per
  // batch, see batch_znodes_), else as a Merge.
  void NoteZnodePatch(absl::string_view path,
                      const record::v1::ZnodeRecord& patch,
                      rocksdb::WriteBatch* batch);
  // Puts `bz.node` into `batch` if it has patches not written yet.
  void WriteBatchZnode(absl::string_view path, BatchZnode& bz,
                       rocksdb::WriteBatch* batch);
  // The batch is about to write `path` other than by NoteZnodePatch: writes
  // its pending patches first, and its later patches in the batch merge.
  void ForgetBatchZnode(absl::string_view path, rocksdb::WriteBatch* batch);

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* znodes_ = nullptr;
  rocksdb::ColumnFamilyHandle* sessions_ = nullptr;
  rocksdb::ColumnFamilyHandle* ephemerals_ = nullptr;
  rocksdb::ColumnFamilyHandle* acls_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  bool read_only_ = false;
  std::unique_ptr<ChildrenCache> children_cache_;
  std::shared_ptr<rocksdb::Cache> row_cache_;  // null when off
  // The child-list edits of the batch being applied (apply thread only).
  std::vector<ChildrenChange> children_changes_;
  std::unique_ptr<ZnodeCache> znode_cache_;
  // The znode writes of the batch being applied, for znode_cache_.
  std::vector<ZnodeChange> znode_changes_;
  // Apply thread only. The znodes the batch being applied patched, by path
  // (views into its txns): the whole znode as of the batch's writes so far,
  // or nullopt where that is unknown. Known = taken from the znode cache at
  // the first patch (the cache equals the DB between batches) and patched
  // since. The patches of a known znode are written as one Put of the whole
  // record per batch instead of merge operands: a hot parent (every create
  // and delete patches its parent) then has no merge stack for RocksDB to
  // count and collapse in the apply thread (`max_successive_merges`), and
  // one memtable entry per batch instead of one per child created.
  absl::flat_hash_map<absl::string_view, BatchZnode> batch_znodes_;

  std::atomic<int64_t> last_applied_zxid_{0};
  std::atomic<int64_t> znode_count_{0};
  std::atomic<int64_t> current_epoch_{0};
  std::atomic<int64_t> accepted_epoch_{0};
  std::string db_id_;

  mutable absl::Mutex acl_mu_;
  absl::flat_hash_map<int64_t, AclVector> acl_by_id_ ABSL_GUARDED_BY(acl_mu_);
  absl::flat_hash_map<std::string, int64_t> acl_id_by_fingerprint_
      ABSL_GUARDED_BY(acl_mu_);
  int64_t next_acl_id_ ABSL_GUARDED_BY(acl_mu_) = 1;
  std::vector<int64_t> acl_ids_in_batch_ ABSL_GUARDED_BY(acl_mu_);
};

// Built-in nodes of a fresh tree, in creation order.
inline constexpr absl::string_view kBuiltinPaths[] = {
    "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_STATE_DB_H_
