// WebSocket messages out of a client's byte stream: frames parsed and unmasked in place,
// fragments assembled, control frames (interleaved or not) delivered as they come, text checked
// as UTF-8 across fragments. No I/O. Decisions: docs/http-parsing.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/utf8.hpp"
#include "http/ws_frame.hpp"

namespace puff::http::ws {

struct Event {
  enum class Kind : std::uint8_t { NeedMore, Text, Binary, Ping, Pong, Close, Error };
  Kind kind = Kind::NeedMore;
  /** Text/Binary: the whole message; Ping/Pong: the application data; Close: the whole payload.
   *  Points into the caller's buffer or into the Reader; valid until the next call to next(). */
  std::string_view payload;
  /** Text/Binary: RSV1 was set (permessage-deflate). Such text is not UTF-8-checked here: the
   *  caller inflates it and checks the result with Utf8Validator. */
  bool compressed = false;
  CloseInfo close;  // Close: the code (1005 when the payload was empty) and reason
  Error error;      // Error: the close code to send and why
};

/** One connection's incoming side. Owned by the connection, used on one thread at a time. */
class Reader {
 public:
  explicit Reader(const Options& options = {}) : options_(options) {}

  /** Reads from `data` (unmasking payload bytes in place) until one event is complete.
   *  `consumed` = bytes of `data` used: drop them, keep the rest, and call again with it followed by
   *  newly received bytes. Complete frames in `data` are read without copying; a frame that is only
   *  partly there has its available payload consumed into the Reader.
   *  NeedMore: all of `data` was used except a partial frame header (< 14 bytes).
   *  Close and Error end the stream: later calls return the same kind, consume nothing and carry
   *  no payload. */
  Event next(char* data, std::size_t size, std::size_t& consumed);

  /** A fragmented message is open (its first frame was read, its last not yet). */
  bool in_message() const noexcept { return message_open_; }

 private:
  Event data_event(std::string_view payload, Opcode opcode, bool compressed);
  Event control_event(const FrameHeader& h, std::string_view payload);
  Event fail(const Error& e);

  Options options_;
  // The frame being read piece by piece (its header was consumed).
  bool in_frame_ = false;
  FrameHeader frame_;
  std::uint64_t frame_left_ = 0, frame_offset_ = 0;
  // The message being assembled from fragments or partial frames.
  bool message_open_ = false;
  Opcode message_opcode_ = Opcode::Text;
  bool message_compressed_ = false;
  std::uint64_t message_size_ = 0;
  std::string message_;
  bool message_returned_ = false;  // message_ was handed out; clear it on the next call
  Utf8Validator utf8_;
  // A control frame arriving in pieces.
  std::array<char, kMaxControlPayload> control_{};
  std::size_t control_size_ = 0;
  // Terminal state after Close or Error.
  Event::Kind ended_ = Event::Kind::NeedMore;
  Event end_event_;
};

}  // namespace puff::http::ws
