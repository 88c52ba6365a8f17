#include "rpc/admin_http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace rockeeper::rpc {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

HttpResponse Text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// A token character of RFC 9110 (method and header names).
bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Visible ASCII only (no spaces, controls or bytes >= 0x80).
bool IsVisibleAscii(absl::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// "METHOD /target HTTP/1.x".
bool ValidRequestLine(absl::string_view line) {
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  return parts.size() == 3 && IsToken(parts[0]) && !parts[1].empty() &&
         parts[1][0] == '/' && IsVisibleAscii(parts[1]) &&
         (parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0");
}

}  // namespace

HttpResponse RouteAdminRequest(const AdminHttpOptions& options,
                               const AdminEndpoints& endpoints,
                               absl::string_view method,
                               absl::string_view path) {
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/live" || path == "/ready") {
    if (!get) return Text(405, "method not allowed\n");
    const auto& check = path == "/live" ? endpoints.live : endpoints.ready;
    const bool ok = !check || check();
    return ok ? Text(200, "ok\n") : Text(503, "not ready\n");
  }
  if (path == "/metrics") {
    if (!get) return Text(405, "method not allowed\n");
    const ServerSnapshot s = endpoints.commands.snapshot
                                 ? endpoints.commands.snapshot()
                                 : ServerSnapshot{};
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = endpoints.metrics->RenderPrometheus(s);
    return r;
  }
  const std::string& base = options.command_url;
  if (path == base || path == base + "/") {
    if (!get) return Text(405, "method not allowed\n");
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    for (const std::string& name : AdminCommandNames()) {
      absl::StrAppend(&r.body, "<a href=\"", base, "/", name, "\">", name,
                      "</a>\n<br/>\n");
    }
    return r;
  }
  if (absl::StartsWith(path, base + "/")) {
    const absl::string_view name = path.substr(base.size() + 1);
    // ZooKeeper accepts GET and POST for commands.
    if (!get && method != "POST") return Text(405, "method not allowed\n");
    HttpResponse r;
    r.content_type = "application/json";
    std::optional<std::string> json = RunAdminCommand(name, endpoints.commands);
    if (!json) {
      // As ZooKeeper 3.8's AdminServer: 200 with an "error" member.
      r.status = 200;
      r.body = absl::StrCat(
          "{\n  \"command\" : ", JsonString(name), ",\n  \"error\" : ",
          JsonString(absl::StrCat("Unknown command: ", name)), "\n}\n");
      return r;
    }
    r.body = *std::move(json);
    return r;
  }
  return Text(404, "not found\n");
}

// --- The server
// -----------------------------------------------------------------

class AdminHttpServer::Impl {
 public:
  Impl(AdminHttpOptions options, AdminEndpoints endpoints)
      : options_(std::move(options)), endpoints_(std::move(endpoints)) {}
  ~Impl();
  absl::Status Listen();
  void Loop();

  struct Conn {
    int fd = -1;
    std::string in;
    std::string out;
    absl::Time last_activity;
    absl::Time request_started;  // first byte of the pending request
    bool close_after_write = false;
    bool peer_closed = false;  // read end saw EOF or an error
    // After a response that closes the connection: our side is shut down,
    // input is read and dropped until the peer closes (bounded), so the
    // peer sees the response instead of a reset (lingering close).
    bool draining = false;
    absl::Time drain_deadline;
    size_t drained_bytes = 0;
  };

  // Parses and answers every complete request in `c.in`. False: close now.
  void Process(Conn& c);
  void Respond(Conn& c, const HttpResponse& r, bool head, bool close);
  void Reject(Conn& c, int status, const char* why);
  // Writes what it can. False: the socket failed.
  bool Write(Conn& c);

  const AdminHttpOptions options_;
  const AdminEndpoints endpoints_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::vector<Conn> conns_;  // loop thread only
};

absl::Status AdminHttpServer::Impl::Listen() {
  const bool v6 = options_.address.find(':') != std::string::npos;
  listen_fd_ = ::socket(v6 ? AF_INET6 : AF_INET,
                        SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(options_.port));
    if (inet_pton(AF_INET6, options_.address.c_str(), &a->sin6_addr) != 1) {
      return absl::InvalidArgumentError("bad admin.serverAddress " +
                                        options_.address);
    }
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(options_.port));
    if (inet_pton(AF_INET, options_.address.c_str(), &a->sin_addr) != 1) {
      return absl::InvalidArgumentError("bad admin.serverAddress " +
                                        options_.address);
    }
    len = sizeof(*a);
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.address, ":", options_.port,
                     ": ", std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return absl::InternalError("eventfd failed");
  return absl::OkStatus();
}

void AdminHttpServer::Impl::Respond(Conn& c, const HttpResponse& r, bool head,
                                    bool close) {
  endpoints_.metrics->admin_requests.Add();
  if (r.status >= 400 && r.status < 500) {
    endpoints_.metrics->admin_bad_requests.Add();
  }
  absl::StrAppend(&c.out, "HTTP/1.1 ", r.status, " ", Reason(r.status),
                  "\r\nContent-Type: ", r.content_type,
                  "\r\nContent-Length: ", r.body.size(),
                  "\r\nCache-Control: no-cache\r\nConnection: ",
                  close ? "close" : "keep-alive", "\r\n");
  if (r.status == 405) absl::StrAppend(&c.out, "Allow: GET, HEAD, POST\r\n");
  absl::StrAppend(&c.out, "\r\n");
  if (!head) c.out += r.body;
  if (close) c.close_after_write = true;
}

void AdminHttpServer::Impl::Reject(Conn& c, int status, const char* why) {
  Respond(c, Text(status, absl::StrCat(why, "\n")), false, /*close=*/true);
  c.in.clear();
}

void AdminHttpServer::Impl::Process(Conn& c) {
  // One request at a time: later pipelined ones wait for the output.
  while (!c.close_after_write && c.out.empty() && !c.in.empty()) {
    size_t header_end = c.in.find("\r\n\r\n");
    size_t sep = 4;
    const size_t lf = c.in.find("\n\n");
    if (lf != std::string::npos &&
        (header_end == std::string::npos || lf < header_end)) {
      header_end = lf;
      sep = 2;
    }
    if (header_end == std::string::npos) {
      // Refuse a bad request line at once instead of waiting for headers.
      const size_t eol = c.in.find('\n');
      if (eol != std::string::npos &&
          !ValidRequestLine(absl::StripTrailingAsciiWhitespace(
              absl::string_view(c.in).substr(0, eol)))) {
        Reject(c, 400, "bad request line");
        return;
      }
      if (c.in.size() > options_.max_request_bytes) {
        Reject(c, 431, "request header too large");
      }
      return;  // wait for more
    }
    if (header_end > options_.max_request_bytes) {
      Reject(c, 431, "request header too large");
      return;
    }
    const absl::string_view head(c.in.data(), header_end);
    std::vector<absl::string_view> lines =
        absl::StrSplit(head, absl::ByAnyChar("\n"));
    for (auto& l : lines) {
      if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    }
    if (!ValidRequestLine(lines[0])) {
      Reject(c, 400, "bad request line");
      return;
    }
    std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
    const absl::string_view method = parts[0];
    absl::string_view target = parts[1];
    bool keep_alive = parts[2] == "HTTP/1.1";
    size_t content_length = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      const absl::string_view l = lines[i];
      const size_t colon = l.find(':');
      if (colon == absl::string_view::npos || !IsToken(l.substr(0, colon))) {
        Reject(c, 400, "bad header line");
        return;
      }
      const std::string name = absl::AsciiStrToLower(l.substr(0, colon));
      const absl::string_view value =
          absl::StripAsciiWhitespace(l.substr(colon + 1));
      if (name == "content-length") {
        uint64_t n = 0;
        if (!absl::SimpleAtoi(value, &n) || value.empty() || value[0] == '+' ||
            value[0] == '-') {
          Reject(c, 400, "bad Content-Length");
          return;
        }
        if (n > options_.max_body_bytes) {
          Reject(c, 413, "request body too large");
          return;
        }
        content_length = static_cast<size_t>(n);
      } else if (name == "transfer-encoding") {
        Reject(c, 501, "Transfer-Encoding is not supported");
        return;
      } else if (name == "connection") {
        const std::string v = absl::AsciiStrToLower(value);
        if (absl::StrContains(v, "close")) keep_alive = false;
        if (absl::StrContains(v, "keep-alive")) keep_alive = true;
      }
    }
    const size_t total = header_end + sep + content_length;
    if (c.in.size() < total) return;  // body still coming
    const size_t q = target.find('?');
    if (q != absl::string_view::npos) target = target.substr(0, q);
    const std::string method_s(method);
    const std::string path(target);
    c.in.erase(0, total);
    c.request_started = absl::Now();
    HttpResponse r;
    if (method_s != "GET" && method_s != "HEAD" && method_s != "POST") {
      r = Text(405, "method not allowed\n");
    } else {
      r = RouteAdminRequest(options_, endpoints_, method_s, path);
    }
    Respond(c, r, method_s == "HEAD", !keep_alive);
  }
}

bool AdminHttpServer::Impl::Write(Conn& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      c.last_activity = absl::Now();
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

void AdminHttpServer::Impl::Loop() {
  std::vector<pollfd> fds;
  const absl::Duration idle = absl::Milliseconds(options_.idle_timeout_ms);
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const Conn& c : conns_) {
      short ev = 0;
      // Stop reading while a response is pending (bounded buffering).
      if (c.out.empty() || c.draining) ev |= POLLIN;
      if (!c.out.empty()) ev |= POLLOUT;
      fds.push_back({c.fd, ev, 0});
    }
    const int n = ::poll(fds.data(), fds.size(), 250);
    if (n < 0 && errno != EINTR) break;
    const absl::Time now = absl::Now();
    std::vector<bool> drop(conns_.size(), false);
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      const short re = fds[i + 2].revents;
      if (re & (POLLERR | POLLNVAL)) {
        drop[i] = true;
        continue;
      }
      if (re & (POLLIN | POLLHUP)) {
        char buf[8192];
        if (c.draining) {
          for (int reads = 0; reads < 16; ++reads) {
            const ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
            if (r > 0) {
              c.drained_bytes += static_cast<size_t>(r);
              continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (r < 0 && errno == EINTR) continue;
            c.peer_closed = true;
            break;
          }
        }
        for (int reads = 0; !c.draining && reads < 16; ++reads) {
          const ssize_t r = ::recv(c.fd, buf, sizeof(buf), 0);
          if (r > 0) {
            if (c.in.empty()) c.request_started = now;
            c.in.append(buf, static_cast<size_t>(r));
            c.last_activity = now;
            if (c.in.size() >
                options_.max_request_bytes + options_.max_body_bytes)
              break;
            continue;
          }
          if (r == 0) c.peer_closed = true;
          if (r < 0 && errno == EINTR) continue;
          if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            c.peer_closed = true;
          }
          break;
        }
      }
      // Answer requests while the socket takes the output; pipelined
      // requests are answered one after the other.
      Process(c);
      bool failed = false;
      for (int rounds = 0; rounds < 64 && !c.out.empty(); ++rounds) {
        if (!Write(c)) {
          failed = true;
          break;
        }
        if (!c.out.empty() || c.close_after_write) break;
        Process(c);
      }
      if (c.draining) {
        if (c.peer_closed || now > c.drain_deadline ||
            c.drained_bytes > (1u << 20)) {
          drop[i] = true;
        }
        continue;
      }
      if (failed || (c.out.empty() && c.peer_closed)) {
        drop[i] = true;
        continue;
      }
      if (c.out.empty() && c.close_after_write) {
        ::shutdown(c.fd, SHUT_WR);
        c.draining = true;
        c.drain_deadline = now + absl::Seconds(2);
        c.in.clear();
        continue;
      }
      // Idle connections, and clients too slow to send a whole request.
      if (now - c.last_activity > idle ||
          (!c.in.empty() && now - c.request_started > idle)) {
        drop[i] = true;
      }
    }
    for (size_t i = conns_.size(); i-- > 0;) {
      if (!drop[i]) continue;
      ::close(conns_[i].fd);
      conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (fds[1].revents & POLLIN) {
      uint64_t v = 0;
      (void)!::read(wake_fd_, &v, sizeof(v));
    }
    if (fds[0].revents & POLLIN) {
      for (int accepted = 0; accepted < 64; ++accepted) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        if (conns_.size() >= options_.max_connections) {
          ::close(fd);
          continue;
        }
        Conn c;
        c.fd = fd;
        c.last_activity = c.request_started = absl::Now();
        conns_.push_back(std::move(c));
      }
    }
  }
}

AdminHttpServer::Impl::~Impl() {
  stopping_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  for (Conn& c : conns_) ::close(c.fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::StatusOr<std::unique_ptr<AdminHttpServer>> AdminHttpServer::Start(
    const AdminHttpOptions& options, AdminEndpoints endpoints) {
  if (endpoints.metrics == nullptr) {
    return absl::InvalidArgumentError("AdminEndpoints.metrics is null");
  }
  auto impl = std::make_unique<Impl>(options, std::move(endpoints));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  Impl* raw = impl.get();
  impl->thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "rk-admin-http");
    raw->Loop();
  });
  return std::unique_ptr<AdminHttpServer>(new AdminHttpServer(std::move(impl)));
}

AdminHttpServer::AdminHttpServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
AdminHttpServer::~AdminHttpServer() = default;
int AdminHttpServer::port() const { return impl_->port_; }

}  // namespace rockeeper::rpc
