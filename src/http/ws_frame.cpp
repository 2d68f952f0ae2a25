#include "http/ws_frame.hpp"

#include <algorithm>
#include <cstring>

#include "http/utf8.hpp"

namespace puff::http::ws {

namespace {

constexpr Error kReservedBits{kCloseProtocolError, "reserved bits set"};
constexpr Error kRsv1{kCloseProtocolError, "RSV1 set without permessage-deflate on a message's first frame"};
constexpr Error kReservedOpcode{kCloseProtocolError, "reserved opcode"};
constexpr Error kNotMasked{kCloseProtocolError, "client frame not masked"};
constexpr Error kFragmentedControl{kCloseProtocolError, "fragmented control frame"};
constexpr Error kControlTooLong{kCloseProtocolError, "control frame payload over 125 bytes"};
constexpr Error kLengthTopBit{kCloseProtocolError, "64-bit payload length with the top bit set"};
constexpr Error kTooBig{kCloseTooBig, "message too big"};
constexpr Error kCloseOneByte{kCloseProtocolError, "close payload of one byte"};
constexpr Error kBadCloseCode{kCloseProtocolError, "invalid close code"};
constexpr Error kCloseReasonUtf8{kCloseInvalidData, "close reason is not UTF-8"};

bool known_opcode(std::uint8_t op) { return op <= 0x2 || (op >= 0x8 && op <= 0xA); }

}  // namespace

Status parse_frame_header(std::string_view buf, const Options& options, FrameHeader& out, Error& err) noexcept {
  if (buf.size() < 2) return Status::Incomplete;
  const auto* b = reinterpret_cast<const unsigned char*>(buf.data());
  const std::uint8_t op = b[0] & 0x0F;
  out.fin = b[0] & 0x80;
  out.rsv1 = b[0] & 0x40;
  out.rsv2 = b[0] & 0x20;
  out.rsv3 = b[0] & 0x10;
  out.masked = b[1] & 0x80;
  out.opcode = static_cast<Opcode>(op);
  const std::uint8_t len7 = b[1] & 0x7F;
  auto fail = [&](const Error& e) { return err = e, Status::Error; };

  // Everything the first two bytes can tell, checked before waiting for the rest.
  if (out.rsv2 || out.rsv3) return fail(kReservedBits);
  if (!known_opcode(op)) return fail(kReservedOpcode);
  // RFC 7692 §6.1: RSV1 marks a compressed message on its first frame only, never on control frames.
  if (out.rsv1 && (!options.permessage_deflate || out.is_control() || out.opcode == Opcode::Continuation))
    return fail(kRsv1);
  if (!out.masked) return fail(kNotMasked);  // RFC 6455 §5.1
  if (out.is_control()) {                    // RFC 6455 §5.5
    if (!out.fin) return fail(kFragmentedControl);
    if (len7 > kMaxControlPayload) return fail(kControlTooLong);
  }

  const std::size_t len_bytes = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  const std::size_t size = 2 + len_bytes + 4;
  if (buf.size() < size) return Status::Incomplete;
  std::uint64_t len = len7;
  if (len_bytes) {
    len = 0;
    for (std::size_t k = 0; k < len_bytes; ++k) len = len << 8 | b[2 + k];
    if (len >> 63) return fail(kLengthTopBit);
  }
  // Non-minimal length forms are accepted (the value is unambiguous); see docs/http-parsing.md.
  if (!out.is_control() && len > options.max_message) return fail(kTooBig);
  out.payload_length = len;
  std::memcpy(out.mask.data(), b + 2 + len_bytes, 4);
  out.header_size = size;
  return Status::Complete;
}

void unmask(char* data, std::size_t size, std::array<std::uint8_t, 4> mask, std::uint64_t offset) noexcept {
  unsigned char rotated[8];
  for (std::size_t k = 0; k < 8; ++k) rotated[k] = mask[(offset + k) & 3];
  std::uint64_t m;
  std::memcpy(&m, rotated, 8);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= m;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ rotated[i & 7]);
}

std::size_t encode_frame_header(char* out, Opcode opcode, std::uint64_t payload_size, bool fin, bool rsv1) noexcept {
  out[0] = static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(opcode));
  std::size_t len_bytes;
  if (payload_size < 126) {
    out[1] = static_cast<char>(payload_size);
    return 2;
  } else if (payload_size <= 0xFFFF) {
    out[1] = 126;
    len_bytes = 2;
  } else {
    out[1] = 127;
    len_bytes = 8;
  }
  for (std::size_t k = 0; k < len_bytes; ++k)
    out[2 + k] = static_cast<char>(payload_size >> (8 * (len_bytes - 1 - k)));
  return 2 + len_bytes;
}

void append_frame(std::string& out, Opcode opcode, std::string_view payload, bool fin, bool rsv1) {
  char header[kMaxServerHeaderSize];
  std::size_t n = encode_frame_header(header, opcode, payload.size(), fin, rsv1);
  out.reserve(out.size() + n + payload.size());
  out.append(header, n);
  out.append(payload);
}

void append_close_frame(std::string& out, std::uint16_t code, std::string_view reason) {
  if (code == 0) return append_frame(out, Opcode::Close, {});
  std::size_t keep = std::min(reason.size(), kMaxControlPayload - 2);
  // Cut at a code point boundary: never before a continuation byte.
  while (keep < reason.size() && keep > 0 && (static_cast<unsigned char>(reason[keep]) & 0xC0) == 0x80) --keep;
  char payload[kMaxControlPayload];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xFF);
  std::memcpy(payload + 2, reason.data(), keep);
  append_frame(out, Opcode::Close, std::string_view(payload, 2 + keep));
}

bool valid_close_code(std::uint16_t code) noexcept {
  // 1004-1006 and 1015 are reserved and never sent; 1016-2999 are unassigned; 1012-1014 are
  // registered with IANA (service restart, try again later, bad gateway) and accepted.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

bool parse_close_payload(std::string_view payload, CloseInfo& out, Error& err) noexcept {
  if (payload.empty()) {
    out = CloseInfo{};
    return true;
  }
  if (payload.size() == 1) return err = kCloseOneByte, false;
  const auto code = static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 |
                                               static_cast<unsigned char>(payload[1]));
  if (!valid_close_code(code)) return err = kBadCloseCode, false;
  std::string_view reason = payload.substr(2);
  if (!valid_utf8(reason)) return err = kCloseReasonUtf8, false;
  out.code = code;
  out.reason = reason;
  return true;
}

}  // namespace puff::http::ws
