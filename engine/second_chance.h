// What the state DB's bounded caches (ChildrenCache, ZnodeCache) share: the
// statistics they report and their eviction.
#ifndef ROCKEEPER_ENGINE_SECOND_CHANCE_H_
#define ROCKEEPER_ENGINE_SECOND_CHANCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rockeeper::engine {

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  size_t entries = 0;
  size_t bytes = 0;  // estimated
};

// Evicts entries of `entries` (a node-based map whose values have `bytes`
// and an atomic<bool> `referenced`) until `*bytes` <= `goal`. Second
// chance: the first pass skips (and un-marks) entries read since the last
// eviction; the second takes whatever is left.
template <typename Map>
void EvictSecondChance(Map& entries, size_t* bytes, size_t goal) {
  for (int pass = 0; pass < 2 && *bytes > goal; ++pass) {
    for (auto it = entries.begin(); it != entries.end() && *bytes > goal;) {
      if (pass == 0 &&
          it->second.referenced.exchange(false, std::memory_order_relaxed)) {
        ++it;
        continue;
      }
      *bytes -= it->second.bytes;
      entries.erase(it++);
    }
  }
}

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_SECOND_CHANCE_H_
