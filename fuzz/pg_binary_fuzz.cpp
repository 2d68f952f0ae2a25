// libFuzzer target: the Postgres binary codecs (src/pg/binary.hpp). Every input is decoded as
// every type (and as numeric text for encode_numeric). Beyond "no crash" (ASan/UBSan), it checks:
// - whatever decodes, encodes back (through the make_* path the bridge uses) to bytes that decode
//   to the same value, and to the very same bytes where the wire form is canonical;
// - decoded fields are in range (civil dates and times, timedelta normalization, numeric text);
// - arrays: the element count is the product of the sizes, every view lies inside the input, and
//   re-encoding the frame gives the same shape and elements; elements are decoded recursively;
// - encode_numeric(text) is stable: decode then encode again gives the same bytes.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "pg/binary.hpp"

using namespace puff::pg;

#define CHECK PUFF_FUZZ_CHECK

namespace {

bool valid_numeric_text(std::string_view t) {
  if (t == "NaN" || t == "Infinity" || t == "-Infinity") return true;
  if (!t.empty() && t[0] == '-') t.remove_prefix(1);
  const std::size_t point = t.find('.');
  const std::string_view int_part = t.substr(0, point);
  if (int_part.empty() || int_part.size() > 131072) return false;
  if (int_part.size() > 1 && int_part[0] == '0') return false;
  for (char c : int_part)
    if (c < '0' || c > '9') return false;
  if (point == std::string_view::npos) return true;
  const std::string_view frac = t.substr(point + 1);
  if (frac.empty() || frac.size() > 16383) return false;
  for (char c : frac)
    if (c < '0' || c > '9') return false;
  return true;
}

void check_civil(const CivilDate& d) {
  CHECK(d.month >= 1 && d.month <= 12 && d.day >= 1 && d.day <= 31);
  CHECK(d.year >= -4713 && d.year <= 5874897);
}

void check_time(const TimeOfDay& t) {
  CHECK(t.hour >= 0 && t.hour <= 24 && t.minute >= 0 && t.minute < 60 && t.second >= 0 && t.second < 60 &&
        t.microsecond >= 0 && t.microsecond < 1000000);
  if (t.hour == 24) CHECK(t.minute == 0 && t.second == 0 && t.microsecond == 0);
}

void check_value(Oid type, std::string_view in, int depth);

void check_numeric(std::string_view in) {
  std::string text;
  if (decode_numeric(in, text) != Error::kNone) return;
  CHECK(valid_numeric_text(text));
  std::string bin;
  CHECK(encode_numeric(text, bin) == Error::kNone);
  std::string again;
  CHECK(decode_numeric(bin, again) == Error::kNone);
  CHECK(again == text);
}

void check_numeric_text(std::string_view text) {
  std::string bin;
  if (encode_numeric(text, bin) != Error::kNone) return;
  std::string decoded;
  CHECK(decode_numeric(bin, decoded) == Error::kNone);
  CHECK(valid_numeric_text(decoded));
  std::string bin2;
  CHECK(encode_numeric(decoded, bin2) == Error::kNone);
  CHECK(bin2 == bin);
}

void check_array(Oid type, std::string_view in, int depth) {
  Array a;
  const Oid expected = element_type_of(type);
  if (decode_array(in, a, expected) != Error::kNone) return;
  CHECK(a.ndim >= 0 && a.ndim <= kMaxArrayDims);
  std::uint64_t count = a.ndim > 0 ? 1 : 0;
  for (int d = 0; d < a.ndim; ++d) {
    const ArrayDim& dim = a.dims[static_cast<std::size_t>(d)];
    CHECK(dim.size > 0);
    count *= static_cast<std::uint64_t>(dim.size);
  }
  CHECK(a.elements.size() == count);
  bool has_null = false;
  for (const auto& e : a.elements) {
    if (!e) {
      has_null = true;
      continue;
    }
    CHECK(e->data() >= in.data() && e->data() + e->size() <= in.data() + in.size());
    if (depth < 2) check_value(a.element_type, *e, depth + 1);
  }
  std::string out;
  const std::span<const ArrayDim> dims(a.dims.data(), static_cast<std::size_t>(a.ndim));
  CHECK(encode_array(a.element_type, dims, a.elements, out) == Error::kNone);
  Array b;
  CHECK(decode_array(out, b, expected) == Error::kNone);
  CHECK(b.ndim == a.ndim && b.element_type == a.element_type && b.elements == a.elements);
  for (int d = 0; d < a.ndim; ++d) CHECK(a.dims[static_cast<std::size_t>(d)] == b.dims[static_cast<std::size_t>(d)]);
  // The same bytes, unless the input's has-null flag lied or a size-0 dimension was dropped.
  const bool flag = in[7] != 0;
  const std::int32_t ndim_in = static_cast<std::int32_t>(static_cast<unsigned char>(in[3]));
  if (flag == has_null && ndim_in == a.ndim) CHECK(out == in);
}

template <class T, class Decode, class Reencode>
void round_trip(std::string_view in, Decode decode, Reencode reencode, bool canonical) {
  T v;
  if (decode(in, v) != Error::kNone) return;
  std::string out;
  if (!reencode(v, out)) return;
  T w;
  CHECK(decode(out, w) == Error::kNone);
  CHECK(w == v);
  if (canonical) CHECK(out == in);
}

void check_value(Oid type, std::string_view in, int depth) {
  switch (codec_of(type)) {
    case Codec::kBool:
      round_trip<bool>(in, decode_bool, [](bool v, std::string& o) { encode_bool(v, o); return true; },
                       in.size() == 1 && static_cast<unsigned char>(in[0]) <= 1);
      break;
    case Codec::kInt2:
      round_trip<std::int16_t>(in, decode_int2, [](std::int16_t v, std::string& o) { return encode_int2(v, o) == Error::kNone; }, true);
      break;
    case Codec::kInt4:
      round_trip<std::int32_t>(in, decode_int4, [](std::int32_t v, std::string& o) { return encode_int4(v, o) == Error::kNone; }, true);
      break;
    case Codec::kInt8:
      round_trip<std::int64_t>(in, decode_int8, [](std::int64_t v, std::string& o) { encode_int8(v, o); return true; }, true);
      break;
    case Codec::kOid:
      round_trip<std::uint32_t>(in, decode_oid, [](std::uint32_t v, std::string& o) { return encode_oid(v, o) == Error::kNone; }, true);
      break;
    case Codec::kFloat4: {
      float f;
      if (decode_float4(in, f) == Error::kNone) {
        std::string o;
        encode_float4(f, o);
        CHECK(o == in);  // bit for bit, NaN payloads included
      }
      break;
    }
    case Codec::kFloat8: {
      double f;
      if (decode_float8(in, f) == Error::kNone) {
        std::string o;
        encode_float8(f, o);
        CHECK(o == in);
      }
      break;
    }
    case Codec::kNumeric:
      check_numeric(in);
      break;
    case Codec::kJsonb: {
      std::string_view t;
      if (decode_jsonb(in, t) == Error::kNone) {
        std::string o;
        encode_jsonb(t, o);
        CHECK(o == in);
      }
      break;
    }
    case Codec::kDate:
      round_trip<Date>(in, decode_date, [](const Date& d, std::string& o) {
        Date m;
        if (d.special != Special::kFinite) m = make_date(d.special);
        else {
          check_civil(d.civil);
          CHECK(make_date(d.civil, m) == Error::kNone);
        }
        encode_date(m, o);
        return true;
      }, true);
      break;
    case Codec::kTime:
      round_trip<Time>(in, decode_time, [](const Time& t, std::string& o) {
        check_time(t.time);
        Time m;
        CHECK(make_time(t.time, m) == Error::kNone);
        encode_time(m, o);
        return true;
      }, true);
      break;
    case Codec::kTimetz:
      round_trip<TimeTz>(in, decode_timetz, [](const TimeTz& t, std::string& o) {
        check_time(t.time);
        CHECK(t.utc_offset > -57600 && t.utc_offset < 57600);
        TimeTz m;
        CHECK(make_timetz(t.time, t.utc_offset, m) == Error::kNone);
        encode_timetz(m, o);
        return true;
      }, true);
      break;
    case Codec::kTimestamp:
    case Codec::kTimestamptz:
      round_trip<Timestamp>(in, decode_timestamp, [](const Timestamp& t, std::string& o) {
        Timestamp m;
        if (t.special != Special::kFinite) m = make_timestamp(t.special);
        else {
          check_civil(t.date);
          check_time(t.time);
          CHECK(t.time.hour < 24);
          CHECK(make_timestamp(t.date, t.time, 0, m) == Error::kNone);
        }
        encode_timestamp(m, o);
        return true;
      }, true);
      break;
    case Codec::kInterval: {
      Interval v;
      if (decode_interval(in, v) != Error::kNone) break;
      std::string o;
      encode_interval(v, o);
      CHECK(o == in);
      Timedelta td;
      if (interval_to_timedelta(v, td) == Error::kNone) {
        CHECK(td.days >= -999999999 && td.days <= 999999999);
        CHECK(td.seconds >= 0 && td.seconds < 86400 && td.microseconds >= 0 && td.microseconds < 1000000);
        // Same total as psycopg's days + microseconds.
        const std::int64_t am = v.months < 0 ? -static_cast<std::int64_t>(v.months) : v.months;
        const std::int64_t md = 365 * (am / 12) + 30 * (am % 12);
        const __int128 want = (static_cast<__int128>(v.days) + (v.months < 0 ? -md : md)) * 86400000000 + v.micros;
        const __int128 got = static_cast<__int128>(td.days) * 86400000000 + td.seconds * 1000000LL + td.microseconds;
        CHECK(want == got);
        const Interval back = interval_from_timedelta(td);
        Timedelta td2;
        CHECK(interval_to_timedelta(back, td2) == Error::kNone && td2 == td);
      }
      break;
    }
    case Codec::kUuid:
      round_trip<Uuid>(in, decode_uuid, [](const Uuid& u, std::string& o) { encode_uuid(u, o); return true; }, true);
      break;
    case Codec::kInet:
    case Codec::kCidr: {
      const bool cidr = codec_of(type) == Codec::kCidr;
      Inet v;
      if ((cidr ? decode_cidr(in, v) : decode_inet(in, v)) != Error::kNone) break;
      const std::string text = format_inet(v);
      CHECK(!text.empty() && text.size() <= 43);
      std::string o;
      CHECK(encode_inet(v, o) == Error::kNone);
      CHECK(o.size() == in.size() && o[0] == in[0] && o[1] == in[1] && o.substr(3) == in.substr(3));
      Inet w;
      CHECK((cidr ? decode_cidr(o, w) : decode_inet(o, w)) == Error::kNone && w == v);
      break;
    }
    case Codec::kArray:
      check_array(type, in, depth);
      break;
    case Codec::kText:
    case Codec::kJson:
    case Codec::kBytea:
    case Codec::kUnknown:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A copy of exactly `size` bytes: ASan catches a read one past the end.
  const std::string copy(reinterpret_cast<const char*>(data), size);
  const std::string_view in(copy);
  for (const auto& row : detail::kTypes) {
    check_value(row.type, in, 0);
    if (row.array != 0) check_value(row.array, in, 0);
  }
  check_array(0, in, 0);  // an array of any element type
  check_numeric_text(in);
  return 0;
}
