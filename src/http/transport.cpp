#include "http/transport.hpp"

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <iterator>
#include <stdexcept>

namespace puff::http {

namespace asio = boost::asio;
using error_code = boost::system::error_code;
using GenericSocket = asio::generic::stream_protocol::socket;

class TlsContext {
 public:
  asio::ssl::context ctx{asio::ssl::context::tls_server};
  bool h2 = true;
};

namespace {

class PlainTransport final : public Transport {
 public:
  explicit PlainTransport(GenericSocket s) : s_(std::move(s)) {}
  void read_some(char* data, std::size_t size, IoHandler h) override {
    s_.async_read_some(asio::buffer(data, size), std::move(h));
  }
  void write(const std::vector<asio::const_buffer>& bufs, IoHandler h) override {
    asio::async_write(s_, bufs, std::move(h));
  }
  std::size_t try_write(const std::vector<asio::const_buffer>& bufs, error_code& ec) override {
    iovec iov[64];
    std::size_t n = bufs.size() < std::size(iov) ? bufs.size() : std::size(iov);
    for (std::size_t i = 0; i < n; ++i) iov[i] = {const_cast<void*>(bufs[i].data()), bufs[i].size()};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    for (;;) {
      ssize_t r = ::sendmsg(s_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r >= 0) {
        ec.clear();
        return static_cast<std::size_t>(r);
      }
      if (errno == EINTR) continue;
      ec = errno == EAGAIN || errno == EWOULDBLOCK ? error_code(asio::error::would_block)
                                                   : error_code(errno, boost::system::system_category());
      return 0;
    }
  }
  void shutdown_send() override {
    error_code ec;
    s_.shutdown(asio::socket_base::shutdown_send, ec);
  }
  void close() override {
    error_code ec;
    s_.shutdown(asio::socket_base::shutdown_both, ec);
    s_.close(ec);
  }
  int native_handle() override { return s_.native_handle(); }
  asio::any_io_executor executor() override { return s_.get_executor(); }
  bool can_sendfile() const override { return true; }
  void wait_writable(std::function<void(const error_code&)> h) override {
    s_.async_wait(asio::socket_base::wait_write, std::move(h));
  }

 private:
  GenericSocket s_;
};

class TlsTransport final : public Transport {
 public:
  TlsTransport(std::shared_ptr<TlsContext> ctx, GenericSocket s) : ctx_(std::move(ctx)), s_(std::move(s), ctx_->ctx) {}
  void read_some(char* data, std::size_t size, IoHandler h) override {
    s_.async_read_some(asio::buffer(data, size), std::move(h));
  }
  void write(const std::vector<asio::const_buffer>& bufs, IoHandler h) override {
    asio::async_write(s_, bufs, std::move(h));
  }
  void shutdown_send() override {
    error_code ec;
    s_.lowest_layer().shutdown(asio::socket_base::shutdown_send, ec);
  }
  void close() override {
    error_code ec;
    s_.lowest_layer().shutdown(asio::socket_base::shutdown_both, ec);
    s_.lowest_layer().close(ec);
  }
  int native_handle() override { return s_.lowest_layer().native_handle(); }
  asio::any_io_executor executor() override { return s_.get_executor(); }
  bool tls() const override { return true; }
  void wait_writable(std::function<void(const error_code&)> h) override {
    s_.lowest_layer().async_wait(asio::socket_base::wait_write, std::move(h));
  }
  std::string alpn() const override {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(const_cast<asio::ssl::stream<GenericSocket>&>(s_).native_handle(), &p, &len);
    return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
  }
  asio::ssl::stream<GenericSocket>& stream() { return s_; }

 private:
  std::shared_ptr<TlsContext> ctx_;
  asio::ssl::stream<GenericSocket> s_;
};

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void* arg) {
  auto* tc = static_cast<TlsContext*>(arg);
  // Server preference: h2 first (when enabled), then http/1.1.
  static const unsigned char kH2[] = {2, 'h', '2'};
  static const unsigned char kH1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  auto offered = [&](const unsigned char* proto) {
    for (unsigned i = 0; i < inlen;) {
      unsigned n = in[i];
      if (i + 1 + n > inlen) break;
      if (n == proto[0] && std::equal(proto + 1, proto + 1 + n, in + i + 1)) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(n);
        return true;
      }
      i += 1 + n;
    }
    return false;
  };
  if ((tc->h2 && offered(kH2)) || offered(kH1)) return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_NOACK;  // no overlap: continue without ALPN (HTTP/1.1)
}

}  // namespace

std::size_t Transport::try_write(const std::vector<asio::const_buffer>&, error_code& ec) {
  ec = asio::error::operation_not_supported;
  return 0;
}

void socket_addresses(int fd, std::string& peer, std::uint16_t& peer_port, std::string& local,
                      std::uint16_t& local_port) {
  auto name = [](const sockaddr_storage& s, std::string& addr, std::uint16_t& port) {
    char text[64] = {0};
    if (s.ss_family == AF_INET) {
      auto* a = reinterpret_cast<const sockaddr_in*>(&s);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (s.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<const sockaddr_in6*>(&s);
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    addr = text;
  };
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) name(ss, peer, peer_port);
  len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) name(ss, local, local_port);
}

std::shared_ptr<TlsContext> make_tls_context(const TlsOptions& opts) {
  auto tc = std::make_shared<TlsContext>();
  tc->h2 = opts.h2;
  error_code ec;
  tc->ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                          asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                          asio::ssl::context::single_dh_use,
                      ec);
  tc->ctx.use_certificate_chain_file(opts.certfile, ec);
  if (ec) throw std::runtime_error("cannot load certificate " + opts.certfile + ": " + ec.message());
  tc->ctx.use_private_key_file(opts.keyfile, asio::ssl::context::pem, ec);
  if (ec) throw std::runtime_error("cannot load private key " + opts.keyfile + ": " + ec.message());
  if (SSL_CTX_check_private_key(tc->ctx.native_handle()) != 1)
    throw std::runtime_error("private key " + opts.keyfile + " does not match certificate " + opts.certfile);
  SSL_CTX_set_alpn_select_cb(tc->ctx.native_handle(), select_alpn, tc.get());
  return tc;
}

std::unique_ptr<Transport> make_plain_transport(asio::any_io_executor ex, int family, int protocol, int fd) {
  return std::make_unique<PlainTransport>(GenericSocket(ex, asio::generic::stream_protocol(family, protocol), fd));
}

void start_tls(std::shared_ptr<TlsContext> ctx, asio::any_io_executor ex, int family, int fd, unsigned timeout_ms,
               std::function<void(std::unique_ptr<Transport>)> done) {
  auto t = std::make_shared<std::unique_ptr<TlsTransport>>(
      std::make_unique<TlsTransport>(ctx, GenericSocket(ex, asio::generic::stream_protocol(family, IPPROTO_TCP), fd)));
  auto timer = std::make_shared<asio::steady_timer>(ex, std::chrono::milliseconds(timeout_ms));
  TlsTransport* raw = t->get();
  timer->async_wait([t, raw](const error_code& ec) {
    if (!ec && *t) raw->close();  // a client that never finishes the handshake
  });
  raw->stream().async_handshake(asio::ssl::stream_base::server,
                                [t, timer, done = std::move(done)](const error_code& ec) mutable {
                                  timer->cancel();
                                  if (ec) {
                                    (*t)->close();
                                    done(nullptr);
                                    return;
                                  }
                                  done(std::move(*t));
                                });
}

}  // namespace puff::http
