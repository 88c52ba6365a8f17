// Four-letter words ("srvr", "mntr", "ruok", ...) over a plain TCP
// connection to a server's ZooKeeper wire port (clientPort): send the word,
// read the answer until the server closes the connection.
#ifndef ROCKEEPER_TOOLS_RKCTL_FOUR_LETTER_H_
#define ROCKEEPER_TOOLS_RKCTL_FOUR_LETTER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rockeeper::rkctl {

// The whole answer. Unavailable if the connection fails, DeadlineExceeded
// if the answer does not complete within `timeout_ms`. Thread-safe.
absl::StatusOr<std::string> SendFourLetterWord(const std::string& host,
                                               int port, absl::string_view word,
                                               int timeout_ms);

// Splits "host[:port]" / "[v6]:port" / "port"; missing parts come from
// the defaults. Returns false if the port is not a number in 1..65535.
bool ParseHostPort(absl::string_view text, const std::string& default_host,
                   int default_port, std::string* host, int* port);

// Key/value pairs of `mntr` ("key\tvalue" lines) or `srvr` ("Key: value"
// lines), in order.
std::vector<std::pair<std::string, std::string>> ParseKeyValues(
    absl::string_view text);

}  // namespace rockeeper::rkctl

#endif  // ROCKEEPER_TOOLS_RKCTL_FOUR_LETTER_H_
