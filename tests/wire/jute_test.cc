// Jute encoding and the client protocol records, checked against the byte
// examples of shared/reference/ZK_PROTOCOL_REFERENCE.md (Appendix B), plus
// malformed input.
#include "rpc/jute.h"

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace rockeeper::jute {
namespace {

std::string Hex(absl::string_view hex) {
  std::string clean;
  for (char c : hex) {
    if (c != ' ' && c != '|') clean.push_back(c);
  }
  return absl::HexStringToBytes(clean);
}

TEST(JuteTest, ConnectRequestExample) {
  const std::string frame = Hex(
      "0000002d 00000000 0000000000000000 00007530 0000000000000000 00000010 " +
      std::string(32, '0') + " 00");
  size_t consumed = 0;
  bool bad = false;
  auto payload = NextFrame(frame, 0xFFFFF, &consumed, &bad);
  ASSERT_TRUE(payload.has_value());
  EXPECT_EQ(consumed, frame.size());
  JuteReader r(*payload);
  ConnectRequest req;
  ASSERT_TRUE(Read(r, &req));
  EXPECT_TRUE(r.AtEnd());
  EXPECT_EQ(req.timeout_ms, 30000);
  EXPECT_EQ(req.session_id, 0);
  EXPECT_EQ(req.password, std::string(16, '\0'));
  ASSERT_TRUE(req.read_only.has_value());
  EXPECT_FALSE(*req.read_only);
  JuteWriter w;
  Write(w, req);
  EXPECT_EQ(w.Framed(), frame);
  // Without the readOnly byte (ClickHouse): 44 bytes, no readOnly.
  const std::string first44(payload->substr(0, 44));
  JuteReader r44(first44);
  ConnectRequest old;
  ASSERT_TRUE(Read(r44, &old));
  EXPECT_FALSE(old.read_only.has_value());
}

TEST(JuteTest, CreateRequestAndReplyExample) {
  const std::string frame = Hex(
      "00000032 00000001 00000001 | 00000002 2f61 | 00000001 78 | 00000001 "
      "0000001f 00000005 776f726c64 00000006 616e796f6e65 | 00000000");
  size_t consumed = 0;
  bool bad = false;
  auto payload = NextFrame(frame, 0xFFFFF, &consumed, &bad);
  ASSERT_TRUE(payload.has_value());
  JuteReader r(*payload);
  RequestHeader h;
  CreateRequest c;
  ASSERT_TRUE(Read(r, &h));
  ASSERT_TRUE(Read(r, &c, /*with_ttl=*/false));
  EXPECT_TRUE(r.AtEnd());
  EXPECT_EQ(h.xid, 1);
  EXPECT_EQ(h.type, 1);
  EXPECT_EQ(c.path, "/a");
  EXPECT_EQ(c.data, "x");
  ASSERT_EQ(c.acl.size(), 1u);
  EXPECT_EQ(c.acl[0].perms, 31);
  EXPECT_EQ(c.acl[0].id.scheme, "world");
  EXPECT_EQ(c.acl[0].id.id, "anyone");
  JuteWriter w;
  Write(w, h);
  Write(w, c, false);
  EXPECT_EQ(w.Framed(), frame);

  JuteWriter reply;
  Write(reply, ReplyHeader{1, 5, 0});
  reply.WriteString("/a");
  EXPECT_EQ(reply.Framed(), Hex("00000016 00000001 0000000000000005 00000000 "
                                "00000002 2f61"));
}

TEST(JuteTest, PingErrorAndNotificationExamples) {
  JuteWriter ping;
  Write(ping, RequestHeader{-2, 11});
  EXPECT_EQ(ping.Framed(), Hex("00000008 fffffffe 0000000b"));
  JuteWriter err;
  Write(err, ReplyHeader{2, 4, -110});
  EXPECT_EQ(err.Framed(),
            Hex("00000010 00000002 0000000000000004 ffffff92"));
  JuteWriter note;
  Write(note, ReplyHeader{-1, -1, 0});
  Write(note, WatcherEvent{3, 3, "/a"});
  EXPECT_EQ(note.Framed(), Hex("0000001e ffffffff ffffffffffffffff 00000000 "
                               "00000003 00000003 00000002 2f61"));
}

TEST(JuteTest, NullAndEmptyBuffersDiffer) {
  JuteWriter w;
  CreateRequest c;
  c.path = "/n";
  c.data_null = true;
  Write(w, c, false);
  JuteReader r(w.data());
  CreateRequest back;
  ASSERT_TRUE(Read(r, &back, false));
  EXPECT_TRUE(back.data_null);
  c.data_null = false;
  JuteWriter w2;
  Write(w2, c, false);
  JuteReader r2(w2.data());
  ASSERT_TRUE(Read(r2, &back, false));
  EXPECT_FALSE(back.data_null);
  EXPECT_NE(w.data(), w2.data());
}

TEST(JuteTest, StatRoundTripIs68Bytes) {
  Stat s{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  JuteWriter w;
  Write(w, s);
  EXPECT_EQ(w.data().size(), 68u);
  JuteReader r(w.data());
  Stat back;
  ASSERT_TRUE(Read(r, &back));
  EXPECT_EQ(back.pzxid, 11);
  EXPECT_EQ(back.num_children, 10);
  EXPECT_EQ(back.ephemeral_owner, 8);
}

TEST(JuteTest, SetWatches2RoundTrip) {
  SetWatches sw;
  sw.relative_zxid = 0x1234;
  sw.data = {"/a"};
  sw.child = {"/b", "/c"};
  sw.persistent_recursive = {"/r"};
  JuteWriter w;
  Write(w, sw, true);
  JuteReader r(w.data());
  SetWatches back;
  ASSERT_TRUE(Read(r, &back, true));
  EXPECT_TRUE(r.AtEnd());
  EXPECT_EQ(back.child, sw.child);
  EXPECT_EQ(back.persistent_recursive, sw.persistent_recursive);
  JuteReader r1(w.data());
  ASSERT_TRUE(Read(r1, &back, false));  // v1 stops after three lists
  EXPECT_FALSE(r1.AtEnd());
}

TEST(JuteTest, MalformedInputFailsWithoutOverread) {
  // The reader keeps a view: the bytes must outlive it.
  std::string s;
  const std::string beyond = Hex("00000010 2f61");  // length beyond input
  JuteReader a(beyond);
  EXPECT_FALSE(a.ReadString(&s));
  EXPECT_FALSE(a.ok());
  const std::string negative = Hex("fffffffe");  // negative, not -1
  JuteReader b(negative);
  EXPECT_FALSE(b.ReadString(&s));
  const std::string huge = Hex("00100000") + std::string(0x100000, 'x');
  JuteReader c(huge, 0xFFFFF);  // above the maximum
  EXPECT_FALSE(c.ReadString(&s));
  const std::string count = Hex("7fffffff 00000000");  // count > bytes left
  JuteReader d(count);
  std::vector<Acl> acl;
  EXPECT_FALSE(Read(d, &acl));
  const std::string truncated = Hex("00000001 0000");
  JuteReader e(truncated);
  RequestHeader h;
  EXPECT_FALSE(Read(e, &h));
  int32_t v = 0;
  EXPECT_FALSE(e.ReadInt(&v));  // once failed, stays failed
}

TEST(JuteTest, FramesAreBounded) {
  size_t consumed = 0;
  bool bad = false;
  EXPECT_FALSE(NextFrame(Hex("000000"), 100, &consumed, &bad).has_value());
  EXPECT_FALSE(bad);
  EXPECT_FALSE(NextFrame(Hex("00000005 0102"), 100, &consumed, &bad));
  EXPECT_FALSE(bad);  // incomplete: wait for more
  EXPECT_FALSE(NextFrame(Hex("00000065"), 100, &consumed, &bad));
  EXPECT_TRUE(bad);  // 101 > max
  EXPECT_FALSE(NextFrame(Hex("ffffffff"), 100, &consumed, &bad));
  EXPECT_TRUE(bad);
  const std::string stream = Hex("00000001 aa 00000001 bb");  // outlives views
  auto two = NextFrame(stream, 100, &consumed, &bad);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(consumed, 5u);
  EXPECT_EQ(*two, Hex("aa"));
}

}  // namespace
}  // namespace rockeeper::jute
