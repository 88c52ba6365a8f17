// Crash test: a child process (this binary with --crash-writer) writes a
// stream of txns through the txn log (group commit) and Apply, taking
// snapshots and purging as a server would, and reports every zxid whose
// AppendBatch returned. The parent SIGKILLs it at a random moment, then
// checks, with real files:
//   * the log opens (a torn tail is cut) and holds every acknowledged zxid;
//   * recovery (state DB + replay of the log tail) reaches the log's end;
//   * the recovered state DB equals an independent rebuild: the newest
//     snapshot restored into a fresh directory plus a replay of the log.
// Iterations continue in the same data dir, so damage would accumulate.
// RK_CRASH_ITERATIONS (default 40) sets the number of kills.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/prep.h"
#include "engine/recovery.h"
#include "engine/snapshot.h"
#include "engine/state_db.h"
#include "engine/txn_log.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

extern char** environ;

namespace rockeeper::engine {
namespace {

constexpr int64_t kSnapEvery = 1500;  // txns between snapshots in the writer

TxnLogOptions LogOptions(const std::string& dir) {
  TxnLogOptions o;
  o.dir = dir + "/log";
  o.segment_max_bytes = 128 << 10;  // many segments: rolls and purges
  o.preallocate_bytes = 64 << 10;
  return o;
}

StateDbOptions DbOptions(const std::string& path) {
  StateDbOptions o;
  o.path = path;
  o.block_cache_bytes = 4 << 20;
  o.write_buffer_bytes = 128 << 10;  // frequent flushes
  return o;
}

WriteRequest RandomRequest(std::mt19937_64& rng) {
  const std::string path = absl::StrCat("/c", rng() % 4, "/n", rng() % 200);
  switch (rng() % 6) {
    case 0:
      return SetDataRequest{path, std::string(rng() % 300, 'd'), -1};
    case 1:
      return DeleteRequest{path, -1};
    case 2: {
      CreateRequest seq;
      seq.path = absl::StrCat("/c", rng() % 4, "/s-");
      seq.flags = kPersistentSequential;
      seq.acl = OpenAclUnsafe();
      return seq;
    }
    default: {
      CreateRequest c;
      c.path = path;
      c.data = std::string(rng() % 200, 'x');
      c.acl = OpenAclUnsafe();
      return c;
    }
  }
}

[[noreturn]] void Die(const absl::Status& s) {
  std::fprintf(stderr, "crash-writer: %s\n", s.ToString().c_str());
  std::_Exit(3);
}

// The child: runs until killed (or for at most 60 s).
int RunWriter(const std::string& dir, uint64_t seed) {
  auto log = TxnLog::Open(LogOptions(dir));
  if (!log.ok()) Die(log.status());
  auto db = StateDb::Open(DbOptions(dir + "/state"));
  if (!db.ok()) Die(db.status());
  if (auto n = ReplayLog(**log, **db); !n.ok()) Die(n.status());
  SnapshotStore snaps(dir + "/snapshots");
  Prep prep(db->get(), {});
  std::mt19937_64 rng(seed);
  int64_t zxid = std::max((*log)->last_zxid(), (*db)->last_applied_zxid()) + 1;
  for (int c = 0; c < 4; ++c) {  // parents (NODEEXISTS after the first run)
    CreateRequest parent;
    parent.path = absl::StrCat("/c", c);
    parent.acl = OpenAclUnsafe();
    auto out = prep.Prepare({}, parent, zxid, zxid);
    if (!out.ok()) Die(out.status());
    if (!out->txn) continue;
    const std::string payload = out->txn->SerializeAsString();
    if (auto s = (*log)->Append(zxid, payload); !s.ok()) Die(s);
    if (auto s = (*db)->Apply({*out->txn}, nullptr); !s.ok()) Die(s);
    prep.OnApplied(zxid++);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int64_t since_snap = 0;
  std::vector<Txn> txns;
  std::vector<std::string> payloads;
  std::vector<LogRecord> records;
  while (std::chrono::steady_clock::now() < deadline) {
    txns.clear();
    payloads.clear();
    records.clear();
    const int batch = 1 + static_cast<int>(rng() % 32);
    for (int i = 0; i < batch; ++i) {
      auto out = prep.Prepare({}, RandomRequest(rng), zxid, zxid);
      if (!out.ok()) Die(out.status());
      if (!out->txn) continue;
      payloads.push_back(out->txn->SerializeAsString());
      txns.push_back(*std::move(out->txn));
      ++zxid;
    }
    if (txns.empty()) continue;
    for (size_t i = 0; i < txns.size(); ++i) {
      records.push_back({txns[i].header().zxid(), payloads[i]});
    }
    if (auto s = (*log)->AppendBatch(records); !s.ok()) Die(s);
    // Acknowledge: everything up to here is durable.
    const std::string ack = absl::StrCat(zxid - 1, "\n");
    if (write(STDOUT_FILENO, ack.data(), ack.size()) < 0) return 0;
    if (auto s = (*db)->Apply(txns, nullptr); !s.ok()) Die(s);
    prep.OnApplied(zxid - 1);
    since_snap += static_cast<int64_t>(txns.size());
    if (since_snap >= kSnapEvery) {
      since_snap = 0;
      if (auto s = snaps.Create(**db); !s.ok()) Die(s.status());
      auto oldest = snaps.Purge(3);
      if (!oldest.ok()) Die(oldest.status());
      if (auto s = (*log)->PurgeBefore(*oldest + 1); !s.ok()) Die(s.status());
    }
  }
  return 0;
}

// Spawns the writer with stdout on a pipe; returns its pid and read end.
pid_t SpawnWriter(const std::string& dir, uint64_t seed, int* read_fd) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string self = "/proc/self/exe";
  std::string flag = "--crash-writer";
  std::string seed_s = std::to_string(seed);
  std::string dir_s = dir;
  char* argv[] = {self.data(), flag.data(), dir_s.data(), seed_s.data(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return -1;
  }
  *read_fd = fds[0];
  return pid;
}

// Reads acks until `want` arrived, the writer exited, or 30 s passed.
int64_t ReadAcks(int fd, int want, int* got) {
  int64_t max_acked = 0;
  std::string buf;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (*got < want && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      int64_t z = 0;
      if (absl::SimpleAtoi(buf.substr(0, nl), &z)) max_acked = std::max(max_acked, z);
      buf.erase(0, nl + 1);
      ++*got;
    }
  }
  return max_acked;
}

// Rebuilds the state independently: newest snapshot (or empty) + log.
absl::StatusOr<uint64_t> RebuildDigest(const std::string& dir, const TxnLog& log) {
  const std::string rebuild = dir + "/rebuild";
  std::filesystem::remove_all(rebuild);
  SnapshotStore snaps(dir + "/snapshots");
  auto list = snaps.List();
  if (!list.ok()) return list.status();
  if (!list->empty()) {
    if (auto s = SnapshotStore::Restore(list->back().path, rebuild); !s.ok()) return s;
  }
  auto db = StateDb::Open(DbOptions(rebuild));
  if (!db.ok()) return db.status();
  auto n = ReplayLog(log, **db);
  if (!n.ok()) return n.status();
  if ((*db)->last_applied_zxid() != log.last_zxid()) {
    return absl::InternalError(absl::StrCat("rebuild reached ", (*db)->last_applied_zxid(),
                                            " not ", log.last_zxid()));
  }
  auto digest = (*db)->ComputeDigest();
  db->reset();
  std::filesystem::remove_all(rebuild);
  return digest;
}

TEST(CrashTest, AcknowledgedTxnsSurviveKill9) {
  const char* env = std::getenv("RK_CRASH_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 40;
  testing::TempDir dir;
  std::mt19937_64 rng(20261122);
  int64_t total_acked = 0;
  for (int i = 0; i < iterations; ++i) {
    SCOPED_TRACE(absl::StrCat("iteration ", i));
    int fd = -1;
    const pid_t pid = SpawnWriter(dir.path(), static_cast<uint64_t>(i) + 1, &fd);
    ASSERT_GT(pid, 0);
    const int want = 1 + static_cast<int>(rng() % 400);
    int got = 0;
    const int64_t max_acked = ReadAcks(fd, want, &got);
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    close(fd);
    ASSERT_TRUE(WIFSIGNALED(status)) << "writer exited early, status " << status;
    ASSERT_GT(got, 0) << "writer acknowledged nothing";
    total_acked += got;

    auto log = TxnLog::Open(LogOptions(dir.path()));
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_GE((*log)->last_zxid(), max_acked) << "acknowledged txn lost";
    auto db = StateDb::Open(DbOptions(dir.path() + "/state"));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_LE((*db)->last_applied_zxid(), (*log)->last_zxid());
    auto replayed = ReplayLog(**log, **db);
    ASSERT_TRUE(replayed.ok()) << replayed.status();
    ASSERT_EQ((*db)->last_applied_zxid(), (*log)->last_zxid());
    auto digest = (*db)->ComputeDigest();
    ASSERT_TRUE(digest.ok()) << digest.status();
    db->reset();
    auto rebuilt = RebuildDigest(dir.path(), **log);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_EQ(*digest, *rebuilt) << "recovered state differs from log replay";
    if (HasFatalFailure() || HasFailure()) return;
  }
  EXPECT_GT(total_acked, iterations);
  // The writer's snapshot + purge path ran too.
  auto snaps = SnapshotStore(dir.path() + "/snapshots").List();
  ASSERT_TRUE(snaps.ok());
  if (iterations >= 10) {
    EXPECT_FALSE(snaps->empty());
    auto log = TxnLog::Open(LogOptions(dir.path()));
    ASSERT_TRUE(log.ok());
    EXPECT_GT((*log)->segments().front().name_zxid, 1) << "log never purged";
  }
}

}  // namespace
}  // namespace rockeeper::engine

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--crash-writer") == 0) {
    return rockeeper::engine::RunWriter(argv[2], std::strtoull(argv[3], nullptr, 10));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
