// Helpers for the rkutl tests: run the real binary, build sample data dirs
// with the engine APIs, and fingerprint directories to prove that read-only
// commands modify nothing.
#ifndef ROCKEEPER_TESTS_TOOLS_RKUTL_TEST_UTIL_H_
#define ROCKEEPER_TESTS_TOOLS_RKUTL_TEST_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/txn_log.h"

namespace rockeeper::rkutl::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs rkutl with `args`; stdin is `stdin_path` (not a terminal).
RunResult RunRkutl(const std::vector<std::string>& args,
                   const std::string& stdin_path = "/dev/null");

// A data dir built with Prep + Apply + TxnLog + SnapshotStore:
//   dataDir/state, dataDir/snapshots/snapshot.<zxid> x snapshots,
//   dataDir/log with small segments holding every txn.
struct SampleDataDir {
  std::string data_dir;
  std::string log_dir;
  std::vector<int64_t> snapshot_zxids;
  int64_t last_zxid = 0;
  int64_t live_session = 0;    // open, owns /app/e1
  int64_t closed_session = 0;  // closed (its ephemerals deleted)
  size_t txns = 0;
};

// Builds the sample tree (every node type, binary and UTF-8 data, ACLs,
// sequential nodes, deletes, multi, quotas, a closed session) under
// `data_dir`, taking `snapshots` snapshots along the way (the last one at the
// end), and writes the txn log in segments of about `segment_bytes`.
SampleDataDir BuildSampleDataDir(const std::string& data_dir, int snapshots,
                                 uint64_t segment_bytes = 4096);

// Every file under `dir` (relative path -> contents).
std::map<std::string, std::string> ReadTree(const std::string& dir);

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& contents);

// Segments of a log dir, via TxnLogReader.
std::vector<engine::TxnLogSegmentInfo> Segments(const std::string& log_dir);

// Splits text into lines (without the newlines).
std::vector<std::string> Lines(const std::string& text);

}  // namespace rockeeper::rkutl::testing

#endif  // ROCKEEPER_TESTS_TOOLS_RKUTL_TEST_UTIL_H_
