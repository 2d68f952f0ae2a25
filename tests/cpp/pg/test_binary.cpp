// Unit tests of src/pg/binary.hpp on hand-built wire bytes: every type, its edge values, and
// malformed input (wrong lengths, truncation, bad fields). The server-side counterpart is
// test_binary_pg.cpp.
#include "pg/binary.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "pg_text.hpp"

using namespace puff::pg;

namespace {

std::string be16(std::uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string be32(std::uint32_t v) { return be16(static_cast<std::uint16_t>(v >> 16)) + be16(static_cast<std::uint16_t>(v)); }
std::string be64(std::uint64_t v) { return be32(static_cast<std::uint32_t>(v >> 32)) + be32(static_cast<std::uint32_t>(v)); }

std::string numeric(std::int16_t weight, std::uint16_t sign, std::uint16_t dscale, std::vector<std::uint16_t> digits) {
  std::string s = be16(static_cast<std::uint16_t>(digits.size())) + be16(static_cast<std::uint16_t>(weight)) +
                  be16(sign) + be16(dscale);
  for (auto d : digits) s += be16(d);
  return s;
}

std::string num_text(std::string_view bin) {
  std::string out;
  const Error e = decode_numeric(bin, out);
  return e == Error::kNone ? out : std::string("error: ") + describe(e);
}

// encode_numeric then decode_numeric.
std::string num_round(std::string_view text) {
  std::string bin;
  const Error e = encode_numeric(text, bin);
  if (e != Error::kNone) return std::string("error: ") + describe(e);
  return num_text(bin);
}

std::string text_of(Oid type, std::string_view bin) {
  auto t = text::value(type, bin);
  return t ? *t : "<decode error>";
}

constexpr std::uint16_t kPos = 0, kNeg = 0x4000;

}  // namespace

// ---- scalars ----------------------------------------------------------------------------------

TEST(PgBinary, Bool) {
  bool v = false;
  EXPECT_EQ(decode_bool(std::string(1, '\1'), v), Error::kNone);
  EXPECT_TRUE(v);
  EXPECT_EQ(decode_bool(std::string(1, '\0'), v), Error::kNone);
  EXPECT_FALSE(v);
  EXPECT_EQ(decode_bool(std::string(1, '\2'), v), Error::kNone);  // boolrecv: any non-zero byte
  EXPECT_TRUE(v);
  EXPECT_EQ(decode_bool("", v), Error::kLength);
  EXPECT_EQ(decode_bool(std::string(2, '\1'), v), Error::kLength);
  std::string out;
  encode_bool(true, out);
  encode_bool(false, out);
  EXPECT_EQ(out, std::string("\1\0", 2));
}

TEST(PgBinary, Integers) {
  std::int16_t i2;
  std::int32_t i4;
  std::int64_t i8;
  std::uint32_t o;
  ASSERT_EQ(decode_int2(be16(0x8000), i2), Error::kNone);
  EXPECT_EQ(i2, -32768);
  ASSERT_EQ(decode_int4(be32(0xFFFFFFFE), i4), Error::kNone);
  EXPECT_EQ(i4, -2);
  ASSERT_EQ(decode_int8(be64(0x7FFFFFFFFFFFFFFF), i8), Error::kNone);
  EXPECT_EQ(i8, std::numeric_limits<std::int64_t>::max());
  ASSERT_EQ(decode_oid(be32(0xFFFFFFFF), o), Error::kNone);
  EXPECT_EQ(o, 4294967295u);
  EXPECT_EQ(decode_int2(be32(1), i2), Error::kLength);
  EXPECT_EQ(decode_int4(be16(1), i4), Error::kLength);
  EXPECT_EQ(decode_int8(be32(1), i8), Error::kLength);
  EXPECT_EQ(decode_oid("", o), Error::kLength);

  std::string out;
  EXPECT_EQ(encode_int2(-32768, out), Error::kNone);
  EXPECT_EQ(encode_int2(32768, out), Error::kRange);
  EXPECT_EQ(encode_int4(-2, out), Error::kNone);
  EXPECT_EQ(encode_int4(std::int64_t{1} << 31, out), Error::kRange);
  encode_int8(std::numeric_limits<std::int64_t>::min(), out);
  EXPECT_EQ(encode_oid(-1, out), Error::kRange);
  EXPECT_EQ(encode_oid(4294967295, out), Error::kNone);
  EXPECT_EQ(out, be16(0x8000) + be32(0xFFFFFFFE) + be64(0x8000000000000000) + be32(0xFFFFFFFF));
}

TEST(PgBinary, Floats) {
  double d;
  float f;
  ASSERT_EQ(decode_float8(be64(0x7FF8000000000000), d), Error::kNone);
  EXPECT_TRUE(std::isnan(d));
  ASSERT_EQ(decode_float8(be64(0xFFF0000000000000), d), Error::kNone);
  EXPECT_EQ(d, -std::numeric_limits<double>::infinity());
  ASSERT_EQ(decode_float8(be64(0x8000000000000000), d), Error::kNone);
  EXPECT_TRUE(d == 0 && std::signbit(d));
  ASSERT_EQ(decode_float4(be32(0x7F800000), f), Error::kNone);
  EXPECT_EQ(f, std::numeric_limits<float>::infinity());
  ASSERT_EQ(decode_float4(be32(0x3FC00000), f), Error::kNone);
  EXPECT_EQ(f, 1.5f);
  EXPECT_EQ(decode_float8(be32(0), d), Error::kLength);
  EXPECT_EQ(decode_float4(be64(0), f), Error::kLength);
  std::string out;
  encode_float8(0.1, out);
  encode_float4(-2.0f, out);
  EXPECT_EQ(out, be64(0x3FB999999999999A) + be32(0xC0000000));
  EXPECT_EQ(text::floating(1e100), "1e+100");
  EXPECT_EQ(text::floating(1.2345678901234568e+20), "1.2345678901234568e+20");
  EXPECT_EQ(text::floating(123456.5), "123456.5");
  EXPECT_EQ(text::floating(0.0001), "0.0001");
  EXPECT_EQ(text::floating(0.00001), "1e-05");
  EXPECT_EQ(text::floating(1234567.0f), "1.234567e+06");
}

TEST(PgBinary, Jsonb) {
  std::string_view t;
  EXPECT_EQ(decode_jsonb("\1{\"a\": 1}", t), Error::kNone);
  EXPECT_EQ(t, "{\"a\": 1}");
  EXPECT_EQ(decode_jsonb("\1", t), Error::kNone);  // the server rejects empty JSON; the frame is fine
  EXPECT_EQ(t, "");
  EXPECT_EQ(decode_jsonb("\2[]", t), Error::kValue);
  EXPECT_EQ(decode_jsonb("", t), Error::kLength);
  std::string out;
  encode_jsonb("[1]", out);
  EXPECT_EQ(out, "\1[1]");
}

// ---- numeric ----------------------------------------------------------------------------------

TEST(PgBinary, NumericDecode) {
  EXPECT_EQ(num_text(numeric(0, kPos, 0, {})), "0");
  EXPECT_EQ(num_text(numeric(0, kPos, 3, {})), "0.000");
  EXPECT_EQ(num_text(numeric(0, kPos, 2, {123, 4500})), "123.45");
  EXPECT_EQ(num_text(numeric(0, kNeg, 4, {123, 4500})), "-123.4500");
  EXPECT_EQ(num_text(numeric(1, kPos, 0, {1})), "10000");  // trailing digits implied by weight
  EXPECT_EQ(num_text(numeric(1, kPos, 0, {1, 0})), "10000");
  EXPECT_EQ(num_text(numeric(-1, kPos, 4, {1})), "0.0001");
  EXPECT_EQ(num_text(numeric(-5, kNeg, 20, {1})), "-0.00000000000000000001");
  EXPECT_EQ(num_text(numeric(-1, kPos, 2, {1234})), "0.12");  // digits past dscale are cut off
  EXPECT_EQ(num_text(numeric(-1, kNeg, 2, {99})), "0.00");  // cut to zero: no sign
  EXPECT_EQ(num_text(numeric(0, kNeg, 0, {})), "0");  // -0 prints as 0
  EXPECT_EQ(num_text(numeric(2, kPos, 0, {0, 0, 42})), "42");  // leading zero digits stripped
  EXPECT_EQ(num_text(numeric(1, kPos, 4, {0, 0, 42})), "0.0042");
  EXPECT_EQ(num_text(numeric(5, kPos, 1, {0, 0})), "0.0");
  EXPECT_EQ(num_text(numeric(0, 0xC000, 0, {})), "NaN");
  EXPECT_EQ(num_text(numeric(0, 0xD000, 0, {})), "Infinity");
  EXPECT_EQ(num_text(numeric(0, 0xF000, 0, {})), "-Infinity");
  EXPECT_EQ(num_text(numeric(0, 0xC000, 0, {5})), "NaN");  // digits of a special value: ignored
  // 1000 digits: 250 base-10000 digits of 9999 → 1000 nines.
  EXPECT_EQ(num_text(numeric(249, kPos, 0, std::vector<std::uint16_t>(250, 9999))), std::string(1000, '9'));
  EXPECT_EQ(num_text(numeric(-1, kPos, 1000, std::vector<std::uint16_t>(250, 1111))),
            "0." + std::string(1000, '1'));
  // The largest weight and scale.
  EXPECT_EQ(num_text(numeric(32767, kPos, 0, {1})).size(), 1u + 32767 * 4);
  EXPECT_EQ(num_text(numeric(-4096, kPos, 16383, {1000})), "0." + std::string(16380, '0') + "100");
}

TEST(PgBinary, NumericMalformed) {
  std::string out;
  EXPECT_EQ(decode_numeric("", out), Error::kLength);
  EXPECT_EQ(decode_numeric(std::string(7, '\0'), out), Error::kLength);
  const std::string ok = numeric(0, kPos, 2, {123, 4500});
  for (std::size_t n = 0; n < ok.size(); ++n) EXPECT_EQ(decode_numeric(ok.substr(0, n), out), Error::kLength) << n;
  EXPECT_EQ(decode_numeric(ok + std::string(2, '\0'), out), Error::kLength);
  EXPECT_EQ(decode_numeric(numeric(0, kPos, 0, {10000}), out), Error::kValue);  // digit >= NBASE
  EXPECT_EQ(decode_numeric(numeric(0, 0x8000, 0, {1}), out), Error::kValue);  // bad sign
  EXPECT_EQ(decode_numeric(numeric(0, 0xC001, 0, {}), out), Error::kValue);
  EXPECT_EQ(decode_numeric(numeric(0, kPos, 0x4000, {1}), out), Error::kValue);  // dscale > 16383
  EXPECT_EQ(decode_numeric(numeric(0, 0xC000, 0, {10000}), out), Error::kValue);  // checked for NaN too
  // ndigits says 65535, the bytes hold 1.
  EXPECT_EQ(decode_numeric(be16(0xFFFF) + be16(0) + be16(0) + be16(0) + be16(1), out), Error::kLength);
}

TEST(PgBinary, NumericEncode) {
  EXPECT_EQ(num_round("0"), "0");
  EXPECT_EQ(num_round("-0"), "0");
  EXPECT_EQ(num_round("0.000"), "0.000");
  EXPECT_EQ(num_round("-0E-7"), "0.0000000");  // Python: str(Decimal("-0E-7"))
  EXPECT_EQ(num_round("123.45"), "123.45");
  EXPECT_EQ(num_round("+123.4500"), "123.4500");
  EXPECT_EQ(num_round("-0.001"), "-0.001");
  EXPECT_EQ(num_round("1E+3"), "1000");
  EXPECT_EQ(num_round("1.20E+1"), "12.0");
  EXPECT_EQ(num_round("1.23E-7"), "0.000000123");
  EXPECT_EQ(num_round("12345678901234567890123456789"), "12345678901234567890123456789");
  EXPECT_EQ(num_round("00012.5"), "12.5");
  EXPECT_EQ(num_round(".5"), "0.5");
  EXPECT_EQ(num_round("5."), "5");
  EXPECT_EQ(num_round("1e-16383"), "0." + std::string(16382, '0') + "1");
  EXPECT_EQ(num_round("9.9e131071").size(), 131072u);
  EXPECT_EQ(num_round(std::string(1000, '7') + "." + std::string(1000, '3')),
            std::string(1000, '7') + "." + std::string(1000, '3'));
  EXPECT_EQ(num_round("NaN"), "NaN");
  EXPECT_EQ(num_round("sNaN"), "NaN");
  EXPECT_EQ(num_round("-nan"), "NaN");
  EXPECT_EQ(num_round("Infinity"), "Infinity");
  EXPECT_EQ(num_round("-Infinity"), "-Infinity");
  EXPECT_EQ(num_round("+inf"), "Infinity");
  EXPECT_EQ(num_round("-INF"), "-Infinity");

  // The exact wire form: normalized digits (no leading/trailing zero digits), weight, dscale.
  std::string out;
  ASSERT_EQ(encode_numeric("-10000.10", out), Error::kNone);
  EXPECT_EQ(out, numeric(1, kNeg, 2, {1, 0, 1000}));
  out.clear();
  ASSERT_EQ(encode_numeric("0.00012", out), Error::kNone);
  EXPECT_EQ(out, numeric(-1, kPos, 5, {1, 2000}));
  out.clear();
  ASSERT_EQ(encode_numeric("1E+8", out), Error::kNone);
  EXPECT_EQ(out, numeric(2, kPos, 0, {1}));

  for (std::string_view bad : {"", "-", "+", ".", "1e", "1e+", "1.2.3", "abc", " 1", "1 ", "1,5", "0x10", "--1",
                               "1e5.0", "Infinityx", "nann", "1_000"}) {
    out.clear();
    EXPECT_EQ(encode_numeric(bad, out), Error::kSyntax) << bad;
  }
  for (std::string_view big : {"1e131072", "1E-16384", "0E-16384", "1e99999999999999999999", "0e-99999999999"}) {
    out.clear();
    EXPECT_EQ(encode_numeric(big, out), Error::kRange) << big;
  }
  EXPECT_EQ(encode_numeric("0." + std::string(16384, '0'), out), Error::kRange);
}

// ---- dates and times --------------------------------------------------------------------------

TEST(PgBinary, Date) {
  Date d;
  ASSERT_EQ(decode_date(be32(0), d), Error::kNone);
  EXPECT_EQ(d.civil, (CivilDate{2000, 1, 1}));
  EXPECT_TRUE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(static_cast<std::uint32_t>(-730119)), d), Error::kNone);
  EXPECT_EQ(text::date(d), "0001-01-01");
  EXPECT_TRUE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(static_cast<std::uint32_t>(-730120)), d), Error::kNone);
  EXPECT_EQ(text::date(d), "0001-12-31 BC");
  EXPECT_EQ(d.civil.year, 0);
  EXPECT_FALSE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(2921939), d), Error::kNone);
  EXPECT_EQ(text::date(d), "9999-12-31");
  EXPECT_TRUE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(2921940), d), Error::kNone);
  EXPECT_EQ(text::date(d), "10000-01-01");
  EXPECT_FALSE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(0x7FFFFFFF), d), Error::kNone);
  EXPECT_EQ(d.special, Special::kInfinity);
  EXPECT_FALSE(d.in_python_range());
  ASSERT_EQ(decode_date(be32(0x80000000), d), Error::kNone);
  EXPECT_EQ(d.special, Special::kNegInfinity);
  // Postgres's range: 4714-11-24 BC .. 5874897-12-31.
  ASSERT_EQ(decode_date(be32(static_cast<std::uint32_t>(-2451545)), d), Error::kNone);
  EXPECT_EQ(text::date(d), "4714-11-24 BC");
  EXPECT_EQ(decode_date(be32(static_cast<std::uint32_t>(-2451546)), d), Error::kValue);
  ASSERT_EQ(decode_date(be32(2145031948), d), Error::kNone);
  EXPECT_EQ(text::date(d), "5874897-12-31");
  EXPECT_EQ(decode_date(be32(2145031949), d), Error::kValue);
  EXPECT_EQ(decode_date(be16(0), d), Error::kLength);
  EXPECT_EQ(decode_date(be64(0), d), Error::kLength);

  Date m;
  ASSERT_EQ(make_date({2024, 2, 29}, m), Error::kNone);
  EXPECT_EQ(text::date(m), "2024-02-29");
  EXPECT_EQ(make_date({2023, 2, 29}, m), Error::kValue);
  EXPECT_EQ(make_date({1900, 2, 29}, m), Error::kValue);
  EXPECT_EQ(make_date({2000, 13, 1}, m), Error::kValue);
  EXPECT_EQ(make_date({2000, 0, 1}, m), Error::kValue);
  EXPECT_EQ(make_date({2000, 1, 0}, m), Error::kValue);
  EXPECT_EQ(make_date({-4713, 11, 23}, m), Error::kRange);
  EXPECT_EQ(make_date({5874898, 1, 1}, m), Error::kRange);
  ASSERT_EQ(make_date({1, 1, 1}, m), Error::kNone);
  std::string out;
  encode_date(m, out);
  encode_date(make_date(Special::kInfinity), out);
  EXPECT_EQ(out, be32(static_cast<std::uint32_t>(-730119)) + be32(0x7FFFFFFF));
}

TEST(PgBinary, Time) {
  Time t;
  ASSERT_EQ(decode_time(be64(0), t), Error::kNone);
  EXPECT_EQ(text::time_of_day(t.time), "00:00:00");
  ASSERT_EQ(decode_time(be64(45296789012), t), Error::kNone);
  EXPECT_EQ(t.time, (TimeOfDay{12, 34, 56, 789012}));
  ASSERT_EQ(decode_time(be64(86400000000), t), Error::kNone);
  EXPECT_EQ(text::time_of_day(t.time), "24:00:00");
  EXPECT_FALSE(t.in_python_range());
  EXPECT_EQ(decode_time(be64(86400000001), t), Error::kValue);
  EXPECT_EQ(decode_time(be64(static_cast<std::uint64_t>(-1)), t), Error::kValue);
  EXPECT_EQ(decode_time(be32(0), t), Error::kLength);

  Time m;
  EXPECT_EQ(make_time({24, 0, 0, 0}, m), Error::kNone);
  EXPECT_EQ(m.micros, 86400000000);
  EXPECT_EQ(make_time({24, 0, 0, 1}, m), Error::kValue);
  EXPECT_EQ(make_time({23, 60, 0, 0}, m), Error::kValue);
  EXPECT_EQ(make_time({0, 0, 0, 1000000}, m), Error::kValue);
  EXPECT_EQ(make_time({-1, 0, 0, 0}, m), Error::kValue);
}

TEST(PgBinary, Timetz) {
  TimeTz t;
  // 12:00 at +05:30: the wire zone is -19800 (seconds west).
  ASSERT_EQ(decode_timetz(be64(43200000000) + be32(static_cast<std::uint32_t>(-19800)), t), Error::kNone);
  EXPECT_EQ(t.utc_offset, 19800);
  EXPECT_EQ(text::time_of_day(t.time) + text::zone(t.utc_offset), "12:00:00+05:30");
  ASSERT_EQ(decode_timetz(be64(1) + be32(28800), t), Error::kNone);
  EXPECT_EQ(text::time_of_day(t.time) + text::zone(t.utc_offset), "00:00:00.000001-08");
  ASSERT_EQ(decode_timetz(be64(0) + be32(static_cast<std::uint32_t>(-57599)), t), Error::kNone);
  EXPECT_EQ(text::zone(t.utc_offset), "+15:59:59");
  EXPECT_EQ(decode_timetz(be64(0) + be32(57600), t), Error::kValue);
  EXPECT_EQ(decode_timetz(be64(0) + be32(static_cast<std::uint32_t>(-57600)), t), Error::kValue);
  EXPECT_EQ(decode_timetz(be64(86400000001) + be32(0), t), Error::kValue);
  EXPECT_EQ(decode_timetz(be64(0), t), Error::kLength);
  EXPECT_EQ(decode_timetz(be64(0) + be32(0) + "x", t), Error::kLength);

  TimeTz m;
  ASSERT_EQ(make_timetz({1, 2, 3, 4}, -3600, m), Error::kNone);
  std::string out;
  encode_timetz(m, out);
  EXPECT_EQ(out, be64(3723000004) + be32(3600));
  EXPECT_EQ(make_timetz({1, 2, 3, 4}, 57600, m), Error::kRange);
}

TEST(PgBinary, Timestamp) {
  Timestamp t;
  ASSERT_EQ(decode_timestamp(be64(0), t), Error::kNone);
  EXPECT_EQ(text::timestamp(t, false), "2000-01-01 00:00:00");
  ASSERT_EQ(decode_timestamp(be64(static_cast<std::uint64_t>(-1)), t), Error::kNone);
  EXPECT_EQ(text::timestamp(t, true), "1999-12-31 23:59:59.999999+00");
  ASSERT_EQ(decode_timestamp(be64(0x7FFFFFFFFFFFFFFF), t), Error::kNone);
  EXPECT_EQ(t.special, Special::kInfinity);
  EXPECT_FALSE(t.in_python_range());
  ASSERT_EQ(decode_timestamp(be64(0x8000000000000000), t), Error::kNone);
  EXPECT_EQ(t.special, Special::kNegInfinity);
  // Postgres's range: [4714-11-24 00:00 BC, 294277-01-01 00:00).
  ASSERT_EQ(decode_timestamp(be64(static_cast<std::uint64_t>(-211813488000000000)), t), Error::kNone);
  EXPECT_EQ(text::timestamp(t, false), "4714-11-24 00:00:00 BC");
  EXPECT_EQ(decode_timestamp(be64(static_cast<std::uint64_t>(-211813488000000001)), t), Error::kValue);
  ASSERT_EQ(decode_timestamp(be64(9223371331199999999), t), Error::kNone);
  EXPECT_EQ(text::timestamp(t, false), "294276-12-31 23:59:59.999999");
  EXPECT_EQ(decode_timestamp(be64(9223371331200000000), t), Error::kValue);
  EXPECT_EQ(decode_timestamp(be32(0), t), Error::kLength);

  Timestamp m;
  ASSERT_EQ(make_timestamp({9999, 12, 31}, {23, 59, 59, 999999}, 0, m), Error::kNone);
  EXPECT_TRUE(m.in_python_range());
  // 9999-12-31 23:00 at -01:00 is 10000-01-01 00:00 UTC: valid in Postgres, not in Python.
  ASSERT_EQ(make_timestamp({9999, 12, 31}, {23, 0, 0, 0}, -3600, m), Error::kNone);
  EXPECT_EQ(text::timestamp(m, true), "10000-01-01 00:00:00+00");
  EXPECT_FALSE(m.in_python_range());
  ASSERT_EQ(make_timestamp({1, 1, 1}, {0, 30, 0, 0}, 3600, m), Error::kNone);
  EXPECT_EQ(text::timestamp(m, true), "0001-12-31 23:30:00+00 BC");
  ASSERT_EQ(make_timestamp({2024, 6, 1}, {12, 0, 0, 5}, 7200, m), Error::kNone);
  EXPECT_EQ(text::timestamp(m, true), "2024-06-01 10:00:00.000005+00");
  EXPECT_EQ(make_timestamp({2024, 6, 31}, {0, 0, 0, 0}, 0, m), Error::kValue);
  EXPECT_EQ(make_timestamp({2024, 6, 1}, {24, 0, 0, 0}, 0, m), Error::kValue);
  EXPECT_EQ(make_timestamp({2024, 6, 1}, {0, 0, 0, 0}, 86400, m), Error::kValue);
  EXPECT_EQ(make_timestamp({294277, 1, 1}, {0, 0, 0, 0}, 0, m), Error::kRange);
  EXPECT_EQ(make_timestamp({-4713, 11, 23}, {23, 59, 59, 999999}, 0, m), Error::kRange);
  EXPECT_EQ(make_timestamp({std::numeric_limits<std::int32_t>::max(), 12, 31}, {0, 0, 0, 0}, 0, m), Error::kRange);
  EXPECT_EQ(make_timestamp({std::numeric_limits<std::int32_t>::min(), 1, 1}, {0, 0, 0, 0}, 0, m), Error::kRange);
  std::string out;
  encode_timestamp(make_timestamp(Special::kNegInfinity), out);
  ASSERT_EQ(make_timestamp({2000, 1, 1}, {0, 0, 1, 0}, 0, m), Error::kNone);
  encode_timestamp(m, out);
  EXPECT_EQ(out, be64(0x8000000000000000) + be64(1000000));
}

TEST(PgBinary, Interval) {
  Interval v;
  ASSERT_EQ(decode_interval(be64(static_cast<std::uint64_t>(-1500000)) + be32(3) + be32(14), v), Error::kNone);
  EXPECT_EQ(v, (Interval{-1500000, 3, 14}));
  EXPECT_EQ(text::interval(v), "1 year 2 mons 3 days -00:00:01.5");
  EXPECT_EQ(text::interval(Interval{}), "00:00:00");
  EXPECT_EQ(text::interval(Interval{0, -1, -1}), "-1 mons -1 days");
  EXPECT_EQ(text::interval(Interval{3600000000, -1, 0}), "-1 days +01:00:00");
  EXPECT_EQ(decode_interval(be64(0) + be32(0), v), Error::kLength);
  EXPECT_EQ(decode_interval(be64(0) + be64(0) + "x", v), Error::kLength);
  std::string out;
  encode_interval(Interval{1, -2, 3}, out);
  EXPECT_EQ(out, be64(1) + be32(static_cast<std::uint32_t>(-2)) + be32(3));

  // psycopg's mapping: 12 months = 365 days, a month = 30 days, on |months| with the sign back.
  Timedelta td;
  ASSERT_EQ(interval_to_timedelta(Interval{0, 3, 14}, td), Error::kNone);
  EXPECT_EQ(td, (Timedelta{365 + 60 + 3, 0, 0}));
  ASSERT_EQ(interval_to_timedelta(Interval{0, 0, -14}, td), Error::kNone);
  EXPECT_EQ(td, (Timedelta{-425, 0, 0}));
  ASSERT_EQ(interval_to_timedelta(Interval{-1, 0, 0}, td), Error::kNone);  // Python normalizes to days=-1
  EXPECT_EQ(td, (Timedelta{-1, 86399, 999999}));
  ASSERT_EQ(interval_to_timedelta(Interval{90061000001, 1, 0}, td), Error::kNone);  // 25:01:01.000001
  EXPECT_EQ(td, (Timedelta{2, 3661, 1}));
  ASSERT_EQ(interval_to_timedelta(Interval{0, 999999999, 0}, td), Error::kNone);
  EXPECT_EQ(interval_to_timedelta(Interval{86400000000, 999999999, 0}, td), Error::kRange);
  EXPECT_EQ(interval_to_timedelta(Interval{0, 0, std::numeric_limits<std::int32_t>::max()}, td), Error::kRange);
  EXPECT_EQ(interval_to_timedelta(Interval{0, std::numeric_limits<std::int32_t>::min(), 0}, td), Error::kRange);
  EXPECT_EQ(interval_from_timedelta(Timedelta{-1, 86399, 999999}), (Interval{86399999999, -1, 0}));
}

// ---- uuid, inet -------------------------------------------------------------------------------

TEST(PgBinary, Uuid) {
  const std::string bin = be64(0x123e4567e89b12d3) + be64(0xa456426614174000);
  Uuid u;
  ASSERT_EQ(decode_uuid(bin, u), Error::kNone);
  EXPECT_EQ(text::uuid(u), "123e4567-e89b-12d3-a456-426614174000");
  std::string out;
  encode_uuid(u, out);
  EXPECT_EQ(out, bin);
  EXPECT_EQ(decode_uuid(bin.substr(0, 15), u), Error::kLength);
  EXPECT_EQ(decode_uuid(bin + "x", u), Error::kLength);
}

TEST(PgBinary, Inet) {
  auto v4 = [](int bits, bool cidr, std::string addr) {
    return std::string{2, static_cast<char>(bits), cidr ? '\1' : '\0', 4} + addr;
  };
  auto v6 = [](int bits, std::string addr) { return std::string{3, static_cast<char>(bits), 0, 16} + addr; };
  EXPECT_EQ(text_of(oid::kInet, v4(24, false, std::string("\xc0\xa8\x00\x01", 4))), "192.168.0.1/24");
  EXPECT_EQ(text_of(oid::kInet, v4(32, false, std::string("\x0a\x00\x00\x01", 4))), "10.0.0.1");
  EXPECT_EQ(text_of(oid::kCidr, v4(8, true, std::string("\x0a\0\0\0", 4))), "10.0.0.0/8");
  EXPECT_EQ(text_of(oid::kCidr, v4(32, true, std::string("\x0a\x00\x00\x01", 4))), "10.0.0.1/32");
  EXPECT_EQ(text_of(oid::kCidr, v4(8, true, std::string("\x0a\x00\x00\x01", 4))), "<decode error>");  // host bits set
  EXPECT_EQ(text_of(oid::kCidr, v4(0, true, std::string(4, '\0'))), "0.0.0.0/0");
  std::string loopback(16, '\0');
  loopback[15] = 1;
  EXPECT_EQ(text_of(oid::kInet, v6(128, loopback)), "::1");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(16, '\0'))), "::");
  EXPECT_EQ(text_of(oid::kInet, v6(64, std::string("\x20\x01\x0d\xb8", 4) + std::string(12, '\0'))), "2001:db8::/64");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(10, '\0') + "\xff\xff\x01\x02\x03\x04")), "::ffff:1.2.3.4");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(12, '\0') + "\x01\x02\x03\x04")), "::1.2.3.4");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(15, '\0') + "\x02")), "::2");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(14, '\0') + "\xff\xff")), "::ffff");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string(8, '\0') + std::string("\xff\xff\0\0\1\2\3\4", 8))), "::ffff:0:102:304");
  // Two runs of two zero words: the first one becomes "::".
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string("\0\1\0\0\0\0\0\1\0\0\0\0\0\1\0\1", 16))), "1::1:0:0:1:1");
  EXPECT_EQ(text_of(oid::kInet, v6(128, std::string("\0\1\0\0\0\1\0\0\0\1\0\0\0\1\0\1", 16))), "1:0:1:0:1:0:1:1");

  Inet v;
  EXPECT_EQ(decode_inet(v4(33, false, "abcd"), v), Error::kValue);
  EXPECT_EQ(decode_inet(v6(129, std::string(16, '\0')), v), Error::kValue);
  EXPECT_EQ(decode_inet(std::string{1, 8, 0, 4} + "abcd", v), Error::kValue);  // family
  EXPECT_EQ(decode_inet(std::string{2, 8, 0, 16} + "abcd", v), Error::kValue);  // nb vs family
  EXPECT_EQ(decode_inet(v4(8, false, "abc"), v), Error::kLength);
  EXPECT_EQ(decode_inet(v4(8, false, "abcde"), v), Error::kLength);
  EXPECT_EQ(decode_inet("\2\x08\0", v), Error::kLength);
  ASSERT_EQ(decode_inet(v4(8, true, "abcd"), v), Error::kNone);  // the is_cidr byte is ignored
  EXPECT_FALSE(v.is_cidr);
  std::string out;
  ASSERT_EQ(encode_inet(v, out), Error::kNone);
  EXPECT_EQ(out, v4(8, false, "abcd"));
  v.is_cidr = true;
  EXPECT_EQ(encode_inet(v, out), Error::kValue);
  v.family = 5;
  EXPECT_EQ(encode_inet(v, out), Error::kValue);
}

// ---- arrays -----------------------------------------------------------------------------------

namespace {
std::string array_header(int ndim, int flags, Oid elem, std::vector<std::pair<int, int>> dims) {
  std::string s = be32(static_cast<std::uint32_t>(ndim)) + be32(static_cast<std::uint32_t>(flags)) + be32(elem);
  for (auto [size, lb] : dims) s += be32(static_cast<std::uint32_t>(size)) + be32(static_cast<std::uint32_t>(lb));
  return s;
}
std::string int4_elem(std::int32_t v) { return be32(4) + be32(static_cast<std::uint32_t>(v)); }
const std::string kNullElem = be32(0xFFFFFFFF);
}  // namespace

TEST(PgBinary, ArrayDecode) {
  Array a;
  ASSERT_EQ(decode_array(array_header(0, 0, oid::kInt4, {}), a, oid::kInt4), Error::kNone);
  EXPECT_EQ(a.ndim, 0);
  EXPECT_TRUE(a.elements.empty());
  EXPECT_EQ(text_of(oid::kInt4Array, array_header(0, 0, oid::kInt4, {})), "{}");

  const std::string one = array_header(1, 1, oid::kInt4, {{3, 1}}) + int4_elem(1) + kNullElem + int4_elem(-3);
  ASSERT_EQ(decode_array(one, a, oid::kInt4), Error::kNone);
  EXPECT_EQ(a.ndim, 1);
  EXPECT_EQ(a.dims[0], (ArrayDim{3, 1}));
  ASSERT_EQ(a.elements.size(), 3u);
  EXPECT_FALSE(a.elements[1].has_value());
  EXPECT_EQ(*a.elements[2], be32(static_cast<std::uint32_t>(-3)));
  EXPECT_EQ(text_of(oid::kInt4Array, one), "{1,NULL,-3}");

  const std::string two = array_header(2, 0, oid::kInt4, {{2, 1}, {3, 1}}) + int4_elem(1) + int4_elem(2) +
                          int4_elem(3) + int4_elem(4) + int4_elem(5) + int4_elem(6);
  EXPECT_EQ(text_of(oid::kInt4Array, two), "{{1,2,3},{4,5,6}}");
  const std::string bounds = array_header(2, 0, oid::kInt4, {{1, 0}, {2, -5}}) + int4_elem(7) + int4_elem(8);
  EXPECT_EQ(text_of(oid::kInt4Array, bounds), "[0:0][-5:-4]={{7,8}}");
  // A dimension of size 0 makes an empty array, whatever the other dimensions say.
  ASSERT_EQ(decode_array(array_header(2, 0, oid::kInt4, {{0, 1}, {100, 1}}), a), Error::kNone);
  EXPECT_EQ(a.ndim, 0);
  // The has-null flag is not checked against the elements (as array_recv).
  ASSERT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{1, 1}}) + kNullElem, a), Error::kNone);
  // Text elements that need quoting.
  const std::string texts = array_header(1, 0, oid::kText, {{4, 1}}) + be32(0) + be32(4) + "NULL" + be32(3) +
                            "a b" + be32(2) + "\"\\";
  EXPECT_EQ(text_of(oid::kTextArray, texts), R"({"","NULL","a b","\"\\"})");
}

TEST(PgBinary, ArrayMalformed) {
  Array a;
  const std::string one = array_header(1, 0, oid::kInt4, {{2, 1}}) + int4_elem(1) + int4_elem(2);
  for (std::size_t n = 0; n < one.size(); ++n) EXPECT_NE(decode_array(one.substr(0, n), a), Error::kNone) << n;
  EXPECT_EQ(decode_array(one + "x", a), Error::kLength);
  EXPECT_EQ(decode_array(one, a, oid::kInt8), Error::kElementType);
  EXPECT_EQ(decode_array(array_header(7, 0, oid::kInt4, {{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}) +
                             int4_elem(1),
                         a),
            Error::kValue);
  EXPECT_EQ(decode_array(array_header(-1, 0, oid::kInt4, {}), a), Error::kValue);
  EXPECT_EQ(decode_array(array_header(1, 2, oid::kInt4, {{1, 1}}) + int4_elem(1), a), Error::kValue);
  EXPECT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{-1, 1}}), a), Error::kValue);
  EXPECT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{2, 0x7FFFFFFF}}) + int4_elem(1) + int4_elem(2), a),
            Error::kValue);  // upper bound past int32
  EXPECT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{1, 1}}) + be32(static_cast<std::uint32_t>(-2)), a),
            Error::kValue);  // length < -1
  EXPECT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{1, 1}}) + be32(5) + "abcd", a), Error::kLength);
  // Huge counts are refused before any allocation: too many for Postgres, or for the bytes.
  EXPECT_EQ(decode_array(array_header(2, 0, oid::kInt4, {{0x10000, 1}, {0x10000, 1}}), a), Error::kValue);
  EXPECT_EQ(decode_array(array_header(1, 0, oid::kInt4, {{1000000, 1}}) + int4_elem(1), a), Error::kLength);
  EXPECT_TRUE(a.elements.capacity() < 1000);
  // Elements are decoded by the caller: a wrong element length shows there.
  EXPECT_EQ(text_of(oid::kInt4Array, array_header(1, 0, oid::kInt4, {{1, 1}}) + be32(2) + "ab"), "<decode error>");
}

TEST(PgBinary, ArrayWriter) {
  std::string out = "prefix";
  const ArrayDim dims[] = {{2, 1}, {2, 0}};
  ArrayWriter w(out, oid::kInt4, dims);
  EXPECT_EQ(w.start(), 6u);
  for (int i = 0; i < 3; ++i) {
    w.begin_element();
    ASSERT_EQ(encode_int4(i, out), Error::kNone);
    w.end_element();
  }
  w.add_null();
  ASSERT_EQ(w.finish(), Error::kNone);
  EXPECT_EQ(out.substr(6), array_header(2, 1, oid::kInt4, {{2, 1}, {2, 0}}) + int4_elem(0) + int4_elem(1) +
                               int4_elem(2) + kNullElem);
  EXPECT_EQ(text_of(oid::kInt4Array, out.substr(6)), "[1:2][0:1]={{0,1},{2,NULL}}");

  std::string e;
  ASSERT_EQ(encode_array(oid::kText, {}, {}, e), Error::kNone);
  EXPECT_EQ(e, array_header(0, 0, oid::kText, {}));

  const std::optional<std::string_view> elems[] = {std::string_view("a"), std::nullopt};
  const ArrayDim three[] = {{3, 1}};
  e.clear();
  EXPECT_EQ(encode_array(oid::kText, three, elems, e), Error::kValue);  // 2 elements for 3
  const ArrayDim neg[] = {{-1, 1}};
  e.clear();
  EXPECT_EQ(encode_array(oid::kText, neg, {}, e), Error::kValue);
  const ArrayDim seven[7] = {{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};
  e.clear();
  EXPECT_EQ(encode_array(oid::kText, seven, std::span(elems, 1), e), Error::kValue);
  const ArrayDim high[] = {{2, 0x7FFFFFFF}};
  e.clear();
  EXPECT_EQ(encode_array(oid::kText, high, elems, e), Error::kValue);
}

// ---- type table, and every decoder against truncation ------------------------------------------

TEST(PgBinary, TypeTable) {
  EXPECT_EQ(codec_of(oid::kInt4), Codec::kInt4);
  EXPECT_EQ(codec_of(oid::kTimestamptzArray), Codec::kArray);
  EXPECT_EQ(codec_of(oid::kBpchar), Codec::kText);
  EXPECT_EQ(codec_of(oid::kUnknown), Codec::kText);
  EXPECT_EQ(codec_of(829), Codec::kUnknown);  // macaddr
  EXPECT_EQ(element_type_of(oid::kJsonbArray), oid::kJsonb);
  EXPECT_EQ(element_type_of(oid::kInt4), 0u);
  EXPECT_EQ(array_type_of(oid::kUuid), oid::kUuidArray);
  EXPECT_EQ(array_type_of(oid::kUnknown), 0u);
  for (const auto& row : detail::kTypes) {
    if (row.array == 0) continue;
    EXPECT_EQ(element_type_of(row.array), row.type);
    EXPECT_EQ(codec_of(row.array), Codec::kArray);
  }
}

TEST(PgBinary, EveryPrefixOfAFixedSizeValueFails) {
  struct Case {
    Oid type;
    std::string bin;
  };
  const std::vector<Case> cases = {
      {oid::kBool, "\1"},
      {oid::kInt2, be16(7)},
      {oid::kInt4, be32(7)},
      {oid::kInt8, be64(7)},
      {oid::kOid, be32(7)},
      {oid::kFloat4, be32(0x3FC00000)},
      {oid::kFloat8, be64(0)},
      {oid::kNumeric, numeric(0, kPos, 2, {1, 2})},
      {oid::kDate, be32(0)},
      {oid::kTime, be64(0)},
      {oid::kTimetz, be64(0) + be32(0)},
      {oid::kTimestamp, be64(0)},
      {oid::kTimestamptz, be64(0)},
      {oid::kInterval, be64(0) + be64(0)},
      {oid::kUuid, std::string(16, 'u')},
      {oid::kInet, std::string{2, 32, 0, 4} + "abcd"},
      {oid::kCidr, std::string{3, 0, 1, 16} + std::string(16, '\0')},
      {oid::kInt8Array, array_header(1, 0, oid::kInt8, {{1, 1}}) + be32(8) + be64(1)},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(text::value(c.type, c.bin).has_value()) << c.type;
    ASSERT_TRUE(text::reencode(c.type, c.bin).has_value()) << c.type;
    for (std::size_t n = 0; n < c.bin.size(); ++n) {
      // A copy of exactly n bytes: ASan would see a read past it.
      const std::string prefix = c.bin.substr(0, n);
      EXPECT_FALSE(text::value(c.type, prefix).has_value()) << c.type << " prefix " << n;
    }
    EXPECT_FALSE(text::value(c.type, c.bin + "!").has_value()) << c.type;
  }
}
