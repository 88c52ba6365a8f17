// Statistics of a znode tree for `rkutl snapshot stat`: counts by node type,
// data volume, depth, the largest nodes and widest parents, ephemerals per
// session.
#ifndef ROCKEEPER_TOOLS_RKUTL_TREE_STATS_H_
#define ROCKEEPER_TOOLS_RKUTL_TREE_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/state_db.h"
#include "tools/rkutl/dump_format.h"

namespace rockeeper::rkutl {

struct TreeStatsReport {
  std::string source;
  int64_t last_applied_zxid = 0;
  std::string root;
};

class TreeStats {
 public:
  explicit TreeStats(size_t top_n) : top_n_(top_n) {}

  void Add(const NodeEntry& entry);

  std::string ToText(const TreeStatsReport& report,
                     const std::vector<engine::SessionRecord>& sessions) const;
  std::string ToJson(const TreeStatsReport& report,
                     const std::vector<engine::SessionRecord>& sessions) const;

 private:
  struct Ranked {
    int64_t value;
    std::string path;
  };
  // Keeps the top_n_ largest values in a min-heap.
  void Offer(std::vector<Ranked>* heap, int64_t value,
             const std::string& path) const;
  static std::vector<Ranked> Sorted(std::vector<Ranked> heap);
  // Session owners with ephemerals but no session record.
  std::map<int64_t, int64_t> Orphans(
      const std::vector<engine::SessionRecord>& sessions) const;
  int64_t EphemeralsOf(int64_t session_id) const;

  const size_t top_n_;
  int64_t nodes_ = 0;
  int64_t data_bytes_ = 0;
  int64_t persistent_ = 0;
  int64_t ephemeral_ = 0;
  int64_t container_ = 0;
  int64_t ttl_ = 0;
  int64_t max_depth_ = 0;
  std::string deepest_;
  std::vector<Ranked> largest_;
  std::vector<Ranked> widest_;
  std::map<int64_t, int64_t> ephemerals_by_session_;
};

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_TREE_STATS_H_
