// Binary codecs: scalars, jsonb, uuid, inet/cidr and the array frame. Numeric is in
// binary_numeric.cpp, dates and times in binary_datetime.cpp.
#include "pg/binary.hpp"

#include <bit>
#include <cstdio>
#include <limits>

#include "pg/wire.hpp"

namespace puff::pg {

const char* describe(Error e) noexcept {
  switch (e) {
    case Error::kNone:
      return "no error";
    case Error::kLength:
      return "wrong binary length for the type";
    case Error::kValue:
      return "invalid value for the type";
    case Error::kElementType:
      return "array element type differs from the column's";
    case Error::kRange:
      return "value out of range for the type";
    case Error::kSyntax:
      return "invalid decimal number";
  }
  return "unknown error";
}

// ---- scalars ----------------------------------------------------------------------------------

Error decode_bool(std::string_view in, bool& out) noexcept {
  if (in.size() != 1) return Error::kLength;
  out = in[0] != 0;
  return Error::kNone;
}

Error decode_int2(std::string_view in, std::int16_t& out) noexcept {
  if (in.size() != 2) return Error::kLength;
  out = static_cast<std::int16_t>(wire::load16(in.data()));
  return Error::kNone;
}

Error decode_int4(std::string_view in, std::int32_t& out) noexcept {
  if (in.size() != 4) return Error::kLength;
  out = static_cast<std::int32_t>(wire::load32(in.data()));
  return Error::kNone;
}

Error decode_int8(std::string_view in, std::int64_t& out) noexcept {
  if (in.size() != 8) return Error::kLength;
  out = static_cast<std::int64_t>(wire::load64(in.data()));
  return Error::kNone;
}

Error decode_oid(std::string_view in, std::uint32_t& out) noexcept {
  if (in.size() != 4) return Error::kLength;
  out = wire::load32(in.data());
  return Error::kNone;
}

Error decode_float4(std::string_view in, float& out) noexcept {
  if (in.size() != 4) return Error::kLength;
  out = std::bit_cast<float>(wire::load32(in.data()));
  return Error::kNone;
}

Error decode_float8(std::string_view in, double& out) noexcept {
  if (in.size() != 8) return Error::kLength;
  out = std::bit_cast<double>(wire::load64(in.data()));
  return Error::kNone;
}

Error decode_jsonb(std::string_view in, std::string_view& text) noexcept {
  if (in.empty()) return Error::kLength;
  if (in[0] != 1) return Error::kValue;  // jsonb_recv: "unsupported jsonb version number"
  text = in.substr(1);
  return Error::kNone;
}

void encode_bool(bool v, std::string& out) { out.push_back(v ? '\1' : '\0'); }

Error encode_int2(std::int64_t v, std::string& out) {
  if (v < std::numeric_limits<std::int16_t>::min() || v > std::numeric_limits<std::int16_t>::max())
    return Error::kRange;
  wire::put16(static_cast<std::uint16_t>(v), out);
  return Error::kNone;
}

Error encode_int4(std::int64_t v, std::string& out) {
  if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
    return Error::kRange;
  wire::put32(static_cast<std::uint32_t>(v), out);
  return Error::kNone;
}

void encode_int8(std::int64_t v, std::string& out) { wire::put64(static_cast<std::uint64_t>(v), out); }

Error encode_oid(std::int64_t v, std::string& out) {
  if (v < 0 || v > std::numeric_limits<std::uint32_t>::max()) return Error::kRange;
  wire::put32(static_cast<std::uint32_t>(v), out);
  return Error::kNone;
}

void encode_float4(float v, std::string& out) { wire::put32(std::bit_cast<std::uint32_t>(v), out); }
void encode_float8(double v, std::string& out) { wire::put64(std::bit_cast<std::uint64_t>(v), out); }

void encode_jsonb(std::string_view json_text, std::string& out) {
  out.push_back('\1');
  out.append(json_text);
}

// ---- uuid -------------------------------------------------------------------------------------

Error decode_uuid(std::string_view in, Uuid& out) noexcept {
  if (in.size() != 16) return Error::kLength;
  for (std::size_t i = 0; i < 16; ++i) out[i] = static_cast<std::uint8_t>(in[i]);
  return Error::kNone;
}

void encode_uuid(const Uuid& v, std::string& out) { out.append(reinterpret_cast<const char*>(v.data()), v.size()); }

// ---- inet / cidr ------------------------------------------------------------------------------

namespace {

constexpr std::uint8_t kWireInet4 = 2;  // PGSQL_AF_INET (AF_INET + 0)
constexpr std::uint8_t kWireInet6 = 3;  // PGSQL_AF_INET6 (AF_INET + 1)

// Postgres's addressOK: no bit set right of the mask.
bool host_bits_clear(const Inet& v) noexcept {
  const int nbytes = v.family == 4 ? 4 : 16;
  for (int i = 0; i < nbytes; ++i) {
    const int keep = static_cast<int>(v.bits) - i * 8;  // bits of this byte inside the mask
    if (keep >= 8) continue;
    const std::uint8_t mask = keep <= 0 ? 0 : static_cast<std::uint8_t>(0xFF << (8 - keep));
    if ((v.addr[i] & ~mask) != 0) return false;
  }
  return true;
}

Error decode_network(std::string_view in, Inet& out, bool is_cidr) noexcept {
  if (in.size() < 4) return Error::kLength;
  const auto family = static_cast<std::uint8_t>(in[0]);
  if (family != kWireInet4 && family != kWireInet6) return Error::kValue;
  const bool v6 = family == kWireInet6;
  const auto bits = static_cast<std::uint8_t>(in[1]);
  if (bits > (v6 ? 128 : 32)) return Error::kValue;
  const auto nb = static_cast<std::uint8_t>(in[3]);  // in[2], is_cidr, is ignored as by Postgres
  if (nb != (v6 ? 16 : 4)) return Error::kValue;
  if (in.size() != 4u + nb) return Error::kLength;
  Inet v;
  v.family = v6 ? 6 : 4;
  v.bits = bits;
  v.is_cidr = is_cidr;
  for (std::size_t i = 0; i < nb; ++i) v.addr[i] = static_cast<std::uint8_t>(in[4 + i]);
  if (is_cidr && !host_bits_clear(v)) return Error::kValue;
  out = v;
  return Error::kNone;
}

void append_uint(unsigned v, std::string& out) {
  char buf[16];
  const int n = std::snprintf(buf, sizeof buf, "%u", v);
  out.append(buf, static_cast<std::size_t>(n));
}

void append_hex(unsigned v, std::string& out) {
  char buf[8];
  const int n = std::snprintf(buf, sizeof buf, "%x", v);
  out.append(buf, static_cast<std::size_t>(n));
}

void append_dotted(const std::uint8_t* p, std::string& out) {
  for (int i = 0; i < 4; ++i) {
    if (i) out.push_back('.');
    append_uint(p[i], out);
  }
}

// Postgres's inet_net_ntop_ipv6 (src/port/inet_net_ntop.c): the longest run (first on ties) of
// two or more zero words becomes "::"; ::a.b.c.d and ::ffff:a.b.c.d keep the IPv4 tail dotted.
void append_ipv6(const std::uint8_t* src, std::string& out) {
  unsigned words[8];
  for (int i = 0; i < 8; ++i) words[i] = (static_cast<unsigned>(src[2 * i]) << 8) | src[2 * i + 1];
  int best_base = -1, best_len = 0, cur_base = -1, cur_len = 0;
  for (int i = 0; i < 8; ++i) {
    if (words[i] == 0) {
      if (cur_base == -1) cur_base = i, cur_len = 1;
      else ++cur_len;
    } else if (cur_base != -1) {
      if (best_base == -1 || cur_len > best_len) best_base = cur_base, best_len = cur_len;
      cur_base = -1;
    }
  }
  if (cur_base != -1 && (best_base == -1 || cur_len > best_len)) best_base = cur_base, best_len = cur_len;
  if (best_base != -1 && best_len < 2) best_base = -1;
  for (int i = 0; i < 8; ++i) {
    if (best_base != -1 && i >= best_base && i < best_base + best_len) {
      if (i == best_base) out.push_back(':');
      continue;
    }
    if (i != 0) out.push_back(':');
    if (i == 6 && best_base == 0 &&
        (best_len == 6 || (best_len == 7 && words[7] != 1) || (best_len == 5 && words[5] == 0xffff))) {
      append_dotted(src + 12, out);
      return;  // the dotted tail ends the address (no trailing run is possible)
    }
    append_hex(words[i], out);
  }
  if (best_base != -1 && best_base + best_len == 8) out.push_back(':');
}

}  // namespace

Error decode_inet(std::string_view in, Inet& out) noexcept { return decode_network(in, out, false); }
Error decode_cidr(std::string_view in, Inet& out) noexcept { return decode_network(in, out, true); }

Error encode_inet(const Inet& v, std::string& out) {
  if (v.family != 4 && v.family != 6) return Error::kValue;
  const bool v6 = v.family == 6;
  if (v.bits > (v6 ? 128 : 32)) return Error::kValue;
  if (v.is_cidr && !host_bits_clear(v)) return Error::kValue;
  out.push_back(static_cast<char>(v6 ? kWireInet6 : kWireInet4));
  out.push_back(static_cast<char>(v.bits));
  out.push_back(v.is_cidr ? '\1' : '\0');
  out.push_back(static_cast<char>(v6 ? 16 : 4));
  out.append(reinterpret_cast<const char*>(v.addr.data()), v6 ? 16 : 4);
  return Error::kNone;
}

std::string format_inet(const Inet& v) {
  std::string s;
  s.reserve(48);
  const unsigned max_bits = v.family == 6 ? 128 : 32;
  if (v.family == 6) append_ipv6(v.addr.data(), s);
  else append_dotted(v.addr.data(), s);
  if (v.is_cidr || v.bits != max_bits) {
    s.push_back('/');
    append_uint(v.bits, s);
  }
  return s;
}

// ---- arrays -----------------------------------------------------------------------------------

namespace {
constexpr std::uint64_t kMaxArrayElements = 134217727;  // Postgres's MaxArraySize (1 GB / 8)
}

Error decode_array(std::string_view in, Array& out, Oid expected_element) {
  out.ndim = 0;
  out.elements.clear();
  if (in.size() < 12) return Error::kLength;
  const auto ndim = static_cast<std::int32_t>(wire::load32(in.data()));
  const auto flags = static_cast<std::int32_t>(wire::load32(in.data() + 4));
  const Oid element = wire::load32(in.data() + 8);
  if (ndim < 0 || ndim > kMaxArrayDims) return Error::kValue;
  if (flags != 0 && flags != 1) return Error::kValue;
  if (expected_element != 0 && element != expected_element) return Error::kElementType;
  std::size_t pos = 12;
  if (in.size() - pos < static_cast<std::size_t>(ndim) * 8) return Error::kLength;
  std::uint64_t count = ndim > 0 ? 1 : 0;
  for (int d = 0; d < ndim; ++d) {
    const auto size = static_cast<std::int32_t>(wire::load32(in.data() + pos));
    const auto lower = static_cast<std::int32_t>(wire::load32(in.data() + pos + 4));
    pos += 8;
    if (size < 0) return Error::kValue;
    // Postgres's ArrayCheckBounds: lower + size must fit int32.
    if (static_cast<std::int64_t>(lower) + size > std::numeric_limits<std::int32_t>::max()) return Error::kValue;
    out.dims[static_cast<std::size_t>(d)] = ArrayDim{size, lower};
    count *= static_cast<std::uint64_t>(size);
    if (count > kMaxArrayElements) return Error::kValue;
  }
  // Every element needs at least its 4-byte length: reject before reserving.
  if (count > (in.size() - pos) / 4) return Error::kLength;
  out.element_type = element;
  out.elements.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    if (in.size() - pos < 4) return Error::kLength;
    const auto len = static_cast<std::int32_t>(wire::load32(in.data() + pos));
    pos += 4;
    if (len == -1) {
      out.elements.emplace_back(std::nullopt);
      continue;
    }
    if (len < 0) return Error::kValue;
    if (in.size() - pos < static_cast<std::size_t>(len)) return Error::kLength;
    out.elements.emplace_back(in.substr(pos, static_cast<std::size_t>(len)));
    pos += static_cast<std::size_t>(len);
  }
  if (pos != in.size()) return Error::kLength;
  out.ndim = count == 0 ? 0 : ndim;
  return Error::kNone;
}

ArrayWriter::ArrayWriter(std::string& out, Oid element_type, std::span<const ArrayDim> dims)
    : out_(out), start_(out.size()) {
  if (dims.size() > static_cast<std::size_t>(kMaxArrayDims)) {
    bad_shape_ = true;
    dims = dims.first(0);
  }
  if (dims.empty()) expected_ = 0;
  for (const ArrayDim& d : dims) {
    if (d.size < 0 || static_cast<std::int64_t>(d.lower_bound) + d.size > std::numeric_limits<std::int32_t>::max()) {
      bad_shape_ = true;
      expected_ = 0;
      break;
    }
    expected_ *= static_cast<std::uint64_t>(d.size);
    if (expected_ > kMaxArrayElements) {
      bad_shape_ = true;
      break;
    }
  }
  wire::put32(static_cast<std::uint32_t>(dims.size()), out_);
  wire::put32(0, out_);  // has-null: patched by finish()
  wire::put32(element_type, out_);
  for (const ArrayDim& d : dims) {
    wire::put32(static_cast<std::uint32_t>(d.size), out_);
    wire::put32(static_cast<std::uint32_t>(d.lower_bound), out_);
  }
}

void ArrayWriter::add_null() {
  wire::put32(0xFFFFFFFFu, out_);
  has_null_ = true;
  ++count_;
}

void ArrayWriter::begin_element() {
  element_start_ = out_.size();
  wire::put32(0, out_);
}

void ArrayWriter::end_element() {
  const std::size_t len = out_.size() - element_start_ - 4;
  if (len > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) bad_shape_ = true;
  wire::patch32(out_, element_start_, static_cast<std::uint32_t>(len));
  ++count_;
}

Error ArrayWriter::finish() {
  if (bad_shape_ || count_ != expected_) return Error::kValue;
  if (has_null_) wire::patch32(out_, start_ + 4, 1);
  return Error::kNone;
}

Error encode_array(Oid element_type, std::span<const ArrayDim> dims,
                   std::span<const std::optional<std::string_view>> elements, std::string& out) {
  ArrayWriter w(out, element_type, dims);
  for (const auto& e : elements) {
    if (!e) {
      w.add_null();
      continue;
    }
    w.begin_element();
    out.append(*e);
    w.end_element();
  }
  return w.finish();
}

}  // namespace puff::pg
