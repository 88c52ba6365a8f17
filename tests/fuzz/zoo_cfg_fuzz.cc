// Fuzz target: the zoo.cfg parser (ParseZooCfg), ParseMyId, ResolveQuorum
// and FormatZooCfg on arbitrary text. The first input byte picks a mode:
//   even: the rest is the file, as is;
//   odd:  the rest is turned into lines "<known key>=<value>", the key picked
//         by one byte and the value made of bytes mapped onto characters
//         that occur in real values, so that parsing often succeeds and the
//         checks below get exercised beyond the first bad line.
// Invariants: no crash or hang; failures are InvalidArgument naming the
// file; a parsed config satisfies its documented ranges (tickTime > 0,
// minSessionTimeout <= maxSessionTimeout, unique server ids in 1..255,
// valid distinct ports, ...); FormatZooCfg output parses back to an equal
// config; ResolveQuorum either succeeds for a listed id or leaves the
// config unchanged.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "server/config.h"

namespace {

using rockeeper::server::FormatZooCfg;
using rockeeper::server::kMaxServerId;
using rockeeper::server::ParseMyId;
using rockeeper::server::ParseZooCfg;
using rockeeper::server::ResolveQuorum;
using rockeeper::server::ServerConfig;
using rockeeper::server::ServerLine;

void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr const char* kKeys[] = {
    "tickTime",
    "initLimit",
    "syncLimit",
    "minSessionTimeout",
    "maxSessionTimeout",
    "dataDir",
    "dataLogDir",
    "snapCount",
    "snapSizeLimitInKb",
    "preAllocSize",
    "forceSync",
    "autopurge.snapRetainCount",
    "clientPort",
    "clientPortAddress",
    "grpcPortAddress",
    "admin.serverPort",
    "maxClientCnxns",
    "jute.maxbuffer",
    "4lw.commands.whitelist",
    "standaloneEnabled",
    "peerType",
    "superDigest",
    "zookeeper.skipACL",
    "server.1",
    "server.2",
    "server.3",
    "server.4",
    "server.255",
    "group.1",
    "unknownKey",
    "tickTime ",
};

constexpr char kValueChars[] =
    "0123456789000111222333:::;;..[]-,*   \\ttrueyesnoobserverparticipant"
    "ruokzk/\n#=";

std::string Structured(const uint8_t* data, size_t size) {
  std::string text = "dataDir=/zk\n";
  size_t pos = 0;
  while (pos + 1 < size) {
    text += kKeys[data[pos++] % (sizeof(kKeys) / sizeof(kKeys[0]))];
    text += '=';
    const size_t want = data[pos++] % 24;
    const size_t len = std::min<size_t>(want, size - pos);
    for (size_t i = 0; i < len; ++i) {
      text += kValueChars[data[pos + i] % (sizeof(kValueChars) - 1)];
    }
    pos += len;
    text += '\n';
  }
  return text;
}

bool ValidPort(int p, int min) { return p >= min && p <= 65535; }

void CheckInvariants(const ServerConfig& c) {
  Check(c.tick_time_ms > 0);
  Check(c.init_limit_ticks > 0 && c.sync_limit_ticks > 0);
  Check(c.min_session_timeout_ms > 0);
  Check(c.min_session_timeout_ms <= c.max_session_timeout_ms);
  Check(!c.data_dir.empty() && !c.data_log_dir.empty());
  Check(c.snap_count >= 2 && c.autopurge_snap_retain_count >= 3);
  Check(c.snap_size_limit_bytes >= 0 && c.pre_alloc_size_bytes > 0);
  Check(c.jute_max_buffer_bytes > 0 && c.max_client_cnxns >= 0);
  Check(ValidPort(c.client_port, 0) && ValidPort(c.grpc_port, 0) &&
        ValidPort(c.admin_server_port, 0));
  Check(c.election_alg == 3 && c.my_id == 0);
  Check(c.IsFourLetterWordEnabled("srvr"));
  Check(c.super_digest.empty() || absl::StrContains(c.super_digest, ':'));
  std::set<int64_t> ids;
  int participants = 0;
  for (const ServerLine& s : c.servers) {
    Check(s.id >= 1 && s.id <= kMaxServerId);
    Check(ids.insert(s.id).second);  // unique
    Check(!s.host.empty());
    Check(ValidPort(s.quorum_port, 1) && ValidPort(s.election_port, 1));
    Check(s.quorum_port != s.election_port);
    Check(!s.client_port || ValidPort(*s.client_port, 1));
    Check(s.client_host.empty() || s.client_port);
    participants += !s.is_observer;
  }
  Check(c.standalone() == (c.standalone_enabled && participants <= 1));
  Check(c.servers.empty() || participants > 0);
}

ServerConfig WithoutWarnings(ServerConfig c) {
  c.warnings.clear();
  return c;
}

void CheckResolve(const ServerConfig& c, const uint8_t* data, size_t size) {
  if (c.standalone()) return;
  const int64_t id = size > 1 ? data[1] : 1;
  ServerConfig copy = c;
  const absl::Status s = ResolveQuorum(copy, id);
  if (s.ok()) {
    Check(copy.my_id == id && copy.FindServer(id) != nullptr);
  } else {
    Check(copy == c);  // unchanged on error
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text =
      (data[0] & 1)
          ? Structured(data + 1, size - 1)
          : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)ParseMyId(text);

  const absl::StatusOr<ServerConfig> cfg = ParseZooCfg(text);
  if (!cfg.ok()) {
    Check(absl::IsInvalidArgument(cfg.status()));
    Check(absl::StartsWith(cfg.status().message(), "zoo.cfg"));
    return 0;
  }
  CheckInvariants(*cfg);
  const ServerConfig again = *ParseZooCfg(text);
  Check(again == *cfg);  // deterministic

  const std::string formatted = FormatZooCfg(*cfg);
  const absl::StatusOr<ServerConfig> back = ParseZooCfg(formatted);
  Check(back.ok());
  Check(WithoutWarnings(*back) == WithoutWarnings(*cfg));
  CheckResolve(*cfg, data, size);
  return 0;
}
