// rkbench: a light load generator for rockeeper and Apache ZooKeeper.
// Usage: see kUsage below and docs/benchmarks.md.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tools/rkbench/driver.h"
#include "tools/rkbench/workload.h"

namespace rockeeper::rkbench {

std::string ErrorName(int code) {
  if (code >= kGrpcErrorBase) {
    static const char* const kGrpc[] = {"OK",
                                        "CANCELLED",
                                        "UNKNOWN",
                                        "INVALID_ARGUMENT",
                                        "DEADLINE_EXCEEDED",
                                        "NOT_FOUND",
                                        "ALREADY_EXISTS",
                                        "PERMISSION_DENIED",
                                        "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION",
                                        "ABORTED",
                                        "OUT_OF_RANGE",
                                        "UNIMPLEMENTED",
                                        "INTERNAL",
                                        "UNAVAILABLE",
                                        "DATA_LOSS",
                                        "UNAUTHENTICATED"};
    int g = code - kGrpcErrorBase;
    if (g >= 0 && g < 17) return std::string("GRPC_") + kGrpc[g];
    return "GRPC_" + std::to_string(g);
  }
  switch (code) {
    case 0:
      return "OK";
    case -1:
      return "SYSTEMERROR";
    case -2:
      return "RUNTIMEINCONSISTENCY";
    case -3:
      return "DATAINCONSISTENCY";
    case -4:
      return "CONNECTIONLOSS";
    case -5:
      return "MARSHALLINGERROR";
    case -6:
      return "UNIMPLEMENTED";
    case -7:
      return "OPERATIONTIMEOUT";
    case -8:
      return "BADARGUMENTS";
    case -12:
      return "UNKNOWNSESSION";
    case -13:
      return "NEWCONFIGNOQUORUM";
    case -14:
      return "RECONFIGINPROGRESS";
    case -101:
      return "NONODE";
    case -102:
      return "NOAUTH";
    case -103:
      return "BADVERSION";
    case -108:
      return "NOCHILDRENFOREPHEMERALS";
    case -110:
      return "NODEEXISTS";
    case -111:
      return "NOTEMPTY";
    case -112:
      return "SESSIONEXPIRED";
    case -113:
      return "INVALIDCALLBACK";
    case -114:
      return "INVALIDACL";
    case -115:
      return "AUTHFAILED";
    case -118:
      return "SESSIONMOVED";
    case -119:
      return "NOTREADONLY";
    case -120:
      return "EPHEMERALONLOCALSESSION";
    case -121:
      return "NOWATCHER";
    case -122:
      return "REQUESTTIMEOUT";
    case -123:
      return "RECONFIGDISABLED";
    case -124:
      return "SESSIONCLOSEDREQUIRESASLAUTH";
    case -125:
      return "QUOTAEXCEEDED";
    case -127:
      return "THROTTLEDOP";
    default:
      return "ERR" + std::to_string(code);
  }
}

namespace {

constexpr const char kUsage[] =
    R"(usage: rkbench [options]
Drives a ZooKeeper-protocol server (rockeeper or Apache ZooKeeper) or
rockeeper's gRPC API with N sessions x D outstanding requests.

  --proto zk|grpc          protocol (default zk)
  --server HOST:PORT[,HOST:PORT...]
                           default 127.0.0.1:2181 (zk), 127.0.0.1:2281 (grpc);
                           a list spreads the sessions round-robin (session
                           i on server i % count), e.g. over an ensemble
  --workload W             create|set|get|exists|children|delete|multi|mix|
                           clickhouse (default get)
  --sessions N             sessions (default 16)
  --outstanding D          requests in flight per session (default 32)
  --threads T              client threads (default 2)
  --duration S             timed phase length in seconds (default 10)
  --ops N                  stop after N ops instead (0: no limit, default)
  --value-size B           bytes per value (default 100)
  --keys K                 znodes in the tree (default 10000)
  --fanout F               children per tree node below the top (default 100)
  --tree-depth L           levels below ROOT/t; keys at the last (default 2)
  --multi-ops K            creates per multi (workload multi, default 4)
  --read-pct P             reads in the mix workload (default 90)
  --wide-children W        children of ROOT/wide (clickhouse, default 1000)
  --root PATH              prefix of every znode used (default /rkbench)
  --no-setup               the tree exists already: skip creating it
  --setup-only             create the tree, report the load rate, exit
  --session-timeout-ms MS  default 30000
  --seed N                 random seed (default 1)
  --server-pid PID[,PID...]
                           also report the CPU time and RSS of these
                           processes (summed over the list)
  --json                   print the result as one JSON object
  --progress auto|on|off   live progress on stderr (auto: if a terminal)
  --help
Workloads: create/multi make new nodes under ROOT/s/<run>/s<session>;
set/get/exists/delete use random keys of the tree; children lists a parent
of keys; mix = --read-pct % get, the rest set; clickhouse = 35% multi(create
block + create-sequential log entry + delete an old block), 25% children of
a wide parent, 25% get, 15% ephemeral create/delete.
)";

struct Flags {
  std::string proto = "zk";
  std::string server;
  int outstanding = 32;
  int threads = 2;
  double duration_s = 10;
  int64_t ops = 0;
  bool no_setup = false;
  bool setup_only = false;
  int session_timeout_ms = 30000;
  std::vector<int> server_pids;
  bool json = false;
  std::string progress = "auto";
  Options workload;
};

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "rkbench: %s\n", error.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// Returns "" on success, else the error.
std::string ParseFlags(int argc, char** argv, Flags* f, bool* help) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "'";
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto boolean = [&](bool* b) -> std::string {
      if (has_value) return "--" + name + " takes no value";
      *b = true;
      return "";
    };
    if (name == "help") {
      *help = true;
      return "";
    }
    if (name == "json") {
      if (auto e = boolean(&f->json); !e.empty()) return e;
      continue;
    }
    if (name == "no-setup") {
      if (auto e = boolean(&f->no_setup); !e.empty()) return e;
      continue;
    }
    if (name == "setup-only") {
      if (auto e = boolean(&f->setup_only); !e.empty()) return e;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) return "--" + name + " needs a value";
      value = argv[++i];
    }
    int64_t n = 0;
    auto integer = [&](int64_t lo, int64_t hi) -> bool {
      return ParseInt(value, lo, hi, &n);
    };
    std::string bad = "bad value '" + value + "' for --" + name;
    Options& w = f->workload;
    if (name == "proto") {
      if (value != "zk" && value != "grpc") return bad;
      f->proto = value;
    } else if (name == "server") {
      // Checked in detail by ParseServers.
      if (value.find(':') == std::string::npos) return bad;
      f->server = value;
    } else if (name == "workload") {
      w.workload = value;
    } else if (name == "sessions") {
      if (!integer(1, 10000)) return bad;
      w.sessions = static_cast<int>(n);
    } else if (name == "outstanding") {
      if (!integer(1, 100000)) return bad;
      f->outstanding = static_cast<int>(n);
    } else if (name == "threads") {
      if (!integer(1, 256)) return bad;
      f->threads = static_cast<int>(n);
    } else if (name == "duration") {
      char* end = nullptr;
      f->duration_s = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || !(f->duration_s > 0) ||
          f->duration_s > 1e6) {
        return bad;
      }
    } else if (name == "ops") {
      if (!integer(0, INT64_MAX / 2)) return bad;
      f->ops = n;
    } else if (name == "value-size") {
      if (!integer(0, 1 << 20)) return bad;
      w.value_size = static_cast<int>(n);
    } else if (name == "keys") {
      if (!integer(1, int64_t{1} << 40)) return bad;
      w.keys = n;
    } else if (name == "fanout") {
      if (!integer(1, 1 << 24)) return bad;
      w.fanout = static_cast<int>(n);
    } else if (name == "tree-depth") {
      if (!integer(1, 8)) return bad;
      w.tree_depth = static_cast<int>(n);
    } else if (name == "multi-ops") {
      if (!integer(1, 1000)) return bad;
      w.multi_ops = static_cast<int>(n);
    } else if (name == "read-pct") {
      if (!integer(0, 100)) return bad;
      w.read_pct = static_cast<int>(n);
    } else if (name == "wide-children") {
      if (!integer(0, 1 << 24)) return bad;
      w.wide_children = static_cast<int>(n);
    } else if (name == "root") {
      if (value.size() < 2 || value[0] != '/' || value.back() == '/')
        return bad;
      w.root = value;
    } else if (name == "seed") {
      if (!integer(0, INT64_MAX)) return bad;
      w.seed = static_cast<uint64_t>(n);
    } else if (name == "session-timeout-ms") {
      if (!integer(1, 1 << 30)) return bad;
      f->session_timeout_ms = static_cast<int>(n);
    } else if (name == "server-pid") {
      f->server_pids.clear();
      size_t start = 0;
      while (true) {
        size_t comma = value.find(',', start);
        std::string item =
            value.substr(start, comma == std::string::npos ? std::string::npos
                                                           : comma - start);
        if (!ParseInt(item, 1, INT32_MAX, &n)) return bad;
        f->server_pids.push_back(static_cast<int>(n));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name == "progress") {
      if (value != "auto" && value != "on" && value != "off") return bad;
      f->progress = value;
    } else {
      return "unknown flag --" + name;
    }
  }
  if (f->setup_only && f->no_setup)
    return "--setup-only and --no-setup conflict";
  return "";
}

double SelfCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// utime + stime of `pid` from /proc/PID/stat; negative if unreadable.
double ProcessCpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields after the comm: state is field 3; utime 14, stime 15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int64_t ProcessRssKb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Sums over `pids`; negative if any is unreadable.
double ProcessesCpuSeconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) {
    double s = ProcessCpuSeconds(pid);
    if (s < 0) return -1;
    total += s;
  }
  return total;
}

int64_t ProcessesRssKb(const std::vector<int>& pids) {
  int64_t total = 0;
  for (int pid : pids) {
    int64_t kb = ProcessRssKb(pid);
    if (kb < 0) return -1;
    total += kb;
  }
  return total;
}

// "HOST:PORT[,HOST:PORT...]" into endpoints; "" on success, else the error.
std::string ParseServers(const std::string& list, std::vector<Endpoint>* out) {
  size_t start = 0;
  while (true) {
    size_t comma = list.find(',', start);
    std::string item = list.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t colon = item.rfind(':');
    int64_t port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !ParseInt(item.substr(colon + 1), 1, 65535, &port)) {
      return "bad --server '" + item + "'";
    }
    Endpoint e;
    e.host = item.substr(0, colon);
    if (e.host == "localhost") e.host = "127.0.0.1";
    e.port = static_cast<int>(port);
    out->push_back(e);
    if (comma == std::string::npos) return "";
    start = comma + 1;
  }
}

class SetupSource final : public OpSource {
 public:
  SetupSource(const Workload& w, size_t phase, int64_t count)
      : w_(w), phase_(phase), count_(count) {}
  bool Next(SessionState*, Op* op) override {
    int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= count_) return false;
    w_.SetupOp(phase_, i, op);
    return true;
  }
  void Complete(SessionState*, uint64_t, int) override {}

 private:
  const Workload& w_;
  size_t phase_;
  int64_t count_;
  std::atomic<int64_t> next_{0};
};

class TimedSource final : public OpSource {
 public:
  explicit TimedSource(Workload* w) : w_(w) {}
  bool Next(SessionState* s, Op* op) override { return w_->Next(s, op); }
  void Complete(SessionState* s, uint64_t tag, int err) override {
    w_->Complete(s, tag, err);
  }

 private:
  Workload* w_;
};

// Prints live progress once a second while alive (stderr, a terminal).
class Progress {
 public:
  Progress(const Driver& driver, bool enabled, const char* label)
      : driver_(driver) {
    if (!enabled) return;
    thread_ = std::thread([this, label] {
      uint64_t last = driver_.completed();
      int64_t start = NowNs();
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::seconds(1),
                           [this] { return stop_; })) {
        uint64_t now = driver_.completed();
        std::fprintf(stderr, "\r[rkbench] %s %4.0fs %12llu ops %10llu ops/s   ",
                     label, static_cast<double>(NowNs() - start) / 1e9,
                     static_cast<unsigned long long>(now),
                     static_cast<unsigned long long>(now - last));
        last = now;
      }
      std::fputs("\r\033[K", stderr);
    });
  }
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  const Driver& driver_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// Ordered key/value pairs printed as `k=v ...` or as JSON.
class Report {
 public:
  void Str(const std::string& k, const std::string& v) {
    items_.push_back({k, v, true});
  }
  void Num(const std::string& k, double v, int decimals = 0) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
    items_.push_back({k, buf, false});
  }
  void Int(const std::string& k, int64_t v) {
    items_.push_back({k, std::to_string(v), false});
  }
  void Errors(const std::map<int, uint64_t>& errors) { errors_ = errors; }

  std::string Line() const {
    std::string out = "rkbench";
    for (const auto& it : items_) out += " " + it.key + "=" + it.value;
    for (const auto& [code, n] : errors_) {
      out += " err_" + ErrorName(code) + "=" + std::to_string(n);
    }
    return out;
  }
  std::string Json() const {
    std::string out = "{";
    for (const auto& it : items_) {
      out += "\"" + it.key + "\":";
      out += it.quoted ? "\"" + JsonEscape(it.value) + "\"" : it.value;
      out += ",";
    }
    out += "\"errors_by_code\":{";
    bool first = true;
    for (const auto& [code, n] : errors_) {
      if (!first) out += ",";
      first = false;
      out += "\"" + ErrorName(code) + "\":" + std::to_string(n);
    }
    out += "}}";
    return out;
  }

 private:
  struct Item {
    std::string key, value;
    bool quoted;
  };
  std::vector<Item> items_;
  std::map<int, uint64_t> errors_;
};

int Main(int argc, char** argv) {
  Flags flags;
  bool help = false;
  std::string error = ParseFlags(argc, argv, &flags, &help);
  if (help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!error.empty()) return Usage(error);
  Options& wopt = flags.workload;
  {
    char tag[32];
    std::snprintf(
        tag, sizeof(tag), "r%llx%x",
        static_cast<unsigned long long>(
            std::chrono::system_clock::now().time_since_epoch().count() / 1000),
        static_cast<unsigned>(getpid()));
    wopt.run_tag = tag;
  }
  std::unique_ptr<Workload> workload = Workload::Make(wopt, &error);
  if (workload == nullptr) return Usage(error);

  DriverConfig dc;
  std::string server =
      flags.server.empty()
          ? (flags.proto == "zk" ? "127.0.0.1:2181" : "127.0.0.1:2281")
          : flags.server;
  if (std::string e = ParseServers(server, &dc.servers); !e.empty()) {
    return Usage(e);
  }
  dc.sessions = wopt.sessions;
  dc.outstanding = flags.outstanding;
  dc.threads = flags.threads;
  dc.session_timeout_ms = flags.session_timeout_ms;

  std::unique_ptr<Driver> driver = flags.proto == "zk"
                                       ? MakeZkDriver(dc, *workload)
                                       : MakeGrpcDriver(dc, *workload);
  absl::Status st = driver->Connect();
  if (!st.ok()) {
    // Close the sessions that were opened, so they do not linger (and count
    // against a per-IP limit) until they expire.
    driver->Close();
    std::fprintf(stderr, "rkbench: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  bool progress = flags.progress == "on" ||
                  (flags.progress == "auto" && isatty(STDERR_FILENO));

  // Setup (untimed): each phase fully pipelined; NODEEXISTS is fine (a tree
  // left by an earlier run).
  int64_t setup_start = NowNs();
  uint64_t setup_ops = 0;
  {
    Progress p(*driver, progress, "setup");
    for (size_t i = 0; i < workload->setup_phases().size(); ++i) {
      const SetupPhase& phase = workload->setup_phases()[i];
      if (flags.no_setup && phase.data) continue;
      SetupSource source(*workload, i, phase.count);
      Limits limits;
      limits.record_latency = false;
      limits.ok_code = -110;
      PhaseResult r = driver->Run(source, limits);
      setup_ops += r.ops;
      if (r.errors_total() != 0) {
        std::string detail;
        for (const auto& [code, n] : r.errors) {
          detail += " " + ErrorName(code) + "=" + std::to_string(n);
        }
        std::fprintf(stderr, "rkbench: setup (%s) failed:%s\n",
                     phase.description.c_str(), detail.c_str());
        driver->Close();
        return 1;
      }
    }
  }
  double setup_s = static_cast<double>(NowNs() - setup_start) / 1e9;

  Report report;
  report.Str("proto", flags.proto);
  report.Str("server", server);
  report.Str("workload", flags.setup_only ? "setup" : wopt.workload);
  report.Int("sessions", wopt.sessions);
  report.Int("outstanding", flags.outstanding);
  report.Int("threads", flags.threads);
  report.Int("value_size", wopt.value_size);
  report.Int("keys", wopt.keys);
  report.Num("setup_s", setup_s, 3);
  report.Int("setup_ops", static_cast<int64_t>(setup_ops));
  if (flags.setup_only) {
    report.Num("setup_ops_per_s", static_cast<double>(setup_ops) / setup_s, 0);
    if (!flags.server_pids.empty())
      report.Int("server_rss_kb", ProcessesRssKb(flags.server_pids));
    driver->Close();
    std::puts(flags.json ? report.Json().c_str() : report.Line().c_str());
    return 0;
  }

  std::atomic<int64_t> budget{flags.ops};
  Limits limits;
  if (flags.ops > 0) {
    limits.budget = &budget;
  } else {
    limits.deadline_ns = NowNs() + static_cast<int64_t>(flags.duration_s * 1e9);
  }
  double cpu0 = SelfCpuSeconds();
  const bool servers_known = !flags.server_pids.empty();
  double server_cpu0 =
      servers_known ? ProcessesCpuSeconds(flags.server_pids) : -1;
  TimedSource source(workload.get());
  PhaseResult r;
  {
    Progress p(*driver, progress, wopt.workload.c_str());
    r = driver->Run(source, limits);
  }
  double cpu = SelfCpuSeconds() - cpu0;
  double server_cpu =
      servers_known ? ProcessesCpuSeconds(flags.server_pids) - server_cpu0 : -1;
  int64_t server_rss_kb =
      servers_known ? ProcessesRssKb(flags.server_pids) : -1;
  driver->Close();

  double secs = static_cast<double>(r.elapsed_ns) / 1e9;
  report.Int("ops", static_cast<int64_t>(r.ops));
  report.Num("duration_s", secs, 3);
  report.Num("ops_per_s", secs > 0 ? static_cast<double>(r.ops) / secs : 0, 0);
  report.Int("errors", static_cast<int64_t>(r.errors_total()));
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  report.Num("p50_us", us(r.latency.Quantile(0.50)), 1);
  report.Num("p90_us", us(r.latency.Quantile(0.90)), 1);
  report.Num("p99_us", us(r.latency.Quantile(0.99)), 1);
  report.Num("p999_us", us(r.latency.Quantile(0.999)), 1);
  report.Num("max_us", us(r.latency.max_ns()), 1);
  report.Num("client_cpu_s", cpu, 3);
  // Cores busy: 1.0 = one core fully used for the whole run.
  report.Num("client_cores", secs > 0 ? cpu / secs : 0, 2);
  report.Num("client_cpu_us_per_op",
             r.ops > 0 ? cpu * 1e6 / static_cast<double>(r.ops) : 0, 2);
  if (servers_known) {
    report.Num("server_cpu_s", server_cpu, 3);
    report.Num("server_cores", secs > 0 ? server_cpu / secs : 0, 2);
    report.Num("server_cpu_us_per_op",
               r.ops > 0 ? server_cpu * 1e6 / static_cast<double>(r.ops) : 0,
               2);
    report.Int("server_rss_kb", server_rss_kb);
  }
  report.Errors(r.errors);
  std::puts(flags.json ? report.Json().c_str() : report.Line().c_str());
  return 0;
}

}  // namespace
}  // namespace rockeeper::rkbench

int main(int argc, char** argv) { return rockeeper::rkbench::Main(argc, argv); }
