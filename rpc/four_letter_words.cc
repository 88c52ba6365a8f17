#include "rpc/four_letter_words.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace rockeeper::rpc {
namespace {

constexpr absl::string_view kWords[] = {
    "ruok", "srvr", "stat", "conf", "cons", "crst", "srst", "envi", "wchs",
    "wchc", "wchp", "mntr", "isro", "dirs", "dump", "hash", "gtmk"};

// One reported value: text for the 4lw, typed for JSON.
struct Value {
  std::string text;
  bool number = false;
};
using KeyValues = std::vector<std::pair<std::string, Value>>;

template <typename T>
Value Num(T v) {
  return Value{absl::StrCat(v), true};
}
Value Str(std::string v) { return Value{std::move(v), false}; }

std::string Hex(int64_t v) {
  return absl::StrFormat("0x%x", static_cast<uint64_t>(v));
}

// ZooKeeper prints Java doubles: "0.0", "12.8571".
std::string JavaDouble(double v) {
  std::string s = absl::StrFormat("%.4f", v);
  while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.')
    s.pop_back();
  return s;
}

// --- A small pretty JSON writer (Jackson's layout: `"key" : value`). --------

class Json {
 public:
  Json& Raw(absl::string_view key, std::string raw) {
    fields_.emplace_back(std::string(key), std::move(raw));
    return *this;
  }
  Json& S(absl::string_view key, absl::string_view v) {
    return Raw(key, JsonString(v));
  }
  template <typename T>
  Json& N(absl::string_view key, T v) {
    return Raw(key, absl::StrCat(v));
  }
  Json& B(absl::string_view key, bool v) {
    return Raw(key, v ? "true" : "false");
  }
  std::string Render(int indent = 0) const {
    if (fields_.empty()) return "{ }";
    const std::string pad(static_cast<size_t>(indent) + 2, ' ');
    std::string out = "{\n";
    for (size_t i = 0; i < fields_.size(); ++i) {
      absl::StrAppend(&out, pad, JsonString(fields_[i].first), " : ",
                      Reindent(fields_[i].second, indent + 2),
                      i + 1 < fields_.size() ? ",\n" : "\n");
    }
    absl::StrAppend(&out, std::string(static_cast<size_t>(indent), ' '), "}");
    return out;
  }

 private:
  // Nested renders are made at indent 0; shift their inner lines.
  static std::string Reindent(const std::string& raw, int indent) {
    if (indent == 0 || raw.find('\n') == std::string::npos) return raw;
    std::string out;
    const std::string pad(static_cast<size_t>(indent), ' ');
    for (char c : raw) {
      out.push_back(c);
      if (c == '\n') out += pad;
    }
    return out;
  }
  std::vector<std::pair<std::string, std::string>> fields_;
};

std::string JsonArray(const std::vector<std::string>& raw_items) {
  if (raw_items.empty()) return "[ ]";
  std::string out = "[ ";
  for (size_t i = 0; i < raw_items.size(); ++i) {
    absl::StrAppend(&out, i > 0 ? ", " : "", raw_items[i]);
  }
  return out + " ]";
}

Json FromKeyValues(const KeyValues& kvs) {
  Json j;
  for (const auto& [k, v] : kvs) {
    j.Raw(k, v.number ? v.text : JsonString(v.text));
  }
  return j;
}

// --- The data of each command
// -------------------------------------------------

KeyValues MonitorValues(const ServerSnapshot& s) {
  KeyValues kv = {
      {"version", Str(kZkVersionString)},
      {"server_state", Str(s.mode)},
      {"avg_latency", Value{JavaDouble(s.latency_avg_ms), true}},
      {"max_latency", Num(s.latency_max_ms)},
      {"min_latency", Num(s.latency_min_ms)},
      {"packets_received", Num(s.packets_received)},
      {"packets_sent", Num(s.packets_sent)},
      {"num_alive_connections", Num(s.connections)},
      {"outstanding_requests", Num(s.outstanding)},
      {"uptime", Num(s.uptime_ms)},
      {"znode_count", Num(s.znode_count)},
      {"watch_count", Num(s.watch_count)},
      {"ephemerals_count", Num(s.ephemerals_count)},
      {"approximate_data_size", Num(s.data_dir_bytes)},
      {"global_sessions", Num(s.sessions)},
      {"local_sessions", Num(0)},
      {"open_file_descriptor_count", Num(s.open_fds)},
      {"max_file_descriptor_count", Num(s.max_fds)},
      {"connection_drop_probability", Value{"0.0", true}},
      {"commit_count", Num(s.txns_applied)},
      {"snap_count", Num(s.snapshots_taken)},
      {"cnt_sync_processor_batch_size", Num(s.log_batches)},
      {"sum_sync_processor_batch_size", Num(s.txns_applied)},
  };
  // As ZooKeeper 3.8: the quorum size on every ensemble member, the
  // learner and proposal keys on the leader only.
  if (s.quorum_size > 0) kv.push_back({"quorum_size", Num(s.quorum_size)});
  if (s.mode == "leader") {
    const KeyValues leader = {
        {"learners", Num(s.learners)},
        {"synced_followers", Num(s.synced_followers)},
        {"synced_non_voting_followers", Num(0)},
        {"synced_observers", Num(s.synced_observers)},
        // A sync is a write through the leader here: none waits apart.
        {"pending_syncs", Num(0)},
        {"leader_uptime", Num(s.leader_uptime_ms)},
        {"last_proposal_size", Num(s.last_proposal_size)},
        {"max_proposal_size", Num(s.max_proposal_size)},
        {"min_proposal_size", Num(s.min_proposal_size)},
    };
    kv.insert(kv.end(), leader.begin(), leader.end());
  }
  return kv;
}

KeyValues EnvironmentValues() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  char cwd[4096] = {0};
  if (getcwd(cwd, sizeof(cwd) - 1) == nullptr) cwd[0] = 0;
  utsname u{};
  uname(&u);
  const char* user = getenv("USER");
  const char* home = getenv("HOME");
  return {{"zookeeper.version", Str(kZkVersionString)},
          {"host.name", Str(host)},
          {"os.name", Str(u.sysname)},
          {"os.arch", Str(u.machine)},
          {"os.version", Str(u.release)},
          {"user.name", Str(user != nullptr ? user : "")},
          {"user.home", Str(home != nullptr ? home : "")},
          {"user.dir", Str(cwd)}};
}

// "clientPort" -> "client_port" (the AdminServer's JSON names).
std::string SnakeCase(absl::string_view camel) {
  std::string out;
  for (char c : camel) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      out.push_back('_');
      out.push_back(
          static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string Srvr(const ServerSnapshot& s, const FourLetterWords& h,
                 bool with_clients) {
  std::string out = absl::StrCat("Zookeeper version: ", kZkVersionString, "\n");
  if (with_clients) {
    absl::StrAppend(&out, "Clients:\n");
    if (h.connections) {
      for (const ConnectionInfo& c : h.connections()) {
        absl::StrAppend(&out, " /", c.remote, "[", c.interest_ops,
                        "](queued=", c.queued, ",recved=", c.received,
                        ",sent=", c.sent, ")\n");
      }
    }
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(
      &out, "Latency min/avg/max: ", s.latency_min_ms, "/",
      JavaDouble(s.latency_avg_ms), "/", s.latency_max_ms, "\n",
      "Received: ", s.packets_received, "\n", "Sent: ", s.packets_sent, "\n",
      "Connections: ", s.connections, "\n", "Outstanding: ", s.outstanding,
      "\n", "Zxid: ", Hex(s.zxid), "\n", "Mode: ", s.mode, "\n",
      "Node count: ", s.znode_count, "\n");
  if (s.mode == "leader") {
    absl::StrAppend(&out, "Proposal sizes last/min/max: ", s.last_proposal_size,
                    "/", s.min_proposal_size, "/", s.max_proposal_size, "\n");
  }
  return out;
}

std::string Cons(const FourLetterWords& h) {
  std::string out;
  if (h.connections) {
    for (const ConnectionInfo& c : h.connections()) {
      absl::StrAppend(&out, " /", c.remote, "[", c.interest_ops,
                      "](queued=", c.queued, ",recved=", c.received,
                      ",sent=", c.sent);
      if (c.session_id != 0) {
        absl::StrAppend(&out, ",sid=", Hex(c.session_id), ",lop=", c.last_op,
                        ",est=", c.established_ms, ",to=", c.timeout_ms);
        if (c.last_cxid >= 0)
          absl::StrAppend(&out, ",lcxid=", Hex(c.last_cxid));
        absl::StrAppend(
            &out, ",lzxid=", Hex(c.last_zxid), ",lresp=", c.last_response_ms,
            ",llat=", c.last_latency_ms, ",minlat=", c.min_latency_ms,
            ",avglat=", c.avg_latency_ms, ",maxlat=", c.max_latency_ms);
      }
      absl::StrAppend(&out, ")\n");
    }
  }
  absl::StrAppend(&out, "\n");
  return out;
}

std::string FormatDate(int64_t ms) {
  return absl::FormatTime("%a %b %d %H:%M:%S UTC %Y", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

std::string Dump(const ServerSnapshot& s, const FourLetterWords& h) {
  std::vector<SessionDump> sessions;
  if (h.sessions) sessions = h.sessions();
  // Sessions grouped by expiry rounded up to a tick, as ZooKeeper's
  // ExpiryQueue buckets.
  const int64_t tick = std::max<int64_t>(s.tick_time_ms, 1);
  std::map<int64_t, std::vector<int64_t>> buckets;
  for (const SessionDump& d : sessions) {
    const int64_t at = (d.expires_at_ms / tick + 1) * tick;
    buckets[at].push_back(d.id);
  }
  std::string out = "SessionTracker dump:\n";
  absl::StrAppend(&out, "Session Sets (", buckets.size(), ")/(",
                  sessions.size(), "):\n");
  for (auto& [at, ids] : buckets) {
    std::sort(ids.begin(), ids.end());
    absl::StrAppend(&out, ids.size(), " expire at ", FormatDate(at), ":\n");
    for (int64_t id : ids) absl::StrAppend(&out, "\t", Hex(id), "\n");
  }
  size_t with_ephemerals = 0;
  for (const SessionDump& d : sessions) {
    if (!d.ephemerals.empty()) ++with_ephemerals;
  }
  absl::StrAppend(&out, "ephemeral nodes dump:\nSessions with Ephemerals (",
                  with_ephemerals, "):\n");
  for (const SessionDump& d : sessions) {
    if (d.ephemerals.empty()) continue;
    absl::StrAppend(&out, Hex(d.id), ":\n");
    for (const std::string& p : d.ephemerals)
      absl::StrAppend(&out, "\t", p, "\n");
  }
  std::vector<ConnectionInfo> conns;
  if (h.connections) conns = h.connections();
  absl::StrAppend(&out, "Connections dump:\nConnections Sets (",
                  conns.empty() ? 0 : 1, ")/(", conns.size(), "):\n");
  if (!conns.empty()) {
    absl::StrAppend(&out, conns.size(), " connections:\n");
    for (const ConnectionInfo& c : conns) {
      absl::StrAppend(&out, "\tip: /", c.remote,
                      " sessionId: ", Hex(c.session_id), "\n");
    }
  }
  return out;
}

std::string Wchc(const FourLetterWords& h) {
  std::string out;
  if (h.watches_by_session) {
    for (const auto& [id, paths] : h.watches_by_session()) {
      absl::StrAppend(&out, Hex(id), "\n");
      for (const std::string& p : paths) absl::StrAppend(&out, "\t", p, "\n");
    }
  }
  return out + "\n";
}

std::string Wchp(const FourLetterWords& h) {
  std::string out;
  if (h.watches_by_path) {
    for (const auto& [path, ids] : h.watches_by_path()) {
      absl::StrAppend(&out, path, "\n");
      for (int64_t id : ids) absl::StrAppend(&out, "\t", Hex(id), "\n");
    }
  }
  return out + "\n";
}

// --- AdminServer JSON
// ---------------------------------------------------------

std::string ServerStatsJson(const ServerSnapshot& s) {
  Json stats;
  stats.N("packets_sent", s.packets_sent)
      .N("packets_received", s.packets_received)
      .N("fsync_threshold_exceed_count", 0)
      .N("data_dir_size", s.data_dir_bytes)
      .N("log_dir_size", s.log_dir_bytes)
      .B("provider_null", false)
      .S("server_state", s.mode)
      .N("last_processed_zxid", s.zxid)
      .N("outstanding_requests", s.outstanding)
      .Raw("avg_latency", JavaDouble(s.latency_avg_ms))
      .N("max_latency", s.latency_max_ms)
      .N("min_latency", s.latency_min_ms)
      .N("num_alive_client_connections", s.connections)
      .N("uptime", s.uptime_ms)
      .N("auth_failed_count", 0);
  return stats.Render();
}

std::string ConnectionJson(const ConnectionInfo& c) {
  Json j;
  j.S("remote_socket_address", c.remote)
      .N("interest_ops", c.interest_ops)
      .N("outstanding_requests", c.queued)
      .N("packets_received", c.received)
      .N("packets_sent", c.sent);
  if (c.session_id != 0) {
    j.N("session_id", c.session_id)
        .S("last_operation", c.last_op)
        .N("established", c.established_ms)
        .N("session_timeout", c.timeout_ms)
        .N("last_cxid", c.last_cxid)
        .N("last_zxid", c.last_zxid)
        .N("last_response_time", c.last_response_ms)
        .N("last_latency", c.last_latency_ms)
        .N("min_latency", c.min_latency_ms)
        .N("avg_latency", c.avg_latency_ms)
        .N("max_latency", c.max_latency_ms);
  }
  return j.Render();
}

std::string ConnectionsArray(const FourLetterWords& h, bool brief) {
  std::vector<std::string> items;
  if (h.connections) {
    for (ConnectionInfo c : h.connections()) {
      if (brief) c.session_id = 0;
      items.push_back(ConnectionJson(c));
    }
  }
  return JsonArray(items);
}

struct AdminCommand {
  const char* name;
  std::vector<const char*> aliases;
};

const std::vector<AdminCommand>& AdminCommands() {
  static const auto* commands = new std::vector<AdminCommand>{
      {"configuration", {"conf", "config"}},
      {"connection_stat_reset", {"crst"}},
      {"connections", {"cons"}},
      {"dirs", {}},
      {"dump", {}},
      {"environment", {"env", "envi"}},
      {"get_trace_mask", {"gtmk"}},
      {"hash", {}},
      {"is_read_only", {"isro"}},
      {"monitor", {"mntr"}},
      {"ruok", {}},
      {"server_stats", {"srvr"}},
      {"stat_reset", {"srst"}},
      {"stats", {"stat"}},
      {"watch_summary", {"wchs"}},
      {"watches", {"wchc"}},
      {"watches_by_path", {"wchp"}},
  };
  return *commands;
}

}  // namespace

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out + "\"";
}

bool IsFourLetterWord(absl::string_view cmd) {
  for (absl::string_view w : kWords) {
    if (cmd == w) return true;
  }
  return false;
}

std::string RunFourLetterWord(absl::string_view cmd, const FourLetterWords& h) {
  if (cmd != "srvr" && (!h.allowed || !h.allowed(cmd))) {
    return absl::StrCat(
        cmd, " is not executed because it is not in the whitelist.\n");
  }
  if (cmd == "ruok") return "imok";
  if (cmd == "isro") return "rw";
  if (cmd == "gtmk") return "306\n";
  if (cmd == "hash") return "";
  if (cmd == "srst") {
    if (h.reset_stats) h.reset_stats();
    return "Server stats reset.\n";
  }
  if (cmd == "crst") {
    if (h.reset_connection_stats) h.reset_connection_stats();
    return "Connection stats reset.\n";
  }
  if (cmd == "cons") return Cons(h);
  if (cmd == "wchc") return Wchc(h);
  if (cmd == "wchp") return Wchp(h);
  if (cmd == "envi") {
    std::string out = "Environment:\n";
    for (const auto& [k, v] : EnvironmentValues()) {
      absl::StrAppend(&out, k, "=", v.text, "\n");
    }
    return out;
  }
  const ServerSnapshot s = h.snapshot ? h.snapshot() : ServerSnapshot{};
  if (s.mode == "looking" &&
      (cmd == "srvr" || cmd == "stat" || cmd == "dump")) {
    // An ensemble member without a leader, in ZooKeeper's words.
    return "This ZooKeeper instance is not currently serving requests\n";
  }
  if (cmd == "srvr") return Srvr(s, h, false);
  if (cmd == "stat") return Srvr(s, h, true);
  if (cmd == "dump") return Dump(s, h);
  if (cmd == "mntr") {
    std::string out;
    for (const auto& [k, v] : MonitorValues(s)) {
      absl::StrAppend(&out, "zk_", k, "\t", v.text, "\n");
    }
    return out;
  }
  if (cmd == "conf") {
    std::string out;
    for (const auto& [k, v] : s.conf) absl::StrAppend(&out, k, "=", v, "\n");
    return out;
  }
  if (cmd == "wchs") {
    return absl::StrCat(s.watching_sessions, " connections watching ",
                        s.watched_paths,
                        " paths\nTotal watches:", s.watch_count, "\n");
  }
  if (cmd == "dirs") {
    return absl::StrCat("datadir_size: ", s.data_dir_bytes,
                        "\nlogdir_size: ", s.log_dir_bytes, "\n");
  }
  return "";
}

const std::vector<std::string>& AdminCommandNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>();
    for (const AdminCommand& c : AdminCommands()) v->push_back(c.name);
    return v;
  }();
  return *names;
}

std::optional<std::string> RunAdminCommand(absl::string_view name,
                                           const FourLetterWords& h) {
  const AdminCommand* cmd = nullptr;
  for (const AdminCommand& c : AdminCommands()) {
    if (name == c.name) cmd = &c;
    for (const char* a : c.aliases) {
      if (name == a) cmd = &c;
    }
  }
  if (cmd == nullptr) return std::nullopt;
  const std::string primary = cmd->name;
  Json j;
  auto snapshot = [&h] { return h.snapshot ? h.snapshot() : ServerSnapshot{}; };
  if (primary == "configuration") {
    for (const auto& [k, v] : snapshot().conf) {
      int64_t n = 0;
      if (absl::SimpleAtoi(v, &n)) {
        j.N(SnakeCase(k), n);
      } else {
        j.S(SnakeCase(k), v);
      }
    }
  } else if (primary == "connection_stat_reset") {
    if (h.reset_connection_stats) h.reset_connection_stats();
  } else if (primary == "connections") {
    j.Raw("connections", ConnectionsArray(h, false));
    j.Raw("secure_connections", "[ ]");
  } else if (primary == "dirs") {
    const ServerSnapshot s = snapshot();
    j.N("datadir_size", s.data_dir_bytes).N("logdir_size", s.log_dir_bytes);
  } else if (primary == "dump") {
    const ServerSnapshot s = snapshot();
    const int64_t tick = std::max<int64_t>(s.tick_time_ms, 1);
    std::map<int64_t, std::vector<std::string>> buckets;
    Json eph;
    std::vector<SessionDump> sessions;
    if (h.sessions) sessions = h.sessions();
    for (const SessionDump& d : sessions) {
      buckets[(d.expires_at_ms / tick + 1) * tick].push_back(
          absl::StrCat(d.id));
      std::vector<std::string> paths;
      for (const std::string& p : d.ephemerals) paths.push_back(JsonString(p));
      eph.Raw(absl::StrCat(d.id), JsonArray(paths));
    }
    Json expiry;
    for (const auto& [at, ids] : buckets)
      expiry.Raw(absl::StrCat(at), JsonArray(ids));
    j.Raw("expiry_time_to_session_ids", expiry.Render());
    j.Raw("session_id_to_ephemeral_paths", eph.Render());
  } else if (primary == "environment") {
    j = FromKeyValues(EnvironmentValues());
  } else if (primary == "get_trace_mask") {
    j.N("tracemask", 306);
  } else if (primary == "hash") {
    j.Raw("digests", "[ ]");
  } else if (primary == "is_read_only") {
    j.B("read_only", false);
  } else if (primary == "monitor") {
    j = FromKeyValues(MonitorValues(snapshot()));
  } else if (primary == "ruok") {
    // Only command and error, as ZooKeeper.
  } else if (primary == "server_stats" || primary == "stats") {
    const ServerSnapshot s = snapshot();
    j.S("version", kZkVersionString)
        .B("read_only", false)
        .Raw("server_stats", ServerStatsJson(s))
        .N("node_count", s.znode_count);
    if (primary == "stats") {
      j.Raw("connections", ConnectionsArray(h, true));
      j.Raw("secure_connections", "[ ]");
    }
  } else if (primary == "stat_reset") {
    if (h.reset_stats) h.reset_stats();
  } else if (primary == "watch_summary") {
    const ServerSnapshot s = snapshot();
    j.N("num_connections", s.watching_sessions)
        .N("num_paths", s.watched_paths)
        .N("num_total_watches", s.watch_count);
  } else if (primary == "watches") {
    Json m;
    if (h.watches_by_session) {
      for (const auto& [id, paths] : h.watches_by_session()) {
        std::vector<std::string> items;
        for (const std::string& p : paths) items.push_back(JsonString(p));
        m.Raw(absl::StrCat(id), JsonArray(items));
      }
    }
    j.Raw("session_id_to_watched_paths", m.Render());
  } else if (primary == "watches_by_path") {
    Json m;
    if (h.watches_by_path) {
      for (const auto& [path, ids] : h.watches_by_path()) {
        std::vector<std::string> items;
        for (int64_t id : ids) items.push_back(absl::StrCat(id));
        m.Raw(path, JsonArray(items));
      }
    }
    j.Raw("path_to_session_ids", m.Render());
  }
  j.S("command", primary).Raw("error", "null");
  return j.Render() + "\n";
}

}  // namespace rockeeper::rpc
