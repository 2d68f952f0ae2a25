// The HTTP/1.1 connection (and WebSocket after an upgrade): parsing requests, streaming bodies
// both ways, keep-alive and pipelining, sendfile, handing over to HTTP/2 (prior knowledge or
// Upgrade: h2c). One object per socket, used only on its I/O thread.
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "core/post_batch.hpp"
#include "http/chunked.hpp"
#include "http/response.hpp"
#include "http/server_internal.hpp"
#include "http/transport.hpp"
#include "http/utf8.hpp"
#include "http/ws_deflate.hpp"
#include "http/ws_frame.hpp"
#include "http/ws_handshake.hpp"
#include "http/ws_reader.hpp"
#include "http/ws_session.hpp"

namespace puff::http {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

// ---- connection -------------------------------------------------------------------------------

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** `buf` is (a prefix of) the HTTP/2 client connection preface. */
bool looks_like_h2_preface(std::string_view buf) {
  std::size_t n = buf.size() < kH2Preface.size() ? buf.size() : kH2Preface.size();
  return n >= 4 && buf.substr(0, n) == kH2Preface.substr(0, n);
}

bool base64url_decode(std::string_view in, std::string& out) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-' || c == '+') return 62;
    if (c == '_' || c == '/') return 63;
    return -1;
  };
  out.clear();
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

class Connection final : public ConnectionBase, public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st, bool unix_socket)
      : t_(std::move(t)),
        timer_(t_->executor()),
        st_(std::move(st)),
        unix_(unix_socket),
        chunked_(st_->opts.limits) {}

  void start() {
    if (!unix_) {
      int one = 1;
      ::setsockopt(t_->native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fill_addresses();
    }
    buf_.resize(16 * 1024);
    arm_timer(st_->opts.header_timeout, /*idle=*/true);
    read();
  }

  // Any thread: the timer's executor, not t_'s (t_ moves to an HTTP/2 connection on the
  // connection's own thread, maybe while another thread stops the server).
  void post_stop_when_idle() override {
    core::post_io(timer_.get_executor(), [self = shared_from_this()] { self->stop_when_idle(); });
  }
  void post_close() override {
    core::post_io(timer_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  /** Graceful: close now if idle, else after the current response. Own thread. */
  void stop_when_idle() {
    stopping_ = true;
    if (!ex_ && end_ == start_) close();
  }

  void close() {
    if (closed_) return;
    auto self = shared_from_this();  // `live` may hold the last other reference
    closed_ = true;
    if (file_.fd >= 0) {
      ::close(file_.fd);
      file_ = Exchange::FilePart{};
    }
    timer_.cancel();
    t_->close();
    if (ex_) {
      ex_->io_closed();
      end_exchange();
    }
    if (ws_) ws_->io_closed(1006, "");  // 1006: dropped without a close frame
    st_->connections.fetch_sub(1);
    std::lock_guard<std::mutex> lock(st_->m);
    st_->live.erase(shared_from_this());
  }

 private:
  enum class Body { None, Length, Chunked, Done };

  void fill_addresses() { socket_addresses(t_->native_handle(), peer_addr_, peer_port_, local_addr_, local_port_); }

  void arm_timer(std::chrono::milliseconds d, bool idle) {
    timer_idle_ = idle;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->on_timeout();
    });
  }

  void on_timeout() {
    if (closed_) return;
    if (timer_idle_ && !ex_ && end_ > start_) {
      // A partial request head did not complete in time: tell the client, then close.
      send_error(408, "request head not received in time");
      return;
    }
    close();
  }

  void read() {
    if (reading_ || closed_ || peer_eof_) return;
    if (end_ == buf_.size()) {
      if (start_ > 0) {  // compact
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        end_ -= start_;
        start_ = 0;
      } else {
        std::size_t cap = st_->opts.limits.max_header_bytes + 16 * 1024;
        if (buf_.size() >= cap && (ex_ == nullptr || body_ == Body::Done)) return;  // hold off: enough buffered
        buf_.resize(buf_.size() * 2);
      }
    }
    reading_ = true;
    t_->read_some(buf_.data() + end_, buf_.size() - end_,
                  [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(const error_code& ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec == asio::error::eof && ex_ && !ws_ && body_ == Body::Done && !response_done_) {
      // The client half-closed after a complete request (RFC 9112 §9.6): answer it, then close.
      peer_eof_ = true;  // finish_response() closes; the exchange's fields are the app's now
      ex_->io_peer_eof();
      return;
    }
    if (ec) {
      close();
      return;
    }
    end_ += n;
    if (ws_) {
      ws_feed();
      return;
    }
    if (ex_) {
      if (body_ == Body::Length || body_ == Body::Chunked) {
        feed_body();
        if (closed_) return;
        if (body_ != Body::Done) arm_timer(st_->opts.body_timeout, false);
      }
      // While the response is pending keep one read outstanding to notice a disconnect; pause
      // when the body buffer is full (backpressure) or pipelined bytes pile up.
      if (body_ == Body::Done || ex_->io_wants_body()) read();
      return;
    }
    parse_next();
  }

  void parse_next() {
    if (closed_ || ex_) return;
    if (start_ == end_) {
      if (!reading_) start_ = end_ = 0;  // an outstanding read writes at end_: keep it valid
      if (stopping_) {
        close();
        return;
      }
      read();
      return;
    }
    std::string_view avail(buf_.data() + start_, end_ - start_);
    if (!served_any_ && !reading_ && looks_like_h2_preface(avail)) {
      if (avail.size() < kH2Preface.size()) {
        read();
        return;
      }
      hand_over_to_h2(avail, nullptr);  // HTTP/2 with prior knowledge (h2c)
      return;
    }
    Error err{};
    Status s = parse_request_head(avail, st_->opts.limits, head_, err);
    if (s == Status::Incomplete) {
      if (!timer_idle_) arm_timer(st_->opts.header_timeout, true);
      read();
      return;
    }
    if (s == Status::Error) {
      send_error(err.http_status, err.reason);
      return;
    }
    begin_exchange(avail.substr(0, head_.head_size));
  }

  void begin_exchange(std::string_view head_bytes) {
    auto ex = std::make_shared<Exchange>();
    ex->storage.assign(head_bytes.data(), head_bytes.size());
    RequestHead h;
    Error err{};
    parse_request_head(ex->storage, st_->opts.limits, h, err);  // views into ex->storage
    ex->method = h.method;
    ex->target = h.target;
    ex->path = h.path;
    ex->query = h.query;
    ex->version_minor = h.version_minor;
    ex->headers.reserve(h.headers.size());
    for (auto& f : h.headers) ex->headers.push_back({f.name, f.value});
    ex->host = h.host;
    ex->keep_alive = h.keep_alive && !stopping_;
    ex->chunked = h.chunked;
    ex->content_length = h.has_content_length ? h.content_length : 0;
    ex->has_body = h.chunked || (h.has_content_length && h.content_length > 0);
    if (h.upgrade && iequals(h.upgrade_token, "websocket") && h.method == "GET" && h.version_minor == 1) {
      const Header* key = h.find("sec-websocket-key");
      const Header* version = h.find("sec-websocket-version");
      if (key && version && version->value == "13" && ws::valid_client_key(key->value)) {
        ex->websocket = true;
        ex->ws_key = key->value;
        if (const Header* p = h.find("sec-websocket-protocol")) ex->ws_protocols = p->value;
        if (const Header* e = h.find("sec-websocket-extensions")) ex->ws_extensions = e->value;
      }
    }
    ex->remote_addr = peer_addr_;
    ex->remote_port = peer_port_;
    ex->local_addr = local_addr_;
    ex->local_port = local_port_;
    ex->unix_socket = unix_;
    ex->tls = t_->tls();
    ex->sendfile_ok = t_->can_sendfile();
    start_ += head_bytes.size();
    timer_.cancel();

    std::weak_ptr<Connection> weak = shared_from_this();
    auto exec = t_->executor();
    ex->wake_io = [weak, exec] {
      core::post_batched(exec, [weak] {
        if (auto self = weak.lock()) self->on_wake();
      });
    };
    ex_ = ex;
    st_->in_flight.fetch_add(1);
    st_->units.fetch_add(1, std::memory_order_relaxed);
    body_seen_ = 0;
    if (h.chunked) {
      body_ = Body::Chunked;
      chunked_.reset();
    } else if (ex->has_body) {
      body_ = Body::Length;
      body_left_ = h.content_length;
    } else {
      body_ = Body::Done;
      ex->io_body_end();
    }
    if (body_ != Body::Done) {
      if (h.expect_continue && start_ == end_) {
        static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        pending_.push_back(kContinue);
        write_pending();
      }
      feed_body();
      if (closed_) return;
      if (body_ != Body::Done) arm_timer(st_->opts.body_timeout, false);
    }
    served_any_ = true;
    if (h.upgrade && iequals(h.upgrade_token, "h2c") && !ex->has_body && !t_->tls() && st_->opts.h2c) {
      if (const Header* settings = h.find("http2-settings")) {
        std::string decoded;
        if (base64url_decode(settings->value, decoded)) {
          upgrade_to_h2(std::move(ex), std::move(decoded));
          return;
        }
      }
    }
    st_->handler->on_request(ex);
    read();
  }

  /** Answers 101 and continues the connection as HTTP/2 with this request as stream 1. */
  void upgrade_to_h2(std::shared_ptr<Exchange> ex, std::string settings) {
    ex_.reset();
    st_->in_flight.fetch_sub(1);
    body_ = Body::None;
    static const std::string k101 = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    bufs_.assign(1, asio::const_buffer(k101.data(), k101.size()));
    writing_ = true;
    auto up = std::make_shared<H2Upgrade>();
    up->settings = std::move(settings);
    up->head_request = ex->method == "HEAD";
    up->request = std::move(ex);
    t_->write(bufs_, [self = shared_from_this(), up](const error_code& ec, std::size_t) {
      self->writing_ = false;
      if (ec || self->closed_) {
        self->close();
        return;
      }
      std::string_view rest(self->buf_.data() + self->start_, self->end_ - self->start_);
      self->hand_over_to_h2(rest, up.get());
    });
  }

  /** Gives the transport to an HTTP/2 connection; this object then just goes away. */
  void hand_over_to_h2(std::string_view initial, H2Upgrade* upgrade) {
    auto self = shared_from_this();
    closed_ = true;
    timer_.cancel();
    std::string bytes(initial);
    st_->connections.fetch_sub(1);
    {
      std::lock_guard<std::mutex> lock(st_->m);
      st_->live.erase(self);
    }
    start_h2(std::move(t_), st_, bytes, upgrade);
  }

  void feed_body() {
    std::string_view avail(buf_.data() + start_, end_ - start_);
    if (avail.empty()) return;
    if (body_ == Body::Length) {
      std::size_t n = avail.size() < body_left_ ? avail.size() : static_cast<std::size_t>(body_left_);
      ex_->io_body_data(avail.substr(0, n));
      start_ += n;
      body_left_ -= n;
      if (body_left_ == 0) {
        body_ = Body::Done;
        timer_.cancel();
        ex_->io_body_end();
      }
    } else if (body_ == Body::Chunked) {
      chunk_out_.clear();
      std::size_t consumed = 0;
      Error err{};
      Status r = chunked_.decode(avail, consumed, chunk_out_, err);
      for (auto piece : chunk_out_) ex_->io_body_data(piece);
      start_ += consumed;
      if (r == Status::Complete) {
        body_ = Body::Done;
        timer_.cancel();
        ex_->io_body_end();
      } else if (r == Status::Error) {
        ex_->io_body_error(std::to_string(err.http_status) + " " + std::string(err.reason), err.http_status);
        body_ = Body::Done;
        broken_ = true;  // cannot find the next request in this stream
      }
    }
    if (start_ == end_ && !reading_) start_ = end_ = 0;
  }

  /** Something changed on the exchange (output queued, body consumed). Own thread. */
  void on_wake() {
    if (closed_) return;
    if (ws_) {
      if (!reading_ && !ws_peer_closed_ && ws_->io_wants_more()) ws_feed();
      write_pending();
      return;
    }
    if (!ex_) return;
    if ((body_ == Body::Length || body_ == Body::Chunked) && !reading_ && ex_->io_wants_body()) read();
    write_pending();
  }

  void write_pending() {
    if (writing_ || closed_) return;
    bool last = false, aborted = false;
    if (ws_) {
      bool close_queued = false;
      ws_->io_take_output(pending_, close_queued, ws_deflate_.get());
      if (close_queued) ws_close_sent_ = true;
      if (pending_.empty()) {
        if (ws_close_sent_ && ws_peer_closed_) {
          close();
        } else if (ws_close_sent_ && !ws_close_timer_) {
          ws_close_timer_ = true;  // wait a little for the peer's close frame, then drop it
          arm_timer(std::chrono::milliseconds(5000), false);
        }
        return;
      }
    } else if (ex_) {
      ex_->io_take_output(pending_, last, aborted);
    }
    if (aborted) {
      if (pending_.empty() || aborting_) {
        close();
        return;
      }
      aborting_ = true;  // what the application sent before it failed still goes out, then the cut
    }
    if (last) response_done_ = true;
    if (pending_.empty()) {
      if (response_done_ && file_.fd < 0 && ex_) ex_->io_take_file(file_);
      if (file_.fd >= 0) {
        send_file();
        return;
      }
      if (response_done_) finish_response();
      return;
    }
    writing_ = true;
    writing_now_.swap(pending_);
    pending_.clear();
    bufs_.clear();
    std::size_t total = 0;
    for (auto& s : writing_now_) {
      std::string_view v = s.view();
      bufs_.emplace_back(v.data(), v.size());
      total += v.size();
    }
    start_write(total);
  }

  /** Writes bufs_ (`total` bytes): at once when the socket takes it all, which saves an Asio
   *  operation and a trip through the loop per response; what it does not take goes through
   *  an asynchronous write. A response finished at once may start the next one (pipelined
   *  requests answered natively): that one goes asynchronously, so the stack stays flat. */
  void start_write(std::size_t total) {
    std::size_t done = 0;
    if (!in_sync_write_) {
      error_code ec;
      done = t_->try_write(bufs_, ec);
      if (!ec && done == total) {
        auto self = shared_from_this();  // whatever the chain below closes, this stays valid
        in_sync_write_ = true;
        on_written(ec, done, total);
        in_sync_write_ = false;
        return;
      }
      if (ec && ec != asio::error::would_block && ec != asio::error::operation_not_supported) {
        on_written(ec, 0, total);
        return;
      }
      std::size_t skip = done;  // drop the bytes the socket took
      std::size_t i = 0;
      while (i < bufs_.size() && skip >= bufs_[i].size()) skip -= bufs_[i++].size();
      bufs_.erase(bufs_.begin(), bufs_.begin() + static_cast<std::ptrdiff_t>(i));
      if (skip > 0) bufs_.front() += skip;
    }
    t_->write(bufs_, [self = shared_from_this(), total, done](const error_code& ec, std::size_t n) {
      self->on_written(ec, done + n, total);
    });
  }

  void on_written(const error_code& ec, std::size_t n, std::size_t total) {
    writing_ = false;
    writing_now_.clear();
    if (closed_) return;
    if (ec) {
      close();
      return;
    }
    if (aborting_) {
      close();
      return;
    }
    if (ex_) ex_->io_written(n);
    if (ws_) ws_->io_written(n);
    write_pending();
  }

  void finish_response() {
    if (!ex_) return;
    if (auto ws = ex_->io_upgraded()) {
      end_exchange();
      response_done_ = false;
      start_ws(std::move(ws));
      return;
    }
    bool keep = ex_->keep_alive && !stopping_ && !broken_;
    if (body_ != Body::Done) {
      // The application answered without reading the whole body: the rest of it would be
      // taken for the next request. Closing is the safe choice.
      keep = false;
    }
    end_exchange();
    response_done_ = false;
    if (!keep || closing_after_error_ || peer_eof_) {
      close();
      return;
    }
    arm_timer(st_->opts.keepalive_timeout, true);
    parse_next();
  }

  void end_exchange() {
    if (!ex_) return;
    ex_->io_closed();  // over for the application: later writes are dropped, waiters fire
    // wake_io stays set: the application may still call it (it is never reassigned, so there
    // is no race), and after io_closed() the exchange no longer calls it anyway.
    ex_.reset();
    st_->in_flight.fetch_sub(1);
    body_ = Body::None;
  }

  // ---- WebSocket mode ------------------------------------------------------------------------

  void start_ws(std::shared_ptr<WsSession> ws) {
    ws_ = std::move(ws);
    ws::Options o;
    o.max_message = st_->opts.ws_max_message;
    if (ws_->deflate) {
      o.permessage_deflate = true;
      ws_deflate_ = std::make_unique<ws::Deflate>(*ws_->deflate);
    }
    ws_reader_ = std::make_unique<ws::Reader>(o);
    timer_.cancel();
    std::weak_ptr<Connection> weak = shared_from_this();
    auto exec = t_->executor();
    ws_->io_attach([weak, exec] {
      core::post_batched(exec, [weak] {
        if (auto self = weak.lock()) self->on_wake();
      });
    });
    ws_feed();  // frames that arrived together with the handshake
  }

  void ws_feed() {
    bool paused = false;
    while (!ws_peer_closed_ && start_ < end_) {
      std::size_t consumed = 0;
      ws::Event e = ws_reader_->next(buf_.data() + start_, end_ - start_, consumed);
      start_ += consumed;
      using Kind = ws::Event::Kind;
      if (e.kind == Kind::NeedMore) break;
      if (e.kind == Kind::Text || e.kind == Kind::Binary) {
        std::string_view payload = e.payload;
        if (e.compressed) {
          inflated_.clear();
          bool too_big = false;
          if (!ws_deflate_ || !ws_deflate_->inflate(e.payload, inflated_, st_->opts.ws_max_message, too_big) ||
              (e.kind == Kind::Text && !valid_utf8(inflated_))) {
            ws_fail(too_big ? ws::kCloseTooBig : ws::kCloseInvalidData,
                    too_big ? "message too big" : "invalid compressed data");
            break;
          }
          payload = inflated_;
        }
        st_->units.fetch_add(1, std::memory_order_relaxed);
        if (!ws_->io_message(e.kind == Kind::Binary, payload)) paused = true;
        if (paused) break;
      } else if (e.kind == Kind::Ping) {
        if (!ws_close_sent_) {
          std::string pong;
          ws::append_frame(pong, ws::Opcode::Pong, e.payload);
          pending_.push_back(std::move(pong));
        }
      } else if (e.kind == Kind::Close || e.kind == Kind::Error) {
        ws_peer_closed_ = true;
        std::uint16_t code = e.kind == Kind::Close ? e.close.code : e.error.close_code;
        std::string_view reason = e.kind == Kind::Close ? e.close.reason : e.error.reason;
        if (!ws_close_sent_) {
          // Echo the peer's code (RFC 6455 §5.5.1); an empty close is answered with an empty one.
          std::string frame;
          if (e.kind == Kind::Close && code == ws::kCloseNoStatus) {
            ws::append_frame(frame, ws::Opcode::Close, {});
          } else {
            ws::append_close_frame(frame, code, e.kind == Kind::Error ? reason : std::string_view());
          }
          pending_.push_back(std::move(frame));
          ws_close_sent_ = true;
        }
        ws_->io_closed(code, reason);
      }
    }
    if (start_ == end_ && !reading_) start_ = end_ = 0;
    if (!paused && !ws_peer_closed_) read();
    write_pending();
  }

  /** Sends the response's file part with sendfile(2), waiting for writability on EAGAIN. */
  void send_file() {
    if (closed_ || writing_) return;
    int sock = t_->native_handle();
    int flags = ::fcntl(sock, F_GETFL);
    if (!(flags & O_NONBLOCK)) ::fcntl(sock, F_SETFL, flags | O_NONBLOCK);
    while (file_.length > 0) {
      off_t off = static_cast<off_t>(file_.offset);
      std::size_t chunk = file_.length < (1u << 20) ? static_cast<std::size_t>(file_.length) : (1u << 20);
      ssize_t n = ::sendfile(sock, file_.fd, &off, chunk);
      if (n > 0) {
        file_.offset += static_cast<std::uint64_t>(n);
        file_.length -= static_cast<std::uint64_t>(n);
        if (ex_) ex_->io_written(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        writing_ = true;
        t_->wait_writable([self = shared_from_this()](const error_code& ec) {
          self->writing_ = false;
          if (ec || self->closed_) {
            self->close();
            return;
          }
          self->send_file();
        });
        return;
      }
      close();  // error, or the file shrank under us (n == 0): the response cannot be completed
      return;
    }
    ::close(file_.fd);
    file_ = Exchange::FilePart{};
    write_pending();
  }

  /** Fails the WebSocket connection: a close frame with `code`, then the TCP close. */
  void ws_fail(std::uint16_t code, std::string_view reason) {
    ws_peer_closed_ = true;
    if (!ws_close_sent_) {
      std::string frame;
      ws::append_close_frame(frame, code, reason);
      pending_.push_back(std::move(frame));
      ws_close_sent_ = true;
    }
    ws_->io_closed(code, reason);
  }

  void send_error(int status, std::string_view reason) {
    std::string body(reason);
    body += "\n";
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
    head += date_header_line();
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n";
    pending_.push_back(std::move(head));
    pending_.push_back(std::move(body));
    closing_after_error_ = true;
    start_ = end_;  // discard the rest of the input
    writing_ = false;
    auto self = shared_from_this();
    writing_now_.swap(pending_);
    pending_.clear();
    bufs_.clear();
    for (auto& s : writing_now_) bufs_.emplace_back(s.view().data(), s.size());
    writing_ = true;
    t_->write(bufs_, [self](const error_code&, std::size_t) {
      self->writing_ = false;
      self->writing_now_.clear();
      // Let the client read the answer before the close resets the connection.
      self->t_->shutdown_send();
      self->close();
    });
  }

  std::unique_ptr<Transport> t_;
  asio::steady_timer timer_;
  std::shared_ptr<Server::State> st_;
  bool unix_;
  std::string peer_addr_, local_addr_;
  std::uint16_t peer_port_ = 0, local_port_ = 0;

  std::string buf_;
  std::size_t start_ = 0, end_ = 0;
  RequestHead head_;
  std::shared_ptr<Exchange> ex_;
  Body body_ = Body::None;
  std::uint64_t body_left_ = 0;
  std::uint64_t body_seen_ = 0;
  ChunkedDecoder chunked_;
  std::vector<std::string_view> chunk_out_;

  Exchange::FilePart file_;  // the response's file part being sent

  std::shared_ptr<WsSession> ws_;
  std::unique_ptr<ws::Reader> ws_reader_;
  std::unique_ptr<ws::Deflate> ws_deflate_;
  std::string inflated_;
  bool ws_close_sent_ = false, ws_peer_closed_ = false, ws_close_timer_ = false;

  std::vector<OutPiece> pending_, writing_now_;
  bool aborting_ = false;  // the application aborted: write what it queued, then close
  std::vector<asio::const_buffer> bufs_;
  bool reading_ = false, writing_ = false, closed_ = false, stopping_ = false;
  bool in_sync_write_ = false;  // inside on_written() of a write that completed at once
  bool timer_idle_ = false, response_done_ = false, broken_ = false, closing_after_error_ = false;
  bool served_any_ = false;
  bool peer_eof_ = false;  // the client half-closed: no more reads, close after the response
};

}  // namespace

void start_connection(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st, bool unix_socket) {
  if (t->alpn() == "h2") {
    start_h2(std::move(t), std::move(st), {}, nullptr);
    return;
  }
  auto conn = std::make_shared<Connection>(std::move(t), st, unix_socket);
  st->connections.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(st->m);
    st->live.insert(conn);
  }
  conn->start();
}

}  // namespace puff::http
