#include "tools/rkctl/four_letter.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace rockeeper::rkctl {

namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

absl::StatusOr<std::string> SendFourLetterWord(const std::string& host,
                                               int port, absl::string_view word,
                                               int timeout_ms) {
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = absl::StrCat(port);
  if (int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  absl::Cleanup free_res = [res] { freeaddrinfo(res); };
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    absl::Cleanup close_fd = [fd] { close(fd); };
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, RemainingMs(deadline)) <= 0) {
        last_error = "connect timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last_error = std::strerror(err);
        continue;
      }
    }
    size_t sent = 0;
    while (sent < word.size()) {
      const ssize_t n =
          send(fd, word.data() + sent, word.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, RemainingMs(deadline)) <= 0) {
          return absl::DeadlineExceededError(
              absl::StrCat("timed out sending to ", where));
        }
        continue;
      }
      if (n < 0) {
        return absl::UnavailableError(
            absl::StrCat("send to ", where, ": ", std::strerror(errno)));
      }
      sent += static_cast<size_t>(n);
    }
    std::string answer;
    char buf[4096];
    while (true) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n > 0) {
        answer.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return answer;
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLIN, 0};
        const int rc = poll(&p, 1, RemainingMs(deadline));
        if (rc == 0) {
          return absl::DeadlineExceededError(
              absl::StrCat("timed out reading from ", where));
        }
        if (rc < 0 && errno != EINTR) {
          return absl::UnavailableError(std::strerror(errno));
        }
        continue;
      }
      // A reset after the answer (the server closes at once) ends it too.
      if (errno == ECONNRESET && !answer.empty()) return answer;
      return absl::UnavailableError(
          absl::StrCat("read from ", where, ": ", std::strerror(errno)));
    }
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", where, ": ", last_error));
}

bool ParseHostPort(absl::string_view text, const std::string& default_host,
                   int default_port, std::string* host, int* port) {
  *host = default_host;
  *port = default_port;
  if (text.empty()) return true;
  absl::string_view port_text;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return false;
    *host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      port_text = text.substr(close + 2);
    }
  } else if (const size_t colon = text.rfind(':');
             colon != absl::string_view::npos) {
    if (colon > 0) *host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  } else if (std::all_of(text.begin(), text.end(), [](char c) {
               return absl::ascii_isdigit(static_cast<unsigned char>(c));
             })) {
    port_text = text;
  } else {
    *host = std::string(text);
  }
  if (!port_text.empty()) {
    int p = 0;
    if (!absl::SimpleAtoi(port_text, &p) || p <= 0 || p > 65535) return false;
    *port = p;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ParseKeyValues(
    absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    size_t sep = line.find('\t');
    size_t skip = 1;
    if (sep == absl::string_view::npos) {
      sep = line.find(": ");
      skip = 2;
    }
    if (sep == absl::string_view::npos) continue;
    out.emplace_back(
        std::string(absl::StripAsciiWhitespace(line.substr(0, sep))),
        std::string(absl::StripAsciiWhitespace(line.substr(sep + skip))));
  }
  return out;
}

}  // namespace rockeeper::rkctl
