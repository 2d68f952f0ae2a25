// Postgres type OIDs Puff has binary codecs for, their array types, and which codec reads each.
// Built-in OIDs are fixed by Postgres (src/include/catalog/pg_type.dat) and the same in every
// version. Pure constexpr tables: any thread. The value mapping is in docs/postgres-types.md.
#pragma once

#include <cstdint>

namespace puff::pg {

using Oid = std::uint32_t;

namespace oid {
inline constexpr Oid kBool = 16;
inline constexpr Oid kBytea = 17;
inline constexpr Oid kChar = 18;  // "char": one byte
inline constexpr Oid kName = 19;
inline constexpr Oid kInt8 = 20;
inline constexpr Oid kInt2 = 21;
inline constexpr Oid kInt4 = 23;
inline constexpr Oid kText = 25;
inline constexpr Oid kOid = 26;
inline constexpr Oid kJson = 114;
inline constexpr Oid kXml = 142;
inline constexpr Oid kCidr = 650;
inline constexpr Oid kFloat4 = 700;
inline constexpr Oid kFloat8 = 701;
inline constexpr Oid kUnknown = 705;
inline constexpr Oid kInet = 869;
inline constexpr Oid kBpchar = 1042;  // char(n)
inline constexpr Oid kVarchar = 1043;
inline constexpr Oid kDate = 1082;
inline constexpr Oid kTime = 1083;
inline constexpr Oid kTimestamp = 1114;
inline constexpr Oid kTimestamptz = 1184;
inline constexpr Oid kInterval = 1186;
inline constexpr Oid kTimetz = 1266;
inline constexpr Oid kNumeric = 1700;
inline constexpr Oid kUuid = 2950;
inline constexpr Oid kJsonb = 3802;

inline constexpr Oid kBoolArray = 1000;
inline constexpr Oid kByteaArray = 1001;
inline constexpr Oid kCharArray = 1002;
inline constexpr Oid kNameArray = 1003;
inline constexpr Oid kInt2Array = 1005;
inline constexpr Oid kInt4Array = 1007;
inline constexpr Oid kTextArray = 1009;
inline constexpr Oid kBpcharArray = 1014;
inline constexpr Oid kVarcharArray = 1015;
inline constexpr Oid kInt8Array = 1016;
inline constexpr Oid kFloat4Array = 1021;
inline constexpr Oid kFloat8Array = 1022;
inline constexpr Oid kOidArray = 1028;
inline constexpr Oid kInetArray = 1041;
inline constexpr Oid kTimestampArray = 1115;
inline constexpr Oid kDateArray = 1182;
inline constexpr Oid kTimeArray = 1183;
inline constexpr Oid kTimestamptzArray = 1185;
inline constexpr Oid kIntervalArray = 1187;
inline constexpr Oid kNumericArray = 1231;
inline constexpr Oid kTimetzArray = 1270;
inline constexpr Oid kJsonArray = 199;
inline constexpr Oid kXmlArray = 143;
inline constexpr Oid kCidrArray = 651;
inline constexpr Oid kUuidArray = 2951;
inline constexpr Oid kJsonbArray = 3807;
}  // namespace oid

/** Which function of src/pg/binary.hpp reads (and writes) a type's binary form. */
enum class Codec : std::uint8_t {
  kUnknown,  // no codec here: the bytes are passed on as they are (docs/postgres-types.md §Unknown)
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kOid,  // uint32
  kFloat4,
  kFloat8,
  kNumeric,
  kText,  // text, varchar, bpchar, name, "char", unknown, xml: the bytes are the text
  kJson,  // the bytes are the JSON text
  kJsonb,  // a version byte (1), then the JSON text
  kBytea,  // the bytes are the value
  kDate,
  kTime,
  kTimetz,
  kTimestamp,
  kTimestamptz,
  kInterval,
  kUuid,
  kInet,
  kCidr,
  kArray,  // an array of one of the element types above (element_type_of)
};

namespace detail {
struct TypeRow {
  Oid type;
  Oid array;  // 0: none (unknown has no array type)
  Codec codec;
};
inline constexpr TypeRow kTypes[] = {
    {oid::kBool, oid::kBoolArray, Codec::kBool},
    {oid::kBytea, oid::kByteaArray, Codec::kBytea},
    {oid::kChar, oid::kCharArray, Codec::kText},
    {oid::kName, oid::kNameArray, Codec::kText},
    {oid::kInt8, oid::kInt8Array, Codec::kInt8},
    {oid::kInt2, oid::kInt2Array, Codec::kInt2},
    {oid::kInt4, oid::kInt4Array, Codec::kInt4},
    {oid::kText, oid::kTextArray, Codec::kText},
    {oid::kOid, oid::kOidArray, Codec::kOid},
    {oid::kJson, oid::kJsonArray, Codec::kJson},
    {oid::kXml, oid::kXmlArray, Codec::kText},
    {oid::kCidr, oid::kCidrArray, Codec::kCidr},
    {oid::kFloat4, oid::kFloat4Array, Codec::kFloat4},
    {oid::kFloat8, oid::kFloat8Array, Codec::kFloat8},
    {oid::kUnknown, 0, Codec::kText},
    {oid::kInet, oid::kInetArray, Codec::kInet},
    {oid::kBpchar, oid::kBpcharArray, Codec::kText},
    {oid::kVarchar, oid::kVarcharArray, Codec::kText},
    {oid::kDate, oid::kDateArray, Codec::kDate},
    {oid::kTime, oid::kTimeArray, Codec::kTime},
    {oid::kTimestamp, oid::kTimestampArray, Codec::kTimestamp},
    {oid::kTimestamptz, oid::kTimestamptzArray, Codec::kTimestamptz},
    {oid::kInterval, oid::kIntervalArray, Codec::kInterval},
    {oid::kTimetz, oid::kTimetzArray, Codec::kTimetz},
    {oid::kNumeric, oid::kNumericArray, Codec::kNumeric},
    {oid::kUuid, oid::kUuidArray, Codec::kUuid},
    {oid::kJsonb, oid::kJsonbArray, Codec::kJsonb},
};
}  // namespace detail

/** The codec of a type (array types: kArray); kUnknown for types this table does not know. */
constexpr Codec codec_of(Oid type) noexcept {
  for (const auto& row : detail::kTypes) {
    if (row.type == type) return row.codec;
    if (row.array == type) return Codec::kArray;
  }
  return Codec::kUnknown;
}

/** The element type of a known array type; 0 for anything else. */
constexpr Oid element_type_of(Oid array_type) noexcept {
  for (const auto& row : detail::kTypes)
    if (row.array != 0 && row.array == array_type) return row.type;
  return 0;
}

/** The array type of a known element type; 0 for anything else (and for unknown). */
constexpr Oid array_type_of(Oid element_type) noexcept {
  for (const auto& row : detail::kTypes)
    if (row.type == element_type) return row.array;
  return 0;
}

}  // namespace puff::pg
