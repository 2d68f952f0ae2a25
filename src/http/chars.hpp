// Character classes of RFC 9110/9112/3986, one 256-entry table. Internal to src/http/.
#pragma once

#include <array>
#include <cstdint>

namespace puff::http {

namespace chars_detail {

enum : std::uint8_t {
  kTchar = 1,      // token: ALPHA DIGIT and !#$%&'*+-.^_`|~
  kTarget = 2,     // request-target: VCHAR and obs-text (no CTL, no SP)
  kField = 4,      // field-value: VCHAR, SP, HTAB, obs-text
  kRegName = 8,    // reg-name: unreserved, sub-delims but ',', '%'
  kIpLiteral = 16, // inside [...]: hex, ':', '.', and IPvFuture's unreserved / sub-delims
  kHex = 32,
};

constexpr std::array<std::uint8_t, 256> make_table() {
  std::array<std::uint8_t, 256> t{};
  auto add = [&t](const char* set, std::uint8_t bit) {
    for (const char* c = set; *c; ++c) t[static_cast<unsigned char>(*c)] |= bit;
  };
  for (int c = 0; c < 256; ++c) {
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'), digit = c >= '0' && c <= '9';
    if (alpha || digit) t[c] |= kTchar | kRegName | kIpLiteral;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) t[c] |= kHex;
    if ((c > 0x20 && c < 0x7f) || c >= 0x80) t[c] |= kTarget | kField;
  }
  t[' '] |= kField;
  t['\t'] |= kField;
  add("!#$%&'*+-.^_`|~", kTchar);
  add("-._~!$&'()*+;=%", kRegName);  // no ',': "Host: a,b" is what a proxy makes of two Host fields
  add("-._~!$&'()*+,;=:", kIpLiteral);
  return t;
}

inline constexpr std::array<std::uint8_t, 256> kTable = make_table();

inline bool has(char c, std::uint8_t bit) { return (kTable[static_cast<unsigned char>(c)] & bit) != 0; }

}  // namespace chars_detail

inline bool is_tchar(char c) { return chars_detail::has(c, chars_detail::kTchar); }
inline bool is_target_char(char c) { return chars_detail::has(c, chars_detail::kTarget); }
inline bool is_field_char(char c) { return chars_detail::has(c, chars_detail::kField); }
inline bool is_reg_name_char(char c) { return chars_detail::has(c, chars_detail::kRegName); }
inline bool is_ip_literal_char(char c) { return chars_detail::has(c, chars_detail::kIpLiteral); }
inline bool is_hex(char c) { return chars_detail::has(c, chars_detail::kHex); }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline char to_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

}  // namespace puff::http
