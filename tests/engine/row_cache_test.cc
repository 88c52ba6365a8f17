// StateDb with RocksDB's row cache (StateDbOptions::row_cache_bytes): after
// any sequence of applied txns, flushes and compactions, a get returns what a
// DB without the cache returns. The row cache keys records by SST file, and
// znodes carry merge operands (child counts, cversion, pzxid), so a get may
// combine a memtable merge with a cached SST record: the case to check.
#include <sys/resource.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using testing::Create;
using testing::EngineHarness;
using testing::TempDir;

std::unique_ptr<StateDb> OpenPlainDb(const std::string& path) {
  StateDbOptions o;
  o.path = path;
  o.block_cache_bytes = 8 << 20;
  o.write_buffer_bytes = 4 << 20;
  o.children_cache_bytes = 0;
  o.row_cache_bytes = 0;
  auto db = StateDb::Open(o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

// The fields a client can see, as one comparable string ("-" if absent).
std::string Describe(StateDb& db, absl::string_view path) {
  auto n = db.GetZnode(path);
  if (!n.ok()) return absl::StrCat("-", n.status().code());
  return absl::StrCat(n->czxid, ",", n->mzxid, ",", n->pzxid, ",", n->version,
                      ",", n->cversion, ",", n->aversion, ",",
                      n->ephemeral_owner, ",", n->num_children, ",", n->acl_id,
                      ",", n->data_null, ",", n->data);
}

TEST(StateDbRowCacheTest, GetsMatchADbWithoutTheCacheAcrossFlushes) {
  TempDir dir;
  // Row cache on, znode cache off: every get reaches RocksDB.
  EngineHarness h(dir.Sub("cached"), {}, 32u << 20, 8u << 20, 0);
  std::unique_ptr<StateDb> plain = OpenPlainDb(dir.Sub("plain"));
  ASSERT_NE(plain, nullptr);
  std::vector<std::string> paths = {"/a", "/a/b", "/c"};
  for (int i = 0; i < 10; ++i) {
    paths.push_back(absl::StrCat("/a/n", i));
    paths.push_back(absl::StrCat("/c/n", i));
    paths.push_back(absl::StrCat("/a/b/n", i));
  }
  h.Run(Create("/a"));
  h.Run(Create("/a/b"));
  h.Run(Create("/c"));
  std::mt19937 rng(11);
  size_t applied = 0;
  int flushes = 0;
  for (int step = 0; step < 500; ++step) {
    const std::string& path = paths[3 + rng() % (paths.size() - 3)];
    switch (rng() % 5) {
      case 0:
      case 1:
        h.Run(Create(path, absl::StrCat("v", step)));
        break;
      case 2:
        h.Run(SetDataRequest{path, absl::StrCat("s", step)});
        break;
      case 3:
        h.Run(DeleteRequest{path});
        break;
      default: {
        MultiRequest m;
        m.ops.push_back(SetDataRequest{path, "m"});
        m.ops.push_back(Create(path + "x"));
        h.Run(m);
        break;
      }
    }
    for (; applied < h.txns().size(); ++applied) {
      ASSERT_TRUE(plain->Apply({h.txns()[applied]}, nullptr).ok());
    }
    // Flush often, so most gets go to SST files (the row cache's domain)
    // while later merges and puts land in a fresh memtable above them.
    if (step % 20 == 19) {
      ASSERT_TRUE(h.db().Flush().ok());
      ++flushes;
    }
    for (const std::string& p : paths) {
      ASSERT_EQ(Describe(h.db(), p), Describe(*plain, p))
          << p << " step " << step;
      ASSERT_EQ(Describe(h.db(), p + "x"), Describe(*plain, p + "x"))
          << p << "x step " << step;
    }
  }
  EXPECT_EQ(flushes, 25);
  EXPECT_GT(h.db().row_cache_usage_bytes(), 0u);  // records were cached
  EXPECT_EQ(plain->row_cache_usage_bytes(), 0u);
  // Reopening starts with an empty row cache and the same answers.
  h.Reopen();
  for (const std::string& p : paths) {
    EXPECT_EQ(Describe(h.db(), p), Describe(*plain, p)) << p;
  }
}

// Not the row cache, but the same plain DB: the bound on open SST files
// follows the soft RLIMIT_NOFILE, and a DB opened under a low limit works.
TEST(StateDbOpenFilesTest, BoundFollowsTheSoftFdLimit) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 1024) {
    GTEST_SKIP() << "hard limit on open files " << saved.rlim_max;
  }
  EXPECT_EQ(MaxOpenSstFiles(300), 300);
  EXPECT_EQ(MaxOpenSstFiles(-1), -1);
  rlimit low = saved;
  low.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const int at_1024 = MaxOpenSstFiles(0);
  low.rlim_cur = 100;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  const int at_100 = MaxOpenSstFiles(0);
  TempDir dir;
  std::unique_ptr<StateDb> db = OpenPlainDb(dir.path());
  ASSERT_NE(db, nullptr);
  EXPECT_TRUE(db->GetZnode("/").ok());
  db.reset();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(at_1024, 512);
  EXPECT_EQ(at_100, 64);
  if (saved.rlim_max == RLIM_INFINITY ||
      saved.rlim_max >= kAllSstFilesOpenFdLimit) {
    low.rlim_cur = kAllSstFilesOpenFdLimit;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    EXPECT_EQ(MaxOpenSstFiles(0), -1);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  }
}

}  // namespace
}  // namespace rockeeper::engine
