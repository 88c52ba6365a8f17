// rkctl's output formats: everything that must print exactly as Apache
// ZooKeeper 3.8's zkCli.sh prints it (Stat, dates, ACLs, error messages,
// watch events, quota records), plus the JSON renderings of the same data.
// Pure functions, thread-compatible; unit-tested in
// tests/tools/rkctl/rkctl_format_test.cc.
#ifndef ROCKEEPER_TOOLS_RKCTL_FORMAT_H_
#define ROCKEEPER_TOOLS_RKCTL_FORMAT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "rpc/client.h"

namespace rockeeper::rkctl {

// Java's Long.toHexString: lowercase, no leading zeros, two's complement
// for negative values ("ffffffffffffffff" for -1).
std::string JavaHex(int64_t value);

// java.util.Date#toString for `epoch_ms` in the process's local time zone
// (TZ), English names: "Sun Nov 22 09:30:00 UTC 2026".
std::string JavaDate(int64_t epoch_ms);

// zkCli's StatPrinter: eleven "name = value" lines, each ending in '\n'.
std::string FormatStat(const client::Stat& stat);

// Java's List#toString of child names or paths: "[a, b, c]".
std::string JavaList(const std::vector<std::string>& items);

// ZooKeeper's permission letters in zkCli's order ("cdrwa").
std::string PermString(int32_t perms);
// zkCli's getAcl lines: "'scheme,'id\n: perms\n" per entry.
std::string FormatAcl(const std::vector<client::Acl>& acl);

// Result of parsing a zkCli ACL string ("world:anyone:cdrwa,digest:u:h:r").
// Like zkCli's AclParser, malformed entries are skipped and unknown
// permission letters ignored; each problem adds a zkCli warning line.
struct ParsedAcl {
  std::vector<client::Acl> acl;
  std::vector<std::string> warnings;
};
ParsedAcl ParseAcl(absl::string_view text);

// ZooKeeper's KeeperException.Code#getMessage-style text ("NoNode",
// "Directory not empty", ...).
std::string CodeMessage(int32_t code);

// The message zkCli prints for a KeeperException with `code` on `path`
// (CliWrapperException): "Node does not exist: /a", "Insufficient
// permission : /a", otherwise "KeeperErrorCode = <msg>[ for <path>]".
std::string ZkCliErrorMessage(int32_t code, absl::string_view path);

// ZooKeeper's PathUtils.validatePath; nullopt if valid, else the message
// zkCli prints ("Path must start with / character", ...). `sequential`:
// the path gets a sequence suffix (so a trailing '/' is allowed).
std::optional<std::string> ValidatePath(absl::string_view path,
                                        bool sequential = false);

// "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a" (a
// session event has "type:None path:null").
std::string FormatWatchedEvent(const client::WatchEvent& event);

// ZooKeeper 3.8's StatsTrack: count and bytes (soft limits or usage; -1
// unset) and the hard limits, which are only printed when present (as the
// Java class keeps a map of the keys it was given).
struct StatsTrack {
  int64_t count = -1;
  int64_t bytes = -1;
  std::optional<int64_t> count_hard_limit;
  std::optional<int64_t> byte_hard_limit;
};
// Parses "count=5,bytes=-1" and the 3.8 form
// "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=-1". Unknown keys and
// malformed values are ignored (as ZooKeeper's StatsTrack does).
StatsTrack ParseStatsTrack(absl::string_view text);
// StatsTrack#toString: "count=N,bytes=M", then "=" and ";key=value" for
// each hard limit present, sorted by key.
std::string FormatStatsTrack(const StatsTrack& s);

// Splits a ZooKeeper connect string "h1:p1,h2:p2" into its entries and
// returns the host of the first one (no brackets), or "" if empty.
std::string FirstHost(absl::string_view connect_string);

// True if `text` is valid UTF-8 (so JSON can carry it as a string).
bool IsValidUtf8(absl::string_view text);
std::string Base64Encode(absl::string_view bytes);

// A small JSON writer: builds one document into a string. Keys and string
// values are escaped; bytes that are not valid UTF-8 must be base64'd by
// the caller first.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // A value written as is (already JSON).
  JsonWriter& Raw(absl::string_view json);
  const std::string& str() const { return out_; }

 private:
  void Separate();
  std::string out_;
  // Per open container: true once it has an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

// JSON renderings shared by the commands (see docs/rkctl.md).
std::string StatJson(const client::Stat& stat);
std::string AclJson(const std::vector<client::Acl>& acl);
// {"encoding":"utf8","data":"..."} members, or base64 when not UTF-8;
// written into an open object.
void DataJsonMembers(JsonWriter& w, absl::string_view data);

// Quoted-string aware split of a shell line, as zkCli's MyCommandOptions:
// tokens are runs of non-space characters, or "..." / '...' (quotes
// removed).
std::vector<std::string> SplitCommandLine(absl::string_view line);

}  // namespace rockeeper::rkctl

#endif  // ROCKEEPER_TOOLS_RKCTL_FORMAT_H_
