// A log-bucketed latency histogram (HDR-like): 32 linear sub-buckets per
// power of two, so every recorded value is reported within ~3%. Fixed size,
// no allocation after construction; one per thread, merged at the end.
// Not thread-safe: each instance belongs to one thread until merged.
#ifndef ROCKEEPER_TOOLS_RKBENCH_HISTOGRAM_H_
#define ROCKEEPER_TOOLS_RKBENCH_HISTOGRAM_H_

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace rockeeper::rkbench {

class Histogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kBuckets = 64 * kSub;

  void Record(uint64_t value_ns) {
    ++counts_[Index(value_ns)];
    ++count_;
    max_ns_ = std::max(max_ns_, value_ns);
  }

  void Merge(const Histogram& other) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
  }

  uint64_t count() const { return count_; }
  uint64_t max_ns() const { return max_ns_; }

  // The upper bound of the bucket holding the q-quantile (0 < q <= 1),
  // capped at the exact maximum; 0 when empty.
  uint64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank == 0) rank = 1;
    if (rank > count_) rank = count_;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(UpperBound(i), max_ns_);
    }
    return max_ns_;
  }

 private:
  static int Index(uint64_t v) {
    if (v < kSub) return static_cast<int>(v);
    int exp = 63 - std::countl_zero(v);  // >= kSubBits
    int shift = exp - kSubBits;
    int sub = static_cast<int>((v >> shift) & (kSub - 1));
    return (shift + 1) * kSub + sub;
  }
  static uint64_t UpperBound(int index) {
    if (index < kSub) return static_cast<uint64_t>(index);
    int shift = index / kSub - 1;
    uint64_t sub = static_cast<uint64_t>(index % kSub);
    return ((uint64_t{kSub} + sub + 1) << shift) - 1;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ns_ = 0;
};

}  // namespace rockeeper::rkbench

#endif  // ROCKEEPER_TOOLS_RKBENCH_HISTOGRAM_H_
