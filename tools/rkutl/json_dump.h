// The JSON dump document of `rkutl snapshot dump --json`: writing its header
// and trailer around the node lines, and reading a whole dump back for
// `rkutl snapshot restore --json`.
//
//   {"format":"rkutl-snapshot-dump","version":1,"source":"...",
//    "lastAppliedZxid":"0x..","currentEpoch":0,"acceptedEpoch":0,
//    "root":"/","maxDepth":-1,"complete":true,
//   "sessions":[
//   {"sessionId":"0x..",...},
//   ...],
//   "nodes":[
//   {"path":"/",...},          one line per node (dump_format.h)
//   ...]}
#ifndef ROCKEEPER_TOOLS_RKUTL_JSON_DUMP_H_
#define ROCKEEPER_TOOLS_RKUTL_JSON_DUMP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/state_db.h"
#include "tools/rkutl/dump_format.h"

namespace rockeeper::rkutl {

struct DumpHeader {
  std::string source;
  int64_t last_applied_zxid = 0;
  int64_t current_epoch = 0;
  int64_t accepted_epoch = 0;
  std::string root = "/";
  int64_t max_depth = -1;
  // The whole tree: root "/" and no depth limit (restore needs this).
  bool complete() const { return root == "/" && max_depth < 0; }
};

// Everything up to and including `"nodes":[` and a newline.
std::string FormatDumpHead(const DumpHeader& header,
                           const std::vector<engine::SessionRecord>& sessions);
// The separator before every node line but the first, and the trailer.
inline constexpr char kDumpNodeSeparator[] = ",\n";
inline constexpr char kDumpTail[] = "\n]}\n";

struct DumpContents {
  DumpHeader header;
  std::vector<engine::SessionRecord> sessions;
  std::vector<NodeEntry> nodes;
};

// Parses a dump document. Errors name the line and column (and the node).
absl::StatusOr<DumpContents> ParseJsonDump(absl::string_view text);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_JSON_DUMP_H_
