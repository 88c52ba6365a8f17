// The write-ahead transaction log (ZooKeeper's dataLogDir).
//
// The log stores opaque payloads (serialized Txn protobufs) keyed by a
// strictly increasing, positive int64 zxid (not necessarily contiguous).
// docs/txn-log-format.md is the operator/developer description; this comment
// is the authoritative format.
//
// Directory layout
// ----------------
// One directory holds segment files named
//     log.<zxid of the segment's first record, 16 lowercase hex digits>
// e.g. log.0000000100000001. Segments are ordered by that zxid. New segments
// are written as "log.<hex>.tmp" and renamed into place once their header is
// durable; leftover *.tmp files are deleted by TxnLog::Open. Other files are
// ignored.
//
// Segment file (all integers little-endian)
// ------------
//     offset 0   8 bytes  magic "RKLOG\0\0\1"
//     offset 8   u32      format version (kTxnLogFormatVersion = 1)
//     offset 12  u32      reserved, 0
//     offset 16  records, back to back (no padding or alignment)
//     then       zero bytes up to the end of the file (preallocation)
//
// Record
// ------
//     u32  length        of payload, in bytes (<= max_record_bytes)
//     u32  masked_crc    Crc32cMask(crc32c(zxid as 8 LE bytes ++ payload))
//     i64  zxid          > 0, greater than the previous record's
//     u8   payload[length]
//
// A record header of 16 zero bytes (length 0, masked_crc 0, zxid 0) marks the
// end of the segment: the start of the zero-filled preallocated tail. So does
// the end of the file (a record's zxid is never 0, so its header never is).
// Zeros are accepted as the end only if no valid record follows them.
//
// Segments are extended in chunks of preallocate_bytes (fallocate, or
// ftruncate where unsupported) so that most appends overwrite allocated zeros
// and fdatasync need not update the file size. A new segment is started when a
// group commit would take the current one past segment_max_bytes (a larger
// group still goes into one segment, alone); the finished segment is then
// truncated to its last record (a zero tail left by a crash is accepted).
//
// Durability and recovery
// -----------------------
// A record is durable once Append/AppendBatch returned OK for it (fdatasync of
// the segment, and of the directory after a segment is created or deleted).
// TxnLog::Open validates every record (length bound, checksum, increasing
// zxids, first record's zxid == segment name) and distinguishes:
//  * a torn tail: damage in the LAST segment after which no valid record
//    follows (a write that was never acknowledged). Open cuts the segment at
//    the end of the last good record and reports it in recovery_report().
//  * corruption: damage in a non-last segment, a bad record followed by a
//    valid record, non-increasing zxids, a bad header. Open fails with
//    DataLoss naming the file and byte offset; nothing is modified.
// TxnLogReader performs the same validation read-only (for offline tools) and
// reports either kind without modifying anything.
#ifndef ROCKEEPER_ENGINE_TXN_LOG_H_
#define ROCKEEPER_ENGINE_TXN_LOG_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace rockeeper::engine {

inline constexpr uint32_t kTxnLogFormatVersion = 1;
inline constexpr size_t kTxnLogFileHeaderSize = 16;
inline constexpr size_t kTxnLogRecordHeaderSize = 16;  // length, crc, zxid
inline constexpr uint32_t kTxnLogDefaultMaxRecordBytes = 64u << 20;

struct TxnLogOptions {
  std::string dir;                         // created (with parents) if missing
  uint64_t segment_max_bytes = 64u << 20;  // roll to a new segment past this
  // Segments are extended to the next multiple of this (capped at
  // segment_max_bytes unless a write needs more); 0 = no preallocation.
  uint64_t preallocate_bytes = 64u << 20;
  uint32_t max_record_bytes = kTxnLogDefaultMaxRecordBytes;  // payload bound
  bool sync = true;  // false only for tests/benchmarks: skip fdatasync/fsync
};

struct LogRecord {
  int64_t zxid = 0;
  std::string_view payload;
};

// Where and how a log directory is damaged.
struct LogDamage {
  enum class Kind {
    kNone,
    // Damage at the end of the last segment with no valid record after it: an
    // interrupted, never-acknowledged write. TxnLog::Open truncates it.
    kTornTail,
    // Anything else. TxnLog::Open refuses to open (DataLoss).
    kCorruption,
  };
  Kind kind = Kind::kNone;
  std::string file;     // full path of the segment
  uint64_t offset = 0;  // byte offset of the first bad record (= end of the
                        // last good record in that file)
  uint64_t dropped_bytes = 0;  // kTornTail: bytes of non-zero data from
                               // `offset` on (what truncation discards)
  std::string detail;          // human-readable description

  bool ok() const { return kind == Kind::kNone; }
  // OK for kNone, otherwise DataLoss("<file>: offset <offset>: ...").
  absl::Status ToStatus() const;
  std::string ToString() const;
};

// One segment file as validated by TxnLog::Open or TxnLogReader::Open.
struct TxnLogSegmentInfo {
  std::string path;
  int64_t name_zxid = 0;   // from the file name
  int64_t last_zxid = 0;   // of the last valid record; 0 if none
  uint64_t records = 0;    // valid records
  uint64_t valid_end = 0;  // byte offset just past the last valid record
  uint64_t file_size = 0;
};

// What TxnLog::Open changed to make the log consistent.
struct TxnLogRecoveryReport {
  LogDamage torn_tail;  // kind kTornTail if a tail was cut, else kNone
  std::vector<std::string> removed_files;  // empty last segment, *.tmp files
  int64_t last_zxid = 0;
  uint64_t records = 0;  // valid records found
  size_t segments = 0;   // segments after recovery

  bool modified() const { return !torn_tail.ok() || !removed_files.empty(); }
  std::string ToString() const;  // one line, for the server log
};

// Iterates over records in zxid order. Not thread-safe: use from one thread
// at a time. Independent of the object that created it (it holds its own file
// descriptors) and may outlive it.
class TxnLogIterator {
 public:
  virtual ~TxnLogIterator() = default;
  // True if positioned at a record.
  virtual bool Valid() const = 0;
  // REQUIRES: Valid().
  virtual void Next() = 0;
  // REQUIRES: Valid().
  virtual int64_t zxid() const = 0;
  // REQUIRES: Valid(). Valid until Next() or destruction.
  virtual std::string_view payload() const = 0;
  // OK unless iteration stopped early: DataLoss (file + offset) on a bad
  // record, or an I/O error. Check it once Valid() is false.
  virtual absl::Status status() const = 0;
};

// Read-write access to a log directory. One TxnLog per directory (enforced
// with flock on the directory; a second Open fails with FailedPrecondition).
//
// Thread safety: all methods are thread-safe. Concurrent Append/AppendBatch
// calls are group-committed: callers join a queue; the caller at its front
// (the leader) writes the records of every queued caller (up to 4 MiB) with
// one pwrite and one fdatasync, then wakes them and hands leadership to the
// next queued caller (LevelDB's writer queue). TruncateAfter and PurgeBefore
// are serialized with the leader's I/O. The object must not be destroyed while
// calls are in flight.
//
// Ordering: zxids must increase in the order callers join the queue. Callers
// that assign zxids concurrently must therefore either join in zxid order or
// treat FailedPrecondition as "overtaken" (zxids need not be contiguous, so a
// fresh, larger zxid may be used).
class TxnLog {
 public:
  struct Stats {
    uint64_t records = 0;  // records appended since Open
    uint64_t bytes = 0;    // bytes written for them (headers included)
    uint64_t batches = 0;  // group commits (one write + one fdatasync each)
    uint64_t fsyncs = 0;   // fdatasync/fsync calls (files and directory)
    uint64_t segments_created = 0;
    uint64_t segments_deleted = 0;  // by TruncateAfter, PurgeBefore
  };

  // Opens (creating if needed) the log in options.dir and recovers it: a torn
  // tail is truncated (see recovery_report()), an empty last segment and stale
  // temporary files are deleted. Corruption returns DataLoss naming the file
  // and byte offset, without modifying anything.
  static absl::StatusOr<std::unique_ptr<TxnLog>> Open(
      const TxnLogOptions& options);

  ~TxnLog();
  TxnLog(const TxnLog&) = delete;
  TxnLog& operator=(const TxnLog&) = delete;

  // Appends one record and returns once it is durable (or, with sync=false,
  // written). zxid must be greater than every zxid appended or queued before:
  // otherwise FailedPrecondition and nothing is written.
  // A payload larger than max_record_bytes is InvalidArgument. After a failed
  // write or fsync the log is poisoned: this and every later call returns
  // that error; reopen the log to recover.
  absl::Status Append(int64_t zxid, std::string_view payload)
      ABSL_LOCKS_EXCLUDED(mu_, io_mu_);

  // Appends records (strictly increasing zxids) with one write and one
  // fdatasync (possibly together with concurrent callers' records). All or
  // none are accepted; on a write/fsync error none may be assumed durable.
  absl::Status AppendBatch(absl::Span<const LogRecord> records)
      ABSL_LOCKS_EXCLUDED(mu_, io_mu_);

  // The next append starts a new segment (if the current one has records).
  // Called after each snapshot, as ZooKeeper rolls its log then, so that
  // purging old snapshots frees whole segments. Thread-safe.
  void RequestRoll() { roll_requested_.store(true); }

  // Zxid of the last durable record; 0 if the log is empty.
  int64_t last_zxid() const ABSL_LOCKS_EXCLUDED(mu_);

  // Removes every record with zxid > `zxid`: cuts the segment containing it
  // and deletes later segments (newest first, so a crash leaves a prefix),
  // then fsyncs the file and the directory. If no record <= zxid exists the
  // log becomes empty (last_zxid() == 0). Iterators created earlier may still
  // return removed records or fail. Errors poison the log.
  absl::Status TruncateAfter(int64_t zxid) ABSL_LOCKS_EXCLUDED(mu_, io_mu_);

  // Deletes whole segments all of whose records are < `zxid` (oldest first):
  // never the segment containing `zxid`, a later one, or the last segment.
  // Returns the number of segments deleted. Open iterators are unaffected.
  absl::StatusOr<int> PurgeBefore(int64_t zxid)
      ABSL_LOCKS_EXCLUDED(mu_, io_mu_);

  // Iterates over the durable records with zxid >= from_zxid as of this call
  // (later appends are not seen). Never returns null; errors (e.g. a file
  // that cannot be opened) are reported by the iterator's status().
  std::unique_ptr<TxnLogIterator> NewIterator(int64_t from_zxid) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Segments as of now (valid_end = durable end).
  std::vector<TxnLogSegmentInfo> segments() const ABSL_LOCKS_EXCLUDED(mu_);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  const TxnLogRecoveryReport& recovery_report() const { return report_; }
  const TxnLogOptions& options() const { return options_; }

 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  // Use Open().
  TxnLog(const TxnLogOptions& options, int dir_fd, PrivateTag);

 private:
  struct Writer;
  struct Segment {
    std::string path;
    int64_t first_zxid = 0;
    int64_t last_zxid = 0;  // 0 while the segment has no durable record
    uint64_t records = 0;
    uint64_t end = 0;  // durable end (offset past the last durable record)
  };

  absl::Status Enqueue(Writer* w) ABSL_LOCKS_EXCLUDED(mu_, io_mu_);
  // Writes and syncs one group (the leader, without mu_ held).
  absl::Status WriteGroup(std::string_view data, int64_t first_zxid,
                          int64_t last_zxid, uint64_t count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes the current segment (if any) and starts one named first_zxid,
  // preallocated for at least first_write_bytes of records.
  absl::Status Roll(int64_t first_zxid, uint64_t first_write_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status EnsureAllocated(uint64_t needed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  absl::Status OpenCurrent(const Segment& seg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  absl::Status TruncateAfterLocked(int64_t zxid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_) ABSL_LOCKS_EXCLUDED(mu_);
  void Poison(const absl::Status& s) ABSL_LOCKS_EXCLUDED(mu_);

  const TxnLogOptions options_;
  const int dir_fd_;  // open (and flock'ed) for the object's lifetime
  TxnLogRecoveryReport report_;  // set by Open, then immutable

  // Lock order: io_mu_ before mu_. io_mu_ is held by whoever does file I/O on
  // the log (the group-commit leader, TruncateAfter, PurgeBefore); mu_ guards
  // the queue and the published state and is never held across I/O except
  // while opening iterator file descriptors.
  absl::Mutex io_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  int fd_ ABSL_GUARDED_BY(io_mu_) = -1;  // last segment, -1 if none
  std::string current_path_ ABSL_GUARDED_BY(io_mu_);
  uint64_t write_offset_ ABSL_GUARDED_BY(io_mu_) = 0;
  std::atomic<bool> roll_requested_{false};
  uint64_t allocated_ ABSL_GUARDED_BY(io_mu_) = 0;  // file size
  uint64_t current_records_ ABSL_GUARDED_BY(io_mu_) = 0;
  std::string group_buf_ ABSL_GUARDED_BY(io_mu_);

  mutable absl::Mutex mu_;
  std::deque<Writer*> writers_ ABSL_GUARDED_BY(mu_);
  int64_t last_queued_zxid_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status poison_ ABSL_GUARDED_BY(mu_);
  // Published state; changed only with io_mu_ held too.
  std::vector<Segment> segments_ ABSL_GUARDED_BY(mu_);
  int64_t last_zxid_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// Read-only access to a log directory, for offline tools (rkutl) and tests.
// Never modifies, creates or deletes anything and takes no lock, so it may be
// used while a TxnLog has the directory open (it then sees a point-in-time
// view that may include a not-yet-durable tail, reported as kTornTail).
//
// Open validates all segments exactly like TxnLog::Open and stops at the
// first damage. Thread safety: const methods may be called concurrently.
class TxnLogReader {
 public:
  // Errors only for I/O problems (NotFound if `dir` does not exist); damage to
  // the log is reported by damage()/status().
  static absl::StatusOr<std::unique_ptr<TxnLogReader>> Open(
      const std::string& dir,
      uint32_t max_record_bytes = kTxnLogDefaultMaxRecordBytes);

  // OK, or DataLoss naming the file and offset of the first damage (a torn
  // tail included).
  absl::Status status() const { return damage_.ToStatus(); }
  // kTornTail vs kCorruption, file, offset.
  const LogDamage& damage() const { return damage_; }
  // The segments validated, in order (up to and including the damaged one).
  const std::vector<TxnLogSegmentInfo>& segments() const { return segments_; }
  int64_t last_zxid() const;  // of the last valid record; 0 if none

  // Iterates over the valid records with zxid >= from_zxid; once past the
  // last one, status() is this->status().
  std::unique_ptr<TxnLogIterator> NewIterator(int64_t from_zxid) const;

 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  explicit TxnLogReader(PrivateTag) {}  // use Open()

 private:
  uint32_t max_record_bytes_ = kTxnLogDefaultMaxRecordBytes;
  std::vector<TxnLogSegmentInfo> segments_;
  LogDamage damage_;
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_TXN_LOG_H_
