// Engine micro-benchmarks (Google Benchmark): apply throughput by batch size,
// Prep+Apply, point reads and child listing on a 1M-znode tree.
//   build/tests/bench/engine_bench [--benchmark_filter=...]
// RK_BENCH_NODES overrides the tree size (default 1000000).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/prep.h"
#include "engine/state_db.h"

namespace rockeeper::engine {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(absl::string_view name) {
  const fs::path dir =
      fs::temp_directory_path() /
      absl::StrCat("rk-bench-", getpid(), "-", std::string(name));
  fs::remove_all(dir);
  return dir.string();
}

std::unique_ptr<StateDb> OpenDb(const std::string& dir) {
  StateDbOptions o;
  o.path = dir;
  auto db = StateDb::Open(o);
  if (!db.ok()) {
    std::fprintf(stderr, "open: %s\n", db.status().ToString().c_str());
    std::abort();
  }
  return *std::move(db);
}

// A create txn of `path` under a parent that will have `parent_children`.
Txn CreateTxn(int64_t zxid, const std::string& path, int32_t parent_children,
              size_t value_bytes) {
  Txn t;
  t.mutable_header()->set_zxid(zxid);
  t.mutable_header()->set_time_ms(1700000000000 + zxid);
  t.mutable_header()->set_type(record::v1::TXN_CREATE);
  auto* c = t.mutable_create();
  c->set_path(path);
  c->set_data(std::string(value_bytes, 'v'));
  *c->add_acl() = MakeAcl(perms::kAll, "world", "anyone");
  c->set_parent_cversion(parent_children);
  c->set_parent_num_children(parent_children);
  return t;
}

void Must(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::abort();
  }
}

// Apply of create txns (100-byte values) in batches of range(0).
void BM_ApplyCreate(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const std::string dir = FreshDir(absl::StrCat("apply", batch));
  auto db = OpenDb(dir);
  Must(db->Apply({CreateTxn(1, "/b", 2, 0)}, nullptr));
  int64_t zxid = 2;
  int32_t children = 0;
  std::vector<Txn> txns(batch);
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < batch; ++i) {
      ++children;
      txns[i] = CreateTxn(zxid, absl::StrCat("/b/n", zxid), children, 100);
      ++zxid;
    }
    state.ResumeTiming();
    Must(db->Apply(txns, nullptr));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch));
  state.counters["txns/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * batch),
                         benchmark::Counter::kIsRate);
  db.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_ApplyCreate)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->UseRealTime();

// Prep (validation against state + overlay) followed by Apply, batch 100.
void BM_PrepApplyCreate(benchmark::State& state) {
  const std::string dir = FreshDir("prepapply");
  auto db = OpenDb(dir);
  Prep prep(db.get(), {});
  RequestContext ctx;
  CreateRequest base;
  base.acl = OpenAclUnsafe();
  base.path = "/p";
  int64_t zxid = 1;
  auto first = prep.Prepare(ctx, base, zxid++, 1);
  Must(db->Apply({*first->txn}, nullptr));
  prep.OnApplied(1);
  base.data = std::string(100, 'v');
  std::vector<Txn> txns;
  for (auto _ : state) {
    txns.clear();
    for (int i = 0; i < 100; ++i) {
      base.path = absl::StrCat("/p/n", zxid);
      auto out = prep.Prepare(ctx, base, zxid, 1);
      if (!out.ok() || !out->txn) std::abort();
      txns.push_back(*std::move(out->txn));
      ++zxid;
    }
    Must(db->Apply(txns, nullptr));
    prep.OnApplied(zxid - 1);
  }
  state.counters["txns/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * 100),
                         benchmark::Counter::kIsRate);
  db.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_PrepApplyCreate)->UseRealTime();

// A tree of N znodes: /t/p<i> parents with 1000 children c<j> each.
class BigTree {
 public:
  static BigTree& Get() {
    static BigTree* tree = new BigTree();
    return *tree;
  }
  StateDb& db() { return *db_; }
  int64_t nodes() const { return nodes_; }

 private:
  BigTree() {
    const char* env = std::getenv("RK_BENCH_NODES");
    nodes_ = env ? std::atoll(env) : 1000000;
    dir_ = FreshDir("bigtree");
    db_ = OpenDb(dir_);
    int64_t zxid = 1;
    const int64_t parents = (nodes_ + 999) / 1000;
    std::vector<Txn> batch;
    batch.push_back(CreateTxn(zxid++, "/t", 2, 0));
    for (int64_t p = 0; p < parents; ++p) {
      batch.push_back(CreateTxn(zxid++, absl::StrCat("/t/p", p),
                                static_cast<int32_t>(p + 1), 0));
      for (int32_t c = 0; c < 1000; ++c) {
        batch.push_back(
            CreateTxn(zxid++, absl::StrCat("/t/p", p, "/c", c), c + 1, 100));
      }
      Must(db_->Apply(batch, nullptr));
      batch.clear();
    }
    Must(db_->Flush());
    std::atexit([] { fs::remove_all(Get().dir_); });
  }
  std::string dir_;
  std::unique_ptr<StateDb> db_;
  int64_t nodes_ = 0;
};

// Gets of random children c<k % 1000> of /t/p<k / 1000>, k < `keys`.
void GetRandomChildren(benchmark::State& state, BigTree& tree, int64_t keys,
                       std::mt19937_64& rng) {
  const int64_t parents = (tree.nodes() + 999) / 1000;
  for (auto _ : state) {
    const int64_t k = static_cast<int64_t>(rng() % static_cast<uint64_t>(keys));
    auto node = tree.db().GetZnode(
        absl::StrCat("/t/p", (k / 1000) % parents, "/c", k % 1000));
    if (!node.ok()) std::abort();
    benchmark::DoNotOptimize(node->data.data());
  }
}

void BM_GetZnodeRandom(benchmark::State& state) {
  BigTree& tree = BigTree::Get();
  const int64_t parents = (tree.nodes() + 999) / 1000;
  std::mt19937_64 rng(42);
  // Hot set of range(0) keys: 0 = the whole tree.
  const int64_t hot = state.range(0) == 0 ? parents * 1000 : state.range(0);
  GetRandomChildren(state, tree, hot, rng);
  state.counters["nodes"] = static_cast<double>(tree.nodes());
}
BENCHMARK(BM_GetZnodeRandom)->Arg(10000)->Arg(0);

// Random gets of flushed znodes while the memtable holds 100k other ones (a
// set's Prep read of a cold key under a write load): each get searches the
// memtable, then the SST.
void BM_GetZnodeBehindMemtable(benchmark::State& state) {
  BigTree& tree = BigTree::Get();
  const int64_t parents = (tree.nodes() + 999) / 1000;
  static const bool filled = [&] {
    int64_t zxid = tree.nodes() * 2 + 10;
    std::vector<Txn> batch;
    for (int i = 0; i < 100000; ++i) {
      batch.push_back(CreateTxn(
          zxid++, absl::StrCat("/t/p", i % parents, "/d", i), 1, 100));
      if (batch.size() == 1000) {
        Must(tree.db().Apply(batch, nullptr));
        batch.clear();
      }
    }
    return true;
  }();
  benchmark::DoNotOptimize(filled);
  std::mt19937_64 rng(43);
  GetRandomChildren(state, tree, parents * 1000, rng);
}
BENCHMARK(BM_GetZnodeBehindMemtable);

void BM_ListChildren1k(benchmark::State& state) {
  BigTree& tree = BigTree::Get();
  std::vector<std::string> names;
  names.reserve(1000);
  for (auto _ : state) {
    names.clear();
    Must(tree.db().ListChildren("/t/p7", &names));
    if (names.size() != 1000) std::abort();
  }
}
BENCHMARK(BM_ListChildren1k)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace rockeeper::engine

BENCHMARK_MAIN();
