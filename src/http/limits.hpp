// What the HTTP/1 parsers share: the bounds a client may not cross, and how a parse ends.
// Pure data; any thread. Grammar and decisions: docs/http-parsing.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace puff::http {

/** Bounds on what one client request may send. One set per listener, read-only while serving. */
struct Limits {
  /** Request-line bytes, CRLF not counted. Over it: 414. */
  std::size_t max_request_line = 8 * 1024;
  /** The whole head: leading empty lines, request line, field lines and the final CRLFCRLF. Over it: 431. */
  std::size_t max_header_bytes = 64 * 1024;
  /** Field lines in the head. Over it: 431. */
  std::size_t max_headers = 100;
  /** Content-Length, or the decoded size of a chunked body. Over it: 413. */
  std::uint64_t max_body = 10 * 1024 * 1024;
  /** Chunk-extension bytes on one chunk-size line (and, over a whole body, no more than this
   *  plus the data received so far). Over it: 400. */
  std::size_t max_chunk_ext = 1024;
  /** The trailer section of a chunked body, final CRLF included. Over it: 431. */
  std::size_t max_trailer_bytes = 16 * 1024;
};

/** Complete: a whole unit was parsed. Incomplete: every byte so far is valid, send more.
 *  Error: stop; answer with the Error and close the connection. */
enum class Status { Complete, Incomplete, Error };

/** Why a request was refused: the status to answer with and a static, lowercase reason. */
struct Error {
  int http_status = 0;
  std::string_view reason;
};

}  // namespace puff::http
