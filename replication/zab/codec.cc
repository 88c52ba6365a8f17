#include "replication/zab/codec.h"

#include "absl/strings/str_cat.h"
#include "rockeeper/peer/v1/peer.pb.h"

namespace rockeeper::zab {
namespace {

constexpr int kMaxType = static_cast<int>(MsgType::kRequest);
constexpr int kMaxState = static_cast<int>(PeerState::kObserving);

}  // namespace

std::string EncodeMessage(const Message& m) {
  peer::v1::ZabMessage p;
  p.set_type(static_cast<int32_t>(m.type));
  p.set_from(m.from);
  p.set_to(m.to);
  p.set_conn(m.conn);
  p.set_seq(m.seq);
  p.set_zxid(m.zxid);
  p.set_epoch(m.epoch);
  p.set_committed(m.committed);
  p.set_observer(m.observer);
  for (const auto& [epoch, last] : m.epoch_lasts) {
    peer::v1::EpochLast* el = p.add_epoch_lasts();
    el->set_epoch(epoch);
    el->set_last_zxid(last);
  }
  p.set_entry_zxid(m.entry.zxid);
  p.set_entry_data(m.entry.data);
  p.set_data(m.data);
  if (m.type == MsgType::kVote) {
    peer::v1::Vote* v = p.mutable_vote();
    v->set_leader(m.vote.vote.leader);
    v->set_zxid(m.vote.vote.zxid);
    v->set_epoch(m.vote.vote.epoch);
    v->set_round(m.vote.round);
    v->set_state(static_cast<int32_t>(m.vote.state));
  }
  return p.SerializeAsString();
}

absl::StatusOr<Message> DecodeMessage(std::string_view bytes) {
  if (bytes.size() > kMaxMessageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zab message of ", bytes.size(), " bytes exceeds ", kMaxMessageBytes));
  }
  peer::v1::ZabMessage p;
  if (!p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("zab message does not parse");
  }
  if (p.type() < 0 || p.type() > kMaxType) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown zab message type ", p.type()));
  }
  if (static_cast<size_t>(p.epoch_lasts_size()) > kMaxEpochLasts) {
    return absl::InvalidArgumentError("too many epochs in a zab message");
  }
  Message m;
  m.type = static_cast<MsgType>(p.type());
  m.from = p.from();
  m.to = p.to();
  m.conn = p.conn();
  m.seq = p.seq();
  m.zxid = p.zxid();
  m.epoch = p.epoch();
  m.committed = p.committed();
  m.observer = p.observer();
  m.epoch_lasts.reserve(p.epoch_lasts_size());
  for (const peer::v1::EpochLast& el : p.epoch_lasts()) {
    m.epoch_lasts.emplace_back(el.epoch(), el.last_zxid());
  }
  m.entry.zxid = p.entry_zxid();
  m.entry.data = p.entry_data();
  m.data = p.data();
  if (m.type == MsgType::kVote) {
    const peer::v1::Vote& v = p.vote();
    if (v.state() < 0 || v.state() > kMaxState) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown peer state ", v.state()));
    }
    m.vote.from = m.from;
    m.vote.to = m.to;
    m.vote.vote = Vote{v.leader(), v.zxid(), v.epoch()};
    m.vote.round = v.round();
    m.vote.state = static_cast<PeerState>(v.state());
  }
  return m;
}

}  // namespace rockeeper::zab

namespace rockeeper::zab {
namespace {

constexpr char kBatchTag = 0x0A;  // field 1, wire type 2 (length-delimited)

}  // namespace

void AppendToBatch(std::string_view encoded_message, std::string* batch) {
  batch->push_back(kBatchTag);
  uint64_t n = encoded_message.size();
  while (n >= 0x80) {
    batch->push_back(static_cast<char>((n & 0x7F) | 0x80));
    n >>= 7;
  }
  batch->push_back(static_cast<char>(n));
  batch->append(encoded_message);
}

absl::StatusOr<std::vector<std::string_view>> SplitBatch(
    std::string_view bytes) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (out.size() == kMaxBatchMessages) {
      return absl::InvalidArgumentError(absl::StrCat(
          "zab batch of more than ", kMaxBatchMessages, " messages"));
    }
    if (bytes[pos] != kBatchTag) {
      return absl::InvalidArgumentError(
          absl::StrCat("zab batch: unexpected tag at byte ", pos));
    }
    ++pos;
    uint64_t len = 0;
    int shift = 0;
    for (;;) {
      if (pos == bytes.size() || shift > 28) {
        return absl::InvalidArgumentError("zab batch: bad message length");
      }
      const uint8_t b = static_cast<uint8_t>(bytes[pos++]);
      len |= static_cast<uint64_t>(b & 0x7F) << shift;
      shift += 7;
      if ((b & 0x80) == 0) break;
    }
    if (len > kMaxMessageBytes || len > bytes.size() - pos) {
      return absl::InvalidArgumentError(
          absl::StrCat("zab batch: message of ", len, " bytes at byte ", pos,
                       " exceeds the batch or ", kMaxMessageBytes));
    }
    out.push_back(bytes.substr(pos, len));
    pos += len;
  }
  return out;
}

void FillFrameHeader(std::string* frame) {
  const uint32_t n = static_cast<uint32_t>(frame->size() - kFrameHeaderBytes);
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
    (*frame)[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  }
}

absl::Status NextFrame(std::string_view bytes, std::string_view* batch,
                       size_t* frame_bytes) {
  *frame_bytes = 0;
  if (bytes.size() < kFrameHeaderBytes) return absl::OkStatus();
  uint32_t n = 0;
  for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
    n |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  }
  if (n == 0 || n > kMaxFrameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw peer stream: frame of ", n, " bytes (1 to ",
                     kMaxFrameBytes, " allowed)"));
  }
  if (bytes.size() - kFrameHeaderBytes < n) return absl::OkStatus();
  *batch = bytes.substr(kFrameHeaderBytes, n);
  *frame_bytes = kFrameHeaderBytes + n;
  return absl::OkStatus();
}

}  // namespace rockeeper::zab
