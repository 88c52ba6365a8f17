// ZnodeCache on its own, and StateDb::GetZnode with the cache in front of
// RocksDB: with readers racing the apply thread, a cached znode equals what
// the DB holds. (After any sequence of applied txns: the differential test
// in tests/engine/children_cache_test.cc.)
#include "engine/znode_cache.h"

#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using Kind = ZnodeChange::Kind;
using testing::Create;
using testing::EngineHarness;
using testing::ReadZnode;
using testing::TempDir;

Znode NodeWith(std::string data, int32_t version) {
  Znode n;
  n.data = std::move(data);
  n.version = version;
  n.mzxid = 7;
  return n;
}

TEST(ZnodeCacheTest, MissFillHit) {
  ZnodeCache cache(1 << 20);
  Znode got;
  EXPECT_FALSE(cache.Lookup("/a", &got));
  cache.Fill("/a", cache.epoch(), NodeWith("x", 3));
  ASSERT_TRUE(cache.Lookup("/a", &got));
  EXPECT_EQ(got.data, "x");
  EXPECT_EQ(got.version, 3);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(ZnodeCacheTest, AFillOlderThanAWriteIsDropped) {
  ZnodeCache cache(1 << 20);
  const uint64_t before = cache.epoch();
  std::vector<ZnodeChange> changes;
  changes.push_back({"/other", Kind::kErase, {}, {}});
  cache.ApplyChanges(absl::MakeSpan(changes));
  cache.Fill("/a", before, NodeWith("stale", 1));
  Znode got;
  EXPECT_FALSE(cache.Lookup("/a", &got));
}

TEST(ZnodeCacheTest, PutPatchAndEraseFollowTheBatchInOrder) {
  ZnodeCache cache(1 << 20);
  cache.Fill("/p", cache.epoch(), NodeWith("parent", 0));
  cache.Fill("/gone", cache.epoch(), NodeWith("g", 0));
  std::vector<ZnodeChange> changes;
  changes.push_back({"/n", Kind::kPut, NodeWith("new", 1), {}});
  ZnodeChange patch{"/p", Kind::kPatch, {}, {}};
  patch.patch.set_num_children(2);
  patch.patch.set_pzxid(42);
  changes.push_back(patch);
  changes.push_back({"/gone", Kind::kErase, {}, {}});
  ZnodeChange absent{"/absent", Kind::kPatch, {}, {}};
  absent.patch.set_version(9);
  changes.push_back(absent);
  ZnodeChange data{"/n", Kind::kPatch, {}, {}};
  data.patch.set_data("newer");
  data.patch.set_data_null(false);
  data.patch.set_version(2);
  changes.push_back(data);
  cache.ApplyChanges(absl::MakeSpan(changes));
  Znode got;
  ASSERT_TRUE(cache.Lookup("/p", &got));
  EXPECT_EQ(got.data, "parent");  // fields the patch lacks stay
  EXPECT_EQ(got.num_children, 2);
  EXPECT_EQ(got.pzxid, 42);
  EXPECT_EQ(got.mzxid, 7);
  ASSERT_TRUE(cache.Lookup("/n", &got));
  EXPECT_EQ(got.data, "newer");
  EXPECT_EQ(got.version, 2);
  EXPECT_FALSE(cache.Lookup("/gone", &got));
  EXPECT_FALSE(cache.Lookup("/absent", &got));  // a patch does not create
}

// A Put over a cached znode replaces every field, whether its data keeps
// its size (written in place) or not, and the accounted bytes follow.
TEST(ZnodeCacheTest, PutsReplaceWholeZnodesOfAnySize) {
  ZnodeCache cache(1 << 20);
  Znode first = NodeWith("abcd", 1);
  first.num_children = 3;
  first.acl_id = 5;
  cache.Fill("/n", cache.epoch(), first);
  const size_t bytes = cache.stats().bytes;
  auto put = [&](const Znode& n) {
    std::vector<ZnodeChange> changes;
    changes.push_back({"/n", Kind::kPut, n, {}});
    cache.ApplyChanges(absl::MakeSpan(changes));
    Znode got;
    EXPECT_TRUE(cache.Lookup("/n", &got));
    return got;
  };
  Znode same_size = NodeWith("wxyz", 2);
  same_size.data_null = false;
  same_size.num_children = 0;
  same_size.acl_id = 9;
  Znode got = put(same_size);
  EXPECT_EQ(got.data, "wxyz");
  EXPECT_EQ(got.version, 2);
  EXPECT_EQ(got.num_children, 0);
  EXPECT_EQ(got.acl_id, 9);
  EXPECT_EQ(cache.stats().bytes, bytes);
  got = put(NodeWith("longer data", 3));
  EXPECT_EQ(got.data, "longer data");
  EXPECT_EQ(got.version, 3);
  EXPECT_EQ(cache.stats().bytes, bytes + 7);
  Znode empty = NodeWith("", 4);
  empty.data_null = true;
  got = put(empty);
  EXPECT_EQ(got.data, "");
  EXPECT_TRUE(got.data_null);
  EXPECT_EQ(cache.stats().bytes, bytes - 4);
  EXPECT_EQ(cache.stats().entries, 1u);
}

TEST(ZnodeCacheTest, StaysWithinItsBoundAndSkipsHugeNodes) {
  // 16 shards of 4 KiB each.
  constexpr size_t kMax = 64 << 10;
  ZnodeCache cache(kMax);
  for (int i = 0; i < 5000; ++i) {
    cache.Fill(absl::StrCat("/some/longer/path/n", i), cache.epoch(),
               NodeWith(std::string(40, 'v'), i));
    ASSERT_LE(cache.stats().bytes, kMax) << i;
  }
  EXPECT_GT(cache.stats().entries, 100u);
  cache.Fill("/huge", cache.epoch(), NodeWith(std::string(kMax / 8, 'h'), 0));
  Znode got;
  EXPECT_FALSE(cache.Lookup("/huge", &got));
  // Up to a quarter of a shard (kMax / 64 with its overhead) is cached.
  cache.Fill("/big", cache.epoch(),
             NodeWith(std::string(kMax / 64 - 512, 'b'), 0));
  EXPECT_TRUE(cache.Lookup("/big", &got));
  cache.Clear();
  EXPECT_EQ(cache.stats().entries, 0u);
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST(ZnodeCacheTest, DisabledCachesNothing) {
  ZnodeCache cache(0);
  EXPECT_FALSE(cache.enabled());
  cache.Fill("/a", cache.epoch(), NodeWith("x", 0));
  Znode got;
  EXPECT_FALSE(cache.Lookup("/a", &got));
}

std::unique_ptr<StateDb> OpenPlainDb(const std::string& dir) {
  StateDbOptions o;
  o.path = dir;
  o.block_cache_bytes = 8 << 20;
  o.write_buffer_bytes = 4 << 20;
  o.znode_cache_bytes = 0;
  auto db = StateDb::Open(o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

// Readers that do not hold the visibility mutex (like Prep) read while the
// apply thread sets, creates and deletes. Once the writer stops, every
// cached znode must equal the DB's: no fill from a read older than a write
// may survive.
TEST(StateDbZnodeCacheTest, RacingFillsNeverLeaveAStaleZnode) {
  TempDir dir;
  EngineHarness h(dir.Sub("db"));
  constexpr int kNodes = 16;
  for (int i = 0; i < kNodes; ++i) h.Run(Create(absl::StrCat("/n", i), "0"));
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; i < 2000000 && !stop.load(); ++i) {
        (void)h.db().GetZnode(absl::StrCat("/n", (i + r) % kNodes));
      }
    });
  }
  std::mt19937 rng(23);
  for (int step = 0; step < 4000; ++step) {
    const std::string path = absl::StrCat("/n", rng() % kNodes);
    switch (rng() % 4) {
      case 0:
        h.Run(DeleteRequest{path});
        break;
      case 1:
        h.Run(Create(path, "c"));
        break;
      default:
        h.Run(SetDataRequest{path, absl::StrCat(step), -1});
        break;
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  std::unique_ptr<StateDb> plain = OpenPlainDb(dir.Sub("plain"));
  for (const Txn& txn : h.txns()) {
    ASSERT_TRUE(plain->Apply({txn}, nullptr).ok());
  }
  for (int i = 0; i < kNodes; ++i) {
    const std::string path = absl::StrCat("/n", i);
    // Twice: the first read may fill, the second is then a hit.
    EXPECT_EQ(ReadZnode(h.db(), path), ReadZnode(*plain, path)) << path;
    EXPECT_EQ(ReadZnode(h.db(), path), ReadZnode(*plain, path)) << path;
  }
  EXPECT_GT(h.db().znode_cache_stats().hits, 0u);
}

// A created node is cached by the apply, with the stat the DB holds: the
// first read of it is a hit.
TEST(StateDbZnodeCacheTest, ACreatedNodeIsCachedByTheApply) {
  TempDir dir;
  EngineHarness h(dir.Sub("db"));
  h.Run(Create("/fresh", "payload"));
  const CacheStats before = h.db().znode_cache_stats();
  absl::StatusOr<Znode> got = h.db().GetZnode("/fresh");
  ASSERT_TRUE(got.ok()) << got.status();
  const CacheStats after = h.db().znode_cache_stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses);
  std::unique_ptr<StateDb> plain = OpenPlainDb(dir.Sub("plain"));
  for (const Txn& txn : h.txns()) {
    ASSERT_TRUE(plain->Apply({txn}, nullptr).ok());
  }
  EXPECT_EQ(ReadZnode(h.db(), "/fresh"), ReadZnode(*plain, "/fresh"));
  EXPECT_EQ(got->data, "payload");
}

// ZnodeResident: false for a znode only on disk (after a reopen: empty
// block cache, empty znode cache), true once a read brought it in; the
// probe itself never changes what a read returns, and a resident znode it
// found in RocksDB's caches lands in the znode cache.
TEST(StateDbZnodeCacheTest, ResidentOnlyOnceInMemory) {
  for (size_t znode_cache_bytes : {size_t{0}, size_t{128} << 20}) {
    SCOPED_TRACE(znode_cache_bytes);
    TempDir dir;
    EngineHarness h(dir.Sub("db"), {}, 32u << 20, 0, znode_cache_bytes);
    h.Run(Create("/a", "on disk"));
    h.Run(Create("/b", "also on disk"));
    ASSERT_TRUE(h.db().Flush().ok());
    h.Reopen();  // fresh caches; the znodes are in SST files only
    EXPECT_FALSE(h.db().ZnodeResident("/a"));
    EXPECT_EQ(h.Node("/a").data, "on disk");  // a real read: from the disk
    EXPECT_TRUE(h.db().ZnodeResident("/a"));
    // A write since lives in the memtable.
    h.Run(Create("/c", "in the memtable"));
    EXPECT_TRUE(h.db().ZnodeResident("/c"));
    EXPECT_EQ(h.Node("/c").data, "in the memtable");
    EXPECT_EQ(h.Node("/b").data, "also on disk");
  }
}

TEST(StateDbZnodeCacheTest, AResidentProbeFillsTheZnodeCache) {
  TempDir dir;
  EngineHarness h(dir.Sub("db"));
  h.Run(Create("/a", "v"));
  h.Run(Create("/b", "w"));
  ASSERT_TRUE(h.db().Flush().ok());
  h.Reopen();
  // Reading /b brings the one data block (holding /a too) into the block
  // cache, and /b alone into the znode cache.
  EXPECT_EQ(h.Node("/b").data, "w");
  const CacheStats before = h.db().znode_cache_stats();
  EXPECT_TRUE(h.db().ZnodeResident("/a"));
  const CacheStats probed = h.db().znode_cache_stats();
  EXPECT_EQ(probed.hits, before.hits);  // the probe counts nothing
  EXPECT_EQ(probed.misses, before.misses);
  EXPECT_EQ(h.Node("/a").data, "v");
  const CacheStats after = h.db().znode_cache_stats();
  EXPECT_EQ(after.hits, before.hits + 1);  // the probe filled it
  EXPECT_EQ(after.misses, before.misses);
}

// ChildrenResident: the znode resident and its child list in the children
// cache; with the children cache disabled, the znode alone.
TEST(StateDbZnodeCacheTest, ChildrenResidentOnlyWithTheListCached) {
  TempDir dir;
  // Znode cache off: the probe must find the parent itself through RocksDB.
  EngineHarness h(dir.Sub("db"), {}, 32u << 20, 0, 0);
  h.Run(Create("/p", "parent"));
  for (int i = 0; i < 200; ++i) {
    h.Run(Create(absl::StrCat("/p/c", i), std::string(300, 'x')));
  }
  ASSERT_TRUE(h.db().Flush().ok());
  h.Reopen();
  EXPECT_FALSE(h.db().ChildrenResident("/p"));
  std::vector<std::string> names;
  ASSERT_TRUE(h.db().ListChildren("/p", &names).ok());  // reads the disk
  EXPECT_EQ(names.size(), 200u);
  EXPECT_TRUE(h.db().ChildrenResident("/p"));  // in the children cache now
  h.Reopen();
  ASSERT_TRUE(h.db().GetZnode("/p").ok());
  EXPECT_TRUE(h.db().ZnodeResident("/p"));
  EXPECT_FALSE(h.db().ChildrenResident("/p"));  // the znode, not its list

  EngineHarness no_list_cache(dir.Sub("db2"), {}, 0, 0, 0);
  no_list_cache.Run(Create("/q", "parent"));
  no_list_cache.Run(Create("/q/c", "child"));
  ASSERT_TRUE(no_list_cache.db().Flush().ok());
  no_list_cache.Reopen();
  EXPECT_FALSE(no_list_cache.db().ChildrenResident("/q"));
  ASSERT_TRUE(no_list_cache.db().GetZnode("/q").ok());
  EXPECT_TRUE(no_list_cache.db().ChildrenResident("/q"));
}

}  // namespace
}  // namespace rockeeper::engine
