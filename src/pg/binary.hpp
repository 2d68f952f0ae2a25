// Postgres's binary wire format (the `typsend`/`typreceive` functions of Postgres 15) for the types
// of src/pg/types.hpp: decoders from one field's bytes to small value structs, and encoders from
// those structs to binary parameters. Pure functions: no I/O, no Python, no allocation except
// where a signature has a std::string or std::vector; any thread.
//
// Decoders see bytes from the network: they never read outside `in`, and any input that Postgres's
// own receive function would reject (wrong length, bad sign, digit >= 10000, dates outside
// Postgres's range, ...) returns an Error instead of a value. A NULL field (length -1) is the
// caller's business: these functions only see present values.
// Encoders append to `out` (never clear it), so one buffer can hold every parameter of a statement.
// The `make_*` functions turn the civil values Python has (year, month, day, ...) into the wire
// structs, and validate them; `encode_*` of a struct is then infallible.
// The mapping to Python and every edge-case decision: docs/postgres-types.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pg/types.hpp"

namespace puff::pg {

/** Why a value could not be decoded or encoded. */
enum class Error : std::uint8_t {
  kNone = 0,
  kLength,  // decode: too few or too many bytes for the type
  kValue,  // decode: no value of the type has these bytes; make/encode: an invalid field
  kElementType,  // decode_array: the element type is not the one expected
  kRange,  // make/encode: a valid value that the Postgres type cannot hold
  kSyntax,  // encode_numeric: the text is not a decimal number
};

/** A short English description ("value out of range for the type"), for DataError messages. */
const char* describe(Error e) noexcept;

// ---- scalars ----------------------------------------------------------------------------------
// bool: one byte, any non-zero byte is true (as Postgres's boolrecv). int2/int4/int8/oid: big-endian.
// float4/float8: IEEE 754, big-endian; NaN and the infinities pass through bit for bit.
// text-like types (Codec::kText, kJson) and bytea: the bytes are the value; no function needed.

Error decode_bool(std::string_view in, bool& out) noexcept;
Error decode_int2(std::string_view in, std::int16_t& out) noexcept;
Error decode_int4(std::string_view in, std::int32_t& out) noexcept;
Error decode_int8(std::string_view in, std::int64_t& out) noexcept;
Error decode_oid(std::string_view in, std::uint32_t& out) noexcept;
Error decode_float4(std::string_view in, float& out) noexcept;
Error decode_float8(std::string_view in, double& out) noexcept;
/** jsonb: the version byte must be 1; `text` views the JSON text in `in`. */
Error decode_jsonb(std::string_view in, std::string_view& text) noexcept;

void encode_bool(bool v, std::string& out);
/** kRange when `v` does not fit the type. */
Error encode_int2(std::int64_t v, std::string& out);
Error encode_int4(std::int64_t v, std::string& out);
void encode_int8(std::int64_t v, std::string& out);
Error encode_oid(std::int64_t v, std::string& out);
void encode_float4(float v, std::string& out);
void encode_float8(double v, std::string& out);
/** jsonb: the version byte, then `json_text` (not validated here: the server parses it). */
void encode_jsonb(std::string_view json_text, std::string& out);

// ---- numeric ----------------------------------------------------------------------------------
// Wire: ndigits, weight, sign, dscale (int16 each), then ndigits base-10000 digits. The decoded
// value is its canonical decimal text, exactly Postgres's numeric_out: "-12.3400" (dscale digits
// after the point), "0", "NaN", "Infinity", "-Infinity". Every one of those is a valid argument of
// Python's Decimal(). Up to 131072 digits before the point and 16383 after.

/** Replaces `out` with the value's text. Digits beyond dscale are cut off and -0 prints as 0, as
 *  Postgres does when it receives such a value. */
Error decode_numeric(std::string_view in, std::string& out);

/** Encodes decimal text: [+-]digits[.digits][(e|E)[+-]digits], also ".5" and "5."; "NaN",
 *  "sNaN", "-NaN" (all NaN, as psycopg), "Infinity"/"inf" with an optional sign (any case); no
 *  whitespace. That covers str() of every Python int and Decimal. dscale is the number of digits
 *  after the point once the exponent is applied ("1.50" → 2, "1E+3" → 0, "1E-3" → 3).
 *  kSyntax for anything else; kRange past numeric's limits (131072 integer digits, dscale 16383). */
Error encode_numeric(std::string_view text, std::string& out);

// ---- dates and times --------------------------------------------------------------------------
// date: int32 days since 2000-01-01; timestamp and timestamptz: int64 microseconds since
// 2000-01-01 00:00:00 (UTC for timestamptz); INT_MAX / INT_MIN of each are 'infinity' /
// '-infinity'. time: int64 microseconds since midnight, 0 to 24:00:00 inclusive. timetz: the time,
// then int32 seconds *west* of UTC. interval: int64 microseconds, int32 days, int32 months.
// Calendar: proleptic Gregorian with astronomical years (year 0 is 1 BC, -1 is 2 BC), as Postgres.

enum class Special : std::uint8_t {
  kFinite,
  kInfinity,  // 'infinity': after every date
  kNegInfinity,  // '-infinity'
};

struct CivilDate {
  std::int32_t year = 2000;  // astronomical: 0 = 1 BC
  std::int32_t month = 1;  // 1..12
  std::int32_t day = 1;  // 1..31
  bool operator==(const CivilDate&) const = default;
};

struct TimeOfDay {
  std::int32_t hour = 0;  // 0..23; 24 only in 24:00:00 (a Postgres time, never a timestamp)
  std::int32_t minute = 0;
  std::int32_t second = 0;
  std::int32_t microsecond = 0;
  bool operator==(const TimeOfDay&) const = default;
};

/** Python's date and datetime hold years 1..9999. */
inline constexpr std::int32_t kPythonMinYear = 1;
inline constexpr std::int32_t kPythonMaxYear = 9999;

struct Date {
  Special special = Special::kFinite;
  std::int32_t days = 0;  // the wire value
  CivilDate civil;  // finite dates only (else 0-0-0)
  /** Finite and a year Python's date can hold. */
  bool in_python_range() const noexcept {
    return special == Special::kFinite && civil.year >= kPythonMinYear && civil.year <= kPythonMaxYear;
  }
  bool operator==(const Date&) const = default;
};

struct Time {
  std::int64_t micros = 0;  // the wire value
  TimeOfDay time;
  /** 24:00:00 is a Postgres time but not a Python one. */
  bool in_python_range() const noexcept { return time.hour < 24; }
  bool operator==(const Time&) const = default;
};

struct TimeTz {
  std::int64_t micros = 0;
  TimeOfDay time;  // local time at utc_offset
  std::int32_t utc_offset = 0;  // seconds *east* of UTC, as Python's utcoffset() (the wire is west)
  bool in_python_range() const noexcept { return time.hour < 24; }
  bool operator==(const TimeTz&) const = default;
};

/** timestamp and timestamptz (the same layout; for timestamptz the fields are UTC). */
struct Timestamp {
  Special special = Special::kFinite;
  std::int64_t micros = 0;  // the wire value
  CivilDate date;  // finite timestamps only (else 0-0-0)
  TimeOfDay time;
  bool in_python_range() const noexcept {
    return special == Special::kFinite && date.year >= kPythonMinYear && date.year <= kPythonMaxYear;
  }
  bool operator==(const Timestamp&) const = default;
};

struct Interval {
  std::int64_t micros = 0;
  std::int32_t days = 0;
  std::int32_t months = 0;
  bool operator==(const Interval&) const = default;
};

/** The three fields of a Python timedelta: |days| <= 999999999, 0 <= seconds < 86400,
 *  0 <= microseconds < 1000000. */
struct Timedelta {
  std::int64_t days = 0;
  std::int32_t seconds = 0;
  std::int32_t microseconds = 0;
  bool operator==(const Timedelta&) const = default;
};

Error decode_date(std::string_view in, Date& out) noexcept;
Error decode_time(std::string_view in, Time& out) noexcept;
Error decode_timetz(std::string_view in, TimeTz& out) noexcept;
/** timestamp and timestamptz. */
Error decode_timestamp(std::string_view in, Timestamp& out) noexcept;
/** Any 16 bytes are an interval (Postgres 15 has no infinite intervals). */
Error decode_interval(std::string_view in, Interval& out) noexcept;

/** kValue for a day that is not in the calendar (Feb 30, month 13), kRange outside Postgres's
 *  dates (4714-11-24 BC .. 5874897-12-31). */
Error make_date(const CivilDate& civil, Date& out) noexcept;
Date make_date(Special special) noexcept;
/** kValue unless 0 <= fields < 24:00:00 or exactly 24:00:00. */
Error make_time(const TimeOfDay& time, Time& out) noexcept;
/** As make_time; kRange when |utc_offset| >= 16 hours (Postgres's limit). */
Error make_timetz(const TimeOfDay& time, std::int32_t utc_offset, TimeTz& out) noexcept;
/** `local` at `utc_offset` seconds east of UTC (0 for naive values and timestamp columns); the
 *  result is in UTC. kValue for a bad field (hour 24 included) or |utc_offset| >= 24 h; kRange
 *  outside Postgres's timestamps (4714-11-24 BC .. 294276-12-31 23:59:59.999999 UTC). */
Error make_timestamp(const CivilDate& date, const TimeOfDay& local, std::int32_t utc_offset, Timestamp& out) noexcept;
Timestamp make_timestamp(Special special) noexcept;

/** An interval as a timedelta the way psycopg does it: a month is 30 days and 12 months are 365
 *  days (each computed on |months| with the sign put back), plus the days, plus the microseconds.
 *  kRange when the result is beyond timedelta's ±999999999 days. */
Error interval_to_timedelta(const Interval& in, Timedelta& out) noexcept;
/** A timedelta as an interval (as psycopg): days in days, seconds and microseconds in micros,
 *  no months. Exact for every timedelta. */
Interval interval_from_timedelta(const Timedelta& td) noexcept;

void encode_date(const Date& v, std::string& out);
void encode_time(const Time& v, std::string& out);
void encode_timetz(const TimeTz& v, std::string& out);
void encode_timestamp(const Timestamp& v, std::string& out);
void encode_interval(const Interval& v, std::string& out);

// ---- uuid, inet/cidr --------------------------------------------------------------------------

using Uuid = std::array<std::uint8_t, 16>;

Error decode_uuid(std::string_view in, Uuid& out) noexcept;
void encode_uuid(const Uuid& v, std::string& out);

/** inet and cidr. Wire: family (2 = IPv4, 3 = IPv6), bits, is_cidr, address length (4 or 16),
 *  address. */
struct Inet {
  std::uint8_t family = 4;  // 4 or 6
  std::uint8_t bits = 32;  // netmask length, <= 32 or 128
  bool is_cidr = false;  // from the type, not from the wire byte (Postgres ignores that byte)
  std::array<std::uint8_t, 16> addr{};  // the first 4 bytes for IPv4; the rest are 0
  bool operator==(const Inet&) const = default;
};

/** inet values. */
Error decode_inet(std::string_view in, Inet& out) noexcept;
/** cidr values: also kValue when bits are set right of the mask. */
Error decode_cidr(std::string_view in, Inet& out) noexcept;
/** kValue for a bad family or bits, or (cidr) bits right of the mask. */
Error encode_inet(const Inet& v, std::string& out);
/** Postgres's output text: "192.168.0.1/24", "10.0.0.1", "::1", "::ffff:1.2.3.4", "10.0.0.0/8"
 *  (cidr always shows its bits; inet only when not 32 or 128). Python's ipaddress parses it. */
std::string format_inet(const Inet& v);

// ---- arrays -----------------------------------------------------------------------------------
// Wire: ndim, has-null flag (0 or 1), element type, (size, lower bound) per dimension, then every
// element in row-major order as int32 length (-1 for NULL) and bytes.

inline constexpr int kMaxArrayDims = 6;  // Postgres's MAXDIM

struct ArrayDim {
  std::int32_t size = 0;
  std::int32_t lower_bound = 1;
  bool operator==(const ArrayDim&) const = default;
};

/** A decoded array: shape plus one view per element (nullopt: NULL). The views point into the
 *  decoded bytes, so they live as long as those. */
struct Array {
  Oid element_type = 0;
  int ndim = 0;  // 0: the empty array (any dimension of size 0 is reported as ndim 0)
  std::array<ArrayDim, kMaxArrayDims> dims{};  // the first ndim are used
  std::vector<std::optional<std::string_view>> elements;  // product of the sizes, row-major
};

/** Decodes an array's frame (the elements stay bytes: decode each with its type's function).
 *  `expected_element` (0: any) must match the array's element type, else kElementType. More
 *  than 6 dimensions, a flag other than 0/1, negative sizes, bounds that overflow, or more than
 *  Postgres's 134217727 elements: kValue. Reuses `out.elements`' capacity. */
Error decode_array(std::string_view in, Array& out, Oid expected_element = 0);

/** Writes one array parameter into `out` in place: the header first, then each element as the
 *  caller encodes it straight into `out`:
 *      ArrayWriter w(out, oid::kInt8, dims);
 *      w.begin_element(); encode_int8(v, out); w.end_element();   // or w.add_null();
 *      if (auto e = w.finish(); e != Error::kNone) ...
 *  finish() patches the has-null flag and checks the shape. */
class ArrayWriter {
 public:
  ArrayWriter(std::string& out, Oid element_type, std::span<const ArrayDim> dims);
  void add_null();
  void begin_element();
  void end_element();
  /** kValue when there were more than 6 dimensions, a negative size, bounds past int32, or an
   *  element count other than the product of the sizes; `out` then holds garbage past where the
   *  array began (truncate it to `start()`). */
  Error finish();
  /** Where the array begins in `out`. */
  std::size_t start() const noexcept { return start_; }

 private:
  std::string& out_;
  std::size_t start_;
  std::size_t element_start_ = 0;
  std::uint64_t expected_ = 1;
  std::uint64_t count_ = 0;
  bool has_null_ = false;
  bool bad_shape_ = false;
};

/** Convenience over ArrayWriter for elements already encoded. */
Error encode_array(Oid element_type, std::span<const ArrayDim> dims,
                   std::span<const std::optional<std::string_view>> elements, std::string& out);

}  // namespace puff::pg
