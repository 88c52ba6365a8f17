// Apache ZooKeeper 3.8's on-disk formats, for `rkutl import-zookeeper` and
// `rkutl export-zookeeper` (docs/rkutl.md; byte layouts in
// shared/reference/ZK_PROTOCOL_REFERENCE.md section 5):
//   * jute encoding (big-endian ints, length-prefixed strings, buffers and
//     vectors, -1 = null),
//   * the txn log file `log.<hex zxid>`: FileHeader "ZKLG", then records
//     {checksum long (Adler-32 of the entry), entry buffer (TxnHeader + body
//     [+ TxnDigest]), 'B'} and a zero-filled preallocated tail,
//   * the snapshot file `snapshot.<hex zxid>`: FileHeader "ZKSN", sessions,
//     ACL cache, nodes in pre-order ending with the path "/", Adler-32 seal,
//     and (3.6+) the ZxidDigest with a second seal.
//
// Every decoder works on bytes in memory, checks each length against the
// bytes left before using it, and reports damage as DataLoss
// "<file> offset <n>: <what>", the offset being that of the bad field. It
// never reads out of bounds and never allocates more than the input can
// justify.
//
// Thread safety: plain values; no shared state.
#ifndef ROCKEEPER_TOOLS_RKUTL_ZK_FORMAT_H_
#define ROCKEEPER_TOOLS_RKUTL_ZK_FORMAT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/acl.h"

namespace rockeeper::rkutl::zk {

inline constexpr int32_t kLogMagic = 0x5A4B4C47;   // "ZKLG"
inline constexpr int32_t kSnapMagic = 0x5A4B534E;  // "ZKSN"
inline constexpr int32_t kFormatVersion = 2;
inline constexpr int32_t kDigestVersion = 2;

// ZooKeeper opcodes used as txn types (ZooDefs.OpCode).
namespace op {
inline constexpr int32_t kError = -1;
inline constexpr int32_t kCreateSession = -10;
inline constexpr int32_t kCloseSession = -11;
inline constexpr int32_t kCreate = 1;
inline constexpr int32_t kDelete = 2;
inline constexpr int32_t kSetData = 5;
inline constexpr int32_t kSetAcl = 7;
inline constexpr int32_t kCheck = 13;
inline constexpr int32_t kMulti = 14;
inline constexpr int32_t kCreate2 = 15;
inline constexpr int32_t kReconfig = 16;
inline constexpr int32_t kCreateContainer = 19;
inline constexpr int32_t kDeleteContainer = 20;
inline constexpr int32_t kCreateTtl = 21;
}  // namespace op

// java.util.zip.Adler32 and CRC32 (zlib's), continuing from `state`.
uint32_t Adler32(uint32_t state, absl::string_view data);
inline constexpr uint32_t kAdler32Init = 1;
uint32_t Crc32(uint32_t state, absl::string_view data);

// The session password ZooKeeper derives from a session id:
// java.util.Random(id ^ 0xB3415C00).nextBytes(16).
std::string ZkSessionPassword(int64_t session_id);

// A bounds-checked jute reader. `base` is the file offset of data[0], so that
// errors name offsets in the file.
class Reader {
 public:
  Reader(absl::string_view file, absl::string_view data, uint64_t base = 0)
      : file_(file), data_(data), base_(base) {}

  absl::Status Int(int32_t* v, absl::string_view what);
  absl::Status Long(int64_t* v, absl::string_view what);
  absl::Status Byte(uint8_t* v, absl::string_view what);
  absl::Status Bool(bool* v, absl::string_view what);
  // A buffer; null (-1) reads as empty with *is_null set (if given).
  absl::Status Buffer(std::string* v, bool* is_null, absl::string_view what);
  // A ustring; null is refused (paths, schemes, ids are never null).
  absl::Status String(std::string* v, absl::string_view what);
  // A vector's element count; each element takes at least `min_elem_bytes`
  // bytes, so a count the input cannot hold is refused. Null is refused.
  absl::Status Count(int32_t* n, size_t min_elem_bytes, absl::string_view what);
  absl::Status AclList(engine::AclVector* acl, absl::string_view what);
  // A view of the next `n` bytes (n <= remaining() checked).
  absl::Status View(size_t n, absl::string_view* v, absl::string_view what);

  // Moves back to an earlier position (pos <= pos()).
  void Seek(size_t pos) { pos_ = pos; }
  size_t remaining() const { return data_.size() - pos_; }
  size_t pos() const { return pos_; }
  uint64_t offset() const { return base_ + pos_; }
  absl::string_view file() const { return file_; }
  // DataLoss "<file> offset <offset>: <detail>".
  absl::Status ErrorAt(uint64_t offset, absl::string_view detail) const;
  absl::Status Error(absl::string_view detail) const {
    return ErrorAt(offset(), detail);
  }

 private:
  absl::Status Need(size_t n, absl::string_view what);

  absl::string_view file_;
  absl::string_view data_;
  uint64_t base_;
  size_t pos_ = 0;
};

// Jute encoding into a string.
class Writer {
 public:
  void Int(int32_t v);
  void Long(int64_t v);
  void Bool(bool v) { out_.push_back(v ? 1 : 0); }
  void Buffer(absl::string_view v);  // never null
  void String(absl::string_view v) { Buffer(v); }
  void AclList(const engine::AclVector& acl);
  std::string& data() { return out_; }

 private:
  std::string out_;
};

// --- Txn log ----------------------------------------------------------------

struct TxnHeader {
  int64_t client_id = 0;  // session id
  int32_t cxid = 0;
  int64_t zxid = 0;
  int64_t time_ms = 0;
  int32_t type = 0;
};

// One txn body (or a multi's sub-txn), decoded by type.
struct TxnBody {
  int32_t type = 0;
  std::string path;  // create*, delete*, setData, setACL, check
  std::string data;  // create*, setData
  bool data_null = false;
  engine::AclVector acl;             // create*, setACL
  bool ephemeral = false;            // create/create2
  int32_t parent_cversion = -1;      // create* (-1: CreateTxnV0, parent's + 1)
  int64_t ttl_ms = 0;                // createTTL
  int32_t version = 0;               // setData (new version), setACL, check
  int32_t err = 0;                   // error
  int32_t timeout_ms = 0;            // createSession
  bool has_paths_to_delete = false;  // closeSession with a CloseSessionTxn
  std::vector<std::string> paths_to_delete;
  std::vector<TxnBody> sub;  // multi
};

struct Txn {
  TxnHeader header;
  TxnBody body;
  std::optional<int64_t> digest;  // TxnDigest.treeDigest, when present
};

// Decodes one log entry (TxnHeader + body [+ TxnDigest]); `base` is the
// entry's file offset.
absl::StatusOr<Txn> DecodeTxnEntry(absl::string_view file,
                                   absl::string_view entry, uint64_t base);

// Reads the records of one log file in order. A zero entry length (the
// preallocated tail) or the end of the file ends it cleanly; anything else
// that is not a whole, valid record is damage.
class LogFileReader {
 public:
  // Checks the FileHeader.
  static absl::StatusOr<LogFileReader> Open(std::string file,
                                            absl::string_view data);

  // The next txn, or std::nullopt at the clean end. `torn` (if given) is set
  // when the error is a record cut short by the end of the file (what a
  // crash during a write leaves).
  absl::StatusOr<std::optional<Txn>> Next(bool* torn = nullptr);
  uint64_t offset() const { return offset_; }  // of the next record
  const std::string& file() const { return file_; }

 private:
  LogFileReader(std::string file, absl::string_view data)
      : file_(std::move(file)), data_(data) {}
  std::string file_;
  absl::string_view data_;
  uint64_t offset_ = 16;
};

// --- Snapshot ---------------------------------------------------------------

struct StatPersisted {
  int64_t czxid = 0;
  int64_t mzxid = 0;
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int32_t version = 0;
  int32_t cversion = 0;  // persisted: children ever created
  int32_t aversion = 0;
  int64_t ephemeral_owner = 0;  // raw (session, container, TTL)
  int64_t pzxid = 0;
};

// Callbacks of ParseSnapshot, in file order.
class SnapshotVisitor {
 public:
  virtual ~SnapshotVisitor() = default;
  virtual absl::Status Session(int64_t id, int32_t timeout_ms) = 0;
  virtual absl::Status AclEntry(int64_t index, engine::AclVector acl) = 0;
  // `path` is "" for the root, as ZooKeeper writes it. `offset` is the
  // record's file offset (for errors).
  virtual absl::Status Node(std::string path, std::string data, bool data_null,
                            int64_t acl_index, const StatPersisted& stat,
                            uint64_t offset) = 0;
};

struct SnapshotTrailer {
  // The ZxidDigest section (absent in snapshots written with the digest
  // disabled or before 3.6).
  bool has_digest = false;
  int64_t digest_zxid = 0;
  int32_t digest_version = 0;
  int64_t digest = 0;
};

// Parses a whole uncompressed snapshot file and verifies both seals.
absl::StatusOr<SnapshotTrailer> ParseSnapshot(absl::string_view file,
                                              absl::string_view data,
                                              SnapshotVisitor* visitor);

// ZooKeeper's quick validity check (FileSnap.findNValidSnapshots): at least
// 10 bytes, ending with the path "/" (00000001 2f).
bool LooksLikeCompleteSnapshot(absl::string_view data);

// Writes a snapshot file incrementally, keeping the running Adler-32.
class SnapshotWriter {
 public:
  explicit SnapshotWriter(std::string* out) : out_(out) {}
  void Header();
  void Sessions(const std::vector<std::pair<int64_t, int32_t>>& sessions);
  void Acls(const std::vector<std::pair<int64_t, engine::AclVector>>& acls);
  // `path` "" for the root; `data_null` writes the null buffer (-1).
  void Node(absl::string_view path, absl::string_view data, int64_t acl_index,
            const StatPersisted& stat, bool data_null = false);
  // The "/" terminator, seal, ZxidDigest and second seal.
  void Finish(int64_t digest_zxid, int64_t digest);
  // Moves the bytes written so far into `chunk` (to write to disk), keeping
  // the checksum state.
  void TakeChunk(std::string* chunk);
  size_t buffered() const { return out_->size(); }

 private:
  void Seal();
  void Absorb();  // adds bytes not yet summed to the Adler-32
  std::string* out_;
  size_t summed_ = 0;
  uint32_t adler_ = kAdler32Init;
};

// The tree digest term of one node (DigestCalculator, version 2): CRC-32 of
// path ("" for the root), data and the stat fields; 0 for paths under
// "/zookeeper/".
uint32_t NodeDigest(absl::string_view path, absl::string_view data,
                    const StatPersisted& stat);

// The zxid in a file name "<prefix>.<hex>" (ZooKeeper's Util.getZxidFromName),
// or std::nullopt if the name is not of that form.
std::optional<int64_t> ZxidFromName(absl::string_view name,
                                    absl::string_view prefix);

}  // namespace rockeeper::rkutl::zk

#endif  // ROCKEEPER_TOOLS_RKUTL_ZK_FORMAT_H_
