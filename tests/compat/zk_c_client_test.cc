// Compatibility test: Apache ZooKeeper's C client (Debian's
// libzookeeper-mt-dev, the multi-threaded library) against a real rockeeper
// process over the ZooKeeper wire protocol: pipelined async creates and gets
// with completions in request order, watches, multi (success and failure
// with per-op results), session resume with the password, a bad password,
// and ephemerals removed on close.
//
// Usage: zk_c_client_test --bin build/server/rockeeper
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond)                                                         \
  do {                                                                      \
    ++g_checks;                                                             \
    if (!(cond)) {                                                          \
      ++g_failures;                                                         \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                  \
    }                                                                       \
  } while (0)

#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    ++g_checks;                                                                \
    const auto va = (a);                                                       \
    const auto vb = (b);                                                       \
    if (!(va == vb)) {                                                         \
      ++g_failures;                                                            \
      std::fprintf(stderr, "%s:%d: CHECK_EQ failed: %s (%lld) vs %s (%lld)\n", \
                   __FILE__, __LINE__, #a, static_cast<long long>(va), #b,     \
                   static_cast<long long>(vb));                                \
    }                                                                          \
  } while (0)

using Clock = std::chrono::steady_clock;

// Waits (bounded) until `pred` holds; true if it did.
bool WaitFor(std::mutex& mu, std::condition_variable& cv,
             const std::function<bool()>& pred, int seconds = 15) {
  std::unique_lock<std::mutex> lock(mu);
  return cv.wait_until(lock, Clock::now() + std::chrono::seconds(seconds),
                       pred);
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

bool PortOpen(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// A handle with its connection state, signalled by the global watcher.
struct Session {
  std::mutex mu;
  std::condition_variable cv;
  int state = 0;
  std::vector<std::pair<int, std::string>> events;  // type, path
  zhandle_t* zh = nullptr;
};

void SessionWatcher(zhandle_t*, int type, int state, const char* path,
                    void* ctx) {
  auto* s = static_cast<Session*>(ctx);
  std::lock_guard<std::mutex> lock(s->mu);
  if (type == ZOO_SESSION_EVENT) {
    s->state = state;
  } else {
    s->events.emplace_back(type, path != nullptr ? path : "");
  }
  s->cv.notify_all();
}

zhandle_t* Open(const std::string& hosts, Session* s,
                const clientid_t* id = nullptr) {
  s->zh = zookeeper_init(hosts.c_str(), SessionWatcher, 10000, id, s, 0);
  return s->zh;
}

bool WaitConnected(Session* s) {
  return WaitFor(s->mu, s->cv, [s] { return s->state == ZOO_CONNECTED_STATE; });
}

// --- Async completions
// ---------------------------------------------------------

struct Completions {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> order;  // tags in completion order
  std::vector<int> rcs;
  std::vector<std::string> values;
  int done = 0;
};

struct Tag {
  Completions* c;
  int index;
};

void StringDone(int rc, const char* value, const void* data) {
  const auto* t = static_cast<const Tag*>(data);
  std::lock_guard<std::mutex> lock(t->c->mu);
  t->c->order.push_back(t->index);
  t->c->rcs[t->index] = rc;
  t->c->values[t->index] = value != nullptr ? value : "";
  ++t->c->done;
  t->c->cv.notify_all();
}

void DataDone(int rc, const char* value, int len, const Stat*,
              const void* data) {
  const auto* t = static_cast<const Tag*>(data);
  std::lock_guard<std::mutex> lock(t->c->mu);
  t->c->order.push_back(t->index);
  t->c->rcs[t->index] = rc;
  t->c->values[t->index] =
      len >= 0 && value != nullptr ? std::string(value, len) : "<null>";
  ++t->c->done;
  t->c->cv.notify_all();
}

void VoidDone(int rc, const void* data) {
  const auto* t = static_cast<const Tag*>(data);
  std::lock_guard<std::mutex> lock(t->c->mu);
  t->c->order.push_back(t->index);
  t->c->rcs[t->index] = rc;
  ++t->c->done;
  t->c->cv.notify_all();
}

// --- The tests
// --------------------------------------------------------------------

void TestPipelinedCreatesAndGets(zhandle_t* zh) {
  constexpr int kN = 300;
  CHECK_EQ(
      zoo_create(zh, "/cc", "root", 4, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0),
      ZOK);
  Completions c;
  c.rcs.assign(kN + 1, -999);
  c.values.assign(kN + 1, "");
  std::vector<Tag> tags;
  for (int i = 0; i <= kN; ++i) tags.push_back({&c, i});
  std::vector<std::string> data(kN);
  for (int i = 0; i < kN; ++i) {
    data[i] = "value-" + std::to_string(i);
    CHECK_EQ(zoo_acreate(zh, "/cc/n-", data[i].data(),
                         static_cast<int>(data[i].size()), &ZOO_OPEN_ACL_UNSAFE,
                         ZOO_SEQUENCE, StringDone, &tags[i]),
             ZOK);
  }
  // One failing request in the middle of the pipeline.
  CHECK_EQ(zoo_acreate(zh, "/cc", "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, StringDone,
                       &tags[kN]),
           ZOK);
  CHECK(WaitFor(
      c.mu, c.cv, [&] { return c.done == kN + 1; }, 60));
  std::lock_guard<std::mutex> lock(c.mu);
  for (int i = 0; i < static_cast<int>(c.order.size()); ++i) {
    CHECK_EQ(c.order[i], i);  // completions in request order
  }
  for (int i = 0; i < kN; ++i) {
    CHECK_EQ(c.rcs[i], ZOK);
    char expected[64];
    std::snprintf(expected, sizeof(expected), "/cc/n-%010d", i);
    CHECK(c.values[i] == expected);
    if (c.values[i] != expected && i < 3)
      std::fprintf(stderr, "got %s want %s\n", c.values[i].c_str(), expected);
  }
  CHECK_EQ(c.rcs[kN], ZNODEEXISTS);

  Completions g;
  g.rcs.assign(kN + 1, -999);
  g.values.assign(kN + 1, "");
  std::vector<Tag> gtags;
  for (int i = 0; i <= kN; ++i) gtags.push_back({&g, i});
  std::vector<std::string> paths(kN);
  for (int i = 0; i < kN; ++i) {
    char p[64];
    std::snprintf(p, sizeof(p), "/cc/n-%010d", i);
    paths[i] = p;
    CHECK_EQ(zoo_aget(zh, paths[i].c_str(), 0, DataDone, &gtags[i]), ZOK);
  }
  CHECK_EQ(zoo_aget(zh, "/cc/missing", 0, DataDone, &gtags[kN]), ZOK);
  CHECK(WaitFor(
      g.mu, g.cv, [&] { return g.done == kN + 1; }, 60));
  std::lock_guard<std::mutex> glock(g.mu);
  for (int i = 0; i < static_cast<int>(g.order.size()); ++i) {
    CHECK_EQ(g.order[i], i);
  }
  for (int i = 0; i < kN; ++i) {
    CHECK_EQ(g.rcs[i], ZOK);
    CHECK(g.values[i] == data[i]);
    if (g.values[i] != data[i] && i < 3)
      std::fprintf(stderr, "got %s want %s\n", g.values[i].c_str(),
                   data[i].c_str());
  }
  CHECK_EQ(g.rcs[kN], ZNONODE);
}

struct WatchBox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<int, std::string>> events;
};

void BoxWatcher(zhandle_t*, int type, int, const char* path, void* ctx) {
  auto* b = static_cast<WatchBox*>(ctx);
  std::lock_guard<std::mutex> lock(b->mu);
  b->events.emplace_back(type, path != nullptr ? path : "");
  b->cv.notify_all();
}

void TestWatches(zhandle_t* zh, zhandle_t* other) {
  CHECK_EQ(zoo_create(zh, "/cw", "a", 1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0),
           ZOK);
  WatchBox data_box;
  char buf[64];
  int len = sizeof(buf);
  Stat st{};
  CHECK_EQ(zoo_wget(zh, "/cw", BoxWatcher, &data_box, buf, &len, &st), ZOK);
  CHECK_EQ(len, 1);
  WatchBox exists_box;
  CHECK_EQ(zoo_wexists(zh, "/cw/new", BoxWatcher, &exists_box, &st), ZNONODE);
  WatchBox child_box;
  String_vector kids{};
  CHECK_EQ(zoo_wget_children(zh, "/cw", BoxWatcher, &child_box, &kids), ZOK);
  deallocate_String_vector(&kids);

  // Changes made by the other session fire this session's watches.
  CHECK_EQ(zoo_set(other, "/cw", "b", 1, -1), ZOK);
  CHECK(WaitFor(data_box.mu, data_box.cv,
                [&] { return !data_box.events.empty(); }));
  CHECK_EQ(
      zoo_create(other, "/cw/new", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0),
      ZOK);
  CHECK(WaitFor(exists_box.mu, exists_box.cv,
                [&] { return !exists_box.events.empty(); }));
  CHECK(WaitFor(child_box.mu, child_box.cv,
                [&] { return !child_box.events.empty(); }));
  {
    std::lock_guard<std::mutex> l1(data_box.mu);
    CHECK_EQ(data_box.events.size(), size_t{1});
    CHECK_EQ(data_box.events[0].first, ZOO_CHANGED_EVENT);
    CHECK(data_box.events[0].second == "/cw");
  }
  {
    std::lock_guard<std::mutex> l2(exists_box.mu);
    CHECK_EQ(exists_box.events[0].first, ZOO_CREATED_EVENT);
    CHECK(exists_box.events[0].second == "/cw/new");
  }
  {
    std::lock_guard<std::mutex> l3(child_box.mu);
    CHECK_EQ(child_box.events[0].first, ZOO_CHILD_EVENT);
    CHECK(child_box.events[0].second == "/cw");
  }
  // One-shot: a second change does not fire the data watch again; the read
  // after it proves the event would have arrived first.
  CHECK_EQ(zoo_set(other, "/cw", "c", 1, -1), ZOK);
  len = sizeof(buf);
  CHECK_EQ(zoo_get(zh, "/cw", 0, buf, &len, &st), ZOK);
  CHECK(std::string(buf, len) == "c");
  {
    std::lock_guard<std::mutex> l4(data_box.mu);
    CHECK_EQ(data_box.events.size(), size_t{1});
  }

  // Removing one watcher (checkWatches on the wire, then removed locally)
  // and all watches (removeWatches); NOWATCHER when there is none.
  WatchBox again;
  len = sizeof(buf);
  CHECK_EQ(zoo_wget(zh, "/cw", BoxWatcher, &again, buf, &len, &st), ZOK);
  CHECK_EQ(
      zoo_remove_watches(zh, "/cw", ZWATCHTYPE_DATA, BoxWatcher, &again, 0),
      ZOK);
  CHECK_EQ(
      zoo_remove_watches(zh, "/cw/new", ZWATCHTYPE_DATA, BoxWatcher, &again, 0),
      ZNOWATCHER);
  len = sizeof(buf);
  CHECK_EQ(zoo_wget(zh, "/cw", BoxWatcher, &again, buf, &len, &st), ZOK);
  CHECK_EQ(zoo_remove_all_watches(zh, "/cw", ZWATCHTYPE_ANY, 0), ZOK);
  CHECK_EQ(zoo_remove_all_watches(zh, "/cw", ZWATCHTYPE_ANY, 0), ZNOWATCHER);
}

void TestMulti(zhandle_t* zh) {
  CHECK_EQ(zoo_create(zh, "/cm", "0", 1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0),
           ZOK);
  char created[64];
  zoo_op_t ops[4];
  zoo_op_result_t results[4];
  zoo_create_op_init(&ops[0], "/cm/a", "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created,
                     sizeof(created));
  zoo_set_op_init(&ops[1], "/cm", "1", 1, 0, nullptr);
  zoo_check_op_init(&ops[2], "/cm", 1);
  zoo_delete_op_init(&ops[3], "/cm/a", 0);
  Completions c;
  c.rcs.assign(1, -999);
  c.values.assign(1, "");
  Tag tag{&c, 0};
  CHECK_EQ(zoo_amulti(zh, 4, ops, results, VoidDone, &tag), ZOK);
  CHECK(WaitFor(c.mu, c.cv, [&] { return c.done == 1; }));
  CHECK_EQ(c.rcs[0], ZOK);
  for (auto& r : results) CHECK_EQ(r.err, ZOK);
  CHECK(std::string(created) == "/cm/a");

  // A failing multi: nothing applied, per-op codes as ZooKeeper.
  zoo_op_t bad[3];
  zoo_op_result_t bad_results[3];
  zoo_create_op_init(&bad[0], "/cm/b", "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, nullptr,
                     0);
  zoo_check_op_init(&bad[1], "/cm", 7);
  zoo_delete_op_init(&bad[2], "/cm", -1);
  CHECK_EQ(zoo_multi(zh, 3, bad, bad_results), ZBADVERSION);
  CHECK_EQ(bad_results[0].err, ZOK);
  CHECK_EQ(bad_results[1].err, ZBADVERSION);
  CHECK_EQ(bad_results[2].err, ZRUNTIMEINCONSISTENCY);
  Stat st{};
  CHECK_EQ(zoo_exists(zh, "/cm/b", 0, &st), ZNONODE);
}

// A session created over a raw socket (the 45-byte ConnectRequest), whose
// connection is then dropped without closeSession: as a client that lost
// its connection. Returns the session id and password.
bool RawSession(int port, clientid_t* id) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return false;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  // len, protocolVersion, lastZxidSeen, timeOut 10000, sessionId 0,
  // passwd (16 zero bytes), readOnly.
  unsigned char req[49] = {0, 0, 0, 45};
  req[4 + 4 + 8 + 2] = 0x27;  // timeOut = 0x2710
  req[4 + 4 + 8 + 3] = 0x10;
  req[4 + 4 + 8 + 4 + 8 + 3] = 16;  // passwd length
  bool ok = send(fd, req, sizeof(req), 0) == static_cast<ssize_t>(sizeof(req));
  unsigned char resp[41];
  size_t got = 0;
  while (ok && got < sizeof(resp)) {
    const ssize_t n = recv(fd, resp + got, sizeof(resp) - got, 0);
    if (n <= 0) ok = false;
    if (n > 0) got += static_cast<size_t>(n);
  }
  close(fd);
  if (!ok) return false;
  // len(4) protocolVersion(4) timeOut(4) sessionId(8) passwd len(4) + 16.
  int64_t sid = 0;
  for (int i = 0; i < 8; ++i) sid = (sid << 8) | resp[12 + i];
  id->client_id = sid;
  std::memcpy(id->passwd, resp + 24, 16);
  return sid != 0;
}

void TestSessions(const std::string& hosts, int port) {
  clientid_t id{};
  CHECK(RawSession(port, &id));

  // A handle resumes the session with its password.
  Session b;
  Open(hosts, &b, &id);
  CHECK(WaitConnected(&b));
  CHECK_EQ(zoo_client_id(b.zh)->client_id, id.client_id);
  CHECK_EQ(zoo_create(b.zh, "/cs-eph", "e", 1, &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_EPHEMERAL, nullptr, 0),
           ZOK);
  Stat st{};
  CHECK_EQ(zoo_exists(b.zh, "/cs-eph", 0, &st), ZOK);
  CHECK_EQ(st.ephemeralOwner, id.client_id);

  // A wrong password: the session is reported expired.
  clientid_t wrong = id;
  wrong.passwd[0] ^= 0x5a;
  Session c;
  Open(hosts, &c, &wrong);
  CHECK(WaitFor(c.mu, c.cv,
                [&] { return c.state == ZOO_EXPIRED_SESSION_STATE; }));
  zookeeper_close(c.zh);

  // Closing the session removes its ephemeral; another session sees it gone.
  Session d;
  Open(hosts, &d);
  CHECK(WaitConnected(&d));
  CHECK_EQ(zoo_exists(d.zh, "/cs-eph", 0, &st), ZOK);
  CHECK_EQ(zookeeper_close(b.zh), ZOK);
  CHECK_EQ(zoo_exists(d.zh, "/cs-eph", 0, &st), ZNONODE);
  zookeeper_close(d.zh);
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--bin") == 0) bin = argv[i + 1];
  }
  if (bin.empty()) {
    std::fprintf(stderr, "usage: %s --bin path/to/rockeeper\n", argv[0]);
    return 2;
  }
  zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/rk-cclient-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  const int port = FreePort();
  {
    std::ofstream cfg(root + "/zoo.cfg");
    cfg << "tickTime=500\ndataDir=" << root << "/data\nclientPort=" << port
        << "\nclientPortAddress=127.0.0.1\ngrpcPort=" << FreePort()
        << "\ngrpcPortAddress=127.0.0.1\nadmin.enableServer=false\n";
  }
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string log = root + "/server.log";
    freopen(log.c_str(), "w", stderr);
    freopen(log.c_str(), "a", stdout);
    const std::string cfg = root + "/zoo.cfg";
    execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    up = PortOpen(port);
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(up);
  if (up) {
    const std::string hosts = "127.0.0.1:" + std::to_string(port);
    Session main_s, other_s;
    Open(hosts, &main_s);
    Open(hosts, &other_s);
    const bool connected = WaitConnected(&main_s) && WaitConnected(&other_s);
    CHECK(connected);
    if (connected) {
      TestPipelinedCreatesAndGets(main_s.zh);
      TestWatches(main_s.zh, other_s.zh);
      TestMulti(main_s.zh);
      TestSessions(hosts, port);
    }
    if (main_s.zh != nullptr) zookeeper_close(main_s.zh);
    if (other_s.zh != nullptr) zookeeper_close(other_s.zh);
  }
  kill(pid, SIGTERM);
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 400 && !exited; ++i) {
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  CHECK(exited && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (g_failures > 0) {
    std::ifstream log(root + "/server.log");
    std::fprintf(stderr, "--- server log ---\n%s\n",
                 std::string(std::istreambuf_iterator<char>(log), {}).c_str());
  }
  std::error_code ec;
  fs::remove_all(root, ec);
  std::printf("checks: %d passed, %d failed\n", g_checks - g_failures,
              g_failures);
  return g_failures == 0 ? 0 : 1;
}
