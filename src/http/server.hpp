// The HTTP/1.1 server: listeners on every I/O thread (SO_REUSEPORT, the kernel spreads
// connections), one connection object per socket living on the thread that accepted it.
// Requests are handed to a Handler as Exchanges; the application answers through the Exchange
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/io_pool.hpp"
#include "http/exchange.hpp"
#include "http/http1_parser.hpp"
#include "http/placement.hpp"
#include "http/response.hpp"
#include "http/transport.hpp"

namespace puff::http {

struct ServerOptions {
  Limits limits;
  std::chrono::milliseconds header_timeout{10000};    // to receive a whole request head
  std::chrono::milliseconds keepalive_timeout{5000};  // idle between requests
  std::chrono::milliseconds body_timeout{30000};      // between two reads of a request body
  std::size_t max_connections = 10000;                // per process; more are accepted and closed
  int backlog = 1024;
  std::uint64_t ws_max_message = 16 * 1024 * 1024;  // WebSocket message limit (close 1009)
  bool h2c = true;  // cleartext HTTP/2: prior knowledge and `Upgrade: h2c`
  /** Accept and serve every connection on IoPool::driven(), the loop the Python thread runs
   *  itself, instead of on the I/O threads: no hand-off between threads per request (a worker
   *  is one busy thread, as uvicorn's and granian's are). */
  bool on_driven = false;
  /** Listen on the I/O threads and place each new connection on driven() or on the accepting
   *  I/O thread, by what the application costs the Python thread per request (Placement).
   *  Ignored with on_driven. */
  bool adaptive = false;
  Placement::Thresholds placement;  // adaptive's thresholds (tests set their own)
};

/** Receives requests. on_request runs on the connection's I/O thread and must not block. */
class Handler {
 public:
  virtual ~Handler() = default;
  virtual void on_request(std::shared_ptr<Exchange> ex) = 0;
};

struct BoundEndpoint {
  std::string address;  // "127.0.0.1", "::1" or a Unix socket path
  std::uint16_t port;   // 0 for Unix sockets
  bool unix_socket;
  bool tls;
};

class Server {
 public:
  Server(core::IoPool& io, ServerOptions opts, std::shared_ptr<Handler> handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /** Listens on host:port on every I/O thread (port 0 = pick one, shared by all threads).
   *  Throws std::runtime_error with the address in the message on failure. Any thread. */
  BoundEndpoint listen_tcp(const std::string& host, std::uint16_t port, const TlsOptions* tls = nullptr);
  /** Listens on a Unix socket path (a stale socket file is replaced). */
  BoundEndpoint listen_unix(const std::string& path);
  /** Listens on an already-bound listening socket (inherited from a supervisor). */
  void listen_fd(int fd, const TlsOptions* tls = nullptr);

  /** True when connections may live on the Python thread's loop (ServerOptions::on_driven or
   *  adaptive). */
  bool on_driven() const noexcept;
  /** With ServerOptions::adaptive: the last window's measures (negative before the first) and
   *  the connections placed each way (Placement). */
  struct PlacementStats {
    double python_us_per_unit = -1;
    double python_busy = -1;  // the Python thread's share of the last window's time
    std::uint64_t on_python = 0, on_io = 0;
  };
  PlacementStats placement() const;

  /** Stops accepting; idle connections close, busy ones close after their response. */
  void stop_accepting();
  /** Closes every connection now. */
  void close_all();
  std::size_t connections() const;
  std::size_t in_flight() const;

  struct State;  // shared with connections

 private:
  /** The contexts listeners go on: every I/O thread, or driven() alone (then counted as one
   *  more use_driven() user, undone when the Server goes). */
  std::vector<boost::asio::io_context*> listen_contexts();
  /** After listening on driven(): makes sure its owner polls it soon. */
  void kick_driven();

  core::IoPool& io_;
  std::shared_ptr<State> state_;
  int driven_uses_ = 0;  // use_driven() calls to undo
};


}  // namespace puff::http
