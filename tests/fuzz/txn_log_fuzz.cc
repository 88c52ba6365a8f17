// Fuzz target: the txn log readers (TxnLogReader, TxnLog::Open recovery and
// iteration) on arbitrary segment files. The first input byte picks a mode:
//   even: the rest is a segment body after a valid file header;
//   odd:  the rest is cut into records that get correct headers and CRCs,
//         then one byte (chosen by the input) is flipped or the file cut,
//         so valid-record paths and damage detection are both reached.
// Invariants: no crash, no hang, and TxnLog::Open either fails with
// DataLoss or yields a log whose iteration returns increasing zxids.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/crc32c.h"
#include "engine/txn_log.h"

namespace {

namespace fs = std::filesystem;
using rockeeper::engine::Crc32c;
using rockeeper::engine::Crc32cExtend;
using rockeeper::engine::Crc32cMask;

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>(v >> (8 * i)));
}

std::string Header() {
  std::string h("RKLOG\0\0\1", 8);
  PutU32(&h, rockeeper::engine::kTxnLogFormatVersion);
  PutU32(&h, 0);
  return h;
}

std::string Structured(const uint8_t* data, size_t size) {
  std::string file = Header();
  size_t pos = 0;
  int64_t zxid = 1;
  while (pos < size) {
    const size_t len = std::min<size_t>(data[pos] % 64, size - pos - 1);
    ++pos;
    std::string payload(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
    char zx[8];
    for (int i = 0; i < 8; ++i) zx[i] = static_cast<char>(zxid >> (8 * i));
    uint32_t crc = Crc32c(zx, 8);
    crc = Crc32cExtend(crc, payload.data(), payload.size());
    PutU32(&file, static_cast<uint32_t>(payload.size()));
    PutU32(&file, Crc32cMask(crc));
    PutU64(&file, static_cast<uint64_t>(zxid));
    file += payload;
    ++zxid;
  }
  if (size > 2 && file.size() > 16) {
    const size_t at = 16 + (data[0] * 131u + data[size - 1]) % (file.size() - 16);
    if (data[size - 1] & 1) {
      file[at] = static_cast<char>(file[at] ^ 0x41);
    } else if (data[size - 1] & 2) {
      file.resize(at);
    }
  }
  return file;
}

const std::string& Dir() {
  static const std::string* dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "rk-fuzz-log-XXXXXX").string();
    auto* d = new std::string(mkdtemp(tmpl.data()));
    std::atexit([] { fs::remove_all(Dir()); });
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string file =
      (data[0] & 1) ? Structured(data + 1, size - 1)
                    : Header() + std::string(reinterpret_cast<const char*>(data + 1),
                                             size - 1);
  const std::string dir = Dir() + "/log";
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream out(dir + "/log.0000000000000001", std::ios::binary);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  {
    auto reader = rockeeper::engine::TxnLogReader::Open(dir, 1 << 16);
    if (reader.ok()) {
      auto it = (*reader)->NewIterator(0);
      for (int n = 0; it->Valid() && n < 100000; ++n) it->Next();
    }
  }
  rockeeper::engine::TxnLogOptions options;
  options.dir = dir;
  options.max_record_bytes = 1 << 16;
  options.preallocate_bytes = 4096;
  options.sync = false;
  auto log = rockeeper::engine::TxnLog::Open(options);
  if (!log.ok()) return 0;
  int64_t last = 0;
  auto it = (*log)->NewIterator(0);
  for (int n = 0; it->Valid() && n < 100000; ++n, it->Next()) {
    if (it->zxid() <= last) std::abort();  // must be strictly increasing
    last = it->zxid();
  }
  if ((*log)->Append((*log)->last_zxid() + 1, "x").ok() == false) std::abort();
  return 0;
}
