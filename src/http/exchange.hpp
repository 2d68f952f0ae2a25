// One HTTP request/response exchange, shared between the connection's I/O thread and the
// application side (the Python thread, or any thread in C++ tests).
//
// The I/O thread fills the request head once (immutable after dispatch) and streams the request
// body in; the application reads the body and streams the response out. Both directions are
// bounded: the connection stops reading the socket while `body_high_water` bytes wait to be
// read, and the application is told to wait (a drain waiter) while `out_high_water` bytes wait
// to be written. Waiters are callbacks run on the I/O thread without the lock held; they must
// only hand work over (e.g. complete an Op), never block.
#pragma once

#include "http/out_piece.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace puff::http {

class WsSession;

struct HeaderField {
  std::string_view name;  // as sent (case preserved); compare case-insensitively
  std::string_view value;
};

class Exchange {
 public:
  Exchange() = default;
  ~Exchange();
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  /** A file region sent with sendfile(2) after the queued bytes. */
  struct FilePart {
    int fd = -1;  // owned
    std::uint64_t offset = 0, length = 0;
  };

  // ---- the request head: written by the I/O thread before dispatch, then read-only ----------
  std::string storage;  // backing bytes of every string_view below
  std::string_view method, target, path, query;
  int version_minor = 1;
  std::vector<HeaderField> headers;
  std::string_view host;
  bool keep_alive = true;
  bool has_body = false;           // Content-Length > 0 or chunked
  bool chunked = false;
  std::uint64_t content_length = 0;  // when !chunked
  std::string remote_addr;
  std::uint16_t remote_port = 0;
  std::string local_addr;
  std::uint16_t local_port = 0;
  bool unix_socket = false;
  bool tls = false;
  bool http2 = false;  // an HTTP/2 stream: the response body is sent as DATA frames, unframed
  /** Header lines ("Name: value\r\n") every response to this request carries (CORS, ...);
   *  set by the connection's handlers before the application sees the request. */
  std::string extra_response_headers;
  /** The client accepts gzip and compression is enabled: compressible responses are gzipped
   *  (set by the Compression handler). 0 = off, else the minimum body size to compress. */
  std::size_t gzip_min_size = 0;
  /** Which mounted application serves it (set on the Python thread at dispatch). */
  std::uint16_t mount = 0;
  /** A valid RFC 6455 upgrade request (GET, HTTP/1.1, Upgrade: websocket, version 13, a key). */
  bool websocket = false;
  std::string_view ws_key, ws_protocols, ws_extensions;

  /** Accepts the WebSocket upgrade: queues `head` (the 101 response) as the whole response;
   *  once it is written the connection speaks WebSocket through `session`. Any thread. */
  bool upgrade(std::shared_ptr<WsSession> session, std::string head);
  /** Connection side: the session, once the application accepted. */
  std::shared_ptr<WsSession> io_upgraded() const;

  // ---- request body (application side; any thread) --------------------------------------------
  enum class Read { Data, Eof, WouldBlock, Error };
  /** Moves up to `max` buffered body bytes into `out` (appends). Data when something was moved,
   *  Eof when the body is complete and drained, WouldBlock when the caller must wait (then
   *  `on_ready` is kept and called once, from the I/O thread, when data, the end or an error
   *  arrives), Error when the body failed (client went away, bad chunk, too large). */
  Read read_body(std::size_t max, std::string& out, std::function<void()> on_ready);
  /** Returns false when reading now would not block (data, end or error is there); otherwise
   *  keeps `on_ready` (called once, on the I/O thread, when that changes) and returns true. */
  bool wait_body(std::function<void()> on_ready);
  /** Connection side: body bytes the application read since the last call (HTTP/2 turns them
   *  into WINDOW_UPDATEs, so uploads are flow-controlled by the application's reading). */
  std::uint64_t io_take_consumed();
  /** The whole request body has arrived and been read. */
  bool body_finished() const;
  /** The HTTP status the body's failure calls for (400 bad chunking, 413 too large), or 0. */
  int body_error_status() const;
  /** The error text after Read::Error. */
  std::string body_error() const;

  // ---- response (application side; any thread) -------------------------------------------------
  /** Queues bytes for the socket (the serialized head, body bytes, chunk framing: the
   *  application frames them). `last` marks the end of the response. Returns false when the
   *  connection is gone (the bytes are dropped). */
  bool write(std::string bytes, bool last);
  /** write() of `prefix`, then `body` without copying it (`hold` keeps it alive until the socket
   *  has taken it, or the exchange is dropped), then `suffix`. */
  bool write_ref(std::string prefix, std::string_view body, std::shared_ptr<const void> hold, std::string suffix,
                 bool last);
  /** True when this connection can send files with sendfile(2) (plain TCP/Unix, HTTP/1.x). */
  bool sendfile_ok = false;
  /** Ends the response with `head` (its bytes) then `length` bytes of `fd` from `offset`, sent by
   *  the kernel (sendfile). Takes ownership of `fd` (closed once sent or dropped). Only when
   *  sendfile_ok; the head must announce the length. False when the connection is gone. */
  bool write_file(std::string head, int fd, std::uint64_t offset, std::uint64_t length);
  /** Bytes queued and not yet written to the socket. */
  std::size_t queued() const;
  /** Called once, on the I/O thread, when queued() drops to `out_low_water` or below, or the
   *  connection is gone. Returns false (and does not keep `on_drained`) if that is already so. */
  bool wait_drained(std::function<void()> on_drained);
  /** Returns false if the exchange is already over (connection closed, or the response was
   *  completed and the connection moved on); otherwise keeps `on_closed` for that moment. */
  bool wait_closed(std::function<void()> on_closed);
  /** The application failed after (or before) sending the head: close the connection. */
  void abort();
  /** True once the connection is gone (closed, reset or timed out). */
  bool closed() const;
  /** The client closed its sending side (FIN) after the request: it may still read the
   *  response, but an application waiting for a disconnect (ASGI) is told now. */
  bool peer_gone() const;
  void io_peer_eof();

  std::size_t body_high_water = 256 * 1024;
  std::size_t out_high_water = 1024 * 1024;
  std::size_t out_low_water = 256 * 1024;

  // ---- connection side (the owning I/O thread) ------------------------------------------------
  /** Set by the connection: posts a "look at the exchange" task to its I/O thread. */
  std::function<void()> wake_io;
  /** Body bytes arrived (moves them in). Returns true while the connection may keep reading. */
  bool io_body_data(std::string_view data);
  void io_body_end();
  void io_body_error(std::string why, int http_status = 0);
  /** Takes everything queued for the socket; `last` tells whether the response is complete. */
  void io_take_output(std::vector<OutPiece>& out, bool& last, bool& aborted);
  /** Takes the file part queued by write_file(), once the bytes before it were taken. */
  bool io_take_file(FilePart& out);
  /** Bytes were written; fires the drain waiter if it is due. */
  void io_written(std::size_t n);
  /** The connection is gone, or done with this exchange: fail an unfinished body, drop
   *  output, fire every waiter. */
  void io_closed();
  /** True when the application wants more body and the buffer is below the high-water mark. */
  bool io_wants_body() const;

 private:
  void fire(std::function<void()>& w, std::unique_lock<std::mutex>& lock);

  mutable std::mutex m_;
  // body
  std::string body_buf_;
  std::size_t body_pos_ = 0;
  bool body_eof_ = false;
  bool body_failed_ = false;
  std::string body_error_;
  int body_error_status_ = 0;
  std::uint64_t body_consumed_ = 0;
  std::function<void()> body_waiter_;
  // response
  std::vector<OutPiece> out_;
  std::size_t out_queued_ = 0;  // queued in out_ + handed to the socket, not yet written
  bool out_last_ = false;
  bool aborted_ = false;
  bool closed_ = false;
  std::function<void()> drain_waiter_;
  std::function<void()> closed_waiter_;
  std::shared_ptr<WsSession> ws_;
  bool peer_eof_ = false;
  FilePart file_;
};

}  // namespace puff::http
