// Fuzz target: decoding of server-to-server ZAB messages
// (replication/zab/codec.h). Invariants: no crash; whatever decodes
// re-encodes to bytes that decode to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "replication/zab/codec.h"

namespace {
bool Same(const rockeeper::zab::Message& a, const rockeeper::zab::Message& b) {
  return a.type == b.type && a.from == b.from && a.to == b.to &&
         a.conn == b.conn && a.seq == b.seq && a.zxid == b.zxid && a.epoch == b.epoch &&
         a.committed == b.committed && a.observer == b.observer &&
         a.epoch_lasts == b.epoch_lasts && a.entry == b.entry &&
         a.data == b.data && a.vote.vote == b.vote.vote &&
         a.vote.round == b.vote.round && a.vote.state == b.vote.state;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rockeeper::zab::DecodeMessage;
  using rockeeper::zab::EncodeMessage;
  auto m = DecodeMessage(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!m.ok()) return 0;
  const std::string again = EncodeMessage(*m);
  auto m2 = DecodeMessage(again);
  if (!m2.ok() || !Same(*m, *m2)) std::abort();
  return 0;
}
