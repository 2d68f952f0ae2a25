// date, time, timetz, timestamp(tz), interval. Ranges and checks follow Postgres 15's receive
// functions (date_recv, time_recv, timetz_recv, timestamp_recv) and src/include/datatype/timestamp.h.
#include <cstdint>
#include <limits>
#include <string>

#include "pg/binary.hpp"
#include "pg/wire.hpp"

namespace puff::pg {

namespace {

constexpr std::int64_t kUsecsPerSecond = 1'000'000;
constexpr std::int64_t kUsecsPerDay = 86'400 * kUsecsPerSecond;
constexpr std::int64_t kUnixToPostgresDays = 10'957;  // 1970-01-01 .. 2000-01-01
// Postgres's dates: 4714-11-24 BC (Julian day 0) up to, not including, 5874898-01-01.
constexpr std::int64_t kMinDate = -2'451'545;
constexpr std::int64_t kEndDate = 2'147'483'494 - 2'451'545;
// Postgres's timestamps: 4714-11-24 BC 00:00 up to, not including, 294277-01-01 00:00.
constexpr std::int64_t kMinTimestamp = -211'813'488'000'000'000;
constexpr std::int64_t kEndTimestamp = 9'223'371'331'200'000'000;
constexpr std::int32_t kTzDispLimit = 16 * 3600;  // TZDISP_LIMIT: |zone| < 16 hours
constexpr std::int64_t kTimedeltaMaxDays = 999'999'999;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, days since 1970-01-01).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

constexpr CivilDate civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return CivilDate{static_cast<std::int32_t>(y + (m <= 2)), static_cast<std::int32_t>(m), static_cast<std::int32_t>(d)};
}
static_assert(days_from_civil(2000, 1, 1) == kUnixToPostgresDays);
static_assert(civil_from_days(-719468) == CivilDate{0, 3, 1});

constexpr bool is_leap(std::int64_t y) noexcept { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

bool valid_civil(const CivilDate& c) noexcept {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (c.month < 1 || c.month > 12 || c.day < 1) return false;
  const int dim = kDays[c.month - 1] + (c.month == 2 && is_leap(c.year) ? 1 : 0);
  return c.day <= dim;
}

// Days since 2000-01-01 of a valid civil date.
std::int64_t postgres_days(const CivilDate& c) noexcept {
  return days_from_civil(c.year, static_cast<unsigned>(c.month), static_cast<unsigned>(c.day)) - kUnixToPostgresDays;
}

// Fields of 0 <= micros <= kUsecsPerDay (24:00:00 included).
TimeOfDay time_of_day(std::int64_t micros) noexcept {
  TimeOfDay t;
  t.hour = static_cast<std::int32_t>(micros / (3600 * kUsecsPerSecond));
  micros %= 3600 * kUsecsPerSecond;
  t.minute = static_cast<std::int32_t>(micros / (60 * kUsecsPerSecond));
  micros %= 60 * kUsecsPerSecond;
  t.second = static_cast<std::int32_t>(micros / kUsecsPerSecond);
  t.microsecond = static_cast<std::int32_t>(micros % kUsecsPerSecond);
  return t;
}

bool valid_time(const TimeOfDay& t, bool allow_24) noexcept {
  if (allow_24 && t.hour == 24) return t.minute == 0 && t.second == 0 && t.microsecond == 0;
  return t.hour >= 0 && t.hour < 24 && t.minute >= 0 && t.minute < 60 && t.second >= 0 && t.second < 60 &&
         t.microsecond >= 0 && t.microsecond < kUsecsPerSecond;
}

std::int64_t time_micros(const TimeOfDay& t) noexcept {
  return ((static_cast<std::int64_t>(t.hour) * 60 + t.minute) * 60 + t.second) * kUsecsPerSecond + t.microsecond;
}

// Floor division and the matching remainder (0 <= rem < b) for b > 0, without overflow for any a.
std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t q = a / b;
  return a % b < 0 ? q - 1 : q;
}
std::int64_t floor_mod(std::int64_t a, std::int64_t b) noexcept {
  const std::int64_t r = a % b;
  return r < 0 ? r + b : r;
}

Timestamp finite_timestamp(std::int64_t micros) noexcept {
  Timestamp t;
  t.micros = micros;
  const std::int64_t days = floor_div(micros, kUsecsPerDay);
  t.date = civil_from_days(days + kUnixToPostgresDays);
  t.time = time_of_day(floor_mod(micros, kUsecsPerDay));
  return t;
}

}  // namespace

// ---- decoders ---------------------------------------------------------------------------------

Error decode_date(std::string_view in, Date& out) noexcept {
  if (in.size() != 4) return Error::kLength;
  const auto days = static_cast<std::int32_t>(wire::load32(in.data()));
  if (days == std::numeric_limits<std::int32_t>::max()) {
    out = make_date(Special::kInfinity);
  } else if (days == std::numeric_limits<std::int32_t>::min()) {
    out = make_date(Special::kNegInfinity);
  } else {
    if (days < kMinDate || days >= kEndDate) return Error::kValue;
    out = Date{Special::kFinite, days, civil_from_days(days + kUnixToPostgresDays)};
  }
  return Error::kNone;
}

Error decode_time(std::string_view in, Time& out) noexcept {
  if (in.size() != 8) return Error::kLength;
  const auto micros = static_cast<std::int64_t>(wire::load64(in.data()));
  if (micros < 0 || micros > kUsecsPerDay) return Error::kValue;
  out = Time{micros, time_of_day(micros)};
  return Error::kNone;
}

Error decode_timetz(std::string_view in, TimeTz& out) noexcept {
  if (in.size() != 12) return Error::kLength;
  const auto micros = static_cast<std::int64_t>(wire::load64(in.data()));
  const auto zone = static_cast<std::int32_t>(wire::load32(in.data() + 8));
  if (micros < 0 || micros > kUsecsPerDay) return Error::kValue;
  if (zone <= -kTzDispLimit || zone >= kTzDispLimit) return Error::kValue;
  out = TimeTz{micros, time_of_day(micros), -zone};
  return Error::kNone;
}

Error decode_timestamp(std::string_view in, Timestamp& out) noexcept {
  if (in.size() != 8) return Error::kLength;
  const auto micros = static_cast<std::int64_t>(wire::load64(in.data()));
  if (micros == std::numeric_limits<std::int64_t>::max()) {
    out = make_timestamp(Special::kInfinity);
  } else if (micros == std::numeric_limits<std::int64_t>::min()) {
    out = make_timestamp(Special::kNegInfinity);
  } else {
    if (micros < kMinTimestamp || micros >= kEndTimestamp) return Error::kValue;
    out = finite_timestamp(micros);
  }
  return Error::kNone;
}

Error decode_interval(std::string_view in, Interval& out) noexcept {
  if (in.size() != 16) return Error::kLength;
  out.micros = static_cast<std::int64_t>(wire::load64(in.data()));
  out.days = static_cast<std::int32_t>(wire::load32(in.data() + 8));
  out.months = static_cast<std::int32_t>(wire::load32(in.data() + 12));
  return Error::kNone;
}

// ---- civil values to wire structs -------------------------------------------------------------

Error make_date(const CivilDate& civil, Date& out) noexcept {
  if (!valid_civil(civil)) return Error::kValue;
  const std::int64_t days = postgres_days(civil);
  if (days < kMinDate || days >= kEndDate) return Error::kRange;
  out = Date{Special::kFinite, static_cast<std::int32_t>(days), civil};
  return Error::kNone;
}

Date make_date(Special special) noexcept {
  if (special == Special::kFinite) return Date{};
  const bool pos = special == Special::kInfinity;
  return Date{special, pos ? std::numeric_limits<std::int32_t>::max() : std::numeric_limits<std::int32_t>::min(),
              CivilDate{0, 0, 0}};
}

Error make_time(const TimeOfDay& time, Time& out) noexcept {
  if (!valid_time(time, true)) return Error::kValue;
  out = Time{time_micros(time), time};
  return Error::kNone;
}

Error make_timetz(const TimeOfDay& time, std::int32_t utc_offset, TimeTz& out) noexcept {
  if (!valid_time(time, true)) return Error::kValue;
  if (utc_offset <= -kTzDispLimit || utc_offset >= kTzDispLimit) return Error::kRange;
  out = TimeTz{time_micros(time), time, utc_offset};
  return Error::kNone;
}

Error make_timestamp(const CivilDate& date, const TimeOfDay& local, std::int32_t utc_offset, Timestamp& out) noexcept {
  if (!valid_civil(date) || !valid_time(local, false)) return Error::kValue;
  if (utc_offset <= -86'400 || utc_offset >= 86'400) return Error::kValue;
  const __int128 micros = static_cast<__int128>(postgres_days(date)) * kUsecsPerDay + time_micros(local) -
                          static_cast<__int128>(utc_offset) * kUsecsPerSecond;
  if (micros < kMinTimestamp || micros >= kEndTimestamp) return Error::kRange;
  out = finite_timestamp(static_cast<std::int64_t>(micros));
  return Error::kNone;
}

Timestamp make_timestamp(Special special) noexcept {
  if (special == Special::kFinite) return Timestamp{};
  Timestamp t;
  t.special = special;
  t.micros = special == Special::kInfinity ? std::numeric_limits<std::int64_t>::max()
                                           : std::numeric_limits<std::int64_t>::min();
  t.date = CivilDate{0, 0, 0};
  return t;
}

// ---- interval <-> timedelta -------------------------------------------------------------------

Error interval_to_timedelta(const Interval& in, Timedelta& out) noexcept {
  // psycopg 3's IntervalBinaryLoader: years of 365 days, remaining months of 30, on |months|.
  std::int64_t days = in.days;
  const std::int64_t months = in.months;
  const std::int64_t am = months < 0 ? -months : months;
  const std::int64_t month_days = 365 * (am / 12) + 30 * (am % 12);
  days += months < 0 ? -month_days : month_days;
  const std::int64_t micro_days = floor_div(in.micros, kUsecsPerDay);
  const std::int64_t rest = floor_mod(in.micros, kUsecsPerDay);  // 0 <= rest < one day
  days += micro_days;
  if (days < -kTimedeltaMaxDays || days > kTimedeltaMaxDays) return Error::kRange;
  out = Timedelta{days, static_cast<std::int32_t>(rest / kUsecsPerSecond),
                  static_cast<std::int32_t>(rest % kUsecsPerSecond)};
  return Error::kNone;
}

Interval interval_from_timedelta(const Timedelta& td) noexcept {
  return Interval{static_cast<std::int64_t>(td.seconds) * kUsecsPerSecond + td.microseconds,
                  static_cast<std::int32_t>(td.days), 0};
}

// ---- encoders ---------------------------------------------------------------------------------

void encode_date(const Date& v, std::string& out) { wire::put32(static_cast<std::uint32_t>(v.days), out); }

void encode_time(const Time& v, std::string& out) { wire::put64(static_cast<std::uint64_t>(v.micros), out); }

void encode_timetz(const TimeTz& v, std::string& out) {
  wire::put64(static_cast<std::uint64_t>(v.micros), out);
  wire::put32(0u - static_cast<std::uint32_t>(v.utc_offset), out);  // seconds west
}

void encode_timestamp(const Timestamp& v, std::string& out) { wire::put64(static_cast<std::uint64_t>(v.micros), out); }

void encode_interval(const Interval& v, std::string& out) {
  wire::put64(static_cast<std::uint64_t>(v.micros), out);
  wire::put32(static_cast<std::uint32_t>(v.days), out);
  wire::put32(static_cast<std::uint32_t>(v.months), out);
}

}  // namespace puff::pg
