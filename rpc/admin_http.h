// AdminHttpServer: the admin HTTP endpoints (ZooKeeper's AdminServer, which
// is Jetty on admin.serverPort), as a small dependency-free HTTP/1.1 server:
//
//   GET /commands             the command list (links, as ZooKeeper)
//   GET /commands/<name>      the command as JSON (ruok, monitor/mntr,
//                             server_stats/srvr, stats/stat, configuration,
//                             environment, dirs, dump, connections, watches,
//                             watch_summary, watches_by_path, ...)
//   GET /metrics              Prometheus text exposition format 0.0.4
//   GET /live, /ready         200 "ok" or 503
//
// One thread multiplexes every connection with poll(). Requests are bounded
// (request line + headers <= max_request_bytes, bodies <= max_body_bytes);
// a malformed request gets 400 and its connection is closed, an unknown path
// 404, another method than GET/HEAD/POST 405; connections idle for
// idle_timeout_ms (or slower than that to send a request) are closed.
// Handlers run on the server's thread, one request at a time.
//
// Thread safety: Start/port/the destructor from one thread; the server's
// thread calls the endpoints' callbacks.
#ifndef ROCKEEPER_RPC_ADMIN_HTTP_H_
#define ROCKEEPER_RPC_ADMIN_HTTP_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rpc/four_letter_words.h"
#include "rpc/metrics.h"

namespace rockeeper::rpc {

struct AdminHttpOptions {
  // Listen address and port (0 = any free port). Defaults: ZooKeeper's
  // admin.serverAddress 0.0.0.0 and admin.serverPort 8080.
  std::string address = "0.0.0.0";
  int port = 8080;
  // Where the commands live (admin.commandURL). Default: "/commands".
  std::string command_url = "/commands";
  // Request line + headers. Default: 16 KiB.
  size_t max_request_bytes = 16 << 10;
  // Request body (read and ignored). Default: 64 KiB.
  size_t max_body_bytes = 64 << 10;
  // admin.idleTimeout. Default: 30000 ms.
  int idle_timeout_ms = 30000;
  // Connections open at once; more are closed at accept. Default: 128.
  size_t max_connections = 128;
};

// What the endpoints serve.
struct AdminEndpoints {
  // The commands' data (the same handlers as the four-letter words; the
  // whitelist does not apply).
  FourLetterWords commands;
  // Counters for /metrics and the server's own request counts. Not null.
  ServerMetrics* metrics = nullptr;
  // /live: the process can make progress (e.g. the write path is not
  // failed). /ready: it also serves clients. Null = always true.
  std::function<bool()> live;
  std::function<bool()> ready;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Routes one request (exposed for tests and reuse). `method` is GET, HEAD or
// POST; `path` has no query string.
HttpResponse RouteAdminRequest(const AdminHttpOptions& options,
                               const AdminEndpoints& endpoints,
                               absl::string_view method,
                               absl::string_view path);

class AdminHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<AdminHttpServer>> Start(
      const AdminHttpOptions& options, AdminEndpoints endpoints);
  ~AdminHttpServer();  // closes every connection and joins the thread
  int port() const;

  class Impl;

 private:
  explicit AdminHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_ADMIN_HTTP_H_
