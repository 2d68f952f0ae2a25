// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), whole or
// streamed across any split of the bytes (WebSocket text fragments). Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace puff::http {

/** Streaming validator; holds at most one partial code point's worth of state. */
class Utf8Validator {
 public:
  /** Validates the next bytes. False once anything invalid was seen (and from then on). A code
   *  point may be split across calls. */
  bool feed(std::string_view bytes) noexcept;
  /** Everything fed so far is valid and ends on a code point boundary. */
  bool complete() const noexcept { return need_ == 0 && !failed_; }
  bool failed() const noexcept { return failed_; }
  void reset() noexcept { *this = Utf8Validator(); }

 private:
  std::uint8_t need_ = 0;  // continuation bytes still expected
  std::uint8_t lo_ = 0x80, hi_ = 0xBF;  // range of the next continuation byte
  bool failed_ = false;
};

/** The whole of `bytes` is valid UTF-8. */
bool valid_utf8(std::string_view bytes) noexcept;

}  // namespace puff::http
