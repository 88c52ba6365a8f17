// The disk and wire adapters of the ZAB core: epoch files, the txn-log-backed
// LogStorage, LoadDurableState, and the message codec.
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "engine/txn_log.h"
#include "gtest/gtest.h"
#include "replication/zab/codec.h"
#include "replication/zab/durable.h"
#include "rockeeper/peer/v1/peer.pb.h"
#include "tests/engine/test_util.h"

namespace rockeeper::zab {
namespace {

using engine::testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(EpochFileTest, MissingIsNullopt) {
  TempDir dir;
  auto e = ReadEpochFile(dir.path(), kCurrentEpochFile);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->has_value());
}

TEST(EpochFileTest, WriteThenReadAsZooKeeperDoes) {
  TempDir dir;
  ASSERT_TRUE(WriteEpochFile(dir.path(), kAcceptedEpochFile, 42).ok());
  std::ifstream in(dir.Sub(kAcceptedEpochFile));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "42");  // ASCII, no newline
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("acceptedEpoch.tmp")));
  auto e = ReadEpochFile(dir.path(), kAcceptedEpochFile);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->value(), 42);
  ASSERT_TRUE(WriteEpochFile(dir.path(), kAcceptedEpochFile, 43).ok());
  EXPECT_EQ(ReadEpochFile(dir.path(), kAcceptedEpochFile)->value(), 43);
}

TEST(EpochFileTest, GarbageIsAnErrorNamingTheFile) {
  TempDir dir;
  for (const char* bad : {"", "x1", "-1", "1.5", "123456789012345678901234"}) {
    WriteFile(dir.Sub(kCurrentEpochFile), bad);
    auto e = ReadEpochFile(dir.path(), kCurrentEpochFile);
    ASSERT_FALSE(e.ok()) << "accepted '" << bad << "'";
    EXPECT_NE(e.status().message().find("currentEpoch"), std::string::npos);
  }
}

class LogFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    engine::TxnLogOptions o;
    o.dir = dir_.Sub("log");
    o.preallocate_bytes = 0;
    auto log = engine::TxnLog::Open(o);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
  }
  void Append(int64_t zxid) {
    ASSERT_TRUE(log_->Append(zxid, absl::StrCat("t", zxid)).ok());
  }
  TempDir dir_;
  std::unique_ptr<engine::TxnLog> log_;
};

TEST_F(LogFixture, ReadsRangesTheLogCovers) {
  for (int i = 1; i <= 5; ++i) Append(MakeZxid(1, i));
  for (int i = 1; i <= 3; ++i) Append(MakeZxid(2, i));
  TxnLogStorage storage(log_.get(), nullptr);
  auto all = storage.Read(0, MakeZxid(2, 3));
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 8u);
  EXPECT_EQ(all->front().zxid, MakeZxid(1, 1));
  EXPECT_EQ(all->back().data, absl::StrCat("t", MakeZxid(2, 3)));
  auto mid = storage.Read(MakeZxid(1, 4), MakeZxid(2, 1));
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->size(), 2u);
  EXPECT_EQ((*mid)[0].zxid, MakeZxid(1, 5));
  EXPECT_EQ((*mid)[1].zxid, MakeZxid(2, 1));
  EXPECT_TRUE(storage.Read(MakeZxid(2, 3), MakeZxid(2, 3))->empty());
}

TEST_F(LogFixture, RefusesRangesBeforeTheLogStarts) {
  // A log that starts mid-epoch (older segments purged / SNAP installed).
  for (int i = 10; i <= 12; ++i) Append(MakeZxid(3, i));
  TxnLogStorage storage(log_.get(), nullptr);
  EXPECT_TRUE(storage.Read(MakeZxid(3, 9), MakeZxid(3, 12)).ok());  // adjacent
  EXPECT_FALSE(storage.Read(MakeZxid(3, 8), MakeZxid(3, 12)).ok());
  EXPECT_FALSE(storage.Read(0, MakeZxid(3, 12)).ok());
  EXPECT_FALSE(storage.Read(MakeZxid(2, 7), MakeZxid(3, 12)).ok());
  storage.set_log_base(MakeZxid(2, 7));  // the SNAP the log started after
  EXPECT_EQ(storage.Read(MakeZxid(2, 7), MakeZxid(3, 12))->size(), 3u);
}

TEST_F(LogFixture, LoadDurableStateCreatesMissingEpochFiles) {
  for (int i = 1; i <= 2; ++i) Append(MakeZxid(1, i));
  Append(MakeZxid(4, 1));
  auto ds = LoadDurableState(dir_.path(), *log_, MakeZxid(1, 2));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->current_epoch, 4);
  EXPECT_EQ(ds->accepted_epoch, 4);
  EXPECT_EQ(ds->last_logged_zxid, MakeZxid(4, 1));
  EXPECT_EQ(ds->applied_zxid, MakeZxid(1, 2));
  EXPECT_EQ(ds->epoch_lasts.at(1), MakeZxid(1, 2));
  EXPECT_EQ(ds->epoch_lasts.at(4), MakeZxid(4, 1));
  EXPECT_EQ(ReadEpochFile(dir_.path(), kCurrentEpochFile)->value(), 4);
}

TEST_F(LogFixture, LoadDurableStateRefusesInconsistentEpochs) {
  Append(MakeZxid(2, 1));
  ASSERT_TRUE(WriteEpochFile(dir_.path(), kCurrentEpochFile, 1).ok());
  ASSERT_TRUE(WriteEpochFile(dir_.path(), kAcceptedEpochFile, 3).ok());
  auto ds = LoadDurableState(dir_.path(), *log_, 0);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WriteEpochFile(dir_.path(), kCurrentEpochFile, 5).ok());
  ds = LoadDurableState(dir_.path(), *log_, 0);  // accepted 3 < current 5
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(WriteEpochFile(dir_.path(), kAcceptedEpochFile, 5).ok());
  ds = LoadDurableState(dir_.path(), *log_, 0);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->current_epoch, 5);
}

Message Sample(MsgType type) {
  Message m;
  m.type = type;
  m.from = 3;
  m.to = 1;
  m.conn = 77;
  m.zxid = MakeZxid(5, 9);
  m.epoch = 5;
  m.committed = MakeZxid(5, 2);
  m.observer = type == MsgType::kFollowerInfo;
  m.epoch_lasts = {{4, MakeZxid(4, 100)}, {5, MakeZxid(5, 9)}};
  m.entry = Entry{MakeZxid(5, 9), std::string("txn\0bytes", 9)};
  m.data = "forwarded";
  if (type == MsgType::kVote) {
    m.vote = Notification{3, 1, Vote{2, MakeZxid(5, 9), 5}, 12,
                          PeerState::kFollowing};
  }
  return m;
}

TEST(ZabCodecTest, EveryTypeRoundTrips) {
  for (int t = 0; t <= static_cast<int>(MsgType::kRequest); ++t) {
    const Message m = Sample(static_cast<MsgType>(t));
    auto d = DecodeMessage(EncodeMessage(m));
    ASSERT_TRUE(d.ok()) << MsgTypeName(m.type) << ": " << d.status();
    EXPECT_EQ(d->type, m.type);
    EXPECT_EQ(d->from, 3);
    EXPECT_EQ(d->conn, 77);
    EXPECT_EQ(d->zxid, m.zxid);
    EXPECT_EQ(d->committed, m.committed);
    EXPECT_EQ(d->observer, m.observer);
    EXPECT_EQ(d->epoch_lasts, m.epoch_lasts);
    EXPECT_EQ(d->entry, m.entry);
    EXPECT_EQ(d->data, m.data);
    if (m.type == MsgType::kVote) {
      EXPECT_EQ(d->vote.vote, m.vote.vote);
      EXPECT_EQ(d->vote.round, 12);
      EXPECT_EQ(d->vote.state, PeerState::kFollowing);
      EXPECT_EQ(d->vote.from, 3);
    }
  }
}

TEST(ZabCodecTest, RejectsBadInput) {
  EXPECT_FALSE(DecodeMessage("\xff\xff\xff").ok());  // not a protobuf
  Message m = Sample(MsgType::kPing);
  std::string bytes = EncodeMessage(m);
  // type = 99 (field 1, varint)
  std::string bad_type = bytes;
  bad_type[1] = 99;
  EXPECT_FALSE(DecodeMessage(bad_type).ok());
  Message v = Sample(MsgType::kVote);
  v.vote.state = static_cast<PeerState>(9);
  EXPECT_FALSE(DecodeMessage(EncodeMessage(v)).ok());
  EXPECT_FALSE(DecodeMessage(std::string(kMaxMessageBytes + 1, '\0')).ok());
}

// The hand framing is exactly the ZabBatch protobuf, and SplitBatch gives
// back the encoded messages in order (lengths of 1, 2 and 3 varint bytes).
TEST(ZabCodecTest, BatchFramingIsZabBatchAndSplitsBack) {
  std::vector<std::string> encoded;
  for (MsgType t : {MsgType::kPing, MsgType::kProposal, MsgType::kCommit}) {
    encoded.push_back(EncodeMessage(Sample(t)));
  }
  Message big = Sample(MsgType::kProposal);
  big.entry.data.assign(300 << 10, 'x');  // a 3-byte length
  encoded.push_back(EncodeMessage(big));
  encoded.push_back("");  // an all-default message encodes empty
  std::string batch;
  for (const std::string& e : encoded) AppendToBatch(e, &batch);
  peer::v1::ZabBatch proto;
  ASSERT_TRUE(proto.ParseFromString(batch));
  ASSERT_EQ(proto.messages_size(), static_cast<int>(encoded.size()));
  EXPECT_EQ(proto.messages(3).entry_data().size(), size_t{300 << 10});
  EXPECT_EQ(proto.SerializeAsString(), batch);
  auto split = SplitBatch(batch);
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->size(), encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    EXPECT_EQ((*split)[i], encoded[i]) << i;
  }
  auto none = SplitBatch("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ZabCodecTest, SplitBatchRejectsBadFraming) {
  using namespace std::string_literals;
  for (const std::string& bad : {
           "\x12\x01x"s,                      // field 2
           "\x08\x01"s,                       // field 1 as a varint
           "\x0a"s,                           // no length
           "\x0a\x80"s,                       // truncated length
           "\x0a\x05xy"s,                     // length past the end
           "\x0a\x01x\x0a\x02x"s,             // the second one short
           "\x0a\xff\xff\xff\xff\xff\x01x"s,  // a 6-byte length
           "\x0a\x81\x80\x80\x20"s,           // 64 MiB + 1
       }) {
    EXPECT_TRUE(absl::IsInvalidArgument(SplitBatch(bad).status()))
        << absl::CEscape(bad);
  }
  std::string many;
  for (size_t i = 0; i <= kMaxBatchMessages; ++i) AppendToBatch("", &many);
  EXPECT_TRUE(absl::IsInvalidArgument(SplitBatch(many).status()));
}

}  // namespace
}  // namespace rockeeper::zab
