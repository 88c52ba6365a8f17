// rkctl's command interpreter: the connection to the ensemble (a
// rockeeper::client::Client over gRPC), the zkCli.sh 3.8 command set and
// rkctl's own commands, zkCli's history / redo numbering, and output.
// Used by both the interactive shell (shell.cc) and one-shot mode (main.cc).
//
// Thread safety: one thread (the shell's) calls the public methods, except
// Interrupt(), which is async-signal-safe. Watch events arrive on the
// client's dispatcher thread and are printed through the same Printer,
// which serialises whole messages.
#ifndef ROCKEEPER_TOOLS_RKCTL_CLI_H_
#define ROCKEEPER_TOOLS_RKCTL_CLI_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rpc/client.h"
#include "tools/rkctl/args.h"

namespace rockeeper::rkctl {

// Exit codes of one-shot mode (docs/rkctl.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitZkError = 1;     // the server answered an error
inline constexpr int kExitUsage = 2;       // unknown command, bad flags/args
inline constexpr int kExitConnection = 3;  // no connection / session lost

// Writes to stdout / stderr (or to the given sinks, for tests), one whole
// message at a time, flushed. Thread-safe.
class Printer {
 public:
  using Sink = std::function<void(absl::string_view)>;
  Printer();  // stdout / stderr
  Printer(Sink out, Sink err);
  void Out(absl::string_view text);
  void Err(absl::string_view text);

 private:
  absl::Mutex mu_;
  Sink out_;
  Sink err_;
};

struct CliOptions {
  // ZooKeeper-style connect string of gRPC endpoints: "h1:p1,h2:p2".
  std::string servers = "127.0.0.1:2281";
  // host[:port] of the ZooKeeper wire port for four-letter words; empty:
  // the first server's host, port 2181.
  std::string zk_address;
  int32_t connect_timeout_ms = 10000;
  int32_t request_timeout_ms = 10000;
  int32_t session_timeout_ms = 30000;
  bool json = false;         // --json for every command
  bool interactive = false;  // shell: prints session events, prompt state
};

class Cli {
 public:
  Cli(CliOptions options, Printer* printer);
  ~Cli();
  Cli(const Cli&) = delete;
  Cli& operator=(const Cli&) = delete;

  // Connects (blocking, bounded by connect_timeout_ms). Failure is reported
  // on the printer; commands retry the connection later.
  absl::Status Connect();

  // Runs one shell line: counts it in the history (zkCli numbering), then
  // executes it. Returns the command's exit code (kExit*).
  int ExecuteLine(const std::string& line);
  // Runs one command given as words (one-shot mode); not counted in the
  // history. In one-shot mode the last stderr line of a failure names the
  // ZooKeeper error ("Error: NONODE").
  int Execute(const std::vector<std::string>& words);

  // "[rk: host:port(CONNECTED) N] ".
  std::string Prompt() const;
  bool quit_requested() const { return quit_; }

  // Completion candidates for the word `word` at word index `index` of the
  // line (0: command names; later: znode paths).
  std::vector<std::string> Complete(absl::string_view word, int index);

  // All command names (zkCli's and rkctl's), sorted.
  static std::vector<std::string> CommandNames();

  // Stops a running `watch` (SIGINT). Async-signal-safe.
  static void Interrupt();
  static void ClearInterrupt();
  static bool Interrupted() { return interrupted_.load(); }
  // True while a `watch` runs (SIGINT stops it rather than the process).
  static bool Watching() { return watching_.load(); }

 private:
  struct Result {
    int exit_code = kExitOk;
    int32_t zk_code = 0;
  };
  using Handler = Result (Cli::*)(const ParsedArgs&);
  struct Command {
    std::string name;
    std::string usage;  // as zkCli prints it, after the name
    std::vector<OptionSpec> options;
    Handler handler;
    bool needs_connection = true;
    int min_args = 0;  // positional arguments after the name
  };
  static const std::vector<Command>& Commands();
  static const Command* FindCommand(absl::string_view name);

  Result Dispatch(const std::vector<std::string>& words);
  std::string UsageLine(const Command& c) const;
  void PrintAllUsage();
  Result UsageError(const Command& c, absl::string_view message);

  // Connection.
  absl::Status EnsureConnected();
  void Disconnect();
  void OnSessionEvent(const client::WatchEvent& event);
  void PrintEvent(const client::WatchEvent& event);
  client::Watcher EventPrinter();
  std::string StateName() const;
  std::string FourLetterAddress() const;

  // Output helpers.
  void Out(absl::string_view text) { printer_->Out(text); }
  void Err(absl::string_view text) { printer_->Err(text); }
  // Prints zkCli's message for `status` on `path`; returns the result.
  Result Fail(const absl::Status& status, absl::string_view path);
  Result FailMessage(int exit_code, int32_t zk_code, absl::string_view msg);
  // Validates a path argument; prints zkCli's message when invalid.
  bool CheckPath(absl::string_view path, Result* result,
                 bool sequential = false);
  bool Json(const ParsedArgs& a) const { return options_.json || a.json; }

  // Subtree walk helpers (DFS, children sorted).
  struct NodeInfo {
    std::string path;
    int depth = 0;
    client::Stat stat;
    std::vector<std::string> children;
  };
  struct WalkResult {
    absl::Status status;       // the first error that stopped the walk
    std::string failed_path;   // where it happened
    int32_t skipped_code = 0;  // skip_errors: code of the last skipped node
  };
  // Visits `root` and its descendants (pre-order, children sorted) down to
  // `max_depth` (-1: all). Descendants deleted meanwhile are skipped; with
  // `skip_errors`, so are descendants that cannot be listed (e.g. NOAUTH),
  // each reported on stderr with zkCli's message.
  WalkResult Walk(const std::string& root,
                  const std::function<void(const NodeInfo&)>& visit,
                  bool watch = false, int max_depth = -1,
                  bool skip_errors = false);
  // The result of a command whose walk stopped or skipped nodes.
  Result WalkOutcome(const WalkResult& w);

  // zkCli commands.
  Result CmdLs(const ParsedArgs& a);
  Result CmdLs2(const ParsedArgs& a);
  Result CmdCreate(const ParsedArgs& a);
  Result CmdGet(const ParsedArgs& a);
  Result CmdSet(const ParsedArgs& a);
  Result CmdStat(const ParsedArgs& a);
  Result CmdDelete(const ParsedArgs& a);
  Result CmdDeleteAll(const ParsedArgs& a);
  Result CmdGetAcl(const ParsedArgs& a);
  Result CmdSetAcl(const ParsedArgs& a);
  Result CmdAddAuth(const ParsedArgs& a);
  Result CmdSync(const ParsedArgs& a);
  Result CmdSetQuota(const ParsedArgs& a);
  Result CmdListQuota(const ParsedArgs& a);
  Result CmdDelQuota(const ParsedArgs& a);
  Result CmdAddWatch(const ParsedArgs& a);
  Result CmdRemoveWatches(const ParsedArgs& a);
  Result CmdPrintWatches(const ParsedArgs& a);
  Result CmdGetEphemerals(const ParsedArgs& a);
  Result CmdGetAllChildrenNumber(const ParsedArgs& a);
  Result CmdWhoAmI(const ParsedArgs& a);
  Result CmdConfig(const ParsedArgs& a);
  Result CmdVersion(const ParsedArgs& a);
  Result CmdClose(const ParsedArgs& a);
  Result CmdConnect(const ParsedArgs& a);
  Result CmdQuit(const ParsedArgs& a);
  Result CmdHistory(const ParsedArgs& a);
  Result CmdRedo(const ParsedArgs& a);
  Result CmdHelp(const ParsedArgs& a);
  // rkctl's own.
  Result CmdTree(const ParsedArgs& a);
  Result CmdFind(const ParsedArgs& a);
  Result CmdDu(const ParsedArgs& a);
  Result CmdCp(const ParsedArgs& a);
  Result CmdMv(const ParsedArgs& a);
  Result CmdWatch(const ParsedArgs& a);
  Result CmdFourLetter(const ParsedArgs& a);
  Result CmdSrvr(const ParsedArgs& a);
  Result CmdMntr(const ParsedArgs& a);

  Result CopyTree(const std::string& src, const std::string& dst, bool move,
                  bool json);
  Result RunFourLetter(const std::string& word, bool json);

  CliOptions options_;
  Printer* printer_;
  std::unique_ptr<client::Client> client_;
  std::string host_;          // the connect string shown in the prompt
  bool user_closed_ = false;  // `close`: no automatic reconnection
  std::atomic<bool> print_watches_{true};
  bool quit_ = false;
  // zkCli's history: command number -> line.
  std::map<int, std::string> history_;
  int command_count_ = 0;
  bool one_shot_ = false;
  // One-shot mode: a disconnection was reported (so report the reconnect).
  std::atomic<bool> reported_trouble_{false};

  static std::atomic<bool> interrupted_;
  static std::atomic<bool> watching_;
};

}  // namespace rockeeper::rkctl

#endif  // ROCKEEPER_TOOLS_RKCTL_CLI_H_
