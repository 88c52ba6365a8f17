// rockeeper: the server process.
//
//   rockeeper                      standalone, ./data, default ports
//   rockeeper --config zoo.cfg     (or: rockeeper zoo.cfg)
//   rockeeper status [--config zoo.cfg]
//
// The server speaks the gRPC API (rockeeper.v1) on grpcPort and the
// ZooKeeper wire protocol on clientPort, and serves the admin HTTP endpoints
// (/commands, /metrics, /live, /ready) on admin.serverPort. With server.N
// lines in zoo.cfg it is a member of a ZAB ensemble (server/quorum_member.h):
// writes go through the leader, and without a quorum clients are turned
// away.
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "replication/standalone_replica.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/admin_http.h"
#include "rpc/grpc_service.h"
#include "rpc/metrics.h"
#include "rpc/wire_server.h"
#include "server/config.h"
#include "server/quorum_member.h"

namespace rockeeper::server {
namespace {

constexpr char kVersion[] = "0.1.0";

void Log(const char* level, const std::string& msg) {
  const std::string ts =
      absl::FormatTime("%Y-%m-%d %H:%M:%E3S", absl::Now(), absl::UTCTimeZone());
  std::fprintf(stderr, "%s %s %s\n", ts.c_str(), level, msg.c_str());
}

int Usage() {
  std::fprintf(stderr,
               "usage: rockeeper [--config zoo.cfg | zoo.cfg]\n"
               "       rockeeper status [--config zoo.cfg | zoo.cfg]\n"
               "       rockeeper version\n");
  return 2;
}

// Parses [--config path | path]; empty path = defaults.
bool ConfigPathFromArgs(int argc, char** argv, int first, std::string* path) {
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" || arg == "-c") {
      if (i + 1 >= argc) return false;
      *path = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && path->empty()) {
      *path = arg;
    } else {
      return false;
    }
  }
  return true;
}

absl::StatusOr<ServerConfig> LoadConfig(const std::string& path) {
  if (path.empty()) return DefaultStandaloneConfig();
  absl::StatusOr<ServerConfig> cfg = LoadZooCfg(path);
  if (!cfg.ok()) return cfg.status();
  for (const std::string& w : cfg->warnings) Log("WARN", w);
  // A quorum config: which server.N are we (dataDir/myid)?
  absl::Status s = ResolveMyId(*cfg);
  if (!s.ok()) return s;
  return cfg;
}

// Sends a four-letter word to host:port and returns the whole answer.
absl::StatusOr<std::string> FourLetterWord(const std::string& host, int port,
                                           const char* word) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) !=
      0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host));
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to ", host, ":", port));
  }
  std::string out;
  if (write(fd, word, 4) == 4) {
    char buf[4096];
    for (int i = 0; i < 1024; ++i) {  // bounded: at most 4 MiB
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return out;
}

// Like `zkServer.sh status`: asks the server's client port for `srvr`.
int Status(const ServerConfig& cfg) {
  std::printf("rockeeper %s\n", kVersion);
  const std::string& a = cfg.client_port_address;
  const std::string host = (a.empty() || a == "0.0.0.0") ? "127.0.0.1"
                           : a == "::"                   ? "::1"
                                                         : a;
  std::printf("Client port found: %d. Client address: %s.\n", cfg.client_port,
              host.c_str());
  absl::StatusOr<std::string> srvr =
      FourLetterWord(host, cfg.client_port, "srvr");
  if (!srvr.ok() || srvr->empty()) {
    std::printf("Error contacting service. It is probably not running.\n");
    if (!srvr.ok()) {
      std::fprintf(stderr, "%s\n", srvr.status().ToString().c_str());
    }
    return 1;
  }
  bool mode = false;
  for (absl::string_view line : absl::StrSplit(*srvr, '\n')) {
    if (absl::StartsWith(line, "Mode: ") || absl::StartsWith(line, "Zxid: ")) {
      std::printf("%.*s\n", static_cast<int>(line.size()), line.data());
      mode = mode || absl::StartsWith(line, "Mode: ");
    }
  }
  if (!mode) {
    // e.g. "This ZooKeeper instance is not currently serving requests"
    std::printf("%s", srvr->c_str());
    return 1;
  }
  return 0;
}

int64_t DirBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec))
      total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

// What the four-letter words report.
rpc::ServerSnapshot Snapshot(const ServerConfig& cfg,
                             const rpc::RockeeperService& service,
                             const replication::Replica& replica,
                             const replication::StandaloneReplica* standalone,
                             const rpc::WireServer* wire, absl::Time started) {
  rpc::ServerSnapshot s;
  if (!cfg.standalone()) {
    const replication::ReplicaStatus rs = replica.status();
    s.mode = rs.mode;
    s.quorum_size = rs.voters;
    s.learners = rs.learners;
    s.synced_followers = rs.synced_followers;
    s.synced_observers = rs.synced_observers;
    if (rs.leading_since != absl::InfinitePast()) {
      s.leader_uptime_ms =
          absl::ToInt64Milliseconds(absl::Now() - rs.leading_since);
    }
    s.last_proposal_size = rs.proposal_sizes.last_bytes;
    s.min_proposal_size = rs.proposal_sizes.min_bytes;
    s.max_proposal_size = rs.proposal_sizes.max_bytes;
  }
  s.zxid = replica.db().last_applied_zxid();
  s.znode_count = replica.db().znode_count();
  const auto cc = replica.db().children_cache_stats();
  s.children_cache_hits = static_cast<int64_t>(cc.hits);
  s.children_cache_misses = static_cast<int64_t>(cc.misses);
  s.children_cache_bytes = static_cast<int64_t>(cc.bytes);
  s.row_cache_bytes =
      static_cast<int64_t>(replica.db().row_cache_usage_bytes());
  const auto zc = replica.db().znode_cache_stats();
  s.znode_cache_hits = static_cast<int64_t>(zc.hits);
  s.znode_cache_misses = static_cast<int64_t>(zc.misses);
  s.znode_cache_bytes = static_cast<int64_t>(zc.bytes);
  const auto watches = service.watches().summary();
  s.watch_count = static_cast<int64_t>(watches.watches);
  s.watched_paths = static_cast<int64_t>(watches.paths);
  s.watching_sessions = static_cast<int64_t>(watches.sessions);
  std::vector<engine::SessionRecord> sessions;
  if (replica.db().ListSessions(&sessions).ok()) {
    s.sessions = static_cast<int64_t>(sessions.size());
    for (const auto& rec : sessions) {
      std::vector<std::string> eph;
      if (replica.db().ListEphemerals(rec.session_id(), &eph).ok()) {
        s.ephemerals_count += static_cast<int64_t>(eph.size());
      }
    }
  }
  if (wire != nullptr) {
    const auto ws = wire->stats();
    s.connections = ws.connections;
    s.packets_received = ws.packets_received;
    s.packets_sent = ws.packets_sent;
  }
  const auto lat = service.latency();
  s.latency_min_ms = lat.min_us / 1000;
  s.latency_max_ms = lat.max_us / 1000;
  s.latency_avg_ms = lat.avg_us / 1000.0;
  s.outstanding = service.outstanding_requests();
  s.uptime_ms = absl::ToInt64Milliseconds(absl::Now() - started);
  s.data_dir_bytes = DirBytes(cfg.data_dir);
  s.log_dir_bytes = cfg.data_log_dir == cfg.data_dir
                        ? DirBytes(cfg.data_dir + "/log")
                        : DirBytes(cfg.data_log_dir);
  s.snapshot_dir_bytes = DirBytes(cfg.data_dir + "/snapshots");
  if (standalone != nullptr) {
    const auto ps = standalone->pipeline_stats();
    s.txns_applied = static_cast<int64_t>(ps.txns_applied);
    s.log_batches = static_cast<int64_t>(ps.log_batches);
    s.apply_batches = static_cast<int64_t>(ps.apply_batches);
    s.snapshots_taken = static_cast<int64_t>(ps.snapshots);
  }
  const replication::ApplyGateStats gs = replica.apply_gate_stats();
  s.apply_gate_waits = static_cast<int64_t>(gs.waits);
  s.apply_gate_timeouts = static_cast<int64_t>(gs.timeouts);
  s.healthy = replica.health().ok();
  s.tick_time_ms = cfg.tick_time_ms;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++s.open_fds;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    s.max_fds = static_cast<int64_t>(rl.rlim_cur);
  s.conf = {{"clientPort", absl::StrCat(cfg.client_port)},
            {"grpcPort", absl::StrCat(cfg.grpc_port)},
            {"dataDir", cfg.data_dir},
            {"dataDirSize", absl::StrCat(s.data_dir_bytes)},
            {"dataLogDir", cfg.data_log_dir},
            {"dataLogSize", absl::StrCat(s.log_dir_bytes)},
            {"tickTime", absl::StrCat(cfg.tick_time_ms)},
            {"maxClientCnxns", absl::StrCat(cfg.max_client_cnxns)},
            {"minSessionTimeout", absl::StrCat(cfg.min_session_timeout_ms)},
            {"maxSessionTimeout", absl::StrCat(cfg.max_session_timeout_ms)},
            {"serverId", absl::StrCat(cfg.my_id)}};
  return s;
}

// The state DB keeps its SST files open (engine::StateDbOptions::
// max_open_files), so take the hard limit on descriptors, as daemons do.
void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  const rlim_t before = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
    Log("INFO", absl::StrCat("open files limit raised from ", before, " to ",
                             rl.rlim_cur));
  }
}

int Serve(const ServerConfig& cfg) {
  RaiseFdLimit();
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  rpc::ServerMetrics metrics;  // outlives everything below
  auto on_log_batch = [&metrics](size_t txns, int64_t append_us) {
    metrics.RecordLogBatch(static_cast<int64_t>(txns), append_us);
  };
  auto on_snapshot = [&metrics](const engine::SnapshotInfo&, int64_t took_ms) {
    metrics.RecordSnapshot(took_ms);
  };
  replication::StandaloneReplicaOptions ro;
  ro.pipeline.on_log_batch = on_log_batch;
  ro.pipeline.on_snapshot = on_snapshot;
  ro.data_dir = cfg.data_dir;
  ro.data_log_dir = cfg.data_log_dir == cfg.data_dir ? "" : cfg.data_log_dir;
  ro.prep.extended_types_enabled = cfg.extended_types_enabled;
  ro.prep.skip_acl = cfg.skip_acl;
  ro.prep.enforce_quota = cfg.enforce_quota;
  ro.pipeline.snap_count = cfg.snap_count;
  ro.pipeline.snap_retain_count =
      static_cast<int>(cfg.autopurge_snap_retain_count);
  ro.state_db.block_cache_bytes =
      static_cast<size_t>(cfg.block_cache_size_bytes);
  ro.state_db.write_buffer_bytes =
      static_cast<size_t>(cfg.write_buffer_size_bytes);
  ro.state_db.children_cache_bytes =
      static_cast<size_t>(cfg.children_cache_size_bytes);
  ro.state_db.row_cache_bytes = static_cast<size_t>(cfg.row_cache_size_bytes);
  ro.state_db.znode_cache_bytes =
      static_cast<size_t>(cfg.znode_cache_size_bytes);
  ro.log_preallocate_bytes = static_cast<uint64_t>(cfg.pre_alloc_size_bytes);
  ro.force_sync = cfg.force_sync;
  std::unique_ptr<replication::StandaloneReplica> standalone;
  std::unique_ptr<QuorumMember> member;
  replication::Replica* replica = nullptr;
  if (cfg.standalone()) {
    absl::StatusOr<std::unique_ptr<replication::StandaloneReplica>> opened =
        replication::StandaloneReplica::Open(ro);
    if (!opened.ok()) {
      Log("ERROR", absl::StrCat("cannot open data dir ", cfg.data_dir, ": ",
                                opened.status().ToString()));
      return 1;
    }
    standalone = *std::move(opened);
    replica = standalone.get();
    Log("INFO", absl::StrFormat("data dir %s: zxid 0x%x, %d txns replayed",
                                cfg.data_dir, replica->db().last_applied_zxid(),
                                standalone->recovered_txns()));
  } else {
    absl::StatusOr<std::unique_ptr<QuorumMember>> started_member =
        QuorumMember::Start(cfg, on_log_batch, on_snapshot);
    if (!started_member.ok()) {
      Log("ERROR",
          absl::StrCat("cannot join the ensemble as server ", cfg.my_id, ": ",
                       started_member.status().ToString()));
      return 1;
    }
    member = *std::move(started_member);
    replica = &member->replica();
    Log("INFO", absl::StrFormat(
                    "server %d of %d: data dir %s at zxid 0x%x; looking for "
                    "a leader",
                    cfg.my_id, cfg.servers.size(), cfg.data_dir,
                    replica->db().last_applied_zxid()));
  }

  rpc::ServiceOptions so;
  so.server_id = cfg.my_id;
  so.leader_serves = cfg.leader_serves;
  so.min_session_timeout_ms = static_cast<int32_t>(cfg.min_session_timeout_ms);
  so.max_session_timeout_ms = static_cast<int32_t>(cfg.max_session_timeout_ms);
  so.super_digest = cfg.super_digest;
  so.skip_acl = cfg.skip_acl;
  so.max_data_bytes = static_cast<size_t>(cfg.jute_max_buffer_bytes);
  so.expiry_interval =
      absl::Milliseconds(std::max<int64_t>(cfg.tick_time_ms / 2, 10));
  so.container_check_interval =
      absl::Milliseconds(cfg.container_check_interval_ms);
  so.container_max_per_minute = cfg.container_max_per_minute;
  so.max_outstanding_requests = cfg.global_outstanding_limit;
  so.max_sessions_per_ip = cfg.max_client_cnxns;
  so.read_io_threads = static_cast<int>(cfg.read_io_threads);
  so.metrics = &metrics;
  auto service = std::make_unique<rpc::RockeeperService>(replica, so);

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const bool v6 = cfg.grpc_port_address.find(':') != std::string::npos;
  const std::string listen =
      v6 ? absl::StrCat("[", cfg.grpc_port_address, "]:", cfg.grpc_port)
         : absl::StrCat(cfg.grpc_port_address, ":", cfg.grpc_port);
  int bound_port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(),
                           &bound_port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(cfg.jute_max_buffer_bytes + (64 << 10)));
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    Log("ERROR", absl::StrCat("cannot listen on ", listen));
    return 1;
  }
  Log("INFO", absl::StrCat("rockeeper ", kVersion,
                           cfg.standalone() ? " standalone" : " quorum member",
                           ": gRPC on ", listen));
  // The ZooKeeper wire protocol, served by the same service (called
  // directly).
  rpc::WireServerOptions wo;
  wo.address = cfg.client_port_address;
  wo.port = cfg.client_port;
  wo.max_frame_bytes = cfg.jute_max_buffer_bytes;
  wo.threads = static_cast<int>(cfg.wire_threads);
  if (wo.threads == 0) {
    wo.threads =
        std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
  }
  wo.metrics = &metrics;
  // Set once started; read by 4lw and admin commands (which only run after
  // the wire server or the admin server started, so after this is set).
  std::atomic<rpc::WireServer*> wire_ptr{nullptr};
  const absl::Time started = absl::Now();
  wo.four_letter_words.allowed = [&cfg](absl::string_view c) {
    return cfg.IsFourLetterWordEnabled(c);
  };
  wo.four_letter_words.reset_stats = [&service, &wire_ptr] {
    service->ResetStats();
    if (rpc::WireServer* w = wire_ptr.load()) w->ResetStats();
  };
  wo.four_letter_words.reset_connection_stats = [&wire_ptr] {
    if (rpc::WireServer* w = wire_ptr.load()) w->ResetConnectionStats();
  };
  wo.four_letter_words.connections = [&wire_ptr] {
    rpc::WireServer* w = wire_ptr.load();
    return w != nullptr ? w->connections() : std::vector<rpc::ConnectionInfo>{};
  };
  wo.four_letter_words.sessions = [&service, replica] {
    std::vector<rpc::SessionDump> out;
    for (const rpc::SessionInfo& info : service->sessions().List()) {
      rpc::SessionDump d;
      d.id = info.id;
      d.timeout_ms = info.timeout_ms;
      d.expires_at_ms = absl::ToUnixMillis(info.expires_at);
      (void)replica->db().ListEphemerals(info.id, &d.ephemerals);
      out.push_back(std::move(d));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
  };
  wo.four_letter_words.watches_by_session = [&service] {
    return service->watches().BySession();
  };
  wo.four_letter_words.watches_by_path = [&service] {
    return service->watches().ByPath();
  };
  wo.four_letter_words.snapshot = [&cfg, &service, &wire_ptr, replica,
                                   &standalone, started] {
    return Snapshot(cfg, *service, *replica, standalone.get(), wire_ptr.load(),
                    started);
  };
  absl::StatusOr<std::unique_ptr<rpc::WireServer>> wire =
      rpc::WireServer::Start(wo, service.get());
  if (!wire.ok()) {
    Log("ERROR",
        absl::StrCat("ZooKeeper protocol: ", wire.status().ToString()));
    server->Shutdown();
    return 1;
  }
  wire_ptr = wire->get();
  Log("INFO", absl::StrCat("ZooKeeper protocol on ", cfg.client_port_address,
                           ":", (*wire)->port()));

  // The admin HTTP server. As ZooKeeper's AdminServer, failing to start it
  // is logged and the server runs on without it.
  std::atomic<bool> serving{true};
  std::unique_ptr<rpc::AdminHttpServer> admin;
  if (cfg.admin_enable_server) {
    rpc::AdminHttpOptions ao;
    ao.address = cfg.admin_server_address;
    ao.port = cfg.admin_server_port;
    rpc::AdminEndpoints endpoints;
    endpoints.commands = wo.four_letter_words;
    endpoints.metrics = &metrics;
    endpoints.live = [replica] { return replica->health().ok(); };
    endpoints.ready = [replica, &serving, &wire_ptr] {
      return serving.load() && wire_ptr.load() != nullptr &&
             replica->health().ok() && replica->serving();
    };
    absl::StatusOr<std::unique_ptr<rpc::AdminHttpServer>> started_admin =
        rpc::AdminHttpServer::Start(ao, std::move(endpoints));
    if (started_admin.ok()) {
      admin = *std::move(started_admin);
      Log("INFO", absl::StrCat("admin HTTP on ", cfg.admin_server_address, ":",
                               admin->port()));
    } else {
      Log("WARN", absl::StrCat("admin HTTP server not started: ",
                               started_admin.status().ToString()));
    }
  }

  int sig = 0;
  sigwait(&stop_signals, &sig);
  Log("INFO", absl::StrCat("signal ", sig, ": shutting down"));
  serving = false;
  admin.reset();
  wire_ptr = nullptr;
  wire->reset();  // closes client connections first
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  service.reset();
  if (member != nullptr) member->Stop();
  standalone.reset();
  Log("INFO", "stopped");
  return 0;
}

int Main(int argc, char** argv) {
  // Deadlock detection walks a lock graph on every acquisition: measurable
  // on hot paths (rkbench profile), and our lock order is fixed by design.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string config_path;
  if (argc >= 2 && std::strcmp(argv[1], "version") == 0) {
    std::printf("rockeeper %s\n", kVersion);
    return 0;
  }
  const bool status = argc >= 2 && std::strcmp(argv[1], "status") == 0;
  if (!ConfigPathFromArgs(argc, argv, status ? 2 : 1, &config_path)) {
    return Usage();
  }
  absl::StatusOr<ServerConfig> cfg = LoadConfig(config_path);
  if (!cfg.ok()) {
    std::fprintf(stderr, "rockeeper: %s\n", cfg.status().ToString().c_str());
    return 2;
  }
  return status ? Status(*cfg) : Serve(*cfg);
}

}  // namespace
}  // namespace rockeeper::server

int main(int argc, char** argv) { return rockeeper::server::Main(argc, argv); }
