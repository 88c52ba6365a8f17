// Jute, ZooKeeper's binary record encoding (wire protocol, ZAB, disk):
//   int 4 bytes BE, long 8 bytes BE, boolean 1 byte, ustring/buffer = int
//   length (-1 = null) + bytes, vector = int count (-1 = null) + elements,
//   records = fields in order, no tags.
// And the client protocol's records (zookeeper.jute) this server decodes and
// encodes. Layouts: shared/reference/ZK_PROTOCOL_REFERENCE.md sections 1.2-1.8.
//
// JuteReader validates every length against the bytes left and a maximum
// (jute.maxbuffer): malformed input makes the reader fail (ok() false), it
// never reads out of bounds or allocates more than the input can justify.
#ifndef ROCKEEPER_RPC_JUTE_H_
#define ROCKEEPER_RPC_JUTE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace rockeeper::jute {

class JuteReader {
 public:
  // `max_length`: largest accepted string/buffer length and vector count.
  explicit JuteReader(absl::string_view data, int64_t max_length = 0xFFFFF)
      : data_(data), max_length_(max_length) {}

  bool ReadInt(int32_t* v);
  bool ReadLong(int64_t* v);
  bool ReadBool(bool* v);
  // null (-1) reads as empty with *is_null = true (if is_null given).
  bool ReadBuffer(std::string* v, bool* is_null = nullptr);
  bool ReadString(std::string* v) { return ReadBuffer(v); }
  // Element count of a vector (-1, null, reads as 0).
  bool ReadCount(int32_t* n);

  bool ok() const { return ok_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool AtEnd() const { return pos_ == data_.size(); }
  size_t position() const { return pos_; }

 private:
  bool Take(size_t n, const char** p);
  bool Fail() {
    ok_ = false;
    return false;
  }

  absl::string_view data_;
  size_t pos_ = 0;
  int64_t max_length_;
  bool ok_ = true;
};

class JuteWriter {
 public:
  void WriteInt(int32_t v);
  void WriteLong(int64_t v);
  void WriteBool(bool v);
  void WriteBuffer(absl::string_view v);
  void WriteNullBuffer() { WriteInt(-1); }
  void WriteString(absl::string_view v) { WriteBuffer(v); }
  void WriteCount(int32_t n) { WriteInt(n); }
  // Appends bytes already in jute encoding (engine::PackedNames).
  void WriteEncoded(absl::string_view encoded) {
    out_.append(encoded.data(), encoded.size());
  }
  // Makes room for `more` bytes beyond what was written.
  void Reserve(size_t more) { out_.reserve(out_.size() + more); }

  const std::string& data() const { return out_; }
  std::string Release() { return std::move(out_); }
  // Frames what was written: 4-byte BE length + payload.
  std::string Framed() const;

 private:
  std::string out_;
};

// --- Records --------------------------------------------------------------

struct Id {
  std::string scheme;
  std::string id;
};
struct Acl {
  int32_t perms = 0;
  Id id;
};
struct Stat {
  int64_t czxid = 0, mzxid = 0, ctime = 0, mtime = 0;
  int32_t version = 0, cversion = 0, aversion = 0;
  int64_t ephemeral_owner = 0;
  int32_t data_length = 0, num_children = 0;
  int64_t pzxid = 0;
};
struct ConnectRequest {
  int32_t protocol_version = 0;
  int64_t last_zxid_seen = 0;
  int32_t timeout_ms = 0;
  int64_t session_id = 0;
  std::string password;
  std::optional<bool> read_only;  // absent in 44-byte requests
};
struct ConnectResponse {
  int32_t protocol_version = 0;
  int32_t timeout_ms = 0;
  int64_t session_id = 0;
  std::string password;
  std::optional<bool> read_only;  // sent only if the request had it
};
struct RequestHeader {
  int32_t xid = 0;
  int32_t type = 0;
};
struct ReplyHeader {
  int32_t xid = 0;
  int64_t zxid = 0;
  int32_t err = 0;
};
struct CreateRequest {
  std::string path;
  std::string data;
  bool data_null = false;
  std::vector<Acl> acl;
  int32_t flags = 0;
  int64_t ttl = -1;  // CreateTTLRequest only
};
struct PathVersionRequest {  // DeleteRequest, CheckVersionRequest
  std::string path;
  int32_t version = -1;
};
struct PathWatchRequest {  // Exists, GetData, GetChildren(2)
  std::string path;
  bool watch = false;
};
struct SetDataRequest {
  std::string path;
  std::string data;
  int32_t version = -1;
  bool data_null = false;  // a null buffer (length -1); `data` is empty
};
struct SetAclRequest {
  std::string path;
  std::vector<Acl> acl;
  int32_t version = -1;
};
struct WatcherEvent {
  int32_t type = 0;
  int32_t state = 0;
  std::string path;
};
struct MultiHeader {
  int32_t type = 0;
  bool done = false;
  int32_t err = 0;
};
struct AuthPacket {
  int32_t type = 0;
  std::string scheme;
  std::string auth;
};
struct SetWatches {
  int64_t relative_zxid = 0;
  std::vector<std::string> data, exist, child, persistent, persistent_recursive;
};

// Decoders return false (and leave the reader failed) on malformed input.
bool Read(JuteReader& r, Id* v);
bool Read(JuteReader& r, Acl* v);
bool Read(JuteReader& r, std::vector<Acl>* v);
bool Read(JuteReader& r, Stat* v);
bool Read(JuteReader& r, ConnectRequest* v);  // consumes an optional readOnly
bool Read(JuteReader& r, ConnectResponse* v);
bool Read(JuteReader& r, RequestHeader* v);
bool Read(JuteReader& r, ReplyHeader* v);
bool Read(JuteReader& r, CreateRequest* v, bool with_ttl);
bool Read(JuteReader& r, PathVersionRequest* v);
bool Read(JuteReader& r, PathWatchRequest* v);
bool Read(JuteReader& r, SetDataRequest* v);
bool Read(JuteReader& r, SetAclRequest* v);
bool Read(JuteReader& r, WatcherEvent* v);
bool Read(JuteReader& r, MultiHeader* v);
bool Read(JuteReader& r, AuthPacket* v);
// SetWatches (opcode 101) has 3 lists, SetWatches2 (105) 5.
bool Read(JuteReader& r, SetWatches* v, bool v2);
bool Read(JuteReader& r, std::vector<std::string>* v);

void Write(JuteWriter& w, const Id& v);
void Write(JuteWriter& w, const Acl& v);
void Write(JuteWriter& w, const std::vector<Acl>& v);
void Write(JuteWriter& w, const Stat& v);
void Write(JuteWriter& w, const ConnectRequest& v);
void Write(JuteWriter& w, const ConnectResponse& v);
void Write(JuteWriter& w, const RequestHeader& v);
void Write(JuteWriter& w, const ReplyHeader& v);
void Write(JuteWriter& w, const CreateRequest& v, bool with_ttl);
void Write(JuteWriter& w, const PathVersionRequest& v);
void Write(JuteWriter& w, const PathWatchRequest& v);
void Write(JuteWriter& w, const SetDataRequest& v);
void Write(JuteWriter& w, const SetAclRequest& v);
void Write(JuteWriter& w, const WatcherEvent& v);
void Write(JuteWriter& w, const MultiHeader& v);
void Write(JuteWriter& w, const AuthPacket& v);
void Write(JuteWriter& w, const SetWatches& v, bool v2);
void Write(JuteWriter& w, const std::vector<std::string>& v);
// A vector<ustring> from any sized range of strings (a protobuf repeated
// field), without copying it into a std::vector first.
template <typename StringRange>
void WriteStringList(JuteWriter& w, const StringRange& v) {
  size_t bytes = 4;
  for (const auto& s : v) bytes += 4 + s.size();
  w.Reserve(bytes + 80);  // one growth for a wide getChildren(2) reply
  w.WriteCount(static_cast<int32_t>(v.size()));
  for (const auto& s : v) w.WriteString(s);
}

// Splits a stream into frames: returns the payload of the first complete
// frame of `buffer` (and sets *consumed), nullopt if more bytes are needed,
// or sets *bad when the length is negative or above `max_frame_bytes` (the
// connection must then be closed).
std::optional<absl::string_view> NextFrame(absl::string_view buffer,
                                           int64_t max_frame_bytes,
                                           size_t* consumed, bool* bad);

}  // namespace rockeeper::jute

#endif  // ROCKEEPER_RPC_JUTE_H_
