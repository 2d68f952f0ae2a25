// Big-endian loads and appends shared by the binary codecs (internal to src/pg/).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

namespace puff::pg::wire {

inline std::uint16_t load16(const char* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}
inline std::uint32_t load32(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

inline void put16(std::uint16_t v, std::string& out) {
  v = __builtin_bswap16(v);
  out.append(reinterpret_cast<const char*>(&v), 2);
}
inline void put32(std::uint32_t v, std::string& out) {
  v = __builtin_bswap32(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}
inline void put64(std::uint64_t v, std::string& out) {
  v = __builtin_bswap64(v);
  out.append(reinterpret_cast<const char*>(&v), 8);
}
/** Overwrites 4 bytes at `at` (a length or flag written earlier). */
inline void patch32(std::string& out, std::size_t at, std::uint32_t v) noexcept {
  v = __builtin_bswap32(v);
  std::memcpy(out.data() + at, &v, 4);
}

static_assert(std::endian::native == std::endian::little, "the codecs assume a little-endian host");

}  // namespace puff::pg::wire
