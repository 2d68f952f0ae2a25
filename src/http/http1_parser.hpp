// HTTP/1.x request heads (RFC 9112): a pure function over bytes. No I/O, no state between calls,
// no allocation once the header vector has grown; every view points into the caller's buffer.
// Accepted grammar and every deliberate decision: docs/http-parsing.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/limits.hpp"

namespace puff::http {

/** One field line. `value` has its leading and trailing OWS removed. */
struct Header {
  std::string_view name, value;
};

/** Which of RFC 9112 §3.2's four forms the request-target had. */
enum class TargetForm : std::uint8_t { Origin, Absolute, Authority, Asterisk };

struct RequestHead {
  std::string_view method;  // a token, case-sensitive ("GET")
  std::string_view target;  // the request-target as sent
  std::string_view path;    // origin-form: up to '?'; absolute-form: the path after the authority
                            // (empty for "http://h"); asterisk-form: "*"; authority-form: empty
  std::string_view query;   // after the first '?', without it; raw (not percent-decoded)
  TargetForm target_form = TargetForm::Origin;
  std::string_view authority;  // absolute-form and authority-form: "host[:port]" from the target
  int version_minor = 1;       // HTTP/1.0 -> 0, HTTP/1.1 -> 1
  std::vector<Header> headers;  // in order, duplicates kept; cleared (capacity kept) by each parse
  std::size_t head_size = 0;    // bytes consumed, leading empty lines and the final CRLFCRLF included

  // Derived and validated.
  bool keep_alive = false;  // 1.1: unless "Connection: close"; 1.0: only with "Connection: keep-alive"
  bool chunked = false;     // Transfer-Encoding: chunked (the only coding accepted)
  bool has_content_length = false;
  std::uint64_t content_length = 0;  // 0 unless has_content_length
  bool expect_continue = false;      // HTTP/1.1 with "Expect: 100-continue"
  bool upgrade = false;              // HTTP/1.1 with "Connection: upgrade" and a non-empty Upgrade field
  std::string_view upgrade_token;    // the Upgrade field's value ("websocket"), when upgrade
  std::string_view host;  // the Host field's value; absolute-form: the target's authority (RFC 9112 §3.2.2)

  /** The first field named `name` (ASCII case-insensitive), or nullptr. */
  const Header* find(std::string_view name) const noexcept;
  /** A body follows the head (chunked, or a non-zero Content-Length). */
  bool has_body() const noexcept { return chunked || content_length > 0; }
};

/** Parses the request head at the start of `buf`. Any thread; never blocks.
 *  Complete: `out` is filled, the body (if any) and pipelined requests start at buf[out.head_size].
 *  Incomplete: no CRLFCRLF yet and nothing invalid so far; call again with more bytes (from the same
 *  start). Error: `err` says what to answer; close the connection after it. Limits are enforced on the
 *  bytes received so far, so an endless head fails as soon as it passes a limit.
 *  On Incomplete and Error the other fields of `out` are unspecified. */
Status parse_request_head(std::string_view buf, const Limits& limits, RequestHead& out, Error& err);

/** ASCII case-insensitive equality (header names, tokens). */
bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace puff::http
