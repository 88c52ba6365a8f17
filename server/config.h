// Server configuration: ZooKeeper's zoo.cfg and dataDir/myid.
//
// rockeeper reads the same zoo.cfg as ZooKeeper 3.8 (QuorumPeerConfig), plus
// a few keys of its own (grpcPort, blockCacheSizeMb, ...).
// docs/configuration.md is the operator reference: every key, its default, unit
// and meaning.
//
// File syntax (java.util.Properties, as ZooKeeper reads it)
// -----------
//  * one `key=value` per line; the separator is the first unescaped '=', ':'
//    or whitespace after the key (`key = value`, `key: value`, `key value`);
//  * lines whose first non-blank character is '#' or '!' are comments; blank
//    lines are ignored;
//  * a line ending in an odd number of backslashes continues on the next line
//    (whose leading whitespace is dropped);
//  * escapes: \t \n \r \f \uXXXX, and '\' before any other character stands
//    for that character (so a literal backslash is written "\\");
//  * keys and values are trimmed of surrounding whitespace (as ZooKeeper's
//    String.trim()); keys are case-sensitive.
//
// Error reporting
// ---------------
//  * A bad value or a malformed server line makes parsing fail with
//    InvalidArgument; the message names the file, line, key, value and reason:
//        zoo.cfg:7: tickTime="abc": not an integer
//    (superDigest values are shown as <redacted>). Errors that concern the
//    file as a whole (dataDir missing, minSessionTimeout > maxSessionTimeout,
//    observers without participants) name the file and the keys involved.
//  * Unknown keys are not errors: each adds one string to
//    ServerConfig::warnings naming the line and key, for the server to log.
//    So do duplicate keys (the last one wins), values raised to a minimum
//    (autopurge.snapRetainCount, snapCount) and unsupported group./weight.
//    lines.
#ifndef ROCKEEPER_SERVER_CONFIG_H_
#define ROCKEEPER_SERVER_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rockeeper::server {

// Server ids (server.N and myid) are in [1, kMaxServerId]: the id is the top
// byte of the session ids a server hands out. With extendedTypesEnabled the
// largest usable id is kMaxServerId - 1 (as in ZooKeeper).
inline constexpr int64_t kMaxServerId = 255;

enum class PeerType { kParticipant, kObserver };

// One `server.N=host:quorumPort:electionPort[:type][;[clientHost:]clientPort]`
// line. IPv6 hosts are written in brackets in the file ("[::1]:2888:3888")
// and stored without them ("::1").
struct ServerLine {
  // The N of server.N. Range: 1..kMaxServerId, unique within a config.
  int64_t id = 0;
  // Host name or address for the quorum and election ports. Never empty.
  std::string host;
  // Followers connect to the leader on this port. Range: 1..65535.
  int quorum_port = 0;
  // Leader election port. Range: 1..65535, != quorum_port.
  int election_port = 0;
  // ":observer" in the line: a non-voting member.
  bool is_observer = false;
  // The part after ';': client port and optional client host. When the host
  // is omitted (";2181") client_host is empty, meaning all interfaces.
  std::string client_host;
  std::optional<int> client_port;

  bool operator==(const ServerLine&) const = default;
};

// Everything zoo.cfg can set. Field defaults are the values used when a key
// is absent (except the session timeouts, derived from tick_time_ms by
// ParseZooCfg when their keys are absent). The zoo.cfg key follows "Key:".
struct ServerConfig {
  // --- Time and quorum limits ---

  // Key: tickTime. The basic time unit. Default: 2000. Unit: ms. Range: > 0.
  int64_t tick_time_ms = 2000;
  // Key: initLimit. Time a follower may take to connect to and sync with the
  // leader. Default: 10. Unit: ticks. Range: > 0.
  int64_t init_limit_ticks = 10;
  // Key: syncLimit. Time a follower may lag behind the leader. Default: 5.
  // Unit: ticks. Range: > 0.
  int64_t sync_limit_ticks = 5;
  // Key: minSessionTimeout. Smallest session timeout granted to clients.
  // Default: 2 * tick_time_ms. Unit: ms. Range: > 0, <= max.
  int64_t min_session_timeout_ms = 4000;
  // Key: maxSessionTimeout. Largest session timeout granted to clients.
  // Default: 20 * tick_time_ms. Unit: ms. Range: > 0, >= min.
  int64_t max_session_timeout_ms = 40000;

  // --- Storage ---

  // Key: dataDir. Holds myid, the state DB and snapshots. Required in a
  // config file; "./data" for DefaultStandaloneConfig().
  std::string data_dir = "./data";
  // Key: dataLogDir. Transaction log directory. Default: data_dir.
  std::string data_log_dir = "./data";
  // Key: snapCount. Transactions between snapshots. Default: 100000.
  // Range: >= 2 (smaller values are raised to 2 with a warning).
  int64_t snap_count = 100000;
  // Key: snapSizeLimitInKb. Txn log volume between snapshots. 0 = no limit
  // (the key's non-positive values). Default: 4 GiB. Unit: bytes (the key is
  // in KiB).
  int64_t snap_size_limit_bytes = int64_t{4194304} * 1024;
  // Key: preAllocSize. Txn log preallocation chunk. Default: 64 MiB.
  // Unit: bytes (the key is in KiB). Range: > 0.
  int64_t pre_alloc_size_bytes = int64_t{65536} * 1024;
  // Key: forceSync. fdatasync the txn log before acknowledging writes.
  // Default: true.
  bool force_sync = true;
  // Key: fsync.warningthresholdms. Log a warning when an fsync takes longer.
  // Default: 1000. Unit: ms. Range: >= 0.
  int64_t fsync_warning_threshold_ms = 1000;
  // Key: autopurge.snapRetainCount. Snapshots (and the logs they need) kept
  // by the purge task. Default: 3. Range: >= 3 (raised with a warning).
  int64_t autopurge_snap_retain_count = 3;
  // Key: autopurge.purgeInterval. Purge task period; 0 = disabled.
  // Default: 0. Unit: hours. Range: >= 0.
  int64_t autopurge_purge_interval_hours = 0;
  // Key: blockCacheSizeMb (rockeeper). RocksDB block cache. Default: 256 MiB.
  // Unit: bytes (the key is in MiB). Range: > 0.
  int64_t block_cache_size_bytes = int64_t{256} << 20;
  // Key: writeBufferSizeMb (rockeeper). RocksDB memtable size. Default:
  // 64 MiB. Unit: bytes (the key is in MiB). Range: > 0.
  int64_t write_buffer_size_bytes = int64_t{64} << 20;
  // Key: childrenCacheSizeMb (rockeeper). Cached child-name lists of the
  // state DB (getChildren of wide parents). Default: 32 MiB. Unit: bytes
  // (the key is in MiB). Range: >= 0; 0 disables the cache.
  int64_t children_cache_size_bytes = int64_t{32} << 20;
  // Key: rowCacheSizeMb (rockeeper). RocksDB row cache of the state DB:
  // znode records of repeated gets, behind the znode cache. Default: 0
  // (off). Unit: bytes (the key is in MiB). Range: >= 0; 0 disables the
  // cache.
  int64_t row_cache_size_bytes = 0;
  // Key: znodeCacheSizeMb (rockeeper). Whole znodes cached by path, kept
  // current by the writes (engine/znode_cache.h): the reads a write's
  // checks make, and gets. Default: 512 MiB (~2.3M znodes of 100 B fit).
  // Unit: bytes (the key is in MiB). Range: >= 0; 0 disables the cache.
  int64_t znode_cache_size_bytes = int64_t{512} << 20;

  // --- Network ---

  // Key: clientPort. ZooKeeper wire protocol port. 0 = any free port.
  // Default: 2181. Range: 0..65535.
  int client_port = 2181;
  // Key: clientPortAddress. Address clientPort binds to. Default: "0.0.0.0".
  std::string client_port_address = "0.0.0.0";
  // Key: wireThreads (rockeeper). Event-loop threads of clientPort, each
  // owning a share of the connections and running their reads. 0 = one per
  // CPU core, at most 4. Default: 0. Range: 0..64.
  int64_t wire_threads = 0;
  // Key: readIoThreads (rockeeper). Threads for the reads whose znode is in
  // no cache (neither the znode cache nor RocksDB's memtables and block
  // cache), which must read the disk: such a read moves to one of them, so
  // that the other connections of its wire thread go on meanwhile. 0: every
  // read runs on the thread it arrived on. Default: 16. Range: 0..64.
  int64_t read_io_threads = 16;
  // Key: grpcPort (rockeeper). gRPC API port. 0 = any free port.
  // Default: 2281. Range: 0..65535.
  int grpc_port = 2281;
  // Key: grpcPortAddress (rockeeper). Default: client_port_address.
  std::string grpc_port_address = "0.0.0.0";
  // Key: admin.enableServer. Run the HTTP admin server. Default: true.
  bool admin_enable_server = true;
  // Key: admin.serverPort. HTTP admin port. 0 = any free port. Default: 8080.
  int admin_server_port = 8080;
  // Key: admin.serverAddress. Default: "0.0.0.0".
  std::string admin_server_address = "0.0.0.0";
  // Key: maxClientCnxns. Concurrent connections per client IP; 0 = no limit.
  // Default: 60. Range: >= 0.
  int64_t max_client_cnxns = 60;
  // Key: globalOutstandingLimit. Queued requests before throttling clients.
  // Default: 1000. Range: > 0.
  int64_t global_outstanding_limit = 1000;
  // Key: jute.maxbuffer. Largest request/response/znode payload. Default:
  // 1048575 (0xfffff). Unit: bytes. Range: 1..2^31-1.
  int64_t jute_max_buffer_bytes = 0xfffff;
  // Key: 4lw.commands.whitelist. Enabled four-letter-word commands, in file
  // order without duplicates; {"*"} = all. "srvr" is always included (as in
  // ZooKeeper). Default: {"srvr"}.
  std::vector<std::string> four_letter_words = {"srvr"};

  // --- Quorum ---

  // Key: leaderServes. The leader accepts client connections. Default: true.
  bool leader_serves = true;
  // Key: standaloneEnabled. A config with one participant runs standalone;
  // false = always run the quorum protocol. Default: true.
  bool standalone_enabled = true;
  // Key: reconfigEnabled. Dynamic reconfiguration. Default: false.
  bool reconfig_enabled = false;
  // Key: electionAlg. Only 3 (fast leader election) exists. Default: 3.
  int64_t election_alg = 3;
  // Key: peerType. This server's role; ResolveQuorum() makes it agree with
  // this server's line. Default: kParticipant.
  PeerType peer_type = PeerType::kParticipant;
  // Keys: server.N, in file order. Empty for a standalone config.
  std::vector<ServerLine> servers;
  // This server's id, from dataDir/myid; set by ResolveQuorum(). 0 = unset
  // (always 0 in standalone mode).
  int64_t my_id = 0;

  // --- Access control and features ---

  // Key: skipACL. Skip all ACL checks. Default: false.
  bool skip_acl = false;
  // Key: extendedTypesEnabled or zookeeper.extendedTypesEnabled. TTL and
  // container nodes' extended ephemeral types. Default: false.
  bool extended_types_enabled = false;
  // Key: enforceQuota or zookeeper.enforceQuota. Reject writes over a hard
  // quota. Default: false.
  bool enforce_quota = false;

  // Key: znode.container.checkIntervalMs (also zookeeper.-prefixed).
  // How often the reaper looks for empty containers and expired TTL nodes.
  // Default: 60000. Unit: ms.
  int64_t container_check_interval_ms = 60000;

  // Key: znode.container.maxPerMinute. Most containers/TTL nodes the reaper
  // deletes per minute. Default: 10000.
  int64_t container_max_per_minute = 10000;
  // Key: superDigest, DigestAuthenticationProvider.superDigest or
  // zookeeper.DigestAuthenticationProvider.superDigest. "user:base64(SHA1)"
  // of the digest super user; empty = none. Default: "".
  std::string super_digest;

  // --- Not from keys ---

  // The file LoadZooCfg() read; empty for ParseZooCfg() and defaults.
  std::string config_path;
  // Canonical names of the keys present in the file (e.g. "clientPort" for
  // zookeeper.clientPort too), sorted. Tells explicit values from defaults.
  std::vector<std::string> keys_set;
  // Human-readable notes for the log (unknown keys, duplicates, adjusted
  // values, questionable ensembles). Never affects behaviour.
  std::vector<std::string> warnings;

  // True unless the quorum protocol must run: no server lines, or exactly one
  // participant line while standalone_enabled (ZooKeeper's !isDistributed()).
  bool standalone() const;
  // The line of server `id`, or nullptr.
  const ServerLine* FindServer(int64_t id) const;
  // Whether `key` (a canonical name, e.g. "clientPort") is in keys_set.
  bool IsSet(absl::string_view key) const;
  // Whether the four-letter word `cmd` (e.g. "ruok") is enabled.
  bool IsFourLetterWordEnabled(absl::string_view cmd) const;

  bool operator==(const ServerConfig&) const = default;
};

// Parses zoo.cfg contents. `file_name` only prefixes messages. Keys may come
// in any order (defaults that depend on tickTime are computed at the end).
// Returns InvalidArgument for malformed lines, bad values and inconsistent
// settings; see the file comment. Does not read myid or touch the disk.
absl::StatusOr<ServerConfig> ParseZooCfg(
    absl::string_view text, absl::string_view file_name = "zoo.cfg");

// Reads and parses the file at `path` (messages are prefixed with `path`).
// NotFound naming the path if it does not exist; sets config_path.
absl::StatusOr<ServerConfig> LoadZooCfg(const std::string& path);

// The configuration used when no config file is given: a standalone server
// with dataDir ./data, clientPort 2181, grpcPort 2281, admin port 8080.
ServerConfig DefaultStandaloneConfig();

// Parses the contents of a myid file: a decimal server id in
// 1..kMaxServerId, optionally surrounded by whitespace (e.g. "3\n").
// InvalidArgument naming `source` otherwise.
absl::StatusOr<int64_t> ParseMyId(absl::string_view contents,
                                  absl::string_view source = "myid");

// Reads `<data_dir>/myid`. NotFound naming the path if it is missing,
// InvalidArgument if malformed (see ParseMyId).
absl::StatusOr<int64_t> ReadMyId(const std::string& data_dir);

// Binds a quorum config to this server: requires !cfg.standalone()
// (FailedPrecondition otherwise) and a server.<myid> line (InvalidArgument
// listing the configured ids otherwise). Sets cfg.my_id; sets cfg.peer_type
// from the line, with a warning if peerType said otherwise (as ZooKeeper);
// takes clientPort/clientPortAddress from the line's client part, which must
// agree with an explicit clientPort. On error cfg is unchanged.
absl::Status ResolveQuorum(ServerConfig& cfg, int64_t myid);

// For a quorum config, ReadMyId(cfg.data_dir) then ResolveQuorum(); a no-op
// for a standalone one.
absl::Status ResolveMyId(ServerConfig& cfg);

// Renders `cfg` as a zoo.cfg (canonical key names, every key written) that
// ParseZooCfg() turns back into an equal config, warnings, my_id and
// config_path aside. Sizes that are not whole KiB/MiB are rounded up.
std::string FormatZooCfg(const ServerConfig& cfg);

}  // namespace rockeeper::server

#endif  // ROCKEEPER_SERVER_CONFIG_H_
