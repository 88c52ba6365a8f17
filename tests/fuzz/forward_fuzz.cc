// Fuzz target: decoding of writes a learner forwards to the leader
// (replication/forwarding.h). Invariants: no crash; whatever decodes
// re-encodes to bytes that decode and re-encode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "replication/forwarding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using rockeeper::replication::DecodeForwardedWrite;
  using rockeeper::replication::EncodeForwardedWrite;
  auto w = DecodeForwardedWrite(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!w.ok()) return 0;
  const std::string once = EncodeForwardedWrite(*w);
  auto w2 = DecodeForwardedWrite(once);
  if (!w2.ok() || EncodeForwardedWrite(*w2) != once) std::abort();
  return 0;
}
