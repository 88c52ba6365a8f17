// Helpers shared by the engine tests: temp dirs and a harness that runs
// requests through Prep and Apply like the standalone commit path.
#ifndef ROCKEEPER_TESTS_ENGINE_TEST_UTIL_H_
#define ROCKEEPER_TESTS_ENGINE_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/prep.h"
#include "engine/snapshot.h"
#include "engine/state_db.h"
#include "gtest/gtest.h"

namespace rockeeper::engine::testing {

// A fresh directory removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        std::filesystem::temp_directory_path() / "rk-test-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(absl::string_view name) const {
    return (std::filesystem::path(path_) / std::string(name)).string();
  }

 private:
  std::string path_;
};

// StateDb + Prep, committing each request at once (a quorum of one).
class EngineHarness {
 public:
  // The caches' sizes as StateDbOptions's, except the row cache: given
  // here, off by default (as StateDbOptions's).
  explicit EngineHarness(std::string dir, PrepOptions options = {},
                         size_t children_cache_bytes = 32u << 20,
                         size_t row_cache_bytes = 0,
                         size_t znode_cache_bytes = 128u << 20)
      : dir_(std::move(dir)),
        options_(options),
        children_cache_bytes_(children_cache_bytes),
        row_cache_bytes_(row_cache_bytes),
        znode_cache_bytes_(znode_cache_bytes) {
    Reopen();
  }

  void Reopen() {
    prep_.reset();
    db_.reset();
    StateDbOptions o;
    o.path = dir_;
    o.block_cache_bytes = 8 << 20;
    o.write_buffer_bytes = 4 << 20;
    o.children_cache_bytes = children_cache_bytes_;
    o.row_cache_bytes = row_cache_bytes_;
    o.znode_cache_bytes = znode_cache_bytes_;
    auto db = StateDb::Open(o);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    prep_ = std::make_unique<Prep>(db_.get(), options_);
    next_zxid_ = db_->last_applied_zxid() + 1;
  }

  // Prepares and applies; returns the outcome. Watch triggers of the
  // applied txn are appended to `triggers`.
  PrepOutcome Run(const WriteRequest& req, const RequestContext& ctx = {}) {
    auto out = prep_->Prepare(ctx, req, next_zxid_, 1000 + next_zxid_);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    if (out->txn) {
      txns_.push_back(*out->txn);
      auto s = db_->Apply({*out->txn}, &triggers);
      EXPECT_TRUE(s.ok()) << s;
      prep_->OnApplied(next_zxid_);
      ++next_zxid_;
    }
    return *std::move(out);
  }

  ZkError Err(const WriteRequest& req, const RequestContext& ctx = {}) {
    return Run(req, ctx).err;
  }

  Znode Node(absl::string_view path) {
    auto n = db_->GetZnode(path);
    EXPECT_TRUE(n.ok()) << path << ": " << n.status();
    return n.ok() ? *n : Znode{};
  }
  bool Exists(absl::string_view path) { return db_->GetZnode(path).ok(); }

  StateDb& db() { return *db_; }
  Prep& prep() { return *prep_; }
  int64_t next_zxid() const { return next_zxid_; }
  const std::vector<Txn>& txns() const { return txns_; }
  std::vector<WatchTrigger> triggers;

 private:
  std::string dir_;
  PrepOptions options_;
  size_t children_cache_bytes_;
  size_t row_cache_bytes_;
  size_t znode_cache_bytes_;
  std::unique_ptr<StateDb> db_;
  std::unique_ptr<Prep> prep_;
  int64_t next_zxid_ = 1;
  std::vector<Txn> txns_;
};

// Everything a client can observe of the znode at `path` (or the error),
// for comparing two DBs.
inline std::string ReadZnode(const StateDb& db, absl::string_view path) {
  absl::StatusOr<Znode> r = db.GetZnode(path);
  if (!r.ok()) return r.status().ToString();
  const Znode& n = *r;
  return absl::StrCat(n.czxid, "/", n.mzxid, "/", n.pzxid, "/", n.ctime_ms, "/",
                      n.mtime_ms, "/", n.version, "/", n.cversion, "/",
                      n.aversion, "/", n.ephemeral_owner, "/", n.num_children,
                      "/", n.acl_id, "/", n.data_null, "/", n.data);
}

inline CreateRequest Create(std::string path, std::string data = "",
                            int32_t flags = kPersistent) {
  CreateRequest r;
  r.path = std::move(path);
  r.data = std::move(data);
  r.acl = OpenAclUnsafe();
  r.flags = flags;
  return r;
}

// Every snapshot under `snapshots_dir` is exact: it opens at the zxid of its
// name and holds the znode `path_of(i)` iff `czxids[i]` is at or below it.
// Returns how many it checked.
template <typename PathOf>
size_t ExpectSnapshotsExact(const std::string& snapshots_dir,
                            const std::vector<int64_t>& czxids,
                            PathOf path_of) {
  auto list = SnapshotStore(snapshots_dir).List();
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return 0;
  for (const SnapshotInfo& snap : *list) {
    StateDbOptions o;
    o.path = snap.path;
    o.read_only = true;
    o.block_cache_bytes = 1 << 20;
    auto db = StateDb::Open(o);
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) continue;
    EXPECT_EQ((*db)->last_applied_zxid(), snap.zxid);
    for (size_t i = 0; i < czxids.size(); ++i) {
      EXPECT_EQ((*db)->GetZnode(path_of(i)).ok(), czxids[i] <= snap.zxid)
          << snap.path << " and " << path_of(i);
    }
  }
  return list->size();
}

}  // namespace rockeeper::engine::testing

#endif  // ROCKEEPER_TESTS_ENGINE_TEST_UTIL_H_
