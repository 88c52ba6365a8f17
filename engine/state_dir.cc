#include "engine/state_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace rockeeper::engine {

absl::StatusOr<std::string> CurrentStateDirName(const std::string& data_dir) {
  std::ifstream in(data_dir + "/" + kStateDirFile);
  if (!in) return std::string("state");
  std::string name;
  std::getline(in, name);
  if (name != "state" &&
      (!absl::StartsWith(name, "state.snap-") ||
       name.find('/') != std::string::npos || name.size() > 64)) {
    return absl::DataLossError(
        absl::StrCat(data_dir, "/", kStateDirFile, ": not a state dir name"));
  }
  return name;
}

absl::StatusOr<std::string> LiveStateDir(const std::string& data_dir) {
  absl::StatusOr<std::string> name = CurrentStateDirName(data_dir);
  if (!name.ok()) return name.status();
  return (std::filesystem::path(data_dir) / *name).string();
}

absl::Status SetCurrentStateDirName(const std::string& data_dir,
                                    const std::string& name) {
  const std::string path = data_dir + "/" + kStateDirFile;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << name << "\n";
    if (!out.flush()) return absl::InternalError("write " + tmp);
  }
  for (const std::string& p : {tmp, data_dir}) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::fsync(fd) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) return absl::InternalError("fsync " + p);
    if (p == tmp && ::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::InternalError("rename " + tmp);
    }
  }
  return absl::OkStatus();
}

void RemoveOtherStateDirs(const std::string& data_dir,
                          const std::string& current) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto it = fs::directory_iterator(data_dir, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (n != current && (n == "state" || absl::StartsWith(n, "state.snap-"))) {
      stale.push_back(it->path());
    }
  }
  for (const fs::path& p : stale) fs::remove_all(p, ec);
}

}  // namespace rockeeper::engine
