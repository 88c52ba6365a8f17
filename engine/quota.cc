#include "engine/quota.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rockeeper::engine {

std::optional<StatsTrack> ParseStatsTrack(absl::string_view text) {
  StatsTrack s;
  bool any = false;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv.second, &v)) return std::nullopt;
    const absl::string_view key = absl::StripAsciiWhitespace(kv.first);
    if (key == "count") {
      s.count = v;
    } else if (key == "bytes") {
      s.bytes = v;
    } else if (key == "countHardLimit") {
      s.count_hard_limit = v;
    } else if (key == "byteHardLimit") {
      s.byte_hard_limit = v;
    }
    any = true;
  }
  if (!any) return std::nullopt;
  return s;
}

std::string FormatStatsTrack(const StatsTrack& s) {
  std::string out = absl::StrCat("count=", s.count, ",bytes=", s.bytes);
  if (s.byte_hard_limit >= 0) {
    absl::StrAppend(&out, ",byteHardLimit=", s.byte_hard_limit);
  }
  if (s.count_hard_limit >= 0) {
    absl::StrAppend(&out, ",countHardLimit=", s.count_hard_limit);
  }
  return out;
}

std::string QuotaLimitsPath(absl::string_view root) {
  return absl::StrCat(kQuotaRootPath, root, "/", kQuotaLimitsNode);
}

std::string QuotaStatsPath(absl::string_view root) {
  return absl::StrCat(kQuotaRootPath, root, "/", kQuotaStatsNode);
}

std::optional<std::string> QuotaRootOf(absl::string_view path,
                                       absl::string_view node) {
  if (!absl::ConsumePrefix(&path, kQuotaRootPath)) return std::nullopt;
  if (!absl::ConsumeSuffix(&path, node) || !absl::ConsumeSuffix(&path, "/")) {
    return std::nullopt;
  }
  if (path.empty() || path[0] != '/') return std::nullopt;
  return std::string(path);
}

}  // namespace rockeeper::engine
