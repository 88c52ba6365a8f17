// Integration tests of the C++ client library (rpc/client.h) against real
// `rockeeper` processes ($ROCKEEPER_BIN) on loopback ports. Each test starts
// its own server (tickTime=200, so sessions can expire fast) in a fresh data
// dir and kills it (by PID) at the end. No sleeps stand in for
// synchronization: waits poll with bounded deadlines.
#include "rpc/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"

extern char** environ;

namespace rockeeper::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

constexpr auto kWait = std::chrono::seconds(20);

// Polls `pred` every 10 ms until it holds or `timeout` passes.
bool PollUntil(const std::function<bool()>& pred,
               absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int i = 0; i < 100000; ++i) {
    if (pred()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/rk_client_test.XXXXXX");
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  const char* dir = mkdtemp(buf.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

// One rockeeper process with its own data dir and ports; restartable on the
// same port and data dir.
class ServerProcess {
 public:
  ServerProcess(std::string bin, std::string dir)
      : bin_(std::move(bin)), dir_(std::move(dir)), port_(FreePort()) {
    std::ofstream cfg(dir_ + "/zoo.cfg");
    cfg << "tickTime=200\n"
        << "dataDir=" << dir_ << "/data\n"
        << "clientPort=" << FreePort() << "\n"
        << "clientPortAddress=127.0.0.1\n"
        << "grpcPort=" << port_ << "\n"
        << "grpcPortAddress=127.0.0.1\n"
        << "admin.serverPort=" << FreePort() << "\n"
        << "admin.serverAddress=127.0.0.1\n";
  }
  ~ServerProcess() { Kill(SIGKILL); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // Starts the process and waits (bounded) until it answers Exists("/").
  ::testing::AssertionResult Start() {
    const std::string cfg = dir_ + "/zoo.cfg";
    const std::string log = dir_ + "/server.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<std::string> args = {bin_, "--config", cfg};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, bin_.c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure()
             << "posix_spawn " << bin_ << ": " << rc;
    }
    grpc::ChannelArguments chargs;
    chargs.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    chargs.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    chargs.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::Rockeeper::NewStub(grpc::CreateCustomChannel(
        address(), grpc::InsecureChannelCredentials(), chargs));
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (int i = 0; i < 1000 && absl::Now() < deadline; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << "rockeeper exited (status " << status << "): " << LogTail();
      }
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(300));
      v1::ExistsRequest req;
      req.set_path("/");
      v1::ExistsResponse resp;
      if (stub->Exists(&ctx, req, &resp).ok()) {
        return ::testing::AssertionSuccess();
      }
    }
    return ::testing::AssertionFailure()
           << "rockeeper not ready within 30 s: " << LogTail();
  }

  void Kill(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  std::string LogTail() const {
    std::ifstream in(dir_ + "/server.log");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

 private:
  const std::string bin_;
  const std::string dir_;
  const int port_;
  pid_t pid_ = -1;
};

// Records the events a watcher receives (thread-safe).
class EventLog {
 public:
  Watcher watcher() {
    return [this](const WatchEvent& e) {
      absl::MutexLock l(&mu_);
      events_.push_back(e);
    };
  }
  std::vector<WatchEvent> events() const {
    absl::MutexLock l(&mu_);
    return events_;
  }
  size_t size() const {
    absl::MutexLock l(&mu_);
    return events_.size();
  }
  bool WaitForCount(size_t n, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock l(&mu_);
    auto enough = [this, n] { return events_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  bool WaitForState(SessionState s,
                    absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock l(&mu_);
    auto seen = [this, s] {
      for (const WatchEvent& e : events_) {
        if (e.type == EventType::kNone && e.state == s) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }
  std::vector<SessionState> states() const {
    absl::MutexLock l(&mu_);
    std::vector<SessionState> out;
    for (const WatchEvent& e : events_) {
      if (e.type == EventType::kNone) out.push_back(e.state);
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<WatchEvent> events_ ABSL_GUARDED_BY(mu_);
};

// Returns once every event the server sent `c` before now has been
// dispatched: a callback-style call completes on the dispatcher thread
// after the events that precede its response.
void Flush(Client* c) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  c->ExistsAsync("/", nullptr, [done](absl::StatusOr<std::optional<Stat>>) {
    done->set_value();
  });
  ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
}

void ExpectZkError(const absl::Status& st, int32_t code, absl::StatusCode abs,
                   const std::string& prefix) {
  EXPECT_EQ(ZkErrorCode(st), code) << st;
  EXPECT_EQ(st.code(), abs) << st;
  EXPECT_THAT(std::string(st.message()), StartsWith(prefix)) << st;
  auto payload = st.GetPayload(kZkErrorPayloadKey);
  ASSERT_TRUE(payload.has_value()) << st;
  EXPECT_EQ(std::string(*payload), absl::StrCat(code));
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("ROCKEEPER_BIN");
    ASSERT_NE(bin, nullptr) << "set ROCKEEPER_BIN to the rockeeper binary";
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    server_ = std::make_unique<ServerProcess>(bin, dir_);
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    server_.reset();
    if (!dir_.empty() && !HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  std::unique_ptr<Client> NewClient(ClientOptions options = {}) {
    if (options.servers.empty()) options.servers = {server_->address()};
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ClientTest, CrudWithVersionsAndErrorCodes) {
  auto c = NewClient();
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c->session_id(), 0);
  EXPECT_EQ(c->state(), SessionState::kSyncConnected);

  absl::StatusOr<CreateResult> a = c->Create("/a", "v0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->path, "/a");
  EXPECT_EQ(a->stat.version, 0);
  EXPECT_GT(a->stat.czxid, 0);
  EXPECT_GE(c->last_zxid_seen(), a->stat.czxid);

  ExpectZkError(c->Create("/a", "x").status(), zk::kNodeExists,
                absl::StatusCode::kAlreadyExists, "NODEEXISTS (-110): /a");

  absl::StatusOr<DataResult> d = c->GetData("/a");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->data, "v0");
  EXPECT_EQ(d->stat.data_length, 2);

  absl::StatusOr<Stat> s = c->SetData("/a", "v1", 0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->version, 1);
  ExpectZkError(c->SetData("/a", "v2", 0).status(), zk::kBadVersion,
                absl::StatusCode::kFailedPrecondition, "BADVERSION (-103): /a");
  s = c->SetData("/a", "v2");  // any version
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->version, 2);

  absl::StatusOr<std::optional<Stat>> e = c->Exists("/a");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->version, 2);
  e = c->Exists("/nope");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->has_value());

  ExpectZkError(c->GetData("/nope").status(), zk::kNoNode,
                absl::StatusCode::kNotFound, "NONODE (-101): /nope");
  ExpectZkError(c->Create("/x/y", "").status(), zk::kNoNode,
                absl::StatusCode::kNotFound, "NONODE (-101): /x/y");
  ExpectZkError(c->Create("bad", "").status(), zk::kBadArguments,
                absl::StatusCode::kInvalidArgument, "BADARGUMENTS (-8)");

  ASSERT_TRUE(c->Create("/a/b", "").ok());
  ASSERT_TRUE(c->Create("/a/c", "").ok());
  ExpectZkError(c->Delete("/a"), zk::kNotEmpty,
                absl::StatusCode::kFailedPrecondition, "NOTEMPTY (-111): /a");
  absl::StatusOr<ChildrenResult> ch = c->GetChildren("/a");
  ASSERT_TRUE(ch.ok()) << ch.status();
  EXPECT_THAT(ch->children, ElementsAre("b", "c"));
  EXPECT_EQ(ch->stat.num_children, 2);
  absl::StatusOr<int32_t> n = c->GetAllChildrenNumber("/a");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2);

  ExpectZkError(c->Delete("/a/b", 5), zk::kBadVersion,
                absl::StatusCode::kFailedPrecondition, "BADVERSION (-103)");
  EXPECT_TRUE(c->Delete("/a/b", 0).ok());
  EXPECT_TRUE(c->Delete("/a/c").ok());
  EXPECT_TRUE(c->Delete("/a").ok());
  ExpectZkError(c->Delete("/a"), zk::kNoNode, absl::StatusCode::kNotFound,
                "NONODE (-101): /a");
  EXPECT_TRUE(c->Sync("/").ok());

  EXPECT_EQ(ZkErrorCode(absl::OkStatus()), 0);
  EXPECT_EQ(ZkErrorCode(absl::UnavailableError("x")), zk::kConnectionLoss);
  EXPECT_STREQ(zk::CodeName(zk::kNoChildrenForEphemerals),
               "NOCHILDRENFOREPHEMERALS");
}

TEST_F(ClientTest, AclsAndAuth) {
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->AddAuth("digest", "alice:secret").ok());
  absl::StatusOr<std::vector<AuthInfo>> who = c->WhoAmI();
  ASSERT_TRUE(who.ok()) << who.status();
  bool alice = false;
  for (const AuthInfo& i : *who)
    alice |= i.scheme == "digest" && i.user == "alice";
  EXPECT_TRUE(alice);

  ASSERT_TRUE(c->Create("/secure", "s", CreatorAllAcl()).ok());
  ExpectZkError(other->GetData("/secure").status(), zk::kNoAuth,
                absl::StatusCode::kPermissionDenied, "NOAUTH (-102): /secure");
  absl::StatusOr<AclResult> acl = c->GetAcl("/secure");
  ASSERT_TRUE(acl.ok()) << acl.status();
  ASSERT_EQ(acl->acl.size(), 1u);
  EXPECT_EQ(acl->acl[0].scheme, "digest");
  EXPECT_THAT(acl->acl[0].id, StartsWith("alice:"));

  ExpectZkError(c->SetAcl("/secure", OpenAclUnsafe(), 5).status(),
                zk::kBadVersion, absl::StatusCode::kFailedPrecondition,
                "BADVERSION (-103)");
  absl::StatusOr<Stat> s = c->SetAcl("/secure", OpenAclUnsafe(), 0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->aversion, 1);
  EXPECT_TRUE(other->GetData("/secure").ok());

  ExpectZkError(c->AddAuth("bogus", "x"), zk::kAuthFailed,
                absl::StatusCode::kUnauthenticated, "AUTHFAILED (-115)");
}

TEST_F(ClientTest, SequentialAndEphemeralNodesAndClose) {
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->Create("/q", "").ok());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<CreateResult> r = c->Create(
        "/q/n-", "", OpenAclUnsafe(), CreateMode::kPersistentSequential);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->path, absl::StrFormat("/q/n-%010d", i));
  }
  absl::StatusOr<CreateResult> eph =
      c->Create("/eph", "e", OpenAclUnsafe(), CreateMode::kEphemeral);
  ASSERT_TRUE(eph.ok()) << eph.status();
  EXPECT_EQ(eph->stat.ephemeral_owner, c->session_id());
  absl::StatusOr<CreateResult> eseq =
      c->Create("/q/e-", "", OpenAclUnsafe(), CreateMode::kEphemeralSequential);
  ASSERT_TRUE(eseq.ok()) << eseq.status();
  EXPECT_EQ(eseq->path.size(), std::string("/q/e-").size() + 10);
  EXPECT_THAT(eseq->path, StartsWith("/q/e-"));
  EXPECT_EQ(eseq->path.find_first_not_of("0123456789", 5), std::string::npos)
      << eseq->path;
  ExpectZkError(
      c->Create("/eph/child", "").status(), zk::kNoChildrenForEphemerals,
      absl::StatusCode::kFailedPrecondition, "NOCHILDRENFOREPHEMERALS (-108)");

  absl::StatusOr<std::vector<std::string>> mine = c->GetEphemerals("/");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_THAT(*mine, UnorderedElementsAre("/eph", eseq->path));
  mine = c->GetEphemerals("/q");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_THAT(*mine, ElementsAre(eseq->path));
  mine = other->GetEphemerals("/");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_TRUE(mine->empty());

  absl::StatusOr<std::optional<Stat>> seen = other->Exists("/eph");
  ASSERT_TRUE(seen.ok() && seen->has_value());

  EXPECT_TRUE(c->Close().ok());
  EXPECT_TRUE(c->Close().ok());  // idempotent
  EXPECT_EQ(c->state(), SessionState::kClosed);
  ExpectZkError(c->GetData("/q").status(), zk::kSessionExpired,
                absl::StatusCode::kUnauthenticated, "SESSIONEXPIRED (-112)");
  // Close is synchronous: the ephemerals are gone when it returns.
  seen = other->Exists("/eph");
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_FALSE(seen->has_value());
  seen = other->Exists(eseq->path);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_FALSE(seen->has_value());
  // Async calls on a closed client complete (with the error).
  std::future<absl::StatusOr<DataResult>> f = c->GetDataAsync("/q");
  ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(ZkErrorCode(f.get().status()), zk::kSessionExpired);
}

TEST_F(ClientTest, SessionExpiryIsReportedAndDeletesEphemerals) {
  EventLog states;
  ClientOptions options;
  options.session_timeout_ms = 1000;
  options.default_watcher = states.watcher();
  auto c = NewClient(options);
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_GE(c->session_timeout_ms(), 400);  // minSessionTimeout = 2 ticks
  EXPECT_LE(c->session_timeout_ms(), 1000);
  ASSERT_TRUE(states.WaitForState(SessionState::kSyncConnected));
  ASSERT_TRUE(
      c->Create("/exp", "", OpenAclUnsafe(), CreateMode::kEphemeral).ok());

  c->PausePingsForTesting(true);
  ASSERT_TRUE(states.WaitForState(SessionState::kExpired))
      << "no Expired event";
  EXPECT_EQ(c->state(), SessionState::kExpired);
  EXPECT_TRUE(PollUntil([&] {
    absl::StatusOr<std::optional<Stat>> s = other->Exists("/exp");
    return s.ok() && !s->has_value();
  }));
  ExpectZkError(c->GetData("/").status(), zk::kSessionExpired,
                absl::StatusCode::kUnauthenticated, "SESSIONEXPIRED (-112)");
  EXPECT_THAT(states.states(), ElementsAre(SessionState::kSyncConnected,
                                           SessionState::kExpired));
}

TEST_F(ClientTest, PingsKeepAnIdleSessionAlive) {
  EventLog states;
  ClientOptions options;
  options.session_timeout_ms = 600;
  options.default_watcher = states.watcher();
  auto c = NewClient(options);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(
      c->Create("/alive", "", OpenAclUnsafe(), CreateMode::kEphemeral).ok());
  // Idle for several session timeouts: the background pings keep it alive.
  const int64_t sid = c->session_id();
  EXPECT_FALSE(
      states.WaitForState(SessionState::kExpired, absl::Milliseconds(4 * 600)));
  EXPECT_EQ(c->state(), SessionState::kSyncConnected);
  EXPECT_EQ(c->session_id(), sid);
  absl::StatusOr<std::optional<Stat>> s = c->Exists("/alive");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->has_value());
}

TEST_F(ClientTest, MultiIsAtomicWithPerOpResults) {
  auto c = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Create("/m", "0").ok());
  MultiResult ok = c->Multi({
      Op::Create("/m/a", "a"),
      Op::Create("/m/s-", "", OpenAclUnsafe(),
                 CreateMode::kPersistentSequential),
      Op::SetData("/m", "1", 0),
      Op::Check("/m", 1),
      Op::Delete("/m/a"),
  });
  ASSERT_TRUE(ok.ok()) << ok.status;
  ASSERT_EQ(ok.results.size(), 5u);
  for (const OpResult& r : ok.results) EXPECT_EQ(r.err, 0);
  EXPECT_EQ(ok.results[0].path, "/m/a");
  EXPECT_EQ(ok.results[0].type, Op::Type::kCreate);
  EXPECT_EQ(ok.results[1].path, "/m/s-0000000001");
  EXPECT_EQ(ok.results[2].stat.version, 1);
  EXPECT_EQ(ok.results[4].type, Op::Type::kDelete);

  MultiResult bad = c->Multi({
      Op::Create("/m/b", ""),
      Op::Check("/m", 7),
      Op::SetData("/m", "2"),
  });
  EXPECT_FALSE(bad.ok());
  ExpectZkError(bad.status, zk::kBadVersion,
                absl::StatusCode::kFailedPrecondition, "BADVERSION (-103): /m");
  EXPECT_THAT(std::string(bad.status.message()), HasSubstr("multi op 1"));
  ASSERT_EQ(bad.results.size(), 3u);
  EXPECT_EQ(bad.results[0].err, 0);
  EXPECT_EQ(bad.results[1].err, zk::kBadVersion);
  EXPECT_EQ(bad.results[1].status.code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(bad.results[2].err, zk::kRuntimeInconsistency);
  EXPECT_EQ(ZkErrorCode(bad.results[2].status), zk::kRuntimeInconsistency);
  // Nothing was applied.
  absl::StatusOr<std::optional<Stat>> b = c->Exists("/m/b");
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->has_value());
  absl::StatusOr<DataResult> m = c->GetData("/m");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->data, "1");
  EXPECT_EQ(m->stat.version, 1);
}

TEST_F(ClientTest, MultiReadHasPerOpResults) {
  auto c = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Create("/r", "x").ok());
  ASSERT_TRUE(c->Create("/r/c1", "").ok());
  absl::StatusOr<std::vector<ReadOpResult>> r =
      c->MultiRead({ReadOp::GetData("/r"), ReadOp::GetChildren("/r"),
                    ReadOp::GetData("/missing")});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].err, 0);
  EXPECT_EQ((*r)[0].data, "x");
  EXPECT_THAT((*r)[1].children, ElementsAre("c1"));
  EXPECT_EQ((*r)[1].type, ReadOp::Type::kGetChildren);
  EXPECT_EQ((*r)[2].err, zk::kNoNode);
  EXPECT_EQ((*r)[2].status.code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, AsyncCallsCompleteInSubmissionOrder) {
  auto c = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Create("/async", "").ok());
  constexpr int kN = 40;
  std::vector<std::future<absl::StatusOr<CreateResult>>> creates;
  std::vector<std::future<absl::StatusOr<Stat>>> sets;
  for (int i = 0; i < kN; ++i) {
    creates.push_back(c->CreateAsync("/async/n-", "", OpenAclUnsafe(),
                                     CreateMode::kPersistentSequential));
    sets.push_back(c->SetDataAsync("/async", absl::StrCat(i)));
  }
  for (int i = 0; i < kN; ++i) {
    ASSERT_EQ(creates[i].wait_for(kWait), std::future_status::ready);
    ASSERT_EQ(sets[i].wait_for(kWait), std::future_status::ready);
    absl::StatusOr<CreateResult> cr = creates[i].get();
    absl::StatusOr<Stat> st = sets[i].get();
    ASSERT_TRUE(cr.ok()) << cr.status();
    ASSERT_TRUE(st.ok()) << st.status();
    // Executed in submission order: sequence numbers and versions follow i.
    EXPECT_EQ(cr->path, absl::StrFormat("/async/n-%010d", i));
    EXPECT_EQ(st->version, i + 1);
  }

  // Callback forms complete in order, on the dispatcher thread.
  absl::Mutex mu;
  std::vector<int> order;
  std::vector<int> versions;
  for (int i = 0; i < kN; ++i) {
    c->SetDataAsync("/async", "x", -1,
                    [&mu, &order, &versions, i](absl::StatusOr<Stat> s) {
                      absl::MutexLock l(&mu);
                      order.push_back(i);
                      versions.push_back(s.ok() ? s->version : -1);
                    });
  }
  {
    absl::MutexLock l(&mu);
    auto all = [&] { return order.size() == static_cast<size_t>(kN); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(20)));
    for (int i = 0; i < kN; ++i) {
      EXPECT_EQ(order[i], i);
      EXPECT_EQ(versions[i], kN + 1 + i);
    }
  }

  // The other async operations.
  auto exists = c->ExistsAsync("/async");
  auto data = c->GetDataAsync("/async");
  auto children = c->GetChildrenAsync("/async");
  auto multi =
      c->MultiAsync({Op::Create("/async/m", ""), Op::Delete("/async/m")});
  auto del = c->DeleteAsync("/async/n-0000000000", 0);
  ASSERT_EQ(del.wait_for(kWait), std::future_status::ready);
  absl::StatusOr<std::optional<Stat>> e = exists.get();
  ASSERT_TRUE(e.ok() && e->has_value());
  absl::StatusOr<DataResult> d = data.get();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->data, "x");
  absl::StatusOr<ChildrenResult> ch = children.get();
  ASSERT_TRUE(ch.ok());
  EXPECT_EQ(ch->children.size(), static_cast<size_t>(kN));
  EXPECT_TRUE(multi.get().ok());
  EXPECT_TRUE(del.get().ok());
}

TEST_F(ClientTest, DataWatchFiresExactlyOnce) {
  EventLog log;
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  absl::StatusOr<CreateResult> w = c->Create("/w", "0");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(c->GetData("/w", log.watcher()).ok());
  absl::StatusOr<Stat> s1 = other->SetData("/w", "1");
  ASSERT_TRUE(s1.ok());
  ASSERT_TRUE(other->SetData("/w", "2").ok());
  ASSERT_TRUE(log.WaitForCount(1));
  Flush(c.get());
  std::vector<WatchEvent> events = log.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kNodeDataChanged);
  EXPECT_EQ(events[0].path, "/w");
  EXPECT_EQ(events[0].zxid, s1->mzxid);
  EXPECT_GT(events[0].seq, 0u);

  // A data watch also fires on delete; a watch set on a failed read is not
  // set at all.
  EventLog del_log;
  EventLog missing_log;
  ASSERT_TRUE(c->GetData("/w", del_log.watcher()).ok());
  EXPECT_FALSE(c->GetData("/nothing", missing_log.watcher()).ok());
  ASSERT_TRUE(other->Delete("/w").ok());
  ASSERT_TRUE(other->Create("/nothing", "").ok());
  ASSERT_TRUE(del_log.WaitForCount(1));
  Flush(c.get());
  ASSERT_EQ(del_log.size(), 1u);
  EXPECT_EQ(del_log.events()[0].type, EventType::kNodeDeleted);
  EXPECT_EQ(missing_log.size(), 0u);
}

TEST_F(ClientTest, ChildAndExistsWatches) {
  EventLog child_log;
  EventLog exists_log;
  EventLog exists_data_log;
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->Create("/p", "").ok());
  ASSERT_TRUE(c->GetChildren("/p", child_log.watcher()).ok());
  absl::StatusOr<std::optional<Stat>> e =
      c->Exists("/p/new", exists_log.watcher());
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value());

  ASSERT_TRUE(other->Create("/p/new", "").ok());
  ASSERT_TRUE(child_log.WaitForCount(1));
  ASSERT_TRUE(exists_log.WaitForCount(1));
  ASSERT_TRUE(other->Create("/p/new2", "").ok());
  Flush(c.get());
  ASSERT_EQ(child_log.size(), 1u);  // one-shot
  EXPECT_EQ(child_log.events()[0].type, EventType::kNodeChildrenChanged);
  EXPECT_EQ(child_log.events()[0].path, "/p");
  ASSERT_EQ(exists_log.size(), 1u);
  EXPECT_EQ(exists_log.events()[0].type, EventType::kNodeCreated);
  EXPECT_EQ(exists_log.events()[0].path, "/p/new");

  // Exists on an existing node sets a data watch.
  e = c->Exists("/p/new2", exists_data_log.watcher());
  ASSERT_TRUE(e.ok() && e->has_value());
  ASSERT_TRUE(other->SetData("/p/new2", "x").ok());
  ASSERT_TRUE(exists_data_log.WaitForCount(1));
  EXPECT_EQ(exists_data_log.events()[0].type, EventType::kNodeDataChanged);
}

TEST_F(ClientTest, PersistentWatches) {
  EventLog rec;
  EventLog per;
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->Create("/tree", "").ok());
  ASSERT_TRUE(
      c->AddWatch("/tree", AddWatchMode::kPersistentRecursive, rec.watcher())
          .ok());
  ASSERT_TRUE(
      c->AddWatch("/tree", AddWatchMode::kPersistent, per.watcher()).ok());
  ASSERT_TRUE(other->Create("/tree/a", "").ok());
  ASSERT_TRUE(other->Create("/tree/a/b", "").ok());
  ASSERT_TRUE(other->SetData("/tree/a/b", "x").ok());
  ASSERT_TRUE(other->SetData("/tree/a/b", "y").ok());
  ASSERT_TRUE(other->Delete("/tree/a/b").ok());
  ASSERT_TRUE(other->SetData("/tree", "z").ok());
  ASSERT_TRUE(rec.WaitForCount(6));
  Flush(c.get());
  std::vector<std::pair<EventType, std::string>> got;
  for (const WatchEvent& e : rec.events()) got.emplace_back(e.type, e.path);
  EXPECT_THAT(
      got, ElementsAre(
               std::pair(EventType::kNodeCreated, std::string("/tree/a")),
               std::pair(EventType::kNodeCreated, std::string("/tree/a/b")),
               std::pair(EventType::kNodeDataChanged, std::string("/tree/a/b")),
               std::pair(EventType::kNodeDataChanged, std::string("/tree/a/b")),
               std::pair(EventType::kNodeDeleted, std::string("/tree/a/b")),
               std::pair(EventType::kNodeDataChanged, std::string("/tree"))));
  // The plain persistent watch sees its node only (children changes too).
  got.clear();
  for (const WatchEvent& e : per.events()) got.emplace_back(e.type, e.path);
  EXPECT_THAT(
      got, ElementsAre(
               std::pair(EventType::kNodeChildrenChanged, std::string("/tree")),
               std::pair(EventType::kNodeDataChanged, std::string("/tree"))));

  // Removing: the watcher is told, and fires no more.
  ASSERT_TRUE(
      c->RemoveWatches("/tree", WatcherType::kPersistentRecursive).ok());
  ASSERT_TRUE(rec.WaitForCount(7));
  EXPECT_EQ(rec.events()[6].type, EventType::kPersistentWatchRemoved);
  ASSERT_TRUE(other->Create("/tree/c", "").ok());
  Flush(c.get());
  EXPECT_EQ(rec.size(), 7u);
  EXPECT_EQ(per.size(), 3u);  // NodeChildrenChanged for /tree/c
  ASSERT_TRUE(c->RemoveWatches("/tree", WatcherType::kAny).ok());
  ExpectZkError(c->RemoveWatches("/tree", WatcherType::kAny), zk::kNoWatcher,
                absl::StatusCode::kNotFound, "NOWATCHER (-121): /tree");
}

TEST_F(ClientTest, WatcherSeesEventBeforeLaterReadResult) {
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->Create("/ord", "0").ok());
  for (int i = 1; i <= 20; ++i) {
    EventLog log;
    ASSERT_TRUE(c->GetData("/ord", log.watcher()).ok());
    ASSERT_TRUE(other->SetData("/ord", absl::StrCat(i)).ok());
    // The completion of a later read runs after the watcher of the change
    // it reflects.
    auto seen =
        std::make_shared<std::promise<std::pair<size_t, std::string>>>();
    auto f = seen->get_future();
    c->GetDataAsync("/ord", nullptr,
                    [seen, &log](absl::StatusOr<DataResult> r) {
                      seen->set_value({log.size(), r.ok() ? r->data : ""});
                    });
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    auto [events, data] = f.get();
    EXPECT_EQ(data, absl::StrCat(i));
    EXPECT_EQ(events, 1u) << "iteration " << i;
    Flush(c.get());  // `log` must outlive its deliveries
  }
}

TEST_F(ClientTest, ReconnectsAfterServerRestartAndResumesSession) {
  EventLog states;
  EventLog watch;
  ClientOptions options;
  options.default_watcher = states.watcher();
  options.session_timeout_ms = 4000;
  auto c = NewClient(options);
  ASSERT_NE(c, nullptr);
  const int64_t sid = c->session_id();
  ASSERT_TRUE(c->AddAuth("digest", "bob:pw").ok());
  ASSERT_TRUE(
      c->Create("/eph-r", "", OpenAclUnsafe(), CreateMode::kEphemeral).ok());
  ASSERT_TRUE(c->Create("/rw", "0", CreatorAllAcl()).ok());
  ASSERT_TRUE(c->GetData("/rw", watch.watcher()).ok());

  server_->Kill(SIGKILL);
  ASSERT_TRUE(states.WaitForState(SessionState::kDisconnected));
  EXPECT_EQ(c->state(), SessionState::kDisconnected);
  // A call made while the server is down waits for the reconnection.
  std::future<absl::StatusOr<DataResult>> in_flight = c->GetDataAsync("/rw");
  ASSERT_TRUE(server_->Start());
  ASSERT_EQ(in_flight.wait_for(kWait), std::future_status::ready);
  absl::StatusOr<DataResult> d = in_flight.get();
  ASSERT_TRUE(d.ok()) << d.status();  // needs bob's auth: re-sent
  EXPECT_EQ(d->data, "0");
  EXPECT_EQ(c->state(), SessionState::kSyncConnected);
  EXPECT_TRUE(PollUntil([&] { return states.states().size() >= 3; }));
  EXPECT_THAT(states.states(), ElementsAre(SessionState::kSyncConnected,
                                           SessionState::kDisconnected,
                                           SessionState::kSyncConnected));

  // Same session: the ephemeral survived, and the next write succeeds.
  EXPECT_EQ(c->session_id(), sid);
  absl::StatusOr<std::optional<Stat>> e = c->Exists("/eph-r");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(e->has_value());
  EXPECT_EQ((*e)->ephemeral_owner, sid);
  ASSERT_TRUE(c->SetData("/rw", "1").ok());
  // The data watch was re-registered on the restarted server.
  ASSERT_TRUE(watch.WaitForCount(1));
  EXPECT_EQ(watch.events()[0].type, EventType::kNodeDataChanged);
  EXPECT_EQ(watch.events()[0].path, "/rw");
}

TEST_F(ClientTest, WriteDuringOutageFailsOrWaitsBounded) {
  EventLog states;
  ClientOptions options;
  options.default_watcher = states.watcher();
  options.request_timeout_ms = 500;
  auto c = NewClient(options);
  ASSERT_NE(c, nullptr);
  server_->Kill(SIGKILL);
  ASSERT_TRUE(states.WaitForState(SessionState::kDisconnected));
  const absl::Time start = absl::Now();
  absl::Status st = c->Create("/down", "").status();
  // A hang detector, not a timing check: without the request timeout the
  // call would wait for the server forever.
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  EXPECT_EQ(ZkErrorCode(st), zk::kConnectionLoss) << st;
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Start());
  EXPECT_TRUE(PollUntil([&] { return c->Create("/up", "").ok(); }));
}

TEST_F(ClientTest, ResumeSessionInAnotherClient) {
  auto c1 = NewClient();
  ASSERT_NE(c1, nullptr);
  ASSERT_TRUE(
      c1->Create("/handoff", "", OpenAclUnsafe(), CreateMode::kEphemeral).ok());
  ClientOptions options;
  options.session_id = c1->session_id();
  options.session_password = c1->session_password();
  auto c2 = NewClient(options);
  ASSERT_NE(c2, nullptr);
  EXPECT_EQ(c2->session_id(), c1->session_id());
  absl::StatusOr<std::vector<std::string>> eph = c2->GetEphemerals("/");
  ASSERT_TRUE(eph.ok()) << eph.status();
  EXPECT_THAT(*eph, ElementsAre("/handoff"));

  options.session_password = "wrong";
  options.servers = {server_->address()};
  absl::StatusOr<std::unique_ptr<Client>> bad = Client::Connect(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(ZkErrorCode(bad.status()), zk::kSessionExpired);
}

TEST_F(ClientTest, ConnectStringWithSeveralServers) {
  ClientOptions options;
  options.servers = {
      absl::StrCat("127.0.0.1:", FreePort(), " , ", server_->address())};
  auto c = NewClient(options);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->current_server(), server_->address());
  EXPECT_TRUE(c->Exists("/").ok());
}

TEST_F(ClientTest, CallbacksMayUseTheClient) {
  auto c = NewClient();
  auto other = NewClient();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(c->Create("/re", "0").ok());
  // A watcher that re-reads and re-arms itself from the dispatcher thread.
  absl::Mutex mu;
  std::vector<std::string> seen;
  std::function<void(const WatchEvent&)> rearm;
  Client* client = c.get();
  rearm = [&](const WatchEvent&) {
    absl::StatusOr<DataResult> d = client->GetData("/re", rearm);
    absl::MutexLock l(&mu);
    seen.push_back(d.ok() ? d->data : "error");
  };
  ASSERT_TRUE(c->GetData("/re", rearm).ok());
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(other->SetData("/re", absl::StrCat(i)).ok());
    absl::MutexLock l(&mu);
    auto got = [&] { return seen.size() == static_cast<size_t>(i); };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&got), absl::Seconds(20)));
    EXPECT_EQ(seen.back(), absl::StrCat(i));
  }
  c.reset();  // closes; no callback runs after
}

TEST_F(ClientTest, ClientMayBeDestroyedFromItsCallback) {
  auto other = NewClient();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(other->Create("/bye", "").ok());
  auto holder = std::make_shared<std::unique_ptr<Client>>(NewClient());
  ASSERT_NE(*holder, nullptr);
  const int64_t sid = (*holder)->session_id();
  ASSERT_TRUE(
      (*holder)
          ->Create("/bye/eph", "", OpenAclUnsafe(), CreateMode::kEphemeral)
          .ok());
  auto destroyed = std::make_shared<std::promise<void>>();
  std::future<void> f = destroyed->get_future();
  ASSERT_TRUE((*holder)
                  ->GetData("/bye",
                            [holder, destroyed](const WatchEvent&) {
                              holder->reset();  // closes the session
                              destroyed->set_value();
                            })
                  .ok());
  ASSERT_TRUE(other->SetData("/bye", "x").ok());
  ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
  absl::StatusOr<std::optional<Stat>> e = other->Exists("/bye/eph");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_FALSE(e->has_value()) << "session " << sid << " not closed";
}

TEST(ClientConnectTest, BadOptionsAndUnreachableServers) {
  ClientOptions options;
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(options);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(ZkErrorCode(c.status()), zk::kBadArguments);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  options.servers = {"no-port"};
  EXPECT_EQ(ZkErrorCode(Client::Connect(options).status()), zk::kBadArguments);
  options.servers = {"127.0.0.1:1/chroot"};
  EXPECT_EQ(ZkErrorCode(Client::Connect(options).status()), zk::kBadArguments);

  options.servers = {absl::StrCat("127.0.0.1:", FreePort())};
  options.connect_timeout_ms = 500;
  const absl::Time start = absl::Now();
  c = Client::Connect(options);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(ZkErrorCode(c.status()), zk::kConnectionLoss) << c.status();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));  // bounded, not fast
}

}  // namespace
}  // namespace rockeeper::client
