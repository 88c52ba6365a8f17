// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
// ext4, LevelDB and RocksDB.
//
// On x86-64 CPUs with SSE4.2 the hardware CRC32 instruction is used (selected
// once at run time); otherwise a portable slice-by-8 table implementation.
// Both produce identical results.
//
//   Crc32c("123456789", 9)        == 0xE3069283
//   Crc32c(<32 zero bytes>, 32)   == 0x8A9136AA
//
// Thread safety: all functions are pure and safe to call concurrently.
#ifndef ROCKEEPER_ENGINE_CRC32C_H_
#define ROCKEEPER_ENGINE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace rockeeper::engine {

// Returns the CRC-32C of `crc`'s input followed by data[0, n).
// `crc` is the value returned for the preceding data (0 for none), so
// Crc32cExtend(Crc32c(a), b) == Crc32c(a ++ b).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

// Returns the CRC-32C of data[0, n).
inline uint32_t Crc32c(const void* data, size_t n) {
  return Crc32cExtend(0, data, n);
}

// Returns Crc32cExtend(crc, <n zero bytes>, n) in O(log n) time without
// touching memory (GF(2) polynomial arithmetic). Used to check records that
// run into a zero-filled (preallocated) file tail.
uint32_t Crc32cExtendZeros(uint32_t crc, uint64_t n);

// True if the hardware (SSE4.2) implementation is in use.
bool Crc32cIsHardwareAccelerated();

// Software implementation, exposed for tests and benchmarks.
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);

// LevelDB-style masking. Computing the CRC of a string that contains embedded
// CRCs is problematic, so stored CRCs are masked.
inline constexpr uint32_t kCrc32cMaskDelta = 0xa282ead8ul;

// Returns a masked representation of `crc`.
inline uint32_t Crc32cMask(uint32_t crc) {
  // Rotate right by 15 bits and add a constant.
  return ((crc >> 15) | (crc << 17)) + kCrc32cMaskDelta;
}

// Returns the crc whose masked representation is `masked_crc`.
inline uint32_t Crc32cUnmask(uint32_t masked_crc) {
  uint32_t rot = masked_crc - kCrc32cMaskDelta;
  return ((rot >> 17) | (rot << 15));
}

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_CRC32C_H_
