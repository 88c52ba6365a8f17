// Encoding of zab::Message for the wire between servers: the
// rockeeper.peer.v1.ZabMessage protobuf (proto/rockeeper/peer/v1/peer.proto).
//
// DecodeMessage validates everything a peer controls: the frame size, the
// message type, vote states, and sizes of repeated fields and payloads, and
// returns InvalidArgument for anything else; it never crashes on any input
// (fuzz target: tests/fuzz/zab_codec_fuzz.cc).
#ifndef ROCKEEPER_REPLICATION_ZAB_CODEC_H_
#define ROCKEEPER_REPLICATION_ZAB_CODEC_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "replication/zab/messages.h"

namespace rockeeper::zab {

// Largest encoded message accepted. Default bound: 64 MiB (a txn is at most
// jute.maxbuffer, 1 MiB by default, plus headers).
inline constexpr size_t kMaxMessageBytes = 64u << 20;
// Most epochs an ACKEPOCH may describe.
inline constexpr size_t kMaxEpochLasts = 1u << 16;

std::string EncodeMessage(const Message& m);
absl::StatusOr<Message> DecodeMessage(std::string_view bytes);

// Batches: the rockeeper.peer.v1.ZabBatch protobuf, `repeated ZabMessage
// messages = 1`, i.e. for each message the tag byte 0x0A, its length as a
// varint, and its encoding. Framed by hand so that encoded messages are
// copied into a batch, never parsed and serialized again.
//
// Most messages in one batch. Default bound: 64 Ki.
inline constexpr size_t kMaxBatchMessages = 1u << 16;
// Appends one encoded message to `batch`.
void AppendToBatch(std::string_view encoded_message, std::string* batch);
// The encoded messages of a batch, as views into `bytes`, in order. Checks
// the framing only (every field is field 1, length-delimited; lengths are
// within the bytes and kMaxMessageBytes; at most kMaxBatchMessages); each
// message still goes through DecodeMessage.
absl::StatusOr<std::vector<std::string_view>> SplitBatch(
    std::string_view bytes);

// Raw peer streams (replication/zab/peer_transport.h), the quorum port's
// plain-TCP protocol beside gRPC:
//
//   sender   -> receiver: kRawStreamHello (8 bytes), then frames
//   receiver -> sender:   kRawStreamHello once, as "I speak this protocol";
//                         nothing else, ever
//   frame:    fixed32 little-endian length N, 1 <= N <= kMaxFrameBytes,
//             then N bytes: one batch as above (AppendToBatch framing)
//
// The hello's first byte is not 'P', the first byte of the HTTP/2 client
// preface, so one port can tell raw streams from gRPC connections.
inline constexpr char kRawStreamHello[] = "RKZAB01\n";
inline constexpr size_t kRawStreamHelloBytes = 8;
inline constexpr size_t kFrameHeaderBytes = 4;
// A batch around one message of kMaxMessageBytes (tag + varint) still fits.
inline constexpr size_t kMaxFrameBytes = kMaxMessageBytes + 16;
// Makes `batch` (a batch built from offset kFrameHeaderBytes on, the first
// kFrameHeaderBytes bytes reserved) a frame by writing its header.
void FillFrameHeader(std::string* frame);
// Looks at the start of `bytes` (what a raw stream has delivered and not yet
// consumed). A complete frame: its batch in `batch`, and the bytes it takes
// in `frame_bytes`. Incomplete: `frame_bytes` = 0. InvalidArgument for a
// length of 0 or above kMaxFrameBytes.
absl::Status NextFrame(std::string_view bytes, std::string_view* batch,
                       size_t* frame_bytes);

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_CODEC_H_
