#include "tools/rkutl/tree_stats.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/path_utils.h"
#include "tools/rkutl/json.h"
#include "tools/rkutl/progress.h"

namespace rockeeper::rkutl {
namespace {

// Min-heap order: the smallest value (then the largest path) on top.
bool HeapLess(int64_t av, const std::string& ap, int64_t bv,
              const std::string& bp) {
  return av != bv ? av > bv : ap < bp;
}

}  // namespace

void TreeStats::Offer(std::vector<Ranked>* heap, int64_t value,
                      const std::string& path) const {
  auto cmp = [](const Ranked& a, const Ranked& b) {
    return HeapLess(a.value, a.path, b.value, b.path);
  };
  if (heap->size() < top_n_) {
    heap->push_back({value, path});
    std::push_heap(heap->begin(), heap->end(), cmp);
    return;
  }
  const Ranked& smallest = heap->front();
  if (!HeapLess(value, path, smallest.value, smallest.path)) return;
  std::pop_heap(heap->begin(), heap->end(), cmp);
  heap->back() = {value, path};
  std::push_heap(heap->begin(), heap->end(), cmp);
}

std::vector<TreeStats::Ranked> TreeStats::Sorted(std::vector<Ranked> heap) {
  std::sort(heap.begin(), heap.end(), [](const Ranked& a, const Ranked& b) {
    return HeapLess(a.value, a.path, b.value, b.path);
  });
  return heap;
}

void TreeStats::Add(const NodeEntry& e) {
  ++nodes_;
  const auto size = static_cast<int64_t>(e.node.data.size());
  data_bytes_ += size;
  const int64_t owner = e.node.ephemeral_owner;
  if (engine::IsContainerOwner(owner)) {
    ++container_;
  } else if (engine::IsTtlOwner(owner)) {
    ++ttl_;
  } else if (owner != 0) {
    ++ephemeral_;
    ++ephemerals_by_session_[owner];
  } else {
    ++persistent_;
  }
  const int depth = engine::PathDepth(e.path);
  if (depth > max_depth_ || deepest_.empty()) {
    max_depth_ = depth;
    deepest_ = e.path;
  }
  if (size > 0) Offer(&largest_, size, e.path);
  if (e.node.num_children > 0) Offer(&widest_, e.node.num_children, e.path);
}

int64_t TreeStats::EphemeralsOf(int64_t session_id) const {
  auto it = ephemerals_by_session_.find(session_id);
  return it == ephemerals_by_session_.end() ? 0 : it->second;
}

std::map<int64_t, int64_t> TreeStats::Orphans(
    const std::vector<engine::SessionRecord>& sessions) const {
  std::map<int64_t, int64_t> orphans = ephemerals_by_session_;
  for (const auto& s : sessions) orphans.erase(s.session_id());
  return orphans;
}

std::string TreeStats::ToText(
    const TreeStatsReport& r,
    const std::vector<engine::SessionRecord>& sessions) const {
  std::string out;
  absl::StrAppend(&out, "source: ", r.source, "\n");
  absl::StrAppend(&out, "last applied zxid: ", Hex(r.last_applied_zxid), "\n");
  absl::StrAppend(&out, "path: ", r.root, "\n");
  absl::StrAppendFormat(
      &out, "nodes: %d (persistent %d, ephemeral %d, container %d, ttl %d)\n",
      nodes_, persistent_, ephemeral_, container_, ttl_);
  absl::StrAppend(&out, "data bytes: ", data_bytes_, " (",
                  HumanBytes(static_cast<uint64_t>(data_bytes_)), ")\n");
  absl::StrAppend(&out, "max depth: ", max_depth_, " (", deepest_, ")\n");
  absl::StrAppend(&out, "\nlargest nodes (data bytes):\n");
  for (const Ranked& n : Sorted(largest_)) {
    absl::StrAppendFormat(&out, "  %10d  %s\n", n.value, n.path);
  }
  absl::StrAppend(&out, "\nwidest parents (children):\n");
  for (const Ranked& n : Sorted(widest_)) {
    absl::StrAppendFormat(&out, "  %10d  %s\n", n.value, n.path);
  }
  absl::StrAppend(&out, "\nsessions: ", sessions.size(), "\n");
  for (const auto& s : sessions) {
    absl::StrAppendFormat(&out, "  %-18s timeout %d ms, %d ephemerals\n",
                          Hex(s.session_id()), s.timeout_ms(),
                          EphemeralsOf(s.session_id()));
  }
  const std::map<int64_t, int64_t> orphans = Orphans(sessions);
  if (!orphans.empty()) {
    absl::StrAppend(&out, "\nephemerals of sessions without a record:\n");
    for (const auto& [owner, count] : orphans) {
      absl::StrAppendFormat(&out, "  %-18s %d ephemerals\n", Hex(owner), count);
    }
  }
  return out;
}

std::string TreeStats::ToJson(
    const TreeStatsReport& r,
    const std::vector<engine::SessionRecord>& sessions) const {
  std::string out = "{\"source\":";
  AppendJsonString(&out, r.source);
  absl::StrAppend(&out, ",\"lastAppliedZxid\":\"", Hex(r.last_applied_zxid),
                  "\",\"path\":");
  AppendJsonString(&out, r.root);
  absl::StrAppendFormat(&out,
                        ",\"nodes\":%d,\"persistent\":%d,\"ephemeral\":%d,"
                        "\"container\":%d,\"ttl\":%d,\"dataBytes\":%d,"
                        "\"maxDepth\":%d",
                        nodes_, persistent_, ephemeral_, container_, ttl_,
                        data_bytes_, max_depth_);
  auto ranked = [&](absl::string_view key, const std::vector<Ranked>& heap,
                    absl::string_view value_key) {
    absl::StrAppend(&out, ",\"", key, "\":[");
    const std::vector<Ranked> sorted = Sorted(heap);
    for (size_t i = 0; i < sorted.size(); ++i) {
      absl::StrAppend(&out, i > 0 ? "," : "",
                      "{\"path\":", JsonString(sorted[i].path), ",\"",
                      value_key, "\":", sorted[i].value, "}");
    }
    out.push_back(']');
  };
  ranked("largestNodes", largest_, "dataLength");
  ranked("widestParents", widest_, "numChildren");
  absl::StrAppend(&out, ",\"sessions\":[");
  for (size_t i = 0; i < sessions.size(); ++i) {
    absl::StrAppend(&out, i > 0 ? "," : "", "{\"sessionId\":\"",
                    Hex(sessions[i].session_id()),
                    "\",\"timeoutMs\":", sessions[i].timeout_ms(),
                    ",\"ephemerals\":", EphemeralsOf(sessions[i].session_id()),
                    "}");
  }
  absl::StrAppend(&out, "],\"orphanEphemerals\":[");
  bool first = true;
  for (const auto& [owner, count] : Orphans(sessions)) {
    absl::StrAppend(&out, first ? "" : ",", "{\"sessionId\":\"", Hex(owner),
                    "\",\"ephemerals\":", count, "}");
    first = false;
  }
  absl::StrAppend(&out, "]}\n");
  return out;
}

}  // namespace rockeeper::rkutl
