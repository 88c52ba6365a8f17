// rkbench workloads: what each session asks next. Protocol-neutral: an Op is
// encoded by the ZooKeeper wire driver or the gRPC driver.
//
// Thread-safety: a Workload is shared by all driver threads; Next() and
// Complete() for one session are only ever called by the thread that owns
// that session (per-session state lives in SessionState), and the shared
// parts are read-only or atomic.
#ifndef ROCKEEPER_TOOLS_RKBENCH_WORKLOAD_H_
#define ROCKEEPER_TOOLS_RKBENCH_WORKLOAD_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rockeeper::rkbench {

enum class Kind : uint8_t {
  kCreate,
  kDelete,
  kSetData,
  kGetData,
  kExists,
  kGetChildren,
  kMulti,  // sub-ops: kCreate / kDelete
  kPing,   // keeps an idle session alive; never counted
};

// ZooKeeper CreateMode flags.
inline constexpr int kEphemeral = 1;
inline constexpr int kSequential = 2;

struct SubOp {
  Kind kind = Kind::kCreate;
  int flags = 0;
  bool with_data = false;
  uint32_t value_offset = 0;  // see Workload::Value
  std::string path;
};

// Reused by the drivers (strings keep their capacity): no allocation per
// request in steady state.
struct Op {
  Kind kind = Kind::kGetData;
  int flags = 0;              // create
  bool with_data = false;     // create, setData: send the value
  uint32_t value_offset = 0;  // see Workload::Value
  std::string path;
  std::vector<SubOp> subs;  // multi; only the first `num_subs` are used
  int num_subs = 0;
  uint64_t tag = 0;  // handed back to Complete()
};

struct SessionState {
  int index = 0;
  uint64_t rng = 0;
  uint64_t seq = 0;     // per-session counter for unique names
  uint64_t cursor = 0;  // delete workload: next key
  // clickhouse mix: blocks and ephemerals whose create completed, oldest first.
  std::deque<uint64_t> blocks_done, ephemerals_done;
  uint64_t ephemeral_seq = 0;
};

struct Options {
  std::string workload = "get";
  std::string root = "/rkbench";
  int sessions = 16;
  int64_t keys = 10000;
  int fanout = 100;
  int tree_depth = 2;
  int value_size = 100;
  int multi_ops = 4;
  int read_pct = 90;
  int wide_children = 1000;
  uint64_t seed = 1;
  std::string run_tag;  // unique per run: names of nodes created by the run
};

// A phase of the untimed setup: `count` creates whose order does not
// matter (their parents were created by an earlier phase).
struct SetupPhase {
  int64_t count = 0;
  std::string description;
  // The tree and the wide parent (skipped by --no-setup); the rest (the
  // root and this run's session directories) is always created.
  bool data = false;
};

class Workload {
 public:
  // Validates the workload name; returns nullptr and sets *error otherwise.
  static std::unique_ptr<Workload> Make(const Options& options,
                                        std::string* error);

  const Options& options() const { return options_; }
  // The value sent by an op: value_size random bytes at `offset` of a random
  // pool, so values differ between nodes (RocksDB compresses repeats) without
  // an allocation per request.
  std::string_view Value(uint32_t offset) const {
    return std::string_view(pool_).substr(
        offset % kPoolSpan, static_cast<size_t>(options_.value_size));
  }
  static constexpr uint32_t kPoolSpan = 1 << 16;

  void InitSession(SessionState* s, int index) const;

  // The next timed op of session `s`; false when it has nothing more to do
  // (the delete workload running out of keys).
  bool Next(SessionState* s, Op* op);
  // `tag`: Op::tag of the completed op; `err`: its ZooKeeper code.
  void Complete(SessionState* s, uint64_t tag, int err);

  // Setup: phases run one after the other, each fully pipelined.
  const std::vector<SetupPhase>& setup_phases() const { return phases_; }
  // Fills `op` with create #i of phase `phase`.
  void SetupOp(size_t phase, int64_t i, Op* op) const;
  bool uses_tree() const { return uses_tree_; }

  // Exposed for tests and the setup: the path of tree node `index` at
  // `level` (1..tree_depth; level tree_depth holds the keys).
  void TreePath(int level, int64_t index, std::string* out) const;

 private:
  explicit Workload(const Options& options);
  void BuildSetup();
  void RandomKey(SessionState* s, std::string* out) const;
  void SessionDir(int session, std::string* out) const;
  uint64_t Rand(SessionState* s) const;

  Options options_;
  std::string pool_;  // kPoolSpan + value_size random bytes
  bool uses_tree_ = false;
  bool uses_session_dirs_ = false;
  bool uses_wide_ = false;
  std::vector<int64_t> level_counts_;  // [level] for 1..tree_depth
  std::vector<SetupPhase> phases_;
  // Phase kinds, parallel to phases_.
  enum class PhaseKind { kFixed, kTreeLevel, kSessionDirs, kWide };
  std::vector<PhaseKind> phase_kinds_;
  std::vector<std::string> fixed_paths_;  // PhaseKind::kFixed, by phase
  std::vector<int> phase_levels_;
};

}  // namespace rockeeper::rkbench

#endif  // ROCKEEPER_TOOLS_RKBENCH_WORKLOAD_H_
