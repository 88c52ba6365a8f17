// ZooKeeper's four-letter words (ruok, srvr, stat, mntr, conf, cons, dump,
// wchc, wchp, ...) answered on clientPort before a handshake, in ZooKeeper
// 3.8's output format (shared/reference section 6), and the same commands as
// JSON in the shape of ZooKeeper's AdminServer (/commands/<name> on the
// admin HTTP server).
#ifndef ROCKEEPER_RPC_FOUR_LETTER_WORDS_H_
#define ROCKEEPER_RPC_FOUR_LETTER_WORDS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace rockeeper::rpc {

// One client connection of the wire protocol (cons, stat, connections).
struct ConnectionInfo {
  std::string remote;            // "127.0.0.1:44280"
  int interest_ops = 0;          // 1 once the handshake was read, 0 before
  int64_t queued = 0;            // requests read, reply not yet written
  int64_t received = 0;          // frames read (since crst)
  int64_t sent = 0;              // frames written (since crst)
  int64_t session_id = 0;        // 0: no session (yet)
  std::string last_op = "NA";    // ZooKeeper's short name: GETD, CREA, ...
  int64_t established_ms = 0;    // wall clock, ms since the epoch
  int32_t timeout_ms = 0;        // negotiated session timeout
  int64_t last_cxid = -1;        // xid of the last reply (-1: none)
  int64_t last_zxid = -1;        // zxid of the last reply (-1: none)
  int64_t last_response_ms = 0;  // monotonic ms of the last reply (0: none)
  int64_t last_latency_ms = 0;
  int64_t min_latency_ms = 0;
  int64_t avg_latency_ms = 0;
  int64_t max_latency_ms = 0;
};

// One live session (dump).
struct SessionDump {
  int64_t id = 0;
  int32_t timeout_ms = 0;
  int64_t expires_at_ms = 0;  // wall clock
  std::vector<std::string> ephemerals;
};

// What the commands report, gathered when a command arrives.
struct ServerSnapshot {
  std::string mode = "standalone";
  int64_t zxid = 0;
  int64_t znode_count = 0;
  int64_t watch_count = 0;
  int64_t watched_paths = 0;
  int64_t watching_sessions = 0;
  int64_t ephemerals_count = 0;
  int64_t sessions = 0;
  int64_t connections = 0;
  int64_t packets_received = 0;
  int64_t packets_sent = 0;
  int64_t outstanding = 0;
  int64_t latency_min_ms = 0;
  int64_t latency_max_ms = 0;
  double latency_avg_ms = 0;
  int64_t uptime_ms = 0;
  int64_t data_dir_bytes = 0;
  int64_t log_dir_bytes = 0;
  int64_t snapshot_dir_bytes = 0;
  int64_t open_fds = 0;
  int64_t max_fds = 0;
  // The write path (CommitPipeline::Stats).
  int64_t txns_applied = 0;
  int64_t log_batches = 0;
  int64_t apply_batches = 0;
  int64_t apply_gate_waits = 0;  // see replication/apply_gate.h
  int64_t apply_gate_timeouts = 0;
  int64_t snapshots_taken = 0;
  // The state DB's children cache (engine/children_cache.h).
  int64_t children_cache_hits = 0;
  int64_t children_cache_misses = 0;
  int64_t children_cache_bytes = 0;
  // Bytes held by the state DB's RocksDB row cache (rowCacheSizeMb).
  int64_t row_cache_bytes = 0;
  // The state DB's znode cache (engine/znode_cache.h).
  int64_t znode_cache_hits = 0;
  int64_t znode_cache_misses = 0;
  int64_t znode_cache_bytes = 0;
  // Ensemble members: voting members (0 standalone: no zk_quorum_size).
  int64_t quorum_size = 0;
  // The leader's keys (mode "leader"; ZooKeeper prints them only there).
  int64_t learners = 0;
  int64_t synced_followers = 0;
  int64_t synced_observers = 0;
  int64_t leader_uptime_ms = 0;
  int64_t last_proposal_size = -1;  // bytes; -1 before the first
  int64_t min_proposal_size = -1;
  int64_t max_proposal_size = -1;
  bool healthy = true;  // the write path is not poisoned
  int64_t tick_time_ms = 2000;
  std::vector<std::pair<std::string, std::string>> conf;  // for `conf`
};

struct FourLetterWords {
  // Builds a snapshot (called for each command).
  std::function<ServerSnapshot()> snapshot;
  // Resets the server statistics (`srst`).
  std::function<void()> reset_stats;
  // Resets the per-connection statistics (`crst`).
  std::function<void()> reset_connection_stats;
  // The wire protocol's connections (`cons`, `stat`).
  std::function<std::vector<ConnectionInfo>()> connections;
  // Live sessions with their ephemerals (`dump`).
  std::function<std::vector<SessionDump>()> sessions;
  // Watched paths per session (`wchc`) and sessions per path (`wchp`),
  // sorted.
  std::function<std::vector<std::pair<int64_t, std::vector<std::string>>>()>
      watches_by_session;
  std::function<std::vector<std::pair<std::string, std::vector<int64_t>>>()>
      watches_by_path;
  // Allowed commands (4lw.commands.whitelist); "*" allows all. `srvr` is
  // always allowed, as in ZooKeeper. Not consulted for the admin HTTP
  // commands (as ZooKeeper's AdminServer).
  std::function<bool(absl::string_view)> allowed;
};

// True if `cmd` (4 bytes) is a four-letter word.
bool IsFourLetterWord(absl::string_view cmd);

// The command's output (what ZooKeeper writes before closing).
std::string RunFourLetterWord(absl::string_view cmd, const FourLetterWords& h);

// AdminServer commands: primary names in ZooKeeper's order for /commands.
const std::vector<std::string>& AdminCommandNames();

// The JSON answer of AdminServer command `name` (a primary name or an alias
// such as "mntr"); nullopt for an unknown command.
std::optional<std::string> RunAdminCommand(absl::string_view name,
                                           const FourLetterWords& h);

// A JSON string literal (with quotes) for `s`.
std::string JsonString(absl::string_view s);

// The version string reported by srvr/stat/mntr/envi.
inline constexpr char kZkVersionString[] =
    "3.8.0-rockeeper-0.1.0, built on 2026-11-22";

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_FOUR_LETTER_WORDS_H_
