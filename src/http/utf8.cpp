#include "http/utf8.hpp"

#include <cstring>

namespace puff::http {

bool Utf8Validator::feed(std::string_view bytes) noexcept {
  if (failed_) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const std::size_t n = bytes.size();
  std::size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      // ASCII runs, eight bytes at a time.
      while (i + 8 <= n) {
        std::uint64_t w;
        std::memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == n) break;
      unsigned char c = p[i++];
      if (c < 0x80) continue;
      // The first continuation byte's range rules out overlongs (E0, F0), surrogates (ED) and
      // code points above U+10FFFF (F4); C0, C1 and F5..FF never start a sequence.
      if (c < 0xC2) {
        failed_ = true;
      } else if (c < 0xE0) {
        need_ = 1;
      } else if (c < 0xF0) {
        need_ = 2;
        lo_ = c == 0xE0 ? 0xA0 : 0x80;
        hi_ = c == 0xED ? 0x9F : 0xBF;
      } else if (c < 0xF5) {
        need_ = 3;
        lo_ = c == 0xF0 ? 0x90 : 0x80;
        hi_ = c == 0xF4 ? 0x8F : 0xBF;
      } else {
        failed_ = true;
      }
      if (failed_) return false;
    } else {
      unsigned char c = p[i++];
      if (c < lo_ || c > hi_) return failed_ = true, false;
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

bool valid_utf8(std::string_view bytes) noexcept {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

}  // namespace puff::http
