#include "http/server.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_set>
#include <utility>

#include "core/post_batch.hpp"
#include "http/chunked.hpp"
#include "http/server_internal.hpp"
#include "http/transport.hpp"
#include "http/response.hpp"
#include "http/utf8.hpp"
#include "http/ws_deflate.hpp"
#include "http/ws_frame.hpp"
#include "http/ws_handshake.hpp"
#include "http/ws_reader.hpp"
#include "http/ws_session.hpp"

namespace puff::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using GenericSocket = asio::generic::stream_protocol::socket;

// ---- listeners --------------------------------------------------------------------------------------

namespace {

/** Starts serving an accepted socket on `ex` (the thread that runs `ex`). */
void serve_accepted(asio::any_io_executor ex, int fd, std::shared_ptr<Server::State> st, bool unix_socket, int family,
                    std::shared_ptr<TlsContext> tls, std::shared_ptr<void> hold) {
  if (tls) {
    start_tls(tls, ex, family, fd, static_cast<unsigned>(st->opts.header_timeout.count()),
              [st, hold = std::move(hold)](std::unique_ptr<Transport> t) {
                if (!t) return;
                if (!st->accepting.load()) {  // stopped during the handshake: close_all() missed it
                  t->close();
                  return;
                }
                t->hold = hold;
                start_connection(std::move(t), st, false);
              });
  } else {
    auto t = make_plain_transport(ex, family, unix_socket ? 0 : IPPROTO_TCP, fd);
    t->hold = std::move(hold);
    start_connection(std::move(t), st, unix_socket);
  }
}

/** With ServerOptions::adaptive: whether the next connection goes to the Python thread. */
bool to_python_thread(Server::State& st) {
  if (!st.placement) return false;
  return st.placement->place([&st] { return st.units.load(std::memory_order_relaxed); }, Placement::Clock::now(),
                             [&st] { return st.io->owner_cpu_time() - st.io->owner_spin_time(); });
}

template <class Acceptor>
void accept_loop(std::shared_ptr<Acceptor> acc, std::shared_ptr<Server::State> st, bool unix_socket, int family,
                 std::shared_ptr<TlsContext> tls = nullptr) {
  acc->async_accept([acc, st, unix_socket, family, tls](const error_code& ec, typename Acceptor::protocol_type::socket s) {
    if (ec == asio::error::operation_aborted || !acc->is_open()) return;
    if (!ec) {
      if (!st->accepting.load() || st->connections.load() >= st->opts.max_connections) {
        error_code ignore;
        s.close(ignore);
      } else {
        int fd = s.release();
        if (to_python_thread(*st)) {
          // Set up on the Python thread's loop itself: its handlers may run as soon as the
          // socket is registered there, and nothing else may touch the connection meanwhile.
          // The socket is closed if that never happens (the loop destroyed first).
          auto owned = std::shared_ptr<int>(new int(fd), [](int* p) {
            if (*p >= 0) ::close(*p);
            delete p;
          });
          std::shared_ptr<void> hold = st->io->hold_driven();
          asio::any_io_executor ex = st->io->driven().get_executor();
          core::post_io(ex, [ex, owned, st, unix_socket, family, tls, hold = std::move(hold)]() mutable {
            if (!st->accepting.load()) return;  // the server stopped meanwhile: close_all() cannot see it
            int fd = std::exchange(*owned, -1);
            serve_accepted(ex, fd, st, unix_socket, family, tls, std::move(hold));
          });
        } else {
          serve_accepted(acc->get_executor(), fd, st, unix_socket, family, tls, nullptr);
        }
      }
    } else if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
      // Out of file descriptors: back off briefly instead of spinning.
      auto t = std::make_shared<asio::steady_timer>(acc->get_executor(), std::chrono::milliseconds(50));
      t->async_wait([t, acc, st, unix_socket, family, tls](const error_code&) {
        accept_loop(acc, st, unix_socket, family, tls);
      });
      return;
    }
    accept_loop(acc, st, unix_socket, family, tls);
  });
}

}  // namespace

Server::Server(core::IoPool& io, ServerOptions opts, std::shared_ptr<Handler> handler)
    : io_(io), state_(std::make_shared<State>()) {
  state_->opts = opts;
  state_->handler = std::move(handler);
  state_->io = &io;
  if (opts.adaptive && !opts.on_driven) state_->placement = std::make_unique<Placement>(opts.placement);
}

Server::~Server() {
  stop_accepting();
  close_all();
  if (driven_uses_) io_.use_driven(-driven_uses_);
}

bool Server::on_driven() const noexcept { return state_->opts.on_driven || state_->placement; }

Server::PlacementStats Server::placement() const {
  PlacementStats out;
  if (const Placement* p = state_->placement.get()) {
    out.python_us_per_unit = p->estimate_us();
    out.python_busy = p->busy();
    out.on_python = p->placed_on_python();
    out.on_io = p->placed_on_io();
  }
  return out;
}

void Server::kick_driven() {
  // An accept that completed at once (a client queued before we listened) waits in the loop's
  // queue, where nothing signals it: an outside loop that runs the owner thread (asyncio) only
  // polls when woken. post_io wakes it. Harmless elsewhere: the owner polls every round.
  if (state_->opts.on_driven) core::post_io(io_.driven().get_executor(), [] {});
}

std::vector<asio::io_context*> Server::listen_contexts() {
  std::vector<asio::io_context*> out;
  if (state_->opts.on_driven) {
    out.push_back(&io_.driven());
    io_.use_driven(1);
    ++driven_uses_;
  } else {
    for (std::size_t i = 0; i < io_.size(); ++i) out.push_back(&io_.context(i));
  }
  return out;
}

BoundEndpoint Server::listen_tcp(const std::string& host, std::uint16_t port, const TlsOptions* tls_opts) {
  std::shared_ptr<TlsContext> tls = tls_opts ? make_tls_context(*tls_opts) : nullptr;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("invalid bind address '" + host + "': " + ec.message());
  std::uint16_t bound_port = port;
  for (asio::io_context* ctx : listen_contexts()) {
    auto acc = std::make_shared<tcp::acceptor>(*ctx);
    tcp::endpoint ep(addr, bound_port);
    acc->open(ep.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true), ec);
    if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(state_->opts.backlog, ec);
    if (ec) {
      std::string where = (addr.is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(bound_port);
      throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
    }
    if (bound_port == 0) bound_port = acc->local_endpoint().port();
    accept_loop(acc, state_, false, addr.is_v6() ? AF_INET6 : AF_INET, tls);
    std::lock_guard<std::mutex> lock(state_->m);
    state_->closers.push_back([acc] {
      core::post_io(acc->get_executor(), [acc] {
        error_code ignore;
        acc->close(ignore);
      });
    });
  }
  kick_driven();
  return {addr.to_string(), bound_port, false, tls != nullptr};
}

BoundEndpoint Server::listen_unix(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error("cannot listen on " + path + ": exists and is not a socket");
    ::unlink(path.c_str());
  }
  auto acc = std::make_shared<asio::local::stream_protocol::acceptor>(*listen_contexts().front());
  error_code ec;
  asio::local::stream_protocol::endpoint ep(path);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(state_->opts.backlog, ec);
  if (ec) throw std::runtime_error("cannot listen on " + path + ": " + ec.message());
  accept_loop(acc, state_, true, AF_UNIX);
  std::lock_guard<std::mutex> lock(state_->m);
  state_->closers.push_back([acc] {
    core::post_io(acc->get_executor(), [acc] {
      error_code ignore;
      acc->close(ignore);
    });
  });
  kick_driven();
  return {path, 0, true, false};
}

void Server::listen_fd(int fd, const TlsOptions* tls_opts) {
  std::shared_ptr<TlsContext> tls = tls_opts ? make_tls_context(*tls_opts) : nullptr;
  for (asio::io_context* ctx : listen_contexts()) {
    int dupfd = ::dup(fd);
    if (dupfd < 0) throw std::runtime_error("dup of listening socket failed");
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(dupfd, reinterpret_cast<sockaddr*>(&ss), &len);
    int family = ss.ss_family;
    error_code ec;
    std::function<void()> closer;
    if (family == AF_UNIX) {
      auto acc = std::make_shared<asio::local::stream_protocol::acceptor>(*ctx);
      acc->assign(asio::local::stream_protocol(), dupfd, ec);
      if (ec) throw std::runtime_error("cannot use inherited socket: " + ec.message());
      accept_loop(acc, state_, true, family);
      closer = [acc] {
        core::post_io(acc->get_executor(), [acc] {
          error_code ignore;
          acc->close(ignore);
        });
      };
    } else {
      auto acc = std::make_shared<tcp::acceptor>(*ctx);
      acc->assign(family == AF_INET6 ? tcp::v6() : tcp::v4(), dupfd, ec);
      if (ec) throw std::runtime_error("cannot use inherited socket: " + ec.message());
      accept_loop(acc, state_, false, family, tls);
      closer = [acc] {
        core::post_io(acc->get_executor(), [acc] {
          error_code ignore;
          acc->close(ignore);
        });
      };
    }
    std::lock_guard<std::mutex> lock(state_->m);
    state_->closers.push_back(std::move(closer));
  }
  kick_driven();
}

std::size_t Server::connections() const { return state_->connections.load(); }
std::size_t Server::in_flight() const { return state_->in_flight.load(); }

void Server::stop_accepting() {
  state_->accepting.store(false);
  std::vector<std::function<void()>> closers;
  std::vector<std::shared_ptr<ConnectionBase>> conns;
  {
    std::lock_guard<std::mutex> lock(state_->m);
    closers.swap(state_->closers);
    conns.assign(state_->live.begin(), state_->live.end());
  }
  for (auto& c : closers) c();
  // Connections are touched only on their own thread; find it through the socket's executor.
  for (auto& c : conns) c->post_stop_when_idle();
}

void Server::close_all() {
  std::vector<std::shared_ptr<ConnectionBase>> conns;
  {
    std::lock_guard<std::mutex> lock(state_->m);
    conns.assign(state_->live.begin(), state_->live.end());
  }
  for (auto& c : conns) c->post_close();
}

}  // namespace puff::http
