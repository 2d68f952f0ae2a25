// Builds client (masked) WebSocket frames for the tests.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/ws_frame.hpp"

namespace puff::http::ws::test {

inline constexpr std::array<std::uint8_t, 4> kMask{0x37, 0xfa, 0x21, 0x3d};

/** A masked frame. `first` is the whole first byte (FIN, RSV, opcode); `len_form` forces 7, 16 or
 *  64-bit length encoding (0: the shortest). */
inline std::string client_frame(std::uint8_t first, std::string_view payload, int len_form = 0,
                                std::array<std::uint8_t, 4> mask = kMask, bool masked = true) {
  std::string f;
  f += static_cast<char>(first);
  const std::uint64_t n = payload.size();
  if (len_form == 0) len_form = n < 126 ? 7 : n <= 0xFFFF ? 16 : 64;
  const char mbit = masked ? static_cast<char>(0x80) : 0;
  if (len_form == 7) {
    f += static_cast<char>(mbit | static_cast<char>(n));
  } else {
    const int bytes = len_form == 16 ? 2 : 8;
    f += static_cast<char>(mbit | (bytes == 2 ? 126 : 127));
    for (int k = bytes - 1; k >= 0; --k) f += static_cast<char>(n >> (8 * k));
  }
  if (masked) f.append(reinterpret_cast<const char*>(mask.data()), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += static_cast<char>(payload[i] ^ (masked ? mask[i % 4] : 0));
  return f;
}

inline std::string client_frame(Opcode op, std::string_view payload, bool fin = true) {
  return client_frame(static_cast<std::uint8_t>((fin ? 0x80 : 0) | static_cast<std::uint8_t>(op)), payload);
}

}  // namespace puff::http::ws::test
