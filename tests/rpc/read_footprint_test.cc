// Whether a read can observe a later write of its session (so the write's
// apply must wait for it): the rules of rpc/read_footprint.h.
#include "rpc/read_footprint.h"

#include "gtest/gtest.h"

namespace rockeeper::rpc {
namespace {

using engine::CreateRequest;
using engine::DeleteRequest;
using engine::MultiRequest;
using engine::SetDataRequest;

CreateRequest Create(std::string path, int32_t flags = engine::kPersistent) {
  CreateRequest c;
  c.path = std::move(path);
  c.flags = flags;
  return c;
}

bool Node(absl::string_view path, const engine::WriteRequest& w) {
  return ReadObservesWrite({ReadScope::kNode, path}, w);
}
bool Subtree(absl::string_view path, const engine::WriteRequest& w) {
  return ReadObservesWrite({ReadScope::kSubtree, path}, w);
}

TEST(ReadFootprintTest, NodeReadsObserveTheNodeAndItsChildren) {
  EXPECT_TRUE(Node("/a", SetDataRequest{"/a", "x", -1, false}));
  EXPECT_TRUE(Node("/a", DeleteRequest{"/a", -1}));
  EXPECT_TRUE(Node("/a", Create("/a")));
  EXPECT_TRUE(Node("/a", Create("/a/kid")));  // the stat's numChildren
  EXPECT_TRUE(Node("/a", DeleteRequest{"/a/kid", -1}));
  EXPECT_TRUE(Node("/", Create("/top")));
  EXPECT_TRUE(Node("/a", engine::SetAclRequest{"/a", {}, -1}));
  // Unrelated: siblings, grandchildren, the parent, prefixes of the name.
  EXPECT_FALSE(Node("/a", SetDataRequest{"/b", "x", -1, false}));
  EXPECT_FALSE(Node("/a", Create("/a/kid/grandkid")));
  EXPECT_FALSE(Node("/a/kid", Create("/a/other")));
  EXPECT_FALSE(Node("/a/kid", SetDataRequest{"/a", "x", -1, false}));
  EXPECT_FALSE(Node("/ab", Create("/a/x")));
  EXPECT_FALSE(Node("/a", engine::CheckRequest{"/a", 3}));
}

TEST(ReadFootprintTest, SequentialCreatesMayMakeAnySibling) {
  EXPECT_TRUE(Node("/q/log-0000000007",
                   Create("/q/log-", engine::kPersistentSequential)));
  EXPECT_TRUE(Node("/q/other", Create("/q/x", engine::kEphemeralSequential)));
  EXPECT_FALSE(Node("/q/other", Create("/q/x", engine::kEphemeral)));
  EXPECT_FALSE(Node("/r/log-0000000007",
                    Create("/q/log-", engine::kPersistentSequential)));
}

TEST(ReadFootprintTest, SubtreeReadsObserveEverythingBelow) {
  EXPECT_TRUE(Subtree("/a", Create("/a/b/c/d")));
  EXPECT_TRUE(Subtree("/a", DeleteRequest{"/a", -1}));
  EXPECT_TRUE(Subtree("/", Create("/x")));
  EXPECT_FALSE(Subtree("/a", Create("/ab/c")));
  EXPECT_FALSE(Subtree("/a/b", Create("/a/c")));
}

TEST(ReadFootprintTest, MultisCountEveryOp) {
  MultiRequest m;
  m.ops.push_back(Create("/s/b1"));
  m.ops.push_back(DeleteRequest{"/s/b0", -1});
  m.ops.push_back(SetDataRequest{"/t", "x", -1, false});
  EXPECT_TRUE(Node("/s", m));
  EXPECT_TRUE(Node("/s/b0", m));
  EXPECT_TRUE(Node("/t", m));
  EXPECT_FALSE(Node("/u", m));
  EXPECT_FALSE(Node("/s/b2", m));
}

TEST(ReadFootprintTest, ConservativeCases) {
  // Unclassified reads, quota and config nodes, session changes.
  EXPECT_TRUE(ReadObservesWrite({ReadScope::kAll, "/x"}, Create("/y")));
  EXPECT_TRUE(Node("/zookeeper/quota/a/zookeeper_stats", Create("/a/b")));
  EXPECT_TRUE(Node("/zookeeper", Create("/a")));
  EXPECT_TRUE(Node("/a", engine::CloseSessionRequest{}));
  EXPECT_TRUE(Node("/a", engine::CreateSessionRequest{30000, "pw"}));
}

}  // namespace
}  // namespace rockeeper::rpc
