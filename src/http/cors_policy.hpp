// CORS decisions (the Fetch standard's CORS protocol, server side): which origins, methods and
// headers are allowed, and the response header lines for preflight and actual requests. Pure: no
// I/O, no Asio, no Python; immutable after construction, so any thread may share one. The handler
// that applies it is http/cors.hpp; the meaning of every option is in docs/static-and-cors.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace puff::http {

/** "*" (any) or a list of values. */
struct CorsList {
  bool any = false;
  std::vector<std::string> items;
};

/** Puff.toml's [cors] table (upstream's keys, plus expose_headers). Unset fields take the base's value. */
struct CorsOptions {
  enum class Base { Default, Permissive, VeryPermissive };
  Base base = Base::Default;
  std::optional<std::uint64_t> max_age_secs;
  std::optional<bool> allow_credentials;
  std::optional<CorsList> allowed_origins;  // "scheme://host[:port]", no trailing '/'
  std::optional<CorsList> allowed_headers;  // header names (case-insensitive)
  std::optional<CorsList> allowed_methods;  // method tokens (case-sensitive)
  std::optional<CorsList> expose_headers;   // response header names scripts may read
};

class CorsPolicy {
 public:
  /** Resolves the options against their base:
   *   Default:        no origin, method or header allowed; no credentials.
   *   Permissive:     any origin ("*"), any method, any header, every response header exposed;
   *                   no credentials (tower-http's CorsLayer::permissive).
   *   VeryPermissive: any origin, mirrored; any method and header, mirrored; credentials
   *                   (tower-http's CorsLayer::very_permissive). */
  explicit CorsPolicy(const CorsOptions& o);

  /** Whether a request from `origin` may read responses. With credentials, "*" means "mirror
   *  the origin", except "null" (an opaque origin: sandboxed frames, file: pages), which is
   *  never mirrored. */
  bool origin_allowed(std::string_view origin) const;

  /** The header lines ("Name: value\r\n") for the response to a request that is not a preflight;
   *  `origin` is its Origin field, if any. Empty when nothing is to be added. */
  std::string actual_headers(std::optional<std::string_view> origin) const;

  struct Preflight {
    int status = 204;        // 204 allowed, 403 refused
    std::string headers;     // header lines for the answer
    std::string reason;      // why it was refused (the 403's body)
  };
  /** Answers a preflight: OPTIONS with Origin and Access-Control-Request-Method.
   *  `request_headers` is Access-Control-Request-Headers ("" if absent). Refused (403, no CORS
   *  headers) when the origin, the method or one of the headers is not allowed, by the same
   *  rules the browser applies afterwards (safelisted methods GET, HEAD, POST always pass). */
  Preflight preflight(std::string_view origin, std::string_view method, std::string_view request_headers) const;

  bool allow_credentials() const { return credentials_; }

 private:
  bool method_allowed(std::string_view m) const;
  bool header_allowed(std::string_view h) const;
  void append_origin(std::string& out, std::string_view origin) const;

  CorsList origins_, methods_, headers_, expose_;
  bool credentials_ = false;
  std::optional<std::uint64_t> max_age_;
  bool vary_origin_ = false;  // the Access-Control-Allow-Origin value depends on Origin
};

/** Checks a configured origin: "http(s)://host[:port]", no path. A trailing '/' is removed first
 *  (upstream does the same). Returns the origin, or nullopt when it is not one. */
std::optional<std::string> normalize_cors_origin(std::string_view origin);

}  // namespace puff::http
