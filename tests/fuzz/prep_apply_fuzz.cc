// Fuzz target: arbitrary request sequences (decoded from the input: op,
// path from a hostile alphabet, flags, version, ACL choice, session) through
// Prep and Apply on a real state DB. Invariants:
//   * Prep never crashes and answers every request;
//   * a txn Prep accepted always applies (Apply never rejects it);
//   * after each applied txn, every parent it touched has numChildren equal
//     to the number of children a listing returns.
// Each input works under its own root (/fuzz/f<n>) of one DB per process.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/path_utils.h"
#include "engine/prep.h"
#include "engine/state_db.h"

namespace {

using namespace rockeeper::engine;

struct Env {
  std::string dir;
  std::unique_ptr<StateDb> db;
  std::unique_ptr<Prep> prep;
  int64_t zxid = 1;
  int64_t input = 0;
};

Env& GetEnv() {
  static Env* env = [] {
    auto* e = new Env();
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "rk-fuzz-prep-XXXXXX").string();
    e->dir = mkdtemp(tmpl.data());
    StateDbOptions o;
    o.path = e->dir + "/state";
    o.block_cache_bytes = 4 << 20;
    o.write_buffer_bytes = 1 << 20;
    auto db = StateDb::Open(o);
    if (!db.ok()) std::abort();
    e->db = *std::move(db);
    e->prep = std::make_unique<Prep>(
        e->db.get(), PrepOptions{.extended_types_enabled = true,
                                 .enforce_quota = true});
    std::atexit([] {
      Env& env = GetEnv();
      env.prep.reset();
      env.db.reset();
      std::filesystem::remove_all(env.dir);
    });
    return e;
  }();
  return *env;
}

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::string Path(const std::string& root) {
    static const std::string kParts[] = {
        "a", "b", "/", ".", "..", "", "\xC3\xA9", std::string("\0", 1),
        "zookeeper", "x-", "\x01", "\xEF\xBF\xBF"};
    std::string p = root;
    const int n = Byte() % 5;
    for (int i = 0; i < n; ++i) {
      const uint8_t b = Byte();
      p += (b & 0x80) ? "" : "/";
      p += kParts[b % 12];
    }
    if (Byte() % 16 == 0) p = kParts[Byte() % 12];  // sometimes no root
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

WriteRequest Decode(Input& in, const std::string& root) {
  const uint8_t op = in.Byte();
  const int32_t version = static_cast<int32_t>(in.Byte() % 4) - 1;
  const AclVector acl =
      (in.Byte() % 8 == 0) ? AclVector{MakeAcl(1, "world", "anyone")}
                           : OpenAclUnsafe();
  switch (op % 7) {
    case 0:
    case 1: {
      CreateRequest c;
      c.path = in.Path(root);
      c.data = std::string(in.Byte() % 32, 'd');
      c.acl = acl;
      c.flags = static_cast<int32_t>(in.Byte() % 9) - 1;
      c.ttl_ms = (in.Byte() % 3 == 0) ? -1 : in.Byte();
      return c;
    }
    case 2:
      return DeleteRequest{in.Path(root), version};
    case 3:
      return SetDataRequest{in.Path(root), std::string(in.Byte(), 's'), version};
    case 4:
      return SetAclRequest{in.Path(root), acl, version};
    case 5: {
      MultiRequest m;
      const int n = in.Byte() % 4;
      for (int i = 0; i < n; ++i) {
        CreateRequest c;
        c.path = in.Path(root);
        c.acl = OpenAclUnsafe();
        c.flags = in.Byte() % 4;
        if (in.Byte() % 2) {
          m.ops.push_back(c);
        } else {
          m.ops.push_back(DeleteRequest{in.Path(root), version});
        }
      }
      return m;
    }
    default:
      return DeleteContainerRequest{in.Path(root)};
  }
}

void CheckParent(StateDb& db, const std::string& path) {
  if (!IsValidPath(path) || path == "/") return;
  const std::string parent(ParentPath(path));
  absl::StatusOr<Znode> p = db.GetZnode(parent);
  if (!p.ok()) return;
  std::vector<std::string> kids;
  if (!db.ListChildren(parent, &kids).ok()) std::abort();
  if (static_cast<size_t>(p->num_children) != kids.size()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Env& env = GetEnv();
  if (env.input == 0) {  // the parent of all input roots
    CreateRequest parent;
    parent.path = "/fuzz";
    parent.acl = OpenAclUnsafe();
    auto made = env.prep->Prepare({}, parent, env.zxid, 1);
    if (!made.ok() || !made->txn) std::abort();
    if (!env.db->Apply({*made->txn}, nullptr).ok()) std::abort();
    env.prep->OnApplied(env.zxid++);
  }
  // Inputs may change "/" (root-less paths) but never reach "/fuzz".
  const std::string root = absl::StrCat("/fuzz/f", env.input++);
  RequestContext ctx;
  // The input's root, so its requests have somewhere to go.
  CreateRequest mk;
  mk.path = root;
  mk.acl = OpenAclUnsafe();
  auto made = env.prep->Prepare(ctx, mk, env.zxid, 1);
  if (!made.ok() || !made->txn) {
    std::fprintf(stderr, "root %s: %s err %d\n", root.c_str(),
                 made.status().ToString().c_str(),
                 made.ok() ? static_cast<int>(made->err) : 0);
    std::abort();
  }
  if (!env.db->Apply({*made->txn}, nullptr).ok()) std::abort();
  env.prep->OnApplied(env.zxid++);

  Input in(data, size);
  for (int i = 0; i < 64 && !in.empty(); ++i) {
    const WriteRequest req = Decode(in, root);
    auto out = env.prep->Prepare(ctx, req, env.zxid, 1000 + env.zxid);
    if (!out.ok()) std::abort();  // the DB is healthy: no I/O errors
    if (!out->txn) continue;
    if (!env.db->Apply({*out->txn}, nullptr).ok()) std::abort();
    env.prep->OnApplied(env.zxid++);
    const Txn& t = *out->txn;
    if (t.has_create()) CheckParent(*env.db, t.create().path());
    if (t.has_delete_()) CheckParent(*env.db, t.delete_().path());
  }
  return 0;
}
