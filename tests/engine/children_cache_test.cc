// ChildrenCache on its own, and StateDb::ListChildren with the cache in
// front of the prefix scan: after any sequence of applied txns, and with
// readers racing the apply thread, a cached list equals a scan of the DB.
// The differential test below also checks the znode cache
// (tests/engine/znode_cache_test.cc has the rest of its tests).
#include "engine/children_cache.h"

#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/keys.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using Kind = ChildrenChange::Kind;
using Names = std::vector<std::string>;

Names Listed(ChildrenCache& cache, absl::string_view parent) {
  Names names;
  EXPECT_TRUE(cache.Lookup(parent, &names)) << parent;
  return names;
}

TEST(ChildrenCacheTest, MissFillHit) {
  ChildrenCache cache(1 << 20);
  Names names;
  EXPECT_FALSE(cache.Lookup("/a", &names));
  cache.Fill("/a", cache.epoch(), Names{"x", "y"});
  names = {"kept"};
  ASSERT_TRUE(cache.Lookup("/a", &names));
  EXPECT_EQ(names, (Names{"kept", "x", "y"}));  // appended
  const auto st = cache.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.entries, 1u);
  EXPECT_GT(st.bytes, 0u);
}

TEST(ChildrenCacheTest, FillAfterAnApplyIsDropped) {
  ChildrenCache cache(1 << 20);
  const uint64_t before = cache.epoch();
  cache.ApplyChanges({{"/a", "z", Kind::kAdd}});  // not cached: only the epoch
  cache.Fill("/a", before, Names{"x"});           // scan may predate the write
  Names names;
  EXPECT_FALSE(cache.Lookup("/a", &names));
  cache.Fill("/a", cache.epoch(), Names{"x", "z"});
  EXPECT_EQ(Listed(cache, "/a"), (Names{"x", "z"}));
}

TEST(ChildrenCacheTest, EditsAreSortedAndIdempotent) {
  ChildrenCache cache(1 << 20);
  cache.Fill("/p", cache.epoch(), Names{"b", "d"});
  cache.ApplyChanges({{"/p", "c", Kind::kAdd},
                      {"/p", "a", Kind::kAdd},
                      {"/p", "e", Kind::kAdd},
                      {"/p", "d", Kind::kAdd},  // already there
                      {"/p", "b", Kind::kRemove},
                      {"/p", "zz", Kind::kRemove},  // not there
                      {"/q", "x", Kind::kAdd}});    // not cached
  EXPECT_EQ(Listed(cache, "/p"), (Names{"a", "c", "d", "e"}));
  Names names;
  EXPECT_FALSE(cache.Lookup("/q", &names));
  // Byte order, as the DB's keys sort (bytes >= 0x80 after ASCII).
  cache.ApplyChanges({{"/p", "\xC3\xA9", Kind::kAdd}, {"/p", "B", Kind::kAdd}});
  EXPECT_EQ(Listed(cache, "/p"), (Names{"B", "a", "c", "d", "e", "\xC3\xA9"}));
  cache.ApplyChanges({{"/p", {}, Kind::kDropList}});
  EXPECT_FALSE(cache.Lookup("/p", &names));
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST(ChildrenCacheTest, StaysWithinItsBoundAndKeepsWhatIsRead) {
  constexpr size_t kMax = 64 << 10;
  ChildrenCache cache(kMax);
  Names ten;
  for (int i = 0; i < 10; ++i) ten.push_back(absl::StrCat("child-", i));
  cache.Fill("/hot", cache.epoch(), ten);
  for (int i = 0; i < 2000; ++i) {
    cache.Fill(absl::StrCat("/cold", i), cache.epoch(), ten);
    Names names;
    ASSERT_TRUE(cache.Lookup("/hot", &names)) << i;  // read: second chance
    ASSERT_LE(cache.stats().bytes, kMax);
  }
  const auto st = cache.stats();
  EXPECT_LT(st.entries, 2001u);
  EXPECT_GT(st.entries, 10u);
  // Growth by edits is bounded too.
  for (int i = 0; i < 5000; ++i) {
    cache.ApplyChanges({{"/hot", absl::StrCat("new-child-", i), Kind::kAdd}});
    ASSERT_LE(cache.stats().bytes, kMax);
  }
}

TEST(ChildrenCacheTest, OversizedListsAndZeroBoundAreNotCached) {
  ChildrenCache small(4096);
  Names many(200, std::string(40, 'x'));
  small.Fill("/big", small.epoch(), many);
  Names names;
  EXPECT_FALSE(small.Lookup("/big", &names));
  ChildrenCache off(0);
  off.Fill("/a", off.epoch(), Names{"x"});
  EXPECT_FALSE(off.Lookup("/a", &names));
}

TEST(ChildrenCacheTest, PackNamesIsTheWireEncodingOfAStringVector) {
  EXPECT_EQ(PackNames({}), std::string("\0\0\0\0", 4));
  // A count, then each name as length + bytes (an empty one too).
  const std::string three = PackNames({"ab", "", std::string(300, 'x')});
  EXPECT_EQ(three.substr(0, 4), std::string("\0\0\0\x03", 4));
  EXPECT_EQ(three.substr(4, 6), std::string("\0\0\0\x02"
                                            "ab",
                                            6));
  EXPECT_EQ(three.substr(10, 4), std::string("\0\0\0\0", 4));
  EXPECT_EQ(three.substr(14, 4), std::string("\0\0\x01\x2c", 4));
  EXPECT_EQ(three.substr(18), std::string(300, 'x'));
  EXPECT_EQ(three.size(), 18u + 300u);
}

TEST(ChildrenCacheTest, PackedListIsSharedUntilTheListChanges) {
  ChildrenCache cache(1 << 20);
  PackedNames packed;
  EXPECT_FALSE(cache.LookupPacked("/p", &packed));
  cache.Fill("/p", cache.epoch(), Names{"b", "d"});
  const size_t unpacked_bytes = cache.stats().bytes;
  ASSERT_TRUE(cache.LookupPacked("/p", &packed));
  ASSERT_NE(packed, nullptr);
  EXPECT_EQ(*packed, PackNames({"b", "d"}));
  EXPECT_GT(cache.stats().bytes, unpacked_bytes);  // the packed form counts
  PackedNames again;
  ASSERT_TRUE(cache.LookupPacked("/p", &again));
  EXPECT_EQ(again.get(), packed.get());  // shared, not packed twice
  // Edits that change nothing keep it.
  cache.ApplyChanges({{"/p", "b", Kind::kAdd},
                      {"/p", "zz", Kind::kRemove},
                      {"/q", "x", Kind::kAdd}});
  ASSERT_TRUE(cache.LookupPacked("/p", &again));
  EXPECT_EQ(again.get(), packed.get());
  // A change drops it; a reader's copy stays as it was.
  cache.ApplyChanges({{"/p", "c", Kind::kAdd}, {"/p", "b", Kind::kRemove}});
  EXPECT_EQ(cache.stats().bytes, unpacked_bytes);  // same-sized names
  ASSERT_TRUE(cache.LookupPacked("/p", &again));
  EXPECT_NE(again.get(), packed.get());
  EXPECT_EQ(*again, PackNames({"c", "d"}));
  EXPECT_EQ(*packed, PackNames({"b", "d"}));
  EXPECT_EQ(Listed(cache, "/p"), (Names{"c", "d"}));
  cache.ApplyChanges({{"/p", {}, Kind::kDropList}});
  EXPECT_FALSE(cache.LookupPacked("/p", &again));
  EXPECT_EQ(cache.stats().bytes, 0u);
}

TEST(ChildrenCacheTest, PackedListsStayWithinTheBound) {
  constexpr size_t kMax = 64 << 10;
  ChildrenCache cache(kMax);
  Names ten;
  for (int i = 0; i < 10; ++i) ten.push_back(absl::StrCat("child-", i));
  for (int i = 0; i < 2000; ++i) {
    const std::string parent = absl::StrCat("/p", i);
    cache.Fill(parent, cache.epoch(), ten);
    PackedNames packed;
    ASSERT_TRUE(cache.LookupPacked(parent, &packed)) << i;
    ASSERT_EQ(*packed, PackNames(ten));
    ASSERT_LE(cache.stats().bytes, kMax);
  }
  EXPECT_GT(cache.stats().entries, 10u);
}

// --- Through StateDb ------------------------------------------------------

using testing::Create;
using testing::EngineHarness;
using testing::ReadZnode;
using testing::TempDir;

std::unique_ptr<StateDb> OpenDb(const std::string& path, size_t cache_bytes) {
  StateDbOptions o;
  o.path = path;
  o.block_cache_bytes = 8 << 20;
  o.write_buffer_bytes = 4 << 20;
  o.children_cache_bytes = cache_bytes;
  o.znode_cache_bytes = cache_bytes;
  auto db = StateDb::Open(o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

Names List(StateDb& db, absl::string_view parent) {
  Names names;
  EXPECT_TRUE(db.ListChildren(parent, &names).ok());
  return names;
}

std::string ListPacked(StateDb& db, absl::string_view parent) {
  PackedNames packed;
  EXPECT_TRUE(db.ListChildrenPacked(parent, &packed).ok());
  return packed != nullptr ? *packed : "null";
}

const std::vector<std::string> kParents = {"/", "/a", "/a/b", "/c"};

// Creates the parents and a session on `h`; the session for RandomStep.
RequestContext SetUpTree(EngineHarness& h) {
  h.Run(Create("/a"));
  h.Run(Create("/a/b"));
  h.Run(Create("/c"));
  RequestContext session;
  session.session_id = 0x55;
  h.Run(CreateSessionRequest{30000, "pw"}, session);
  return session;
}

// One random write on `h`: a create, delete, multi, set (with or without a
// version), ACL change or session close over kParents' children.
void RandomStep(EngineHarness& h, std::mt19937& rng,
                const RequestContext& session, int step) {
  const std::string& parent = kParents[rng() % kParents.size()];
  const std::string child =
      absl::StrCat(parent == "/" ? "" : parent, "/n", rng() % 12);
  switch (rng() % 9) {
    case 0:
    case 1:
      h.Run(Create(child, absl::StrCat("c", step)));
      break;
    case 5:
      if (rng() % 4 == 0) {  // more data than Apply writes whole per patch
        h.Run(SetDataRequest{parent, std::string(1500 + step % 7, 'p'), -1});
      } else {
        h.Run(SetDataRequest{child, absl::StrCat("s", step), -1});
      }
      break;
    case 6: {
      auto n = h.db().GetZnode(child);
      h.Run(SetDataRequest{child, absl::StrCat("v", step),
                           n.ok() ? n->version : 0});
      break;
    }
    case 7: {
      SetAclRequest r;
      r.path = rng() % 4 ? child : parent;
      r.acl = rng() % 2 ? OpenAclUnsafe()
                        : AclVector{MakeAcl(perms::kAll, "world", "anyone"),
                                    MakeAcl(perms::kRead, "ip", "10.0.0.1")};
      h.Run(r);
      break;
    }
    case 2:
      h.Run(DeleteRequest{child});
      break;
    case 3: {
      MultiRequest m;
      m.ops.push_back(Create(child + "x"));
      m.ops.push_back(DeleteRequest{child});
      h.Run(m);
      break;
    }
    case 4:
      h.Run(Create(child + "e", "", kEphemeral), session);
      break;
    default:
      if (rng() % 8 == 0) {  // deletes its ephemerals in one txn
        h.Run(CloseSessionRequest{}, session);
        h.Run(CreateSessionRequest{30000, "pw"}, session);
      }
      break;
  }
}

// Every path RandomStep may touch has the same znode (and every parent the
// same children) in both DBs.
void ExpectSameTree(StateDb& a, StateDb& b, const std::string& where) {
  for (const std::string& p : kParents) {
    ASSERT_EQ(List(a, p), List(b, p)) << p << " " << where;
    ASSERT_EQ(ListPacked(a, p), PackNames(List(b, p))) << p << " " << where;
    ASSERT_EQ(ReadZnode(a, p), ReadZnode(b, p)) << p << " " << where;
    for (int i = 0; i < 12; ++i) {
      const std::string c = absl::StrCat(p == "/" ? "" : p, "/n", i);
      for (const std::string& q : {c, c + "x", c + "e"}) {
        ASSERT_EQ(ReadZnode(a, q), ReadZnode(b, q)) << q << " " << where;
      }
    }
  }
}

// Random creates, deletes, multis, sets (with and without a version), ACL
// changes and session closes over a few parents, reading between them; the
// cached server's lists and znodes (children cache, znode cache) must equal
// those of a second DB without caches that applied the same txns.
TEST(StateDbChildrenCacheTest, ListsAndZnodesMatchAnUncachedDbAfterEveryTxn) {
  TempDir dir;
  EngineHarness h(dir.Sub("cached"));
  std::unique_ptr<StateDb> plain = OpenDb(dir.Sub("plain"), 0);
  ASSERT_NE(plain, nullptr);
  std::mt19937 rng(7);
  size_t applied = 0;
  const RequestContext session = SetUpTree(h);
  for (int step = 0; step < 600; ++step) {
    RandomStep(h, rng, session, step);
    for (; applied < h.txns().size(); ++applied) {
      ASSERT_TRUE(plain->Apply({h.txns()[applied]}, nullptr).ok());
    }
    ExpectSameTree(h.db(), *plain, absl::StrCat("step ", step));
  }
  const auto st = h.db().children_cache_stats();
  EXPECT_GT(st.hits, 1000u);  // the lists came from the cache
  EXPECT_EQ(plain->children_cache_stats().hits, 0u);
  EXPECT_GT(h.db().znode_cache_stats().hits, 1000u);
  EXPECT_EQ(plain->znode_cache_stats().hits, 0u);
}

// With the znode cache on, Apply writes a patch of a znode it knows (a
// parent's counts, a setACL) as a Put of the whole patched record, and
// tracks what each batch wrote so far. The same random txns applied in
// batches of 1 to 12 by a cached DB and one at a time by a DB without
// caches (merge operands only) must leave the same records on disk: the
// cached DB is compared again after a reopen, with its caches empty.
TEST(StateDbChildrenCacheTest, BatchedAppliesWriteWhatMergesWould) {
  TempDir dir;
  EngineHarness h(dir.Sub("source"));
  std::mt19937 rng(11);
  const RequestContext session = SetUpTree(h);
  for (int step = 0; step < 800; ++step) RandomStep(h, rng, session, step);
  std::unique_ptr<StateDb> batched = OpenDb(dir.Sub("batched"), 1 << 20);
  std::unique_ptr<StateDb> plain = OpenDb(dir.Sub("plain"), 0);
  ASSERT_NE(batched, nullptr);
  ASSERT_NE(plain, nullptr);
  const std::vector<Txn>& txns = h.txns();
  for (size_t i = 0; i < txns.size();) {
    const size_t n = std::min<size_t>(1 + rng() % 12, txns.size() - i);
    ASSERT_TRUE(batched->Apply(absl::MakeConstSpan(&txns[i], n), nullptr).ok());
    for (size_t j = i; j < i + n; ++j) {
      ASSERT_TRUE(plain->Apply({txns[j]}, nullptr).ok());
    }
    i += n;
    ExpectSameTree(*batched, *plain, absl::StrCat("after txn ", i));
  }
  batched.reset();
  batched = OpenDb(dir.Sub("batched"), 0);
  ASSERT_NE(batched, nullptr);
  ExpectSameTree(*batched, *plain, "after the reopen");
}

// One batch that patches known znodes and then writes them otherwise:
// deletes a patched parent, sets a patched parent's data (small, then more
// than Apply keeps whole), creates again what it deleted. The patches of a
// known znode wait in the batch for one Put; every other write of the path
// must land after them, as one-txn applies to a DB without caches do.
TEST(StateDbChildrenCacheTest, PendingPatchPutsPrecedeOtherWritesOfThePath) {
  TempDir dir;
  EngineHarness h(dir.Sub("source"));
  h.Run(Create("/q"));
  h.Run(Create("/q/r"));
  h.Run(Create("/q/r/s"));
  h.Run(Create("/w"));
  const size_t setup = h.txns().size();
  h.Run(Create("/q/r/t"));                   // patches /q/r
  h.Run(DeleteRequest{"/q/r/t"});            // and again
  h.Run(DeleteRequest{"/q/r/s"});            // and again
  h.Run(DeleteRequest{"/q/r"});              // patched, then deleted
  h.Run(Create("/q/r", "again"));            // patches /q
  h.Run(Create("/q/r/u"));                   // patches the new /q/r
  h.Run(SetDataRequest{"/q", "small", -1});  // patched, then set
  h.Run(Create("/q/v"));                     // patches /q again
  h.Run(SetDataRequest{"/q", std::string(1500, 'b'), -1});  // too big to keep
  h.Run(Create("/q/x"));  // a merge from here on
  h.Run(Create("/w/y"));  // patches /w
  h.Run(SetDataRequest{"/w", "set", -1});
  std::unique_ptr<StateDb> batched = OpenDb(dir.Sub("batched"), 1 << 20);
  std::unique_ptr<StateDb> plain = OpenDb(dir.Sub("plain"), 0);
  ASSERT_NE(batched, nullptr);
  ASSERT_NE(plain, nullptr);
  const std::vector<Txn>& txns = h.txns();
  for (size_t j = 0; j < txns.size(); ++j) {
    ASSERT_TRUE(plain->Apply({txns[j]}, nullptr).ok());
    if (j < setup) {
      ASSERT_TRUE(batched->Apply({txns[j]}, nullptr).ok());
    }
  }
  ASSERT_TRUE(
      batched
          ->Apply(absl::MakeConstSpan(&txns[setup], txns.size() - setup),
                  nullptr)
          .ok());
  auto expect_same = [&](const std::string& where) {
    for (const char* p : {"/", "/q", "/q/r", "/q/r/s", "/q/r/t", "/q/r/u",
                          "/q/v", "/q/x", "/w", "/w/y"}) {
      EXPECT_EQ(ReadZnode(*batched, p), ReadZnode(*plain, p)) << p << where;
    }
    for (const char* p : {"/", "/q", "/q/r", "/w"}) {
      EXPECT_EQ(List(*batched, p), List(*plain, p)) << p << where;
    }
  };
  expect_same(" after the batch");
  // The script did what it says.
  EXPECT_FALSE(plain->GetZnode("/q/r/s").ok());
  auto again = plain->GetZnode("/q/r");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->data, "again");
  EXPECT_EQ(List(*plain, "/q"), (Names{"r", "v", "x"}));
  batched.reset();
  batched = OpenDb(dir.Sub("batched"), 0);
  ASSERT_NE(batched, nullptr);
  expect_same(" after the reopen");
}

// Readers that do not hold the visibility mutex (like Prep) list while the
// apply thread creates and deletes children. The cache holds only about
// four of the eight lists, so lists are evicted and filled again all the
// time, and fills race with writes. Once the writer stops, every list must
// equal the DB's: no fill from a scan older than a write may survive.
TEST(StateDbChildrenCacheTest, RacingFillsNeverLeaveAStaleList) {
  TempDir dir;
  EngineHarness h(dir.Sub("db"), PrepOptions{}, 3200);
  constexpr int kParents = 8;
  for (int p = 0; p < kParents; ++p) h.Run(Create(absl::StrCat("/p", p)));
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      for (int i = 0; i < 2000000 && !stop.load(); ++i) {
        const std::string parent = absl::StrCat("/p", (i + r) % kParents);
        Names names;
        PackedNames packed;
        ASSERT_TRUE(i % 2 == 0
                        ? h.db().ListChildren(parent, &names).ok()
                        : h.db().ListChildrenPacked(parent, &packed).ok());
      }
    });
  }
  std::mt19937 rng(11);
  for (int step = 0; step < 4000; ++step) {
    const std::string child =
        absl::StrCat("/p", rng() % kParents, "/n", rng() % 20);
    if (rng() % 2 == 0) {
      h.Run(Create(child));
    } else {
      h.Run(DeleteRequest{child});
    }
  }
  stop = true;
  for (auto& t : readers) t.join();
  std::unique_ptr<StateDb> plain = OpenDb(dir.Sub("plain"), 0);
  for (const Txn& txn : h.txns()) {
    ASSERT_TRUE(plain->Apply({txn}, nullptr).ok());
  }
  for (int p = 0; p < kParents; ++p) {
    const std::string parent = absl::StrCat("/p", p);
    // Twice: the first read may fill, the second is then a hit.
    EXPECT_EQ(List(h.db(), parent), List(*plain, parent)) << parent;
    EXPECT_EQ(List(h.db(), parent), List(*plain, parent)) << parent;
    EXPECT_EQ(ListPacked(h.db(), parent), PackNames(List(*plain, parent)))
        << parent;
  }
  EXPECT_GT(h.db().children_cache_stats().hits, 0u);
}

}  // namespace
}  // namespace rockeeper::engine
