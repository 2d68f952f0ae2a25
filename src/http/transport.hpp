// A connection's byte stream: a plain socket (TCP or Unix) or TLS over it. The HTTP/1.1,
// WebSocket and HTTP/2 code is written once against this interface. One I/O thread uses a
// transport; callbacks run on that thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace puff::http {

using IoHandler = std::function<void(const boost::system::error_code&, std::size_t)>;

class Transport {
 public:
  virtual ~Transport() = default;
  /** Reads what is available (at least one byte) into [data, data+size). */
  virtual void read_some(char* data, std::size_t size, IoHandler h) = 0;
  /** Writes every byte of `bufs` (which must stay valid until `h` runs). */
  virtual void write(const std::vector<boost::asio::const_buffer>& bufs, IoHandler h) = 0;
  /** Writes what the socket takes now, without waiting: the bytes written (from the start of
   *  `bufs`); `ec` would_block when it took none, operation_not_supported when this transport
   *  cannot (TLS), or the socket's error. */
  virtual std::size_t try_write(const std::vector<boost::asio::const_buffer>& bufs, boost::system::error_code& ec);
  /** Ends the sending side (TLS: close_notify is skipped; the socket's FIN is sent). */
  virtual void shutdown_send() = 0;
  virtual void close() = 0;
  virtual int native_handle() = 0;
  virtual boost::asio::any_io_executor executor() = 0;
  virtual bool tls() const { return false; }
  /** The socket can take sendfile(2) directly (no TLS layer in between). */
  virtual bool can_sendfile() const { return false; }
  /** Calls `h` once the socket is writable (for sendfile on a non-blocking socket). */
  virtual void wait_writable(std::function<void(const boost::system::error_code&)> h) = 0;
  /** The ALPN protocol the client and server agreed on ("h2", "http/1.1", or empty). */
  virtual std::string alpn() const { return {}; }

  /** Released with the transport: what the connection keeps alive while it lives (a
   *  connection on the Python thread's loop holds IoPool::hold_driven()). */
  std::shared_ptr<void> hold;
};

/** The peer's and the local address of a connected socket, as text and port ("" / 0 for a
 *  Unix socket). */
void socket_addresses(int fd, std::string& peer, std::uint16_t& peer_port, std::string& local,
                      std::uint16_t& local_port);

/** TLS settings for a listener (PEM files). */
struct TlsOptions {
  std::string certfile;
  std::string keyfile;
  bool h2 = true;  // offer "h2" in ALPN (else only "http/1.1")
};

class TlsContext;  // OpenSSL context, shared by a listener's connections

/** Loads the certificate and key; throws std::runtime_error naming the file on failure. */
std::shared_ptr<TlsContext> make_tls_context(const TlsOptions& opts);

/** Wraps an accepted socket (its native handle, which the transport then owns). */
std::unique_ptr<Transport> make_plain_transport(boost::asio::any_io_executor ex, int family, int protocol, int fd);

/** TLS over an accepted socket: runs the server handshake, then calls `done` with the transport
 *  (or null on failure, after closing the socket). The handshake is bounded by `timeout_ms`. */
void start_tls(std::shared_ptr<TlsContext> ctx, boost::asio::any_io_executor ex, int family, int fd,
               unsigned timeout_ms, std::function<void(std::unique_ptr<Transport>)> done);

}  // namespace puff::http
