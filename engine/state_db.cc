#include "engine/state_db.h"

#include <sys/resource.h>

#include <algorithm>
#include <iterator>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/keys.h"
#include "engine/path_utils.h"
#include "engine/znode_merge.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace rockeeper::engine {
namespace {

using record::v1::ZnodeRecord;

constexpr const char* kCfNames[] = {"default",    "znodes", "sessions",
                                    "ephemerals", "acls",   "meta"};

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

std::string EncodeI64(int64_t v) {
  std::string out;
  AppendBigEndian64(&out, static_cast<uint64_t>(v));
  return out;
}

// A znode key's parent part: the key up to its last '/' (depth byte(s) and
// the parent's path). The memtable keeps an insert hint per parent, so that
// siblings created one after another (sequential nodes, a growing
// directory) are inserted next to the previous one instead of searched for
// from the top of the skip list. Affects only memtable inserts, not the
// on-disk format.
class ParentPartOfKey : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "rockeeper.ParentPartOfKey"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const absl::string_view k(key.data(), key.size());
    return rocksdb::Slice(key.data(), k.rfind('/') + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return absl::string_view(key.data(), key.size()).rfind('/') !=
           absl::string_view::npos;
  }
};

rocksdb::ColumnFamilyOptions CfOptions(
    const StateDbOptions& o, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Partitioned index and filters: a point read loads one 4 KiB partition
  // of each, not a whole SST's index and filter (hundreds of KiB at 100M
  // znodes, which thrashed the block cache: 2.7k random gets/s at 0.8
  // cores). The small top levels stay pinned, with high cache priority.
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  // A hash index in each data block: a point read finds its key's restart
  // interval without a binary search over the block (a cache miss per
  // step). Sets on 1M znodes: ~12% less server CPU (docs/engine.md).
  table.data_block_index_type =
      rocksdb::BlockBasedTableOptions::kDataBlockBinaryAndHash;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = o.write_buffer_bytes;
  // L1 of 64 MiB in files of 8 MiB (RocksDB's defaults: 256 MiB, 64 MiB).
  // A znode key starts with its depth, so a memtable holding a create
  // (the child at depth d+1, its parent's stat at depth d) spans every key
  // in between: each L0 file overlaps all of L1, and an L0->L1 compaction
  // rewrites the whole of L1. A snapshot flushes every snapCount txns, so
  // four of them (~25 MiB of L0 under a create load) rewrote L1 each time,
  // up to 256 MiB. A smaller L1 bounds that, and files of 8 MiB let L1->L2
  // move a range of new keys without rewriting much of L2: loading 1M
  // znodes and then 600k creates wrote ~480 instead of ~650 MiB of
  // compaction output at ~25% more creates/s (docs/engine.md).
  cf.max_bytes_for_level_base = 64u << 20;
  cf.target_file_size_base = 8u << 20;
  // Compact L0 into L1 at 12 files, not RocksDB's 4. A snapshot flushes
  // every snapCount txns, so under a write load L0 gets a small file every
  // second or so, each overlapping all of L1 (see above); at 4 files every
  // few snapshots rewrote L1 and cascaded into L2. Waiting for 12 lets one
  // compaction fold the overwrites of 12 flushes: 2M sets on 1M znodes
  // wrote 486 instead of 1058 MiB of compaction output, in 7.7 instead of
  // 18.4 s, and the server's CPU per set fell from 23.9 to 19.5 us
  // (tests/bench/compaction_bytes.sh). Reads that miss the caches probe
  // more L0 files, each behind its pinned bloom filter. The slowdown
  // trigger moves up with it to keep RocksDB's margin before stalls.
  cf.level0_file_num_compaction_trigger = 12;
  cf.level0_slowdown_writes_trigger = 28;
  cf.level0_stop_writes_trigger = 40;
  // LZ4 up to L2, ZSTD from L3 on. The upper levels are rewritten by every
  // compaction, and ZSTD there (it was the bottommost level's codec, and a
  // tree of 1M znodes has one level) was half of the compaction thread's
  // CPU under a write load; LZ4 cut the server CPU per set on 1M znodes by
  // about a fifth. L3 (> 2.5 GiB of SSTs) is reached by trees of tens of
  // millions of znodes, whose bulk is rarely rewritten: ZSTD saves disk
  // there.
  cf.compression_per_level = {rocksdb::kLZ4Compression,
                              rocksdb::kLZ4Compression,
                              rocksdb::kLZ4Compression,
                              rocksdb::kZSTD,
                              rocksdb::kZSTD,
                              rocksdb::kZSTD,
                              rocksdb::kZSTD};
  return cf;
}

}  // namespace

int MaxOpenSstFiles(int configured) {
  if (configured != 0) return configured;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur >= kAllSstFilesOpenFdLimit) {
    return -1;
  }
  return std::max<int>(static_cast<int>(rl.rlim_cur / 2), 64);
}

bool IsContainerOwner(int64_t raw) { return raw == kContainerOwner; }
bool IsTtlOwner(int64_t raw) {
  return raw != kContainerOwner && (raw & kTtlOwnerMask) == kTtlOwnerMask;
}
bool IsSessionOwner(int64_t raw) {
  return raw != 0 && !IsContainerOwner(raw) && !IsTtlOwner(raw);
}
int64_t TtlOfOwner(int64_t raw) { return raw & ~kTtlOwnerMask; }

namespace {

absl::Status CheckPath(absl::string_view path, bool allow_root) {
  if (!IsValidPath(path) || (!allow_root && path == "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat("txn has invalid path \"", absl::CHexEscape(path), "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckCreate(const record::v1::CreateTxn& c) {
  if (absl::Status s = CheckPath(c.path(), false); !s.ok()) return s;
  if (c.parent_num_children() < 1) {
    return absl::InvalidArgumentError(
        "create txn with parent_num_children < 1");
  }
  return absl::OkStatus();
}

absl::Status CheckDelete(const record::v1::DeleteTxn& d) {
  if (absl::Status s = CheckPath(d.path(), false); !s.ok()) return s;
  if (d.parent_num_children() < 0) {
    return absl::InvalidArgumentError(
        "delete txn with parent_num_children < 0");
  }
  return absl::OkStatus();
}

}  // namespace

int64_t ZnodeCountDelta(const Txn& txn) {
  switch (txn.body_case()) {
    case Txn::kCreate:
      return 1;
    case Txn::kDelete:
      return -1;
    case Txn::kCloseSession:
      return -txn.close_session().deletes_size();
    case Txn::kMulti: {
      int64_t d = 0;
      for (const auto& op : txn.multi().ops()) {
        d += op.has_create() ? 1 : (op.has_delete_() ? -1 : 0);
      }
      return d;
    }
    default:
      return 0;
  }
}

// A `rest` must carry every field it stands for: a missing acl_id would
// read as OPEN_ACL_UNSAFE once the record is Put.
absl::Status CheckSetData(const record::v1::SetDataTxn& s) {
  if (absl::Status st = CheckPath(s.path(), true); !st.ok()) return st;
  if (!s.has_rest()) return absl::OkStatus();
  const ZnodeRecord& r = s.rest();
  if (!r.has_czxid() || !r.has_pzxid() || !r.has_ctime_ms() ||
      !r.has_cversion() || !r.has_aversion() || !r.has_ephemeral_owner() ||
      !r.has_num_children() || !r.has_acl_id()) {
    return absl::InvalidArgumentError(
        absl::StrCat("set_data txn for ", s.path(), " with incomplete rest"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTxn(const Txn& txn) {
  if (txn.header().zxid() <= 0) {
    return absl::InvalidArgumentError("txn zxid must be positive");
  }
  for (const auto& q : txn.quota_updates()) {
    if (absl::Status s = CheckPath(q.path(), false); !s.ok()) return s;
  }
  switch (txn.body_case()) {
    case Txn::kCreate:
      return CheckCreate(txn.create());
    case Txn::kDelete:
      return CheckDelete(txn.delete_());
    case Txn::kSetData:
      return CheckSetData(txn.set_data());
    case Txn::kSetAcl:
      return CheckPath(txn.set_acl().path(), true);
    case Txn::kCheck:
      return CheckPath(txn.check().path(), true);
    case Txn::kCreateSession:
    case Txn::kError:
      return absl::OkStatus();
    case Txn::kCloseSession:
      for (const auto& d : txn.close_session().deletes()) {
        if (absl::Status s = CheckDelete(d); !s.ok()) return s;
      }
      return absl::OkStatus();
    case Txn::kMulti:
      for (const auto& op : txn.multi().ops()) {
        absl::Status s = absl::OkStatus();
        switch (op.body_case()) {
          case record::v1::MultiOp::kCreate:
            s = CheckCreate(op.create());
            break;
          case record::v1::MultiOp::kDelete:
            s = CheckDelete(op.delete_());
            break;
          case record::v1::MultiOp::kSetData:
            s = CheckSetData(op.set_data());
            break;
          case record::v1::MultiOp::kCheck:
            s = CheckPath(op.check().path(), true);
            break;
          case record::v1::MultiOp::kError:
            break;
          case record::v1::MultiOp::BODY_NOT_SET:
            s = absl::InvalidArgumentError("multi op without body");
            break;
        }
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    case Txn::BODY_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("txn without body");
}

Stat ClientStat(const Znode& n) {
  Stat s;
  s.set_czxid(n.czxid);
  s.set_mzxid(n.mzxid);
  s.set_ctime_ms(n.ctime_ms);
  s.set_mtime_ms(n.mtime_ms);
  s.set_version(n.version);
  s.set_cversion(static_cast<int32_t>(2u * static_cast<uint32_t>(n.cversion) -
                                      static_cast<uint32_t>(n.num_children)));
  s.set_aversion(n.aversion);
  s.set_ephemeral_owner(IsSessionOwner(n.ephemeral_owner) ? n.ephemeral_owner
                                                          : 0);
  s.set_data_length(static_cast<int32_t>(n.data.size()));
  s.set_num_children(n.num_children);
  s.set_pzxid(n.pzxid);
  return s;
}

absl::StatusOr<std::unique_ptr<StateDb>> StateDb::Open(
    const StateDbOptions& options) {
  std::unique_ptr<StateDb> sdb(new StateDb());
  sdb->read_only_ = options.read_only;
  sdb->children_cache_ =
      std::make_unique<ChildrenCache>(options.children_cache_bytes);
  sdb->znode_cache_ = std::make_unique<ZnodeCache>(
      options.read_only ? 0 : options.znode_cache_bytes);
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.atomic_flush = true;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 5;
  db_options.max_open_files = MaxOpenSstFiles(options.max_open_files);
  // One writer (the apply thread): the memtable insert hints below need
  // non-concurrent memtable writes.
  db_options.allow_concurrent_memtable_write = false;
  if (options.row_cache_bytes > 0 && !options.read_only) {
    sdb->row_cache_ = rocksdb::NewLRUCache(options.row_cache_bytes);
    db_options.row_cache = sdb->row_cache_;
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* name : kCfNames) {
    rocksdb::ColumnFamilyOptions cf = CfOptions(options, cache);
    if (absl::string_view(name) == "znodes") {
      cf.merge_operator = NewZnodeMergeOperator();
      // Collapse long merge stacks on hot parents at write time (memtable
      // only, no disk read).
      cf.max_successive_merges = 16;
      // A bloom filter over the memtable's keys (2% of write_buffer_bytes:
      // 1.3 MiB, ~35 bits per key when full): a read of a key the memtable
      // lacks, such as Prep's read of a cold znode under a write load, skips
      // the skip-list search. 3.4 -> 1.6 us per get behind a 100k-entry
      // memtable (engine_bench BM_GetZnodeBehindMemtable).
      cf.memtable_prefix_bloom_size_ratio = 0.02;
      cf.memtable_whole_key_filtering = true;
      cf.memtable_insert_with_hint_prefix_extractor =
          std::make_shared<ParentPartOfKey>();
    }
    cfs.emplace_back(name, cf);
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, cfs,
                                         &sdb->handles_, &raw)
          : rocksdb::DB::Open(db_options, options.path, cfs, &sdb->handles_,
                              &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("open ", options.path));
  sdb->db_.reset(raw);
  sdb->znodes_ = sdb->handles_[1];
  sdb->sessions_ = sdb->handles_[2];
  sdb->ephemerals_ = sdb->handles_[3];
  sdb->acls_ = sdb->handles_[4];
  sdb->meta_ = sdb->handles_[5];
  if (absl::Status st = sdb->LoadMeta(); !st.ok()) return st;
  if (absl::Status st = sdb->LoadAcls(); !st.ok()) return st;
  return sdb;
}

size_t StateDb::row_cache_usage_bytes() const {
  return row_cache_ == nullptr ? 0 : row_cache_->GetUsage();
}

StateDb::~StateDb() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close();
}

absl::Status StateDb::LoadMeta() {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), meta_, kMetaFormatVersion, &value);
  if (s.IsNotFound()) {
    if (read_only_) return absl::FailedPreconditionError("state DB is empty");
    return InitializeEmpty();
  }
  if (!s.ok()) return FromRocks(s, "read meta");
  if (value != "1") {
    return absl::FailedPreconditionError(
        absl::StrCat("unsupported state DB format version ", value));
  }
  auto read_i64 = [&](absl::string_view key, std::atomic<int64_t>* out) {
    std::string v;
    rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), meta_,
                                  rocksdb::Slice(key.data(), key.size()), &v);
    if (rs.IsNotFound()) return absl::OkStatus();
    if (!rs.ok()) return FromRocks(rs, key);
    if (v.size() != 8) return absl::DataLossError(absl::StrCat("meta ", key));
    out->store(static_cast<int64_t>(DecodeBigEndian64(v)));
    return absl::OkStatus();
  };
  if (auto st = read_i64(kMetaLastAppliedZxid, &last_applied_zxid_); !st.ok())
    return st;
  if (auto st = read_i64(kMetaCurrentEpoch, &current_epoch_); !st.ok())
    return st;
  if (auto st = read_i64(kMetaZnodeCount, &znode_count_); !st.ok()) return st;
  if (auto st = read_i64(kMetaAcceptedEpoch, &accepted_epoch_); !st.ok())
    return st;
  s = db_->Get(rocksdb::ReadOptions(), meta_, kMetaDbId, &db_id_);
  return s.ok() ? absl::OkStatus() : FromRocks(s, "read db id");
}

absl::Status StateDb::InitializeEmpty() {
  rocksdb::WriteBatch batch;
  std::random_device rd;
  db_id_ = absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  const int64_t config_acl =
      InternAcl({MakeAcl(perms::kRead, "world", "anyone")}, &batch);
  for (absl::string_view path : kBuiltinPaths) {
    Znode node;
    if (path == "/") node.num_children = 1;
    if (path == "/zookeeper") node.num_children = 2;
    if (path == "/zookeeper/config") {
      node.acl_id = config_acl;
      node.aversion = -1;
    }
    batch.Put(znodes_, ZnodeKey(path), ZnodeToRecord(node).SerializeAsString());
  }
  batch.Put(meta_, kMetaDbId, db_id_);
  batch.Put(meta_, kMetaLastAppliedZxid, EncodeI64(0));
  batch.Put(meta_, kMetaZnodeCount,
            EncodeI64(static_cast<int64_t>(std::size(kBuiltinPaths))));
  znode_count_ = static_cast<int64_t>(std::size(kBuiltinPaths));
  batch.Put(meta_, kMetaFormatVersion, "1");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) return FromRocks(s, "initialize state DB");
  return Flush();
}

absl::Status StateDb::LoadAcls() {
  absl::MutexLock lock(&acl_mu_);
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), acls_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8) return absl::DataLossError("bad acls key");
    const auto id = static_cast<int64_t>(
        DecodeBigEndian64(absl::string_view(it->key().data(), 8)));
    record::v1::AclList list;
    if (!list.ParseFromArray(it->value().data(),
                             static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat("bad ACL list ", id));
    }
    AclVector acl(list.acls().begin(), list.acls().end());
    acl_id_by_fingerprint_[AclListFingerprint(acl)] = id;
    acl_by_id_[id] = std::move(acl);
    next_acl_id_ = std::max(next_acl_id_, id + 1);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "load ACLs");
  // OPEN_ACL_UNSAFE is implicit (built-in nodes); never stored.
  AclVector open = OpenAclUnsafe();
  acl_id_by_fingerprint_.try_emplace(AclListFingerprint(open), kOpenAclId);
  acl_by_id_[kOpenAclId] = std::move(open);
  return absl::OkStatus();
}

int64_t StateDb::InternAcl(const AclVector& acl, rocksdb::WriteBatch* batch) {
  const std::string fp = AclListFingerprint(acl);
  absl::MutexLock lock(&acl_mu_);
  if (auto it = acl_id_by_fingerprint_.find(fp);
      it != acl_id_by_fingerprint_.end()) {
    return it->second;
  }
  const int64_t id = next_acl_id_++;
  acl_ids_in_batch_.push_back(id);
  record::v1::AclList list;
  for (const Acl& a : acl) *list.add_acls() = a;
  batch->Put(acls_, AclKey(id), list.SerializeAsString());
  batch->Put(meta_, kMetaNextAclId, EncodeI64(next_acl_id_));
  acl_id_by_fingerprint_[fp] = id;
  acl_by_id_[id] = acl;
  return id;
}

void StateDb::RollBackAcls() {
  absl::MutexLock lock(&acl_mu_);
  for (int64_t id : acl_ids_in_batch_) {
    acl_id_by_fingerprint_.erase(AclListFingerprint(acl_by_id_[id]));
    acl_by_id_.erase(id);
    next_acl_id_ = std::min(next_acl_id_, id);
  }
  acl_ids_in_batch_.clear();
}

absl::StatusOr<AclVector> StateDb::GetAcl(int64_t acl_id) const {
  absl::MutexLock lock(&acl_mu_);
  auto it = acl_by_id_.find(acl_id);
  if (it == acl_by_id_.end()) {
    return absl::DataLossError(absl::StrCat("unknown ACL id ", acl_id));
  }
  return it->second;
}

absl::StatusOr<Znode> StateDb::GetZnode(absl::string_view path) const {
  Znode cached;
  if (znode_cache_->Lookup(path, &cached)) return cached;
  const uint64_t epoch = znode_cache_->epoch();
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), znodes_, ZnodeKey(path), &value);
  if (s.IsNotFound()) return absl::NotFoundError(path);
  if (!s.ok()) return FromRocks(s, path);
  ZnodeRecord rec;
  if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("bad znode record ", path));
  }
  Znode node = ZnodeFromRecord(rec);
  znode_cache_->Fill(path, epoch, node);
  return node;
}

bool StateDb::ZnodeResident(absl::string_view path) const {
  if (znode_cache_->Contains(path)) return true;
  const uint64_t epoch = znode_cache_->epoch();
  rocksdb::ReadOptions ro;
  ro.read_tier = rocksdb::kBlockCacheTier;  // Incomplete rather than I/O
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(ro, znodes_, ZnodeKey(path), &value);
  if (s.IsNotFound()) return true;
  if (!s.ok()) return false;
  ZnodeRecord rec;
  if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return false;  // GetZnode reports it
  }
  znode_cache_->Fill(path, epoch, ZnodeFromRecord(rec));
  return true;
}

namespace {

// Iterates the keys with `prefix` (which ends in '/') of one column family.
template <typename Fn>
absl::Status ScanPrefix(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                        const std::string& prefix, Fn&& fn) {
  // Keys with this prefix sort before prefix-with-last-byte-incremented.
  std::string upper = prefix;
  while (!upper.empty() && static_cast<unsigned char>(upper.back()) == 0xFF) {
    upper.pop_back();
  }
  if (!upper.empty()) upper.back() = static_cast<char>(upper.back() + 1);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf));
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const rocksdb::Slice key = it->key();
    if (!key.starts_with(prefix)) break;
    if (!fn(absl::string_view(key.data(), key.size()))) break;
  }
  return FromRocks(it->status(), "scan");
}

}  // namespace

absl::Status StateDb::ListChildren(absl::string_view path,
                                   std::vector<std::string>* names) const {
  if (children_cache_->Lookup(path, names)) return absl::OkStatus();
  const uint64_t epoch = children_cache_->epoch();
  const size_t first = names->size();
  const std::string prefix = ChildrenPrefix(path);
  absl::Status s =
      ScanPrefix(db_.get(), znodes_, prefix, [&](absl::string_view key) {
        names->emplace_back(key.substr(prefix.size()));
        return true;
      });
  if (s.ok()) {
    children_cache_->Fill(path, epoch,
                          absl::MakeConstSpan(*names).subspan(first));
  }
  return s;
}

bool StateDb::ChildrenResident(absl::string_view path) const {
  if (!ZnodeResident(path)) return false;
  // Not probed with a kBlockCacheTier scan: a RocksDB iterator's Seek
  // wanted blocks that the point reads of every child had not brought in
  // (it reported Incomplete with all of them cached), so such a probe
  // would be a scan spent for nothing.
  return !children_cache_->enabled() || children_cache_->Contains(path);
}

absl::Status StateDb::ListChildrenPacked(absl::string_view path,
                                         PackedNames* packed) const {
  if (children_cache_->LookupPacked(path, packed)) return absl::OkStatus();
  std::vector<std::string> names;
  if (absl::Status s = ListChildren(path, &names); !s.ok()) return s;
  *packed = std::make_shared<const std::string>(PackNames(names));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> StateDb::CountDescendants(
    absl::string_view path) const {
  int64_t total = 0;
  // Level by level: no node at level k means none deeper.
  for (int level = 1;; ++level) {
    int64_t count = 0;
    absl::Status s =
        ScanPrefix(db_.get(), znodes_, DescendantPrefix(path, level),
                   [&](absl::string_view) {
                     ++count;
                     return true;
                   });
    if (!s.ok()) return s;
    if (count == 0) return total;
    total += count;
  }
}

absl::StatusOr<StateDb::Usage> StateDb::SubtreeUsage(
    absl::string_view path) const {
  absl::StatusOr<Znode> self = GetZnode(path);
  if (!self.ok()) return self.status();
  Usage usage{1, static_cast<int64_t>(self->data.size())};
  const int base_depth = PathDepth(path);
  for (int level = 1;; ++level) {
    const std::string prefix = DescendantPrefix(path, level);
    std::string upper = prefix;
    upper.back() = static_cast<char>(upper.back() + 1);  // prefix ends in '/'
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, znodes_));
    int64_t at_level = 0;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      ZnodeRecord rec;
      if (!rec.ParseFromArray(it->value().data(),
                              static_cast<int>(it->value().size()))) {
        return absl::DataLossError("bad znode record");
      }
      ++at_level;
      usage.bytes += static_cast<int64_t>(rec.data().size());
    }
    if (!it->status().ok()) return FromRocks(it->status(), "subtree usage");
    if (at_level == 0 || base_depth + level > 0xFFFF) return usage;
    usage.count += at_level;
  }
}

absl::Status StateDb::ListEphemerals(int64_t session_id,
                                     std::vector<std::string>* paths) const {
  const std::string prefix = EphemeralPrefix(session_id);
  return ScanPrefix(db_.get(), ephemerals_, prefix, [&](absl::string_view key) {
    paths->emplace_back(key.substr(8));
    return true;
  });
}

absl::Status StateDb::ListContainers(std::vector<std::string>* paths) const {
  return ListEphemerals(kContainerOwner, paths);
}

absl::Status StateDb::ListTtlNodes(
    std::vector<std::pair<std::string, int64_t>>* nodes) const {
  // TTL owners are 0xFF00000000000000 | ttl: their keys start with 0xFF.
  return ScanPrefix(
      db_.get(), ephemerals_, std::string(1, '\xFF'),
      [&](absl::string_view key) {
        const auto owner = static_cast<int64_t>(DecodeBigEndian64(key));
        nodes->emplace_back(std::string(key.substr(8)), TtlOfOwner(owner));
        return true;
      });
}

absl::StatusOr<SessionRecord> StateDb::GetSession(int64_t session_id) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), sessions_,
                               SessionKey(session_id), &value);
  if (!s.ok()) return FromRocks(s, absl::StrCat("session ", session_id));
  SessionRecord rec;
  if (!rec.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("bad session ", session_id));
  }
  return rec;
}

absl::Status StateDb::ListSessions(std::vector<SessionRecord>* out) const {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), sessions_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SessionRecord rec;
    if (!rec.ParseFromArray(it->value().data(),
                            static_cast<int>(it->value().size()))) {
      return absl::DataLossError("bad session record");
    }
    out->push_back(std::move(rec));
  }
  return FromRocks(it->status(), "list sessions");
}

// --- Apply ---------------------------------------------------------------

absl::Status StateDb::Apply(absl::Span<const Txn> txns,
                            std::vector<WatchTrigger>* triggers) {
  if (read_only_) return absl::FailedPreconditionError("read-only state DB");
  if (txns.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  int64_t last = last_applied_zxid();
  children_changes_.clear();
  znode_changes_.clear();
  batch_znodes_.clear();
  {
    absl::MutexLock lock(&acl_mu_);
    acl_ids_in_batch_.clear();
  }
  const size_t triggers_before = triggers ? triggers->size() : 0;
  auto fail = [&](absl::Status s) {
    RollBackAcls();
    children_changes_.clear();
    znode_changes_.clear();
    batch_znodes_.clear();
    if (triggers != nullptr) triggers->resize(triggers_before);
    return s;
  };
  for (const Txn& txn : txns) {
    if (txn.header().zxid() <= last) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("txn zxid ", txn.header().zxid(), " not after ", last)));
    }
    last = txn.header().zxid();
    if (absl::Status s = ValidateTxn(txn); !s.ok()) return fail(s);
    if (absl::Status s = ApplyOne(txn, &batch, triggers); !s.ok()) {
      return fail(s);
    }
    for (const auto& q : txn.quota_updates()) {
      ZnodeRecord patch;
      patch.set_data(q.data());
      patch.set_data_null(false);
      NoteZnodePatch(q.path(), patch, &batch);
    }
  }
  for (auto& [path, bz] : batch_znodes_) WriteBatchZnode(path, bz, &batch);
  batch.Put(meta_, kMetaLastAppliedZxid, EncodeI64(last));
  int64_t count = znode_count_.load();
  for (const Txn& txn : txns) count += ZnodeCountDelta(txn);
  batch.Put(meta_, kMetaZnodeCount, EncodeI64(count));
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;  // the txn log is the WAL
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) {
    children_cache_->Clear();  // what reached the memtables is unknown
    znode_cache_->Clear();
    return fail(FromRocks(s, "apply"));
  }
  children_cache_->ApplyChanges(children_changes_);
  children_changes_.clear();
  znode_cache_->ApplyChanges(absl::MakeSpan(znode_changes_));
  znode_changes_.clear();
  last_applied_zxid_.store(last, std::memory_order_release);
  znode_count_.store(count);
  return absl::OkStatus();
}

absl::Status StateDb::ApplyOne(const Txn& txn, rocksdb::WriteBatch* batch,
                               std::vector<WatchTrigger>* triggers) {
  const int64_t zxid = txn.header().zxid();
  switch (txn.body_case()) {
    case Txn::kCreate:
      ApplyCreate(txn.create(), txn, batch, triggers);
      break;
    case Txn::kDelete:
      ApplyDelete(txn.delete_(), zxid, batch, triggers);
      break;
    case Txn::kSetData:
      ApplySetData(txn.set_data(), txn, batch, triggers);
      break;
    case Txn::kSetAcl:
      ApplySetAcl(txn.set_acl(), batch);
      break;
    case Txn::kCreateSession: {
      SessionRecord rec;
      rec.set_session_id(txn.header().session_id());
      rec.set_timeout_ms(txn.create_session().timeout_ms());
      rec.set_password(txn.create_session().password());
      rec.set_created_zxid(zxid);
      batch->Put(sessions_, SessionKey(rec.session_id()),
                 rec.SerializeAsString());
      break;
    }
    case Txn::kCloseSession:
      for (const auto& d : txn.close_session().deletes()) {
        ApplyDelete(d, zxid, batch, triggers);
      }
      batch->Delete(sessions_, SessionKey(txn.header().session_id()));
      break;
    case Txn::kMulti:
      for (const auto& op : txn.multi().ops()) {
        switch (op.body_case()) {
          case record::v1::MultiOp::kCreate:
            ApplyCreate(op.create(), txn, batch, triggers);
            break;
          case record::v1::MultiOp::kDelete:
            ApplyDelete(op.delete_(), zxid, batch, triggers);
            break;
          case record::v1::MultiOp::kSetData:
            ApplySetData(op.set_data(), txn, batch, triggers);
            break;
          case record::v1::MultiOp::kCheck:
          case record::v1::MultiOp::kError:
            break;
          case record::v1::MultiOp::BODY_NOT_SET:
            return absl::DataLossError(
                absl::StrCat("multi op without body at zxid ", zxid));
        }
      }
      break;
    case Txn::kCheck:
    case Txn::kError:
      break;
    case Txn::BODY_NOT_SET:
      return absl::DataLossError(absl::StrCat("txn without body at ", zxid));
  }
  return absl::OkStatus();
}

void StateDb::ApplyCreate(const record::v1::CreateTxn& c, const Txn& txn,
                          rocksdb::WriteBatch* batch,
                          std::vector<WatchTrigger>* triggers) {
  const int64_t zxid = txn.header().zxid();
  const int64_t time_ms = txn.header().time_ms();
  Znode node;
  node.czxid = node.mzxid = node.pzxid = zxid;
  node.ctime_ms = node.mtime_ms = time_ms;
  node.ephemeral_owner = c.ephemeral_owner();
  node.acl_id = InternAcl(AclVector(c.acl().begin(), c.acl().end()), batch);
  node.data = c.data();
  node.data_null = c.data_null();
  ForgetBatchZnode(c.path(), batch);
  batch->Put(znodes_, ZnodeKey(c.path()),
             ZnodeToRecord(node).SerializeAsString());
  if (znode_cache_->enabled()) {
    znode_changes_.push_back(
        {c.path(), ZnodeChange::Kind::kPut, std::move(node), {}});
  }

  const absl::string_view parent = ParentPath(c.path());
  children_changes_.push_back(
      {parent, BaseName(c.path()), ChildrenChange::Kind::kAdd});
  ZnodeRecord patch;
  patch.set_cversion(c.parent_cversion());
  patch.set_num_children(c.parent_num_children());
  patch.set_pzxid(zxid);
  NoteZnodePatch(parent, patch, batch);
  // Ephemerals by session, and containers and TTL nodes by their marker
  // owner: the reaper lists them without scanning the tree.
  if (c.ephemeral_owner() != 0) {
    batch->Put(ephemerals_, EphemeralKey(c.ephemeral_owner(), c.path()), "");
  }
  if (triggers != nullptr) {
    triggers->push_back({c.path(), WatchEventType::kNodeCreated, zxid});
    triggers->push_back(
        {std::string(parent), WatchEventType::kNodeChildrenChanged, zxid});
  }
}

void StateDb::ApplyDelete(const record::v1::DeleteTxn& d, int64_t zxid,
                          rocksdb::WriteBatch* batch,
                          std::vector<WatchTrigger>* triggers) {
  ForgetBatchZnode(d.path(), batch);
  batch->Delete(znodes_, ZnodeKey(d.path()));
  if (znode_cache_->enabled()) {
    znode_changes_.push_back({d.path(), ZnodeChange::Kind::kErase, {}, {}});
  }
  const absl::string_view parent = ParentPath(d.path());
  children_changes_.push_back(
      {parent, BaseName(d.path()), ChildrenChange::Kind::kRemove});
  children_changes_.push_back({d.path(), {}, ChildrenChange::Kind::kDropList});
  ZnodeRecord patch;
  patch.set_num_children(d.parent_num_children());
  patch.set_pzxid(zxid);
  NoteZnodePatch(parent, patch, batch);
  if (d.ephemeral_owner() != 0) {
    batch->Delete(ephemerals_, EphemeralKey(d.ephemeral_owner(), d.path()));
  }
  if (triggers != nullptr) {
    triggers->push_back({d.path(), WatchEventType::kNodeDeleted, zxid});
    triggers->push_back(
        {std::string(parent), WatchEventType::kNodeChildrenChanged, zxid});
  }
}

void StateDb::ApplySetData(const record::v1::SetDataTxn& s, const Txn& txn,
                           rocksdb::WriteBatch* batch,
                           std::vector<WatchTrigger>* triggers) {
  // With `rest` the whole record is known: a Put (reads then find one value
  // instead of merge patches to fold). Without it, a patch.
  ZnodeRecord rec = s.has_rest() ? s.rest() : ZnodeRecord();
  rec.set_data(s.data());
  rec.set_data_null(s.data_null());  // explicit: false clears a null
  rec.set_version(s.version());
  rec.set_mzxid(txn.header().zxid());
  rec.set_mtime_ms(txn.header().time_ms());
  if (s.has_rest()) {
    ForgetBatchZnode(s.path(), batch);
    batch->Put(znodes_, ZnodeKey(s.path()), rec.SerializeAsString());
    if (znode_cache_->enabled()) {
      znode_changes_.push_back(
          {s.path(), ZnodeChange::Kind::kPut, ZnodeFromRecord(rec), {}});
    }
  } else {
    NoteZnodePatch(s.path(), rec, batch);
  }
  if (triggers != nullptr) {
    triggers->push_back(
        {s.path(), WatchEventType::kNodeDataChanged, txn.header().zxid()});
  }
}

void StateDb::NoteZnodePatch(absl::string_view path, const ZnodeRecord& patch,
                             rocksdb::WriteBatch* batch) {
  // A znode with more data than this is patched by a merge operand even if
  // known: the Put would copy all of its data for each child created.
  constexpr size_t kMaxPutDataBytes = 1024;
  if (!znode_cache_->enabled()) {
    batch->Merge(znodes_, ZnodeKey(path), patch.SerializeAsString());
    return;
  }
  auto [it, first] = batch_znodes_.try_emplace(path);
  BatchZnode& bz = it->second;
  if (first) {
    Znode cached;
    if (znode_cache_->Peek(path, kMaxPutDataBytes, &cached)) {
      bz.node = std::move(cached);
    }
  }
  if (!bz.node.has_value()) {
    batch->Merge(znodes_, ZnodeKey(path), patch.SerializeAsString());
  } else {
    MergePatch(patch, &*bz.node);
    if (bz.node->data.size() <= kMaxPutDataBytes) {
      bz.unwritten = true;  // one Put at the end of the batch
    } else {
      // Merge operands from here on; the DB's record gets this state now.
      batch->Put(znodes_, ZnodeKey(path),
                 ZnodeToRecord(*bz.node).SerializeAsString());
      bz.node.reset();
      bz.unwritten = false;
    }
  }
  znode_changes_.push_back({path, ZnodeChange::Kind::kPatch, {}, patch});
}

void StateDb::WriteBatchZnode(absl::string_view path, BatchZnode& bz,
                              rocksdb::WriteBatch* batch) {
  if (!bz.unwritten) return;
  batch->Put(znodes_, ZnodeKey(path),
             ZnodeToRecord(*bz.node).SerializeAsString());
  bz.unwritten = false;
}

void StateDb::ForgetBatchZnode(absl::string_view path,
                               rocksdb::WriteBatch* batch) {
  if (!znode_cache_->enabled()) return;
  auto [it, first] = batch_znodes_.try_emplace(path);
  if (!first) WriteBatchZnode(path, it->second, batch);
  it->second.node.reset();
}

void StateDb::ApplySetAcl(const record::v1::SetAclTxn& s,
                          rocksdb::WriteBatch* batch) {
  ZnodeRecord patch;
  patch.set_acl_id(InternAcl(AclVector(s.acl().begin(), s.acl().end()), batch));
  patch.set_aversion(s.aversion());
  NoteZnodePatch(s.path(), patch, batch);
}

// --- Meta ----------------------------------------------------------------

absl::Status StateDb::SetEpochs(int64_t current_epoch, int64_t accepted_epoch) {
  rocksdb::WriteBatch batch;
  batch.Put(meta_, kMetaCurrentEpoch, EncodeI64(current_epoch));
  batch.Put(meta_, kMetaAcceptedEpoch, EncodeI64(accepted_epoch));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = db_->Write(wo, &batch);
  if (!s.ok()) return FromRocks(s, "set epochs");
  current_epoch_.store(current_epoch);
  accepted_epoch_.store(accepted_epoch);
  return absl::OkStatus();
}

int64_t StateDb::current_epoch() const { return current_epoch_.load(); }
int64_t StateDb::accepted_epoch() const { return accepted_epoch_.load(); }

namespace {

// FNV-1a, 64 bit: stable across processes and builds.
void HashBytes(uint64_t* h, absl::string_view bytes) {
  for (unsigned char c : bytes) {
    *h ^= c;
    *h *= 0x100000001b3ULL;
  }
  // Separator so that ("ab","c") and ("a","bc") differ.
  *h ^= 0xFF;
  *h *= 0x100000001b3ULL;
}

}  // namespace

absl::StatusOr<uint64_t> StateDb::ComputeDigest() const {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (rocksdb::ColumnFamilyHandle* cf :
       {znodes_, sessions_, ephemerals_, acls_}) {
    HashBytes(&h, cf->GetName());
    std::unique_ptr<rocksdb::Iterator> it(
        db_->NewIterator(rocksdb::ReadOptions(), cf));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      HashBytes(&h, absl::string_view(it->key().data(), it->key().size()));
      absl::string_view value(it->value().data(), it->value().size());
      if (cf == znodes_) {
        // Normalize: the same node may be stored as a record or as a record
        // plus merge patches, serialized in different field orders.
        ZnodeRecord rec;
        if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return absl::DataLossError("bad znode record in digest");
        }
        HashBytes(&h, absl::StrCat(ZnodeFromRecord(rec).czxid, "/", rec.mzxid(),
                                   "/", rec.pzxid(), "/", rec.ctime_ms(), "/",
                                   rec.mtime_ms(), "/", rec.version(), "/",
                                   rec.cversion(), "/", rec.aversion(), "/",
                                   rec.ephemeral_owner(), "/",
                                   rec.num_children(), "/", rec.acl_id()));
        HashBytes(&h, rec.data());
      } else {
        HashBytes(&h, value);
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "digest");
  }
  for (const char* key : {kMetaNextAclId, kMetaLastAppliedZxid}) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, key, &v);
    if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "digest meta");
    HashBytes(&h, key);
    HashBytes(&h, v);
  }
  return h;
}

absl::Status StateDb::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs(handles_.begin(),
                                                handles_.end());
  return FromRocks(db_->Flush(fo, cfs), "flush");
}

}  // namespace rockeeper::engine
