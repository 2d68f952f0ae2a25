// WebSocket frames (RFC 6455 §5), server side: parse and validate a client frame's header, unmask
// its payload in place, check close payloads, and encode the server's (unmasked) frames.
// Pure functions over bytes; any thread. Decisions: docs/http-parsing.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/limits.hpp"

namespace puff::http::ws {

enum class Opcode : std::uint8_t { Continuation = 0x0, Text = 0x1, Binary = 0x2, Close = 0x8, Ping = 0x9, Pong = 0xA };

/** Close codes this layer reports (RFC 6455 §7.4.1). */
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseNoStatus = 1005;  // reported for an empty close payload; never sent
inline constexpr std::uint16_t kCloseInvalidData = 1007;
inline constexpr std::uint16_t kCloseTooBig = 1009;

/** A client frame header may take up to 14 bytes; a server's up to 10. */
inline constexpr std::size_t kMaxHeaderSize = 14;
inline constexpr std::size_t kMaxServerHeaderSize = 10;
inline constexpr std::size_t kMaxControlPayload = 125;

/** Per-connection settings, fixed after the handshake. */
struct Options {
  /** permessage-deflate was negotiated: RSV1 may mark a message's first frame as compressed. */
  bool permessage_deflate = false;
  /** Largest message (payload of all its frames; compressed size when compressed). Over it: 1009. */
  std::uint64_t max_message = 16 * 1024 * 1024;
};

/** Why the connection must be failed: the close code to send and a static reason. */
struct Error {
  std::uint16_t close_code = 0;
  std::string_view reason;
};

struct FrameHeader {
  bool fin = false, rsv1 = false, rsv2 = false, rsv3 = false, masked = false;
  Opcode opcode = Opcode::Continuation;
  std::uint64_t payload_length = 0;
  std::array<std::uint8_t, 4> mask{};
  std::size_t header_size = 0;  // 2..14: the payload starts at buf[header_size]

  bool is_control() const noexcept { return (static_cast<std::uint8_t>(opcode) & 0x8) != 0; }
};

/** Parses and validates the client frame header at the start of `buf` (all checks that need no
 *  message state: masking, opcodes, RSV bits, control-frame rules, the 64-bit length's top bit,
 *  one frame over max_message). Incomplete: fewer bytes than the header needs. */
Status parse_frame_header(std::string_view buf, const Options& options, FrameHeader& out, Error& err) noexcept;

/** XORs `data` with `mask`, in place, as if `data` began `offset` bytes into the payload (so a
 *  payload can be unmasked piece by piece). Eight bytes at a time. */
void unmask(char* data, std::size_t size, std::array<std::uint8_t, 4> mask, std::uint64_t offset = 0) noexcept;

/** Writes a server frame header (FIN/RSV1 as given, no mask, shortest length form) to `out`,
 *  which must hold kMaxServerHeaderSize bytes. Returns its size. Control frames need size <= 125. */
std::size_t encode_frame_header(char* out, Opcode opcode, std::uint64_t payload_size, bool fin = true,
                                bool rsv1 = false) noexcept;

/** Appends a whole server frame (header + payload) to `out`. */
void append_frame(std::string& out, Opcode opcode, std::string_view payload, bool fin = true, bool rsv1 = false);

/** Appends a close frame with `code` and `reason`; the reason is cut to fit 125 bytes (at a UTF-8
 *  code point boundary). `code` 0 sends an empty payload. */
void append_close_frame(std::string& out, std::uint16_t code, std::string_view reason = {});

/** A code a peer may send in a close frame: 1000-1003, 1007-1014, 3000-4999. */
bool valid_close_code(std::uint16_t code) noexcept;

struct CloseInfo {
  std::uint16_t code = kCloseNoStatus;
  std::string_view reason;  // a view into the payload
};

/** Reads a close frame's payload: empty (code 1005), or a valid code and a UTF-8 reason.
 *  Errors: one byte or an invalid code -> 1002; a reason that is not UTF-8 -> 1007. */
bool parse_close_payload(std::string_view payload, CloseInfo& out, Error& err) noexcept;

}  // namespace puff::http::ws
