// Fuzz target: decoding of server-to-server ZAB messages
// (replication/zab/codec.h), alone, as batches and as raw-stream frames.
// Invariants: no crash; whatever decodes re-encodes to bytes that decode to
// the same message; a batch that splits, framed again, splits into the same
// messages; a frame never claims more bytes than it was given.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "replication/zab/codec.h"

namespace {
bool Same(const rockeeper::zab::Message& a, const rockeeper::zab::Message& b) {
  return a.type == b.type && a.from == b.from && a.to == b.to &&
         a.conn == b.conn && a.seq == b.seq && a.zxid == b.zxid &&
         a.epoch == b.epoch && a.committed == b.committed &&
         a.observer == b.observer && a.epoch_lasts == b.epoch_lasts &&
         a.entry == b.entry && a.data == b.data && a.vote.vote == b.vote.vote &&
         a.vote.round == b.vote.round && a.vote.state == b.vote.state;
}

void CheckMessage(std::string_view bytes) {
  using rockeeper::zab::DecodeMessage;
  using rockeeper::zab::EncodeMessage;
  auto m = DecodeMessage(bytes);
  if (!m.ok()) return;
  const std::string again = EncodeMessage(*m);
  auto m2 = DecodeMessage(again);
  if (!m2.ok() || !Same(*m, *m2)) std::abort();
}

void CheckFrames(std::string_view rest) {
  for (;;) {
    std::string_view batch;
    size_t used = 0;
    if (!rockeeper::zab::NextFrame(rest, &batch, &used).ok() || used == 0) {
      return;
    }
    if (used > rest.size() || batch.size() + 4 != used) std::abort();
    auto parts = rockeeper::zab::SplitBatch(batch);
    if (parts.ok()) {
      for (std::string_view part : *parts) CheckMessage(part);
    }
    rest.remove_prefix(used);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckMessage(bytes);
  CheckFrames(bytes);
  auto parts = rockeeper::zab::SplitBatch(bytes);
  if (!parts.ok()) return 0;
  std::string framed;
  for (std::string_view part : *parts) {
    CheckMessage(part);
    rockeeper::zab::AppendToBatch(part, &framed);
  }
  auto again = rockeeper::zab::SplitBatch(framed);
  if (!again.ok() || *again != *parts) std::abort();
  return 0;
}
