#include "server/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace rockeeper::server {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * 1024;
constexpr size_t kMaxConfigFileBytes = 16 << 20;
constexpr size_t kMaxMyIdFileBytes = 4096;
constexpr size_t kMaxShownValueChars = 120;

constexpr const char* kFourLetterWords[] = {
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro",
    "mntr", "ruok", "srst", "srvr", "stat", "stmk", "wchc", "wchp", "wchs"};

// ZooKeeper keys rockeeper knows about but does not implement: a specific
// warning instead of "unknown key".
constexpr const char* kUnsupportedZkKeys[] = {
    "secureClientPort",
    "secureClientPortAddress",
    "observerMasterPort",
    "clientPortListenBacklog",
    "connectToLearnerMasterLimit",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "syncEnabled",
    "quorumListenOnAllIPs",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "sslQuorum",
    "portUnification",
    "client.portUnification",
    "sslQuorumReloadCertFiles",
    "serverCnxnFactory",
    "audit.enable",
    "admin.commandURL",
    "admin.idleTimeout",
    "admin.portUnification",
    "maxCnxns",
    "snapshot.compression.method",
    "digest.enabled",
};
constexpr const char* kUnsupportedZkPrefixes[] = {
    "quorum.auth.", "metricsProvider.", "ssl.", "authProvider."};

// ---------------------------------------------------------------------------
// Small helpers.

bool IsPropSpace(char c) { return c == ' ' || c == '\t' || c == '\f'; }

// Java's String.trim(): drops every char <= ' ' at both ends.
absl::string_view JavaTrim(absl::string_view s) {
  while (!s.empty() && static_cast<unsigned char>(s.front()) <= ' ') {
    s.remove_prefix(1);
  }
  while (!s.empty() && static_cast<unsigned char>(s.back()) <= ' ') {
    s.remove_suffix(1);
  }
  return s;
}

// A value or key quoted for a message: C escapes, truncated.
std::string Shown(absl::string_view s) {
  if (s.size() > kMaxShownValueChars) {
    return absl::StrCat(absl::CHexEscape(s.substr(0, kMaxShownValueChars)),
                        "...");
  }
  return absl::CHexEscape(s);
}

// Strict decimal integer: optional sign, then 1..19 digits, no spaces.
std::optional<int64_t> ParseInt64(absl::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      return std::nullopt;
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');  // 19 digits never overflow
  }
  constexpr uint64_t kLimit = uint64_t{1} << 63;  // |INT64_MIN|
  if (v > kLimit || (!negative && v == kLimit)) return std::nullopt;
  if (negative) return v == kLimit ? kInt64Min : -static_cast<int64_t>(v);
  return static_cast<int64_t>(v);
}

std::optional<bool> ParseBool(absl::string_view s) {
  if (absl::EqualsIgnoreCase(s, "true") || absl::EqualsIgnoreCase(s, "yes")) {
    return true;
  }
  if (absl::EqualsIgnoreCase(s, "false") || absl::EqualsIgnoreCase(s, "no")) {
    return false;
  }
  return std::nullopt;
}

// A port number: digits only, in [min, 65535].
std::optional<int> ParsePort(absl::string_view s, int min) {
  if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
  const std::optional<int64_t> v = ParseInt64(s);
  if (!v || *v < min || *v > 65535) return std::nullopt;
  return static_cast<int>(*v);
}

// Host names and IP literals (IPv6 without brackets, optional %zone).
bool IsValidHost(absl::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  for (char c : h) {
    const bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
    if (!ok) return false;
  }
  return true;
}

// "[::1]" -> "::1"; anything else unchanged.
absl::string_view StripBrackets(absl::string_view h) {
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    return h.substr(1, h.size() - 2);
  }
  return h;
}

bool IsWildcardAddress(absl::string_view h) {
  return h == "0.0.0.0" || h == "::" || h == "0:0:0:0:0:0:0:0";
}

std::string HostForFile(absl::string_view h) {
  if (absl::StrContains(h, ':')) return absl::StrCat("[", h, "]");
  return std::string(h);
}

// Division rounding up, for rendering byte sizes in KiB/MiB.
int64_t CeilDiv(int64_t v, int64_t d) { return v / d + (v % d > 0 ? 1 : 0); }

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// ---------------------------------------------------------------------------
// java.util.Properties lexing.

struct LogicalLine {
  int line = 0;  // 1-based number of the first natural line
  std::string text;
};

std::vector<absl::string_view> NaturalLines(absl::string_view text) {
  std::vector<absl::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\n' && text[i] != '\r') continue;
    lines.push_back(text.substr(start, i - start));
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

absl::string_view SkipPropSpace(absl::string_view s) {
  while (!s.empty() && IsPropSpace(s.front())) s.remove_prefix(1);
  return s;
}

bool EndsWithContinuation(absl::string_view s) {
  size_t n = 0;
  while (n < s.size() && s[s.size() - 1 - n] == '\\') ++n;
  return n % 2 == 1;
}

// Joins continued lines and drops comments and blank lines.
std::vector<LogicalLine> LogicalLines(absl::string_view text) {
  const std::vector<absl::string_view> lines = NaturalLines(text);
  std::vector<LogicalLine> out;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::string_view l = SkipPropSpace(lines[i]);
    if (l.empty() || l[0] == '#' || l[0] == '!') continue;
    LogicalLine logical{static_cast<int>(i + 1), ""};
    while (EndsWithContinuation(l) && i + 1 < lines.size()) {
      logical.text.append(l.data(), l.size() - 1);
      l = SkipPropSpace(lines[++i]);
    }
    if (EndsWithContinuation(l)) l.remove_suffix(1);  // at end of file
    logical.text.append(l.data(), l.size());
    out.push_back(std::move(logical));
  }
  return out;
}

// Java's loadConvert: \t \n \r \f \uXXXX, and \c for any other c.
absl::StatusOr<std::string> Unescape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char c = s[++i];
    switch (c) {
      case 't':
        out.push_back('\t');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'u': {
        uint32_t cp = 0;
        for (int k = 0; k < 4; ++k) {
          const char h = i + 1 < s.size() ? s[++i] : 'x';
          if (!absl::ascii_isxdigit(static_cast<unsigned char>(h))) {
            return absl::InvalidArgumentError("malformed \\uXXXX escape");
          }
          cp = cp * 16 + static_cast<uint32_t>(
                             absl::ascii_isdigit(static_cast<unsigned char>(h))
                                 ? h - '0'
                                 : absl::ascii_tolower(h) - 'a' + 10);
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) {
          return absl::InvalidArgumentError(
              "\\u escapes of UTF-16 surrogates are not supported");
        }
        AppendUtf8(&out, cp);
        break;
      }
      default:
        out.push_back(c);
    }
  }
  return out;
}

struct Entry {
  int line = 0;
  std::string key;    // unescaped, trimmed, as written (maybe an alias)
  std::string value;  // unescaped, trimmed
};

// Java's Properties.load0 key/value split. Errors carry only the reason.
absl::StatusOr<Entry> SplitEntry(const LogicalLine& l) {
  const absl::string_view s = l.text;
  size_t key_len = 0;
  size_t value_start = s.size();
  bool has_sep = false;
  bool escaped = false;
  for (; key_len < s.size(); ++key_len) {
    const char c = s[key_len];
    if (!escaped && (c == '=' || c == ':')) {
      value_start = key_len + 1;
      has_sep = true;
      break;
    }
    if (!escaped && IsPropSpace(c)) {
      value_start = key_len + 1;
      break;
    }
    escaped = c == '\\' && !escaped;
  }
  while (value_start < s.size()) {
    const char c = s[value_start];
    if (!IsPropSpace(c)) {
      if (has_sep || (c != '=' && c != ':')) break;
      has_sep = true;
    }
    ++value_start;
  }
  absl::StatusOr<std::string> key = Unescape(s.substr(0, key_len));
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> value = Unescape(s.substr(value_start));
  if (!value.ok()) return value.status();
  return Entry{l.line, std::string(JavaTrim(*key)),
               std::string(JavaTrim(*value))};
}

// ---------------------------------------------------------------------------
// Key table.

class Parser;
using ApplyFn = absl::Status (*)(Parser&, const Entry&);
using FormatFn = std::string (*)(const ServerConfig&);

// An integer key. Values outside [min, max] are errors; values below
// raise_to are raised to it with a warning. The field holds value * scale.
struct IntKey {
  int64_t ServerConfig::*field;
  int64_t min = 1;
  int64_t max = kInt32Max;
  int64_t scale = 1;
  int64_t raise_to = kInt64Min;
};
struct PortKey {
  int ServerConfig::*field;
};
struct BoolKey {
  bool ServerConfig::*field;
};
struct StringKey {
  std::string ServerConfig::*field;
  bool is_address = false;  // validated as a host, [brackets] dropped
};
struct CustomKey {
  ApplyFn apply;
  FormatFn format;
};

struct KeyDef {
  const char* name;       // canonical
  const char* alt_name;   // another accepted spelling, or nullptr
  bool zookeeper_prefix;  // also accepted as "zookeeper." + name(s)
  std::variant<IntKey, PortKey, BoolKey, StringKey, CustomKey> spec;
};

absl::Status ApplySessionTimeout(Parser& p, const Entry& e);
absl::Status ApplySnapSizeLimit(Parser& p, const Entry& e);
absl::Status ApplyFourLetterWords(Parser& p, const Entry& e);
absl::Status ApplyElectionAlg(Parser& p, const Entry& e);
absl::Status ApplyPeerType(Parser& p, const Entry& e);
absl::Status ApplySuperDigest(Parser& p, const Entry& e);

std::string FormatSnapSizeLimit(const ServerConfig& c) {
  return absl::StrCat(CeilDiv(c.snap_size_limit_bytes, kKiB));
}
std::string FormatFourLetterWords(const ServerConfig& c) {
  return absl::StrJoin(c.four_letter_words, ",");
}
std::string FormatElectionAlg(const ServerConfig& c) {
  return absl::StrCat(c.election_alg);
}
std::string FormatPeerType(const ServerConfig& c) {
  return c.peer_type == PeerType::kObserver ? "observer" : "participant";
}
std::string FormatSuperDigest(const ServerConfig& c) { return c.super_digest; }
std::string FormatMinSession(const ServerConfig& c) {
  return absl::StrCat(c.min_session_timeout_ms);
}
std::string FormatMaxSession(const ServerConfig& c) {
  return absl::StrCat(c.max_session_timeout_ms);
}

using C = ServerConfig;
const KeyDef kKeys[] = {
    {"tickTime", nullptr, false, IntKey{.field = &C::tick_time_ms}},
    {"initLimit", nullptr, false, IntKey{.field = &C::init_limit_ticks}},
    {"syncLimit", nullptr, false, IntKey{.field = &C::sync_limit_ticks}},
    {"minSessionTimeout", nullptr, false,
     CustomKey{ApplySessionTimeout, FormatMinSession}},
    {"maxSessionTimeout", nullptr, false,
     CustomKey{ApplySessionTimeout, FormatMaxSession}},
    {"dataDir", nullptr, false, StringKey{.field = &C::data_dir}},
    {"dataLogDir", nullptr, false, StringKey{.field = &C::data_log_dir}},
    {"snapCount", nullptr, true,
     IntKey{.field = &C::snap_count, .min = kInt32Min, .raise_to = 2}},
    {"snapSizeLimitInKb", nullptr, true,
     CustomKey{ApplySnapSizeLimit, FormatSnapSizeLimit}},
    {"preAllocSize", nullptr, true,
     IntKey{.field = &C::pre_alloc_size_bytes,
            .max = int64_t{1} << 30,
            .scale = kKiB}},
    {"forceSync", nullptr, true, BoolKey{&C::force_sync}},
    {"fsync.warningthresholdms", nullptr, true,
     IntKey{.field = &C::fsync_warning_threshold_ms, .min = 0}},
    {"autopurge.snapRetainCount", nullptr, false,
     IntKey{.field = &C::autopurge_snap_retain_count,
            .min = kInt32Min,
            .raise_to = 3}},
    {"autopurge.purgeInterval", nullptr, false,
     IntKey{.field = &C::autopurge_purge_interval_hours, .min = 0}},
    {"blockCacheSizeMb", nullptr, false,
     IntKey{.field = &C::block_cache_size_bytes,
            .max = int64_t{1} << 30,
            .scale = kMiB}},
    {"writeBufferSizeMb", nullptr, false,
     IntKey{.field = &C::write_buffer_size_bytes,
            .max = int64_t{1} << 20,
            .scale = kMiB}},
    {"childrenCacheSizeMb", nullptr, false,
     IntKey{.field = &C::children_cache_size_bytes,
            .min = 0,
            .max = int64_t{1} << 20,
            .scale = kMiB}},
    {"rowCacheSizeMb", nullptr, false,
     IntKey{.field = &C::row_cache_size_bytes,
            .min = 0,
            .max = int64_t{1} << 20,
            .scale = kMiB}},
    {"znodeCacheSizeMb", nullptr, false,
     IntKey{.field = &C::znode_cache_size_bytes,
            .min = 0,
            .max = int64_t{1} << 20,
            .scale = kMiB}},
    {"clientPort", nullptr, false, PortKey{&C::client_port}},
    {"clientPortAddress", nullptr, false,
     StringKey{.field = &C::client_port_address, .is_address = true}},
    {"wireThreads", nullptr, false,
     IntKey{.field = &C::wire_threads, .min = 0, .max = 64}},
    {"readIoThreads", nullptr, false,
     IntKey{.field = &C::read_io_threads, .min = 0, .max = 64}},
    {"grpcPort", nullptr, false, PortKey{&C::grpc_port}},
    {"grpcPortAddress", nullptr, false,
     StringKey{.field = &C::grpc_port_address, .is_address = true}},
    {"admin.enableServer", nullptr, true, BoolKey{&C::admin_enable_server}},
    {"admin.serverPort", nullptr, true, PortKey{&C::admin_server_port}},
    {"admin.serverAddress", nullptr, true,
     StringKey{.field = &C::admin_server_address, .is_address = true}},
    {"maxClientCnxns", nullptr, false,
     IntKey{.field = &C::max_client_cnxns, .min = 0}},
    {"globalOutstandingLimit", nullptr, true,
     IntKey{.field = &C::global_outstanding_limit}},
    {"jute.maxbuffer", nullptr, true,
     IntKey{.field = &C::jute_max_buffer_bytes}},
    {"4lw.commands.whitelist", nullptr, true,
     CustomKey{ApplyFourLetterWords, FormatFourLetterWords}},
    {"leaderServes", nullptr, true, BoolKey{&C::leader_serves}},
    {"standaloneEnabled", nullptr, false, BoolKey{&C::standalone_enabled}},
    {"reconfigEnabled", nullptr, false, BoolKey{&C::reconfig_enabled}},
    {"electionAlg", nullptr, false,
     CustomKey{ApplyElectionAlg, FormatElectionAlg}},
    {"peerType", nullptr, false, CustomKey{ApplyPeerType, FormatPeerType}},
    {"skipACL", nullptr, true, BoolKey{&C::skip_acl}},
    {"extendedTypesEnabled", nullptr, true,
     BoolKey{&C::extended_types_enabled}},
    {"enforceQuota", nullptr, true, BoolKey{&C::enforce_quota}},
    {"znode.container.checkIntervalMs", nullptr, true,
     IntKey{.field = &C::container_check_interval_ms}},
    {"znode.container.maxPerMinute", nullptr, true,
     IntKey{.field = &C::container_max_per_minute}},
    {"superDigest", "DigestAuthenticationProvider.superDigest", true,
     CustomKey{ApplySuperDigest, FormatSuperDigest}},
};

bool NameMatches(const KeyDef& def, absl::string_view key) {
  for (const char* name : {def.name, def.alt_name}) {
    if (name == nullptr) continue;
    if (key == name) return true;
    if (def.zookeeper_prefix && absl::StartsWith(key, "zookeeper.") &&
        key.substr(10) == name) {
      return true;
    }
  }
  return false;
}

const KeyDef* FindKey(absl::string_view key) {
  for (const KeyDef& def : kKeys) {
    if (NameMatches(def, key)) return &def;
  }
  return nullptr;
}

// A known key whose spelling differs only in case, for "did you mean".
const KeyDef* FindKeyIgnoringCase(absl::string_view key) {
  for (const KeyDef& def : kKeys) {
    if (absl::EqualsIgnoreCase(key, def.name)) return &def;
  }
  return nullptr;
}

bool IsUnsupportedZkKey(absl::string_view key) {
  absl::ConsumePrefix(&key, "zookeeper.");
  for (const char* k : kUnsupportedZkKeys) {
    if (key == k) return true;
  }
  for (const char* prefix : kUnsupportedZkPrefixes) {
    if (absl::StartsWith(key, prefix)) return true;
  }
  return false;
}

// Fills the fields whose defaults derive from others, for keys not in
// c.keys_set (or set to ZooKeeper's "-1 = default" for session timeouts).
void FillDerivedDefaults(ServerConfig& c) {
  if (!c.IsSet("dataLogDir")) c.data_log_dir = c.data_dir;
  if (!c.IsSet("grpcPortAddress")) c.grpc_port_address = c.client_port_address;
  if (!c.IsSet("minSessionTimeout") || c.min_session_timeout_ms < 0) {
    c.min_session_timeout_ms = 2 * c.tick_time_ms;
  }
  if (!c.IsSet("maxSessionTimeout") || c.max_session_timeout_ms < 0) {
    c.max_session_timeout_ms = 20 * c.tick_time_ms;
  }
}

std::string FormatValue(const KeyDef& def, const ServerConfig& c) {
  struct Visitor {
    const ServerConfig& c;
    std::string operator()(const IntKey& k) const {
      return absl::StrCat(CeilDiv(c.*k.field, k.scale));
    }
    std::string operator()(const PortKey& k) const {
      return absl::StrCat(c.*k.field);
    }
    std::string operator()(const BoolKey& k) const {
      return c.*k.field ? "true" : "false";
    }
    std::string operator()(const StringKey& k) const { return c.*k.field; }
    std::string operator()(const CustomKey& k) const { return k.format(c); }
  };
  return std::visit(Visitor{c}, def.spec);
}

// ---------------------------------------------------------------------------
// The parser.

class Parser {
 public:
  explicit Parser(absl::string_view file_name) : file_(file_name) {}

  absl::StatusOr<ServerConfig> Run(absl::string_view text);

  ServerConfig& cfg() { return cfg_; }

  // InvalidArgument "file:line: key="value": reason".
  absl::Status BadValue(const Entry& e, absl::string_view reason) const {
    const KeyDef* def = FindKey(e.key);
    const bool secret =
        def != nullptr && absl::string_view(def->name) == "superDigest";
    return absl::InvalidArgumentError(absl::StrCat(
        file_, ":", e.line, ": ", Shown(e.key), "=",
        secret ? "<redacted>" : absl::StrCat("\"", Shown(e.value), "\""), ": ",
        reason));
  }
  void Warn(int line, absl::string_view what) {
    cfg_.warnings.push_back(absl::StrCat(file_, ":", line, ": ", what));
  }
  void Warn(absl::string_view what) {
    cfg_.warnings.push_back(absl::StrCat(file_, ": ", what));
  }

  // Parses e.value as an integer in [min, max].
  absl::StatusOr<int64_t> Int(const Entry& e, int64_t min, int64_t max) const;

 private:
  absl::Status Collect(const Entry& e);
  absl::Status CollectServer(const Entry& e);
  absl::Status Apply(const KeyDef& def, const Entry& e);
  absl::Status Finish();
  absl::Status CheckEnsemble();

  const std::string file_;
  ServerConfig cfg_;
  // Last entry of each known key (by canonical name).
  std::map<std::string, Entry> known_;
  // Line of each server id and of each host:port pair in server lines.
  std::map<int64_t, int> server_lines_;
  std::map<std::string, int64_t> server_addresses_;
};

absl::StatusOr<int64_t> Parser::Int(const Entry& e, int64_t min,
                                    int64_t max) const {
  const std::optional<int64_t> v = ParseInt64(e.value);
  if (!v) return BadValue(e, "not an integer");
  if (*v < min) {
    return BadValue(e, min == 1 ? std::string("must be > 0")
                                : absl::StrCat("must be >= ", min));
  }
  if (*v > max) return BadValue(e, absl::StrCat("must be at most ", max));
  return *v;
}

absl::Status Parser::Apply(const KeyDef& def, const Entry& e) {
  if (const auto* k = std::get_if<IntKey>(&def.spec)) {
    absl::StatusOr<int64_t> v = Int(e, k->min, k->max);
    if (!v.ok()) return v.status();
    if (*v < k->raise_to) {
      Warn(e.line, absl::StrCat(e.key, "=", *v, " is below the minimum; using ",
                                k->raise_to));
      *v = k->raise_to;
    }
    cfg_.*k->field = *v * k->scale;
  } else if (const auto* k = std::get_if<PortKey>(&def.spec)) {
    const std::optional<int> port = ParsePort(e.value, 0);
    if (!port) return BadValue(e, "not a port number (0..65535)");
    cfg_.*k->field = *port;
  } else if (const auto* k = std::get_if<BoolKey>(&def.spec)) {
    const std::optional<bool> b = ParseBool(e.value);
    if (!b) return BadValue(e, "not a boolean (true, false, yes or no)");
    cfg_.*k->field = *b;
  } else if (const auto* k = std::get_if<StringKey>(&def.spec)) {
    if (e.value.empty()) return BadValue(e, "must not be empty");
    if (k->is_address) {
      const absl::string_view host = StripBrackets(e.value);
      if (!IsValidHost(host)) return BadValue(e, "not a host name or address");
      cfg_.*k->field = std::string(host);
    } else {
      cfg_.*k->field = e.value;
    }
  } else {
    return std::get<CustomKey>(def.spec).apply(*this, e);
  }
  return absl::OkStatus();
}

absl::Status ApplySessionTimeout(Parser& p, const Entry& e) {
  absl::StatusOr<int64_t> v = p.Int(e, -1, kInt32Max);
  if (!v.ok()) return v.status();
  if (*v == 0) return p.BadValue(e, "must be > 0 (or -1 for the default)");
  const bool is_min = FindKey(e.key)->name == std::string("minSessionTimeout");
  (is_min ? p.cfg().min_session_timeout_ms : p.cfg().max_session_timeout_ms) =
      *v;
  return absl::OkStatus();
}

absl::Status ApplySnapSizeLimit(Parser& p, const Entry& e) {
  absl::StatusOr<int64_t> v = p.Int(e, kInt64Min, kInt64Max / kKiB);
  if (!v.ok()) return v.status();
  p.cfg().snap_size_limit_bytes = *v <= 0 ? 0 : *v * kKiB;
  return absl::OkStatus();
}

absl::Status ApplyFourLetterWords(Parser& p, const Entry& e) {
  std::vector<std::string> words;
  for (absl::string_view w : absl::StrSplit(e.value, ',')) {
    w = absl::StripAsciiWhitespace(w);
    if (w.empty()) continue;
    if (w == "*") {
      words = {"*"};
      break;
    }
    const bool known =
        std::find(std::begin(kFourLetterWords), std::end(kFourLetterWords),
                  w) != std::end(kFourLetterWords);
    if (!known) {
      p.Warn(e.line, absl::StrCat("unknown four-letter word \"", Shown(w),
                                  "\" in ", e.key, " ignored"));
      continue;
    }
    if (std::find(words.begin(), words.end(), w) == words.end()) {
      words.emplace_back(w);
    }
  }
  if (words != std::vector<std::string>{"*"} &&
      std::find(words.begin(), words.end(), "srvr") == words.end()) {
    words.push_back("srvr");  // ZooKeeper always enables srvr
  }
  p.cfg().four_letter_words = std::move(words);
  return absl::OkStatus();
}

absl::Status ApplyElectionAlg(Parser& p, const Entry& e) {
  if (e.value != "3") {
    return p.BadValue(e, "only 3 (fast leader election) is supported");
  }
  p.cfg().election_alg = 3;
  return absl::OkStatus();
}

absl::Status ApplyPeerType(Parser& p, const Entry& e) {
  if (absl::EqualsIgnoreCase(e.value, "participant")) {
    p.cfg().peer_type = PeerType::kParticipant;
  } else if (absl::EqualsIgnoreCase(e.value, "observer")) {
    p.cfg().peer_type = PeerType::kObserver;
  } else {
    return p.BadValue(e, "expected participant or observer");
  }
  return absl::OkStatus();
}

// "user:base64(SHA1 digest)", as DigestAuthenticationProvider expects.
absl::Status ApplySuperDigest(Parser& p, const Entry& e) {
  if (!e.value.empty()) {
    const size_t colon = e.value.find(':');
    std::string digest;
    if (colon == 0 || colon == std::string::npos ||
        !absl::Base64Unescape(absl::string_view(e.value).substr(colon + 1),
                              &digest) ||
        digest.size() != 20) {
      return p.BadValue(
          e,
          "expected user:base64(SHA1(user:password)), e.g. super:<28 chars>");
    }
  }
  p.cfg().super_digest = e.value;
  return absl::OkStatus();
}

// Splits "host:p1:p2..." or "[v6]:p1:p2..." into host and ports, like
// ZooKeeper's splitWithLeadingHostname. Errors carry only the reason.
absl::StatusOr<std::vector<std::string>> SplitHostAndPorts(
    absl::string_view s) {
  std::vector<std::string> parts;
  if (absl::StartsWith(s, "[")) {
    const size_t close = s.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("'[' without a matching ']'");
    }
    parts.emplace_back(s.substr(1, close - 1));
    s.remove_prefix(close + 1);
    if (s.empty()) return parts;
    if (s[0] != ':')
      return absl::InvalidArgumentError("expected ':' after ']'");
    s.remove_prefix(1);
  }
  for (absl::string_view part : absl::StrSplit(s, ':')) {
    parts.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return parts;
}

constexpr absl::string_view kServerSyntax =
    "expected host:quorumPort:electionPort[:participant|:observer]"
    "[;[clientHost:]clientPort] (IPv6 hosts in [brackets])";

// Parses the value of a server line; errors carry only the reason.
absl::Status ParseServerValue(absl::string_view value, ServerLine* line) {
  if (absl::StrContains(value, '|')) {
    return absl::InvalidArgumentError(
        "multiple addresses per server ('|') are not supported");
  }
  const std::vector<absl::string_view> halves = absl::StrSplit(value, ';');
  if (halves.size() > 2) return absl::InvalidArgumentError(kServerSyntax);
  absl::StatusOr<std::vector<std::string>> parts =
      SplitHostAndPorts(absl::StripAsciiWhitespace(halves[0]));
  if (!parts.ok()) return parts.status();
  if (parts->size() < 3 || parts->size() > 4) {
    return absl::InvalidArgumentError(kServerSyntax);
  }
  const std::vector<std::string>& p = *parts;
  if (!IsValidHost(p[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid host \"", Shown(p[0]), "\""));
  }
  line->host = p[0];
  const std::optional<int> quorum = ParsePort(p[1], 1);
  const std::optional<int> election = ParsePort(p[2], 1);
  if (!quorum || !election) {
    return absl::InvalidArgumentError(absl::StrCat(
        quorum ? "election" : "quorum", " port \"", Shown(quorum ? p[2] : p[1]),
        "\" is not a port number (1..65535)"));
  }
  if (*quorum == *election) {
    return absl::InvalidArgumentError(
        "quorum port and election port must differ");
  }
  line->quorum_port = *quorum;
  line->election_port = *election;
  if (p.size() == 4) {
    if (absl::EqualsIgnoreCase(p[3], "observer")) {
      line->is_observer = true;
    } else if (!absl::EqualsIgnoreCase(p[3], "participant")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown peer type \"", Shown(p[3]),
                       "\" (expected participant or observer)"));
    }
  }
  if (halves.size() == 1) return absl::OkStatus();
  absl::StatusOr<std::vector<std::string>> client =
      SplitHostAndPorts(absl::StripAsciiWhitespace(halves[1]));
  if (!client.ok()) return client.status();
  if (client->size() > 2) return absl::InvalidArgumentError(kServerSyntax);
  if (client->size() == 2) {
    if (!IsValidHost((*client)[0])) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid client host \"", Shown((*client)[0]), "\""));
    }
    line->client_host = (*client)[0];
  }
  line->client_port = ParsePort(client->back(), 1);
  if (!line->client_port) {
    return absl::InvalidArgumentError(
        absl::StrCat("client port \"", Shown(client->back()),
                     "\" is not a port number (1..65535)"));
  }
  return absl::OkStatus();
}

absl::Status Parser::CollectServer(const Entry& e) {
  const absl::string_view id_text = absl::string_view(e.key).substr(7);
  const std::optional<int64_t> id =
      id_text.empty() || !absl::ascii_isdigit(id_text[0]) ? std::nullopt
                                                          : ParseInt64(id_text);
  if (!id || *id < 1 || *id > kMaxServerId) {
    return BadValue(
        e, absl::StrCat("server id must be an integer in 1..", kMaxServerId));
  }
  ServerLine line;
  line.id = *id;
  if (absl::Status s = ParseServerValue(e.value, &line); !s.ok()) {
    return BadValue(e, s.message());
  }
  if (auto it = server_lines_.find(*id); it != server_lines_.end()) {
    return BadValue(e, absl::StrCat("duplicate server id ", *id,
                                    " (also on line ", it->second, ")"));
  }
  for (int port : {line.quorum_port, line.election_port}) {
    const std::string address = absl::StrCat(HostForFile(line.host), ":", port);
    const auto [it, inserted] = server_addresses_.emplace(address, *id);
    if (!inserted) {
      return BadValue(
          e, absl::StrCat("address ", address, " is already used by server.",
                          it->second));
    }
  }
  server_lines_[*id] = e.line;
  cfg_.servers.push_back(std::move(line));
  return absl::OkStatus();
}

absl::Status Parser::Collect(const Entry& e) {
  if (e.key.empty()) return BadValue(e, "missing key");
  if (absl::StartsWith(e.key, "server.")) return CollectServer(e);
  if (absl::StartsWith(e.key, "group.") || absl::StartsWith(e.key, "weight.")) {
    Warn(e.line, absl::StrCat("\"", Shown(e.key),
                              "\": hierarchical quorums are not supported; "
                              "ignored (every participant has one vote)"));
    return absl::OkStatus();
  }
  if (e.key == "dynamicConfigFile") {
    return BadValue(e, "not supported; list the server.N lines in this file");
  }
  if (const KeyDef* def = FindKey(e.key)) {
    auto [it, inserted] = known_.emplace(def->name, e);
    if (!inserted) {
      Warn(e.line,
           absl::StrCat("duplicate key \"", Shown(e.key), "\" (also on line ",
                        it->second.line, "); the last one wins"));
      it->second = e;
    }
    return absl::OkStatus();
  }
  if (IsUnsupportedZkKey(e.key)) {
    Warn(e.line, absl::StrCat("ZooKeeper key \"", Shown(e.key),
                              "\" is not supported by rockeeper; ignored"));
  } else if (const KeyDef* near = FindKeyIgnoringCase(e.key)) {
    Warn(e.line, absl::StrCat("unknown key \"", Shown(e.key),
                              "\" ignored (did you mean \"", near->name,
                              "\"? keys are case-sensitive)"));
  } else {
    Warn(e.line, absl::StrCat("unknown key \"", Shown(e.key), "\" ignored"));
  }
  return absl::OkStatus();
}

absl::Status Parser::CheckEnsemble() {
  int64_t participants = 0;
  for (const ServerLine& s : cfg_.servers) participants += !s.is_observer;
  const int64_t observers =
      static_cast<int64_t>(cfg_.servers.size()) - participants;
  if (participants == 0) {
    if (observers > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_,
                       ": observers without participants: add participant "
                       "server.N lines"));
    }
    if (!cfg_.standalone_enabled) {
      return absl::InvalidArgumentError(absl::StrCat(
          file_,
          ": standaloneEnabled=false needs at least one participant "
          "server.N line"));
    }
  } else if (participants == 1 && cfg_.standalone_enabled) {
    if (observers > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_,
                       ": observers need a quorum: add participants or set "
                       "standaloneEnabled=false"));
    }
    Warn(
        "only one server line and standaloneEnabled=true: running "
        "standalone, the server line is ignored");
  } else if (participants == 2) {
    Warn("2 participants: no server failure will be tolerated; use 3 or more");
  } else if (participants > 2 && participants % 2 == 0) {
    Warn(absl::StrCat(participants,
                      " participants: an odd number tolerates "
                      "as many failures with fewer servers"));
  }
  return absl::OkStatus();
}

absl::Status Parser::Finish() {
  if (!known_.contains("dataDir")) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ": dataDir is not set (it is required)"));
  }
  FillDerivedDefaults(cfg_);
  if (cfg_.min_session_timeout_ms > cfg_.max_session_timeout_ms) {
    auto where = [&](absl::string_view key) {
      auto k = known_.find(std::string(key));
      return k == known_.end() ? std::string("default")
                               : absl::StrCat("line ", k->second.line);
    };
    return absl::InvalidArgumentError(absl::StrCat(
        file_, ": minSessionTimeout=", cfg_.min_session_timeout_ms, " (",
        where("minSessionTimeout"), ") is larger than maxSessionTimeout=",
        cfg_.max_session_timeout_ms, " (", where("maxSessionTimeout"), ")"));
  }
  return CheckEnsemble();
}

absl::StatusOr<ServerConfig> Parser::Run(absl::string_view text) {
  for (const LogicalLine& l : LogicalLines(text)) {
    absl::StatusOr<Entry> e = SplitEntry(l);
    if (!e.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_, ":", l.line, ": ", e.status().message()));
    }
    if (absl::Status s = Collect(*e); !s.ok()) return s;
  }
  // Apply the effective entries in file order, so the first bad line in the
  // file is the one reported.
  std::vector<std::pair<const KeyDef*, const Entry*>> ordered;
  for (const auto& [name, e] : known_) {
    ordered.emplace_back(FindKey(name), &e);
    cfg_.keys_set.push_back(name);
  }
  std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return a.second->line < b.second->line;
  });
  for (const auto& [def, e] : ordered) {
    if (absl::Status s = Apply(*def, *e); !s.ok()) return s;
  }
  if (absl::Status s = Finish(); !s.ok()) return s;
  return std::move(cfg_);
}

// ---------------------------------------------------------------------------
// Files.

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    return absl::ErrnoToStatus(err, absl::StrCat("cannot open ", path));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a regular file"));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
  }
}

// The config's name for messages.
std::string SourceName(const ServerConfig& cfg) {
  return cfg.config_path.empty() ? "zoo.cfg" : cfg.config_path;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

bool ServerConfig::standalone() const {
  int64_t participants = 0;
  for (const ServerLine& s : servers) participants += !s.is_observer;
  return standalone_enabled && participants <= 1;
}

const ServerLine* ServerConfig::FindServer(int64_t id) const {
  for (const ServerLine& s : servers) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

bool ServerConfig::IsSet(absl::string_view key) const {
  return std::find(keys_set.begin(), keys_set.end(), key) != keys_set.end();
}

bool ServerConfig::IsFourLetterWordEnabled(absl::string_view cmd) const {
  for (const std::string& w : four_letter_words) {
    if (w == "*" || w == cmd) return true;
  }
  return false;
}

absl::StatusOr<ServerConfig> ParseZooCfg(absl::string_view text,
                                         absl::string_view file_name) {
  return Parser(file_name).Run(text);
}

absl::StatusOr<ServerConfig> LoadZooCfg(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxConfigFileBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<ServerConfig> cfg = ParseZooCfg(*text, path);
  if (cfg.ok()) cfg->config_path = path;
  return cfg;
}

ServerConfig DefaultStandaloneConfig() {
  ServerConfig cfg;
  FillDerivedDefaults(cfg);
  return cfg;
}

absl::StatusOr<int64_t> ParseMyId(absl::string_view contents,
                                  absl::string_view source) {
  const absl::string_view text = absl::StripAsciiWhitespace(contents);
  const bool digits =
      !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      });
  const std::optional<int64_t> id =
      digits ? ParseInt64(text) : std::optional<int64_t>();
  if (!id || *id < 1 || *id > kMaxServerId) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": expected a server id in 1..", kMaxServerId,
                     ", found \"", Shown(text), "\""));
  }
  return *id;
}

absl::StatusOr<int64_t> ReadMyId(const std::string& data_dir) {
  const std::string path =
      absl::StrCat(data_dir, absl::EndsWith(data_dir, "/") ? "" : "/", "myid");
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxMyIdFileBytes);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat(
        path,
        " is missing: a server of a quorum needs its id (the N of its "
        "server.N line) in this file"));
  }
  if (!text.ok()) return text.status();
  return ParseMyId(*text, path);
}

absl::Status ResolveQuorum(ServerConfig& cfg, int64_t myid) {
  const std::string src = SourceName(cfg);
  if (cfg.standalone()) {
    return absl::FailedPreconditionError(absl::StrCat(
        src, " is a standalone configuration; there is no quorum to join"));
  }
  if (myid < 1 || myid > kMaxServerId) {
    return absl::InvalidArgumentError(
        absl::StrCat("myid ", myid, " is not in 1..", kMaxServerId));
  }
  if (cfg.extended_types_enabled && myid == kMaxServerId) {
    return absl::InvalidArgumentError(
        absl::StrCat("myid ", myid,
                     ": with extendedTypesEnabled=true server "
                     "ids must be at most ",
                     kMaxServerId - 1));
  }
  const ServerLine* line = cfg.FindServer(myid);
  if (line == nullptr) {
    std::vector<int64_t> ids;
    for (const ServerLine& s : cfg.servers) ids.push_back(s.id);
    return absl::InvalidArgumentError(
        absl::StrCat("myid ", myid, " has no server.", myid, " line in ", src,
                     " (configured ids: ", absl::StrJoin(ids, ", "), ")"));
  }
  if (line->client_port) {
    if (cfg.IsSet("clientPort") && cfg.client_port != *line->client_port) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": clientPort=", cfg.client_port,
                       " differs from the client port ", *line->client_port,
                       " of server.", myid));
    }
    if (!line->client_host.empty() && cfg.IsSet("clientPortAddress") &&
        !IsWildcardAddress(cfg.client_port_address) &&
        cfg.client_port_address != line->client_host) {
      return absl::InvalidArgumentError(
          absl::StrCat(src, ": clientPortAddress=", cfg.client_port_address,
                       " differs from the client host ", line->client_host,
                       " of server.", myid));
    }
  }
  const PeerType type =
      line->is_observer ? PeerType::kObserver : PeerType::kParticipant;
  if (cfg.IsSet("peerType") && cfg.peer_type != type) {
    cfg.warnings.push_back(
        absl::StrCat(src, ": peerType does not match server.", myid, "; using ",
                     line->is_observer ? "observer" : "participant",
                     " from the server line"));
  }
  cfg.peer_type = type;
  if (line->client_port) {
    cfg.client_port = *line->client_port;
    if (!line->client_host.empty()) {
      cfg.client_port_address = line->client_host;
      if (!cfg.IsSet("grpcPortAddress")) {
        cfg.grpc_port_address = line->client_host;
      }
    }
  }
  cfg.my_id = myid;
  return absl::OkStatus();
}

absl::Status ResolveMyId(ServerConfig& cfg) {
  if (cfg.standalone()) return absl::OkStatus();
  absl::StatusOr<int64_t> id = ReadMyId(cfg.data_dir);
  if (!id.ok()) return id.status();
  return ResolveQuorum(cfg, *id);
}

namespace {

// Escapes a value for a properties file (inverse of Unescape).
std::string EscapeValue(absl::string_view v) {
  std::string out;
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          const auto u = static_cast<unsigned char>(c);
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 15]);
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

std::string FormatServerLine(const ServerLine& s) {
  std::string out = absl::StrCat("server.", s.id, "=", HostForFile(s.host), ":",
                                 s.quorum_port, ":", s.election_port);
  if (s.is_observer) out += ":observer";
  if (s.client_port) {
    out += ";";
    if (!s.client_host.empty()) {
      absl::StrAppend(&out, HostForFile(s.client_host), ":");
    }
    absl::StrAppend(&out, *s.client_port);
  }
  return out;
}

}  // namespace

std::string FormatZooCfg(const ServerConfig& cfg) {
  // A key is written if it was set, or if its value differs from what
  // ParseZooCfg would use without it: the plain default, or for the keys of
  // FillDerivedDefaults() the value derived from cfg's other fields.
  const ServerConfig plain = DefaultStandaloneConfig();
  ServerConfig derived = plain;
  derived.tick_time_ms = cfg.tick_time_ms;
  derived.data_dir = cfg.data_dir;
  derived.client_port_address = cfg.client_port_address;
  FillDerivedDefaults(derived);
  auto is_derived = [](absl::string_view name) {
    return name == "minSessionTimeout" || name == "maxSessionTimeout" ||
           name == "dataLogDir" || name == "grpcPortAddress";
  };

  std::string out = "# Written by rockeeper (FormatZooCfg).\n";
  for (const KeyDef& def : kKeys) {
    const std::string value = FormatValue(def, cfg);
    const ServerConfig& reference = is_derived(def.name) ? derived : plain;
    const bool needed = cfg.IsSet(def.name) ||
                        value != FormatValue(def, reference) ||
                        def.name == absl::string_view("dataDir");
    if (needed) absl::StrAppend(&out, def.name, "=", EscapeValue(value), "\n");
  }
  for (const ServerLine& s : cfg.servers) {
    absl::StrAppend(&out, FormatServerLine(s), "\n");
  }
  return out;
}

}  // namespace rockeeper::server
