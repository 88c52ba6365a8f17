#include "tools/rkctl/cli.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/rkctl/format.h"

#ifndef RKCTL_VERSION
#define RKCTL_VERSION "0.0.0"
#endif

namespace rockeeper::rkctl {

namespace zk = client::zk;
using client::Acl;
using client::Client;
using client::Stat;
using client::WatchEvent;

std::atomic<bool> Cli::interrupted_{false};
std::atomic<bool> Cli::watching_{false};

static bool IsConnectionCode(int32_t code) {
  return code == zk::kConnectionLoss || code == zk::kSessionExpired ||
         code == zk::kRequestTimeout || code == zk::kOperationTimeout ||
         code == zk::kSessionMoved;
}

// ---------------------------------------------------------------- Printer

Printer::Printer()
    : out_([](absl::string_view s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
      }),
      err_([](absl::string_view s) {
        std::fwrite(s.data(), 1, s.size(), stderr);
        std::fflush(stderr);
      }) {}

Printer::Printer(Sink out, Sink err)
    : out_(std::move(out)), err_(std::move(err)) {}

void Printer::Out(absl::string_view text) {
  absl::MutexLock lock(&mu_);
  out_(text);
}

void Printer::Err(absl::string_view text) {
  absl::MutexLock lock(&mu_);
  err_(text);
}

// ---------------------------------------------------------------- commands

const std::vector<Cli::Command>& Cli::Commands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"addWatch",
       "[-m mode] path # optional mode is one of [PERSISTENT, "
       "PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
       {{'m', true}},
       &Cli::CmdAddWatch,
       true,
       1},
      {"addauth", "scheme auth", {}, &Cli::CmdAddAuth, true, 1},
      {"close", "", {}, &Cli::CmdClose, false, 0},
      {"config",
       "[-c] [-w] [-s]",
       {{'c', false}, {'w', false}, {'s', false}},
       &Cli::CmdConfig,
       true,
       0},
      {"connect", "host:port", {}, &Cli::CmdConnect, false, 0},
      {"cp", "src dst", {}, &Cli::CmdCp, true, 2},
      {"create",
       "[-s] [-e] [-c] [-t ttl] path [data] [acl]",
       {{'s', false}, {'e', false}, {'c', false}, {'t', true}},
       &Cli::CmdCreate,
       true,
       1},
      {"delete", "[-v version] path", {{'v', true}}, &Cli::CmdDelete, true, 1},
      {"deleteall",
       "path [-b batch size]",
       {{'b', true}},
       &Cli::CmdDeleteAll,
       true,
       1},
      {"delquota",
       "[-n|-b|-N|-B] path",
       {{'n', false}, {'b', false}, {'N', false}, {'B', false}},
       &Cli::CmdDelQuota,
       true,
       1},
      {"du", "path", {}, &Cli::CmdDu, true, 1},
      {"find", "path pattern", {}, &Cli::CmdFind, true, 2},
      {"4lw", "word", {}, &Cli::CmdFourLetter, false, 1},
      {"get",
       "[-s] [-w] path",
       {{'s', false}, {'w', false}},
       &Cli::CmdGet,
       true,
       1},
      {"getAcl", "[-s] path", {{'s', false}}, &Cli::CmdGetAcl, true, 1},
      {"getAllChildrenNumber",
       "path",
       {},
       &Cli::CmdGetAllChildrenNumber,
       true,
       1},
      {"getEphemerals", "path", {}, &Cli::CmdGetEphemerals, true, 0},
      {"help", "", {}, &Cli::CmdHelp, false, 0},
      {"history", "", {}, &Cli::CmdHistory, false, 0},
      {"listquota", "path", {}, &Cli::CmdListQuota, true, 1},
      {"ls",
       "[-s] [-w] [-R] path",
       {{'s', false}, {'w', false}, {'R', false}},
       &Cli::CmdLs,
       true,
       1},
      {"ls2", "path", {{'w', false}}, &Cli::CmdLs2, true, 1},
      {"mntr", "", {}, &Cli::CmdMntr, false, 0},
      {"mv", "src dst", {}, &Cli::CmdMv, true, 2},
      {"printwatches", "on|off", {}, &Cli::CmdPrintWatches, false, 0},
      {"quit", "", {}, &Cli::CmdQuit, false, 0},
      {"redo", "cmdno", {}, &Cli::CmdRedo, false, 1},
      {"removewatches",
       "path [-c|-d|-a] [-l]",
       {{'c', false}, {'d', false}, {'a', false}, {'l', false}},
       &Cli::CmdRemoveWatches,
       true,
       1},
      {"rmr", "path", {{'b', true}}, &Cli::CmdDeleteAll, true, 1},
      {"set",
       "[-s] [-v version] path data",
       {{'s', false}, {'v', true}},
       &Cli::CmdSet,
       true,
       2},
      {"setAcl",
       "[-s] [-v version] [-R] path acl",
       {{'s', false}, {'v', true}, {'R', false}},
       &Cli::CmdSetAcl,
       true,
       2},
      {"setquota",
       "-n|-b|-N|-B val path",
       {{'n', true}, {'b', true}, {'N', true}, {'B', true}},
       &Cli::CmdSetQuota,
       true,
       1},
      {"srvr", "", {}, &Cli::CmdSrvr, false, 0},
      {"stat", "[-w] path", {{'w', false}}, &Cli::CmdStat, true, 1},
      {"sync", "path", {}, &Cli::CmdSync, true, 1},
      {"tree", "[-d depth] path", {{'d', true}}, &Cli::CmdTree, true, 1},
      {"version", "", {}, &Cli::CmdVersion, false, 0},
      {"watch",
       "[-R] [-c count] path",
       {{'R', false}, {'c', true}},
       &Cli::CmdWatch,
       true,
       1},
      {"whoami", "", {}, &Cli::CmdWhoAmI, true, 0},
  };
  return *commands;
}

const Cli::Command* Cli::FindCommand(absl::string_view name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> Cli::CommandNames() {
  std::vector<std::string> names;
  for (const Command& c : Commands()) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::string Cli::UsageLine(const Command& c) const {
  return absl::StrCat(c.name, " ", c.usage);
}

void Cli::PrintAllUsage() {
  std::string text =
      "rkctl -s host:port[,host:port...] [--zk host[:port]] [--json] cmd "
      "args\n";
  std::vector<const Command*> sorted;
  for (const Command& c : Commands()) sorted.push_back(&c);
  std::sort(
      sorted.begin(), sorted.end(),
      [](const Command* a, const Command* b) { return a->name < b->name; });
  for (const Command* c : sorted) {
    absl::StrAppend(&text, "\t", UsageLine(*c), "\n");
  }
  Err(text);
}

Cli::Result Cli::UsageError(const Command& c, absl::string_view message) {
  std::string text;
  if (!message.empty()) absl::StrAppend(&text, message, "\n");
  absl::StrAppend(&text, UsageLine(c), "\n");
  Err(text);
  return {kExitUsage, 0};
}

// ---------------------------------------------------------------- core

Cli::Cli(CliOptions options, Printer* printer)
    : options_(std::move(options)), printer_(printer) {
  host_ = options_.servers;
}

Cli::~Cli() {
  // Session events of the final close are not interesting at exit.
  print_watches_ = false;
  client_.reset();
}

void Cli::Interrupt() { interrupted_.store(true); }
void Cli::ClearInterrupt() { interrupted_.store(false); }

absl::Status Cli::Connect() {
  Disconnect();
  client::ClientOptions o;
  o.servers = {host_};
  o.session_timeout_ms = options_.session_timeout_ms;
  o.connect_timeout_ms = options_.connect_timeout_ms;
  o.request_timeout_ms = options_.request_timeout_ms;
  o.default_watcher = [this](const WatchEvent& e) { OnSessionEvent(e); };
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(o);
  if (!c.ok()) return c.status();
  client_ = std::move(*c);
  user_closed_ = false;
  return absl::OkStatus();
}

void Cli::Disconnect() { client_.reset(); }

absl::Status Cli::EnsureConnected() {
  if (user_closed_) {
    return client::ZkErrorStatus(zk::kConnectionLoss, "not connected");
  }
  if (client_ != nullptr &&
      client_->state() == client::SessionState::kExpired) {
    Err("Session expired; connecting with a new session\n");
    client_.reset();
  }
  if (client_ == nullptr) return Connect();
  return absl::OkStatus();
}

void Cli::OnSessionEvent(const WatchEvent& event) {
  if (options_.interactive) {
    PrintEvent(event);
    return;
  }
  // One-shot mode: stdout stays the command's; report connection trouble
  // (a long-running `watch`) on stderr.
  if (event.state == client::SessionState::kDisconnected ||
      event.state == client::SessionState::kExpired) {
    Err(absl::StrCat(FormatWatchedEvent(event), "\n"));
    reported_trouble_ = true;
  } else if (event.state == client::SessionState::kSyncConnected &&
             reported_trouble_) {
    Err(absl::StrCat(FormatWatchedEvent(event), "\n"));
    reported_trouble_ = false;
  }
}

void Cli::PrintEvent(const WatchEvent& event) {
  if (!print_watches_) return;
  Out(absl::StrCat("\nWATCHER::\n\n", FormatWatchedEvent(event), "\n"));
}

client::Watcher Cli::EventPrinter() {
  return [this](const WatchEvent& e) { PrintEvent(e); };
}

std::string Cli::StateName() const {
  if (client_ == nullptr) return user_closed_ ? "CLOSED" : "NOT_CONNECTED";
  switch (client_->state()) {
    case client::SessionState::kSyncConnected:
      return "CONNECTED";
    case client::SessionState::kDisconnected:
      return "CONNECTING";
    case client::SessionState::kExpired:
    case client::SessionState::kClosed:
      return "CLOSED";
  }
  return "UNKNOWN";
}

std::string Cli::Prompt() const {
  return absl::StrCat("[rk: ", host_, "(", StateName(), ") ", command_count_,
                      "] ");
}

Cli::Result Cli::FailMessage(int exit_code, int32_t zk_code,
                             absl::string_view msg) {
  Err(absl::StrCat(msg, "\n"));
  return {exit_code, zk_code};
}

Cli::Result Cli::Fail(const absl::Status& status, absl::string_view path) {
  const int32_t code = client::ZkErrorCode(status);
  return FailMessage(IsConnectionCode(code) ? kExitConnection : kExitZkError,
                     code, ZkCliErrorMessage(code, path));
}

bool Cli::CheckPath(absl::string_view path, Result* result, bool sequential) {
  if (std::optional<std::string> bad = ValidatePath(path, sequential)) {
    *result = FailMessage(kExitUsage, zk::kBadArguments, *bad);
    return false;
  }
  return true;
}

int Cli::ExecuteLine(const std::string& line) {
  if (absl::StripAsciiWhitespace(line).empty()) return kExitOk;
  history_[command_count_] = line;
  const Result r = Dispatch(SplitCommandLine(line));
  ++command_count_;
  return r.exit_code;
}

int Cli::Execute(const std::vector<std::string>& words) {
  one_shot_ = true;
  const Result r = Dispatch(words);
  if (r.exit_code != kExitOk && r.zk_code != 0) {
    Err(absl::StrCat("Error: ", zk::CodeName(r.zk_code), "\n"));
  }
  return r.exit_code;
}

Cli::Result Cli::Dispatch(const std::vector<std::string>& words) {
  if (words.empty()) {
    PrintAllUsage();
    Err("No command entered\n");
    return {kExitUsage, 0};
  }
  const Command* cmd = FindCommand(words[0]);
  if (cmd == nullptr) {
    PrintAllUsage();
    Err(absl::StrCat("Command not found: Command not found ", words[0], "\n"));
    return {kExitUsage, 0};
  }
  absl::StatusOr<ParsedArgs> parsed = ParseOptions(words, cmd->options);
  if (!parsed.ok()) return UsageError(*cmd, parsed.status().message());
  if (static_cast<int>(parsed->args.size()) - 1 < cmd->min_args) {
    return UsageError(*cmd, "");
  }
  if (cmd->needs_connection) {
    if (absl::Status s = EnsureConnected(); !s.ok()) {
      if (user_closed_) {
        Out("Not connected\n");
      } else {
        Err(absl::StrCat("Unable to connect to ", host_, ": ", s.message(),
                         "\n"));
      }
      return {kExitConnection, zk::kConnectionLoss};
    }
  }
  return (this->*(cmd->handler))(*parsed);
}

// ---------------------------------------------------------------- walk

Cli::WalkResult Cli::Walk(const std::string& root,
                          const std::function<void(const NodeInfo&)>& visit,
                          bool watch, int max_depth, bool skip_errors) {
  WalkResult result;
  std::vector<std::pair<std::string, int>> stack = {{root, 0}};
  bool first = true;
  while (!stack.empty()) {
    auto [path, depth] = std::move(stack.back());
    stack.pop_back();
    absl::StatusOr<client::ChildrenResult> r =
        client_->GetChildren(path, watch ? EventPrinter() : nullptr);
    if (!r.ok()) {
      const int32_t code = client::ZkErrorCode(r.status());
      // A descendant deleted meanwhile is skipped; the root must exist.
      if (!first && code == zk::kNoNode) continue;
      if (!first && skip_errors && !IsConnectionCode(code)) {
        Err(ZkCliErrorMessage(code, path) + "\n");
        result.skipped_code = code;
        continue;
      }
      result.status = r.status();
      result.failed_path = path;
      return result;
    }
    first = false;
    NodeInfo info;
    info.path = path;
    info.depth = depth;
    info.stat = r->stat;
    info.children = r->children;
    std::sort(info.children.begin(), info.children.end());
    visit(info);
    if (max_depth >= 0 && depth >= max_depth) continue;
    for (auto it = info.children.rbegin(); it != info.children.rend(); ++it) {
      stack.emplace_back(
          path == "/" ? absl::StrCat("/", *it) : absl::StrCat(path, "/", *it),
          depth + 1);
    }
  }
  return result;
}

Cli::Result Cli::WalkOutcome(const WalkResult& w) {
  if (!w.status.ok()) return Fail(w.status, w.failed_path);
  if (w.skipped_code != 0) {
    return {IsConnectionCode(w.skipped_code) ? kExitConnection : kExitZkError,
            w.skipped_code};
  }
  return {};
}

// ---------------------------------------------------------------- zkCli

Cli::Result Cli::CmdLs(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  const bool watch = a.Has('w');
  if (a.Has('R')) {
    std::vector<std::string> paths;
    WalkResult walk = Walk(
        path, [&](const NodeInfo& n) { paths.push_back(n.path); }, watch, -1,
        /*skip_errors=*/true);
    if (!walk.status.ok()) return WalkOutcome(walk);
    if (Json(a)) {
      JsonWriter w;
      w.BeginObject().Key("path").String(path).Key("paths").BeginArray();
      for (const std::string& p : paths) w.String(p);
      w.EndArray().EndObject();
      Out(w.str() + "\n");
    } else {
      std::string text;
      for (const std::string& p : paths) absl::StrAppend(&text, p, "\n");
      Out(text);
    }
    return WalkOutcome(walk);
  }
  absl::StatusOr<client::ChildrenResult> r =
      client_->GetChildren(path, watch ? EventPrinter() : nullptr);
  if (!r.ok()) return Fail(r.status(), path);
  std::vector<std::string> children = r->children;
  std::sort(children.begin(), children.end());
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("children").BeginArray();
    for (const std::string& c : children) w.String(c);
    w.EndArray();
    if (a.Has('s')) w.Key("stat").Raw(StatJson(r->stat));
    w.EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat(JavaList(children), "\n",
                     a.Has('s') ? FormatStat(r->stat) : ""));
  }
  return res;
}

Cli::Result Cli::CmdLs2(const ParsedArgs& a) {
  ParsedArgs b = a;
  b.options['s'] = "";
  return CmdLs(b);
}

Cli::Result Cli::CmdCreate(const ParsedArgs& a) {
  const bool e = a.Has('e'), s = a.Has('s'), c = a.Has('c'), t = a.Has('t');
  const Command& cmd = *FindCommand("create");
  if (c && (e || s)) {
    return UsageError(cmd,
                      "-c cannot be combined with -s or -e. Containers cannot "
                      "be ephemeral or sequential.");
  }
  int64_t ttl_ms = -1;
  if (t) {
    std::optional<int64_t> v = ParseJavaLong(a.Get('t'));
    if (!v) return UsageError(cmd, "-t argument must be a long value");
    ttl_ms = *v;
  }
  if (t && e)
    return UsageError(cmd, "TTLs cannot be used with Ephemeral znodes");
  if (t && c)
    return UsageError(cmd, "TTLs cannot be used with Container znodes");
  client::CreateMode mode = client::CreateMode::kPersistent;
  if (e && s) {
    mode = client::CreateMode::kEphemeralSequential;
  } else if (e) {
    mode = client::CreateMode::kEphemeral;
  } else if (s) {
    mode = t ? client::CreateMode::kPersistentSequentialWithTtl
             : client::CreateMode::kPersistentSequential;
  } else if (c) {
    mode = client::CreateMode::kContainer;
  } else if (t) {
    mode = client::CreateMode::kPersistentWithTtl;
  }
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res, s)) return res;
  // As zkCli: without a data argument the znode gets null data.
  const bool data_null = a.args.size() <= 2;
  const std::string data = data_null ? "" : a.args[2];
  std::vector<Acl> acl = client::OpenAclUnsafe();
  if (a.args.size() > 3) {
    ParsedAcl parsed = ParseAcl(a.args[3]);
    for (const std::string& w : parsed.warnings) Err(w + "\n");
    if (parsed.acl.empty()) {
      return FailMessage(kExitZkError, zk::kInvalidAcl,
                         "Acl is not valid : null");
    }
    acl = std::move(parsed.acl);
  }
  absl::StatusOr<client::CreateResult> r =
      client_->Create(path, data, acl, mode, ttl_ms, data_null);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject()
        .Key("path")
        .String(r->path)
        .Key("stat")
        .Raw(StatJson(r->stat))
        .EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat("Created ", r->path, "\n"));
  }
  return res;
}

Cli::Result Cli::CmdGet(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<client::DataResult> r =
      client_->GetData(path, a.Has('w') ? EventPrinter() : nullptr);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path);
    if (r->data_null) {
      w.Key("encoding").String("utf8").Key("data").Null();
    } else {
      DataJsonMembers(w, r->data);
    }
    w.Key("stat").Raw(StatJson(r->stat)).EndObject();
    Out(w.str() + "\n");
  } else {
    // zkCli prints "null" for null data.
    Out(absl::StrCat(r->data_null ? "null" : r->data, "\n",
                     a.Has('s') ? FormatStat(r->stat) : ""));
  }
  return res;
}

Cli::Result Cli::CmdSet(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int32_t version = -1;
  if (a.Has('v')) {
    std::optional<int32_t> v = ParseJavaInt(a.Get('v'));
    if (!v)
      return UsageError(*FindCommand("set"),
                        "-v argument must be an int value");
    version = *v;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<Stat> r = client_->SetData(path, a.args[2], version);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("stat").Raw(StatJson(*r));
    w.EndObject();
    Out(w.str() + "\n");
  } else if (a.Has('s')) {
    Out(FormatStat(*r));
  }
  return res;
}

Cli::Result Cli::CmdStat(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<std::optional<Stat>> r =
      client_->Exists(path, a.Has('w') ? EventPrinter() : nullptr);
  if (!r.ok()) return Fail(r.status(), path);
  if (!r->has_value()) {
    return FailMessage(kExitZkError, zk::kNoNode,
                       ZkCliErrorMessage(zk::kNoNode, path));
  }
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("stat").Raw(StatJson(**r));
    w.EndObject();
    Out(w.str() + "\n");
  } else {
    Out(FormatStat(**r));
  }
  return res;
}

Cli::Result Cli::CmdDelete(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int32_t version = -1;
  if (a.Has('v')) {
    std::optional<int32_t> v = ParseJavaInt(a.Get('v'));
    if (!v) {
      return UsageError(*FindCommand("delete"),
                        "-v argument must be an int value");
    }
    version = *v;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  if (absl::Status s = client_->Delete(path, version); !s.ok()) {
    return Fail(s, path);
  }
  return res;
}

Cli::Result Cli::CmdDeleteAll(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int batch = 1000;
  if (a.Has('b')) {
    std::optional<int32_t> v = ParseJavaInt(a.Get('b'));
    if (!v || *v <= 0) {
      return UsageError(*FindCommand(a.args[0]),
                        "-b argument must be an int value");
    }
    batch = *v;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  // ZKUtil.deleteRecursive: list the subtree breadth first, delete it
  // deepest first in multi batches.
  std::vector<std::string> tree;
  std::deque<std::string> queue = {path};
  while (!queue.empty()) {
    std::string p = std::move(queue.front());
    queue.pop_front();
    absl::StatusOr<client::ChildrenResult> r = client_->GetChildren(p);
    if (!r.ok()) {
      if (tree.empty() || client::ZkErrorCode(r.status()) != zk::kNoNode) {
        return Fail(r.status(), p);
      }
      continue;
    }
    tree.push_back(p);
    std::vector<std::string> children = r->children;
    std::sort(children.begin(), children.end());
    for (const std::string& c : children) {
      queue.push_back(p == "/" ? absl::StrCat("/", c)
                               : absl::StrCat(p, "/", c));
    }
  }
  std::vector<client::Op> ops;
  auto flush = [&]() -> bool {
    if (ops.empty()) return true;
    client::MultiResult m = client_->Multi(ops);
    ops.clear();
    if (!m.ok()) {
      res.exit_code = IsConnectionCode(client::ZkErrorCode(m.status))
                          ? kExitConnection
                          : kExitZkError;
      res.zk_code = client::ZkErrorCode(m.status);
      return false;
    }
    return true;
  };
  for (auto it = tree.rbegin(); it != tree.rend(); ++it) {
    ops.push_back(client::Op::Delete(*it));
    if (static_cast<int>(ops.size()) >= batch && !flush()) break;
  }
  if (res.exit_code == kExitOk) flush();
  if (res.exit_code != kExitOk) {
    Err("Failed to delete some node(s) in the subtree!\n");
  }
  return res;
}

Cli::Result Cli::CmdGetAcl(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<client::AclResult> r = client_->GetAcl(path);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("acl").Raw(AclJson(r->acl));
    w.Key("stat").Raw(StatJson(r->stat)).EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat(FormatAcl(r->acl), a.Has('s') ? FormatStat(r->stat) : ""));
  }
  return res;
}

Cli::Result Cli::CmdSetAcl(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int32_t version = -1;
  if (a.Has('v')) {
    std::optional<int32_t> v = ParseJavaInt(a.Get('v'));
    if (!v) {
      return UsageError(*FindCommand("setAcl"),
                        "-v argument must be an int value");
    }
    version = *v;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  ParsedAcl parsed = ParseAcl(a.args[2]);
  for (const std::string& w : parsed.warnings) Err(w + "\n");
  if (parsed.acl.empty()) {
    return FailMessage(kExitZkError, zk::kInvalidAcl,
                       "Acl is not valid : null");
  }
  if (a.Has('R')) {
    WalkResult walk = Walk(path, [&](const NodeInfo& n) {
      absl::StatusOr<Stat> r = client_->SetAcl(n.path, parsed.acl, version);
      if (!r.ok() && client::ZkErrorCode(r.status()) != zk::kNoNode) {
        const int32_t code = client::ZkErrorCode(r.status());
        // zkCli prints the exception's own message here.
        Err(absl::StrCat("KeeperErrorCode = ", CodeMessage(code), " for ",
                         n.path, "\n"));
        res = {IsConnectionCode(code) ? kExitConnection : kExitZkError, code};
      }
    });
    if (!walk.status.ok()) return WalkOutcome(walk);
    return res;
  }
  absl::StatusOr<Stat> r = client_->SetAcl(path, parsed.acl, version);
  if (!r.ok()) return Fail(r.status(), path);
  if (a.Has('s')) Out(FormatStat(*r));
  return res;
}

Cli::Result Cli::CmdAddAuth(const ParsedArgs& a) {
  const std::string auth = a.args.size() > 2 ? a.args[2] : "";
  if (absl::Status s = client_->AddAuth(a.args[1], auth); !s.ok()) {
    return Fail(s, "");
  }
  return {};
}

Cli::Result Cli::CmdSync(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  if (absl::Status s = client_->Sync(path); !s.ok()) {
    const int32_t code = client::ZkErrorCode(s);
    return FailMessage(IsConnectionCode(code) ? kExitConnection : kExitZkError,
                       code, absl::StrCat("Sync has failed. rc=", code));
  }
  Out("Sync is OK\n");
  return res;
}

namespace {

constexpr char kQuotaRoot[] = "/zookeeper/quota";

std::string QuotaPath(absl::string_view path) {
  return absl::StrCat(kQuotaRoot, path);
}
std::string LimitPath(absl::string_view path) {
  return absl::StrCat(kQuotaRoot, path, "/zookeeper_limits");
}
std::string StatPath(absl::string_view path) {
  return absl::StrCat(kQuotaRoot, path, "/zookeeper_stats");
}

}  // namespace

Cli::Result Cli::CmdSetQuota(const ParsedArgs& a) {
  const Command& cmd = *FindCommand("setquota");
  const std::string& path = a.args[1];
  int flags = a.Has('n') + a.Has('b') + a.Has('N') + a.Has('B');
  if (flags == 0) {
    return UsageError(cmd,
                      "Missing required option: [-n num soft quota, -b bytes "
                      "soft quota, -N num hard quota, -B bytes hard quota]");
  }
  if (flags > 1) {
    return UsageError(cmd, "only one of -n, -b, -N, -B may be given");
  }
  if (absl::StartsWith(path, kQuotaRoot)) {
    return FailMessage(
        kExitUsage, zk::kBadArguments,
        absl::StrCat("cannot set a quota under the path: ", kQuotaRoot));
  }
  StatsTrack quota;
  quota.count_hard_limit = -1;
  quota.byte_hard_limit = -1;
  auto parse = [&](char flag, bool is_count, int64_t* out) -> bool {
    if (!a.Has(flag)) return true;
    std::optional<int64_t> v;
    if (!is_count) {
      v = ParseJavaLong(a.Get(flag));
    } else if (std::optional<int32_t> i = ParseJavaInt(a.Get(flag))) {
      v = *i;
    }
    if (!v) {
      Err("NumberFormatException happens when parsing the option value\n");
      return false;
    }
    if (is_count && *v <= 0) {
      Err("the num quota must be greater than zero\n");
      return false;
    }
    if (!is_count && *v < 0) {
      Err("the bytes quota must be greater than or equal to zero\n");
      return false;
    }
    *out = *v;
    return true;
  };
  if (!parse('n', true, &quota.count) || !parse('b', false, &quota.bytes) ||
      !parse('N', true, &*quota.count_hard_limit) ||
      !parse('B', false, &*quota.byte_hard_limit)) {
    return {kExitUsage, 0};
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<std::optional<Stat>> exists = client_->Exists(path);
  if (!exists.ok()) return Fail(exists.status(), path);
  if (!exists->has_value()) {
    return FailMessage(kExitZkError, zk::kNoNode,
                       absl::StrCat(path, " does not exist."));
  }
  // No quota may exist below or above `path` (zkCli's checkIfChildQuota /
  // checkIfParentQuota).
  std::string conflict;
  WalkResult walk = Walk(QuotaPath(path), [&](const NodeInfo& n) {
    if (!conflict.empty() || n.path == QuotaPath(path)) return;
    if (std::find(n.children.begin(), n.children.end(), "zookeeper_limits") !=
        n.children.end()) {
      conflict = absl::StrCat(path, " has a child ",
                              n.path.substr(sizeof(kQuotaRoot) - 1),
                              " which has a quota");
    }
  });
  if (!walk.status.ok() && client::ZkErrorCode(walk.status) != zk::kNoNode) {
    return WalkOutcome(walk);
  }
  if (conflict.empty()) {
    std::vector<std::string> parts =
        absl::StrSplit(path, '/', absl::SkipEmpty());
    std::string q = kQuotaRoot;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      absl::StrAppend(&q, "/", parts[i]);
      absl::StatusOr<client::ChildrenResult> r = client_->GetChildren(q);
      if (!r.ok()) break;
      if (std::find(r->children.begin(), r->children.end(),
                    "zookeeper_limits") != r->children.end()) {
        conflict = absl::StrCat(path, " has a parent ",
                                q.substr(sizeof(kQuotaRoot) - 1),
                                " which has a quota");
        break;
      }
    }
  }
  if (!conflict.empty()) {
    return FailMessage(kExitZkError, zk::kBadArguments, conflict);
  }
  // Create /zookeeper/quota/<path components>.
  std::string q = kQuotaRoot;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    absl::StrAppend(&q, "/", part);
    absl::StatusOr<client::CreateResult> r = client_->Create(q, "");
    if (!r.ok() && client::ZkErrorCode(r.status()) != zk::kNodeExists) {
      return Fail(r.status(), q);
    }
  }
  const std::string limit_path = LimitPath(path);
  const std::string stat_path = StatPath(path);
  StatsTrack limits;
  absl::StatusOr<client::DataResult> existing = client_->GetData(limit_path);
  if (!existing.ok() && client::ZkErrorCode(existing.status()) != zk::kNoNode) {
    return Fail(existing.status(), limit_path);
  }
  const bool create = !existing.ok();
  if (create) {
    limits = quota;
    absl::StatusOr<client::CreateResult> r =
        client_->Create(limit_path, FormatStatsTrack(limits));
    if (!r.ok()) return Fail(r.status(), limit_path);
    StatsTrack zero;
    zero.count = 0;
    zero.bytes = 0;
    r = client_->Create(stat_path, FormatStatsTrack(zero));
    if (!r.ok() && client::ZkErrorCode(r.status()) != zk::kNodeExists) {
      return Fail(r.status(), stat_path);
    }
  } else {
    limits = ParseStatsTrack(existing->data);
    if (quota.count > -1) limits.count = quota.count;
    if (quota.bytes > -1) limits.bytes = quota.bytes;
    if (*quota.count_hard_limit > -1) {
      limits.count_hard_limit = quota.count_hard_limit;
    }
    if (*quota.byte_hard_limit > -1) {
      limits.byte_hard_limit = quota.byte_hard_limit;
    }
  }
  absl::StatusOr<client::DataResult> stats = client_->GetData(stat_path);
  if (stats.ok()) {
    const StatsTrack st = ParseStatsTrack(stats->data);
    if ((limits.count > -1 && limits.count < st.count) ||
        (limits.count_hard_limit.value_or(-1) > -1 &&
         *limits.count_hard_limit < st.count)) {
      Out(absl::StrCat(
          "[Warning]: the count quota you create is less than the existing "
          "count:",
          st.count, "\n"));
    }
    if ((limits.bytes > -1 && limits.bytes < st.bytes) ||
        (limits.byte_hard_limit.value_or(-1) > -1 &&
         *limits.byte_hard_limit < st.bytes)) {
      Out(absl::StrCat(
          "[Warning]: the bytes quota you create is less than the existing "
          "bytes:",
          st.bytes, "\n"));
    }
  }
  if (!create) {
    absl::StatusOr<Stat> r =
        client_->SetData(limit_path, FormatStatsTrack(limits));
    if (!r.ok()) return Fail(r.status(), limit_path);
  }
  return res;
}

Cli::Result Cli::CmdListQuota(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  if (!Json(a)) Err(absl::StrCat("absolute path is ", LimitPath(path), "\n"));
  absl::StatusOr<client::DataResult> limits = client_->GetData(LimitPath(path));
  absl::StatusOr<client::DataResult> stats;
  if (limits.ok()) stats = client_->GetData(StatPath(path));
  for (const auto* r : {&limits, &stats}) {
    if (!r->ok()) {
      if (client::ZkErrorCode(r->status()) == zk::kNoNode) {
        return FailMessage(
            kExitZkError, zk::kNoNode,
            absl::StrCat("quota for ", path, " does not exist."));
      }
      return Fail(r->status(), path);
    }
  }
  const StatsTrack l = ParseStatsTrack(limits->data);
  const StatsTrack s = ParseStatsTrack(stats->data);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("limits").BeginObject();
    w.Key("count").Int(l.count).Key("bytes").Int(l.bytes);
    w.Key("countHardLimit").Int(l.count_hard_limit.value_or(-1));
    w.Key("byteHardLimit").Int(l.byte_hard_limit.value_or(-1));
    w.EndObject().Key("stats").BeginObject();
    w.Key("count").Int(s.count).Key("bytes").Int(s.bytes);
    w.EndObject().EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat("Output quota for ", path, " ", FormatStatsTrack(l), "\n",
                     "Output stat for ", path, " ", FormatStatsTrack(s), "\n"));
  }
  return res;
}

Cli::Result Cli::CmdDelQuota(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  const std::string limit_path = LimitPath(path);
  absl::StatusOr<client::DataResult> limits = client_->GetData(limit_path);
  if (!limits.ok()) {
    if (client::ZkErrorCode(limits.status()) == zk::kNoNode) {
      Out(absl::StrCat("Quota does not exist for ", path, "\n"));
      return res;
    }
    return Fail(limits.status(), limit_path);
  }
  const bool any = a.Has('n') || a.Has('b') || a.Has('N') || a.Has('B');
  if (any) {
    StatsTrack l = ParseStatsTrack(limits->data);
    if (a.Has('n')) l.count = -1;
    if (a.Has('b')) l.bytes = -1;
    if (a.Has('N')) l.count_hard_limit = -1;
    if (a.Has('B')) l.byte_hard_limit = -1;
    absl::StatusOr<Stat> r = client_->SetData(limit_path, FormatStatsTrack(l));
    if (!r.ok()) return Fail(r.status(), limit_path);
    return res;
  }
  // Delete the quota's nodes, then the quota tree's now-empty ancestors.
  const std::string parent = QuotaPath(path);
  absl::StatusOr<client::ChildrenResult> kids = client_->GetChildren(parent);
  if (!kids.ok()) return Fail(kids.status(), parent);
  for (const std::string& k : kids->children) {
    if (absl::Status s = client_->Delete(absl::StrCat(parent, "/", k));
        !s.ok() && client::ZkErrorCode(s) != zk::kNoNode) {
      return Fail(s, absl::StrCat(parent, "/", k));
    }
  }
  std::string p = parent;
  while (p != kQuotaRoot && absl::StartsWith(p, kQuotaRoot)) {
    absl::StatusOr<client::ChildrenResult> r = client_->GetChildren(p);
    if (!r.ok() || !r->children.empty()) break;
    if (absl::Status s = client_->Delete(p); !s.ok()) break;
    p = p.substr(0, p.rfind('/'));
  }
  return res;
}

Cli::Result Cli::CmdAddWatch(const ParsedArgs& a) {
  client::AddWatchMode mode = client::AddWatchMode::kPersistentRecursive;
  if (a.Has('m')) {
    if (a.Get('m') == "PERSISTENT") {
      mode = client::AddWatchMode::kPersistent;
    } else if (a.Get('m') != "PERSISTENT_RECURSIVE") {
      return UsageError(*FindCommand("addWatch"), "");
    }
  }
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  if (absl::Status s = client_->AddWatch(path, mode, EventPrinter()); !s.ok()) {
    return Fail(s, path);
  }
  return res;
}

Cli::Result Cli::CmdRemoveWatches(const ParsedArgs& a) {
  client::WatcherType type = client::WatcherType::kAny;
  if (a.Has('c')) type = client::WatcherType::kChildren;
  if (a.Has('d')) type = client::WatcherType::kData;
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  // -l (remove locally without a server) is accepted; the client library
  // always removes on the server.
  if (absl::Status s = client_->RemoveWatches(path, type); !s.ok()) {
    return Fail(s, path);
  }
  return res;
}

Cli::Result Cli::CmdPrintWatches(const ParsedArgs& a) {
  if (a.args.size() < 2) {
    Out(absl::StrCat("printwatches is ", print_watches_ ? "on" : "off", "\n"));
  } else {
    print_watches_ = a.args[1] == "on";
  }
  return {};
}

Cli::Result Cli::CmdGetEphemerals(const ParsedArgs& a) {
  const std::string path = a.args.size() > 1 ? a.args[1] : "/";
  absl::StatusOr<std::vector<std::string>> r = client_->GetEphemerals(path);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("prefix").String(path).Key("paths").BeginArray();
    for (const std::string& p : *r) w.String(p);
    w.EndArray().EndObject();
    Out(w.str() + "\n");
  } else {
    Out(JavaList(*r) + "\n");
  }
  return {};
}

Cli::Result Cli::CmdGetAllChildrenNumber(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  absl::StatusOr<int32_t> r = client_->GetAllChildrenNumber(path);
  if (!r.ok()) return Fail(r.status(), path);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("count").Int(*r).EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat(*r, "\n"));
  }
  return res;
}

Cli::Result Cli::CmdWhoAmI(const ParsedArgs& a) {
  absl::StatusOr<std::vector<client::AuthInfo>> r = client_->WhoAmI();
  if (!r.ok()) return Fail(r.status(), "");
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("authInfo").BeginArray();
    for (const client::AuthInfo& i : *r) {
      w.BeginObject().Key("scheme").String(i.scheme).Key("user").String(i.user);
      w.EndObject();
    }
    w.EndArray().EndObject();
    Out(w.str() + "\n");
  } else {
    std::string text = "Auth scheme: User\n";
    for (const client::AuthInfo& i : *r) {
      absl::StrAppend(&text, i.scheme, ": ", i.user, "\n");
    }
    Out(text);
  }
  return {};
}

// ConfigUtils.getClientConfigStr: "<version> host:port,host:port" from the
// server.N=host:p1:p2[:role];[clientHost:]clientPort lines.
static std::string ClientConfigString(absl::string_view config) {
  std::string version;
  std::vector<std::string> endpoints;
  for (absl::string_view line : absl::StrSplit(config, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, eq));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (key == "version") version = std::string(value);
    if (!absl::StartsWith(key, "server.")) continue;
    const size_t semi = value.find(';');
    if (semi == absl::string_view::npos) continue;
    absl::string_view client = value.substr(semi + 1);
    if (client.find(':') == absl::string_view::npos) {
      // Only a port: the host is the quorum address's.
      absl::string_view host = value.substr(0, value.find(':'));
      endpoints.push_back(absl::StrCat(host, ":", client));
    } else {
      endpoints.emplace_back(client);
    }
  }
  return absl::StrCat(version, " ", absl::StrJoin(endpoints, ","));
}

Cli::Result Cli::CmdConfig(const ParsedArgs& a) {
  const std::string path = "/zookeeper/config";
  absl::StatusOr<client::DataResult> r =
      client_->GetData(path, a.Has('w') ? EventPrinter() : nullptr);
  if (!r.ok()) return Fail(r.status(), path);
  const std::string text = a.Has('c') ? ClientConfigString(r->data) : r->data;
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("config").String(text);
    if (a.Has('s')) w.Key("stat").Raw(StatJson(r->stat));
    w.EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat(text, "\n", a.Has('s') ? FormatStat(r->stat) : ""));
  }
  return {};
}

Cli::Result Cli::CmdVersion(const ParsedArgs& a) {
  if (Json(a)) {
    Out(absl::StrCat("{\"version\":\"", RKCTL_VERSION, "\"}\n"));
  } else {
    Out(absl::StrCat("rockeeper CLI version: ", RKCTL_VERSION, "\n"));
  }
  return {};
}

Cli::Result Cli::CmdClose(const ParsedArgs&) {
  Disconnect();
  user_closed_ = true;
  return {};
}

Cli::Result Cli::CmdConnect(const ParsedArgs& a) {
  if (a.args.size() > 1) host_ = a.args[1];
  user_closed_ = false;
  if (absl::Status s = Connect(); !s.ok()) {
    return FailMessage(
        kExitConnection, zk::kConnectionLoss,
        absl::StrCat("Unable to connect to ", host_, ": ", s.message()));
  }
  return {};
}

Cli::Result Cli::CmdQuit(const ParsedArgs&) {
  quit_ = true;
  return {};
}

Cli::Result Cli::CmdHistory(const ParsedArgs&) {
  std::string text;
  for (int i = command_count_ - 10; i <= command_count_; ++i) {
    if (i < 0) continue;
    auto it = history_.find(i);
    absl::StrAppend(&text, i, " - ", it == history_.end() ? "" : it->second,
                    "\n");
  }
  Out(text);
  return {};
}

Cli::Result Cli::CmdRedo(const ParsedArgs& a) {
  std::optional<int32_t> i = ParseJavaInt(a.args[1]);
  if (!i) return UsageError(*FindCommand("redo"), "");
  if (command_count_ <= *i || *i < 0) {
    return FailMessage(kExitUsage, 0, "Command index out of range");
  }
  const std::string line = history_[*i];
  std::vector<std::string> words = SplitCommandLine(line);
  if (!words.empty() && words[0] == "redo") {
    return FailMessage(kExitUsage, 0, "No redoing redos");
  }
  history_[command_count_] = line;
  return Dispatch(words);
}

Cli::Result Cli::CmdHelp(const ParsedArgs&) {
  PrintAllUsage();
  return {};
}

std::vector<std::string> Cli::Complete(absl::string_view word, int index) {
  std::vector<std::string> out;
  if (index == 0) {
    for (const std::string& name : CommandNames()) {
      if (absl::StartsWith(name, word)) out.push_back(name);
    }
    return out;
  }
  if (word.empty() || word[0] != '/' || client_ == nullptr ||
      client_->state() != client::SessionState::kSyncConnected) {
    return out;
  }
  const size_t slash = word.rfind('/');
  const std::string parent =
      slash == 0 ? "/" : std::string(word.substr(0, slash));
  const absl::string_view prefix = word.substr(slash + 1);
  absl::StatusOr<client::ChildrenResult> r = client_->GetChildren(parent);
  if (!r.ok()) return out;
  for (const std::string& c : r->children) {
    if (absl::StartsWith(c, prefix)) {
      out.push_back(parent == "/" ? absl::StrCat("/", c)
                                  : absl::StrCat(parent, "/", c));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace rockeeper::rkctl
