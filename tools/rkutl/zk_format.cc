#include "tools/rkutl/zk_format.h"

#include <array>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rockeeper::rkutl::zk {
namespace {

// Smallest encodings, for bounding vector counts by the bytes left.
constexpr size_t kMinAclBytes = 4 + 4 + 4;  // perms, scheme, id
constexpr size_t kMinStringBytes = 4;       // length
constexpr size_t kStatPersistedBytes = 60;
constexpr uint8_t kEndOfRecord = 'B';

uint64_t Be(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

bool AllZero(absl::string_view data) {
  for (char c : data) {
    if (c != 0) return false;
  }
  return true;
}

void PutBe(std::string* out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

}  // namespace

uint32_t Adler32(uint32_t state, absl::string_view data) {
  constexpr uint32_t kMod = 65521;
  constexpr size_t kNmax = 5552;  // largest n with no 32-bit overflow
  uint32_t a = state & 0xFFFF;
  uint32_t b = state >> 16;
  size_t i = 0;
  while (i < data.size()) {
    const size_t end = std::min(data.size(), i + kNmax);
    for (; i < end; ++i) {
      a += static_cast<uint8_t>(data[i]);
      b += a;
    }
    a %= kMod;
    b %= kMod;
  }
  return (b << 16) | a;
}

uint32_t Crc32(uint32_t state, absl::string_view data) {
  static const std::array<uint32_t, 256> kTable = MakeCrcTable();
  uint32_t c = state ^ 0xFFFFFFFFu;
  for (char ch : data) {
    c = kTable[(c ^ static_cast<uint8_t>(ch)) & 0xFF] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

std::string ZkSessionPassword(int64_t session_id) {
  constexpr uint64_t kMultiplier = 0x5DEECE66DULL;
  constexpr uint64_t kMask = (1ULL << 48) - 1;
  uint64_t seed =
      (static_cast<uint64_t>(session_id ^ 0xB3415C00LL) ^ kMultiplier) & kMask;
  std::string out;
  while (out.size() < 16) {
    seed = (seed * kMultiplier + 0xB) & kMask;
    auto r = static_cast<uint32_t>(seed >> 16);
    for (int k = 0; k < 4 && out.size() < 16; ++k) {
      out.push_back(static_cast<char>(r & 0xFF));
      r >>= 8;
    }
  }
  return out;
}

// --- Reader
// -------------------------------------------------------------------

absl::Status Reader::ErrorAt(uint64_t offset, absl::string_view detail) const {
  return absl::DataLossError(
      absl::StrCat(file_, " offset ", offset, ": ", detail));
}

absl::Status Reader::Need(size_t n, absl::string_view what) {
  if (remaining() >= n) return absl::OkStatus();
  return Error(absl::StrCat("truncated: ", what, " needs ", n,
                            " bytes, the data ends after ", remaining()));
}

absl::Status Reader::Int(int32_t* v, absl::string_view what) {
  if (absl::Status s = Need(4, what); !s.ok()) return s;
  *v = static_cast<int32_t>(static_cast<uint32_t>(Be(data_.data() + pos_, 4)));
  pos_ += 4;
  return absl::OkStatus();
}

absl::Status Reader::Long(int64_t* v, absl::string_view what) {
  if (absl::Status s = Need(8, what); !s.ok()) return s;
  *v = static_cast<int64_t>(Be(data_.data() + pos_, 8));
  pos_ += 8;
  return absl::OkStatus();
}

absl::Status Reader::Byte(uint8_t* v, absl::string_view what) {
  if (absl::Status s = Need(1, what); !s.ok()) return s;
  *v = static_cast<uint8_t>(data_[pos_++]);
  return absl::OkStatus();
}

absl::Status Reader::Bool(bool* v, absl::string_view what) {
  uint8_t b = 0;
  if (absl::Status s = Byte(&b, what); !s.ok()) return s;
  *v = b != 0;
  return absl::OkStatus();
}

absl::Status Reader::Buffer(std::string* v, bool* is_null,
                            absl::string_view what) {
  const uint64_t at = offset();
  int32_t len = 0;
  if (absl::Status s = Int(&len, what); !s.ok()) return s;
  if (is_null != nullptr) *is_null = len == -1;
  if (len == -1) {
    v->clear();
    return absl::OkStatus();
  }
  if (len < 0) {
    return ErrorAt(at, absl::StrCat("negative length ", len, " of ", what));
  }
  if (static_cast<size_t>(len) > remaining()) {
    return ErrorAt(at,
                   absl::StrCat("length ", len, " of ", what, " exceeds the ",
                                remaining(), " bytes left"));
  }
  v->assign(data_.data() + pos_, static_cast<size_t>(len));
  pos_ += static_cast<size_t>(len);
  return absl::OkStatus();
}

absl::Status Reader::String(std::string* v, absl::string_view what) {
  const uint64_t at = offset();
  bool is_null = false;
  if (absl::Status s = Buffer(v, &is_null, what); !s.ok()) return s;
  if (is_null) return ErrorAt(at, absl::StrCat(what, " is null"));
  return absl::OkStatus();
}

absl::Status Reader::Count(int32_t* n, size_t min_elem_bytes,
                           absl::string_view what) {
  const uint64_t at = offset();
  if (absl::Status s = Int(n, what); !s.ok()) return s;
  if (*n < 0) {
    return ErrorAt(at, *n == -1
                           ? absl::StrCat(what, " is a null vector")
                           : absl::StrCat("negative count ", *n, " of ", what));
  }
  if (static_cast<uint64_t>(*n) * min_elem_bytes > remaining()) {
    return ErrorAt(
        at, absl::StrCat("count ", *n, " of ", what, " cannot fit in the ",
                         remaining(), " bytes left"));
  }
  return absl::OkStatus();
}

absl::Status Reader::AclList(engine::AclVector* acl, absl::string_view what) {
  int32_t n = 0;
  if (absl::Status s = Count(&n, kMinAclBytes, what); !s.ok()) return s;
  acl->clear();
  acl->reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    int32_t perms = 0;
    std::string scheme, id;
    if (absl::Status s = Int(&perms, "ACL perms"); !s.ok()) return s;
    if (absl::Status s = String(&scheme, "ACL scheme"); !s.ok()) return s;
    if (absl::Status s = String(&id, "ACL id"); !s.ok()) return s;
    acl->push_back(engine::MakeAcl(perms, scheme, id));
  }
  return absl::OkStatus();
}

absl::Status Reader::View(size_t n, absl::string_view* v,
                          absl::string_view what) {
  if (absl::Status s = Need(n, what); !s.ok()) return s;
  *v = data_.substr(pos_, n);
  pos_ += n;
  return absl::OkStatus();
}

// --- Writer
// -------------------------------------------------------------------

void Writer::Int(int32_t v) { PutBe(&out_, static_cast<uint32_t>(v), 4); }
void Writer::Long(int64_t v) { PutBe(&out_, static_cast<uint64_t>(v), 8); }
void Writer::Buffer(absl::string_view v) {
  Int(static_cast<int32_t>(v.size()));
  out_.append(v.data(), v.size());
}
void Writer::AclList(const engine::AclVector& acl) {
  Int(static_cast<int32_t>(acl.size()));
  for (const auto& a : acl) {
    Int(a.perms());
    String(a.scheme());
    String(a.id());
  }
}

// --- Txns
// ---------------------------------------------------------------------

namespace {

absl::Status DecodeCreateCommon(Reader& r, TxnBody* b) {
  if (absl::Status s = r.String(&b->path, "path"); !s.ok()) return s;
  if (absl::Status s = r.Buffer(&b->data, &b->data_null, "data"); !s.ok()) {
    return s;
  }
  return r.AclList(&b->acl, "ACL");
}

absl::Status DecodeBody(Reader& r, int32_t type, bool top_level, TxnBody* b);

absl::Status DecodeMulti(Reader& r, TxnBody* b) {
  int32_t n = 0;
  if (absl::Status s = r.Count(&n, 8, "multi txns"); !s.ok()) return s;
  b->sub.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    int32_t type = 0;
    if (absl::Status s = r.Int(&type, "multi sub-txn type"); !s.ok()) return s;
    const uint64_t at = r.offset();
    int32_t len = 0;
    if (absl::Status s = r.Int(&len, "multi sub-txn length"); !s.ok()) {
      return s;
    }
    if (len < 0 || static_cast<size_t>(len) > r.remaining()) {
      return r.ErrorAt(
          at, absl::StrCat("multi sub-txn length ", len, " is invalid (",
                           r.remaining(), " bytes left)"));
    }
    const uint64_t data_offset = r.offset();
    absl::string_view data;
    if (absl::Status s = r.View(static_cast<size_t>(len), &data, "sub-txn");
        !s.ok()) {
      return s;
    }
    Reader sub(r.file(), data, data_offset);
    TxnBody body;
    if (absl::Status s = DecodeBody(sub, type, false, &body); !s.ok()) {
      return s;
    }
    if (sub.remaining() != 0) {
      return sub.Error(absl::StrCat(sub.remaining(),
                                    " unexpected bytes after multi sub-txn ", i,
                                    " (type ", type, ")"));
    }
    b->sub.push_back(std::move(body));
  }
  return absl::OkStatus();
}

absl::Status DecodeBody(Reader& r, int32_t type, bool top_level, TxnBody* b) {
  b->type = type;
  switch (type) {
    case op::kCreateSession:
      if (!top_level) break;
      return r.Int(&b->timeout_ms, "session timeout");
    case op::kCloseSession: {
      if (!top_level) break;
      // 3.6+ writes a CloseSessionTxn; older versions no body. What is left
      // after a body is nothing or a 12-byte TxnDigest.
      const size_t start = r.pos();
      const size_t total = r.remaining();
      int32_t n = 0;
      absl::Status s = r.Count(&n, kMinStringBytes, "paths to delete");
      for (int32_t i = 0; s.ok() && i < n; ++i) {
        std::string p;
        s = r.String(&p, "path to delete");
        b->paths_to_delete.push_back(std::move(p));
      }
      if (s.ok() && (r.remaining() == 0 || r.remaining() == 12)) {
        b->has_paths_to_delete = true;
        return absl::OkStatus();
      }
      b->paths_to_delete.clear();
      if (total == 0 || total == 12) {
        r.Seek(start);  // no body
        return absl::OkStatus();
      }
      return s.ok() ? r.Error("malformed closeSession body") : s;
    }
    case op::kCreate:
    case op::kCreate2: {
      if (absl::Status s = DecodeCreateCommon(r, b); !s.ok()) return s;
      if (absl::Status s = r.Bool(&b->ephemeral, "ephemeral"); !s.ok()) {
        return s;
      }
      if (type == op::kCreate && r.remaining() < 4) {
        b->parent_cversion = -1;  // CreateTxnV0 (before 3.3)
        return absl::OkStatus();
      }
      return r.Int(&b->parent_cversion, "parent cversion");
    }
    case op::kCreateTtl:
      if (absl::Status s = DecodeCreateCommon(r, b); !s.ok()) return s;
      if (absl::Status s = r.Int(&b->parent_cversion, "parent cversion");
          !s.ok()) {
        return s;
      }
      if (absl::Status s = r.Long(&b->ttl_ms, "ttl"); !s.ok()) return s;
      if (b->ttl_ms <= 0 || b->ttl_ms > 0xFFFFFFFFFFLL) {
        return r.Error(absl::StrCat("invalid TTL ", b->ttl_ms, " ms"));
      }
      return absl::OkStatus();
    case op::kCreateContainer:
      if (absl::Status s = DecodeCreateCommon(r, b); !s.ok()) return s;
      return r.Int(&b->parent_cversion, "parent cversion");
    case op::kDelete:
    case op::kDeleteContainer:
      return r.String(&b->path, "path");
    case op::kSetData:
    case op::kReconfig:
      if (!top_level && type == op::kReconfig) break;
      if (absl::Status s = r.String(&b->path, "path"); !s.ok()) return s;
      if (absl::Status s = r.Buffer(&b->data, &b->data_null, "data"); !s.ok()) {
        return s;
      }
      return r.Int(&b->version, "version");
    case op::kSetAcl:
      if (!top_level) break;
      if (absl::Status s = r.String(&b->path, "path"); !s.ok()) return s;
      if (absl::Status s = r.AclList(&b->acl, "ACL"); !s.ok()) return s;
      return r.Int(&b->version, "ACL version");
    case op::kCheck:
      if (absl::Status s = r.String(&b->path, "path"); !s.ok()) return s;
      return r.Int(&b->version, "version");
    case op::kError:
      return r.Int(&b->err, "error code");
    case op::kMulti:
      if (!top_level) break;
      return DecodeMulti(r, b);
    default:
      break;
  }
  return r.Error(absl::StrCat("unsupported txn type ", type,
                              top_level ? "" : " inside a multi"));
}

}  // namespace

absl::StatusOr<Txn> DecodeTxnEntry(absl::string_view file,
                                   absl::string_view entry, uint64_t base) {
  Reader r(file, entry, base);
  Txn txn;
  TxnHeader& h = txn.header;
  if (absl::Status s = r.Long(&h.client_id, "session id"); !s.ok()) return s;
  if (absl::Status s = r.Int(&h.cxid, "cxid"); !s.ok()) return s;
  if (absl::Status s = r.Long(&h.zxid, "zxid"); !s.ok()) return s;
  if (absl::Status s = r.Long(&h.time_ms, "time"); !s.ok()) return s;
  if (absl::Status s = r.Int(&h.type, "type"); !s.ok()) return s;
  if (h.zxid <= 0) {
    return r.ErrorAt(base + 12, absl::StrCat("invalid zxid ", h.zxid));
  }
  const uint64_t body_offset = r.offset();
  if (absl::Status s = DecodeBody(r, h.type, true, &txn.body); !s.ok()) {
    return absl::Status(
        s.code(), absl::StrCat(s.message(), " (txn zxid 0x", absl::Hex(h.zxid),
                               " at offset ", body_offset, ")"));
  }
  if (r.remaining() == 12) {
    int32_t version = 0;
    int64_t digest = 0;
    if (absl::Status s = r.Int(&version, "digest version"); !s.ok()) return s;
    if (absl::Status s = r.Long(&digest, "digest"); !s.ok()) return s;
    if (version == kDigestVersion) txn.digest = digest;
  } else if (r.remaining() != 0) {
    return r.Error(absl::StrCat(r.remaining(),
                                " unexpected bytes after the txn body (zxid 0x",
                                absl::Hex(h.zxid), ")"));
  }
  return txn;
}

absl::StatusOr<LogFileReader> LogFileReader::Open(std::string file,
                                                  absl::string_view data) {
  LogFileReader reader(std::move(file), data);
  if (data.empty()) {  // created before its header was written
    reader.offset_ = 0;
    return reader;
  }
  Reader r(reader.file_, data);
  int32_t magic = 0, version = 0;
  int64_t dbid = 0;
  if (absl::Status s = r.Int(&magic, "file header magic"); !s.ok()) return s;
  if (magic != kLogMagic) {
    return r.ErrorAt(0,
                     absl::StrFormat("bad magic 0x%08x (a ZooKeeper txn "
                                     "log starts with ZKLG, 0x%08x)",
                                     static_cast<uint32_t>(magic), kLogMagic));
  }
  if (absl::Status s = r.Int(&version, "file header version"); !s.ok()) {
    return s;
  }
  if (absl::Status s = r.Long(&dbid, "file header dbid"); !s.ok()) return s;
  return reader;
}

absl::StatusOr<std::optional<Txn>> LogFileReader::Next(bool* torn) {
  if (torn != nullptr) *torn = false;
  if (offset_ >= data_.size()) return std::optional<Txn>();
  const absl::string_view rest = data_.substr(offset_);
  Reader r(file_, rest, offset_);
  auto torn_error = [&](absl::string_view detail) {
    if (torn != nullptr) *torn = true;
    return r.ErrorAt(offset_, absl::StrCat("record cut short: ", detail,
                                           " (a partial write)"));
  };
  if (rest.size() < 12) {
    if (AllZero(rest)) return std::optional<Txn>();
    return torn_error(
        absl::StrCat("only ", rest.size(), " bytes left for a record header"));
  }
  int64_t checksum = 0;
  int32_t len = 0;
  (void)r.Long(&checksum, "checksum");
  (void)r.Int(&len, "entry length");
  if (len == 0) return std::optional<Txn>();  // the preallocated zero tail
  if (len < 0) {
    return r.ErrorAt(offset_ + 8, absl::StrCat("negative entry length ", len));
  }
  if (static_cast<size_t>(len) + 1 > r.remaining()) {
    return torn_error(absl::StrCat("entry length ", len, " but only ",
                                   r.remaining(), " bytes left"));
  }
  const uint64_t entry_offset = r.offset();
  absl::string_view entry;
  (void)r.View(static_cast<size_t>(len), &entry, "entry");
  uint8_t eor = 0;
  (void)r.Byte(&eor, "end of record");
  if (eor != kEndOfRecord) {
    return torn_error(absl::StrFormat("end-of-record byte is 0x%02x, not 'B'",
                                      static_cast<int>(eor)));
  }
  const uint32_t computed = Adler32(kAdler32Init, entry);
  if (static_cast<uint64_t>(checksum) != computed) {
    return r.ErrorAt(
        offset_, absl::StrFormat("checksum mismatch (stored 0x%x, "
                                 "computed Adler-32 0x%08x)",
                                 static_cast<uint64_t>(checksum), computed));
  }
  absl::StatusOr<Txn> txn = DecodeTxnEntry(file_, entry, entry_offset);
  if (!txn.ok()) return txn.status();
  offset_ += r.pos();
  return std::optional<Txn>(*std::move(txn));
}

// --- Snapshots
// ----------------------------------------------------------------

bool LooksLikeCompleteSnapshot(absl::string_view data) {
  if (data.size() < 10) return false;
  static constexpr char kEnd[] = {0, 0, 0, 1, '/'};
  return std::memcmp(data.data() + data.size() - 5, kEnd, 5) == 0;
}

namespace {

absl::Status CheckSeal(Reader& r, absl::string_view data, int number) {
  const uint64_t at = r.offset();
  const uint32_t computed = Adler32(kAdler32Init, data.substr(0, r.pos()));
  int64_t stored = 0;
  std::string slash;
  if (absl::Status s = r.Long(&stored, "checksum seal"); !s.ok()) return s;
  if (absl::Status s = r.String(&slash, "seal terminator"); !s.ok()) return s;
  if (static_cast<uint64_t>(stored) != computed) {
    return r.ErrorAt(
        at, absl::StrFormat("checksum seal #%d mismatch (stored "
                            "0x%x, computed Adler-32 0x%08x)",
                            number, static_cast<uint64_t>(stored), computed));
  }
  if (slash != "/") {
    return r.ErrorAt(at + 8, "seal not followed by the path \"/\"");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SnapshotTrailer> ParseSnapshot(absl::string_view file,
                                              absl::string_view data,
                                              SnapshotVisitor* visitor) {
  Reader r(file, data);
  int32_t magic = 0, version = 0;
  int64_t dbid = 0;
  if (absl::Status s = r.Int(&magic, "file header magic"); !s.ok()) return s;
  if (magic != kSnapMagic) {
    return r.ErrorAt(0,
                     absl::StrFormat("bad magic 0x%08x (a ZooKeeper "
                                     "snapshot starts with ZKSN, 0x%08x)",
                                     static_cast<uint32_t>(magic), kSnapMagic));
  }
  if (absl::Status s = r.Int(&version, "file header version"); !s.ok()) {
    return s;
  }
  if (absl::Status s = r.Long(&dbid, "file header dbid"); !s.ok()) return s;

  int32_t sessions = 0;
  if (absl::Status s = r.Count(&sessions, 12, "sessions"); !s.ok()) return s;
  for (int32_t i = 0; i < sessions; ++i) {
    int64_t id = 0;
    int32_t timeout = 0;
    if (absl::Status s = r.Long(&id, "session id"); !s.ok()) return s;
    if (absl::Status s = r.Int(&timeout, "session timeout"); !s.ok()) return s;
    if (absl::Status s = visitor->Session(id, timeout); !s.ok()) return s;
  }

  int32_t acls = 0;
  if (absl::Status s = r.Count(&acls, 12, "ACL cache entries"); !s.ok()) {
    return s;
  }
  for (int32_t i = 0; i < acls; ++i) {
    int64_t index = 0;
    engine::AclVector acl;
    if (absl::Status s = r.Long(&index, "ACL index"); !s.ok()) return s;
    if (absl::Status s = r.AclList(&acl, "ACL list"); !s.ok()) return s;
    if (absl::Status s = visitor->AclEntry(index, std::move(acl)); !s.ok()) {
      return s;
    }
  }

  while (true) {
    const uint64_t at = r.offset();
    std::string path;
    if (absl::Status s = r.String(&path, "node path"); !s.ok()) return s;
    if (path == "/") break;
    std::string node_data;
    bool data_null = false;
    int64_t acl_index = 0;
    StatPersisted st;
    if (absl::Status s = r.Buffer(&node_data, &data_null, "node data");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = r.Long(&acl_index, "node ACL index"); !s.ok()) {
      return s;
    }
    if (r.remaining() < kStatPersistedBytes) {
      return r.Error(absl::StrCat("truncated: the node stat of ", path,
                                  " needs 60 bytes, the data ends after ",
                                  r.remaining()));
    }
    (void)r.Long(&st.czxid, "czxid");
    (void)r.Long(&st.mzxid, "mzxid");
    (void)r.Long(&st.ctime_ms, "ctime");
    (void)r.Long(&st.mtime_ms, "mtime");
    (void)r.Int(&st.version, "version");
    (void)r.Int(&st.cversion, "cversion");
    (void)r.Int(&st.aversion, "aversion");
    (void)r.Long(&st.ephemeral_owner, "ephemeralOwner");
    (void)r.Long(&st.pzxid, "pzxid");
    if (absl::Status s = visitor->Node(std::move(path), std::move(node_data),
                                       data_null, acl_index, st, at);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckSeal(r, data, 1); !s.ok()) return s;

  SnapshotTrailer trailer;
  // Optional sections, told apart by the bytes left: ZxidDigest + seal (33),
  // 3.9's lastProcessedZxid + seal (21), both (54), or none.
  const size_t left = r.remaining();
  if (left == 33 || left == 54) {
    trailer.has_digest = true;
    if (absl::Status s = r.Long(&trailer.digest_zxid, "digest zxid"); !s.ok()) {
      return s;
    }
    if (absl::Status s = r.Int(&trailer.digest_version, "digest version");
        !s.ok()) {
      return s;
    }
    if (absl::Status s = r.Long(&trailer.digest, "digest"); !s.ok()) return s;
    if (absl::Status s = CheckSeal(r, data, 2); !s.ok()) return s;
  }
  if (r.remaining() == 21) {
    int64_t last = 0;
    if (absl::Status s = r.Long(&last, "last processed zxid"); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckSeal(r, data, 3); !s.ok()) return s;
  }
  if (r.remaining() != 0) {
    return r.Error(absl::StrCat(r.remaining(),
                                " unexpected bytes after the snapshot's "
                                "checksum seal"));
  }
  return trailer;
}

void SnapshotWriter::Absorb() {
  adler_ = Adler32(adler_, absl::string_view(*out_).substr(summed_));
  summed_ = out_->size();
}

void SnapshotWriter::TakeChunk(std::string* chunk) {
  Absorb();
  chunk->swap(*out_);
  out_->clear();
  summed_ = 0;
}

void SnapshotWriter::Header() {
  PutBe(out_, static_cast<uint32_t>(kSnapMagic), 4);
  PutBe(out_, kFormatVersion, 4);
  PutBe(out_, static_cast<uint64_t>(-1), 8);  // dbid, as ZooKeeper writes it
}

void SnapshotWriter::Sessions(
    const std::vector<std::pair<int64_t, int32_t>>& sessions) {
  PutBe(out_, static_cast<uint32_t>(sessions.size()), 4);
  for (const auto& [id, timeout] : sessions) {
    PutBe(out_, static_cast<uint64_t>(id), 8);
    PutBe(out_, static_cast<uint32_t>(timeout), 4);
  }
}

void SnapshotWriter::Acls(
    const std::vector<std::pair<int64_t, engine::AclVector>>& acls) {
  Writer w;
  w.Int(static_cast<int32_t>(acls.size()));
  for (const auto& [index, acl] : acls) {
    w.Long(index);
    w.AclList(acl);
  }
  out_->append(w.data());
}

void SnapshotWriter::Node(absl::string_view path, absl::string_view data,
                          int64_t acl_index, const StatPersisted& st,
                          bool data_null) {
  Writer w;
  w.String(path);
  if (data_null) {
    w.Int(-1);
  } else {
    w.Buffer(data);
  }
  w.Long(acl_index);
  w.Long(st.czxid);
  w.Long(st.mzxid);
  w.Long(st.ctime_ms);
  w.Long(st.mtime_ms);
  w.Int(st.version);
  w.Int(st.cversion);
  w.Int(st.aversion);
  w.Long(st.ephemeral_owner);
  w.Long(st.pzxid);
  out_->append(w.data());
}

void SnapshotWriter::Seal() {
  Absorb();
  PutBe(out_, adler_, 8);
  PutBe(out_, 1, 4);
  out_->push_back('/');
}

void SnapshotWriter::Finish(int64_t digest_zxid, int64_t digest) {
  PutBe(out_, 1, 4);
  out_->push_back('/');
  Seal();
  PutBe(out_, static_cast<uint64_t>(digest_zxid), 8);
  PutBe(out_, kDigestVersion, 4);
  PutBe(out_, static_cast<uint64_t>(digest), 8);
  Seal();
  Absorb();
}

uint32_t NodeDigest(absl::string_view path, absl::string_view data,
                    const StatPersisted& st) {
  if (absl::StartsWith(path, "/zookeeper/")) return 0;
  if (path == "/") path = "";
  std::string block;
  block.reserve(60);
  PutBe(&block, static_cast<uint64_t>(st.czxid), 8);
  PutBe(&block, static_cast<uint64_t>(st.mzxid), 8);
  PutBe(&block, static_cast<uint64_t>(st.pzxid), 8);
  PutBe(&block, static_cast<uint64_t>(st.ctime_ms), 8);
  PutBe(&block, static_cast<uint64_t>(st.mtime_ms), 8);
  PutBe(&block, static_cast<uint32_t>(st.version), 4);
  PutBe(&block, static_cast<uint32_t>(st.cversion), 4);
  PutBe(&block, static_cast<uint32_t>(st.aversion), 4);
  PutBe(&block, static_cast<uint64_t>(st.ephemeral_owner), 8);
  uint32_t crc = Crc32(0, path);
  crc = Crc32(crc, data);
  return Crc32(crc, block);
}

std::optional<int64_t> ZxidFromName(absl::string_view name,
                                    absl::string_view prefix) {
  if (!absl::StartsWith(name, prefix) || name.size() <= prefix.size() + 1 ||
      name[prefix.size()] != '.') {
    return std::nullopt;
  }
  const absl::string_view hex = name.substr(prefix.size() + 1);
  if (hex.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : hex) {
    int d = 0;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

}  // namespace rockeeper::rkutl::zk
