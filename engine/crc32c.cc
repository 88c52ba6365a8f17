#include "engine/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define ROCKEEPER_CRC32C_HAVE_SSE42 1
#else
#define ROCKEEPER_CRC32C_HAVE_SSE42 0
#endif

namespace rockeeper::engine {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

// kTables[k][b] is the CRC of byte b followed by k zero bytes.
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t crc = b;
    for (int i = 0; i < 8; ++i) crc = (crc >> 1) ^ ((crc & 1) ? kPoly : 0);
    t[0][b] = crc;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (int k = 1; k < 8; ++k) {
      t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xff];
    }
  }
  return t;
}

constexpr Tables kTables = MakeTables();

// Multiplies a and b modulo the polynomial (bit-reflected representation,
// x^0 is the top bit).
constexpr uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31;
  uint32_t p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

// kX2n[k] = x^(2^k) mod P.
constexpr std::array<uint32_t, 32> MakeX2n() {
  std::array<uint32_t, 32> t{};
  uint32_t p = 1u << 30;  // x^1
  t[0] = p;
  for (int k = 1; k < 32; ++k) {
    p = MultModP(p, p);
    t[k] = p;
  }
  return t;
}

constexpr std::array<uint32_t, 32> kX2n = MakeX2n();

inline uint64_t LoadLE64(const uint8_t* p) {
  // Assembled byte by byte so the result does not depend on host byte order;
  // compilers turn this into a single load on little-endian hosts.
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

#if ROCKEEPER_CRC32C_HAVE_SSE42
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc,
                                                       const uint8_t* p,
                                                       size_t n) {
  uint64_t l = static_cast<uint32_t>(~crc);
  // Align to 8 bytes so the 64-bit loads below are aligned.
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
    --n;
  }
  while (n >= 32) {
    uint64_t a, b, c, d;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + 8, 8);
    std::memcpy(&c, p + 16, 8);
    std::memcpy(&d, p + 24, 8);
    l = _mm_crc32_u64(l, a);
    l = _mm_crc32_u64(l, b);
    l = _mm_crc32_u64(l, c);
    l = _mm_crc32_u64(l, d);
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    uint64_t a;
    std::memcpy(&a, p, 8);
    l = _mm_crc32_u64(l, a);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    l = _mm_crc32_u8(static_cast<uint32_t>(l), *p++);
    --n;
  }
  return ~static_cast<uint32_t>(l);
}

bool DetectSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t l = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    l = (l >> 8) ^ kTables[0][(l ^ *p++) & 0xff];
    --n;
  }
  // Slice-by-8: fold 8 input bytes per step.
  while (n >= 8) {
    uint64_t v = LoadLE64(p) ^ l;
    l = kTables[7][v & 0xff] ^ kTables[6][(v >> 8) & 0xff] ^
        kTables[5][(v >> 16) & 0xff] ^ kTables[4][(v >> 24) & 0xff] ^
        kTables[3][(v >> 32) & 0xff] ^ kTables[2][(v >> 40) & 0xff] ^
        kTables[1][(v >> 48) & 0xff] ^ kTables[0][(v >> 56) & 0xff];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    l = (l >> 8) ^ kTables[0][(l ^ *p++) & 0xff];
    --n;
  }
  return ~l;
}

uint32_t Crc32cExtendZeros(uint32_t crc, uint64_t n) {
  // Feeding a zero byte multiplies the (pre-inverted) register by x^8, so n
  // zero bytes multiply it by x^(8n) = product of x^(2^k) over the set bits k
  // of 8n.
  uint32_t reg = ~crc;
  uint32_t xn = 1u << 31;  // x^0
  unsigned k = 3;          // 8n = n << 3
  while (n != 0) {
    if (n & 1) xn = MultModP(kX2n[k & 31], xn);
    n >>= 1;
    ++k;
  }
  return ~MultModP(xn, reg);
}

bool Crc32cIsHardwareAccelerated() {
#if ROCKEEPER_CRC32C_HAVE_SSE42
  static const bool kHave = DetectSse42();
  return kHave;
#else
  return false;
#endif
}

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
#if ROCKEEPER_CRC32C_HAVE_SSE42
  if (Crc32cIsHardwareAccelerated()) {
    return ExtendSse42(crc, static_cast<const uint8_t*>(data), n);
  }
#endif
  return Crc32cExtendPortable(crc, data, n);
}

}  // namespace rockeeper::engine
