// Test helpers: Postgres's *text* output (DateStyle ISO, IntervalStyle postgres, TimeZone UTC,
// bytea_output hex, extra_float_digits 1) of values decoded by src/pg/binary.hpp. The differential
// test compares these strings with what the server prints for the same value; the unit tests use
// them to state expected values readably. Test-only: the bridge builds Python objects instead.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "pg/binary.hpp"

namespace puff::pg::text {

inline std::string pad(std::int64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*lld", width, static_cast<long long>(v));
  return buf;
}

// "SS" plus ".ffffff" without trailing zeros (AppendSeconds, fillzeros).
inline std::string seconds(std::int64_t sec, std::int64_t usec) {
  std::string s = pad(std::llabs(sec), 2);
  if (usec != 0) {
    std::string f = pad(std::llabs(usec), 6);
    while (f.back() == '0') f.pop_back();
    s += '.';
    s += f;
  }
  return s;
}

inline std::string time_of_day(const TimeOfDay& t) {
  return pad(t.hour, 2) + ":" + pad(t.minute, 2) + ":" + seconds(t.second, t.microsecond);
}

// EncodeTimezone: the wire zone is seconds west, the display sign is east.
inline std::string zone(std::int32_t utc_offset) {
  const std::int32_t a = utc_offset < 0 ? -utc_offset : utc_offset;
  const int h = a / 3600, m = a / 60 % 60, s = a % 60;
  std::string r(1, utc_offset >= 0 ? '+' : '-');
  r += pad(h, 2);
  // (append, not "lit" + string: GCC 12's -Wrestrict misfires on that at -O3)
  if (s != 0 || m != 0) r.append(":").append(pad(m, 2));
  if (s != 0) r.append(":").append(pad(s, 2));
  return r;
}

inline std::string civil_date(const CivilDate& d) {
  const std::int64_t y = d.year > 0 ? d.year : 1 - static_cast<std::int64_t>(d.year);
  return pad(y, 4) + "-" + pad(d.month, 2) + "-" + pad(d.day, 2);
}

inline std::string date(const Date& d) {
  if (d.special == Special::kInfinity) return "infinity";
  if (d.special == Special::kNegInfinity) return "-infinity";
  return civil_date(d.civil) + (d.civil.year <= 0 ? " BC" : "");
}

inline std::string timestamp(const Timestamp& t, bool with_tz) {
  if (t.special == Special::kInfinity) return "infinity";
  if (t.special == Special::kNegInfinity) return "-infinity";
  return civil_date(t.date) + " " + time_of_day(t.time) + (with_tz ? "+00" : "") + (t.date.year <= 0 ? " BC" : "");
}

// EncodeInterval, INTSTYLE_POSTGRES.
inline std::string interval(const Interval& v) {
  const std::int64_t year = v.months / 12, mon = v.months % 12, mday = v.days;
  std::int64_t t = v.micros;
  const std::int64_t hour = t / 3'600'000'000;
  t -= hour * 3'600'000'000;
  const std::int64_t min = t / 60'000'000;
  t -= min * 60'000'000;
  const std::int64_t sec = t / 1'000'000;
  const std::int64_t usec = t - sec * 1'000'000;
  std::string s;
  bool is_zero = true, is_before = false;
  auto part = [&](std::int64_t value, const char* units) {
    if (value == 0) return;
    if (!is_zero) s += " ";
    if (is_before && value > 0) s += "+";
    s += std::to_string(value) + " " + units + (value != 1 ? "s" : "");
    is_before = value < 0;
    is_zero = false;
  };
  part(year, "year");
  part(mon, "mon");
  part(mday, "day");
  if (is_zero || hour != 0 || min != 0 || sec != 0 || usec != 0) {
    const bool minus = hour < 0 || min < 0 || sec < 0 || usec < 0;
    if (!is_zero) s += " ";
    s += minus ? "-" : (is_before ? "+" : "");
    s += pad(hour < 0 ? -hour : hour, 2) + ":" + pad(min < 0 ? -min : min, 2) + ":" + seconds(sec, usec);
  }
  return s;
}

inline std::string uuid(const Uuid& u) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += kHex[u[i] >> 4];
    s += kHex[u[i] & 15];
  }
  return s;
}

inline std::string bytea(std::string_view b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "\\x";
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

// float4out/float8out with extra_float_digits = 1: the shortest exact digits, fixed notation
// for decimal exponents in [-4, digits) (digits: 15 for float8, 6 for float4), else d.ddde±XX.
template <class F>
std::string floating(F v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  // Postgres's copy of Ryu does not accept the bounds of the rounding interval: when the
  // shortest string lies exactly halfway to a neighbour, it takes more digits. On a bound, moving
  // the string by 1e-25 (relative) away from v crosses into the neighbour.
  auto parse = [](const std::string& t) -> F {
    if constexpr (sizeof(F) == 4) return std::strtof(t.c_str(), nullptr);
    else return std::strtod(t.c_str(), nullptr);
  };
  auto on_bound = [&](const std::string& t) {
    const std::size_t e = t.find('e');
    std::string mant = t.substr(0, e);
    const std::string exp_part = t.substr(e);
    if (mant.find('.') == std::string::npos) mant += '.';
    std::string below = mant;
    for (std::size_t i = below.size(); i-- > 0;) {  // one unit less in the last place
      if (below[i] == '.') continue;
      if (below[i] > '0') {
        --below[i];
        break;
      }
      below[i] = '9';
    }
    return parse(mant + "0000000000000000000000001" + exp_part) != v ||
           parse(below + "9999999999999999999999999" + exp_part) != v;
  };
  for (int precision = static_cast<int>(sci.find('e')) - (v < 0 ? 3 : 2) + 1; on_bound(sci); ++precision) {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific, precision);
    sci.assign(buf, r.ptr);
  }
  const std::size_t e = sci.find('e');
  const int exp = std::atoi(sci.c_str() + e + 1);
  std::string sign = sci[0] == '-' ? "-" : "";
  std::string digits;
  for (std::size_t i = sign.size(); i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int limit = sizeof(F) == 8 ? 15 : 6;
  if (exp < -4 || exp >= limit) return sci;  // to_chars already writes e+XX with >= 2 digits
  if (exp < 0) return sign + "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  const auto int_len = static_cast<std::size_t>(exp + 1);
  if (digits.size() <= int_len) return sign + digits + std::string(int_len - digits.size(), '0');
  return sign + digits.substr(0, int_len) + "." + digits.substr(int_len);
}

// array_out's quoting of one element's text.
inline std::string array_element(std::string_view v) {
  bool quote = v.empty() || (v.size() == 4 && (v[0] | 0x20) == 'n' && (v[1] | 0x20) == 'u' &&
                             (v[2] | 0x20) == 'l' && (v[3] | 0x20) == 'l');
  std::string body;
  for (char c : v) {
    if (c == '"' || c == '\\') {
      quote = true;
      body += '\\';
    } else if (c == '{' || c == '}' || c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
               c == '\v' || c == '\f') {
      quote = true;
    }
    body += c;
  }
  if (!quote) return body;
  return std::string(1, '"').append(body).append(1, '"');
}

inline std::optional<std::string> value(Oid type, std::string_view bin);

// array_out: "[lb:ub]...=" when any lower bound is not 1, then nested braces.
inline std::optional<std::string> array(std::string_view bin, Oid expected_element) {
  Array a;
  if (decode_array(bin, a, expected_element) != Error::kNone) return std::nullopt;
  if (a.ndim == 0) return "{}";
  std::string s;
  bool bounds = false;
  for (int d = 0; d < a.ndim; ++d) bounds |= a.dims[static_cast<std::size_t>(d)].lower_bound != 1;
  if (bounds) {
    for (int d = 0; d < a.ndim; ++d) {
      const ArrayDim& dim = a.dims[static_cast<std::size_t>(d)];
      s.append("[").append(std::to_string(dim.lower_bound)).append(":");
      s.append(std::to_string(static_cast<std::int64_t>(dim.lower_bound) + dim.size - 1)).append("]");
    }
    s += "=";
  }
  std::size_t next = 0;
  auto walk = [&](auto& self, int d) -> bool {
    s += "{";
    for (std::int32_t i = 0; i < a.dims[static_cast<std::size_t>(d)].size; ++i) {
      if (i) s += ",";
      if (d + 1 < a.ndim) {
        if (!self(self, d + 1)) return false;
        continue;
      }
      const auto& e = a.elements[next++];
      if (!e) {
        s += "NULL";
        continue;
      }
      auto t = value(a.element_type, *e);
      if (!t) return false;
      s += array_element(*t);
    }
    s += "}";
    return true;
  };
  if (!walk(walk, 0)) return std::nullopt;
  return s;
}

/** The text Postgres prints for a binary value of `type`; nullopt when the decoder rejects it. */
inline std::optional<std::string> value(Oid type, std::string_view bin) {
  switch (codec_of(type)) {
    case Codec::kBool: {
      bool v;
      if (decode_bool(bin, v) != Error::kNone) return std::nullopt;
      return v ? "t" : "f";
    }
    case Codec::kInt2: {
      std::int16_t v;
      if (decode_int2(bin, v) != Error::kNone) return std::nullopt;
      return std::to_string(v);
    }
    case Codec::kInt4: {
      std::int32_t v;
      if (decode_int4(bin, v) != Error::kNone) return std::nullopt;
      return std::to_string(v);
    }
    case Codec::kInt8: {
      std::int64_t v;
      if (decode_int8(bin, v) != Error::kNone) return std::nullopt;
      return std::to_string(v);
    }
    case Codec::kOid: {
      std::uint32_t v;
      if (decode_oid(bin, v) != Error::kNone) return std::nullopt;
      return std::to_string(v);
    }
    case Codec::kFloat4: {
      float v;
      if (decode_float4(bin, v) != Error::kNone) return std::nullopt;
      return floating(v);
    }
    case Codec::kFloat8: {
      double v;
      if (decode_float8(bin, v) != Error::kNone) return std::nullopt;
      return floating(v);
    }
    case Codec::kNumeric: {
      std::string v;
      if (decode_numeric(bin, v) != Error::kNone) return std::nullopt;
      return v;
    }
    case Codec::kText:
    case Codec::kJson:
    case Codec::kUnknown:
      return std::string(bin);
    case Codec::kJsonb: {
      std::string_view v;
      if (decode_jsonb(bin, v) != Error::kNone) return std::nullopt;
      return std::string(v);
    }
    case Codec::kBytea:
      return bytea(bin);
    case Codec::kDate: {
      Date v;
      if (decode_date(bin, v) != Error::kNone) return std::nullopt;
      return date(v);
    }
    case Codec::kTime: {
      Time v;
      if (decode_time(bin, v) != Error::kNone) return std::nullopt;
      return time_of_day(v.time);
    }
    case Codec::kTimetz: {
      TimeTz v;
      if (decode_timetz(bin, v) != Error::kNone) return std::nullopt;
      return time_of_day(v.time) + zone(v.utc_offset);
    }
    case Codec::kTimestamp:
    case Codec::kTimestamptz: {
      Timestamp v;
      if (decode_timestamp(bin, v) != Error::kNone) return std::nullopt;
      return timestamp(v, codec_of(type) == Codec::kTimestamptz);
    }
    case Codec::kInterval: {
      Interval v;
      if (decode_interval(bin, v) != Error::kNone) return std::nullopt;
      return interval(v);
    }
    case Codec::kUuid: {
      Uuid v;
      if (decode_uuid(bin, v) != Error::kNone) return std::nullopt;
      return uuid(v);
    }
    case Codec::kInet:
    case Codec::kCidr: {
      Inet v;
      const Error e = codec_of(type) == Codec::kCidr ? decode_cidr(bin, v) : decode_inet(bin, v);
      if (e != Error::kNone) return std::nullopt;
      return format_inet(v);
    }
    case Codec::kArray:
      return array(bin, element_type_of(type));
  }
  return std::nullopt;
}

/** Decodes a binary value and encodes it again through the path the bridge uses for Python
 *  values (make_* from civil fields, encode_numeric from text, ArrayWriter); nullopt when the
 *  decoder or an encoder rejects it. */
inline std::optional<std::string> reencode(Oid type, std::string_view bin) {
  std::string out;
  switch (codec_of(type)) {
    case Codec::kBool: {
      bool v;
      if (decode_bool(bin, v) != Error::kNone) return std::nullopt;
      encode_bool(v, out);
      return out;
    }
    case Codec::kInt2: {
      std::int16_t v;
      if (decode_int2(bin, v) != Error::kNone || encode_int2(v, out) != Error::kNone) return std::nullopt;
      return out;
    }
    case Codec::kInt4: {
      std::int32_t v;
      if (decode_int4(bin, v) != Error::kNone || encode_int4(v, out) != Error::kNone) return std::nullopt;
      return out;
    }
    case Codec::kInt8: {
      std::int64_t v;
      if (decode_int8(bin, v) != Error::kNone) return std::nullopt;
      encode_int8(v, out);
      return out;
    }
    case Codec::kOid: {
      std::uint32_t v;
      if (decode_oid(bin, v) != Error::kNone || encode_oid(v, out) != Error::kNone) return std::nullopt;
      return out;
    }
    case Codec::kFloat4: {
      float v;
      if (decode_float4(bin, v) != Error::kNone) return std::nullopt;
      encode_float4(v, out);
      return out;
    }
    case Codec::kFloat8: {
      double v;
      if (decode_float8(bin, v) != Error::kNone) return std::nullopt;
      encode_float8(v, out);
      return out;
    }
    case Codec::kNumeric: {
      std::string v;
      if (decode_numeric(bin, v) != Error::kNone || encode_numeric(v, out) != Error::kNone) return std::nullopt;
      return out;
    }
    case Codec::kText:
    case Codec::kJson:
    case Codec::kUnknown:
    case Codec::kBytea:
      return std::string(bin);
    case Codec::kJsonb: {
      std::string_view v;
      if (decode_jsonb(bin, v) != Error::kNone) return std::nullopt;
      encode_jsonb(v, out);
      return out;
    }
    case Codec::kDate: {
      Date v, w;
      if (decode_date(bin, v) != Error::kNone) return std::nullopt;
      if (v.special != Special::kFinite) w = make_date(v.special);
      else if (make_date(v.civil, w) != Error::kNone) return std::nullopt;
      encode_date(w, out);
      return out;
    }
    case Codec::kTime: {
      Time v, w;
      if (decode_time(bin, v) != Error::kNone || make_time(v.time, w) != Error::kNone) return std::nullopt;
      encode_time(w, out);
      return out;
    }
    case Codec::kTimetz: {
      TimeTz v, w;
      if (decode_timetz(bin, v) != Error::kNone || make_timetz(v.time, v.utc_offset, w) != Error::kNone)
        return std::nullopt;
      encode_timetz(w, out);
      return out;
    }
    case Codec::kTimestamp:
    case Codec::kTimestamptz: {
      Timestamp v, w;
      if (decode_timestamp(bin, v) != Error::kNone) return std::nullopt;
      if (v.special != Special::kFinite) w = make_timestamp(v.special);
      else if (make_timestamp(v.date, v.time, 0, w) != Error::kNone) return std::nullopt;
      encode_timestamp(w, out);
      return out;
    }
    case Codec::kInterval: {
      Interval v;
      if (decode_interval(bin, v) != Error::kNone) return std::nullopt;
      encode_interval(v, out);
      return out;
    }
    case Codec::kUuid: {
      Uuid v;
      if (decode_uuid(bin, v) != Error::kNone) return std::nullopt;
      encode_uuid(v, out);
      return out;
    }
    case Codec::kInet:
    case Codec::kCidr: {
      Inet v;
      const Error e = codec_of(type) == Codec::kCidr ? decode_cidr(bin, v) : decode_inet(bin, v);
      if (e != Error::kNone || encode_inet(v, out) != Error::kNone) return std::nullopt;
      return out;
    }
    case Codec::kArray: {
      Array a;
      if (decode_array(bin, a, element_type_of(type)) != Error::kNone) return std::nullopt;
      ArrayWriter w(out, a.element_type, std::span<const ArrayDim>(a.dims.data(), static_cast<std::size_t>(a.ndim)));
      for (const auto& e : a.elements) {
        if (!e) {
          w.add_null();
          continue;
        }
        auto r = reencode(a.element_type, *e);
        if (!r) return std::nullopt;
        w.begin_element();
        out += *r;
        w.end_element();
      }
      if (w.finish() != Error::kNone) return std::nullopt;
      return out;
    }
  }
  return std::nullopt;
}

}  // namespace puff::pg::text
