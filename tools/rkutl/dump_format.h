// How `rkutl snapshot dump` prints a znode: zkCli-style text blocks, and the
// JSON dump format that `rkutl snapshot restore --json` reads back
// (docs/rkutl.md describes both).
#ifndef ROCKEEPER_TOOLS_RKUTL_DUMP_FORMAT_H_
#define ROCKEEPER_TOOLS_RKUTL_DUMP_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/acl.h"
#include "engine/state_db.h"
#include "tools/rkutl/json.h"

namespace rockeeper::rkutl {

// A znode with its path and resolved ACL list.
struct NodeEntry {
  std::string path;
  engine::Znode node;  // persisted form: raw owner, persisted cversion
  engine::AclVector acl;
};

// Identifies the JSON dump format (the "format" member of the document).
inline constexpr char kDumpFormatName[] = "rkutl-snapshot-dump";
inline constexpr int kDumpFormatVersion = 1;

// "0x" + lowercase hex, no padding (as zkCli prints zxids).
std::string Hex(int64_t v);
// Milliseconds since the epoch as zkCli prints dates, in UTC:
// "Thu Jan 01 00:00:00 UTC 1970".
std::string FormatDate(int64_t ms);
// ZooKeeper's permission letters in zkCli order, e.g. 31 -> "cdrwa".
std::string PermsString(int32_t perms);
// The raw-owner node type: "" for persistent/ephemeral, "container",
// "ttl (<ms> ms)".
std::string SpecialNodeType(int64_t raw_owner);

// Text block: the path, the Stat lines as zkCli's `stat`, data, ACL entries,
// each line ending in '\n'.
std::string FormatNodeText(const NodeEntry& entry);
// One JSON object on one line (no trailing newline).
std::string FormatNodeJson(const NodeEntry& entry);
// Reads FormatNodeJson's output back (the persisted cversion is recomputed
// from the client cversion and numChildren).
absl::StatusOr<NodeEntry> ParseNodeJson(const Json& json);

std::string FormatSessionJson(const engine::SessionRecord& session);
absl::StatusOr<engine::SessionRecord> ParseSessionJson(const Json& json);

// Reads a "0x..." hex string or an integer member (zxids, owners, ids).
absl::StatusOr<int64_t> JsonInt(const Json& object, absl::string_view key);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_DUMP_FORMAT_H_
