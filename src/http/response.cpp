#include "http/response.hpp"

#include <cstdio>
#include <ctime>

#include <zlib.h>

#include "http/exchange.hpp"
#include "http/http1_parser.hpp"

namespace puff::http {

namespace {

bool valid_text(std::string_view s, bool name) {
  if (name && s.empty()) return false;
  for (unsigned char c : s) {
    if (c == '\r' || c == '\n' || c == 0) return false;
    if (name && (c <= ' ' || c == ':' || c >= 127)) return false;
  }
  return true;
}

bool contains_token_close(std::string_view v) {
  std::size_t i = 0;
  while (i < v.size()) {
    std::size_t j = v.find(',', i);
    if (j == std::string_view::npos) j = v.size();
    std::string_view t = v.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (iequals(t, "close")) return true;
    i = j + 1;
  }
  return false;
}

}  // namespace

ResponseWriter::ResponseWriter(const Exchange& ex)
    : version_minor_(ex.version_minor),
      h2_(ex.http2),
      extra_(ex.extra_response_headers),
      keep_alive_(ex.keep_alive),
      head_request_(ex.method == "HEAD"),
      gzip_min_(ex.gzip_min_size) {}

struct ResponseWriter::Gzip {
  z_stream z{};
};

void ResponseWriter::GzipDeleter::operator()(Gzip* g) const {
  deflateEnd(&g->z);
  delete g;
}

bool compressible_content_type(std::string_view ct) {
  auto semi = ct.find(';');
  std::string_view t = ct.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  if (t.size() >= 5 && iequals(t.substr(0, 5), "text/")) return true;
  static constexpr std::string_view kTypes[] = {
      "application/json", "application/javascript", "application/xml", "application/xhtml+xml",
      "application/rss+xml", "application/atom+xml", "application/ld+json", "application/manifest+json",
      "application/graphql-response+json", "image/svg+xml", "application/wasm"};
  for (auto k : kTypes)
    if (iequals(t, k)) return true;
  return t.size() > 5 && iequals(t.substr(t.size() - 5), "+json");
}

std::string_view ResponseWriter::set_status(int code, std::string_view reason) {
  if (code < 100 || code > 999) return "status code must be between 100 and 999";
  if (!valid_text(reason, false)) return "control character in the reason phrase";
  status_ = code;
  status_line_ = std::to_string(code);
  status_line_.push_back(' ');
  status_line_.append(reason.empty() ? reason_phrase(code) : reason);
  return {};
}

std::string_view ResponseWriter::set_status_line(std::string_view s) {
  if (s.size() < 3 || !(s[0] >= '1' && s[0] <= '9') || !(s[1] >= '0' && s[1] <= '9') || !(s[2] >= '0' && s[2] <= '9') ||
      (s.size() > 3 && s[3] != ' '))
    return "malformed status (want e.g. '200 OK')";
  int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  return set_status(code, s.size() > 4 ? s.substr(4) : std::string_view());
}

void ResponseWriter::clear_headers() {
  headers_.clear();
  etag_.clear();
  has_length_ = close_ = has_date_ = has_encoding_ = compressible_type_ = false;
  length_ = 0;
}

std::string_view ResponseWriter::add_header(std::string_view name, std::string_view value) {
  if (!valid_text(name, true)) return "invalid header name";
  if (!valid_text(value, false)) return "invalid header value (control character)";
  if (iequals(name, "content-length")) {
    if (value.empty() || value.size() > 19) return "invalid Content-Length";
    std::uint64_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9') return "invalid Content-Length";
      n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (has_length_ && n != length_) return "conflicting Content-Length headers";
    has_length_ = true;
    length_ = n;
    return {};  // head() writes it (once)
  } else if (iequals(name, "connection")) {
    if (contains_token_close(value)) close_ = true;
    return {};
  } else if (iequals(name, "transfer-encoding") || iequals(name, "keep-alive") || iequals(name, "upgrade")) {
    return {};
  } else if (iequals(name, "date")) {
    has_date_ = true;
  } else if (iequals(name, "content-encoding")) {
    has_encoding_ = true;
  } else if (iequals(name, "content-type")) {
    compressible_type_ = compressible_content_type(value);
  } else if (iequals(name, "etag")) {
    // Kept aside: a gzipped body is not byte-identical, so head() weakens a strong ETag then.
    etag_.assign(value);
    return {};
  }
  headers_.append(name).append(": ").append(value).append("\r\n");
  return {};
}

std::string ResponseWriter::head(long long body_size) {
  std::string h;
  h.reserve(96 + headers_.size());
  h.append(version_minor_ == 0 ? "HTTP/1.0 " : "HTTP/1.1 ");
  h.append(status_line_);
  h.append("\r\n");
  h.append(headers_);
  h.append(extra_);
  if (!has_date_) h.append(date_header_line());
  bool body_forbidden = status_ < 200 || status_ == 204 || status_ == 304;
  std::uint64_t known = has_length_ ? length_ : body_size >= 0 ? static_cast<std::uint64_t>(body_size) : UINT64_MAX;
  if (gzip_min_ && !body_forbidden && !head_request_ && status_ >= 200 && status_ < 300 && status_ != 206 &&
      !has_encoding_ && compressible_type_ && known >= gzip_min_) {
    gz_.reset(new Gzip());
    if (deflateInit2(&gz_->z, 5, Z_DEFLATED, 31 /* gzip wrapper */, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      gz_.reset();
    } else {
      h.append("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
      if (!etag_.empty() && etag_.rfind("W/", 0) != 0) etag_ = "W/" + etag_;
      has_length_ = false;  // the compressed length is not known up front
      body_size = -1;
    }
  }
  if (has_length_ && !body_forbidden) {
    h.append("Content-Length: ").append(std::to_string(length_)).append("\r\n");
  } else if (!body_forbidden) {
    if (body_size >= 0) {
      has_length_ = true;
      length_ = static_cast<std::uint64_t>(body_size);
      h.append("Content-Length: ").append(std::to_string(body_size)).append("\r\n");
    } else if (h2_) {
      // HTTP/2 frames the body itself (DATA frames, END_STREAM).
    } else if (version_minor_ >= 1 && !head_request_) {
      chunked_ = true;
      h.append("Transfer-Encoding: chunked\r\n");
    } else if (!head_request_) {
      close_ = true;  // HTTP/1.0: the body ends when the connection does
    }
  }
  if (!etag_.empty()) h.append("ETag: ").append(etag_).append("\r\n");
  if (h2_) {
    // No connection-specific headers in HTTP/2 (RFC 9113 §8.2.2).
  } else if (!keep_alive()) {
    h.append("Connection: close\r\n");
  } else if (version_minor_ == 0) {
    h.append("Connection: keep-alive\r\n");
  }
  h.append("\r\n");
  head_sent_ = true;
  no_body_ = head_request_ || body_forbidden;
  return h;
}

void ResponseWriter::frame(std::string& out, const char* data, std::size_t n) {
  if (no_body_ || n == 0) return;
  if (gz_) {
    // Each application chunk is flushed (Z_SYNC_FLUSH) so streamed responses keep flowing.
    std::string packed;
    z_stream& z = gz_->z;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    z.avail_in = static_cast<uInt>(n);
    unsigned char buf[16384];
    do {
      z.next_out = buf;
      z.avail_out = sizeof buf;
      deflate(&z, Z_SYNC_FLUSH);
      packed.append(reinterpret_cast<char*>(buf), sizeof buf - z.avail_out);
    } while (z.avail_out == 0);
    frame_raw(out, packed.data(), packed.size());
    return;
  }
  frame_raw(out, data, n);
}

void ResponseWriter::frame_raw(std::string& out, const char* data, std::size_t n) {
  if (n == 0) return;
  if (has_length_) {
    std::uint64_t room = length_ > sent_ ? length_ - sent_ : 0;
    if (n > room) {
      n = static_cast<std::size_t>(room);  // never more than announced
      close_ = true;
    }
    out.append(data, n);
    sent_ += n;
    return;
  }
  if (chunked_) {
    char size[24];
    int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
    out.append(size, static_cast<std::size_t>(len));
    out.append(data, n);
    out.append("\r\n");
    sent_ += n;
    return;
  }
  out.append(data, n);
  sent_ += n;
}

std::size_t ResponseWriter::frame_around(std::string& before, std::string& after, std::size_t n) {
  if (no_body_ || n == 0) return 0;
  if (has_length_) {
    std::uint64_t room = length_ > sent_ ? length_ - sent_ : 0;
    if (n > room) {
      n = static_cast<std::size_t>(room);
      close_ = true;
    }
  } else if (chunked_) {
    char size[24];
    int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
    before.append(size, static_cast<std::size_t>(len));
    after.append("\r\n");
  }
  sent_ += n;
  return n;
}

std::string ResponseWriter::finish() {
  if (no_body_) return {};
  std::string tail;
  if (gz_) {
    z_stream& z = gz_->z;
    z.next_in = nullptr;
    z.avail_in = 0;
    unsigned char buf[256];
    std::string packed;
    int rc;
    do {
      z.next_out = buf;
      z.avail_out = sizeof buf;
      rc = deflate(&z, Z_FINISH);
      packed.append(reinterpret_cast<char*>(buf), sizeof buf - z.avail_out);
    } while (rc == Z_OK);
    gz_.reset();
    frame_raw(tail, packed.data(), packed.size());
  }
  if (chunked_) return tail + "0\r\n\r\n";
  if (!tail.empty()) return tail;
  if (has_length_ && sent_ < length_) close_ = true;  // short body: the client must see the close
  return {};
}

std::string simple_response(const Exchange& ex, int status, std::string_view body) {
  ResponseWriter w(ex.version_minor, false, ex.method == "HEAD");
  w.extra_ = ex.extra_response_headers;
  w.h2_ = ex.http2;
  w.set_status(status);
  if (!body.empty()) w.add_header("Content-Type", "text/plain; charset=utf-8");
  std::string out = w.head(static_cast<long long>(body.size()));
  w.frame(out, body.data(), body.size());
  out += w.finish();
  return out;
}

std::string_view date_header_line() {
  thread_local char buf[64];
  thread_local std::time_t last = 0;
  thread_local std::size_t len = 0;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm tm{};
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  }
  return {buf, len};
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

}  // namespace puff::http
