// ZooKeeper's four-letter words (ruok, srvr, stat, mntr, conf, isro, envi,
// wchs, dirs, srst, ...) answered on clientPort before a handshake, in
// ZooKeeper 3.8's output format (shared/reference section 6).
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
  int64_t open_fds = 0;
  int64_t max_fds = 0;
  std::vector<std::pair<std::string, std::string>> conf;  // for `conf`
};

struct FourLetterWords {
  // Builds a snapshot (called for each command).
  std::function<ServerSnapshot()> snapshot;
  // Resets the server statistics (`srst`).
  std::function<void()> reset_stats;
  // Allowed commands (4lw.commands.whitelist); "*" allows all. `srvr` is
  // always allowed, as in ZooKeeper.
  std::function<bool(absl::string_view)> allowed;
};

// True if `cmd` (4 bytes) is a four-letter word.
bool IsFourLetterWord(absl::string_view cmd);

// The command's output (what ZooKeeper writes before closing).
std::string RunFourLetterWord(absl::string_view cmd, const FourLetterWords& h);

// The version string reported by srvr/stat/mntr/envi.
inline constexpr char kZkVersionString[] =
    "3.8.0-rockeeper-0.1.0, built on 2026-11-22";

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_FOUR_LETTER_WORDS_H_
