// numeric: binary (base-10000 digits) to canonical decimal text and back. The text side follows
// Postgres 15's numeric_out (get_str_from_var) and numeric_in (set_var_from_str) in
// src/backend/utils/adt/numeric.c.
#include <cstdint>
#include <string>

#include "pg/binary.hpp"
#include "pg/wire.hpp"

namespace puff::pg {

namespace {

constexpr std::uint16_t kPos = 0x0000;
constexpr std::uint16_t kNeg = 0x4000;
constexpr std::uint16_t kNaN = 0xC000;
constexpr std::uint16_t kPinf = 0xD000;
constexpr std::uint16_t kNinf = 0xF000;
constexpr std::uint16_t kDscaleMask = 0x3FFF;  // NUMERIC_DSCALE_MASK: also the largest dscale
constexpr std::int64_t kMaxWeight = 0x7FFF;  // NUMERIC_WEIGHT_MAX
constexpr int kBase = 10000;

// The 4 decimal digits of a base-10000 digit.
void put_group(unsigned g, char* p) noexcept {
  p[0] = static_cast<char>('0' + g / 1000);
  p[1] = static_cast<char>('0' + g / 100 % 10);
  p[2] = static_cast<char>('0' + g / 10 % 10);
  p[3] = static_cast<char>('0' + g % 10);
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

}  // namespace

Error decode_numeric(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() < 8) return Error::kLength;
  std::size_t ndigits = wire::load16(in.data());
  std::int64_t weight = static_cast<std::int16_t>(wire::load16(in.data() + 2));
  const std::uint16_t sign = wire::load16(in.data() + 4);
  const std::uint16_t dscale_raw = wire::load16(in.data() + 6);
  if (in.size() != 8 + 2 * ndigits) return Error::kLength;
  if ((dscale_raw & kDscaleMask) != dscale_raw) return Error::kValue;
  const char* digits = in.data() + 8;  // big-endian uint16 each
  for (std::size_t i = 0; i < ndigits; ++i)
    if (wire::load16(digits + 2 * i) >= kBase) return Error::kValue;
  switch (sign) {
    case kPos:
    case kNeg:
      break;
    case kNaN:
      out = "NaN";
      return Error::kNone;
    case kPinf:
      out = "Infinity";
      return Error::kNone;
    case kNinf:
      out = "-Infinity";
      return Error::kNone;
    default:
      return Error::kValue;
  }
  // Leading zero digits (Postgres strips them on receive) only shift the weight.
  while (ndigits > 0 && wire::load16(digits) == 0) {
    digits += 2;
    --ndigits;
    --weight;
  }
  if (ndigits == 0) weight = 0;  // zero
  auto digit = [&](std::int64_t d) -> unsigned {  // digit d has weight (weight - d)
    return d >= 0 && static_cast<std::size_t>(d) < ndigits ? wire::load16(digits + 2 * d) : 0u;
  };
  const std::int64_t dscale = dscale_raw;
  const std::int64_t int_groups = weight >= 0 ? weight + 1 : 0;
  out.resize(1 + (int_groups > 0 ? int_groups * 4 : 1) + (dscale > 0 ? 1 + dscale + 3 : 0));
  char* const begin = out.data();
  char* p = begin + 1;  // begin[0]: room for '-'
  bool nonzero = false;
  if (weight < 0) {
    *p++ = '0';
  } else {
    for (std::int64_t d = 0; d <= weight; ++d) {
      const unsigned g = digit(d);
      nonzero |= g != 0;
      put_group(g, p);
      if (d == 0) {  // no leading zeros in the first group, but at least one digit
        int skip = g >= 1000 ? 0 : g >= 100 ? 1 : g >= 10 ? 2 : 3;
        for (int k = 0; k < 4 - skip; ++k) p[k] = p[k + skip];
        p += 4 - skip;
      } else {
        p += 4;
      }
    }
  }
  if (dscale > 0) {
    *p++ = '.';
    char* const frac = p;
    for (std::int64_t d = weight + 1, i = 0; i < dscale; ++d, i += 4) {
      const unsigned g = digit(d);
      put_group(g, p);
      p += 4;
    }
    p = frac + dscale;  // digits past dscale are cut off (trunc_var)
    for (const char* q = frac; q < p; ++q) nonzero |= *q != '0';
  }
  const bool negative = sign == kNeg && nonzero;
  if (negative) begin[0] = '-';
  const std::size_t from = negative ? 0 : 1;
  out.resize(static_cast<std::size_t>(p - begin));
  out.erase(0, from);
  return Error::kNone;
}

Error encode_numeric(std::string_view text, std::string& out) {
  std::uint16_t special = 0;
  {
    std::string_view t = text;
    std::string_view signless = t;
    char sign_char = 0;
    if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
      sign_char = t[0];
      signless = t.substr(1);
    }
    if (iequals(signless, "nan") || iequals(signless, "snan")) special = kNaN;
    else if (iequals(signless, "infinity") || iequals(signless, "inf")) special = sign_char == '-' ? kNinf : kPinf;
  }
  if (special != 0) {
    wire::put16(0, out);
    wire::put16(0, out);
    wire::put16(special, out);
    wire::put16(0, out);
    return Error::kNone;
  }

  // [+-] digits [. digits] [e [+-] digits], at least one mantissa digit.
  std::size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  const std::size_t mant_begin = i;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++int_digits;
  std::size_t point = std::string_view::npos;
  if (i < text.size() && text[i] == '.') {
    point = i++;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return Error::kSyntax;
  std::int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) exp_negative = text[i++] == '-';
    const std::size_t exp_begin = i;
    bool huge = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (exponent > 1'000'000'000) huge = true;  // keep reading: the syntax must still be checked
      else exponent = exponent * 10 + (text[i] - '0');
      ++i;
    }
    if (i == exp_begin) return Error::kSyntax;
    if (i != text.size()) return Error::kSyntax;
    if (huge) return Error::kRange;  // Postgres: "value overflows numeric format" (even for 0)
    if (exp_negative) exponent = -exponent;
  }
  if (i != text.size()) return Error::kSyntax;

  // The mantissa's decimal digits, k = 0 .. n-1, skipping the point.
  const std::size_t n = int_digits + frac_digits;
  auto dec = [&](std::size_t k) -> int {
    std::size_t at = mant_begin + k;
    if (point != std::string_view::npos && at >= point) ++at;
    return text[at] - '0';
  };
  std::int64_t dscale = static_cast<std::int64_t>(frac_digits) - exponent;
  if (dscale < 0) dscale = 0;
  if (dscale > kDscaleMask) return Error::kRange;
  std::size_t first = 0;
  while (first < n && dec(first) == 0) ++first;
  if (first == n) {  // zero (of any scale): no digits, positive
    wire::put16(0, out);
    wire::put16(0, out);
    wire::put16(kPos, out);
    wire::put16(static_cast<std::uint16_t>(dscale), out);
    return Error::kNone;
  }
  std::size_t last = n - 1;  // last non-zero digit: trailing zeros are implied by dscale
  while (dec(last) == 0) --last;
  // Decimal weight of the first significant digit (10^dweight), then base-10000 weight.
  const std::int64_t dweight = static_cast<std::int64_t>(int_digits) - 1 - static_cast<std::int64_t>(first) + exponent;
  const std::int64_t weight = dweight >= 0 ? (dweight + 4) / 4 - 1 : -((-dweight - 1) / 4 + 1);
  if (weight > kMaxWeight) return Error::kRange;
  // Zero-fill the first group so that group boundaries fall on multiples of 10^4.
  const std::int64_t offset = (weight + 1) * 4 - (dweight + 1);
  const std::size_t sig = last - first + 1;
  const std::size_t ngroups = (static_cast<std::size_t>(offset) + sig + 3) / 4;
  wire::put16(static_cast<std::uint16_t>(ngroups), out);
  wire::put16(static_cast<std::uint16_t>(static_cast<std::int16_t>(weight)), out);
  wire::put16(negative ? kNeg : kPos, out);
  wire::put16(static_cast<std::uint16_t>(dscale), out);
  std::size_t pos = 0;  // position in the zero-filled digit stream
  std::size_t k = first;
  for (std::size_t g = 0; g < ngroups; ++g) {
    unsigned v = 0;
    for (int j = 0; j < 4; ++j, ++pos) {
      int dgt = 0;
      if (pos >= static_cast<std::size_t>(offset) && k <= last) dgt = dec(k++);
      v = v * 10 + static_cast<unsigned>(dgt);
    }
    wire::put16(static_cast<std::uint16_t>(v), out);
  }
  return Error::kNone;
}

}  // namespace puff::pg
