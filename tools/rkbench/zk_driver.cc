// The ZooKeeper wire-protocol driver: one TCP connection per session (to
// one server of the list, round-robin), jute
// frames encoded straight into a per-connection output buffer, replies read
// in large chunks; one epoll loop per thread. Many requests go out per
// write() and many replies come back per read().
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "tools/rkbench/driver.h"

namespace rockeeper::rkbench {
namespace {

constexpr int32_t kOpCreate = 1, kOpDelete = 2, kOpExists = 3, kOpGetData = 4,
                  kOpSetData = 5, kOpGetChildren2 = 12, kOpMulti = 14,
                  kOpPing = 11, kOpCloseSession = -11;
constexpr int32_t kPingXid = -2, kWatchXid = -1;
constexpr size_t kReadChunk = 256 * 1024;
constexpr int32_t kMaxFrame = 64 << 20;

void PutInt(std::string* b, int32_t v) {
  uint32_t u = htonl(static_cast<uint32_t>(v));
  b->append(reinterpret_cast<const char*>(&u), 4);
}
void PutLong(std::string* b, int64_t v) {
  PutInt(b, static_cast<int32_t>(static_cast<uint64_t>(v) >> 32));
  PutInt(b, static_cast<int32_t>(static_cast<uint64_t>(v) & 0xFFFFFFFFu));
}
void PutBool(std::string* b, bool v) { b->push_back(v ? 1 : 0); }
void PutBuffer(std::string* b, std::string_view v) {
  PutInt(b, static_cast<int32_t>(v.size()));
  b->append(v);
}
int32_t GetInt(const char* p) {
  uint32_t u;
  std::memcpy(&u, p, 4);
  return static_cast<int32_t>(ntohl(u));
}
int64_t GetLong(const char* p) {
  return static_cast<int64_t>(
      (static_cast<uint64_t>(static_cast<uint32_t>(GetInt(p))) << 32) |
      static_cast<uint32_t>(GetInt(p + 4)));
}

void PutOpenAcl(std::string* b) {
  PutInt(b, 1);
  PutInt(b, 31);
  PutBuffer(b, "world");
  PutBuffer(b, "anyone");
}

void PutCreate(std::string* b, const std::string& path, bool with_data,
               int flags, std::string_view value) {
  PutBuffer(b, path);
  if (with_data) {
    PutBuffer(b, value);
  } else {
    PutInt(b, 0);
  }
  PutOpenAcl(b);
  PutInt(b, flags);
}

bool ReadExact(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

struct Pending {
  int32_t xid;
  int64_t start_ns;
  uint64_t tag;
  bool multi;
};

struct Conn {
  int fd = -1;
  int64_t session_id = 0;
  SessionState state;
  std::string out;
  size_t out_off = 0;
  bool want_out = false;
  std::vector<char> in;
  size_t in_len = 0;
  std::vector<Pending> ring;  // FIFO of outstanding requests
  size_t head = 0, count = 0;
  int32_t next_xid = 1;
  int64_t last_send_ns = 0;
  bool done = false;
  bool dead = false;
};

class ZkDriver final : public Driver {
 public:
  ZkDriver(const DriverConfig& config, const Workload& workload)
      : config_(config), workload_(workload) {}
  ~ZkDriver() override {
    for (Conn& c : conns_) {
      if (c.fd >= 0) close(c.fd);
    }
  }

  absl::Status Connect() override {
    conns_.resize(static_cast<size_t>(config_.sessions));
    for (int i = 0; i < config_.sessions; ++i) {
      Conn& c = conns_[static_cast<size_t>(i)];
      workload_.InitSession(&c.state, i);
      c.ring.resize(static_cast<size_t>(config_.outstanding));
      c.in.resize(kReadChunk * 2);
      absl::Status st = Handshake(
          &c, config_.servers[static_cast<size_t>(i) % config_.servers.size()]);
      if (!st.ok()) {
        c.dead = true;  // no session on this socket: Close() just closes it
        return st;
      }
    }
    return absl::OkStatus();
  }

  PhaseResult Run(OpSource& source, const Limits& limits) override {
    int threads = std::max(1, std::min(config_.threads, config_.sessions));
    std::vector<PhaseResult> results(static_cast<size_t>(threads));
    std::vector<std::thread> workers;
    int64_t start = NowNs();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        RunThread(t, threads, source, limits, &results[static_cast<size_t>(t)]);
      });
    }
    for (auto& w : workers) w.join();
    PhaseResult total;
    for (const auto& r : results) total.Merge(r);
    total.elapsed_ns = NowNs() - start;
    return total;
  }

  void Close() override {
    for (Conn& c : conns_) {
      if (c.fd < 0) continue;
      if (!c.dead) {
        // closeSession, then wait (bounded) for its reply or the close.
        int fl = fcntl(c.fd, F_GETFL);
        fcntl(c.fd, F_SETFL, fl & ~O_NONBLOCK);
        std::string b;
        PutInt(&b, 8);
        PutInt(&b, c.next_xid++);
        PutInt(&b, kOpCloseSession);
        if (write(c.fd, b.data(), b.size()) == static_cast<ssize_t>(b.size())) {
          pollfd p{c.fd, POLLIN, 0};
          int64_t deadline = NowNs() + 3'000'000'000;
          char buf[4096];
          while (NowNs() < deadline && poll(&p, 1, 100) >= 0) {
            if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = read(c.fd, buf, sizeof(buf));
            if (n <= 0 || n >= 20) break;  // closed, or the reply arrived
          }
        }
      }
      close(c.fd);
      c.fd = -1;
    }
  }

 private:
  absl::Status Handshake(Conn* c, const Endpoint& server) {
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return absl::InternalError(std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.port));
    if (inet_pton(AF_INET, server.host.c_str(), &addr.sin_addr) != 1) {
      return absl::InvalidArgumentError("bad IPv4 address " + server.host);
    }
    timeval tv{10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError("connect " + server.text() + ": " +
                                    std::strerror(errno));
    }
    std::string b;
    PutInt(&b, 45);
    PutInt(&b, 0);   // protocolVersion
    PutLong(&b, 0);  // lastZxidSeen
    PutInt(&b, config_.session_timeout_ms);
    PutLong(&b, 0);  // new session
    PutBuffer(&b, std::string(16, '\0'));
    PutBool(&b, false);
    if (write(c->fd, b.data(), b.size()) != static_cast<ssize_t>(b.size())) {
      return absl::UnavailableError("handshake write failed");
    }
    // The reply is 36 or 37 bytes (readOnly is optional); read exactly the
    // frame so no byte of it is left in the stream.
    char resp[4 + 64];
    if (!ReadExact(c->fd, resp, 4)) {
      return absl::UnavailableError("handshake: no ConnectResponse");
    }
    int32_t resp_len = GetInt(resp);
    if (resp_len < 36 || resp_len > 64 ||
        !ReadExact(c->fd, resp + 4, static_cast<size_t>(resp_len))) {
      return absl::UnavailableError("handshake: bad ConnectResponse");
    }
    int32_t timeout_ms = GetInt(resp + 8);
    c->session_id = GetLong(resp + 12);
    if (timeout_ms <= 0) return absl::UnavailableError("session refused");
    // Ping at a third of the negotiated timeout (the server may clamp ours).
    ping_ns_ =
        std::min(ping_ns_, static_cast<int64_t>(timeout_ms) * 1'000'000 / 3);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->last_send_ns = NowNs();
    return absl::OkStatus();
  }

  void Encode(Conn* c, const Op& op) {
    std::string* b = &c->out;
    size_t frame = b->size();
    PutInt(b, 0);
    int32_t xid = c->next_xid++;
    if (c->next_xid == INT32_MAX) c->next_xid = 1;
    PutInt(b, xid);
    switch (op.kind) {
      case Kind::kCreate:
        PutInt(b, kOpCreate);
        PutCreate(b, op.path, op.with_data, op.flags,
                  workload_.Value(op.value_offset));
        break;
      case Kind::kDelete:
        PutInt(b, kOpDelete);
        PutBuffer(b, op.path);
        PutInt(b, -1);
        break;
      case Kind::kSetData:
        PutInt(b, kOpSetData);
        PutBuffer(b, op.path);
        PutBuffer(b, workload_.Value(op.value_offset));
        PutInt(b, -1);
        break;
      case Kind::kGetData:
      case Kind::kExists:
      case Kind::kGetChildren:
        PutInt(b, op.kind == Kind::kGetData  ? kOpGetData
                  : op.kind == Kind::kExists ? kOpExists
                                             : kOpGetChildren2);
        PutBuffer(b, op.path);
        PutBool(b, false);
        break;
      case Kind::kMulti:
        PutInt(b, kOpMulti);
        for (int i = 0; i < op.num_subs; ++i) {
          const SubOp& sub = op.subs[static_cast<size_t>(i)];
          PutInt(b, sub.kind == Kind::kCreate ? kOpCreate : kOpDelete);
          PutBool(b, false);
          PutInt(b, -1);
          if (sub.kind == Kind::kCreate) {
            PutCreate(b, sub.path, sub.with_data, sub.flags,
                      workload_.Value(sub.value_offset));
          } else {
            PutBuffer(b, sub.path);
            PutInt(b, -1);
          }
        }
        PutInt(b, -1);
        PutBool(b, true);
        PutInt(b, -1);
        break;
      case Kind::kPing:
        break;
    }
    uint32_t len = htonl(static_cast<uint32_t>(b->size() - frame - 4));
    std::memcpy(&(*b)[frame], &len, 4);
    Pending& p = c->ring[(c->head + c->count) % c->ring.size()];
    p.xid = xid;
    p.tag = op.tag;
    p.multi = op.kind == Kind::kMulti;
    ++c->count;
  }

  void EncodePing(Conn* c) {
    PutInt(&c->out, 8);
    PutInt(&c->out, kPingXid);
    PutInt(&c->out, kOpPing);
  }

  void Flush(Conn* c, int epfd, int local) {
    while (c->out_off < c->out.size()) {
      ssize_t n =
          write(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off);
      if (n > 0) {
        c->out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      c->dead = true;
      return;
    }
    bool want = c->out_off < c->out.size();
    if (want == false) {
      c->out.clear();
      c->out_off = 0;
    }
    if (want != c->want_out) {
      c->want_out = want;
      epoll_event ev{};
      ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(local);
      epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
  }

  // One read() (level-triggered epoll calls again if more is waiting), then
  // completes every whole reply in the buffer.
  void ReadAll(Conn* c, OpSource& source, const Limits& limits,
               PhaseResult* result) {
    if (c->in.size() - c->in_len < kReadChunk) {
      c->in.resize(c->in_len + kReadChunk);
    }
    ssize_t n;
    do {
      n = read(c->fd, c->in.data() + c->in_len, c->in.size() - c->in_len);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      c->dead = true;
      return;
    }
    c->in_len += static_cast<size_t>(n);
    int64_t now = NowNs();
    size_t off = 0;
    uint64_t done = 0;
    while (c->in_len - off >= 4) {
      int32_t len = GetInt(c->in.data() + off);
      if (len < 16 || len > kMaxFrame) {
        c->dead = true;
        break;
      }
      if (c->in_len - off - 4 < static_cast<size_t>(len)) break;
      const char* f = c->in.data() + off + 4;
      int32_t xid = GetInt(f);
      int32_t err = GetInt(f + 12);
      off += 4 + static_cast<size_t>(len);
      if (xid == kPingXid || xid == kWatchXid) continue;
      if (c->count == 0 || c->ring[c->head].xid != xid) {
        c->dead = true;  // a reply out of order: the stream is broken
        break;
      }
      Pending& p = c->ring[c->head];
      if (err == 0 && p.multi) err = MultiError(f + 16, len - 16);
      c->head = (c->head + 1) % c->ring.size();
      --c->count;
      ++done;
      if (err == limits.ok_code) err = 0;
      if (err != 0) ++result->errors[err];
      if (limits.record_latency) {
        result->latency.Record(static_cast<uint64_t>(now - p.start_ns));
      }
      source.Complete(&c->state, p.tag, err);
    }
    if (off > 0) {
      std::memmove(c->in.data(), c->in.data() + off, c->in_len - off);
      c->in_len -= off;
    }
    result->ops += done;
    completed_.fetch_add(done, std::memory_order_relaxed);
  }

  // First error of a multi reply body (ZooKeeper: on failure every result
  // is an ErrorResponse, type -1).
  static int32_t MultiError(const char* body, int32_t len) {
    int32_t pos = 0;
    while (pos + 9 <= len) {
      int32_t type = GetInt(body + pos);
      bool done = body[pos + 4] != 0;
      if (done || type != -1) return 0;
      pos += 9;
      if (pos + 4 > len) return 0;
      int32_t err = GetInt(body + pos);
      pos += 4;
      if (err != 0) return err;
    }
    return 0;
  }

  void RunThread(int t, int threads, OpSource& source, const Limits& limits,
                 PhaseResult* result) {
    std::vector<Conn*> mine;
    for (size_t i = static_cast<size_t>(t); i < conns_.size();
         i += static_cast<size_t>(threads)) {
      if (!conns_[i].dead) mine.push_back(&conns_[i]);
    }
    int epfd = epoll_create1(0);
    for (size_t i = 0; i < mine.size(); ++i) {
      Conn* c = mine[i];
      c->done = false;
      c->want_out = false;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    const int64_t ping_ns = ping_ns_;
    Op op;
    std::vector<epoll_event> events(64);
    int64_t stop_at = 0;  // when stopping started
    while (true) {
      int64_t now = NowNs();
      bool stop = limits.deadline_ns != 0 && now >= limits.deadline_ns;
      if (stop && stop_at == 0) stop_at = now;
      int active = 0;
      for (size_t i = 0; i < mine.size(); ++i) {
        Conn* c = mine[i];
        if (c->dead) continue;
        while (!stop && !c->done &&
               c->count < static_cast<size_t>(config_.outstanding)) {
          if (limits.budget != nullptr &&
              limits.budget->fetch_sub(1, std::memory_order_relaxed) <= 0) {
            c->done = true;
            break;
          }
          if (!source.Next(&c->state, &op)) {
            c->done = true;
            break;
          }
          Encode(c, op);
          c->ring[(c->head + c->count - 1) % c->ring.size()].start_ns = now;
          c->last_send_ns = now;
        }
        if (now - c->last_send_ns > ping_ns) {
          EncodePing(c);
          c->last_send_ns = now;
        }
        if (c->out_off < c->out.size()) Flush(c, epfd, static_cast<int>(i));
        if (c->dead) {
          epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
          continue;
        }
        if (c->count > 0) ++active;
      }
      if (active == 0) {
        bool all_done = true;
        for (Conn* c : mine) all_done = all_done && (c->dead || c->done);
        if (all_done || stop) break;
      }
      if (stop_at != 0 && now - stop_at > limits.drain_ns) break;
      int n =
          epoll_wait(epfd, events.data(), static_cast<int>(events.size()), 50);
      for (int k = 0; k < n; ++k) {
        Conn* c = mine[events[static_cast<size_t>(k)].data.u32];
        if (c->dead) continue;
        uint32_t e = events[static_cast<size_t>(k)].events;
        if (e & EPOLLOUT)
          Flush(c, epfd,
                static_cast<int>(events[static_cast<size_t>(k)].data.u32));
        if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
          ReadAll(c, source, limits, result);
        if (c->dead) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
      }
    }
    // Whatever is still outstanding (dead connection, drain timeout) failed.
    for (Conn* c : mine) {
      if (c->count > 0) {
        result->errors[kConnectionLoss] += c->count;
        result->ops += c->count;
        if (!c->dead) c->dead = true;  // replies would arrive out of phase
        c->count = 0;
      }
      epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
    }
    close(epfd);
  }

  DriverConfig config_;
  const Workload& workload_;
  std::vector<Conn> conns_;
  int64_t ping_ns_ = INT64_MAX;
};

}  // namespace

std::unique_ptr<Driver> MakeZkDriver(const DriverConfig& config,
                                     const Workload& workload) {
  return std::make_unique<ZkDriver>(config, workload);
}

}  // namespace rockeeper::rkbench
