// ForwardedWrite encoding and the error txns that answer forwarded requests.
#include "replication/forwarding.h"

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::replication {
namespace {

using engine::ZkError;

ForwardedWrite Sample(engine::WriteRequest req) {
  ForwardedWrite w;
  w.origin_server = 3;
  w.request_id = 99;
  w.ctx.session_id = 0x1234;
  w.ctx.cxid = 7;
  w.ctx.auth_ids = {{"digest", "u:x"}, {"ip", "127.0.0.1"}};
  w.request = std::move(req);
  return w;
}

TEST(ForwardingTest, EveryRequestTypeRoundTrips) {
  engine::MultiRequest multi;
  multi.ops.push_back(engine::testing::Create("/m", "d"));
  multi.ops.push_back(engine::DeleteRequest{"/d", 4});
  multi.ops.push_back(engine::SetDataRequest{"/s", "x", 2});
  multi.ops.push_back(engine::CheckRequest{"/c", 1});
  engine::CreateRequest null_create = engine::testing::Create("/n");
  null_create.data_null = true;
  engine::SetDataRequest null_set{"/n", "", -1};
  null_set.data_null = true;
  multi.ops.push_back(null_create);
  multi.ops.push_back(null_set);
  engine::CreateRequest create = engine::testing::Create("/a", "data");
  create.flags = engine::kPersistentSequentialWithTtl;
  create.ttl_ms = 5000;
  const engine::WriteRequest requests[] = {
      create,
      engine::DeleteRequest{"/a", 3},
      engine::DeleteContainerRequest{"/c"},
      engine::SetDataRequest{"/a", std::string("b\0c", 3), 1},
      engine::SetAclRequest{"/a", create.acl, 2},
      engine::CheckRequest{"/a", 5},
      multi,
      null_create,
      null_set,
      engine::CreateSessionRequest{30000, "pw"},
      engine::CloseSessionRequest{}};
  for (const engine::WriteRequest& r : requests) {
    const ForwardedWrite w = Sample(r);
    const std::string bytes = EncodeForwardedWrite(w);
    auto d = DecodeForwardedWrite(bytes);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->origin_server, 3);
    EXPECT_EQ(d->request_id, 99);
    EXPECT_EQ(d->ctx.session_id, 0x1234);
    EXPECT_EQ(d->ctx.cxid, 7);
    EXPECT_EQ(d->ctx.auth_ids, w.ctx.auth_ids);
    EXPECT_EQ(d->request.index(), r.index());
    EXPECT_EQ(EncodeForwardedWrite(*d), bytes);
  }
  // Null data survives the trip (ZooKeeper's null byte array).
  auto d = DecodeForwardedWrite(EncodeForwardedWrite(Sample(null_set)));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(std::get<engine::SetDataRequest>(d->request).data_null);
  d = DecodeForwardedWrite(EncodeForwardedWrite(Sample(null_create)));
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(std::get<engine::CreateRequest>(d->request).data_null);
}

TEST(ForwardingTest, RejectsGarbageAndEmptyRequests) {
  EXPECT_FALSE(DecodeForwardedWrite("\xff\xff").ok());
  EXPECT_FALSE(DecodeForwardedWrite("").ok());  // no request set
}

TEST(ForwardingTest, ErrorTxnsCarryTheRefusal) {
  const ForwardedWrite w = Sample(engine::DeleteRequest{"/x", -1});
  engine::PrepOutcome refused;
  refused.err = ZkError::kNoNode;
  engine::Txn t = MakeErrorTxn(w, refused, 0x100000005, 1000);
  EXPECT_EQ(t.header().origin_server(), 3);
  EXPECT_EQ(t.header().origin_request_id(), 99);
  EXPECT_EQ(t.header().zxid(), 0x100000005);
  engine::PrepOutcome back = OutcomeOfTxn(t);
  EXPECT_EQ(back.err, ZkError::kNoNode);
  EXPECT_FALSE(back.txn.has_value());

  engine::MultiRequest m;
  m.ops.push_back(engine::testing::Create("/a"));
  m.ops.push_back(engine::DeleteRequest{"/missing", -1});
  engine::PrepOutcome multi_refused;
  multi_refused.err = ZkError::kNoNode;
  multi_refused.multi_errors = {ZkError::kOk, ZkError::kNoNode,
                                ZkError::kRuntimeInconsistency};
  t = MakeErrorTxn(Sample(m), multi_refused, 0x100000006, 1000);
  back = OutcomeOfTxn(t);
  EXPECT_EQ(back.err, ZkError::kNoNode);
  EXPECT_EQ(back.multi_errors, multi_refused.multi_errors);
  EXPECT_FALSE(back.txn.has_value());
}

}  // namespace
}  // namespace rockeeper::replication
