#include "tests/tools/rkutl_test_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

extern char** environ;

namespace rockeeper::rkutl::testing {
namespace {

namespace fs = std::filesystem;
using engine::CreateRequest;
using engine::RequestContext;
using engine::ZkError;
using engine::testing::Create;
using engine::testing::EngineHarness;

std::string RkutlBinary() {
  if (const char* env = std::getenv("RKUTL_BIN")) return env;
  return RKUTL_BIN;
}

std::string TempFile(const std::string& tag) {
  return (fs::temp_directory_path() /
          absl::StrCat("rkutl-test-", getpid(), "-", tag))
      .string();
}

class SampleBuilder {
 public:
  SampleBuilder(const std::string& data_dir, engine::PrepOptions options)
      : h_(data_dir + "/state", options), store_(data_dir + "/snapshots") {}

  void Ok(const engine::WriteRequest& req, const RequestContext& ctx = {}) {
    const ZkError e = h_.Err(req, ctx);
    EXPECT_EQ(e, ZkError::kOk) << "request #" << h_.txns().size();
  }

  RequestContext Session(int64_t id) {
    RequestContext ctx;
    ctx.session_id = id;
    Ok(engine::CreateSessionRequest{30000, absl::StrCat("pw-", id)}, ctx);
    return ctx;
  }

  void Snapshot(SampleDataDir* out) {
    auto snap = store_.Create(h_.db());
    ASSERT_TRUE(snap.ok()) << snap.status();
    out->snapshot_zxids.push_back(snap->zxid);
  }

  void SetQuota(const std::string& path) {
    Ok(Create("/zookeeper/quota" + path));
    Ok(Create("/zookeeper/quota" + path + "/zookeeper_stats",
              "count=0,bytes=0"));
    Ok(Create("/zookeeper/quota" + path + "/zookeeper_limits",
              "count=100,bytes=-1"));
  }

  EngineHarness& h() { return h_; }

 private:
  EngineHarness h_;
  engine::SnapshotStore store_;
};

void BuildTree(SampleBuilder& b, SampleDataDir* out) {
  using engine::SetDataRequest;
  out->live_session = 0x1000000000001;
  out->closed_session = 0x1000000000002;
  const RequestContext live = b.Session(out->live_session);
  const RequestContext closed = b.Session(out->closed_session);
  b.Ok(Create("/app", "hello"));
  b.Ok(SetDataRequest{"/app", "hello v2", -1});
  b.Ok(SetDataRequest{"/app", "hello v3", 1});
  b.Ok(Create("/app/config", std::string("\x00\x01\xff\xfe binary", 11)));
  b.Ok(
      Create("/app/\xc3\xbcnicode", "h\xc3\xa9llo \xe2\x9c\x93\nline2\t\"q\""));
  b.Ok(Create("/app/big", std::string(5000, 'b')));
  CreateRequest null_data = Create("/app/null");  // ZooKeeper's null data
  null_data.data_null = true;
  b.Ok(null_data);
  for (int i = 0; i < 3; ++i) {
    b.Ok(Create("/app/seq-", absl::StrCat("s", i),
                engine::kPersistentSequential));
  }
  b.Ok(Create("/app/tmp"));
  b.Ok(engine::DeleteRequest{"/app/tmp", -1});
  b.Ok(Create("/app/e1", "eph", engine::kEphemeral), live);
  b.Ok(Create("/app/e2", "", engine::kEphemeral), closed);
  b.Ok(Create("/app/e3-", "", engine::kEphemeralSequential), closed);
  b.Ok(Create("/c", "", engine::kContainer));
  b.Ok(Create("/c/x", "in container"));
  CreateRequest ttl = Create("/t", "ttl", engine::kPersistentWithTtl);
  ttl.ttl_ms = 60000;
  b.Ok(ttl);
  CreateRequest secure = Create("/secure", "s");
  secure.acl = {engine::MakeAcl(engine::perms::kAll, "digest",
                                engine::DigestId("bob:pw")),
                engine::MakeAcl(engine::perms::kRead, "world", "anyone")};
  b.Ok(secure);
  b.Ok(engine::SetAclRequest{
      "/secure",
      {engine::MakeAcl(engine::perms::kRead | engine::perms::kWrite, "world",
                       "anyone")},
      -1});
  b.Ok(engine::SetAclRequest{"/", engine::OpenAclUnsafe(), -1});
  b.Ok(SetDataRequest{"/", "root data", -1});
  b.Ok(engine::MultiRequest{{Create("/m1", "one"), Create("/m1/child"),
                             Create("/m2", "two"),
                             SetDataRequest{"/app", "multi", -1}}});
  b.SetQuota("/app");
  b.Ok(Create("/app/q1", "counted"));
  b.Ok(SetDataRequest{"/app/q1", "counted more", -1});
  b.Ok(Create("/wide"));
  for (int i = 0; i < 30; ++i) b.Ok(Create(absl::StrCat("/wide/n", i), "w"));
  b.Ok(engine::CloseSessionRequest{}, closed);
}

}  // namespace

RunResult RunRkutl(const std::vector<std::string>& args,
                   const std::string& stdin_path) {
  static int counter = 0;
  const std::string out_path = TempFile(absl::StrCat(++counter, ".out"));
  const std::string err_path = TempFile(absl::StrCat(counter, ".err"));
  const std::string bin = RkutlBinary();
  std::vector<std::string> argv_s = {bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY,
                                   0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  RunResult result;
  const int rc =
      posix_spawn(&pid, bin.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot run " << bin << ": " << strerror(rc);
    return result;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else {
    result.exit_code = 128 + WTERMSIG(status);  // a crash
  }
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  fs::remove(out_path);
  fs::remove(err_path);
  return result;
}

SampleDataDir BuildSampleDataDir(const std::string& data_dir, int snapshots,
                                 uint64_t segment_bytes) {
  SampleDataDir out;
  out.data_dir = data_dir;
  fs::create_directories(data_dir);
  out.log_dir = data_dir + "/log";
  std::vector<engine::Txn> txns;
  {
    engine::PrepOptions options;
    options.extended_types_enabled = true;
    options.skip_acl = true;
    SampleBuilder b(data_dir, options);
    BuildTree(b, &out);
    for (int i = 0; i < snapshots; ++i) {
      for (int k = 0; k < 5; ++k) {
        b.Ok(Create(absl::StrCat("/gen", i, "-", k), std::string(50, 'g')));
      }
      b.Snapshot(&out);
    }
    txns = b.h().txns();
    out.last_zxid = b.h().db().last_applied_zxid();
  }
  engine::TxnLogOptions o;
  o.dir = out.log_dir;
  o.segment_max_bytes = segment_bytes;
  o.preallocate_bytes = 1024;
  o.sync = false;
  auto log = engine::TxnLog::Open(o);
  EXPECT_TRUE(log.ok()) << log.status();
  for (const engine::Txn& t : txns) {
    EXPECT_TRUE((*log)->Append(t.header().zxid(), t.SerializeAsString()).ok());
  }
  out.txns = txns.size();
  return out;
}

std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      files[fs::relative(e.path(), dir).string()] = ReadFile(e.path().string());
    }
  }
  return files;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

std::vector<engine::TxnLogSegmentInfo> Segments(const std::string& log_dir) {
  auto reader = engine::TxnLogReader::Open(log_dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  return reader.ok() ? (*reader)->segments()
                     : std::vector<engine::TxnLogSegmentInfo>{};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

}  // namespace rockeeper::rkutl::testing
