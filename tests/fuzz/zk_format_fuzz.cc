// Fuzz target: the ZooKeeper file decoders of `rkutl import-zookeeper`
// (zk_format.h) and the DataTree model that applies what they decode
// (zk_tree.h). The first input byte picks a mode:
//   0: the rest is a whole snapshot file (ParseSnapshot into a ZkTree);
//   1: the rest is a txn log file body after a valid file header;
//   2: the rest is one log entry (DecodeTxnEntry);
//   3: the rest is cut into entries that get correct Adler-32 checksums and
//      end-of-record bytes, so the decoders see well-framed records and the
//      decoded txns are applied to a fresh tree (every op type, odd paths).
// Invariants: no crash, no hang, no unbounded allocation; a decoded tree
// can be turned into a dump.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/rkutl/zk_format.h"
#include "tools/rkutl/zk_import.h"
#include "tools/rkutl/zk_tree.h"

namespace {

using rockeeper::rkutl::zk::ZkTree;
namespace zk = rockeeper::rkutl::zk;

class Loader : public zk::SnapshotVisitor {
 public:
  explicit Loader(ZkTree* tree) : tree_(tree) {}
  absl::Status Session(int64_t id, int32_t timeout_ms) override {
    tree_->AddSession(id, timeout_ms);
    return absl::OkStatus();
  }
  absl::Status AclEntry(int64_t index,
                        rockeeper::engine::AclVector acl) override {
    return tree_->AddAclCacheEntry(index, std::move(acl));
  }
  absl::Status Node(std::string path, std::string data, bool data_null,
                    int64_t acl_index, const zk::StatPersisted& stat,
                    uint64_t) override {
    return tree_->AddSnapshotNode(std::move(path), std::move(data), data_null,
                                  acl_index, stat);
  }

 private:
  ZkTree* tree_;
};

void FreshTree(ZkTree* t) {
  zk::StatPersisted zero;
  (void)t->AddSnapshotNode("", "", false, -1, zero);
  (void)t->AddSnapshotNode("/zookeeper", "", false, -1, zero);
  (void)t->AddSnapshotNode("/zookeeper/quota", "", false, -1, zero);
  t->FinishSnapshot(0);
}

void PutBe(std::string* s, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i)
    s->push_back(static_cast<char>(v >> (8 * i)));
}

std::string LogHeader() {
  std::string h;
  PutBe(&h, static_cast<uint32_t>(zk::kLogMagic), 4);
  PutBe(&h, 2, 4);
  PutBe(&h, 0, 8);
  return h;
}

void ReadLog(const std::string& file, ZkTree* tree) {
  absl::StatusOr<zk::LogFileReader> reader =
      zk::LogFileReader::Open("log.1", file);
  if (!reader.ok()) return;
  for (int i = 0; i < 100000; ++i) {
    absl::StatusOr<std::optional<zk::Txn>> txn = reader->Next();
    if (!txn.ok() || !txn->has_value()) return;
    if (tree != nullptr) (void)tree->Apply(**txn);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      ZkTree tree;
      Loader loader(&tree);
      if (zk::ParseSnapshot("snapshot.0", rest, &loader).ok()) {
        tree.FinishSnapshot(0);
        std::vector<std::string> warnings;
        (void)rockeeper::rkutl::ZkTreeToDump(tree, &warnings);
      }
      break;
    }
    case 1:
      ReadLog(LogHeader() + rest, nullptr);
      break;
    case 2:
      (void)zk::DecodeTxnEntry("log.1", rest, 16);
      break;
    default: {
      // Entries of lengths taken from the input (1 byte each, then bytes).
      std::string file = LogHeader();
      size_t pos = 0;
      while (pos < rest.size()) {
        const size_t len = std::min<size_t>(static_cast<uint8_t>(rest[pos]) + 1,
                                            rest.size() - pos - 1);
        ++pos;
        const std::string entry = rest.substr(pos, len);
        pos += len;
        PutBe(&file, zk::Adler32(zk::kAdler32Init, entry), 8);
        PutBe(&file, entry.size(), 4);
        file += entry;
        file.push_back('B');
      }
      ZkTree tree;
      FreshTree(&tree);
      ReadLog(file, &tree);
      std::vector<std::string> warnings;
      (void)rockeeper::rkutl::ZkTreeToDump(tree, &warnings);
      break;
    }
  }
  return 0;
}
