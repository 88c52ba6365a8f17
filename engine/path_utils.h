// ZooKeeper path rules (PathUtils.validatePath) and path arithmetic.
#ifndef ROCKEEPER_ENGINE_PATH_UTILS_H_
#define ROCKEEPER_ENGINE_PATH_UTILS_H_

#include "absl/strings/string_view.h"

namespace rockeeper::engine {

// True if `path` is a valid znode path: starts with '/', does not end with
// '/' (except the root), no empty, "." or ".." components, and no forbidden
// code points (U+0000-U+001F, U+007F-U+009F, U+D800-U+F8FF, U+FFF0-U+FFFF).
// Invalid UTF-8 is rejected as well.
bool IsValidPath(absl::string_view path);

// Parent of a valid non-root path ("/a/b" -> "/a", "/a" -> "/").
absl::string_view ParentPath(absl::string_view path);

// Last component of a valid non-root path ("/a/b" -> "b").
absl::string_view BaseName(absl::string_view path);

// Number of components: "/" -> 0, "/a" -> 1, "/a/b" -> 2.
int PathDepth(absl::string_view path);

// True if `path` equals `ancestor` or lies below it.
bool IsSameOrDescendant(absl::string_view path, absl::string_view ancestor);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_PATH_UTILS_H_
