// HTTP/2 (RFC 9113) on a Transport with libnghttp2's callback API: nghttp2 parses and frames,
// we own the socket (mem_recv / mem_send, one write in flight, output coalesced). Each stream
// becomes an Exchange handed to the same Handler as HTTP/1.1, so WSGI/ASGI code is shared.
//
// The application writes an HTTP/1-style head (ResponseWriter in HTTP/2 mode: no chunking, no
// connection headers); this file turns it into a HEADERS frame and streams the rest as DATA.
// Limits set explicitly (Debian's 1.52 backports): Rapid Reset (stream reset rate limit) and
// the CONTINUATION flood (max continuations), plus concurrent streams and header list size.
#include <nghttp2/nghttp2.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <arpa/inet.h>
#include <cstring>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unordered_map>

#include "core/post_batch.hpp"
#include "http/http1_parser.hpp"
#include "http/server_internal.hpp"

namespace puff::http {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

namespace {

constexpr std::size_t kReadSize = 32 * 1024;
constexpr std::uint32_t kMaxStreams = 100;

struct Stream {
  std::int32_t id = 0;
  std::shared_ptr<Exchange> ex;
  // request head while HEADERS arrive
  std::string method, path, scheme, authority;
  std::vector<std::pair<std::string, std::string>> headers;
  std::size_t header_bytes = 0;
  bool end_stream = false;  // the request body is complete
  bool dispatched = false;
  std::uint64_t body_bytes = 0;     // DATA payload received (flow-controlled bytes)
  std::uint64_t consumed = 0;       // of which the window was given back
  // response
  std::string out;        // head bytes until the head is parsed, then body bytes
  std::size_t out_pos = 0;
  bool head_submitted = false;
  bool out_last = false;
  bool deferred = false;
};

bool parse_head(std::string_view head, int& status, std::vector<std::pair<std::string, std::string>>& hdrs) {
  // "HTTP/1.1 200 OK\r\nName: value\r\n...\r\n" (ResponseWriter's own output)
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos || eol < 12) return false;
  std::string_view line = head.substr(0, eol);
  auto sp = line.find(' ');
  if (sp == std::string_view::npos || sp + 4 > line.size()) return false;
  status = (line[sp + 1] - '0') * 100 + (line[sp + 2] - '0') * 10 + (line[sp + 3] - '0');
  std::size_t pos = eol + 2;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    if (e == std::string_view::npos || e == pos) break;
    std::string_view l = head.substr(pos, e - pos);
    auto colon = l.find(':');
    if (colon != std::string_view::npos) {
      std::string name(l.substr(0, colon));
      for (char& c : name)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      std::string_view v = l.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      if (name != "connection" && name != "keep-alive" && name != "transfer-encoding" && name != "upgrade" &&
          name != "proxy-connection")
        hdrs.emplace_back(std::move(name), std::string(v));
    }
    pos = e + 2;
  }
  return true;
}

}  // namespace

class H2Connection final : public ConnectionBase, public std::enable_shared_from_this<H2Connection> {
 public:
  H2Connection(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st)
      : t_(std::move(t)), st_(std::move(st)), timer_(t_->executor()) {}

  ~H2Connection() override {
    if (session_) nghttp2_session_del(session_);
  }

  bool init(std::string_view initial, H2Upgrade* upgrade) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);  // Rapid Reset (CVE-2023-44487)
    nghttp2_option_set_max_continuations(opt, 8);               // CONTINUATION flood (CVE-2024-28182)
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    // Request bodies: window updates follow the application's reading (on_stream_wake), so a
    // slow reader slows its client instead of buffering the upload in memory.
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_server_new2(&session_, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) return false;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxStreams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(st_->opts.limits.max_header_bytes)},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (upgrade) {
      auto s = std::make_unique<Stream>();
      s->id = 1;
      s->ex = upgrade->request;
      s->end_stream = true;
      Stream* raw = s.get();
      if (nghttp2_session_upgrade2(session_, reinterpret_cast<const uint8_t*>(upgrade->settings.data()),
                                   upgrade->settings.size(), upgrade->head_request, raw) != 0)
        return false;
      streams_[1] = std::move(s);
      raw->ex->http2 = true;
      raw->ex->keep_alive = true;
      attach(*raw);
      raw->dispatched = true;
      st_->in_flight.fetch_add(1);
      st_->units.fetch_add(1, std::memory_order_relaxed);
      st_->handler->on_request(raw->ex);
    }
    if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) return false;
    // A large connection window, so one stream's unread body does not stall the others.
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    if (!initial.empty() && !feed(initial.data(), initial.size())) return false;
    return true;
  }

  void start() {
    int one = 1;
    ::setsockopt(t_->native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    flush();
    read();
    arm_idle();
  }

  void post_stop_when_idle() override {
    core::post_io(t_->executor(), [self = shared_from_this()] { self->stop_when_idle(); });
  }
  void post_close() override {
    core::post_io(t_->executor(), [self = shared_from_this()] { self->close(); });
  }

 private:
  static H2Connection* me(void* p) { return static_cast<H2Connection*>(p); }

  static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto* self = me(ud);
    if (self->stopping_) {
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return 0;
    }
    auto st = std::make_unique<Stream>();
    st->id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(s, st->id, st.get());
    self->streams_[st->id] = std::move(st);
    return 0;
  }

  static int on_header(nghttp2_session* s, const nghttp2_frame* f, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    auto* self = me(ud);
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, f->hd.stream_id));
    if (!st || st->dispatched) return 0;  // trailers are not passed on
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > self->st_->opts.limits.max_header_bytes || st->headers.size() >= self->st_->opts.limits.max_headers)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    std::string_view n(reinterpret_cast<const char*>(name), namelen), v(reinterpret_cast<const char*>(value), valuelen);
    if (!n.empty() && n[0] == ':') {
      if (n == ":method") st->method.assign(v);
      else if (n == ":path") st->path.assign(v);
      else if (n == ":scheme") st->scheme.assign(v);
      else if (n == ":authority") st->authority.assign(v);
      return 0;
    }
    st->headers.emplace_back(std::string(n), std::string(v));
    return 0;
  }

  static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* f, void* ud) {
    auto* self = me(ud);
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, f->hd.stream_id));
    if (!st) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS && !st->dispatched) {
      st->end_stream = end;
      self->dispatch(*st);
    } else if (end && st->ex) {
      st->end_stream = true;
      st->ex->io_body_end();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t id, const uint8_t* data, size_t len, void* ud) {
    auto* self = me(ud);
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(s, id));
    if (!st || !st->ex) {
      nghttp2_session_consume(s, id, len);  // nobody will read it: give the window back now
      return 0;
    }
    st->body_bytes += len;
    if (st->body_bytes > self->st_->opts.limits.max_body) {
      st->ex->io_body_error("413 request body too large", 413);
      nghttp2_session_consume(s, id, len);
      st->consumed += len;
      nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      return 0;
    }
    st->ex->io_body_data(std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t, void* ud) {
    auto* self = me(ud);
    auto it = self->streams_.find(id);
    if (it == self->streams_.end()) return 0;
    // Body bytes the application never read still occupy the connection window: release them.
    if (it->second->body_bytes > it->second->consumed)
      nghttp2_session_consume_connection(self->session_, it->second->body_bytes - it->second->consumed);
    if (it->second->ex) {
      it->second->ex->io_closed();
      self->st_->in_flight.fetch_sub(1);
    }
    self->streams_.erase(it);
    return 0;
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                           nghttp2_data_source* src, void*) {
    auto* st = static_cast<Stream*>(src->ptr);
    std::size_t avail = st->out.size() - st->out_pos;
    std::size_t n = avail < len ? avail : len;
    if (n) {
      std::memcpy(buf, st->out.data() + st->out_pos, n);
      st->out_pos += n;
      if (st->out_pos == st->out.size()) {
        st->out.clear();
        st->out_pos = 0;
      }
      st->ex->io_written(n);
    }
    if (st->out.size() == st->out_pos && st->out_last) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    }
    if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }

  void attach(Stream& st) {
    std::weak_ptr<H2Connection> weak = shared_from_this();
    auto exec = t_->executor();
    std::int32_t id = st.id;
    st.ex->wake_io = [weak, exec, id] {
      core::post_batched(exec, [weak, id] {
        if (auto self = weak.lock()) self->on_stream_wake(id);
      });
    };
  }

  void dispatch(Stream& st) {
    st.dispatched = true;
    if (st.method.empty() || (st.path.empty() && st.method != "CONNECT")) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    auto ex = std::make_shared<Exchange>();
    // One storage string; views into it (it is not resized after).
    std::size_t total = st.method.size() + st.path.size() + st.authority.size();
    for (auto& [n, v] : st.headers) total += n.size() + v.size();
    ex->storage.reserve(total);
    auto put = [&](const std::string& s) {
      std::size_t at = ex->storage.size();
      ex->storage.append(s);
      return std::string_view(ex->storage.data() + at, s.size());
    };
    ex->method = put(st.method);
    ex->target = put(st.path);
    auto q = ex->target.find('?');
    ex->path = q == std::string_view::npos ? ex->target : ex->target.substr(0, q);
    ex->query = q == std::string_view::npos ? std::string_view() : ex->target.substr(q + 1);
    ex->host = put(st.authority);
    ex->headers.reserve(st.headers.size() + 1);
    bool has_host = false, has_length = false;
    std::uint64_t length = 0;
    for (auto& [n, v] : st.headers) {
      std::string_view name = put(n), value = put(v);
      if (n == "host") has_host = true;
      if (n == "content-length") {
        has_length = true;
        length = std::strtoull(v.c_str(), nullptr, 10);
      }
      ex->headers.push_back({name, value});
    }
    if (!has_host && !ex->host.empty()) ex->headers.insert(ex->headers.begin(), HeaderField{"host", ex->host});
    ex->version_minor = 1;
    ex->http2 = true;
    ex->keep_alive = true;
    ex->tls = t_->tls();
    ex->has_body = !st.end_stream;
    ex->chunked = !st.end_stream && !has_length;
    ex->content_length = has_length ? length : 0;
    fill_addresses(*ex);
    st.ex = ex;
    attach(st);
    if (st.end_stream) ex->io_body_end();
    st_->in_flight.fetch_add(1);
    st_->units.fetch_add(1, std::memory_order_relaxed);
    st_->handler->on_request(ex);
  }

  void fill_addresses(Exchange& ex) {
    if (!addresses_known_) {
      socket_addresses(t_->native_handle(), peer_addr_, peer_port_, local_addr_, local_port_);
      addresses_known_ = true;
    }
    ex.remote_addr = peer_addr_;
    ex.remote_port = peer_port_;
    ex.local_addr = local_addr_;
    ex.local_port = local_port_;
  }

  void on_stream_wake(std::int32_t id) {
    if (closed_) return;
    auto it = streams_.find(id);
    if (it == streams_.end() || !it->second->ex) return;
    Stream& st = *it->second;
    if (std::uint64_t read = st.ex->io_take_consumed()) {
      nghttp2_session_consume(session_, id, static_cast<size_t>(read));
      st.consumed += read;
    }
    std::vector<OutPiece> parts;
    bool last = false, aborted = false;
    st.ex->io_take_output(parts, last, aborted);
    if (aborted) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
      flush();
      return;
    }
    for (auto& p : parts) st.out += p.view();
    if (last) st.out_last = true;
    if (!st.head_submitted) {
      auto end = st.out.find("\r\n\r\n");
      if (end == std::string::npos) {
        flush();
        return;
      }
      int status = 0;
      std::vector<std::pair<std::string, std::string>> hdrs;
      if (!parse_head(std::string_view(st.out).substr(0, end + 2), status, hdrs)) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
        flush();
        return;
      }
      st.out.erase(0, end + 4);
      std::string status_text = std::to_string(status);
      std::vector<nghttp2_nv> nva;
      nva.reserve(hdrs.size() + 1);
      auto nv = [](const std::string& n, const std::string& v) {
        return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                          reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                          NGHTTP2_NV_FLAG_NONE};
      };
      static const std::string kStatus = ":status";
      nva.push_back(nv(kStatus, status_text));
      for (auto& [n, v] : hdrs) nva.push_back(nv(n, v));
      st.head_submitted = true;
      bool no_body = st.out_last && st.out.empty();
      if (no_body) {
        nghttp2_submit_response(session_, id, nva.data(), nva.size(), nullptr);
      } else {
        nghttp2_data_provider prd;
        prd.source.ptr = &st;
        prd.read_callback = read_body;
        nghttp2_submit_response(session_, id, nva.data(), nva.size(), &prd);
      }
    } else if (st.deferred) {
      st.deferred = false;
      nghttp2_session_resume_data(session_, id);
    }
    flush();
  }

  bool feed(const char* data, std::size_t n) {
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data), n);
    return rv >= 0;
  }

  void read() {
    if (reading_ || closed_) return;
    reading_ = true;
    rbuf_.resize(kReadSize);
    t_->read_some(rbuf_.data(), rbuf_.size(), [self = shared_from_this()](const error_code& ec, std::size_t n) {
      self->reading_ = false;
      if (self->closed_) return;
      if (ec || !self->feed(self->rbuf_.data(), n)) {
        self->close();
        return;
      }
      self->arm_idle();
      self->flush();
      self->read();
    });
  }

  /** Moves nghttp2's pending output to the socket (one write in flight, coalesced). */
  void flush() {
    if (writing_ || closed_) return;
    wbuf_.clear();
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close();
        return;
      }
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      if (wbuf_.size() > 256 * 1024) break;
    }
    if (wbuf_.empty()) {
      if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) close();
      else if (stopping_ && streams_.empty()) close();
      return;
    }
    writing_ = true;
    bufs_.assign(1, asio::const_buffer(wbuf_.data(), wbuf_.size()));
    t_->write(bufs_, [self = shared_from_this()](const error_code& ec, std::size_t) {
      self->writing_ = false;
      if (ec) {
        self->close();
        return;
      }
      self->flush();
    });
  }

  void arm_idle() {
    // HTTP/2 clients keep one connection for many requests: a longer idle period than HTTP/1.1's.
    timer_.expires_after(std::max<std::chrono::milliseconds>(st_->opts.keepalive_timeout, std::chrono::seconds(60)));
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed_) return;
      if (self->streams_.empty()) {
        nghttp2_submit_goaway(self->session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(self->session_),
                              NGHTTP2_NO_ERROR, nullptr, 0);
        self->stopping_ = true;
        self->flush();
      } else {
        self->arm_idle();
      }
    });
  }

  void stop_when_idle() {
    if (closed_ || stopping_) return;
    stopping_ = true;
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    flush();
  }

 public:
  void close() {
    if (closed_) return;
    auto self = shared_from_this();
    closed_ = true;
    timer_.cancel();
    t_->close();
    for (auto& [id, st] : streams_) {
      if (st->ex) {
        st->ex->io_closed();
        st_->in_flight.fetch_sub(1);
      }
    }
    streams_.clear();
    st_->connections.fetch_sub(1);
    std::lock_guard<std::mutex> lock(st_->m);
    st_->live.erase(self);
  }

 private:
  std::unique_ptr<Transport> t_;
  std::shared_ptr<Server::State> st_;
  asio::steady_timer timer_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::unique_ptr<Stream>> streams_;
  std::string rbuf_, wbuf_;
  std::vector<asio::const_buffer> bufs_;
  std::string peer_addr_, local_addr_;
  std::uint16_t peer_port_ = 0, local_port_ = 0;
  bool addresses_known_ = false;
  bool reading_ = false, writing_ = false, closed_ = false, stopping_ = false;
};

void start_h2(std::unique_ptr<Transport> t, std::shared_ptr<Server::State> st, std::string_view initial,
              H2Upgrade* upgrade) {
  auto conn = std::make_shared<H2Connection>(std::move(t), st);
  st->connections.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(st->m);
    st->live.insert(conn);
  }
  if (!conn->init(initial, upgrade)) {
    conn->close();
    return;
  }
  conn->start();
}

}  // namespace puff::http
