// Fuzz target: jute decoding of every client-protocol record and framing.
// Invariants: no crash or over-read; whatever decodes re-encodes to bytes
// that decode to the same record (checked by re-encoding twice).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "rpc/jute.h"

namespace {

using namespace rockeeper::jute;

template <typename T, typename... Extra>
void RoundTrip(absl::string_view in, Extra... extra) {
  JuteReader r(in, 1 << 16);
  T v;
  if (!Read(r, &v, extra...)) return;
  JuteWriter w1;
  Write(w1, v, extra...);
  JuteReader r2(w1.data(), 1 << 16);
  T v2;
  if (!Read(r2, &v2, extra...)) std::abort();
  JuteWriter w2;
  Write(w2, v2, extra...);
  if (w1.data() != w2.data()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 14) {
    case 0: RoundTrip<ConnectRequest>(in); break;
    case 1: RoundTrip<ConnectResponse>(in); break;
    case 2: RoundTrip<RequestHeader>(in); break;
    case 3: RoundTrip<CreateRequest>(in, false); break;
    case 4: RoundTrip<CreateRequest>(in, true); break;
    case 5: RoundTrip<PathVersionRequest>(in); break;
    case 6: RoundTrip<PathWatchRequest>(in); break;
    case 7: RoundTrip<SetDataRequest>(in); break;
    case 8: RoundTrip<SetAclRequest>(in); break;
    case 9: RoundTrip<SetWatches>(in, true); break;
    case 10: RoundTrip<AuthPacket>(in); break;
    case 11: RoundTrip<MultiHeader>(in); break;
    case 12: RoundTrip<Stat>(in); break;
    default: {
      size_t consumed = 0;
      bool bad = false;
      absl::string_view rest = in;
      for (int i = 0; i < 1000; ++i) {
        auto frame = NextFrame(rest, 1 << 16, &consumed, &bad);
        if (!frame) break;
        if (consumed == 0 || consumed > rest.size()) std::abort();
        rest.remove_prefix(consumed);
      }
    }
  }
  return 0;
}
