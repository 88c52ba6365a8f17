#include "rpc/four_letter_words.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rockeeper::rpc {
namespace {

constexpr absl::string_view kWords[] = {
    "ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "wchs",
    "wchc", "wchp", "mntr", "isro", "dirs", "dump", "hash", "gtmk"};

std::string Srvr(const ServerSnapshot& s, bool with_clients) {
  std::string out = absl::StrCat("Zookeeper version: ", kZkVersionString, "\n");
  if (with_clients) {
    absl::StrAppend(&out, "Clients:\n\n");
  }
  absl::StrAppend(
      &out,
      absl::StrFormat("Latency min/avg/max: %d/%.4f/%d\n", s.latency_min_ms,
                      s.latency_avg_ms, s.latency_max_ms),
      "Received: ", s.packets_received, "\n", "Sent: ", s.packets_sent, "\n",
      "Connections: ", s.connections, "\n", "Outstanding: ", s.outstanding,
      "\n", absl::StrFormat("Zxid: 0x%x\n", s.zxid), "Mode: ", s.mode, "\n",
      "Node count: ", s.znode_count, "\n");
  return out;
}

std::string Mntr(const ServerSnapshot& s) {
  std::string out;
  auto kv = [&](absl::string_view k, const auto& v) {
    absl::StrAppend(&out, "zk_", k, "\t", v, "\n");
  };
  kv("version", kZkVersionString);
  kv("server_state", s.mode);
  kv("avg_latency", absl::StrFormat("%.4f", s.latency_avg_ms));
  kv("max_latency", s.latency_max_ms);
  kv("min_latency", s.latency_min_ms);
  kv("packets_received", s.packets_received);
  kv("packets_sent", s.packets_sent);
  kv("num_alive_connections", s.connections);
  kv("outstanding_requests", s.outstanding);
  kv("uptime", s.uptime_ms);
  kv("znode_count", s.znode_count);
  kv("watch_count", s.watch_count);
  kv("ephemerals_count", s.ephemerals_count);
  kv("approximate_data_size", s.data_dir_bytes);
  kv("global_sessions", s.sessions);
  kv("local_sessions", 0);
  kv("open_file_descriptor_count", s.open_fds);
  kv("max_file_descriptor_count", s.max_fds);
  return out;
}

}  // namespace

bool IsFourLetterWord(absl::string_view cmd) {
  for (absl::string_view w : kWords) {
    if (cmd == w) return true;
  }
  return false;
}

std::string RunFourLetterWord(absl::string_view cmd, const FourLetterWords& h) {
  if (cmd != "srvr" && (!h.allowed || !h.allowed(cmd))) {
    return absl::StrCat(cmd, " is not executed because it is not in the whitelist.\n");
  }
  if (cmd == "ruok") return "imok";
  const ServerSnapshot s = h.snapshot ? h.snapshot() : ServerSnapshot{};
  if (cmd == "srvr") return Srvr(s, false);
  if (cmd == "stat") return Srvr(s, true);
  if (cmd == "mntr") return Mntr(s);
  if (cmd == "isro") return "rw";
  if (cmd == "conf") {
    std::string out;
    for (const auto& [k, v] : s.conf) absl::StrAppend(&out, k, "=", v, "\n");
    return out;
  }
  if (cmd == "wchs") {
    return absl::StrCat(s.watching_sessions, " connections watching ",
                        s.watched_paths, " paths\nTotal watches:",
                        s.watch_count, "\n");
  }
  if (cmd == "dirs") {
    return absl::StrCat("datadir_size: ", s.data_dir_bytes,
                        "\nlogdir_size: ", s.log_dir_bytes, "\n");
  }
  if (cmd == "envi") {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    char cwd[4096] = {0};
    if (getcwd(cwd, sizeof(cwd) - 1) == nullptr) cwd[0] = 0;
    return absl::StrCat("Environment:\nzookeeper.version=", kZkVersionString,
                        "\nhost.name=", host, "\nos.name=Linux\n",
                        "user.dir=", cwd, "\n");
  }
  if (cmd == "srst") {
    if (h.reset_stats) h.reset_stats();
    return "Server stats reset.\n";
  }
  if (cmd == "crst") return "Connection stats reset.\n";
  if (cmd == "gtmk") return "306\n";
  if (cmd == "hash") return "";
  // cons, wchc, wchp, dump: not detailed yet.
  return absl::StrCat(cmd, " is not implemented by rockeeper yet.\n");
}

}  // namespace rockeeper::rpc
