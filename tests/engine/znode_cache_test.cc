// ZnodeCache on its own, and StateDb::GetZnode with the cache in front of
// RocksDB: after any sequence of applied txns, and with readers racing the
// apply thread, a cached znode equals what the DB holds.
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
using testing::TempDir;

Znode NodeWith(std::string data, int32_t version) {
  Znode n;
  n.data = std::move(data);
  n.version = version;
  n.mzxid = 7;
  return n;
}

// Everything a client can observe of a znode, for comparisons.
std::string Describe(const Znode& n) {
  return absl::StrCat(n.czxid, "/", n.mzxid, "/", n.pzxid, "/", n.ctime_ms, "/",
                      n.mtime_ms, "/", n.version, "/", n.cversion, "/",
                      n.aversion, "/", n.ephemeral_owner, "/", n.num_children,
                      "/", n.acl_id, "/", n.data_null, "/", n.data);
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

TEST(ZnodeCacheTest, StaysWithinItsBoundAndSkipsHugeNodes) {
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

std::string Read(const StateDb& db, absl::string_view path) {
  absl::StatusOr<Znode> n = db.GetZnode(path);
  return n.ok() ? Describe(*n) : n.status().ToString();
}

// Random creates, sets (with and without an expected version), ACL
// changes, deletes, multis and session closes over a few paths, reading
// between them; the cached DB's znodes must equal those of a second DB
// without the cache that applied the same txns.
TEST(StateDbZnodeCacheTest, ZnodesMatchAnUncachedDbAfterEveryTxn) {
  TempDir dir;
  EngineHarness h(dir.Sub("cached"));
  std::unique_ptr<StateDb> plain = OpenPlainDb(dir.Sub("plain"));
  ASSERT_NE(plain, nullptr);
  std::vector<std::string> paths = {"/", "/a", "/a/b"};
  for (int i = 0; i < 10; ++i) {
    paths.push_back(absl::StrCat("/a/n", i));
    paths.push_back(absl::StrCat("/a/b/n", i));
  }
  std::mt19937 rng(17);
  size_t applied = 0;
  auto sync = [&] {
    for (; applied < h.txns().size(); ++applied) {
      ASSERT_TRUE(plain->Apply({h.txns()[applied]}, nullptr).ok());
    }
  };
  h.Run(Create("/a"));
  h.Run(Create("/a/b"));
  RequestContext session;
  session.session_id = 0x77;
  h.Run(CreateSessionRequest{30000, "pw"}, session);
  for (int step = 0; step < 800; ++step) {
    const std::string& path = paths[3 + rng() % (paths.size() - 3)];
    const std::string data = absl::StrCat("d", step);
    switch (rng() % 8) {
      case 0:
        h.Run(Create(path, data));
        break;
      case 1:
        h.Run(SetDataRequest{path, data, -1});
        break;
      case 2: {
        auto n = h.db().GetZnode(path);
        h.Run(SetDataRequest{path, data, n.ok() ? n->version : 0});
        break;
      }
      case 3:
        h.Run(DeleteRequest{path});
        break;
      case 4: {
        SetAclRequest r;
        r.path = path;
        r.acl = rng() % 2 ? OpenAclUnsafe()
                          : AclVector{MakeAcl(perms::kAll, "world", "anyone"),
                                      MakeAcl(perms::kRead, "ip", "10.0.0.1")};
        h.Run(r);
        break;
      }
      case 5: {
        MultiRequest m;
        m.ops.push_back(Create(path + "x", data));
        m.ops.push_back(SetDataRequest{path, data, -1});
        m.ops.push_back(DeleteRequest{path + "x"});
        h.Run(m);
        break;
      }
      case 6:
        h.Run(Create(path, data, kEphemeral), session);
        break;
      default:
        if (rng() % 4 == 0) {  // deletes its ephemerals in one txn
          h.Run(CloseSessionRequest{}, session);
          h.Run(CreateSessionRequest{30000, "pw"}, session);
        }
        break;
    }
    sync();
    for (const std::string& p : paths) {
      ASSERT_EQ(Read(h.db(), p), Read(*plain, p)) << p << " step " << step;
    }
  }
  const auto st = h.db().znode_cache_stats();
  EXPECT_GT(st.hits, 1000u);  // the znodes came from the cache
  EXPECT_EQ(plain->znode_cache_stats().hits, 0u);
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
    EXPECT_EQ(Read(h.db(), path), Read(*plain, path)) << path;
    EXPECT_EQ(Read(h.db(), path), Read(*plain, path)) << path;
  }
  EXPECT_GT(h.db().znode_cache_stats().hits, 0u);
}

}  // namespace
}  // namespace rockeeper::engine
