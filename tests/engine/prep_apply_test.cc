// Unit tests of Prep (every error path, in ZooKeeper's order) and of Apply's
// effect on every stat field.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/prep.h"
#include "engine/quota.h"
#include "engine/state_db.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using testing::Create;
using ::testing::ElementsAre;
using testing::EngineHarness;
using testing::TempDir;

class PrepApplyTest : public ::testing::Test {
 protected:
  PrepApplyTest() : h_(dir_.Sub("state")) {}

  RequestContext SessionCtx(int64_t id) {
    RequestContext ctx;
    ctx.session_id = id;
    if (h_.Err(CreateSessionRequest{30000, "pw"}, ctx) != ZkError::kOk &&
        !h_.db().GetSession(id).ok()) {
      ADD_FAILURE() << "could not create session " << id;
    }
    return ctx;
  }

  TempDir dir_;
  EngineHarness h_;
};

TEST_F(PrepApplyTest, FreshTreeHasBuiltins) {
  EXPECT_TRUE(h_.Exists("/"));
  EXPECT_TRUE(h_.Exists("/zookeeper"));
  EXPECT_TRUE(h_.Exists("/zookeeper/quota"));
  EXPECT_TRUE(h_.Exists("/zookeeper/config"));
  // Root: persisted cversion 0 with one child shows -1 (as ZooKeeper).
  EXPECT_EQ(ClientStat(h_.Node("/")).cversion(), -1);
  EXPECT_EQ(*h_.db().CountDescendants("/"), 3);
  EXPECT_EQ(h_.Node("/zookeeper/config").aversion, -1);
  auto acl = h_.db().GetAcl(h_.Node("/zookeeper/config").acl_id);
  ASSERT_TRUE(acl.ok());
  ASSERT_EQ(acl->size(), 1u);
  EXPECT_EQ((*acl)[0].perms(), perms::kRead);
}

TEST_F(PrepApplyTest, CreateSetsEveryStat) {
  ASSERT_EQ(h_.Err(Create("/a", "xyz")), ZkError::kOk);
  const int64_t zxid = h_.next_zxid() - 1;
  Znode a = h_.Node("/a");
  EXPECT_EQ(a.czxid, zxid);
  EXPECT_EQ(a.mzxid, zxid);
  EXPECT_EQ(a.pzxid, zxid);
  EXPECT_EQ(a.ctime_ms, 1000 + zxid);
  EXPECT_EQ(a.mtime_ms, a.ctime_ms);
  EXPECT_EQ(a.version, 0);
  EXPECT_EQ(a.cversion, 0);
  EXPECT_EQ(a.aversion, 0);
  EXPECT_EQ(a.ephemeral_owner, 0);
  EXPECT_EQ(a.data, "xyz");
  EXPECT_EQ(ClientStat(a).data_length(), 3);
  Znode root = h_.Node("/");
  EXPECT_EQ(root.num_children, 2);
  EXPECT_EQ(root.cversion, 1);
  EXPECT_EQ(root.pzxid, zxid);
  EXPECT_EQ(root.data, "");  // patch left the rest alone
  EXPECT_EQ(h_.db().last_applied_zxid(), zxid);
  EXPECT_THAT(
      h_.triggers,
      ElementsAre(
          ::testing::Field(&WatchTrigger::type, WatchEventType::kNodeCreated),
          ::testing::Field(&WatchTrigger::type,
                           WatchEventType::kNodeChildrenChanged)));
}

TEST_F(PrepApplyTest, CreateErrorsInZooKeeperOrder) {
  ASSERT_EQ(h_.Err(Create("/p")), ZkError::kOk);
  EXPECT_EQ(h_.Err(Create("/p")), ZkError::kNodeExists);
  EXPECT_EQ(h_.Err(Create("/")), ZkError::kNodeExists);
  EXPECT_EQ(h_.Err(Create("/missing/child")), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(Create("noslash")), ZkError::kBadArguments);
  EXPECT_EQ(h_.Err(Create(std::string("/a\0b", 4))), ZkError::kBadArguments);
  // The parent "/p/" does not exist: ZooKeeper checks it before the path.
  EXPECT_EQ(h_.Err(Create("/p//x")), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(Create("/p/./x")), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(Create("/p/.")), ZkError::kBadArguments);
  // Parent checked before the full path: "/q/" with no /q is NONODE.
  EXPECT_EQ(h_.Err(Create("/q/")), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(Create("/p/")), ZkError::kBadArguments);
  EXPECT_EQ(h_.Err(Create("/p/x", "", 7)), ZkError::kBadArguments);
  EXPECT_EQ(h_.Err(Create("/p/x", "", -1)), ZkError::kBadArguments);
  CreateRequest bad_acl = Create("/p/x");
  bad_acl.acl = {};
  EXPECT_EQ(h_.Err(bad_acl), ZkError::kInvalidAcl);
  bad_acl.acl = {MakeAcl(31, "world", "nobody")};
  EXPECT_EQ(h_.Err(bad_acl), ZkError::kInvalidAcl);
  bad_acl.acl = {MakeAcl(31, "auth", "")};
  EXPECT_EQ(h_.Err(bad_acl), ZkError::kInvalidAcl);
  // INVALIDACL is decided before NONODE.
  bad_acl.path = "/missing/x";
  EXPECT_EQ(h_.Err(bad_acl), ZkError::kInvalidAcl);
  // TTL without extended types: UNIMPLEMENTED first.
  CreateRequest ttl = Create("/p/t", "", kPersistentWithTtl);
  ttl.ttl_ms = 1000;
  EXPECT_EQ(h_.Err(ttl), ZkError::kUnimplemented);
  // A ttl on a non-TTL mode.
  CreateRequest plain_ttl = Create("/p/t");
  plain_ttl.ttl_ms = 5;
  EXPECT_EQ(h_.Err(plain_ttl), ZkError::kBadArguments);
  // Nothing above consumed a zxid or changed the parent.
  EXPECT_EQ(h_.Node("/p").cversion, 0);
  EXPECT_EQ(h_.txns().size(), 1u);
}

TEST_F(PrepApplyTest, CreateNoAuthOnParent) {
  CreateRequest locked = Create("/locked");
  locked.acl = {MakeAcl(perms::kRead, "world", "anyone")};
  ASSERT_EQ(h_.Err(locked), ZkError::kOk);
  EXPECT_EQ(h_.Err(Create("/locked/x")), ZkError::kNoAuth);
  // NONODE of the parent beats NOAUTH; NOAUTH beats NODEEXISTS.
  RequestContext super;
  super.auth_ids = {{"super", ""}};
  EXPECT_EQ(h_.Err(Create("/locked/x"), super), ZkError::kOk);
  EXPECT_EQ(h_.Err(Create("/locked/x")), ZkError::kNoAuth);
}

TEST_F(PrepApplyTest, SequentialNamesFromParentCversion) {
  ASSERT_EQ(h_.Err(Create("/q")), ZkError::kOk);
  auto r1 = h_.Run(Create("/q/n-", "", kPersistentSequential));
  ASSERT_EQ(r1.err, ZkError::kOk);
  EXPECT_EQ(r1.txn->create().path(), "/q/n-0000000000");
  ASSERT_EQ(h_.Err(Create("/q/other")), ZkError::kOk);
  ASSERT_EQ(h_.Err(DeleteRequest{"/q/other", -1}), ZkError::kOk);
  // Deletes do not lower the persisted cversion.
  auto r2 = h_.Run(Create("/q/", "", kPersistentSequential));
  ASSERT_EQ(r2.err, ZkError::kOk);
  EXPECT_EQ(r2.txn->create().path(), "/q/0000000002");
  Znode q = h_.Node("/q");
  EXPECT_EQ(q.cversion, 3);
  EXPECT_EQ(q.num_children, 2);
  EXPECT_EQ(ClientStat(q).cversion(), 4);  // 3 creates + 1 delete
}

TEST_F(PrepApplyTest, EphemeralsAndSessions) {
  CreateRequest eph = Create("/e", "", kEphemeral);
  EXPECT_EQ(h_.Err(eph), ZkError::kBadArguments);  // sessionless
  RequestContext ghost;
  ghost.session_id = 99;
  EXPECT_EQ(h_.Err(eph, ghost), ZkError::kSessionExpired);
  RequestContext s = SessionCtx(0x42);
  ASSERT_EQ(h_.Err(eph, s), ZkError::kOk);
  EXPECT_EQ(h_.Node("/e").ephemeral_owner, 0x42);
  EXPECT_EQ(ClientStat(h_.Node("/e")).ephemeral_owner(), 0x42);
  EXPECT_EQ(h_.Err(Create("/e/child")), ZkError::kNoChildrenForEphemerals);
  ASSERT_EQ(h_.Err(Create("/d")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/d/e2", "", kEphemeralSequential), s), ZkError::kOk);
  std::vector<std::string> paths;
  ASSERT_TRUE(h_.db().ListEphemerals(0x42, &paths).ok());
  EXPECT_THAT(paths, ElementsAre("/d/e20000000000", "/e"));
  // Creating the same session twice is refused.
  EXPECT_EQ(h_.Err(CreateSessionRequest{30000, "pw"}, s),
            ZkError::kBadArguments);

  h_.triggers.clear();
  auto close = h_.Run(CloseSessionRequest{}, s);
  ASSERT_EQ(close.err, ZkError::kOk);
  EXPECT_EQ(close.txn->close_session().deletes_size(), 2);
  EXPECT_FALSE(h_.Exists("/e"));
  EXPECT_FALSE(h_.Exists("/d/e20000000000"));
  EXPECT_EQ(h_.Node("/d").num_children, 0);
  paths.clear();
  ASSERT_TRUE(h_.db().ListEphemerals(0x42, &paths).ok());
  EXPECT_TRUE(paths.empty());
  EXPECT_FALSE(h_.db().GetSession(0x42).ok());
  EXPECT_EQ(h_.triggers.size(), 4u);  // 2 x (deleted + children changed)
  EXPECT_EQ(h_.Err(CloseSessionRequest{}, s), ZkError::kSessionExpired);
  EXPECT_EQ(h_.Err(eph, s), ZkError::kSessionExpired);
}

TEST_F(PrepApplyTest, ContainerAndTtl) {
  EngineHarness ext(dir_.Sub("ext"),
                    PrepOptions{.extended_types_enabled = true});
  ASSERT_EQ(ext.Err(Create("/c", "", kContainer)), ZkError::kOk);
  EXPECT_EQ(ext.Node("/c").ephemeral_owner, kContainerOwner);
  EXPECT_EQ(ClientStat(ext.Node("/c")).ephemeral_owner(), 0);
  ASSERT_EQ(ext.Err(Create("/c/kid")), ZkError::kOk);  // containers take kids
  CreateRequest ttl = Create("/t", "", kPersistentWithTtl);
  ttl.ttl_ms = 0;
  EXPECT_EQ(ext.Err(ttl), ZkError::kBadArguments);
  ttl.ttl_ms = int64_t{1} << 40;
  EXPECT_EQ(ext.Err(ttl), ZkError::kBadArguments);
  ttl.ttl_ms = 5000;
  ASSERT_EQ(ext.Err(ttl), ZkError::kOk);
  EXPECT_TRUE(IsTtlOwner(ext.Node("/t").ephemeral_owner));
  EXPECT_EQ(TtlOfOwner(ext.Node("/t").ephemeral_owner), 5000);
  EXPECT_EQ(ClientStat(ext.Node("/t")).ephemeral_owner(), 0);
  // Containers and TTL nodes are indexed for the reaper.
  std::vector<std::string> containers;
  ASSERT_TRUE(ext.db().ListContainers(&containers).ok());
  EXPECT_THAT(containers, ElementsAre("/c"));
  std::vector<std::pair<std::string, int64_t>> ttls;
  ASSERT_TRUE(ext.db().ListTtlNodes(&ttls).ok());
  ASSERT_EQ(ttls.size(), 1u);
  EXPECT_EQ(ttls[0], std::make_pair(std::string("/t"), int64_t{5000}));
  // deleteContainer: only childless containers/TTL nodes.
  EXPECT_EQ(ext.Err(DeleteContainerRequest{"/c"}), ZkError::kNotEmpty);
  ASSERT_EQ(ext.Err(Create("/plain")), ZkError::kOk);
  EXPECT_EQ(ext.Err(DeleteContainerRequest{"/plain"}), ZkError::kBadArguments);
  EXPECT_EQ(ext.Err(DeleteContainerRequest{"/nope"}), ZkError::kNoNode);
  ASSERT_EQ(ext.Err(DeleteRequest{"/c/kid", -1}), ZkError::kOk);
  EXPECT_EQ(ext.Err(DeleteContainerRequest{"/c"}), ZkError::kOk);
  EXPECT_EQ(ext.Err(DeleteContainerRequest{"/t"}), ZkError::kOk);
  EXPECT_FALSE(ext.Exists("/c"));
  containers.clear();
  ttls.clear();
  ASSERT_TRUE(ext.db().ListContainers(&containers).ok());
  ASSERT_TRUE(ext.db().ListTtlNodes(&ttls).ok());
  EXPECT_TRUE(containers.empty());
  EXPECT_TRUE(ttls.empty());
}

TEST_F(PrepApplyTest, DeleteErrorsAndEffects) {
  for (const char* p : {"/", "/zookeeper", "/zookeeper/quota",
                        "/zookeeper/config", "bad", "/a/"}) {
    EXPECT_EQ(h_.Err(DeleteRequest{p, -1}), ZkError::kBadArguments) << p;
  }
  EXPECT_EQ(h_.Err(DeleteRequest{"/no/such", -1}), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(DeleteRequest{"/nosuch", -1}), ZkError::kNoNode);
  ASSERT_EQ(h_.Err(Create("/a")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/a/b")), ZkError::kOk);
  EXPECT_EQ(h_.Err(DeleteRequest{"/a", 5}), ZkError::kBadVersion);
  EXPECT_EQ(h_.Err(DeleteRequest{"/a", 0}), ZkError::kNotEmpty);
  const int32_t cversion_before = h_.Node("/a").cversion;
  ASSERT_EQ(h_.Err(DeleteRequest{"/a/b", 0}), ZkError::kOk);
  const int64_t zxid = h_.next_zxid() - 1;
  Znode a = h_.Node("/a");
  EXPECT_EQ(a.num_children, 0);
  EXPECT_EQ(a.pzxid, zxid);
  EXPECT_EQ(a.cversion, cversion_before);  // deletes leave cversion alone
  EXPECT_LT(a.mzxid, zxid);
  // NOAUTH: no DELETE permission on the parent.
  CreateRequest locked = Create("/l");
  locked.acl = {MakeAcl(perms::kAll & ~perms::kDelete, "world", "anyone")};
  ASSERT_EQ(h_.Err(locked), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/l/x")), ZkError::kOk);
  EXPECT_EQ(h_.Err(DeleteRequest{"/l/x", -1}), ZkError::kNoAuth);
  // NOAUTH on the parent is decided before NONODE of the node.
  EXPECT_EQ(h_.Err(DeleteRequest{"/l/missing", -1}), ZkError::kNoAuth);
}

// setData carries the node's other fields (`rest`) when Prep knew the whole
// record, so Apply writes a record instead of a merge patch; not when the
// node's ACL id is assigned by a pending create or setACL. Both forms give
// the same state.
TEST_F(PrepApplyTest, SetDataCarriesRestOnlyWhenPrepKnowsTheRecord) {
  const AclVector writable = {MakeAcl(perms::kAll, "world", "anyone"),
                              MakeAcl(perms::kRead, "ip", "10.0.0.1")};
  CreateRequest r = Create("/r", "r0");
  r.acl = writable;
  ASSERT_EQ(h_.Err(r), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/r/kid")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/acl")), ZkError::kOk);
  const std::vector<Txn> setup = h_.txns();
  const Znode before = h_.Node("/r");
  ASSERT_NE(before.acl_id, kOpenAclId);

  // Prepared together, applied together: each sees the pending ones.
  std::vector<Txn> batch;
  int64_t zxid = h_.next_zxid();
  auto prepare = [&](const WriteRequest& req) -> Txn {
    auto out = h_.prep().Prepare({}, req, zxid, 5000 + zxid);
    EXPECT_TRUE(out.ok() && out->txn) << req.index();
    if (!out.ok() || !out->txn) return Txn();
    ++zxid;
    batch.push_back(*out->txn);
    return *out->txn;
  };
  Txn set_r = prepare(SetDataRequest{"/r", "r1", 0});
  ASSERT_TRUE(set_r.set_data().has_rest());
  const auto& rest = set_r.set_data().rest();
  EXPECT_EQ(rest.acl_id(), before.acl_id);
  EXPECT_EQ(rest.czxid(), before.czxid);
  EXPECT_EQ(rest.ctime_ms(), before.ctime_ms);
  EXPECT_EQ(rest.num_children(), 1);
  EXPECT_EQ(rest.cversion(), 1);
  EXPECT_FALSE(rest.has_data() || rest.has_version() || rest.has_mzxid());
  // A pending child create changes the parent's fields: the next set says so.
  prepare(Create("/r/kid2"));
  Txn set_r2 = prepare(SetDataRequest{"/r", "r2", 1});
  ASSERT_TRUE(set_r2.set_data().has_rest());
  EXPECT_EQ(set_r2.set_data().rest().num_children(), 2);
  EXPECT_EQ(set_r2.set_data().rest().pzxid(), zxid - 2);
  // Created or re-ACLed by a pending txn: Apply assigns the ACL id.
  prepare(Create("/p", "p0"));
  EXPECT_FALSE(prepare(SetDataRequest{"/p", "p1", -1}).set_data().has_rest());
  prepare(SetAclRequest{"/acl", writable, -1});
  EXPECT_FALSE(prepare(SetDataRequest{"/acl", "a", -1}).set_data().has_rest());
  // And a child created after the last set (a merge on top of the record).
  prepare(Create("/r/kid3"));
  ASSERT_TRUE(h_.db().Apply(batch, nullptr).ok());
  h_.prep().OnApplied(zxid - 1);

  const Znode after = h_.Node("/r");
  EXPECT_EQ(after.data, "r2");
  EXPECT_EQ(after.version, 2);
  EXPECT_EQ(after.num_children, 3);
  EXPECT_EQ(after.cversion, 3);
  EXPECT_EQ(after.pzxid, zxid - 1);
  EXPECT_EQ(after.acl_id, before.acl_id);
  EXPECT_EQ(after.czxid, before.czxid);
  EXPECT_EQ(h_.Node("/p").data, "p1");
  EXPECT_EQ(h_.Node("/acl").data, "a");
  // Once applied, a set of /p and /acl carries `rest` too.
  const size_t first_late = batch.size();
  EXPECT_TRUE(prepare(SetDataRequest{"/p", "p2", -1}).set_data().has_rest());
  EXPECT_TRUE(prepare(SetDataRequest{"/acl", "b", -1}).set_data().has_rest());
  ASSERT_TRUE(
      h_.db()
          .Apply(std::vector<Txn>(batch.begin() + first_late, batch.end()),
                 nullptr)
          .ok());
  h_.prep().OnApplied(zxid - 1);
  EXPECT_EQ(h_.Node("/acl").data, "b");

  // The same txns without `rest` (merge patches) give the same state.
  EngineHarness merged(dir_.Sub("merged"));
  std::vector<Txn> all = setup;
  all.insert(all.end(), batch.begin(), batch.end());
  for (Txn& t : all) {
    if (t.has_set_data()) t.mutable_set_data()->clear_rest();
  }
  ASSERT_TRUE(merged.db().Apply(all, nullptr).ok());
  auto d1 = h_.db().ComputeDigest();
  auto d2 = merged.db().ComputeDigest();
  ASSERT_TRUE(d1.ok() && d2.ok());
  EXPECT_EQ(*d1, *d2);
  EXPECT_EQ(merged.Node("/r").num_children, 3);
}

TEST_F(PrepApplyTest, SetDataErrorsAndEffects) {
  EXPECT_EQ(h_.Err(SetDataRequest{"bad", "", -1}), ZkError::kBadArguments);
  EXPECT_EQ(h_.Err(SetDataRequest{"/none", "", -1}), ZkError::kNoNode);
  ASSERT_EQ(h_.Err(Create("/s", "v0")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/s/kid")), ZkError::kOk);
  EXPECT_EQ(h_.Err(SetDataRequest{"/s", "v1", 3}), ZkError::kBadVersion);
  auto r = h_.Run(SetDataRequest{"/s", "value-1", 0});
  ASSERT_EQ(r.err, ZkError::kOk);
  const int64_t zxid = h_.next_zxid() - 1;
  Znode s = h_.Node("/s");
  EXPECT_EQ(s.data, "value-1");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.mzxid, zxid);
  EXPECT_EQ(s.mtime_ms, 1000 + zxid);
  EXPECT_LT(s.czxid, zxid);
  EXPECT_EQ(s.num_children, 1);  // untouched by the data patch
  EXPECT_LT(s.pzxid, zxid);
  // The txn carries the Stat a client gets back, equal to a fresh read.
  EXPECT_EQ(r.txn->set_data().stat().SerializeAsString(),
            ClientStat(s).SerializeAsString());
  ASSERT_EQ(h_.Err(SetDataRequest{"/s", "", -1}), ZkError::kOk);
  EXPECT_EQ(h_.Node("/s").version, 2);
  CreateRequest ro = Create("/ro");
  ro.acl = {MakeAcl(perms::kRead, "world", "anyone")};
  ASSERT_EQ(h_.Err(ro), ZkError::kOk);
  EXPECT_EQ(h_.Err(SetDataRequest{"/ro", "x", 99}), ZkError::kNoAuth);
  EXPECT_EQ(h_.Err(SetDataRequest{"/zookeeper/config", "x", -1}),
            ZkError::kNoAuth);
}

TEST_F(PrepApplyTest, NullDataIsKeptApartFromEmptyData) {
  // ZooKeeper distinguishes a null byte array from an empty one.
  CreateRequest null_create = Create("/nul");
  null_create.data_null = true;
  auto r = h_.Run(null_create);
  ASSERT_EQ(r.err, ZkError::kOk);
  EXPECT_TRUE(r.txn->create().data_null());
  EXPECT_TRUE(h_.Node("/nul").data_null);
  EXPECT_EQ(ClientStat(h_.Node("/nul")).data_length(), 0);
  ASSERT_EQ(h_.Err(Create("/empty", "")), ZkError::kOk);
  EXPECT_FALSE(h_.Node("/empty").data_null);
  // setData with bytes clears it (the patch says so explicitly); setData
  // with null sets it again.
  ASSERT_EQ(h_.Err(SetDataRequest{"/nul", "x", -1}), ZkError::kOk);
  EXPECT_FALSE(h_.Node("/nul").data_null);
  EXPECT_EQ(h_.Node("/nul").data, "x");
  SetDataRequest to_null{"/nul", "", -1};
  to_null.data_null = true;
  ASSERT_EQ(h_.Err(to_null), ZkError::kOk);
  EXPECT_TRUE(h_.Node("/nul").data_null);
  EXPECT_EQ(h_.Node("/nul").data, "");
  // Null with bytes is not null: the bytes win.
  CreateRequest both = Create("/both", "b");
  both.data_null = true;
  ASSERT_EQ(h_.Err(both), ZkError::kOk);
  EXPECT_FALSE(h_.Node("/both").data_null);
  EXPECT_EQ(h_.Node("/both").data, "b");
  // A multi carries it too.
  MultiRequest m;
  CreateRequest in_multi = Create("/nul/kid");
  in_multi.data_null = true;
  m.ops = {in_multi};
  ASSERT_EQ(h_.Err(m), ZkError::kOk);
  EXPECT_TRUE(h_.Node("/nul/kid").data_null);
  h_.Reopen();  // stored, not only in Prep's overlay
  EXPECT_TRUE(h_.Node("/nul").data_null);
  EXPECT_TRUE(h_.Node("/nul/kid").data_null);
  EXPECT_FALSE(h_.Node("/empty").data_null);
}

TEST_F(PrepApplyTest, VersionWrapsLikeJavaInt) {
  ASSERT_EQ(h_.Err(Create("/w")), ZkError::kOk);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h_.Err(SetDataRequest{"/w", "", -1}), ZkError::kOk);
  }
  EXPECT_EQ(h_.Node("/w").version, 3);
}

TEST_F(PrepApplyTest, SetAclErrorsAndEffects) {
  ASSERT_EQ(h_.Err(Create("/x", "d")), ZkError::kOk);
  EXPECT_EQ(h_.Err(SetAclRequest{"/x", {}, -1}), ZkError::kInvalidAcl);
  EXPECT_EQ(h_.Err(SetAclRequest{"/none", OpenAclUnsafe(), -1}),
            ZkError::kNoNode);
  EXPECT_EQ(h_.Err(SetAclRequest{"/none", {}, -1}), ZkError::kInvalidAcl);
  EXPECT_EQ(h_.Err(SetAclRequest{"/x", OpenAclUnsafe(), 1}),
            ZkError::kBadVersion);
  const Znode before = h_.Node("/x");
  const AclVector bob = {MakeAcl(perms::kAll, "digest", "bob:x")};
  ASSERT_EQ(h_.Err(SetAclRequest{"/x", bob, 0}), ZkError::kOk);
  Znode after = h_.Node("/x");
  EXPECT_EQ(after.aversion, 1);
  EXPECT_EQ(after.mzxid, before.mzxid);  // setACL does not touch mzxid
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(after.data, "d");
  auto acl = h_.db().GetAcl(after.acl_id);
  ASSERT_TRUE(acl.ok());
  ASSERT_EQ(acl->size(), 1u);
  EXPECT_EQ((*acl)[0].id(), "bob:x");
  // Now only bob may administer it.
  EXPECT_EQ(h_.Err(SetAclRequest{"/x", OpenAclUnsafe(), -1}), ZkError::kNoAuth);
  RequestContext as_bob;
  as_bob.auth_ids = {{"digest", "bob:x"}};
  EXPECT_EQ(h_.Err(SetAclRequest{"/x", OpenAclUnsafe(), -1}, as_bob),
            ZkError::kOk);
  // Identical ACL lists share one stored id.
  ASSERT_EQ(h_.Err(Create("/y")), ZkError::kOk);
  ASSERT_EQ(h_.Err(SetAclRequest{"/y", bob, -1}), ZkError::kOk);
  ASSERT_EQ(h_.Err(SetAclRequest{"/x", bob, -1}, as_bob), ZkError::kOk);
  EXPECT_EQ(h_.Node("/x").acl_id, h_.Node("/y").acl_id);
}

TEST_F(PrepApplyTest, CheckErrors) {
  ASSERT_EQ(h_.Err(Create("/c")), ZkError::kOk);
  EXPECT_EQ(h_.Err(CheckRequest{"/none", -1}), ZkError::kNoNode);
  EXPECT_EQ(h_.Err(CheckRequest{"/c", 1}), ZkError::kBadVersion);
  EXPECT_EQ(h_.Err(CheckRequest{"/c", 0}), ZkError::kOk);
  EXPECT_EQ(h_.Err(CheckRequest{"bad", 0}), ZkError::kBadArguments);
  CreateRequest secret = Create("/sec");
  secret.acl = {MakeAcl(perms::kAll, "digest", "bob:x")};
  ASSERT_EQ(h_.Err(secret), ZkError::kOk);
  EXPECT_EQ(h_.Err(CheckRequest{"/sec", 0}), ZkError::kNoAuth);
}

TEST_F(PrepApplyTest, MultiIsAllOrNothing) {
  ASSERT_EQ(h_.Err(Create("/m", "0")), ZkError::kOk);
  MultiRequest bad;
  bad.ops = {SetDataRequest{"/m", "1", -1}, Create("/m"),
             DeleteRequest{"/gone", -1}};
  auto r = h_.Run(bad);
  EXPECT_EQ(r.err, ZkError::kNodeExists);
  EXPECT_FALSE(r.txn.has_value());
  EXPECT_THAT(r.multi_errors, ElementsAre(ZkError::kOk, ZkError::kNodeExists,
                                          ZkError::kRuntimeInconsistency));
  EXPECT_EQ(h_.Node("/m").data, "0");
  EXPECT_EQ(h_.prep().pending_count(), 0u);

  // Ops see the effects of earlier ops of the same multi.
  MultiRequest good;
  good.ops = {Create("/m/a"),
              Create("/m/a/b", "x"),
              SetDataRequest{"/m/a/b", "y", 0},
              CheckRequest{"/m/a/b", 1},
              DeleteRequest{"/m/a/b", 1},
              Create("/m/s-", "", kPersistentSequential),
              Create("/m/s-", "", kPersistentSequential)};
  auto g = h_.Run(good);
  ASSERT_EQ(g.err, ZkError::kOk);
  ASSERT_TRUE(g.txn.has_value());
  EXPECT_EQ(g.txn->multi().ops(5).create().path(), "/m/s-0000000001");
  EXPECT_EQ(g.txn->multi().ops(6).create().path(), "/m/s-0000000002");
  EXPECT_TRUE(h_.Exists("/m/a"));
  EXPECT_FALSE(h_.Exists("/m/a/b"));
  EXPECT_EQ(h_.Node("/m").num_children, 3);
  EXPECT_EQ(h_.Node("/m/a").num_children, 0);
  EXPECT_EQ(h_.Node("/m/a").cversion, 1);
  // All sub-ops share one zxid.
  EXPECT_EQ(h_.Node("/m/a").czxid, h_.Node("/m/s-0000000002").czxid);
}

TEST_F(PrepApplyTest, PipelinedPrepSeesPendingChanges) {
  // Prepare three dependent txns before applying any: the overlay must make
  // each see its predecessors, and applying them later in order must work.
  RequestContext ctx;
  auto& prep = h_.prep();
  const int64_t z = h_.next_zxid();
  auto a = prep.Prepare(ctx, Create("/p"), z, 1);
  auto b =
      prep.Prepare(ctx, Create("/p/q", "", kPersistentSequential), z + 1, 2);
  auto c =
      prep.Prepare(ctx, Create("/p/q", "", kPersistentSequential), z + 2, 3);
  auto dup = prep.Prepare(ctx, Create("/p"), z + 3, 4);
  auto del = prep.Prepare(ctx, DeleteRequest{"/p", -1}, z + 3, 4);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && dup.ok() && del.ok());
  EXPECT_EQ(dup->err, ZkError::kNodeExists);
  EXPECT_EQ(del->err, ZkError::kNotEmpty);
  EXPECT_EQ(b->txn->create().path(), "/p/q0000000000");
  EXPECT_EQ(c->txn->create().path(), "/p/q0000000001");
  EXPECT_FALSE(h_.Exists("/p"));  // nothing applied yet
  ASSERT_TRUE(h_.db().Apply({*a->txn, *b->txn}, nullptr).ok());
  prep.OnApplied(z + 1);
  EXPECT_GT(prep.pending_count(), 0u);
  ASSERT_TRUE(h_.db().Apply({*c->txn}, nullptr).ok());
  prep.OnApplied(z + 2);
  EXPECT_EQ(prep.pending_count(), 0u);
  EXPECT_EQ(h_.Node("/p").num_children, 2);
  EXPECT_EQ(h_.Node("/p").cversion, 2);
  // Reset drops pending state of abandoned proposals.
  auto x = prep.Prepare(ctx, Create("/abandoned"), z + 3, 5);
  ASSERT_TRUE(x.ok() && x->txn);
  prep.Reset();
  auto again = prep.Prepare(ctx, Create("/abandoned"), z + 3, 5);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->err, ZkError::kOk);
}

// setquota as zkCli does it: the quota path nodes, then stats, then limits.
void SetQuota(EngineHarness& h, const std::string& path,
              const std::string& limits) {
  std::string at = "/zookeeper/quota";
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    at += "/" + std::string(part);
    ZkError e = h.Err(Create(at));
    ASSERT_TRUE(e == ZkError::kOk || e == ZkError::kNodeExists);
  }
  ASSERT_EQ(h.Err(Create(at + "/zookeeper_stats", "count=0,bytes=0")),
            ZkError::kOk);
  ASSERT_EQ(h.Err(Create(at + "/zookeeper_limits", limits)), ZkError::kOk);
}

TEST_F(PrepApplyTest, QuotaStatsFollowEveryChange) {
  ASSERT_EQ(h_.Err(Create("/app", "12345")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/app/a", "xy")), ZkError::kOk);
  SetQuota(h_, "/app", "count=10,bytes=-1");
  auto stats = [&] {
    return h_.Node("/zookeeper/quota/app/zookeeper_stats").data;
  };
  // Initial usage counts the subtree, root included.
  EXPECT_EQ(stats(), "count=2,bytes=7");
  ASSERT_EQ(h_.Err(Create("/app/a/b", "abc")), ZkError::kOk);
  EXPECT_EQ(stats(), "count=3,bytes=10");
  ASSERT_EQ(h_.Err(SetDataRequest{"/app", "1", -1}), ZkError::kOk);
  EXPECT_EQ(stats(), "count=3,bytes=6");
  ASSERT_EQ(h_.Err(DeleteRequest{"/app/a/b", -1}), ZkError::kOk);
  EXPECT_EQ(stats(), "count=2,bytes=3");
  // Outside the quota'd subtree: unchanged.
  ASSERT_EQ(h_.Err(Create("/other", "zzzz")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/apple", "zzzz")), ZkError::kOk);
  EXPECT_EQ(stats(), "count=2,bytes=3");
  // A multi charges every op; a failed multi charges nothing.
  MultiRequest m;
  m.ops = {Create("/app/m1", "a"), Create("/app/m2", "bb")};
  ASSERT_EQ(h_.Err(m), ZkError::kOk);
  EXPECT_EQ(stats(), "count=4,bytes=6");
  m.ops = {Create("/app/m3", "a"), Create("/app/m1")};
  EXPECT_EQ(h_.Err(m), ZkError::kNodeExists);
  EXPECT_EQ(stats(), "count=4,bytes=6");
  // The stats node changes data only: no version bump.
  EXPECT_EQ(h_.Node("/zookeeper/quota/app/zookeeper_stats").version, 0);
  // Soft limits are not enforced.
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(h_.Err(Create(absl::StrCat("/app/s", i))), ZkError::kOk);
  }
  EXPECT_EQ(stats(), "count=12,bytes=6");
  // Deleting the limits node ends tracking.
  ASSERT_EQ(h_.Err(DeleteRequest{"/zookeeper/quota/app/zookeeper_limits", -1}),
            ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/app/after")), ZkError::kOk);
  EXPECT_EQ(stats(), "count=12,bytes=6");
}

TEST_F(PrepApplyTest, QuotaNestedRootsChargeTheDeepest) {
  ASSERT_EQ(h_.Err(Create("/a")), ZkError::kOk);
  ASSERT_EQ(h_.Err(Create("/a/b")), ZkError::kOk);
  SetQuota(h_, "/a", "count=100,bytes=-1");
  SetQuota(h_, "/a/b", "count=100,bytes=-1");
  ASSERT_EQ(h_.Err(Create("/a/b/c", "1234")), ZkError::kOk);
  EXPECT_EQ(h_.Node("/zookeeper/quota/a/b/zookeeper_stats").data,
            "count=2,bytes=4");
  EXPECT_EQ(h_.Node("/zookeeper/quota/a/zookeeper_stats").data,
            "count=2,bytes=0");
}

TEST_F(PrepApplyTest, HardQuotaEnforcedWhenEnabled) {
  EngineHarness h(dir_.Sub("enforced"), PrepOptions{.enforce_quota = true});
  ASSERT_EQ(h.Err(Create("/q")), ZkError::kOk);
  SetQuota(h, "/q", "count=-1,bytes=-1,countHardLimit=3,byteHardLimit=10");
  ASSERT_EQ(h.Err(Create("/q/1", "12345")), ZkError::kOk);
  ASSERT_EQ(h.Err(Create("/q/2", "12345")), ZkError::kOk);
  EXPECT_EQ(h.Err(Create("/q/3")), ZkError::kQuotaExceeded);
  EXPECT_EQ(h.Err(SetDataRequest{"/q/1", "123456", -1}),
            ZkError::kQuotaExceeded);
  // QUOTAEXCEEDED comes before BADVERSION for setData.
  EXPECT_EQ(h.Err(SetDataRequest{"/q/1", "123456", 42}),
            ZkError::kQuotaExceeded);
  EXPECT_EQ(h.Err(SetDataRequest{"/q/1", "1", -1}), ZkError::kOk);
  ASSERT_EQ(h.Err(DeleteRequest{"/q/2", -1}), ZkError::kOk);
  EXPECT_EQ(h.Err(Create("/q/3")), ZkError::kOk);
  // Quota roots survive a restart of Prep (loaded from the DB).
  h.Reopen();
  EXPECT_EQ(h.Err(Create("/q/4")), ZkError::kQuotaExceeded);
  EXPECT_EQ(h.Node("/zookeeper/quota/q/zookeeper_stats").data,
            "count=3,bytes=1");
}

TEST(StatsTrackTest, ParseAndFormat) {
  auto s = ParseStatsTrack("count=5,bytes=-1,countHardLimit=9");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->count, 5);
  EXPECT_EQ(s->bytes, -1);
  EXPECT_EQ(s->count_hard_limit, 9);
  EXPECT_EQ(s->byte_hard_limit, -1);
  EXPECT_EQ(FormatStatsTrack(*s), "count=5,bytes=-1,countHardLimit=9");
  EXPECT_FALSE(ParseStatsTrack("count=x").has_value());
  EXPECT_FALSE(ParseStatsTrack("").has_value());
  EXPECT_EQ(
      QuotaRootOf("/zookeeper/quota/a/b/zookeeper_limits", kQuotaLimitsNode),
      "/a/b");
  EXPECT_FALSE(
      QuotaRootOf("/zookeeper/quota/zookeeper_limits", kQuotaLimitsNode));
  EXPECT_FALSE(QuotaRootOf("/a/zookeeper_limits", kQuotaLimitsNode));
}

TEST_F(PrepApplyTest, FailedApplyLeavesNoTrace) {
  RequestContext ctx;
  CreateRequest f = Create("/f");
  f.acl = {MakeAcl(perms::kAll, "digest", "new:acl")};  // a new ACL list
  const int64_t z = h_.next_zxid();
  auto out = h_.prep().Prepare(ctx, f, z, 1);
  ASSERT_TRUE(out.ok() && out->txn);
  Txn bad = *out->txn;
  bad.mutable_header()->set_zxid(z + 1);
  bad.mutable_create()->set_path("no-slash");
  std::vector<WatchTrigger> triggers;
  EXPECT_TRUE(
      absl::IsInvalidArgument(h_.db().Apply({*out->txn, bad}, &triggers)));
  EXPECT_TRUE(triggers.empty());
  EXPECT_EQ(h_.db().last_applied_zxid(), z - 1);
  EXPECT_FALSE(h_.Exists("/f"));
  // A different new ACL list now gets the id the failed batch had used, and
  // the original list still gets a persisted id of its own.
  CreateRequest g = Create("/g");
  g.acl = {MakeAcl(perms::kAll, "digest", "other:acl")};
  h_.prep().Reset();
  ASSERT_EQ(h_.Err(g), ZkError::kOk);
  ASSERT_EQ(h_.Err(f), ZkError::kOk);
  h_.Reopen();
  auto acl_f = h_.db().GetAcl(h_.Node("/f").acl_id);
  auto acl_g = h_.db().GetAcl(h_.Node("/g").acl_id);
  ASSERT_TRUE(acl_f.ok()) << acl_f.status();
  ASSERT_TRUE(acl_g.ok()) << acl_g.status();
  EXPECT_EQ((*acl_f)[0].id(), "new:acl");
  EXPECT_EQ((*acl_g)[0].id(), "other:acl");
}

TEST(ValidateTxnTest, RejectsMalformedTxns) {
  Txn t;
  EXPECT_FALSE(ValidateTxn(t).ok());  // zxid 0, no body
  t.mutable_header()->set_zxid(5);
  EXPECT_FALSE(ValidateTxn(t).ok());  // no body
  t.mutable_create()->set_path("/a");
  t.mutable_create()->set_parent_num_children(1);
  EXPECT_TRUE(ValidateTxn(t).ok());
  t.mutable_create()->set_path("/");
  EXPECT_FALSE(ValidateTxn(t).ok());
  t.mutable_create()->set_path("/a/../b");
  EXPECT_FALSE(ValidateTxn(t).ok());
  t.mutable_create()->set_path("/a");
  t.mutable_create()->set_parent_num_children(0);
  EXPECT_FALSE(ValidateTxn(t).ok());
  Txn m;
  m.mutable_header()->set_zxid(6);
  m.mutable_multi()->add_ops();
  EXPECT_FALSE(ValidateTxn(m).ok());  // op without body
  // A setData `rest` must be whole (a Put of a partial one would lose the
  // node's ACL id and counters).
  Txn sd;
  sd.mutable_header()->set_zxid(7);
  sd.mutable_set_data()->set_path("/a");
  EXPECT_TRUE(ValidateTxn(sd).ok());  // no rest: a merge patch
  auto* rest = sd.mutable_set_data()->mutable_rest();
  rest->set_czxid(1);
  rest->set_pzxid(1);
  rest->set_ctime_ms(1);
  rest->set_cversion(0);
  rest->set_aversion(0);
  rest->set_ephemeral_owner(0);
  rest->set_num_children(0);
  EXPECT_FALSE(ValidateTxn(sd).ok());  // no acl_id
  rest->set_acl_id(-1);
  EXPECT_TRUE(ValidateTxn(sd).ok());
  Txn msd = sd;
  msd.clear_set_data();
  auto* op = msd.mutable_multi()->add_ops();
  *op->mutable_set_data() = sd.set_data();
  op->set_type(record::v1::TXN_SET_DATA);
  EXPECT_TRUE(ValidateTxn(msd).ok()) << ValidateTxn(msd);
  op->mutable_set_data()->mutable_rest()->clear_num_children();
  EXPECT_FALSE(ValidateTxn(msd).ok());
  Txn d;
  d.mutable_header()->set_zxid(7);
  d.mutable_delete_()->set_path("/zookeeper");
  d.mutable_delete_()->set_parent_num_children(-1);
  EXPECT_FALSE(ValidateTxn(d).ok());
}

TEST_F(PrepApplyTest, ApplyRejectsOldZxid) {
  ASSERT_EQ(h_.Err(Create("/z")), ZkError::kOk);
  Txn old = h_.txns().back();
  EXPECT_FALSE(h_.db().Apply({old}, nullptr).ok());
}

TEST_F(PrepApplyTest, ReadsChildrenDescendantsAndReopen) {
  ASSERT_EQ(h_.Err(Create("/r")), ZkError::kOk);
  for (const char* p : {"/r/b", "/r/a", "/r/c", "/r/a/x", "/r/a/x/y", "/rr"}) {
    ASSERT_EQ(h_.Err(Create(p)), ZkError::kOk) << p;
  }
  std::vector<std::string> kids;
  ASSERT_TRUE(h_.db().ListChildren("/r", &kids).ok());
  EXPECT_THAT(kids, ElementsAre("a", "b", "c"));
  kids.clear();
  ASSERT_TRUE(h_.db().ListChildren("/", &kids).ok());
  EXPECT_THAT(kids, ElementsAre("r", "rr", "zookeeper"));
  EXPECT_EQ(*h_.db().CountDescendants("/r"), 5);
  EXPECT_EQ(*h_.db().CountDescendants("/r/a/x/y"), 0);
  const int64_t applied = h_.db().last_applied_zxid();
  h_.Reopen();
  EXPECT_EQ(h_.db().last_applied_zxid(), applied);
  EXPECT_EQ(h_.Node("/r").num_children, 3);
  EXPECT_EQ(*h_.db().CountDescendants("/"), 3 + 7);
}

}  // namespace
}  // namespace rockeeper::engine
