// What the HTTP/1.1 and HTTP/2 connection classes share with the Server (not public API).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "http/placement.hpp"
#include "http/server.hpp"
#include "http/transport.hpp"

namespace puff::http {

/** A live connection, as the server sees it for graceful stop and close-all. Any thread. */
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void post_stop_when_idle() = 0;
  virtual void post_close() = 0;
};

struct Server::State {
  ServerOptions opts;
  std::shared_ptr<Handler> handler;
  core::IoPool* io = nullptr;
  std::unique_ptr<Placement> placement;  // with opts.adaptive
  /** Work handed to the application: requests and WebSocket messages (Placement's units). */
  std::atomic<std::uint64_t> units{0};
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};
  std::atomic<bool> accepting{true};
  std::mutex m;
  std::unordered_set<std::shared_ptr<ConnectionBase>> live;  // for stop/close_all
  std::vector<std::function<void()>> closers;                // close each listener (on its thread)
};

/** Runs HTTP/1.1 (and WebSocket) on an accepted transport; registers the connection in
 *  st->live. The connection's I/O thread. */
void start_connection(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st, bool unix_socket);

/** The settings payload of an `Upgrade: h2c` request, and the request itself (stream 1). */
struct H2Upgrade {
  std::string settings;  // HTTP2-Settings, base64url-decoded
  std::shared_ptr<Exchange> request;
  bool head_request = false;
};

/** Runs HTTP/2 on `t` (its own I/O thread). `initial` = bytes already read (the client preface
 *  onwards). With `upgrade`, the session starts from an h2c upgrade. Registers itself in
 *  st->live and counts itself in st->connections. */
void start_h2(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st, std::string_view initial,
              H2Upgrade* upgrade);

}  // namespace puff::http
