// The chunked transfer coding of a request body (RFC 9112 §7.1), decoded incrementally: feed any
// split of the bytes that follow the head; data comes out as views into the bytes fed. No I/O and
// no buffering: the decoder keeps a few counters, never bytes.
// Grammar and decisions (extensions and trailers are validated, bounded and dropped):
// docs/http-parsing.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "http/limits.hpp"

namespace puff::http {

/** One body's decoder. Owned by one connection, used on one thread at a time. */
class ChunkedDecoder {
 public:
  /** Uses limits.max_body, max_chunk_ext and max_trailer_bytes (copied). */
  explicit ChunkedDecoder(const Limits& limits = {});

  /** Decodes `in`, the next bytes of the body. Appends the chunk data found to `out` as views into
   *  `in` (no copy; `out` is not cleared) and sets `consumed`:
   *  - Incomplete: the body goes on; every byte was consumed (consumed == in.size()).
   *  - Complete: the body ended (last chunk, trailers, final CRLF); consumed = the bytes up to and
   *    including that CRLF. What follows (a pipelined request) is left for the caller.
   *  - Error: `err` is set (400, 413 or 431); consumed is where decoding stopped.
   *  After Complete or Error, further calls return the same status, consume nothing and add no data. */
  Status decode(std::string_view in, std::size_t& consumed, std::vector<std::string_view>& out, Error& err);

  /** Ready for a new body, same limits. */
  void reset() noexcept;

  /** Decoded data bytes so far. */
  std::uint64_t body_size() const noexcept { return body_size_; }
  /** The final CRLF has been seen. */
  bool done() const noexcept { return state_ == State::Done; }

 private:
  enum class State : std::uint8_t {
    Size,          // hex digits of chunk-size
    Ext,           // after the size: BWS ";" chunk-ext, up to CR
    SizeLf,        // CR seen at the end of the size line
    Data,          // chunk_left_ bytes of data
    DataCr,        // CRLF after chunk data
    DataLf,
    TrailerStart,  // start of a trailer field line, or the final CRLF
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,  // the final CR seen
    Done,
    Failed,
  };

  Status fail(const Error& e, std::size_t at, std::size_t& consumed, Error& err) noexcept;

  std::uint64_t max_body_;
  std::size_t max_ext_, max_trailer_;
  State state_ = State::Size;
  std::uint64_t chunk_left_ = 0;  // Size: value so far; Data: bytes still to come
  std::uint64_t body_size_ = 0;
  std::uint64_t ext_total_ = 0;  // extension bytes over the whole body
  std::size_t digits_ = 0;
  std::size_t ext_len_ = 0;  // extension bytes on this size line
  bool ext_semicolon_ = false;
  std::size_t trailer_bytes_ = 0;
  Error error_;
};

}  // namespace puff::http
