// rkctl's commands beyond zkCli: tree, find, du, cp, mv, watch and the
// four-letter words.
#include <fnmatch.h>

#include <deque>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tools/rkctl/cli.h"
#include "tools/rkctl/format.h"
#include "tools/rkctl/four_letter.h"

namespace rockeeper::rkctl {

namespace zk = client::zk;

namespace {

std::string BaseName(absl::string_view path) {
  if (path == "/") return "/";
  return std::string(path.substr(path.rfind('/') + 1));
}

// A multi must fit in one gRPC message (jute.maxbuffer, 1 MiB by default);
// stay well below it.
constexpr size_t kMaxMultiBytes = 512 << 10;
constexpr size_t kMaxMultiOps = 1000;

size_t OpBytes(const client::Op& op) {
  size_t n = op.path.size() + op.data.size() + 32;
  for (const client::Acl& a : op.acl) n += a.scheme.size() + a.id.size() + 16;
  return n;
}

// Splits `ops` into batches that each fit one multi.
std::vector<std::vector<client::Op>> Batches(std::vector<client::Op> ops) {
  std::vector<std::vector<client::Op>> out;
  size_t bytes = 0;
  for (client::Op& op : ops) {
    const size_t b = OpBytes(op);
    if (out.empty() || out.back().size() >= kMaxMultiOps ||
        bytes + b > kMaxMultiBytes) {
      out.emplace_back();
      bytes = 0;
    }
    bytes += b;
    out.back().push_back(std::move(op));
  }
  return out;
}

// A decimal number JSON accepts as is ("0.1983"; not "1e", ".5", "nan").
bool IsJsonNumber(absl::string_view v) {
  size_t i = 0;
  if (i < v.size() && v[i] == '-') ++i;
  const size_t int_start = i;
  while (i < v.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(v[i]))) {
    ++i;
  }
  if (i == int_start || (v[int_start] == '0' && i - int_start > 1)) {
    return false;
  }
  if (i < v.size() && v[i] == '.') {
    const size_t frac = ++i;
    while (i < v.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(v[i]))) {
      ++i;
    }
    if (i == frac) return false;
  }
  return i == v.size();
}

}  // namespace

Cli::Result Cli::CmdTree(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int max_depth = -1;
  if (a.Has('d')) {
    std::optional<int32_t> d = ParseJavaInt(a.Get('d'));
    if (!d || *d < 0) {
      return UsageError(*FindCommand("tree"),
                        "-d argument must be a non-negative int");
    }
    max_depth = *d;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  std::vector<NodeInfo> nodes;
  WalkResult walk = Walk(
      path, [&](const NodeInfo& n) { nodes.push_back(n); }, false, max_depth,
      /*skip_errors=*/true);
  if (!walk.status.ok()) return WalkOutcome(walk);
  int64_t bytes = 0;
  for (const NodeInfo& n : nodes) bytes += n.stat.data_length;
  if (Json(a)) {
    JsonWriter w;
    int open = -1;  // depth of the innermost open node
    for (const NodeInfo& n : nodes) {
      while (open >= n.depth) {
        w.EndArray().EndObject();
        --open;
      }
      w.BeginObject()
          .Key("path")
          .String(n.path)
          .Key("name")
          .String(BaseName(n.path))
          .Key("dataLength")
          .Int(n.stat.data_length)
          .Key("numChildren")
          .Int(n.stat.num_children)
          .Key("ephemeralOwner")
          .Int(n.stat.ephemeral_owner)
          .Key("children")
          .BeginArray();
      open = n.depth;
    }
    while (open >= 0) {
      w.EndArray().EndObject();
      --open;
    }
    Out(w.str() + "\n");
    return WalkOutcome(walk);
  }
  std::string text;
  for (const NodeInfo& n : nodes) {
    absl::StrAppend(&text, std::string(2 * n.depth, ' '),
                    n.depth == 0 ? n.path : BaseName(n.path), " [",
                    n.stat.data_length, " B",
                    n.stat.ephemeral_owner != 0 ? ", ephemeral" : "");
    // A cut-off subtree shows how many children it hides.
    if (max_depth >= 0 && n.depth == max_depth && n.stat.num_children > 0) {
      absl::StrAppend(&text, ", ", n.stat.num_children, " children");
    }
    absl::StrAppend(&text, "]\n");
  }
  absl::StrAppend(&text, nodes.size(),
                  nodes.size() == 1 ? " node, " : " nodes, ", bytes,
                  " bytes\n");
  Out(text);
  return WalkOutcome(walk);
}

Cli::Result Cli::CmdFind(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  const std::string& pattern = a.args[2];
  Result res;
  if (!CheckPath(path, &res)) return res;
  // A pattern with a '/' matches whole paths, otherwise node names.
  const bool full = pattern.find('/') != std::string::npos;
  std::vector<std::string> matches;
  WalkResult walk = Walk(
      path,
      [&](const NodeInfo& n) {
        const std::string subject = full ? n.path : BaseName(n.path);
        if (fnmatch(pattern.c_str(), subject.c_str(), 0) == 0) {
          matches.push_back(n.path);
        }
      },
      false, -1, /*skip_errors=*/true);
  if (!walk.status.ok()) return WalkOutcome(walk);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("pattern").String(pattern);
    w.Key("matches").BeginArray();
    for (const std::string& m : matches) w.String(m);
    w.EndArray().EndObject();
    Out(w.str() + "\n");
  } else {
    std::string text;
    for (const std::string& m : matches) absl::StrAppend(&text, m, "\n");
    Out(text);
  }
  return WalkOutcome(walk);
}

Cli::Result Cli::CmdDu(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  Result res;
  if (!CheckPath(path, &res)) return res;
  struct Usage {
    std::string path;
    int64_t count = 0;
    int64_t bytes = 0;
  };
  Usage total{path};
  std::vector<Usage> children;
  WalkResult walk = Walk(
      path,
      [&](const NodeInfo& n) {
        total.count += 1;
        total.bytes += n.stat.data_length;
        if (n.depth == 1) children.push_back({n.path});
        if (n.depth >= 1) {
          children.back().count += 1;
          children.back().bytes += n.stat.data_length;
        }
      },
      false, -1, /*skip_errors=*/true);
  if (!walk.status.ok()) return WalkOutcome(walk);
  if (Json(a)) {
    JsonWriter w;
    w.BeginObject().Key("path").String(path).Key("count").Int(total.count);
    w.Key("bytes").Int(total.bytes).Key("children").BeginArray();
    for (const Usage& u : children) {
      w.BeginObject().Key("path").String(u.path).Key("count").Int(u.count);
      w.Key("bytes").Int(u.bytes).EndObject();
    }
    w.EndArray().EndObject();
    Out(w.str() + "\n");
  } else {
    std::string text;
    children.push_back(total);
    for (const Usage& u : children) {
      absl::StrAppend(&text, u.bytes, "\t", u.count, "\t", u.path, "\n");
    }
    Out(text);
  }
  return WalkOutcome(walk);
}

Cli::Result Cli::CmdCp(const ParsedArgs& a) {
  return CopyTree(a.args[1], a.args[2], /*move=*/false, Json(a));
}

Cli::Result Cli::CmdMv(const ParsedArgs& a) {
  return CopyTree(a.args[1], a.args[2], /*move=*/true, Json(a));
}

Cli::Result Cli::CopyTree(const std::string& src, const std::string& dst,
                          bool move, bool json) {
  const Command& cmd = *FindCommand(move ? "mv" : "cp");
  Result res;
  if (!CheckPath(src, &res) || !CheckPath(dst, &res)) return res;
  if (src == "/") return UsageError(cmd, "cannot copy the root");
  if (dst == src || absl::StartsWith(dst, src + "/")) {
    return UsageError(cmd, absl::StrCat("cannot copy ", src, " into itself"));
  }
  if (move && (src == "/zookeeper" || absl::StartsWith(src, "/zookeeper/"))) {
    return UsageError(cmd, "cannot move the /zookeeper tree");
  }
  // Read the subtree (pre-order: parents before children).
  std::vector<std::string> paths;
  WalkResult walk =
      Walk(src, [&](const NodeInfo& n) { paths.push_back(n.path); });
  if (!walk.status.ok()) return WalkOutcome(walk);
  std::vector<client::Op> creates;
  std::vector<client::Op> deletes;
  for (const std::string& p : paths) {
    absl::StatusOr<client::DataResult> data = client_->GetData(p);
    if (!data.ok()) return Fail(data.status(), p);
    absl::StatusOr<client::AclResult> acl = client_->GetAcl(p);
    if (!acl.ok()) return Fail(acl.status(), p);
    creates.push_back(client::Op::Create(
        absl::StrCat(dst, p.substr(src.size())), data->data, acl->acl));
    creates.back().data_null = data->data_null;
    // The delete is conditional on the version read: a node changed since
    // fails the move instead of losing the change.
    if (move) deletes.push_back(client::Op::Delete(p, data->stat.version));
  }
  std::vector<client::Op> ops = std::move(creates);
  for (auto it = deletes.rbegin(); it != deletes.rend(); ++it) {
    ops.push_back(std::move(*it));
  }
  const size_t node_count = paths.size();
  std::vector<std::vector<client::Op>> batches = Batches(std::move(ops));
  if (batches.size() > 1) {
    Err(absl::StrCat("warning: ", node_count,
                     " nodes do not fit one transaction; using ",
                     batches.size(), " (not atomic)\n"));
  }
  for (size_t b = 0; b < batches.size(); ++b) {
    client::MultiResult m = client_->Multi(batches[b]);
    if (m.ok()) continue;
    std::string failed_path = dst;
    for (size_t i = 0; i < m.results.size() && i < batches[b].size(); ++i) {
      if (m.results[i].err != 0 &&
          m.results[i].err != zk::kRuntimeInconsistency) {
        failed_path = batches[b][i].path;
        break;
      }
    }
    if (b > 0) {
      Err(absl::StrCat("transaction ", b + 1, " of ", batches.size(),
                       " failed; the first ", b, " were applied\n"));
    }
    return Fail(m.status, failed_path);
  }
  if (json) {
    JsonWriter w;
    w.BeginObject().Key("src").String(src).Key("dst").String(dst);
    w.Key("nodes").Int(static_cast<int64_t>(node_count));
    w.Key("transactions").Int(static_cast<int64_t>(batches.size()));
    w.Key("atomic").Bool(batches.size() == 1).EndObject();
    Out(w.str() + "\n");
  } else {
    Out(absl::StrCat(
        move ? "Moved " : "Copied ", src, " to ", dst, " (", node_count,
        node_count == 1 ? " node" : " nodes", ", ", batches.size(),
        batches.size() == 1 ? " transaction)\n" : " transactions)\n"));
  }
  return res;
}

Cli::Result Cli::CmdWatch(const ParsedArgs& a) {
  const std::string& path = a.args[1];
  int64_t max_events = -1;
  if (a.Has('c')) {
    std::optional<int32_t> c = ParseJavaInt(a.Get('c'));
    if (!c || *c <= 0) {
      return UsageError(*FindCommand("watch"),
                        "-c argument must be a positive int");
    }
    max_events = *c;
  }
  Result res;
  if (!CheckPath(path, &res)) return res;
  struct Queue {
    absl::Mutex mu;
    std::deque<client::WatchEvent> events ABSL_GUARDED_BY(mu);
  };
  auto queue = std::make_shared<Queue>();
  const bool recursive = a.Has('R');
  absl::Status s =
      client_->AddWatch(path,
                        recursive ? client::AddWatchMode::kPersistentRecursive
                                  : client::AddWatchMode::kPersistent,
                        [queue](const client::WatchEvent& e) {
                          absl::MutexLock lock(&queue->mu);
                          queue->events.push_back(e);
                        });
  if (!s.ok()) return Fail(s, path);
  Err(absl::StrCat("Watching ", path, recursive ? " and its subtree" : "",
                   " (Ctrl-C to stop)\n"));
  const bool json = Json(a);
  int64_t seen = 0;
  watching_ = true;
  while (!interrupted_.load() && (max_events < 0 || seen < max_events)) {
    std::deque<client::WatchEvent> batch;
    {
      absl::MutexLock lock(&queue->mu);
      queue->mu.AwaitWithTimeout(
          absl::Condition(
              +[](std::deque<client::WatchEvent>* q) { return !q->empty(); },
              &queue->events),
          absl::Milliseconds(100));
      batch.swap(queue->events);
    }
    std::string text;
    for (const client::WatchEvent& e : batch) {
      if (max_events >= 0 && seen >= max_events) break;
      ++seen;
      if (json) {
        JsonWriter w;
        w.BeginObject()
            .Key("type")
            .String(client::EventTypeName(e.type))
            .Key("state")
            .String(client::SessionStateName(e.state))
            .Key("path")
            .String(e.path)
            .Key("zxid")
            .Int(e.zxid)
            .EndObject();
        absl::StrAppend(&text, w.str(), "\n");
      } else {
        absl::StrAppend(&text, FormatWatchedEvent(e), "\n");
      }
    }
    if (!text.empty()) Out(text);
    if (client_->state() == client::SessionState::kExpired) {
      watching_ = false;
      ClearInterrupt();
      return FailMessage(kExitConnection, zk::kSessionExpired,
                         ZkCliErrorMessage(zk::kSessionExpired, path));
    }
  }
  watching_ = false;
  if (interrupted_.load() && options_.interactive) Out("\n");
  ClearInterrupt();
  // Ignore the result: the session may be gone, and another watch of the
  // same kind on the path (addWatch) goes too, as ZooKeeper removes by type.
  (void)client_->RemoveWatches(
      path, recursive ? client::WatcherType::kPersistentRecursive
                      : client::WatcherType::kPersistent);
  return res;
}

std::string Cli::FourLetterAddress() const {
  std::string host = FirstHost(host_);
  if (host.empty()) host = "127.0.0.1";
  std::string h;
  int port = 0;
  if (!ParseHostPort(options_.zk_address, host, 2181, &h, &port)) {
    return options_.zk_address;
  }
  return h.find(':') != std::string::npos ? absl::StrCat("[", h, "]:", port)
                                          : absl::StrCat(h, ":", port);
}

Cli::Result Cli::RunFourLetter(const std::string& word, bool json) {
  std::string host = FirstHost(host_);
  if (host.empty()) host = "127.0.0.1";
  std::string h;
  int port = 0;
  if (!ParseHostPort(options_.zk_address, host, 2181, &h, &port)) {
    return FailMessage(kExitUsage, 0,
                       absl::StrCat("bad --zk address: ", options_.zk_address));
  }
  absl::StatusOr<std::string> answer =
      SendFourLetterWord(h, port, word, options_.request_timeout_ms);
  if (!answer.ok()) {
    return FailMessage(
        kExitConnection, zk::kConnectionLoss,
        absl::StrCat("Unable to run '", word, "' on ", FourLetterAddress(),
                     ": ", answer.status().message()));
  }
  if (!json) {
    std::string text = *answer;
    if (!text.empty() && text.back() != '\n') text += '\n';
    Out(text);
    return {};
  }
  JsonWriter w;
  w.BeginObject();
  if (word == "mntr" || word == "srvr" || word == "conf" || word == "envi") {
    for (const auto& [k, v] : ParseKeyValues(*answer)) {
      int64_t n = 0;
      double d = 0;
      if (absl::SimpleAtoi(v, &n)) {
        w.Key(k).Int(n);
      } else if (IsJsonNumber(v) && absl::SimpleAtod(v, &d)) {
        w.Key(k).Raw(v);
      } else {
        w.Key(k).String(v);
      }
    }
  } else {
    w.Key("word").String(word).Key("response").String(*answer);
  }
  w.EndObject();
  Out(w.str() + "\n");
  return {};
}

Cli::Result Cli::CmdFourLetter(const ParsedArgs& a) {
  if (a.args[1].size() != 4) {
    return UsageError(*FindCommand("4lw"), "a four-letter word has 4 letters");
  }
  return RunFourLetter(a.args[1], Json(a));
}

Cli::Result Cli::CmdSrvr(const ParsedArgs& a) {
  return RunFourLetter("srvr", Json(a));
}

Cli::Result Cli::CmdMntr(const ParsedArgs& a) {
  return RunFourLetter("mntr", Json(a));
}

}  // namespace rockeeper::rkctl
