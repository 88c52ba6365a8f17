#include "engine/txn_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "engine/crc32c.h"

namespace rockeeper::engine {
namespace {

constexpr char kMagic[8] = {'R', 'K', 'L', 'O', 'G', '\0', '\0', '\1'};
// (absl::string_view is not std::string_view in this abseil build.)
constexpr absl::string_view kSegmentPrefix = "log.";
constexpr absl::string_view kTmpSuffix = ".tmp";
constexpr size_t kHexDigits = 16;

// Largest group a leader writes at once (it always takes its own records).
constexpr size_t kMaxGroupBytes = 4u << 20;
// Read window of the scanner and of iterators.
constexpr size_t kScanWindow = 1u << 20;
constexpr size_t kIteratorWindow = 256u << 10;
// At most this many candidate record positions are checksummed while looking
// for a valid record after a bad one (a few seconds of work for adversarial
// data; random garbage yields ~1 candidate per 100-200 bytes). Past it the
// damage is conservatively classified as corruption: Open refuses rather than
// risks dropping acknowledged records.
constexpr uint64_t kResyncMaxCandidates = 4u << 20;
// Checkpoint spacing of RegionCrc.
constexpr uint64_t kCrcCheckpointBytes = 64;

// ---------------------------------------------------------------------------
// Encoding

void PutLE32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutLE64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetLE32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint64_t GetLE64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string FileHeader() {
  std::string h(kTxnLogFileHeaderSize, '\0');
  std::memcpy(h.data(), kMagic, sizeof(kMagic));
  PutLE32(h.data() + 8, kTxnLogFormatVersion);
  PutLE32(h.data() + 12, 0);
  return h;
}

uint32_t RecordCrc(const char* zxid_le, std::string_view payload) {
  return Crc32cExtend(Crc32c(zxid_le, 8), payload.data(), payload.size());
}

void EncodeRecord(std::string* out, int64_t zxid, std::string_view payload) {
  char header[kTxnLogRecordHeaderSize];
  PutLE32(header, static_cast<uint32_t>(payload.size()));
  PutLE64(header + 8, static_cast<uint64_t>(zxid));
  PutLE32(header + 4, Crc32cMask(RecordCrc(header + 8, payload)));
  out->append(header, sizeof(header));
  out->append(payload.data(), payload.size());
}

std::string Zxid(int64_t zxid) {
  return absl::StrCat("0x", absl::Hex(static_cast<uint64_t>(zxid)));
}

std::string SegmentName(int64_t first_zxid) {
  return absl::StrCat(
      kSegmentPrefix,
      absl::Hex(static_cast<uint64_t>(first_zxid), absl::kZeroPad16));
}

std::string JoinPath(const std::string& dir, absl::string_view name) {
  if (!dir.empty() && dir.back() == '/') return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

// Parses "log.<16 lowercase hex>"; false for anything else.
bool ParseSegmentName(absl::string_view name, uint64_t* zxid) {
  if (name.size() != kSegmentPrefix.size() + kHexDigits ||
      name.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) {
    return false;
  }
  uint64_t v = 0;
  for (char c : name.substr(kSegmentPrefix.size())) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  *zxid = v;
  return true;
}

// ---------------------------------------------------------------------------
// Files

absl::Status ErrnoError(int err, absl::string_view op, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(op, " ", path));
}

// Owns a file descriptor.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  ScopedFd& operator=(ScopedFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() { Reset(); }

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

absl::StatusOr<ScopedFd> OpenFile(const std::string& path, int flags,
                                  mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return ScopedFd(fd);
}

absl::StatusOr<uint64_t> FileSize(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "fstat", path);
  return static_cast<uint64_t>(st.st_size);
}

// Reads up to n bytes at off; fewer only at end of file.
absl::StatusOr<size_t> PreadFull(int fd, char* buf, size_t n, uint64_t off,
                                 const std::string& path) {
  size_t done = 0;
  while (done < n) {
    ssize_t r =
        ::pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "pread", path);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

absl::Status PwriteFull(int fd, std::string_view data, uint64_t off,
                        const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t r = ::pwrite(fd, data.data() + done, data.size() - done,
                         static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "pwrite", path);
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status Unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "unlink", path);
  }
  return absl::OkStatus();
}

absl::Status FsyncFd(int fd, bool data_only, const std::string& path) {
  int r;
  do {
    r = data_only ? ::fdatasync(fd) : ::fsync(fd);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return ErrnoError(errno, data_only ? "fdatasync" : "fsync", path);
  return absl::OkStatus();
}

// Random-access reads through a window buffer.
class FileReader {
 public:
  FileReader(int fd, std::string path, size_t window)
      : fd_(fd), path_(std::move(path)), window_(window) {}

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // Returns [off, off + n), valid until the next call. Reading past the end
  // of the file is DataLoss (callers bound reads by a size they know).
  absl::StatusOr<std::string_view> Read(uint64_t off, size_t n) {
    if (off >= buf_off_ && off + n <= buf_off_ + buf_len_) {
      return std::string_view(buf_.data() + (off - buf_off_), n);
    }
    size_t want = std::max(n, window_);
    if (buf_.size() < want) buf_.resize(want);
    buf_off_ = off;
    buf_len_ = 0;
    absl::StatusOr<size_t> got = PreadFull(fd_, buf_.data(), want, off, path_);
    if (!got.ok()) return got.status();
    buf_len_ = *got;
    if (buf_len_ < n) {
      return absl::DataLossError(absl::StrCat(
          path_, ": offset ", off,
          ": unexpected end of file (file shrank while reading?)"));
    }
    if (buf_.size() > 4 * window_ && n <= window_) {  // after a big record
      buf_.resize(window_);
      buf_.shrink_to_fit();
    }
    return std::string_view(buf_.data(), n);
  }

 private:
  const int fd_;
  const std::string path_;
  const size_t window_;
  std::string buf_;
  uint64_t buf_off_ = 0;
  size_t buf_len_ = 0;
};

// Index of the first non-zero byte of `v`, or v.size(). Word at a time: the
// preallocated tail (tens of MiB) is scanned on every Open.
size_t FirstNonZeroIndex(std::string_view v) {
  size_t i = 0;
  for (; i + 32 <= v.size(); i += 32) {
    uint64_t w[4];
    std::memcpy(w, v.data() + i, sizeof(w));
    if ((w[0] | w[1] | w[2] | w[3]) != 0) break;
  }
  while (i < v.size() && v[i] == 0) ++i;
  return i;
}

bool AllZero(std::string_view s) { return FirstNonZeroIndex(s) == s.size(); }

// Offset of the first non-zero byte in [from, to), or `to`.
absl::StatusOr<uint64_t> FirstNonZero(FileReader& r, uint64_t from,
                                      uint64_t to) {
  while (from < to) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(to - from, kScanWindow));
    absl::StatusOr<std::string_view> v = r.Read(from, n);
    if (!v.ok()) return v.status();
    const size_t i = FirstNonZeroIndex(*v);
    if (i != v->size()) return from + i;
    from += n;
  }
  return to;
}

// One past the last non-zero byte in [from, to), or `from` if all zero.
absl::StatusOr<uint64_t> LastNonZeroEnd(FileReader& r, uint64_t from,
                                        uint64_t to) {
  while (to > from) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(to - from, kScanWindow));
    absl::StatusOr<std::string_view> v = r.Read(to - n, n);
    if (!v.ok()) return v.status();
    for (size_t i = n; i > 0; --i) {
      if ((*v)[i - 1] != 0) return to - n + i;
    }
    to -= n;
  }
  return from;
}

// CRC-32C extension over file bytes [off, off + n).
absl::StatusOr<uint32_t> CrcRange(FileReader& r, uint64_t off, uint64_t n,
                                  uint32_t crc) {
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, kScanWindow));
    absl::StatusOr<std::string_view> v = r.Read(off, k);
    if (!v.ok()) return v.status();
    crc = Crc32cExtend(crc, v->data(), v->size());
    off += k;
    n -= k;
  }
  return crc;
}

// ---------------------------------------------------------------------------
// Record parsing

struct Parsed {
  enum Kind { kRecord, kEnd, kBad } kind = kEnd;
  int64_t zxid = 0;
  uint32_t length = 0;
  std::string_view payload;  // kRecord; valid until the reader's next Read
  std::string detail;        // kBad
  bool certain_corruption = false;  // kBad that cannot be a torn write
};

// Parses the record at `off`; the file's meaningful bytes end at `limit`.
absl::StatusOr<Parsed> ParseRecord(FileReader& r, uint64_t off, uint64_t limit,
                                   uint32_t max_record_bytes) {
  Parsed p;
  if (off >= limit) return p;  // kEnd
  if (limit - off < kTxnLogRecordHeaderSize) {
    absl::StatusOr<std::string_view> rest =
        r.Read(off, static_cast<size_t>(limit - off));
    if (!rest.ok()) return rest.status();
    if (AllZero(*rest)) return p;  // zero tail shorter than a header
    p.kind = Parsed::kBad;
    p.detail = absl::StrCat("truncated record header (", limit - off,
                            " bytes before end of file)");
    return p;
  }
  absl::StatusOr<std::string_view> h = r.Read(off, kTxnLogRecordHeaderSize);
  if (!h.ok()) return h.status();
  char header[kTxnLogRecordHeaderSize];
  std::memcpy(header, h->data(), sizeof(header));
  const uint32_t length = GetLE32(header);
  const uint32_t masked_crc = GetLE32(header + 4);
  const int64_t zxid = static_cast<int64_t>(GetLE64(header + 8));
  const uint64_t avail = limit - off - kTxnLogRecordHeaderSize;
  p.zxid = zxid;
  p.length = length;
  if (length == 0 && masked_crc == 0 && zxid == 0) {
    return p;  // kEnd: the start of the zero-filled tail
  }
  const uint32_t header_crc = Crc32c(header + 8, 8);
  if (length > max_record_bytes) {
    p.kind = Parsed::kBad;
    p.detail = absl::StrCat("record length ", length,
                            " exceeds max_record_bytes ", max_record_bytes);
    if (length <= avail) {
      // Checksum it in bounded chunks (no allocation of `length` bytes): a
      // matching checksum means a genuine record, so never a torn tail.
      absl::StatusOr<uint32_t> crc =
          CrcRange(r, off + kTxnLogRecordHeaderSize, length, header_crc);
      if (!crc.ok()) return crc.status();
      if (Crc32cMask(*crc) == masked_crc) {
        p.certain_corruption = true;
        absl::StrAppend(&p.detail, " (the record, zxid ", Zxid(zxid),
                        ", has a valid checksum: raise max_record_bytes)");
      }
    }
    return p;
  }
  if (length > avail) {
    p.kind = Parsed::kBad;
    p.detail = absl::StrCat("truncated record: length ", length, " but only ",
                            avail, " bytes before end of file");
    return p;
  }
  absl::StatusOr<std::string_view> payload =
      r.Read(off + kTxnLogRecordHeaderSize, length);
  if (!payload.ok()) return payload.status();
  if (Crc32cMask(Crc32cExtend(header_crc, payload->data(), length)) !=
      masked_crc) {
    p.kind = Parsed::kBad;
    p.detail = absl::StrCat("checksum mismatch (length ", length,
                            ", zxid field ", Zxid(zxid), ")");
    return p;
  }
  p.kind = Parsed::kRecord;
  p.payload = *payload;
  return p;
}

// CRC-32C of any byte range of a file region in O(log n) time, for checking
// many candidate records without re-reading their payloads. Uses linearity of
// the raw CRC register update U(reg, data) (no pre/post inversion):
//   U(reg, D) = Shift(reg, |D|) ^ U(0, D),   Shift(reg, n) = reg * x^(8n) mod P
// With Q(i) = U(0, bytes[base, i)):
//   U(0, bytes[a, b)) = Q(b) ^ Shift(Q(a), b - a)
//   Crc32c(bytes[a, b)) = ~(Shift(~0, b - a) ^ U(0, bytes[a, b)))
// Q is stored every kCrcCheckpointBytes; bytes from `nz_end` on are zero, so
// Q(i) = Shift(Q(nz_end), i - nz_end) there (a record may run into the
// preallocated zeros).
class RegionCrc {
 public:
  RegionCrc(int fd, const std::string& path, uint64_t base, uint64_t nz_end)
      : reader_(fd, path, 0), base_(base), nz_end_(nz_end) {}

  absl::Status Build(FileReader& r) {
    uint32_t reg = 0;
    checkpoints_.clear();
    checkpoints_.reserve((nz_end_ - base_) / kCrcCheckpointBytes + 1);
    uint64_t off = base_;
    while (off < nz_end_) {
      size_t n =
          static_cast<size_t>(std::min<uint64_t>(nz_end_ - off, kScanWindow));
      absl::StatusOr<std::string_view> v = r.Read(off, n);
      if (!v.ok()) return v.status();
      for (size_t i = 0; i < n; i += kCrcCheckpointBytes) {
        checkpoints_.push_back(reg);
        size_t k = std::min<size_t>(kCrcCheckpointBytes, n - i);
        reg = Update(reg, v->data() + i, k);
      }
      off += n;
    }
    q_end_ = reg;
    return absl::OkStatus();
  }

  // Crc32c(file bytes [a, b)), base <= a <= b.
  absl::StatusOr<uint32_t> Crc(uint64_t a, uint64_t b) {
    absl::StatusOr<uint32_t> qa = Q(a);
    if (!qa.ok()) return qa.status();
    absl::StatusOr<uint32_t> qb = Q(b);
    if (!qb.ok()) return qb.status();
    // Shift(~0, n) ^ Shift(Q(a), n) == Shift(~Q(a), n): one multiplication.
    return ~(*qb ^ Shift(~*qa, b - a));
  }

 private:
  static uint32_t Update(uint32_t reg, const char* p, size_t n) {
    return ~Crc32cExtend(~reg, p, n);
  }
  static uint32_t Shift(uint32_t reg, uint64_t n) {
    return ~Crc32cExtendZeros(~reg, n);
  }

  absl::StatusOr<uint32_t> Q(uint64_t i) {
    if (i >= nz_end_) return Shift(q_end_, i - nz_end_);
    const uint64_t k = (i - base_) / kCrcCheckpointBytes;
    const uint64_t start = base_ + k * kCrcCheckpointBytes;
    if (start == i) return checkpoints_[k];
    absl::StatusOr<std::string_view> v =
        reader_.Read(start, static_cast<size_t>(i - start));
    if (!v.ok()) return v.status();
    return Update(checkpoints_[k], v->data(), v->size());
  }

  FileReader reader_;  // exact-size reads of < kCrcCheckpointBytes
  const uint64_t base_;
  const uint64_t nz_end_;
  std::vector<uint32_t> checkpoints_;  // Q(base + k * kCrcCheckpointBytes)
  uint32_t q_end_ = 0;                 // Q(nz_end)
};

// Looks for a record with a valid checksum and zxid > prev_zxid starting
// anywhere in (bad, size): if one exists, the damage at `bad` is not a torn
// tail. Only the non-zero part of the region is read (once).
struct ResyncResult {
  bool found = false;
  bool gave_up = false;      // too many candidates: could not rule it out
  uint64_t offset = 0;       // found: where
  int64_t zxid = 0;          // found: its zxid
  uint64_t nonzero_end = 0;  // one past the last non-zero byte
};

absl::StatusOr<ResyncResult> FindValidRecordAfter(FileReader& r, uint64_t bad,
                                                  uint64_t size,
                                                  int64_t prev_zxid) {
  ResyncResult res;
  absl::StatusOr<uint64_t> nz_end = LastNonZeroEnd(r, bad, size);
  if (!nz_end.ok()) return nz_end.status();
  res.nonzero_end = *nz_end;
  absl::StatusOr<uint64_t> first_nz = FirstNonZero(r, bad + 1, *nz_end);
  if (!first_nz.ok()) return first_nz.status();
  // A record header is not all zeros (zxid > 0), so no record starts more
  // than 15 bytes before the first non-zero byte.
  uint64_t p =
      std::max<uint64_t>(bad + 1, *first_nz >= 15 ? *first_nz - 15 : 0);
  if (p >= *nz_end) return res;
  RegionCrc crc(r.fd(), r.path(), bad, *nz_end);
  absl::Status s = crc.Build(r);
  if (!s.ok()) return s;
  uint64_t candidates = 0;
  for (; p < *nz_end && p + kTxnLogRecordHeaderSize <= size; ++p) {
    absl::StatusOr<std::string_view> h = r.Read(p, kTxnLogRecordHeaderSize);
    if (!h.ok()) return h.status();
    const uint32_t length = GetLE32(h->data());
    const uint32_t masked_crc = GetLE32(h->data() + 4);
    const int64_t zxid = static_cast<int64_t>(GetLE64(h->data() + 8));
    if (zxid <= prev_zxid || zxid <= 0) continue;
    // Any length that fits counts, even above max_record_bytes: a genuine
    // record must never be mistaken for garbage.
    if (length > size - p - kTxnLogRecordHeaderSize) continue;
    if (++candidates > kResyncMaxCandidates) {
      res.gave_up = true;
      return res;
    }
    absl::StatusOr<uint32_t> c =
        crc.Crc(p + 8, p + kTxnLogRecordHeaderSize + length);
    if (!c.ok()) return c.status();
    if (Crc32cMask(*c) == masked_crc) {
      res.found = true;
      res.offset = p;
      res.zxid = zxid;
      return res;
    }
  }
  return res;
}

// ---------------------------------------------------------------------------
// Scanning (shared by TxnLog::Open and TxnLogReader::Open)

struct SegmentFile {
  uint64_t zxid;
  std::string path;
};

struct DirListing {
  std::vector<SegmentFile> segments;  // sorted by zxid
  std::vector<std::string> tmp_files;
};

absl::StatusOr<DirListing> ListDir(const std::string& dir) {
  DirListing out;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), absl::StrCat("list ", dir));
  }
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    std::string name = it->path().filename().string();
    uint64_t zxid;
    if (ParseSegmentName(name, &zxid)) {
      out.segments.push_back({zxid, JoinPath(dir, name)});
    } else if (name.size() > kTmpSuffix.size() &&
               name.substr(name.size() - kTmpSuffix.size()) == kTmpSuffix &&
               ParseSegmentName(absl::string_view(name).substr(
                                    0, name.size() - kTmpSuffix.size()),
                                &zxid)) {
      out.tmp_files.push_back(JoinPath(dir, name));
    }
  }
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("list ", dir));
  std::sort(out.segments.begin(), out.segments.end(),
            [](const SegmentFile& a, const SegmentFile& b) {
              return a.zxid < b.zxid;
            });
  return out;
}

// Validates one segment. `*prev_zxid` is the last valid zxid before it and is
// advanced. I/O errors are returned; damage is reported in *damage.
absl::Status ScanSegment(const SegmentFile& file, bool is_last,
                         uint32_t max_record_bytes, int64_t* prev_zxid,
                         TxnLogSegmentInfo* info, LogDamage* damage) {
  info->path = file.path;
  info->name_zxid = static_cast<int64_t>(file.zxid);
  absl::StatusOr<ScopedFd> fd = OpenFile(file.path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), file.path);
  if (!size.ok()) return size.status();
  info->file_size = *size;
  FileReader r(fd->get(), file.path, kScanWindow);

  auto corruption = [&](uint64_t off, std::string detail) {
    damage->kind = LogDamage::Kind::kCorruption;
    damage->file = file.path;
    damage->offset = off;
    damage->detail = std::move(detail);
  };
  // Damage at `off` (= end of the last good record): a torn tail if this is
  // the last segment and no valid record follows.
  auto classify = [&](uint64_t off, std::string detail,
                      bool certain) -> absl::Status {
    if (!is_last || certain) {
      corruption(off, std::move(detail));
      return absl::OkStatus();
    }
    absl::StatusOr<ResyncResult> rs =
        FindValidRecordAfter(r, off, *size, *prev_zxid);
    if (!rs.ok()) return rs.status();
    if (rs->found) {
      corruption(off,
                 absl::StrCat(detail, "; a valid record (zxid ", Zxid(rs->zxid),
                              ") follows at offset ", rs->offset));
    } else if (rs->gave_up) {
      corruption(off, absl::StrCat(detail,
                                   "; could not rule out valid records after "
                                   "it (scan limit reached)"));
    } else {
      damage->kind = LogDamage::Kind::kTornTail;
      damage->file = file.path;
      damage->offset = off;
      damage->dropped_bytes = rs->nonzero_end - off;
      damage->detail = std::move(detail);
    }
    return absl::OkStatus();
  };

  // File header.
  bool header_ok = false;
  if (*size >= kTxnLogFileHeaderSize) {
    absl::StatusOr<std::string_view> h = r.Read(0, kTxnLogFileHeaderSize);
    if (!h.ok()) return h.status();
    header_ok = *h == FileHeader();
  }
  if (!header_ok) {
    absl::StatusOr<uint64_t> nz = FirstNonZero(r, 0, *size);
    if (!nz.ok()) return nz.status();
    if (is_last && *nz == *size) {
      // Never written: a crash while the segment was being created.
      damage->kind = LogDamage::Kind::kTornTail;
      damage->file = file.path;
      damage->offset = 0;
      damage->detail = "segment header missing (empty or zero-filled file)";
    } else {
      corruption(0, absl::StrCat("bad segment header (expected magic "
                                 "\"RKLOG\\0\\0\\1\", format version ",
                                 kTxnLogFormatVersion, ")"));
    }
    return absl::OkStatus();
  }

  uint64_t off = kTxnLogFileHeaderSize;
  info->valid_end = off;
  for (;;) {
    absl::StatusOr<Parsed> p = ParseRecord(r, off, *size, max_record_bytes);
    if (!p.ok()) return p.status();
    if (p->kind == Parsed::kBad) {
      return classify(off, std::move(p->detail), p->certain_corruption);
    }
    if (p->kind == Parsed::kEnd) {
      absl::StatusOr<uint64_t> nz = FirstNonZero(r, off, *size);
      if (!nz.ok()) return nz.status();
      if (*nz != *size) {
        return classify(off,
                        absl::StrCat("end-of-log marker (zero record header) "
                                     "followed by non-zero data at offset ",
                                     *nz),
                        false);
      }
      break;
    }
    if (p->zxid <= *prev_zxid) {
      corruption(off, absl::StrCat("zxid ", Zxid(p->zxid),
                                   " is not greater than the previous zxid ",
                                   Zxid(*prev_zxid)));
      return absl::OkStatus();
    }
    if (info->records == 0 && p->zxid != info->name_zxid) {
      corruption(
          off, absl::StrCat("first record has zxid ", Zxid(p->zxid),
                            " but the file name says ", Zxid(info->name_zxid)));
      return absl::OkStatus();
    }
    *prev_zxid = p->zxid;
    info->last_zxid = p->zxid;
    ++info->records;
    off += kTxnLogRecordHeaderSize + p->length;
    info->valid_end = off;
  }
  if (info->records == 0 && !is_last) {
    corruption(kTxnLogFileHeaderSize,
               "segment has no records but later segments exist");
  }
  return absl::OkStatus();
}

struct ScanOutput {
  std::vector<TxnLogSegmentInfo> segments;
  LogDamage damage;
  std::vector<std::string> tmp_files;
};

// Validates the whole directory, stopping at the first damage. Read-only.
absl::StatusOr<ScanOutput> ScanLog(const std::string& dir,
                                   uint32_t max_record_bytes) {
  absl::StatusOr<DirListing> listing = ListDir(dir);
  if (!listing.ok()) return listing.status();
  ScanOutput out;
  out.tmp_files = std::move(listing->tmp_files);
  int64_t prev_zxid = 0;
  const size_t n = listing->segments.size();
  for (size_t i = 0; i < n; ++i) {
    TxnLogSegmentInfo info;
    absl::Status s =
        ScanSegment(listing->segments[i], i + 1 == n, max_record_bytes,
                    &prev_zxid, &info, &out.damage);
    if (!s.ok()) return s;
    out.segments.push_back(std::move(info));
    if (!out.damage.ok()) break;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Iteration

struct IterSegment {
  std::string path;
  ScopedFd fd;
  uint64_t limit = 0;  // read records in [header, limit)
};

class SegmentsIterator final : public TxnLogIterator {
 public:
  SegmentsIterator(std::vector<IterSegment> segs, int64_t from_zxid,
                   uint32_t max_record_bytes, absl::Status end_status)
      : segs_(std::move(segs)),
        from_zxid_(from_zxid),
        max_record_bytes_(max_record_bytes),
        end_status_(std::move(end_status)) {
    Advance();
  }
  // An iterator that failed to start.
  explicit SegmentsIterator(absl::Status error)
      : from_zxid_(0), max_record_bytes_(0), status_(std::move(error)) {}

  bool Valid() const override { return valid_; }
  void Next() override { Advance(); }
  int64_t zxid() const override { return zxid_; }
  std::string_view payload() const override { return payload_; }
  absl::Status status() const override { return status_; }

 private:
  void Fail(absl::Status s) {
    valid_ = false;
    payload_ = {};
    status_ = std::move(s);
  }

  void Advance() {
    valid_ = false;
    payload_ = {};
    while (status_.ok()) {
      if (index_ >= segs_.size()) {
        status_ = end_status_;
        return;
      }
      IterSegment& seg = segs_[index_];
      if (reader_ == nullptr) {
        if (seg.limit <= kTxnLogFileHeaderSize) {
          ++index_;
          continue;
        }
        reader_ = std::make_unique<FileReader>(seg.fd.get(), seg.path,
                                               kIteratorWindow);
        absl::StatusOr<std::string_view> h =
            reader_->Read(0, kTxnLogFileHeaderSize);
        if (!h.ok()) return Fail(h.status());
        if (*h != FileHeader()) {
          return Fail(absl::DataLossError(
              absl::StrCat(seg.path, ": offset 0: bad segment header")));
        }
        off_ = kTxnLogFileHeaderSize;
      }
      absl::StatusOr<Parsed> p =
          ParseRecord(*reader_, off_, seg.limit, max_record_bytes_);
      if (!p.ok()) return Fail(p.status());
      if (p->kind == Parsed::kEnd) {
        if (off_ < seg.limit) {
          return Fail(absl::DataLossError(absl::StrCat(
              seg.path, ": offset ", off_,
              ": zero record header before the end of the durable log")));
        }
        reader_.reset();
        seg.fd.Reset();
        ++index_;
        continue;
      }
      if (p->kind == Parsed::kBad) {
        return Fail(absl::DataLossError(
            absl::StrCat(seg.path, ": offset ", off_, ": ", p->detail)));
      }
      if (p->zxid <= last_zxid_) {
        return Fail(absl::DataLossError(absl::StrCat(
            seg.path, ": offset ", off_, ": zxid ", Zxid(p->zxid),
            " is not greater than the previous zxid ", Zxid(last_zxid_))));
      }
      last_zxid_ = p->zxid;
      off_ += kTxnLogRecordHeaderSize + p->length;
      if (p->zxid < from_zxid_) continue;
      zxid_ = p->zxid;
      payload_ = p->payload;
      valid_ = true;
      return;
    }
  }

  std::vector<IterSegment> segs_;
  const int64_t from_zxid_;
  const uint32_t max_record_bytes_;
  const absl::Status end_status_;  // status once past the last record
  size_t index_ = 0;
  std::unique_ptr<FileReader> reader_;  // of segs_[index_]
  uint64_t off_ = 0;
  bool valid_ = false;
  int64_t zxid_ = 0;
  int64_t last_zxid_ = INT64_MIN;
  std::string_view payload_;
  absl::Status status_;
};

// Index of the segment to start reading at for from_zxid: the last one whose
// first zxid is <= from_zxid (earlier ones hold only smaller zxids).
template <typename T, typename FirstZxid>
size_t StartIndex(const std::vector<T>& segs, int64_t from_zxid,
                  FirstZxid first) {
  size_t start = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (first(segs[i]) <= from_zxid) start = i;
  }
  return start;
}

}  // namespace

// ---------------------------------------------------------------------------
// LogDamage, TxnLogRecoveryReport

absl::Status LogDamage::ToStatus() const {
  if (kind == Kind::kNone) return absl::OkStatus();
  return absl::DataLossError(ToString());
}

std::string LogDamage::ToString() const {
  switch (kind) {
    case Kind::kNone:
      return "no damage";
    case Kind::kTornTail:
      return absl::StrCat("txn log torn tail: ", file, ": offset ", offset,
                          ": ", detail, " (", dropped_bytes,
                          " bytes of non-zero data from there on)");
    case Kind::kCorruption:
      return absl::StrCat("txn log corruption: ", file, ": offset ", offset,
                          ": ", detail);
  }
  return "";
}

std::string TxnLogRecoveryReport::ToString() const {
  std::string out = "txn log recovery: ";
  if (!torn_tail.ok()) {
    absl::StrAppend(&out, "truncated torn tail of ", torn_tail.file,
                    " at offset ", torn_tail.offset, " (", torn_tail.detail,
                    "; dropped ", torn_tail.dropped_bytes, " bytes); ");
  }
  if (!removed_files.empty()) {
    absl::StrAppend(&out, "removed ", absl::StrJoin(removed_files, ", "), "; ");
  }
  if (!modified()) out += "clean; ";
  absl::StrAppend(&out, segments, " segments, ", records,
                  " records, last zxid ", Zxid(last_zxid));
  return out;
}

// ---------------------------------------------------------------------------
// TxnLog

// A queued Append/AppendBatch call. Lives on the caller's stack.
struct TxnLog::Writer {
  std::string data;  // encoded records
  int64_t first_zxid = 0;
  int64_t last_zxid = 0;
  uint64_t count = 0;
  // Written by the leader that completes or promotes this writer, before
  // `wake.Notify()`; read by the owner after `wake.WaitForNotification()`.
  // (Waking through a per-writer Notification instead of a CondVar on mu_
  // spares the woken followers a convoy on mu_ while the next leader works.)
  bool leader = false;  // promoted to leader rather than completed
  absl::Status status;
  absl::Notification wake;
};

TxnLog::TxnLog(const TxnLogOptions& options, int dir_fd, PrivateTag)
    : options_(options), dir_fd_(dir_fd) {}

TxnLog::~TxnLog() {
  {
    absl::MutexLock io(&io_mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  ::close(dir_fd_);  // releases the flock
}

absl::StatusOr<std::unique_ptr<TxnLog>> TxnLog::Open(
    const TxnLogOptions& options) {
  if (options.dir.empty()) {
    return absl::InvalidArgumentError("TxnLogOptions.dir is empty");
  }
  if (options.max_record_bytes == 0 || options.segment_max_bytes == 0) {
    return absl::InvalidArgumentError(
        "TxnLogOptions: max_record_bytes and segment_max_bytes must be > 0");
  }
  std::error_code ec;
  bool created = std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(),
                               absl::StrCat("create directory ", options.dir));
  }
  absl::StatusOr<ScopedFd> dir_fd =
      OpenFile(options.dir, O_RDONLY | O_DIRECTORY);
  if (!dir_fd.ok()) return dir_fd.status();
  if (created && options.sync) {
    std::filesystem::path parent =
        std::filesystem::absolute(options.dir, ec).parent_path();
    if (!ec) {
      absl::StatusOr<ScopedFd> pfd =
          OpenFile(parent.string(), O_RDONLY | O_DIRECTORY);
      if (!pfd.ok()) return pfd.status();
      absl::Status s = FsyncFd(pfd->get(), false, parent.string());
      if (!s.ok()) return s;
    }
  }
  if (::flock(dir_fd->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "txn log directory ", options.dir, " is already open for writing"));
    }
    return ErrnoError(errno, "flock", options.dir);
  }

  absl::StatusOr<ScanOutput> scan =
      ScanLog(options.dir, options.max_record_bytes);
  if (!scan.ok()) return scan.status();
  if (scan->damage.kind == LogDamage::Kind::kCorruption) {
    return scan->damage.ToStatus();
  }

  TxnLogRecoveryReport report;
  bool dir_changed = false;
  for (const std::string& tmp : scan->tmp_files) {
    absl::Status s = Unlink(tmp);
    if (!s.ok()) return s;
    report.removed_files.push_back(tmp);
    dir_changed = true;
  }
  std::vector<TxnLogSegmentInfo>& segs = scan->segments;
  if (scan->damage.kind == LogDamage::Kind::kTornTail) {
    report.torn_tail = scan->damage;
    TxnLogSegmentInfo& last = segs.back();
    if (scan->damage.offset >= kTxnLogFileHeaderSize) {
      absl::StatusOr<ScopedFd> fd = OpenFile(last.path, O_RDWR);
      if (!fd.ok()) return fd.status();
      if (::ftruncate(fd->get(), static_cast<off_t>(scan->damage.offset)) !=
          0) {
        return ErrnoError(errno, "ftruncate", last.path);
      }
      if (options.sync) {
        absl::Status s = FsyncFd(fd->get(), false, last.path);
        if (!s.ok()) return s;
      }
      last.valid_end = scan->damage.offset;
      last.file_size = scan->damage.offset;
    }
    // else: bad header; the segment is removed below as it has no records.
  }
  if (!segs.empty() && segs.back().records == 0) {
    absl::Status s = Unlink(segs.back().path);
    if (!s.ok()) return s;
    report.removed_files.push_back(segs.back().path);
    segs.pop_back();
    dir_changed = true;
  }
  if (dir_changed && options.sync) {
    absl::Status s = FsyncFd(dir_fd->get(), false, options.dir);
    if (!s.ok()) return s;
  }

  auto log = std::make_unique<TxnLog>(options, dir_fd->release(), PrivateTag());
  report.segments = segs.size();
  for (const TxnLogSegmentInfo& info : segs) report.records += info.records;
  report.last_zxid = segs.empty() ? 0 : segs.back().last_zxid;
  log->report_ = std::move(report);
  {
    absl::MutexLock io(&log->io_mu_);
    absl::MutexLock l(&log->mu_);
    for (const TxnLogSegmentInfo& info : segs) {
      log->segments_.push_back(Segment{info.path, info.name_zxid,
                                       info.last_zxid, info.records,
                                       info.valid_end});
    }
    log->last_zxid_ = log->report_.last_zxid;
    log->last_queued_zxid_ = log->last_zxid_;
  }
  if (!segs.empty()) {
    absl::MutexLock io(&log->io_mu_);
    Segment last;
    {
      absl::MutexLock l(&log->mu_);
      last = log->segments_.back();
    }
    absl::Status s = log->OpenCurrent(last);
    if (!s.ok()) return s;
  }
  return log;
}

absl::Status TxnLog::OpenCurrent(const Segment& seg) {
  absl::StatusOr<ScopedFd> fd = OpenFile(seg.path, O_RDWR);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), seg.path);
  if (!size.ok()) return size.status();
  fd_ = fd->release();
  current_path_ = seg.path;
  write_offset_ = seg.end;
  allocated_ = std::max(*size, seg.end);
  current_records_ = seg.records;
  return absl::OkStatus();
}

absl::Status TxnLog::Append(int64_t zxid, std::string_view payload) {
  if (payload.size() > options_.max_record_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "txn log record of ", payload.size(),
        " bytes exceeds max_record_bytes ", options_.max_record_bytes));
  }
  Writer w;
  w.data.reserve(kTxnLogRecordHeaderSize + payload.size());
  EncodeRecord(&w.data, zxid, payload);
  w.first_zxid = w.last_zxid = zxid;
  w.count = 1;
  return Enqueue(&w);
}

absl::Status TxnLog::AppendBatch(absl::Span<const LogRecord> records) {
  if (records.empty()) return absl::OkStatus();
  Writer w;
  size_t bytes = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const LogRecord& rec = records[i];
    if (rec.payload.size() > options_.max_record_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "txn log record of ", rec.payload.size(),
          " bytes exceeds max_record_bytes ", options_.max_record_bytes));
    }
    if (i > 0 && rec.zxid <= records[i - 1].zxid) {
      return absl::FailedPreconditionError(
          absl::StrCat("batch zxids not increasing: ", Zxid(rec.zxid),
                       " after ", Zxid(records[i - 1].zxid)));
    }
    bytes += kTxnLogRecordHeaderSize + rec.payload.size();
  }
  w.data.reserve(bytes);
  for (const LogRecord& rec : records)
    EncodeRecord(&w.data, rec.zxid, rec.payload);
  w.first_zxid = records.front().zxid;
  w.last_zxid = records.back().zxid;
  w.count = records.size();
  return Enqueue(&w);
}

absl::Status TxnLog::Enqueue(Writer* w) {
  {
    absl::MutexLock l(&mu_);
    if (!poison_.ok()) return poison_;
    if (w->first_zxid <= last_queued_zxid_) {
      return absl::FailedPreconditionError(
          absl::StrCat("zxid ", Zxid(w->first_zxid),
                       " is not greater than the last appended zxid ",
                       Zxid(last_queued_zxid_)));
    }
    last_queued_zxid_ = w->last_zxid;
    writers_.push_back(w);
    w->leader = writers_.size() == 1;
  }
  if (!w->leader) {
    // Wait until a leader has written our records, or made us the leader.
    w->wake.WaitForNotification();
    if (!w->leader) return w->status;
  }

  // This writer is the leader (at the front of the queue): take it and the
  // writers queued behind it.
  std::vector<Writer*> group;
  absl::Status s;
  {
    absl::MutexLock l(&mu_);
    s = poison_;  // TruncateAfter may have failed while we waited
    size_t bytes = 0;
    for (Writer* x : writers_) {
      if (!group.empty() && bytes + x->data.size() > kMaxGroupBytes) break;
      group.push_back(x);
      bytes += x->data.size();
    }
  }
  if (s.ok()) {
    absl::MutexLock io(&io_mu_);
    std::string_view data;
    uint64_t count = 0;
    if (group.size() == 1) {
      data = group[0]->data;
      count = group[0]->count;
    } else {
      group_buf_.clear();
      for (Writer* x : group) {
        group_buf_.append(x->data);
        count += x->count;
      }
      data = group_buf_;
    }
    s = WriteGroup(data, group.front()->first_zxid, group.back()->last_zxid,
                   count);
    if (group_buf_.capacity() > 2 * kMaxGroupBytes) {
      std::string().swap(group_buf_);
    }
  }

  Writer* next_leader = nullptr;
  std::vector<Writer*> failed;  // queued behind the group, failed by poison
  absl::Status poison;
  {
    absl::MutexLock l(&mu_);
    if (!s.ok() && poison_.ok()) poison_ = s;
    // Only the leader pops, so the group is still at the front, in order.
    writers_.erase(writers_.begin(), writers_.begin() + group.size());
    poison = poison_;
    if (!poison.ok()) {
      failed.assign(writers_.begin(), writers_.end());
      writers_.clear();
    } else if (!writers_.empty()) {
      next_leader = writers_.front();
    }
  }
  // Notify outside mu_, the next leader first so its write overlaps the
  // wake-ups. Nobody else touches these writers now: they are off the queue
  // (or, for next_leader, only this thread may promote it).
  if (next_leader != nullptr) {
    next_leader->leader = true;
    next_leader->wake.Notify();
  }
  for (Writer* x : group) {
    if (x == w) continue;
    x->status = s;
    x->wake.Notify();  // x may return and be destroyed right after this
  }
  for (Writer* x : failed) {
    x->status = poison;
    x->wake.Notify();
  }
  return s;
}

absl::Status TxnLog::WriteGroup(std::string_view data, int64_t first_zxid,
                                int64_t last_zxid, uint64_t count) {
  const bool roll_requested = roll_requested_.exchange(false);
  if (fd_ < 0 || (current_records_ > 0 &&
                  (roll_requested ||
                   write_offset_ + data.size() > options_.segment_max_bytes))) {
    absl::Status s = Roll(first_zxid, data.size());
    if (!s.ok()) return s;
  }
  absl::Status s = EnsureAllocated(write_offset_ + data.size());
  if (!s.ok()) return s;
  s = PwriteFull(fd_, data, write_offset_, current_path_);
  if (!s.ok()) return s;
  if (options_.sync) {
    s = FsyncFd(fd_, /*data_only=*/true, current_path_);
    if (!s.ok()) return s;
  }
  write_offset_ += data.size();
  current_records_ += count;
  absl::MutexLock l(&mu_);
  Segment& seg = segments_.back();
  seg.end = write_offset_;
  seg.last_zxid = last_zxid;
  seg.records += count;
  last_zxid_ = last_zxid;
  stats_.records += count;
  stats_.bytes += data.size();
  ++stats_.batches;
  if (options_.sync) ++stats_.fsyncs;
  return absl::OkStatus();
}

absl::Status TxnLog::Roll(int64_t first_zxid, uint64_t first_write_bytes) {
  if (fd_ >= 0) {
    // Give back the unused preallocation of the finished segment. Not synced:
    // if the new size is lost in a crash, the zero tail is accepted anyway.
    if (::ftruncate(fd_, static_cast<off_t>(write_offset_)) != 0) {
      return ErrnoError(errno, "ftruncate", current_path_);
    }
    ::close(fd_);
    fd_ = -1;
  }
  const std::string path = JoinPath(options_.dir, SegmentName(first_zxid));
  const std::string tmp = absl::StrCat(path, kTmpSuffix);
  absl::Status s = Unlink(tmp);
  if (!s.ok()) return s;
  absl::StatusOr<ScopedFd> fd = OpenFile(tmp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (!fd.ok()) return fd.status();
  s = PwriteFull(fd->get(), FileHeader(), 0, tmp);
  if (!s.ok()) return s;
  fd_ = fd->release();
  current_path_ = tmp;
  write_offset_ = kTxnLogFileHeaderSize;
  allocated_ = kTxnLogFileHeaderSize;
  current_records_ = 0;
  s = EnsureAllocated(write_offset_ + first_write_bytes);
  if (!s.ok()) return s;
  uint64_t syncs = 0;
  if (options_.sync) {
    s = FsyncFd(fd_, /*data_only=*/true, tmp);
    if (!s.ok()) return s;
    ++syncs;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoError(errno, absl::StrCat("rename ", tmp, " to"), path);
  }
  current_path_ = path;
  if (options_.sync) {
    s = FsyncFd(dir_fd_, false, options_.dir);
    if (!s.ok()) return s;
    ++syncs;
  }
  absl::MutexLock l(&mu_);
  segments_.push_back(
      Segment{path, first_zxid, 0, 0, uint64_t{kTxnLogFileHeaderSize}});
  ++stats_.segments_created;
  stats_.fsyncs += syncs;
  return absl::OkStatus();
}

absl::Status TxnLog::EnsureAllocated(uint64_t needed) {
  if (needed <= allocated_) return absl::OkStatus();
  if (options_.preallocate_bytes == 0) {
    allocated_ = needed;  // the write extends the file
    return absl::OkStatus();
  }
  // Up to the next multiple of the chunk size, but not past the roll point
  // unless this write needs it.
  const uint64_t chunk = options_.preallocate_bytes;
  uint64_t target = (needed + chunk - 1) / chunk * chunk;
  target = std::min(target, std::max(options_.segment_max_bytes, needed));
  const off_t off = static_cast<off_t>(allocated_);
  const off_t len = static_cast<off_t>(target - allocated_);
  int r;
  do {
    r = ::fallocate(fd_, 0, off, len);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    if (errno != EOPNOTSUPP && errno != ENOSYS) {
      return ErrnoError(errno, "fallocate", current_path_);
    }
    if (::ftruncate(fd_, static_cast<off_t>(target)) != 0) {
      return ErrnoError(errno, "ftruncate", current_path_);
    }
  }
  allocated_ = target;
  return absl::OkStatus();
}

int64_t TxnLog::last_zxid() const {
  absl::MutexLock l(&mu_);
  return last_zxid_;
}

TxnLog::Stats TxnLog::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

std::vector<TxnLogSegmentInfo> TxnLog::segments() const {
  std::vector<TxnLogSegmentInfo> out;
  {
    absl::MutexLock l(&mu_);
    for (const Segment& s : segments_) {
      TxnLogSegmentInfo info;
      info.path = s.path;
      info.name_zxid = s.first_zxid;
      info.last_zxid = s.last_zxid;
      info.records = s.records;
      info.valid_end = s.end;
      out.push_back(std::move(info));
    }
  }
  for (TxnLogSegmentInfo& info : out) {
    struct stat st;
    if (::stat(info.path.c_str(), &st) == 0) {
      info.file_size = static_cast<uint64_t>(st.st_size);
    }
  }
  return out;
}

void TxnLog::Poison(const absl::Status& s) {
  absl::MutexLock l(&mu_);
  if (poison_.ok()) poison_ = s;
}

absl::Status TxnLog::TruncateAfter(int64_t zxid) {
  absl::MutexLock io(&io_mu_);
  {
    absl::MutexLock l(&mu_);
    if (!poison_.ok()) return poison_;
    if (zxid >= last_zxid_) return absl::OkStatus();
  }
  absl::Status s = TruncateAfterLocked(zxid);
  if (!s.ok()) Poison(s);
  return s;
}

absl::Status TxnLog::TruncateAfterLocked(int64_t zxid) {
  std::vector<Segment> segs;
  {
    absl::MutexLock l(&mu_);
    segs = segments_;
  }
  // Delete whole segments past zxid, newest first.
  bool deleted = false;
  while (!segs.empty() && segs.back().first_zxid > zxid) {
    if (!deleted && fd_ >= 0) {
      ::close(fd_);  // the current segment is the last one
      fd_ = -1;
    }
    const std::string path = segs.back().path;
    segs.pop_back();
    {
      absl::MutexLock l(&mu_);
      segments_.pop_back();
      ++stats_.segments_deleted;
    }
    absl::Status s = Unlink(path);
    if (!s.ok()) return s;
    deleted = true;
  }
  if (deleted && options_.sync) {
    absl::Status s = FsyncFd(dir_fd_, false, options_.dir);
    if (!s.ok()) return s;
    absl::MutexLock l(&mu_);
    ++stats_.fsyncs;
  }
  if (segs.empty()) {
    write_offset_ = allocated_ = current_records_ = 0;
    absl::MutexLock l(&mu_);
    last_zxid_ = 0;
    if (writers_.empty()) last_queued_zxid_ = 0;
    return absl::OkStatus();
  }
  const Segment& last = segs.back();
  if (fd_ < 0) {
    absl::Status s = OpenCurrent(last);
    if (!s.ok()) return s;
  }
  Segment cut = last;
  if (last.last_zxid > zxid) {
    // Find the first record with zxid > `zxid` and cut the file there.
    FileReader r(fd_, last.path, kScanWindow);
    uint64_t off = kTxnLogFileHeaderSize;
    cut.records = 0;
    cut.last_zxid = 0;
    while (off < last.end) {
      if (last.end - off < kTxnLogRecordHeaderSize) {
        return absl::DataLossError(absl::StrCat(last.path, ": offset ", off,
                                                ": truncated record header"));
      }
      absl::StatusOr<std::string_view> h = r.Read(off, kTxnLogRecordHeaderSize);
      if (!h.ok()) return h.status();
      const uint32_t length = GetLE32(h->data());
      const int64_t z = static_cast<int64_t>(GetLE64(h->data() + 8));
      if (z > zxid) break;
      if (length > last.end - off - kTxnLogRecordHeaderSize) {
        return absl::DataLossError(
            absl::StrCat(last.path, ": offset ", off, ": record length ",
                         length, " runs past the end of the log"));
      }
      off += kTxnLogRecordHeaderSize + length;
      ++cut.records;
      cut.last_zxid = z;
    }
    if (::ftruncate(fd_, static_cast<off_t>(off)) != 0) {
      return ErrnoError(errno, "ftruncate", last.path);
    }
    if (options_.sync) {
      absl::Status s = FsyncFd(fd_, false, last.path);
      if (!s.ok()) return s;
    }
    cut.end = off;
    write_offset_ = off;
    allocated_ = off;
    current_records_ = cut.records;
  }
  absl::MutexLock l(&mu_);
  if (last.last_zxid > zxid && options_.sync) ++stats_.fsyncs;
  segments_.back() = cut;
  last_zxid_ = cut.last_zxid;
  if (writers_.empty()) last_queued_zxid_ = last_zxid_;
  return absl::OkStatus();
}

absl::StatusOr<int> TxnLog::PurgeBefore(int64_t zxid) {
  absl::MutexLock io(&io_mu_);
  std::vector<std::string> victims;
  {
    absl::MutexLock l(&mu_);
    if (!poison_.ok()) return poison_;
    size_t k = 0;
    while (k + 1 < segments_.size() && segments_[k + 1].first_zxid <= zxid) {
      victims.push_back(segments_[k].path);
      ++k;
    }
    segments_.erase(segments_.begin(), segments_.begin() + k);
    stats_.segments_deleted += k;
  }
  for (const std::string& path : victims) {
    absl::Status s = Unlink(path);
    if (!s.ok()) return s;
  }
  if (!victims.empty() && options_.sync) {
    absl::Status s = FsyncFd(dir_fd_, false, options_.dir);
    if (!s.ok()) return s;
    absl::MutexLock l(&mu_);
    ++stats_.fsyncs;
  }
  return static_cast<int>(victims.size());
}

std::unique_ptr<TxnLogIterator> TxnLog::NewIterator(int64_t from_zxid) const {
  std::vector<IterSegment> segs;
  {
    // Opened under mu_ so that PurgeBefore/TruncateAfter, which unlink only
    // after unpublishing, cannot remove a file in between.
    absl::MutexLock l(&mu_);
    size_t start = StartIndex(segments_, from_zxid,
                              [](const Segment& s) { return s.first_zxid; });
    for (size_t i = start; i < segments_.size(); ++i) {
      absl::StatusOr<ScopedFd> fd = OpenFile(segments_[i].path, O_RDONLY);
      if (!fd.ok()) return std::make_unique<SegmentsIterator>(fd.status());
      segs.push_back(
          IterSegment{segments_[i].path, std::move(*fd), segments_[i].end});
    }
  }
  return std::make_unique<SegmentsIterator>(
      std::move(segs), from_zxid, options_.max_record_bytes, absl::OkStatus());
}

// ---------------------------------------------------------------------------
// TxnLogReader

absl::StatusOr<std::unique_ptr<TxnLogReader>> TxnLogReader::Open(
    const std::string& dir, uint32_t max_record_bytes) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not a directory"));
  }
  absl::StatusOr<ScanOutput> scan = ScanLog(dir, max_record_bytes);
  if (!scan.ok()) return scan.status();
  auto reader = std::make_unique<TxnLogReader>(PrivateTag());
  reader->max_record_bytes_ = max_record_bytes;
  reader->segments_ = std::move(scan->segments);
  reader->damage_ = std::move(scan->damage);
  return reader;
}

int64_t TxnLogReader::last_zxid() const {
  for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
    if (it->records > 0) return it->last_zxid;
  }
  return 0;
}

std::unique_ptr<TxnLogIterator> TxnLogReader::NewIterator(
    int64_t from_zxid) const {
  std::vector<IterSegment> segs;
  size_t start =
      StartIndex(segments_, from_zxid,
                 [](const TxnLogSegmentInfo& s) { return s.name_zxid; });
  for (size_t i = start; i < segments_.size(); ++i) {
    absl::StatusOr<ScopedFd> fd = OpenFile(segments_[i].path, O_RDONLY);
    if (!fd.ok()) return std::make_unique<SegmentsIterator>(fd.status());
    segs.push_back(
        IterSegment{segments_[i].path, std::move(*fd), segments_[i].valid_end});
  }
  return std::make_unique<SegmentsIterator>(
      std::move(segs), from_zxid, max_record_bytes_, damage_.ToStatus());
}

}  // namespace rockeeper::engine
