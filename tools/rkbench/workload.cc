#include "tools/rkbench/workload.h"

#include <cstdio>

namespace rockeeper::rkbench {
namespace {

void AppendNum(std::string* out, char prefix, uint64_t n) {
  char buf[24];
  int len = std::snprintf(buf, sizeof(buf), "/%c%llu", prefix,
                          static_cast<unsigned long long>(n));
  out->append(buf, static_cast<size_t>(len));
}

constexpr uint64_t kTagBlock = 1;
constexpr uint64_t kTagEphemeral = 2;
constexpr int kBlocksKept = 16;
constexpr int kEphemeralsKept = 16;

}  // namespace

std::unique_ptr<Workload> Workload::Make(const Options& options,
                                         std::string* error) {
  static const char* const kNames[] = {"create", "set",      "get",
                                       "exists", "children", "delete",
                                       "multi",  "mix",      "clickhouse"};
  bool known = false;
  for (const char* n : kNames) known = known || options.workload == n;
  if (!known) {
    *error = "unknown workload '" + options.workload + "'";
    return nullptr;
  }
  if (options.sessions < 1 || options.keys < 1 || options.fanout < 1 ||
      options.tree_depth < 1 || options.tree_depth > 8 ||
      options.value_size < 0 || options.multi_ops < 1 || options.read_pct < 0 ||
      options.read_pct > 100 || options.wide_children < 0 ||
      options.root.empty() || options.root[0] != '/' ||
      options.root.back() == '/') {
    *error = "option out of range";
    return nullptr;
  }
  std::unique_ptr<Workload> w(new Workload(options));
  w->BuildSetup();
  return w;
}

Workload::Workload(const Options& options) : options_(options) {
  // Random bytes: repeated values would compress to nearly nothing in
  // RocksDB and flatter its disk and memory figures against ZooKeeper's.
  uint64_t x = 0x9E3779B97F4A7C15ULL ^ options_.seed;
  pool_.resize(kPoolSpan + static_cast<size_t>(options_.value_size));
  for (char& c : pool_) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c = static_cast<char>((x * 0x2545F4914F6CDD1DULL) >> 56);
  }
  const std::string& wl = options_.workload;
  uses_session_dirs_ = wl == "create" || wl == "multi" || wl == "clickhouse";
  uses_tree_ = !(wl == "create" || wl == "multi");
  uses_wide_ = wl == "clickhouse";
}

void Workload::BuildSetup() {
  const Options& o = options_;
  auto fixed = [this](const std::string& path) {
    phases_.push_back({1, "create " + path, false});
    phase_kinds_.push_back(PhaseKind::kFixed);
    fixed_paths_.push_back(path);
    phase_levels_.push_back(0);
  };
  // Parents of the root (e.g. "/a" for root "/a/b").
  for (size_t pos = o.root.find('/', 1); pos != std::string::npos;
       pos = o.root.find('/', pos + 1)) {
    fixed(o.root.substr(0, pos));
  }
  fixed(o.root);
  if (uses_tree_) {
    fixed(o.root + "/t");
    level_counts_.assign(static_cast<size_t>(o.tree_depth) + 1, 0);
    int64_t n = o.keys;
    for (int level = o.tree_depth; level >= 1; --level) {
      level_counts_[static_cast<size_t>(level)] = n;
      n = (n + o.fanout - 1) / o.fanout;
    }
    for (int level = 1; level <= o.tree_depth; ++level) {
      phases_.push_back({level_counts_[static_cast<size_t>(level)],
                         "tree level " + std::to_string(level), true});
      phase_kinds_.push_back(PhaseKind::kTreeLevel);
      fixed_paths_.emplace_back();
      phase_levels_.push_back(level);
    }
  }
  if (uses_wide_) {
    fixed(o.root + "/wide");
    phases_.push_back({o.wide_children, "wide parent children", true});
    phase_kinds_.push_back(PhaseKind::kWide);
    fixed_paths_.emplace_back();
    phase_levels_.push_back(0);
  }
  if (uses_session_dirs_) {
    fixed(o.root + "/s");
    fixed(o.root + "/s/" + o.run_tag);
    phases_.push_back({o.sessions, "session dirs", false});
    phase_kinds_.push_back(PhaseKind::kSessionDirs);
    fixed_paths_.emplace_back();
    phase_levels_.push_back(0);
  }
}

void Workload::SetupOp(size_t phase, int64_t i, Op* op) const {
  op->kind = Kind::kCreate;
  op->flags = 0;
  op->with_data = false;
  op->num_subs = 0;
  op->tag = 0;
  switch (phase_kinds_[phase]) {
    case PhaseKind::kFixed:
      op->path = fixed_paths_[phase];
      break;
    case PhaseKind::kTreeLevel:
      TreePath(phase_levels_[phase], i, &op->path);
      op->with_data = phase_levels_[phase] == options_.tree_depth;
      op->value_offset =
          static_cast<uint32_t>(static_cast<uint64_t>(i) * 2654435761u);
      break;
    case PhaseKind::kWide:
      op->path = options_.root + "/wide";
      AppendNum(&op->path, 'c', static_cast<uint64_t>(i));
      op->with_data = true;
      op->value_offset =
          static_cast<uint32_t>(static_cast<uint64_t>(i) * 2654435761u);
      break;
    case PhaseKind::kSessionDirs:
      SessionDir(static_cast<int>(i), &op->path);
      break;
  }
}

void Workload::TreePath(int level, int64_t index, std::string* out) const {
  out->assign(options_.root);
  out->append("/t");
  const int depth = options_.tree_depth;
  for (int m = 1; m <= level; ++m) {
    uint64_t idx = static_cast<uint64_t>(index);
    for (int k = 0; k < level - m; ++k)
      idx /= static_cast<uint64_t>(options_.fanout);
    AppendNum(out, m < depth ? 'p' : 'k', idx);
  }
}

void Workload::SessionDir(int session, std::string* out) const {
  out->assign(options_.root);
  out->append("/s/");
  out->append(options_.run_tag);
  AppendNum(out, 's', static_cast<uint64_t>(session));
}

uint64_t Workload::Rand(SessionState* s) const {
  // xorshift64*
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

void Workload::RandomKey(SessionState* s, std::string* out) const {
  TreePath(options_.tree_depth,
           static_cast<int64_t>(Rand(s) % static_cast<uint64_t>(options_.keys)),
           out);
}

void Workload::InitSession(SessionState* s, int index) const {
  s->index = index;
  s->rng = (options_.seed + 1) * 0x9E3779B97F4A7C15ULL +
           static_cast<uint64_t>(index) * 0xBF58476D1CE4E5B9ULL + 1;
  if (s->rng == 0) s->rng = 1;
  s->seq = 0;
  s->cursor = 0;
  s->blocks_done.clear();
  s->ephemerals_done.clear();
  s->ephemeral_seq = 0;
}

bool Workload::Next(SessionState* s, Op* op) {
  const Options& o = options_;
  const std::string& wl = o.workload;
  op->flags = 0;
  op->with_data = false;
  op->num_subs = 0;
  op->tag = 0;
  op->value_offset = static_cast<uint32_t>(Rand(s));
  auto set_sub = [this, s, op](int i, Kind kind, int flags,
                               bool data) -> std::string* {
    if (op->subs.size() <= static_cast<size_t>(i))
      op->subs.resize(static_cast<size_t>(i) + 1);
    SubOp& sub = op->subs[static_cast<size_t>(i)];
    sub.kind = kind;
    sub.flags = flags;
    sub.with_data = data;
    sub.value_offset = static_cast<uint32_t>(Rand(s));
    return &sub.path;
  };
  if (wl == "create") {
    op->kind = Kind::kCreate;
    op->with_data = true;
    SessionDir(s->index, &op->path);
    AppendNum(&op->path, 'n', s->seq++);
  } else if (wl == "set") {
    op->kind = Kind::kSetData;
    op->with_data = true;
    RandomKey(s, &op->path);
  } else if (wl == "get") {
    op->kind = Kind::kGetData;
    RandomKey(s, &op->path);
  } else if (wl == "exists") {
    op->kind = Kind::kExists;
    RandomKey(s, &op->path);
  } else if (wl == "children") {
    op->kind = Kind::kGetChildren;
    if (o.tree_depth >= 2) {
      TreePath(o.tree_depth - 1,
               static_cast<int64_t>(
                   Rand(s) %
                   static_cast<uint64_t>(
                       level_counts_[static_cast<size_t>(o.tree_depth - 1)])),
               &op->path);
    } else {
      op->path = o.root + "/t";
    }
  } else if (wl == "delete") {
    uint64_t key = static_cast<uint64_t>(s->index) +
                   s->cursor * static_cast<uint64_t>(o.sessions);
    if (key >= static_cast<uint64_t>(o.keys)) return false;
    ++s->cursor;
    op->kind = Kind::kDelete;
    TreePath(o.tree_depth, static_cast<int64_t>(key), &op->path);
  } else if (wl == "multi") {
    op->kind = Kind::kMulti;
    op->num_subs = o.multi_ops;
    for (int i = 0; i < o.multi_ops; ++i) {
      std::string* p = set_sub(i, Kind::kCreate, 0, true);
      SessionDir(s->index, p);
      AppendNum(p, 'n', s->seq++);
    }
  } else if (wl == "mix") {
    bool read = static_cast<int>(Rand(s) % 100) < o.read_pct;
    op->kind = read ? Kind::kGetData : Kind::kSetData;
    op->with_data = !read;
    RandomKey(s, &op->path);
  } else {  // clickhouse
    int r = static_cast<int>(Rand(s) % 100);
    if (r < 35) {
      // An insert into a replicated table: block id, log entry, and the
      // cleanup of an old block id, in one multi.
      op->kind = Kind::kMulti;
      uint64_t block = s->seq++;
      op->tag = (kTagBlock << 56) | block;
      std::string* p = set_sub(0, Kind::kCreate, 0, true);
      SessionDir(s->index, p);
      AppendNum(p, 'b', block);
      p = set_sub(1, Kind::kCreate, kSequential, true);
      SessionDir(s->index, p);
      p->append("/log-");
      op->num_subs = 2;
      if (s->blocks_done.size() > kBlocksKept) {
        p = set_sub(2, Kind::kDelete, 0, false);
        SessionDir(s->index, p);
        AppendNum(p, 'b', s->blocks_done.front());
        s->blocks_done.pop_front();
        op->num_subs = 3;
      }
    } else if (r < 60) {
      op->kind = Kind::kGetChildren;
      op->path = o.root + "/wide";
    } else if (r < 85) {
      op->kind = Kind::kGetData;
      RandomKey(s, &op->path);
    } else if (s->ephemerals_done.size() <= kEphemeralsKept) {
      // Ephemeral nodes (ClickHouse's replica liveness and locks), kept at a
      // steady count per session: created until kEphemeralsKept exist, then
      // one deleted for each one created.
      op->kind = Kind::kCreate;
      op->flags = kEphemeral;
      op->with_data = true;
      uint64_t e = s->ephemeral_seq++;
      op->tag = (kTagEphemeral << 56) | e;
      SessionDir(s->index, &op->path);
      AppendNum(&op->path, 'e', e);
    } else {
      op->kind = Kind::kDelete;
      SessionDir(s->index, &op->path);
      AppendNum(&op->path, 'e', s->ephemerals_done.front());
      s->ephemerals_done.pop_front();
    }
  }
  return true;
}

void Workload::Complete(SessionState* s, uint64_t tag, int err) {
  if (err != 0 || tag == 0) return;
  uint64_t kind = tag >> 56;
  uint64_t seq = tag & ((uint64_t{1} << 56) - 1);
  if (kind == kTagBlock) s->blocks_done.push_back(seq);
  if (kind == kTagEphemeral) s->ephemerals_done.push_back(seq);
}

}  // namespace rockeeper::rkbench
