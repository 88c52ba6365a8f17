// rkctl: a zkCli.sh-compatible command-line client for rockeeper (gRPC API),
// with an interactive shell and a one-shot mode for scripts. docs/rkctl.md.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/rkctl/cli.h"
#include "tools/rkctl/shell.h"

namespace {

using rockeeper::rkctl::Cli;
using rockeeper::rkctl::CliOptions;

constexpr char kUsage[] =
    "usage: rkctl [-s host:port[,host:port...]] [--zk host[:port]]\n"
    "             [--timeout ms] [--session-timeout ms] [--json]\n"
    "             [--history-file path] [command [args...]]\n"
    "\n"
    "Without a command: an interactive shell (zkCli.sh style). With one:\n"
    "runs it and exits 0 on success, 1 on a ZooKeeper error, 2 on a usage\n"
    "error, 3 when the ensemble cannot be reached. `rkctl help` lists the\n"
    "commands; see docs/rkctl.md.\n"
    "\n"
    "  -s, -server, --server   gRPC endpoints (default 127.0.0.1:2281)\n"
    "  --zk host[:port]        ZooKeeper wire port for 4lw/srvr/mntr\n"
    "                          (default: the first server's host, 2181)\n"
    "  --timeout ms            connect and request timeout (default 10000)\n"
    "  --session-timeout ms    requested session timeout (default 30000)\n"
    "  --json                  JSON output for the read commands\n"
    "  --history-file path     shell history (default ~/.rkctl_history)\n";

// The shell: SIGINT stops a `watch` or drops the line being edited. One-shot
// mode: it stops a `watch`, and otherwise ends the process as usual.
bool g_one_shot = false;

void OnSigint(int) {
  if (g_one_shot && !Cli::Watching()) {
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  Cli::Interrupt();
  rockeeper::rkctl::WakeShell();
}

bool ParseMs(const char* text, int32_t* out) {
  int32_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v <= 0) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CliOptions options;
  std::string history_file;
  if (const char* env = std::getenv("RKCTL_HISTORY")) {
    history_file = env;
  } else if (const char* home = std::getenv("HOME")) {
    history_file = absl::StrCat(home, "/.rkctl_history");
  }
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg[0] != '-') break;
    if (arg == "--") {
      ++i;
      break;
    }
    const bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--json") {
      options.json = true;
    } else if ((arg == "-s" || arg == "-server" || arg == "--server") &&
               has_value) {
      options.servers = argv[++i];
    } else if (arg == "--zk" && has_value) {
      options.zk_address = argv[++i];
    } else if ((arg == "--timeout") && has_value &&
               ParseMs(argv[i + 1], &options.connect_timeout_ms)) {
      options.request_timeout_ms = options.connect_timeout_ms;
      ++i;
    } else if ((arg == "--session-timeout" || arg == "-timeout") && has_value &&
               ParseMs(argv[i + 1], &options.session_timeout_ms)) {
      ++i;
    } else if (arg == "--history-file" && has_value) {
      history_file = argv[++i];
    } else {
      std::fprintf(stderr, "rkctl: bad option %s\n%s", arg.c_str(), kUsage);
      return rockeeper::rkctl::kExitUsage;
    }
  }
  std::vector<std::string> words(argv + i, argv + argc);

  g_one_shot = !words.empty();
  struct sigaction sa {};
  sa.sa_handler = OnSigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  rockeeper::rkctl::Printer printer;
  if (!words.empty()) {
    Cli cli(options, &printer);
    return cli.Execute(words);
  }
  options.interactive = true;
  Cli cli(options, &printer);
  printer.Out(absl::StrCat("Connecting to ", options.servers, "\n"));
  if (absl::Status s = cli.Connect(); !s.ok()) {
    printer.Err(absl::StrCat("Unable to connect to ", options.servers, ": ",
                             s.message(), "\n"));
  } else {
    printer.Out("Welcome to rockeeper!\n");
  }
  return rockeeper::rkctl::RunShell(cli, history_file);
}
