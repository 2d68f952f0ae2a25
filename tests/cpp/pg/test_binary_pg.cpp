// Differential tests of src/pg/binary.hpp against a real Postgres (PUFF_TEST_POSTGRES_URL;
// skipped when unset: `eval "$(bash scripts/services.sh env)"`). libpq, synchronously:
//  1. literals: the server parses each text literal; the decoder's reading of the binary result
//     must print exactly as the server prints the text result, and re-encoding it (through the
//     make_*/encode_* path the bridge uses) must give the server's bytes back;
//  2. parameters: those re-encoded values sent as binary parameters (one by one, then all in one
//     array parameter) must print as the literal did;
//  3. raw bytes: hand-made and random binary values (non-normalized, out of range, malformed) sent
//     as parameters: the server accepts exactly those the decoder accepts, and prints what the
//     decoder reads;
//  4. numeric text: encode_numeric and the server's numeric_in accept the same strings and agree.
// Values are random from a fixed seed (PUFF_TEST_SEED overrides it) plus the edges of each type.
#include <libpq-fe.h>

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "pg/binary.hpp"
#include "pg_text.hpp"

using namespace puff::pg;

namespace {

using Values = std::vector<std::optional<std::string>>;
using ResultPtr = std::unique_ptr<PGresult, decltype(&PQclear)>;

struct Param {
  Oid type;
  std::optional<std::string> value;
  int format;  // 0 text, 1 binary
};

std::string be32(std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  return std::string(b, 4);
}
std::string be64(std::uint64_t v) { return be32(static_cast<std::uint32_t>(v >> 32)) + be32(static_cast<std::uint32_t>(v)); }
std::string be16(std::uint16_t v) { return std::string{static_cast<char>(v >> 8), static_cast<char>(v)}; }

// A text[] literal with every element quoted (array_in's syntax).
std::string text_array_literal(const Values& values) {
  std::string s = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) s += ",";
    if (!values[i]) {
      s += "NULL";
      continue;
    }
    s += '"';
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  }
  return s + "}";
}

class PgServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* url = std::getenv("PUFF_TEST_POSTGRES_URL");
    if (url == nullptr || *url == '\0') return;
    conn_ = PQconnectdb(url);
    if (PQstatus(conn_) != CONNECTION_OK) return;
    ResultPtr r(PQexec(conn_,
                       "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';"
                       "SET extra_float_digits = 1; SET bytea_output = 'hex'; SET client_encoding = 'UTF8'"),
                PQclear);
    if (const char* seed = std::getenv("PUFF_TEST_SEED")) seed_ = std::strtoull(seed, nullptr, 10);
  }
  static void TearDownTestSuite() {
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    if (cases_ > 0) std::cout << "[ pg diff  ] " << cases_ << " differential cases, seed " << seed_ << "\n";
  }
  void SetUp() override {
    if (std::getenv("PUFF_TEST_POSTGRES_URL") == nullptr || *std::getenv("PUFF_TEST_POSTGRES_URL") == '\0')
      GTEST_SKIP() << "PUFF_TEST_POSTGRES_URL is not set (eval \"$(bash scripts/services.sh env)\")";
    ASSERT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
    rng_.seed(seed_ + std::hash<std::string>{}(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  static ResultPtr run(const std::string& sql, const std::vector<Param>& params, int result_format) {
    std::vector<Oid> types;
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const Param& p : params) {
      types.push_back(p.type);
      values.push_back(p.value ? p.value->data() : nullptr);
      lengths.push_back(p.value ? static_cast<int>(p.value->size()) : 0);
      formats.push_back(p.format);
    }
    return ResultPtr(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), types.data(), values.data(),
                                  lengths.data(), formats.data(), result_format),
                     PQclear);
  }

  static Values column(PGresult* r) {
    Values out;
    for (int i = 0; i < PQntuples(r); ++i) {
      if (PQgetisnull(r, i, 0)) out.emplace_back(std::nullopt);
      else out.emplace_back(std::string(PQgetvalue(r, i, 0), static_cast<std::size_t>(PQgetlength(r, i, 0))));
    }
    return out;
  }

  // 1 and 2 above for `literals` of `type_sql` (NULLs allowed).
  static void check_literals(const std::string& type_sql, Oid type, const Values& literals) {
    const std::string sql = "SELECT v::" + type_sql + " FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i";
    const std::vector<Param> params = {{oid::kTextArray, text_array_literal(literals), 0}};
    ResultPtr txt = run(sql, params, 0), bin = run(sql, params, 1);
    ASSERT_EQ(PQresultStatus(txt.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(txt.get());
    ASSERT_EQ(PQresultStatus(bin.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(bin.get());
    const Values texts = column(txt.get()), bins = column(bin.get());
    ASSERT_EQ(texts.size(), literals.size());
    ASSERT_EQ(bins.size(), literals.size());
    Values encoded;
    for (std::size_t i = 0; i < literals.size(); ++i) {
      const std::string what = type_sql + " literal " + (literals[i] ? "'" + *literals[i] + "'" : "NULL");
      ASSERT_EQ(texts[i].has_value(), bins[i].has_value()) << what;
      if (!texts[i]) {
        encoded.emplace_back(std::nullopt);
        continue;
      }
      EXPECT_EQ(text::value(type, *bins[i]), texts[i]) << what;
      const auto again = text::reencode(type, *bins[i]);
      ASSERT_TRUE(again.has_value()) << what << " re-encoded";
      EXPECT_EQ(text::value(type, *again), texts[i]) << what << " re-encoded";
      // Byte for byte too, but for numeric: the server sends ±Infinity with a dscale of 32 (it
      // ignores dscale there), encode_numeric with 0.
      if (type != oid::kNumeric && type != oid::kNumericArray) {
        EXPECT_EQ(again, bins[i]) << what << " re-encoded";
      }
      encoded.push_back(again ? again : bins[i]);
      ResultPtr r = run("SELECT $1::" + type_sql, {{type, *encoded.back(), 1}}, 0);
      ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << what << ": " << PQresultErrorMessage(r.get());
      EXPECT_EQ(column(r.get())[0], texts[i]) << what << " as a binary parameter";
      ++cases_;
    }
    const Oid array_type = array_type_of(type);
    if (array_type == 0 || codec_of(type) == Codec::kArray) return;
    std::string arr;
    const ArrayDim dims[] = {{static_cast<std::int32_t>(encoded.size()), 1}};
    std::vector<std::optional<std::string_view>> views(encoded.begin(), encoded.end());
    ASSERT_EQ(encode_array(type, dims, views, arr), Error::kNone);
    ResultPtr r = run("SELECT v::text FROM unnest($1::" + type_sql + "[]) WITH ORDINALITY AS u(v, i) ORDER BY i",
                      {{array_type, arr, 1}}, 0);
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << type_sql << "[]: " << PQresultErrorMessage(r.get());
    ResultPtr expect = run("SELECT v::" + type_sql + "::text FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i",
                           params, 0);
    ASSERT_EQ(PQresultStatus(expect.get()), PGRES_TUPLES_OK) << PQresultErrorMessage(expect.get());
    EXPECT_EQ(column(r.get()), column(expect.get())) << type_sql << "[] parameter";
    ++cases_;
  }

  // 3 above: the server accepts `raw` as a binary parameter iff the decoder does, and agrees.
  static void check_raw(const std::string& type_sql, Oid type, const std::vector<std::string>& raws) {
    for (const std::string& raw : raws) {
      ResultPtr r = run("SELECT $1::" + type_sql, {{type, raw, 1}}, 0);
      const auto ours = text::value(type, raw);
      const bool server_ok = PQresultStatus(r.get()) == PGRES_TUPLES_OK;
      EXPECT_EQ(ours.has_value(), server_ok) << type_sql << " raw " << text::bytea(raw) << ": server says "
                                             << (server_ok ? column(r.get())[0].value_or("NULL") : PQresultErrorMessage(r.get()));
      if (ours && server_ok) {
        EXPECT_EQ(*ours, column(r.get())[0]) << type_sql << " raw " << text::bytea(raw);
      }
      ++cases_;
    }
  }

  std::int64_t uniform(std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng_); }
  bool chance(int percent) { return uniform(0, 99) < percent; }
  std::string digits(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('0' + uniform(0, 9));
    return s;
  }

  static inline PGconn* conn_ = nullptr;
  static inline std::uint64_t seed_ = 20240601;
  static inline std::size_t cases_ = 0;
  std::mt19937_64 rng_;
};

constexpr int kRandom = 200;  // random values per type

TEST_F(PgServer, Integers) {
  Values b = {"t", "f", "true", "0", std::nullopt};
  check_literals("bool", oid::kBool, b);
  for (auto [sql, type, lo, hi] : {std::tuple{"int2", oid::kInt2, std::int64_t{-32768}, std::int64_t{32767}},
                                   std::tuple{"int4", oid::kInt4, std::int64_t{INT32_MIN}, std::int64_t{INT32_MAX}},
                                   std::tuple{"int8", oid::kInt8, std::numeric_limits<std::int64_t>::min(),
                                              std::numeric_limits<std::int64_t>::max()},
                                   std::tuple{"oid", oid::kOid, std::int64_t{0}, std::int64_t{UINT32_MAX}}}) {
    Values v = {std::to_string(lo), std::to_string(hi), "0", "-1", std::nullopt};
    if (type == oid::kOid) v[3] = "1";
    for (int i = 0; i < kRandom; ++i) v.push_back(std::to_string(uniform(lo, hi)));
    check_literals(sql, type, v);
  }
}

TEST_F(PgServer, Floats) {
  Values d = {"NaN", "Infinity", "-Infinity", "0", "-0", "1e308", "1.7976931348623157e308", "5e-324", "2.2250738585072014e-308",
              "0.1", "1e15", "123456789012345680000", "0.0001", "0.00001", std::nullopt};
  Values f = {"NaN", "Infinity", "-Infinity", "0", "-0", "3.4028235e38", "1e-45", "1.1754944e-38", "0.1", "1e6", "1234567",
              std::nullopt};
  for (int i = 0; i < kRandom; ++i) {
    const auto bits = static_cast<std::uint64_t>(uniform(std::numeric_limits<std::int64_t>::min(),
                                                         std::numeric_limits<std::int64_t>::max()));
    d.push_back(text::floating(std::bit_cast<double>(bits)));
    f.push_back(text::floating(std::bit_cast<float>(static_cast<std::uint32_t>(bits))));
    // Plain decimals too, the common case.
    d.push_back(std::to_string(uniform(-1000000, 1000000)) + "." + digits(static_cast<std::size_t>(uniform(1, 6))));
  }
  check_literals("float8", oid::kFloat8, d);
  check_literals("float4", oid::kFloat4, f);
}

TEST_F(PgServer, NumericLiterals) {
  Values v = {"0", "0.000", "-0.0", "NaN", "Infinity", "-Infinity", "1e-16383", "-1e-16383", "9.99e131071",
              std::string(1000, '9'), "-" + std::string(1000, '1') + "." + std::string(1000, '2'),
              "0." + std::string(999, '0') + "1", "10000", "0.0001", "99999999", "100000000", "1e100", std::nullopt};
  for (int i = 0; i < kRandom; ++i) {
    std::string s = chance(50) ? "-" : "";
    s += chance(20) ? "0" : digits(static_cast<std::size_t>(uniform(1, chance(10) ? 300 : 30)));
    const auto scale = uniform(0, chance(10) ? 200 : 20);
    if (scale > 0) s.append(".").append(digits(static_cast<std::size_t>(scale)));
    v.push_back(s);
  }
  check_literals("numeric", oid::kNumeric, v);
}

TEST_F(PgServer, NumericRawBytes) {
  // Non-normalized and malformed forms: leading/trailing zero digits, digits past dscale, -0,
  // huge and tiny weights, bad signs, digits >= 10000, dscale with bit 14 set, short data.
  auto num = [](std::int16_t weight, std::uint16_t sign, std::uint16_t dscale, std::vector<std::uint16_t> d) {
    std::string s = be16(static_cast<std::uint16_t>(d.size())) + be16(static_cast<std::uint16_t>(weight)) + be16(sign) + be16(dscale);
    for (auto x : d) s += be16(x);
    return s;
  };
  std::vector<std::string> raws = {
      num(0, 0, 0, {}), num(0, 0x4000, 0, {}), num(3, 0, 2, {0, 0, 12, 3400}), num(-1, 0x4000, 2, {99}),
      num(-1, 0, 2, {1234, 5678}), num(1, 0, 0, {1, 0, 0, 0}), num(0, 0xC000, 0, {}), num(0, 0xD000, 5, {}),
      num(0, 0xF000, 0, {1}), num(0, 0x8000, 0, {}), num(0, 0xC000, 0, {10000}), num(0, 0, 0x4000, {}),
      num(0, 0, 0x3FFF, {1}), num(32767, 0, 0, {1}), num(-32768, 0, 16383, {1}), num(-4096, 0x4000, 16383, {1, 2}),
      num(0, 0, 0, {10000}), num(0, 0, 0, {9999, 9999}), num(5, 0x4000, 3, {0}), std::string(7, '\0'),
      num(0, 0, 0, {1}) + "x", num(0, 0, 0, {1, 2}).substr(0, 10)};
  const std::uint16_t signs[] = {0, 0x4000, 0, 0x4000, 0xC000, 0xD000, 0xF000, 0x1000};
  for (int i = 0; i < kRandom; ++i) {
    std::vector<std::uint16_t> d(static_cast<std::size_t>(uniform(0, 6)));
    for (auto& x : d) x = static_cast<std::uint16_t>(chance(3) ? uniform(10000, 65535) : chance(20) ? 0 : uniform(0, 9999));
    const auto weight = static_cast<std::int16_t>(chance(10) ? uniform(-32768, 32767) : uniform(-8, 8));
    const auto dscale = static_cast<std::uint16_t>(chance(3) ? uniform(0x3FFF, 0xFFFF) : uniform(0, 40));
    raws.push_back(num(weight, signs[uniform(0, 7)], dscale, d));
  }
  check_raw("numeric", oid::kNumeric, raws);
}

TEST_F(PgServer, NumericTextEncoder) {
  std::vector<std::string> texts = {"0", "-0", "+5", ".5", "5.", "-.5", "00012.50", "1E+3", "1e3", "1.20E+1", "-0E-7",
                                    "1.23E-7", "1e131071", "1e131072", "9.9e131071", "1e-16383", "1e-16384", "0E-16383",
                                    "0e-16384", "123e-16386", "1e-999999999999", "NaN", "nan", "Infinity", "-Infinity",
                                    "inf", "-inf", "+Infinity", "", "-", ".", "e5", "1e", "1e+", "1.2.3", "0x1", "1_0",
                                    "--1", "1e5.5", "Infinityx", std::string(2000, '3') + "e-1000"};
  for (int i = 0; i < kRandom; ++i) {
    std::string s = chance(30) ? "-" : chance(10) ? "+" : "";
    s += digits(static_cast<std::size_t>(uniform(chance(10) ? 0 : 1, 25)));
    if (chance(50)) s.append(".").append(digits(static_cast<std::size_t>(uniform(0, 25))));
    if (chance(50)) {
      s.append(chance(50) ? "e" : "E").append(chance(50) ? "-" : chance(50) ? "+" : "");
      s.append(std::to_string(chance(10) ? uniform(16000, 140000) : uniform(0, 40)));
    }
    texts.push_back(s);
  }
  for (const std::string& t : texts) {
    std::string bin;
    const Error e = encode_numeric(t, bin);
    ResultPtr server = run("SELECT $1::numeric", {{oid::kText, t, 0}}, 0);
    const bool server_ok = PQresultStatus(server.get()) == PGRES_TUPLES_OK;
    EXPECT_EQ(e == Error::kNone, server_ok) << "'" << t << "': " << describe(e) << " / "
                                            << (server_ok ? "" : PQresultErrorMessage(server.get()));
    if (e == Error::kNone && server_ok) {
      ResultPtr ours = run("SELECT $1::numeric", {{oid::kNumeric, bin, 1}}, 0);
      ASSERT_EQ(PQresultStatus(ours.get()), PGRES_TUPLES_OK) << t << ": " << PQresultErrorMessage(ours.get());
      EXPECT_EQ(column(ours.get())[0], column(server.get())[0]) << t;
      std::string decoded;
      ASSERT_EQ(decode_numeric(bin, decoded), Error::kNone);
      EXPECT_EQ(decoded, column(server.get())[0]) << t;
    }
    ++cases_;
  }
}

TEST_F(PgServer, TextLike) {
  static const char* const kPieces[] = {"a", "Z", "0", " ", "\"", "\\", "{", "}", ",", "'", "é", "漢", "🙂", "\t", "\n", "NULL", "x y"};
  auto random_text = [&](std::size_t max) {
    std::string s;
    const auto n = uniform(0, static_cast<std::int64_t>(max));
    for (std::int64_t i = 0; i < n; ++i) s += kPieces[uniform(0, std::size(kPieces) - 1)];
    return s;
  };
  Values text = {"", "NULL", "null", " padded ", std::string(10000, 'x'), std::nullopt};
  Values name = {"", "a", std::string(63, 'n'), std::string(70, 'n'), std::nullopt};
  Values bpchar = {"", "a", "abc       ", "é", std::nullopt};
  Values chr = {"a", "Z", " ", std::nullopt};
  for (int i = 0; i < kRandom; ++i) {
    text.push_back(random_text(20));
    name.push_back(random_text(12));
    std::string short_text;
    for (int k = 0; k < uniform(0, 10); ++k) short_text += static_cast<char>(uniform('a', 'z'));
    bpchar.push_back(short_text);
    chr.push_back(std::string(1, static_cast<char>(uniform(0x21, 0x7E))));
  }
  check_literals("text", oid::kText, text);
  check_literals("varchar", oid::kVarchar, text);
  check_literals("name", oid::kName, name);
  check_literals("char(10)", oid::kBpchar, bpchar);
  check_literals("\"char\"", oid::kChar, chr);
}

TEST_F(PgServer, ByteaAndUuid) {
  Values bytea = {"\\x", "\\x00", "\\xff00ff", std::nullopt};
  Values uuid = {"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
                 "{123E4567-E89B-12D3-A456-426614174000}", std::nullopt};
  for (int i = 0; i < kRandom; ++i) {
    std::string b;
    for (int k = 0; k < uniform(0, 64); ++k) b += static_cast<char>(uniform(0, 255));
    bytea.push_back(text::bytea(b));
    Uuid u;
    for (auto& x : u) x = static_cast<std::uint8_t>(uniform(0, 255));
    uuid.push_back(text::uuid(u));
  }
  check_literals("bytea", oid::kBytea, bytea);
  check_literals("uuid", oid::kUuid, uuid);
}

TEST_F(PgServer, Json) {
  Values v = {"null", "true", "1", "-1.5e300", "\"a\\\"b\\u00e9\"", "[]", "{}", "[1, [2, [3, {\"k\": null}]]]",
              "{\"b\": 1, \"a\": 2, \"b\": 3}", "  {\"x\" :\n [ 1 ,2 ] }  ", "\"🙂\"", std::nullopt};
  auto random_json = [&](auto& self, int depth) -> std::string {
    switch (depth > 3 ? uniform(0, 3) : uniform(0, 5)) {
      case 0:
        return std::to_string(uniform(-100000, 100000)) + (chance(50) ? "." + digits(3) : "");
      case 1:
        return chance(50) ? "true" : "null";
      case 2:
        return "\"s" + digits(static_cast<std::size_t>(uniform(0, 5))) + (chance(20) ? "\\n\\\"" : "") + "\"";
      case 3:
        return "\"é漢\"";
      case 4: {
        std::string s = "[";
        for (int i = 0, n = static_cast<int>(uniform(0, 4)); i < n; ++i) s += (i ? ", " : "") + self(self, depth + 1);
        return s + "]";
      }
      default: {
        std::string s = "{";
        for (int i = 0, n = static_cast<int>(uniform(0, 4)); i < n; ++i)
          s += (i ? ", \"k" : "\"k") + std::to_string(uniform(0, 5)) + "\": " + self(self, depth + 1);
        return s + "}";
      }
    }
  };
  for (int i = 0; i < kRandom; ++i) v.push_back(random_json(random_json, 0));
  check_literals("json", oid::kJson, v);
  check_literals("jsonb", oid::kJsonb, v);
}

TEST_F(PgServer, Dates) {
  Values v = {"infinity", "-infinity", "0001-01-01", "9999-12-31", "10000-01-01", "0001-12-31 BC", "4714-11-24 BC",
              "5874897-12-31", "2000-02-29", "1900-03-01", std::nullopt};
  std::vector<std::string> raws = {be32(0x7FFFFFFF), be32(0x80000000), be32(static_cast<std::uint32_t>(-2451545)),
                                   be32(static_cast<std::uint32_t>(-2451546)), be32(2145031948), be32(2145031949),
                                   be32(0x7FFFFFFE), be32(0x80000001), be32(0).substr(0, 3), be64(0)};
  for (int i = 0; i < kRandom; ++i) {
    Date d;
    const auto days = static_cast<std::int32_t>(chance(50) ? uniform(-800000, 3000000) : uniform(-2451545, 2145031948));
    ASSERT_EQ(decode_date(be32(static_cast<std::uint32_t>(days)), d), Error::kNone);
    v.push_back(text::date(d));
    raws.push_back(be32(static_cast<std::uint32_t>(uniform(INT32_MIN, INT32_MAX))));
  }
  check_literals("date", oid::kDate, v);
  check_raw("date", oid::kDate, raws);
}

TEST_F(PgServer, Times) {
  Values t = {"00:00:00", "24:00:00", "23:59:59.999999", "12:34:56.5", std::nullopt};
  Values tz = {"00:00:00+00", "24:00:00-15:59", "12:00:00+05:30", "01:02:03.000004-08", "00:00+15:59:59", std::nullopt};
  std::vector<std::string> raw_t = {be64(0), be64(86400000000), be64(86400000001), be64(static_cast<std::uint64_t>(-1)), be32(0)};
  std::vector<std::string> raw_tz = {be64(0) + be32(57599), be64(0) + be32(57600), be64(0) + be32(static_cast<std::uint32_t>(-57599)),
                                     be64(0) + be32(static_cast<std::uint32_t>(-57600)), be64(86400000000) + be32(0),
                                     be64(86400000001) + be32(0), be64(0)};
  for (int i = 0; i < kRandom; ++i) {
    const std::int64_t us = chance(20) ? uniform(0, 86400) * 1000000 : uniform(0, 86400000000);
    Time v;
    ASSERT_EQ(decode_time(be64(static_cast<std::uint64_t>(us)), v), Error::kNone);
    t.push_back(text::time_of_day(v.time));
    const auto offset = static_cast<std::int32_t>(chance(50) ? uniform(-57599, 57599) : uniform(-15, 15) * 1800);
    tz.push_back(text::time_of_day(v.time) + text::zone(offset));
    raw_t.push_back(be64(static_cast<std::uint64_t>(uniform(-10, 10) + (chance(50) ? 0 : 86400000000))));
    raw_tz.push_back(be64(static_cast<std::uint64_t>(us)) + be32(static_cast<std::uint32_t>(uniform(-60000, 60000))));
  }
  check_literals("time", oid::kTime, t);
  check_literals("timetz", oid::kTimetz, tz);
  check_raw("time", oid::kTime, raw_t);
  check_raw("timetz", oid::kTimetz, raw_tz);
}

TEST_F(PgServer, Timestamps) {
  constexpr std::int64_t kMin = -211813488000000000, kEnd = 9223371331200000000;
  Values ts = {"infinity", "-infinity", "2000-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59.999999",
               "10000-01-01 00:00:00", "4714-11-24 00:00:00 BC", "294276-12-31 23:59:59.999999", "1999-12-31 23:59:59.5",
               std::nullopt};
  Values tstz = {"infinity", "-infinity", "2000-01-01 00:00:00+00", "2024-06-01 12:00:00+05:30",
                 "0001-01-01 00:30:00+01", "9999-12-31 23:00:00-01", "294276-12-31 23:59:59.999999+00",
                 "4714-11-24 00:00:00+00 BC", std::nullopt};
  std::vector<std::string> raws = {be64(static_cast<std::uint64_t>(kMin)), be64(static_cast<std::uint64_t>(kMin - 1)),
                                   be64(static_cast<std::uint64_t>(kEnd - 1)), be64(static_cast<std::uint64_t>(kEnd)),
                                   be64(0x7FFFFFFFFFFFFFFF), be64(0x8000000000000000), be64(0x7FFFFFFFFFFFFFFE), be32(0)};
  for (int i = 0; i < kRandom; ++i) {
    // Half across Postgres's whole range, half across Python's years 1..9999.
    const std::int64_t us = chance(50) ? uniform(kMin, kEnd - 1) : uniform(-63082281600000000, 252455615999999999);
    Timestamp v;
    ASSERT_EQ(decode_timestamp(be64(static_cast<std::uint64_t>(us)), v), Error::kNone);
    ts.push_back(text::timestamp(v, false));
    tstz.push_back(text::timestamp(v, true));
    raws.push_back(be64(static_cast<std::uint64_t>(uniform(std::numeric_limits<std::int64_t>::min(),
                                                           std::numeric_limits<std::int64_t>::max()))));
  }
  check_literals("timestamp", oid::kTimestamp, ts);
  check_literals("timestamptz", oid::kTimestamptz, tstz);
  check_raw("timestamp", oid::kTimestamp, raws);
  check_raw("timestamptz", oid::kTimestamptz, raws);

  // Aware parameters: make_timestamp with an offset must land where the server puts the literal.
  for (int i = 0; i < kRandom; ++i) {
    const CivilDate date{static_cast<std::int32_t>(uniform(1, 9999)), static_cast<std::int32_t>(uniform(1, 12)),
                         static_cast<std::int32_t>(uniform(1, 28))};
    const TimeOfDay local{static_cast<std::int32_t>(uniform(0, 23)), static_cast<std::int32_t>(uniform(0, 59)),
                          static_cast<std::int32_t>(uniform(0, 59)), static_cast<std::int32_t>(uniform(0, 999999))};
    // (Python allows offsets up to 24 h, Postgres's text input up to 16 h; the unit tests cover the rest.)
    const auto offset = static_cast<std::int32_t>(uniform(-57599, 57599));
    Timestamp m;
    ASSERT_EQ(make_timestamp(date, local, offset, m), Error::kNone);
    std::string bin;
    encode_timestamp(m, bin);
    const std::string literal = text::civil_date(date) + " " + text::time_of_day(local) + text::zone(offset);
    ResultPtr ours = run("SELECT $1::timestamptz", {{oid::kTimestamptz, bin, 1}}, 0);
    ResultPtr theirs = run("SELECT $1::timestamptz", {{oid::kText, literal, 0}}, 0);
    ASSERT_EQ(PQresultStatus(theirs.get()), PGRES_TUPLES_OK) << literal << PQresultErrorMessage(theirs.get());
    EXPECT_EQ(column(ours.get()), column(theirs.get())) << literal;
    ++cases_;
  }
}

TEST_F(PgServer, Intervals) {
  Values v = {"00:00:00", "1 year 2 mons 3 days 04:05:06.789", "-1 mons -1 days", "-1 days +01:00:00", "-00:00:00.000001",
              "178956970 years 7 mons", "-178956970 years -8 mons", "2147483647 days", "-2147483648 days",
              "2562047788:00:54.775807", std::nullopt};
  std::vector<std::string> raws;
  for (int i = 0; i < kRandom; ++i) {
    Interval iv;
    iv.months = static_cast<std::int32_t>(chance(30) ? 0 : uniform(-2000, 2000));
    iv.days = static_cast<std::int32_t>(chance(30) ? 0 : uniform(-40000, 40000));
    iv.micros = chance(30) ? 0 : uniform(-1000000000000, 1000000000000);
    v.push_back(text::interval(iv));
    raws.push_back(be64(static_cast<std::uint64_t>(uniform(std::numeric_limits<std::int64_t>::min(),
                                                           std::numeric_limits<std::int64_t>::max()))) +
                   be32(static_cast<std::uint32_t>(uniform(INT32_MIN, INT32_MAX))) +
                   be32(static_cast<std::uint32_t>(uniform(INT32_MIN, INT32_MAX))));
  }
  raws.push_back(std::string(15, '\0'));
  check_literals("interval", oid::kInterval, v);
  check_raw("interval", oid::kInterval, raws);
}

TEST_F(PgServer, Networks) {
  Values inet = {"0.0.0.0", "255.255.255.255/0", "192.168.0.1/24", "::", "::1", "::ffff:1.2.3.4", "::1.2.3.4", "::2",
                 "1::", "1:0:0:1:0:0:1:1", "2001:db8::/32", "fe80::1/64", std::nullopt};
  Values cidr = {"0.0.0.0/0", "10.0.0.0/8", "10.1.2.3/32", "::/0", "2001:db8::/32", "::ffff:0.0.0.0/96", std::nullopt};
  std::vector<std::string> raws;
  for (int i = 0; i < kRandom; ++i) {
    Inet a;
    a.family = chance(50) ? 4 : 6;
    const int max = a.family == 4 ? 32 : 128;
    a.bits = static_cast<std::uint8_t>(chance(30) ? max : uniform(0, max));
    for (int k = 0; k < (a.family == 4 ? 4 : 16); ++k)
      a.addr[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(chance(40) ? 0 : uniform(0, 255));
    inet.push_back(format_inet(a));
    for (int k = 0; k < 16; ++k) {  // clear host bits for cidr
      const int keep = a.bits - k * 8;
      if (keep < 8) a.addr[static_cast<std::size_t>(k)] &= static_cast<std::uint8_t>(keep <= 0 ? 0 : 0xFF << (8 - keep));
    }
    a.is_cidr = true;
    cidr.push_back(format_inet(a));
    std::string raw = {static_cast<char>(uniform(1, 4)), static_cast<char>(uniform(0, 130)),
                       static_cast<char>(uniform(0, 1)), static_cast<char>(chance(80) ? (a.family == 4 ? 4 : 16) : uniform(0, 17))};
    raw[0] = chance(80) ? (a.family == 4 ? 2 : 3) : raw[0];
    for (int k = 0, n = chance(90) ? static_cast<unsigned char>(raw[3]) : static_cast<int>(uniform(0, 17)); k < n; ++k)
      raw += static_cast<char>(chance(50) ? 0 : uniform(0, 255));
    raws.push_back(raw);
  }
  check_literals("inet", oid::kInet, inet);
  check_literals("cidr", oid::kCidr, cidr);
  check_raw("inet", oid::kInet, raws);
  check_raw("cidr", oid::kCidr, raws);
}

TEST_F(PgServer, Arrays) {
  // Random arrays (0-3 dimensions, NULLs, lower bounds other than 1) of every element type, the
  // elements taken from literals the server has accepted as that type.
  struct ElementType {
    const char* sql;
    Oid type;
    Values pool;
  };
  const std::vector<ElementType> types = {
      {"bool", oid::kBool, {"t", "f"}},
      {"int2", oid::kInt2, {"1", "-32768", "32767"}},
      {"int4", oid::kInt4, {"0", "-7", "2147483647"}},
      {"int8", oid::kInt8, {"-9223372036854775808", "42"}},
      {"oid", oid::kOid, {"4294967295", "0"}},
      {"float4", oid::kFloat4, {"1.5", "NaN", "-Infinity", "1e-45"}},
      {"float8", oid::kFloat8, {"0.1", "Infinity", "-0", "1e+300"}},
      {"numeric", oid::kNumeric, {"NaN", "-1.500", "0", "123456789012345678901234567890.1", "Infinity"}},
      {"text", oid::kText, {"", "NULL", "a,b", "{x}", "q\"uote", "back\\slash", " sp ", "é"}},
      {"varchar", oid::kVarchar, {"v", "w x"}},
      {"name", oid::kName, {"pg_class", ""}},
      {"char(3)", oid::kBpchar, {"a", "abc"}},
      {"\"char\"", oid::kChar, {"x", "\""}},
      {"bytea", oid::kBytea, {"\\x", "\\x00ff", "\\x7b7d"}},
      {"json", oid::kJson, {"{\"a\": [1, null]}", "\"s\"", "null"}},
      {"jsonb", oid::kJsonb, {"{\"a\": [1, null]}", "[]", "3.0"}},
      {"date", oid::kDate, {"infinity", "2000-01-01", "0001-12-31 BC", "10000-01-01"}},
      {"time", oid::kTime, {"24:00:00", "01:02:03.4"}},
      {"timetz", oid::kTimetz, {"01:02:03+05:30", "00:00:00-15:59:59"}},
      {"timestamp", oid::kTimestamp, {"-infinity", "2000-01-01 00:00:00", "0005-06-07 08:09:10.5 BC"}},
      {"timestamptz", oid::kTimestamptz, {"infinity", "2024-06-01 12:00:00+05:30"}},
      {"interval", oid::kInterval, {"1 year -2 days +03:00:00", "00:00:00"}},
      {"uuid", oid::kUuid, {"123e4567-e89b-12d3-a456-426614174000"}},
      {"inet", oid::kInet, {"::1", "10.0.0.1/8"}},
      {"cidr", oid::kCidr, {"10.0.0.0/8", "::/0"}},
  };
  for (const ElementType& et : types) {
    Values arrays = {"{}", "{NULL}", "{{NULL,NULL}}", "[0:0]={NULL}", std::nullopt};
    for (int i = 0; i < kRandom / 4; ++i) {
      const int ndim = static_cast<int>(uniform(1, 3));
      std::vector<std::int32_t> size(3), lb(3);
      bool bounds = false;
      for (int d = 0; d < ndim; ++d) {
        size[d] = static_cast<std::int32_t>(uniform(1, 3));
        lb[d] = chance(70) ? 1 : static_cast<std::int32_t>(uniform(-5, 5));
        bounds |= lb[d] != 1;
      }
      std::string s;
      if (bounds) {
        for (int d = 0; d < ndim; ++d) {
          s.append("[").append(std::to_string(lb[d])).append(":");
          s.append(std::to_string(lb[d] + size[d] - 1)).append("]");
        }
        s += "=";
      }
      auto walk = [&](auto& self, int d) -> void {
        s += "{";
        for (int k = 0; k < size[d]; ++k) {
          if (k) s += ",";
          if (d + 1 < ndim) {
            self(self, d + 1);
            continue;
          }
          const auto& e = chance(20) ? std::optional<std::string>() : et.pool[static_cast<std::size_t>(uniform(0, static_cast<std::int64_t>(et.pool.size()) - 1))];
          if (!e) {
            s += "NULL";
            continue;
          }
          s += '"';
          for (char c : *e) {
            if (c == '"' || c == '\\') s += '\\';
            s += c;
          }
          s += '"';
        }
        s += "}";
      };
      walk(walk, 0);
      arrays.push_back(s);
    }
    check_literals(std::string(et.sql) + "[]", array_type_of(et.type), arrays);
  }
  // Raw frames: lower bounds at the int32 edge, bad flags and dimensions, element type mismatch,
  // lengths that lie.
  auto hdr = [](std::int32_t ndim, std::int32_t flags, Oid elem) {
    return be32(static_cast<std::uint32_t>(ndim)) + be32(static_cast<std::uint32_t>(flags)) + be32(elem);
  };
  auto dim = [](std::int32_t size, std::int32_t lb) { return be32(static_cast<std::uint32_t>(size)) + be32(static_cast<std::uint32_t>(lb)); };
  const std::string one = be32(4) + be32(1);
  const std::string null = be32(0xFFFFFFFF);
  std::vector<std::string> raws = {
      hdr(0, 0, oid::kInt4), hdr(0, 1, oid::kInt4), hdr(1, 0, oid::kInt4) + dim(0, 1), hdr(1, 0, oid::kInt4) + dim(1, 1) + one,
      hdr(1, 0, oid::kInt4) + dim(1, 0x7FFFFFFE) + one, hdr(1, 0, oid::kInt4) + dim(2, 0x7FFFFFFE) + one + one,
      hdr(1, 0, oid::kInt4) + dim(1, INT32_MIN) + one, hdr(1, 2, oid::kInt4) + dim(1, 1) + one,
      hdr(1, 0, oid::kInt8) + dim(1, 1) + one, hdr(7, 0, oid::kInt4), hdr(-1, 0, oid::kInt4),
      hdr(1, 0, oid::kInt4) + dim(-1, 1), hdr(1, 0, oid::kInt4) + dim(2, 1) + one,
      hdr(1, 0, oid::kInt4) + dim(1, 1) + one + "x", hdr(1, 0, oid::kInt4) + dim(1, 1) + be32(0xFFFFFFFE),
      hdr(1, 0, oid::kInt4) + dim(1, 1) + null, hdr(2, 1, oid::kInt4) + dim(1, 1) + dim(2, -3) + null + one,
      hdr(2, 0, oid::kInt4) + dim(0, 1) + dim(5, 1), hdr(1, 0, oid::kInt4) + dim(1, 1) + be32(3) + "abc",
      hdr(1, 0, oid::kInt4), hdr(1, 0, oid::kInt4).substr(0, 11)};
  check_raw("int4[]", oid::kInt4Array, raws);
}

}  // namespace
