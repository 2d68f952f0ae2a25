// An HTTP/1.x response head and its body framing, for any application interface (WSGI, ASGI,
// native routes). Pure: no I/O, no Python; one object per response, one thread at a time.
//
// Framing rules: the application's Content-Length is used (never more bytes are sent than it
// announced; a short body closes the connection); else a body known in full gets a
// Content-Length; else HTTP/1.1 uses chunked and HTTP/1.0 ends the body by closing.
// Hop-by-hop headers from the application (Connection, Keep-Alive, Transfer-Encoding, Upgrade)
// are dropped; `Connection: close` is honoured. 1xx/204/304 and HEAD responses carry no body.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace puff::http {

class Exchange;

class ResponseWriter {
  friend std::string simple_response(const Exchange& ex, int status, std::string_view body);

 public:
  ResponseWriter(int version_minor, bool keep_alive, bool head_request)
      : version_minor_(version_minor), keep_alive_(keep_alive), head_request_(head_request) {}
  /** For the response to `ex` (its version, keep-alive, method and extra headers). */
  explicit ResponseWriter(const Exchange& ex);

  /** Sets the status from a code and an optional reason ("" = the standard phrase).
   *  Returns an error text, or "" when valid. */
  std::string_view set_status(int code, std::string_view reason = {});
  /** Parses a WSGI status line ("200 OK"). Returns an error text, or "". */
  std::string_view set_status_line(std::string_view line);
  /** Forgets the headers (start_response with exc_info replaces them). */
  void clear_headers();
  /** Adds one application header. Returns an error text, or "". */
  std::string_view add_header(std::string_view name, std::string_view value);

  /** Serializes the head. `body_size` is the whole body when known, else -1. */
  std::string head(long long body_size);
  /** Appends `n` body bytes to `out`, framed (and clamped to a declared Content-Length). */
  void frame(std::string& out, const char* data, std::size_t n);
  /** frame() for `n` body bytes the caller queues itself, uncopied: appends the framing that
   *  goes before them to `before` and after them to `after`, and returns how many of the `n` to
   *  send (fewer past an announced length, 0 for a bodiless response). Not when compressing(). */
  std::size_t frame_around(std::string& before, std::string& after, std::size_t n);
  /** What ends the body (the last chunk for chunked framing), to append after the last frame(). */
  std::string finish();

  bool head_sent() const { return head_sent_; }
  /** The body is being gzip-compressed (decided by head()). */
  bool compressing() const { return gz_ != nullptr; }
  int status() const { return status_; }
  /** After head()/finish(): whether the connection may carry another request. */
  bool keep_alive() const { return keep_alive_ && !close_; }

 private:
  int version_minor_;
  bool h2_ = false;
  std::string extra_;
  bool keep_alive_;
  bool head_request_;
  int status_ = 0;
  std::string status_line_;
  std::string headers_;
  bool has_length_ = false;
  std::uint64_t length_ = 0;
  std::uint64_t sent_ = 0;
  bool chunked_ = false;
  bool close_ = false;
  bool no_body_ = false;
  bool has_date_ = false;
  bool head_sent_ = false;
  // gzip (Exchange::gzip_min_size)
  std::size_t gzip_min_ = 0;
  std::string etag_;
  bool has_encoding_ = false;
  bool compressible_type_ = false;
  struct Gzip;
  struct GzipDeleter {
    void operator()(Gzip* g) const;
  };
  std::unique_ptr<Gzip, GzipDeleter> gz_;
  void frame_raw(std::string& out, const char* data, std::size_t n);
};

/** A whole plain-text response (head and body) to `ex` from the server itself: errors,
 *  refusals. Carries the exchange's extra headers (CORS) and closes the connection (HTTP/1.x). */
std::string simple_response(const Exchange& ex, int status, std::string_view body);

/** Content types worth compressing (text, JSON, JavaScript, XML, SVG, ...). */
bool compressible_content_type(std::string_view content_type);

/** The reason phrase for a status code ("OK", "Not Found", ...; "" if unknown). */
std::string_view reason_phrase(int status);

/** "Date: <IMF-fixdate>\r\n" for now, cached per second per thread. Any thread. */
std::string_view date_header_line();

}  // namespace puff::http
