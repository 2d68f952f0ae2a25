// One accepted WebSocket connection, shared between its I/O thread and the application side
// (the Python thread). Messages in are queued (bounded: the connection stops reading while
// `in_high_water` bytes wait), frames out are queued like an Exchange's output. Waiters run on
// the I/O thread without the lock held and must only hand work over.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "http/out_piece.hpp"
#include "http/ws_deflate.hpp"

namespace puff::http {

class WsSession {
 public:
  struct Message {
    bool binary = false;
    std::string data;
  };

  // ---- application side (any thread) ---------------------------------------------------------
  enum class Recv { Message, WouldBlock, Closed };
  /** Takes the next message. WouldBlock keeps `on_ready` (if given) for when one arrives or the
   *  connection closes. */
  Recv receive(Message& out, std::function<void()> on_ready);
  /** Returns false when receive() would not block now; otherwise keeps `on_ready`. */
  bool wait_ready(std::function<void()> on_ready);
  /** Queues a text or binary message. False when the connection is closing or closed. */
  bool send(std::string_view payload, bool binary);
  /** Starts the closing handshake (idempotent). */
  void close(std::uint16_t code, std::string_view reason);
  std::size_t queued() const;
  /** Like Exchange::wait_drained. */
  bool wait_drained(std::function<void()> on_drained);
  /** After Recv::Closed: the close code and reason the peer sent (1005: none; 1006: the
   *  connection dropped without a close frame). */
  std::uint16_t close_code() const;
  std::string close_reason() const;

  /** permessage-deflate parameters, when negotiated (set before the upgrade; then read-only). */
  std::optional<ws::DeflateParams> deflate;

  std::size_t in_high_water = 4 * 1024 * 1024;
  std::size_t out_high_water = 1024 * 1024;
  std::size_t out_low_water = 256 * 1024;

  // ---- connection side (its I/O thread) ------------------------------------------------------
  /** Attaches the connection: `wake` posts "look at the session" to its thread. */
  void io_attach(std::function<void()> wake);
  /** A message arrived. Returns false when the application is behind (stop reading). */
  bool io_message(bool binary, std::string_view data);
  /** The peer closed (or the connection dropped: code 1006). Fires the waiters. */
  void io_closed(std::uint16_t code, std::string_view reason);
  /** Frames the queued messages (compressing them with `deflater` when given) into `out`;
   *  `close_queued` tells whether the application's close frame is among them or was before. */
  void io_take_output(std::vector<OutPiece>& out, bool& close_queued, ws::Deflate* deflater);
  void io_written(std::size_t n);
  bool io_wants_more() const;

 private:
  void wake();
  void fire(std::function<void()>& w, std::unique_lock<std::mutex>& lock);

  mutable std::mutex m_;
  std::function<void()> wake_;
  std::deque<Message> in_;
  std::size_t in_bytes_ = 0;
  std::function<void()> recv_waiter_;
  struct Outgoing {
    std::uint8_t opcode;  // text, binary or close
    std::string payload;  // the message, or the close frame's payload
  };
  std::vector<Outgoing> out_;
  std::size_t out_queued_ = 0;
  std::function<void()> drain_waiter_;
  bool close_queued_ = false;  // the application's close frame is queued or sent
  bool closed_ = false;        // the peer closed or the connection is gone
  std::uint16_t close_code_ = 1006;
  std::string close_reason_;
};

}  // namespace puff::http
