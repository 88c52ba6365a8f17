// Unit tests: path rules, key encoding, ACL logic, the znode merge operator.
#include "engine/acl.h"
#include "engine/keys.h"
#include "engine/path_utils.h"
#include "engine/znode_merge.h"
#include "gtest/gtest.h"
#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {
namespace {

TEST(PathUtils, ValidPaths) {
  for (const char* p : {"/", "/a", "/a/b", "/zookeeper/quota", "/a.b", "/..a",
                        "/a/b-c_d", "/\xE4\xB8\xAD\xE6\x96\x87"}) {
    EXPECT_TRUE(IsValidPath(p)) << p;
  }
}

TEST(PathUtils, InvalidPaths) {
  for (std::string p :
       {std::string(""), std::string("a"), std::string("/a/"),
        std::string("//a"), std::string("/a//b"), std::string("/."),
        std::string("/a/.."), std::string("/a/./b"), std::string("/a\x01"),
        std::string("/a\x7f"), std::string("/a\0b", 4),
        std::string("/\xC2\x80"),          // U+0080 control
        std::string("/\xEE\x80\x80"),      // U+E000 private use
        std::string("/\xEF\xBF\xBF"),      // U+FFFF
        std::string("/\xF0\x9F\x98\x80"),  // surrogate pair in UTF-16
        std::string("/\xC0\xAF"),          // overlong '/'
        std::string("/\xE4\xB8")}) {       // truncated sequence
    EXPECT_FALSE(IsValidPath(p)) << p;
  }
}

TEST(PathUtils, ParentBaseDepth) {
  EXPECT_EQ(ParentPath("/a"), "/");
  EXPECT_EQ(ParentPath("/a/b/c"), "/a/b");
  EXPECT_EQ(BaseName("/a/b/c"), "c");
  EXPECT_EQ(PathDepth("/"), 0);
  EXPECT_EQ(PathDepth("/a"), 1);
  EXPECT_EQ(PathDepth("/a/b/c"), 3);
  EXPECT_TRUE(IsSameOrDescendant("/a/b", "/a"));
  EXPECT_TRUE(IsSameOrDescendant("/a", "/a"));
  EXPECT_FALSE(IsSameOrDescendant("/ab", "/a"));
  EXPECT_TRUE(IsSameOrDescendant("/x", "/"));
}

TEST(Keys, ZnodeKeyIsDepthThenPath) {
  EXPECT_EQ(ZnodeKey("/"), std::string("\0\0/", 3));
  EXPECT_EQ(ZnodeKey("/a/b"), std::string("\0\2/a/b", 6));
  EXPECT_EQ(ChildrenPrefix("/"), std::string("\0\1/", 3));
  EXPECT_EQ(ChildrenPrefix("/a"), std::string("\0\2/a/", 5));
  EXPECT_EQ(DescendantPrefix("/a", 2), std::string("\0\3/a/", 5));
  EXPECT_EQ(PathOfZnodeKey(ZnodeKey("/x/y")), "/x/y");
}

TEST(Keys, ChildrenPrefixMatchesOnlyChildren) {
  const std::string prefix = ChildrenPrefix("/a");
  auto has_prefix = [&](absl::string_view path) {
    return ZnodeKey(path).rfind(prefix, 0) == 0;
  };
  EXPECT_TRUE(has_prefix("/a/b"));
  EXPECT_FALSE(has_prefix("/a/b/c"));  // grandchild: other depth
  EXPECT_FALSE(has_prefix("/ab"));
  EXPECT_FALSE(has_prefix("/a"));
}

TEST(Keys, BigEndianSortsNumerically) {
  EXPECT_LT(SessionKey(1), SessionKey(256));
  EXPECT_LT(SessionKey(255), SessionKey(256));
  EXPECT_EQ(DecodeBigEndian64(SessionKey(0x0102030405060708)),
            0x0102030405060708u);
  EXPECT_EQ(EphemeralKey(7, "/e"), SessionKey(7) + "/e");
}

TEST(Acl, DigestTestVectors) {
  EXPECT_EQ(DigestId("super:admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
  EXPECT_EQ(DigestId("user:password"), "user:tpUq/4Pn5A64fVZyQ0gOJ8ZWqkY=");
  EXPECT_EQ(DigestId("bob:secret"), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
}

TEST(Acl, SuperDigestGrantsSuper) {
  auto ids = DigestAuthIds("super:admin", "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].scheme, "super");
  EXPECT_EQ(DigestAuthIds("bob:secret", "super:x").size(), 1u);
}

TEST(Acl, FixupRules) {
  AclVector out;
  const std::vector<AuthId> none;
  const std::vector<AuthId> bob = {{"ip", "127.0.0.1"},
                                   {"digest", "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="}};
  EXPECT_EQ(FixupAcl({}, none, &out), ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "world", "bob")}, none, &out),
            ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "auth", "")}, none, &out),
            ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "digest", "nocolon")}, none, &out),
            ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "ip", "1.2.3.300")}, none, &out),
            ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "super", "x")}, none, &out),
            ZkError::kInvalidAcl);
  EXPECT_EQ(FixupAcl({MakeAcl(31, "nosuch", "x")}, none, &out),
            ZkError::kInvalidAcl);
  // auth expands to the digest id only (not ip), duplicates removed.
  ASSERT_EQ(FixupAcl({MakeAcl(31, "auth", ""), MakeAcl(31, "auth", "")}, bob,
                     &out),
            ZkError::kOk);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].scheme(), "digest");
  EXPECT_EQ(out[0].id(), "bob:fyVmFCwVbTJYrznoSu1koqYEYF0=");
  ASSERT_EQ(FixupAcl({MakeAcl(1, "ip", "10.0.0.0/8")}, none, &out),
            ZkError::kOk);
}

TEST(Acl, PermissionCheck) {
  const std::vector<AuthId> anon = {{"ip", "10.1.2.3"}};
  const std::vector<AuthId> bob = {{"digest", "bob:x"}};
  const std::vector<AuthId> super = {{"super", ""}};
  const AclVector read_only = {MakeAcl(perms::kRead, "world", "anyone")};
  EXPECT_TRUE(HasPermission(read_only, perms::kRead, anon));
  EXPECT_FALSE(HasPermission(read_only, perms::kWrite, anon));
  EXPECT_TRUE(HasPermission(read_only, perms::kWrite, super));
  EXPECT_TRUE(HasPermission({}, perms::kAdmin, anon));
  const AclVector bob_only = {MakeAcl(perms::kAll, "digest", "bob:x")};
  EXPECT_TRUE(HasPermission(bob_only, perms::kDelete, bob));
  EXPECT_FALSE(HasPermission(bob_only, perms::kDelete, anon));
  const AclVector net = {MakeAcl(perms::kAll, "ip", "10.0.0.0/8")};
  EXPECT_TRUE(HasPermission(net, perms::kRead, anon));
  EXPECT_FALSE(HasPermission(net, perms::kRead, {{"ip", "11.0.0.1"}}));
}

TEST(Acl, IpMatching) {
  EXPECT_TRUE(IpMatches("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(IpMatches("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(IpMatches("192.168.1.0/24", "192.168.1.77"));
  EXPECT_FALSE(IpMatches("192.168.1.0/24", "192.168.2.1"));
  EXPECT_TRUE(IpMatches("10.0.0.0/9", "10.127.0.1"));
  EXPECT_FALSE(IpMatches("10.0.0.0/9", "10.128.0.1"));
  EXPECT_TRUE(IpMatches("::1", "::1"));
  EXPECT_TRUE(IpMatches("fe80::/10", "fe80::1"));
  EXPECT_FALSE(IpMatches("10.0.0.1", "::1"));
  EXPECT_FALSE(IpMatches("garbage", "10.0.0.1"));
  EXPECT_FALSE(IpMatches("10.0.0.0/33", "10.0.0.1"));
}

TEST(ZnodeMerge, PatchReplacesOnlyItsFields) {
  auto op = NewZnodeMergeOperator();
  record::v1::ZnodeRecord base;
  base.set_czxid(5);
  base.set_version(3);
  base.set_data("hello");
  base.set_num_children(2);
  record::v1::ZnodeRecord p1, p2;
  p1.set_num_children(0);  // explicit zero must survive (proto3 optional)
  p1.set_pzxid(9);
  p2.set_data("");
  p2.set_version(4);
  const std::string base_s = base.SerializeAsString();
  const std::string p1_s = p1.SerializeAsString();
  const std::string p2_s = p2.SerializeAsString();
  rocksdb::Slice existing(base_s);
  std::vector<rocksdb::Slice> operands = {p1_s, p2_s};
  std::string out_value;
  rocksdb::Slice out_operand;
  rocksdb::MergeOperator::MergeOperationInput in("k", &existing, operands,
                                                 nullptr);
  rocksdb::MergeOperator::MergeOperationOutput out(out_value, out_operand);
  ASSERT_TRUE(op->FullMergeV2(in, &out));
  record::v1::ZnodeRecord merged;
  ASSERT_TRUE(merged.ParseFromString(out_value));
  EXPECT_EQ(merged.czxid(), 5);
  EXPECT_EQ(merged.version(), 4);
  EXPECT_EQ(merged.data(), "");
  EXPECT_EQ(merged.num_children(), 0);
  EXPECT_EQ(merged.pzxid(), 9);

  // A patch of a missing node is reported, not invented.
  rocksdb::MergeOperator::MergeOperationInput missing("k", nullptr, operands,
                                                      nullptr);
  EXPECT_FALSE(op->FullMergeV2(missing, &out));
}

}  // namespace
}  // namespace rockeeper::engine
