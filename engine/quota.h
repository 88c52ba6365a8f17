// ZooKeeper quotas: /zookeeper/quota/<path>/zookeeper_limits holds the limits
// of the subtree at <path>, /zookeeper/quota/<path>/zookeeper_stats its usage
// (node count including <path> itself, and data bytes), both as StatsTrack
// text: "count=N,bytes=M[,countHardLimit=H,byteHardLimit=B]".
//
// Usage is charged to the deepest quota root above a changed node (as
// ZooKeeper's DataTree.getMaxPrefixWithQuota). Soft limits (count, bytes) are
// advisory; hard limits reject writes with QUOTAEXCEEDED when enforcement is
// on (zookeeper.enforceQuota).
#ifndef ROCKEEPER_ENGINE_QUOTA_H_
#define ROCKEEPER_ENGINE_QUOTA_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace rockeeper::engine {

inline constexpr char kQuotaRootPath[] = "/zookeeper/quota";
inline constexpr char kQuotaLimitsNode[] = "zookeeper_limits";
inline constexpr char kQuotaStatsNode[] = "zookeeper_stats";

struct StatsTrack {
  int64_t count = -1;
  int64_t bytes = -1;
  int64_t count_hard_limit = -1;
  int64_t byte_hard_limit = -1;
};

// Parses StatsTrack text; nullopt if malformed. Unknown keys are ignored.
std::optional<StatsTrack> ParseStatsTrack(absl::string_view text);
// "count=N,bytes=M", plus the hard limits when set (>= 0).
std::string FormatStatsTrack(const StatsTrack& s);

std::string QuotaLimitsPath(absl::string_view root);
std::string QuotaStatsPath(absl::string_view root);
// For "/zookeeper/quota/<root>/zookeeper_limits" (or _stats, per `node`)
// returns <root>; nullopt for any other path.
std::optional<std::string> QuotaRootOf(absl::string_view path,
                                       absl::string_view node);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_QUOTA_H_
