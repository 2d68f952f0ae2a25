// Python parameters -> Postgres binary parameters (see pg_values.hpp). Every value is sent in
// binary with its type OID, except str (text, OID 0: the server infers the type from the context,
// so '2024-01-01' can go to a date column as with psycopg) and the empty list (text '{}', OID 0).
#include "py/pg_values.hpp"

#include "pg/binary.hpp"
#include "pg/types.hpp"

#include <datetime.h>

#include <cstring>
#include <string>
#include <vector>

namespace puff::py {

namespace {

PyObject* g_decimal = nullptr;
PyObject* g_uuid = nullptr;
PyObject* g_dumps = nullptr;

bool ensure() {
  if (g_dumps) return true;
  if (!pg_values_init()) return false;
  PyObject* m = PyImport_ImportModule("decimal");
  g_decimal = m ? PyObject_GetAttrString(m, "Decimal") : nullptr;
  Py_XDECREF(m);
  m = PyImport_ImportModule("uuid");
  g_uuid = m ? PyObject_GetAttrString(m, "UUID") : nullptr;
  Py_XDECREF(m);
  m = PyImport_ImportModule("json");
  g_dumps = m ? PyObject_GetAttrString(m, "dumps") : nullptr;
  Py_XDECREF(m);
  PyDateTime_IMPORT;
  return g_decimal && g_uuid && g_dumps && PyDateTimeAPI;
}

bool fail(int index, const char* what, PyObject* v) {
  raise_data_error("parameter $%d (%.100s): %s", index + 1, Py_TYPE(v)->tp_name, what);
  return false;
}

/** The OID a Python value is sent as (0: not a binary-encodable scalar). */
pg::Oid scalar_oid(PyObject* v) {
  if (PyBool_Check(v)) return pg::oid::kBool;
  if (PyLong_Check(v)) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) return pg::oid::kNumeric;
    if (x >= -32768 && x <= 32767) return pg::oid::kInt2;
    if (x >= -2147483648LL && x <= 2147483647LL) return pg::oid::kInt4;
    return pg::oid::kInt8;
  }
  if (PyFloat_Check(v)) return pg::oid::kFloat8;
  if (PyUnicode_Check(v)) return pg::oid::kText;
  if (PyBytes_Check(v) || PyByteArray_Check(v) || PyMemoryView_Check(v)) return pg::oid::kBytea;
  if (PyDateTime_Check(v)) return reinterpret_cast<_PyDateTime_BaseTZInfo*>(v)->hastzinfo ? pg::oid::kTimestamptz
                                                                                         : pg::oid::kTimestamp;
  if (PyDate_Check(v)) return pg::oid::kDate;
  if (PyTime_Check(v)) return reinterpret_cast<_PyDateTime_BaseTZInfo*>(v)->hastzinfo ? pg::oid::kTimetz
                                                                                     : pg::oid::kTime;
  if (PyDelta_Check(v)) return pg::oid::kInterval;
  if (PyDict_Check(v)) return pg::oid::kJsonb;
  if (PyObject_IsInstance(v, g_decimal) == 1) return pg::oid::kNumeric;
  if (PyObject_IsInstance(v, g_uuid) == 1) return pg::oid::kUuid;
  return 0;
}

/** utcoffset() in seconds of an aware date/time value; false with an exception set. */
bool utc_offset(PyObject* v, std::int32_t& out) {
  PyObject* off = PyObject_CallMethod(v, "utcoffset", nullptr);
  if (!off) return false;
  out = 0;
  if (off != Py_None) {
    if (!PyDelta_Check(off)) {
      Py_DECREF(off);
      PyErr_SetString(PyExc_TypeError, "utcoffset() did not return a timedelta");
      return false;
    }
    out = PyDateTime_DELTA_GET_DAYS(off) * 86400 + PyDateTime_DELTA_GET_SECONDS(off);
  }
  Py_DECREF(off);
  return true;
}

bool numeric_from_str(PyObject* v, std::string& out, int index) {
  PyObject* s = PyObject_Str(v);
  if (!s) return false;
  Py_ssize_t n;
  const char* p = PyUnicode_AsUTF8AndSize(s, &n);
  pg::Error e = p ? pg::encode_numeric(std::string_view(p, static_cast<std::size_t>(n)), out) : pg::Error::kValue;
  Py_DECREF(s);
  if (!p) return false;
  if (e != pg::Error::kNone) return fail(index, pg::describe(e), v);
  return true;
}

/** Encodes `v` as the binary value of `type` into `out`. */
bool encode_binary(pg::Oid type, PyObject* v, std::string& out, int index) {
  pg::Oid have = scalar_oid(v);
  if (PyErr_Occurred()) return false;
  auto is_int = [](pg::Oid o) { return o == pg::oid::kInt2 || o == pg::oid::kInt4 || o == pg::oid::kInt8; };
  bool ok_kind = have == type || (is_int(have) && (is_int(type) || type == pg::oid::kNumeric)) ||
                 (have == pg::oid::kInt8 && type == pg::oid::kNumeric) ||
                 ((have == pg::oid::kTimestamp || have == pg::oid::kTimestamptz) &&
                  (type == pg::oid::kTimestamp || type == pg::oid::kTimestamptz)) ||
                 ((have == pg::oid::kTime || have == pg::oid::kTimetz) &&
                  (type == pg::oid::kTime || type == pg::oid::kTimetz));
  if (!ok_kind) return fail(index, "cannot be sent as this type (mixed types in a list?)", v);
  pg::Error e = pg::Error::kNone;
  switch (type) {
    case pg::oid::kBool:
      pg::encode_bool(v == Py_True, out);
      return true;
    case pg::oid::kInt2:
    case pg::oid::kInt4:
    case pg::oid::kInt8: {
      long long x = PyLong_AsLongLong(v);
      if (x == -1 && PyErr_Occurred()) return false;
      if (type == pg::oid::kInt2) e = pg::encode_int2(x, out);
      else if (type == pg::oid::kInt4) e = pg::encode_int4(x, out);
      else pg::encode_int8(x, out);
      if (e != pg::Error::kNone) return fail(index, pg::describe(e), v);
      return true;
    }
    case pg::oid::kNumeric:
      return numeric_from_str(v, out, index);
    case pg::oid::kFloat8:
      pg::encode_float8(PyFloat_AS_DOUBLE(v), out);
      return true;
    case pg::oid::kText: {
      Py_ssize_t n;
      const char* p = PyUnicode_AsUTF8AndSize(v, &n);
      if (!p) return false;
      out.append(p, static_cast<std::size_t>(n));
      return true;
    }
    case pg::oid::kBytea: {
      Py_buffer b;
      if (PyObject_GetBuffer(v, &b, PyBUF_CONTIG_RO) < 0) return false;
      out.append(static_cast<const char*>(b.buf), static_cast<std::size_t>(b.len));
      PyBuffer_Release(&b);
      return true;
    }
    case pg::oid::kDate: {
      pg::Date d;
      e = pg::make_date({PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)}, d);
      if (e != pg::Error::kNone) return fail(index, pg::describe(e), v);
      pg::encode_date(d, out);
      return true;
    }
    case pg::oid::kTimestamp:
    case pg::oid::kTimestamptz: {
      std::int32_t off = 0;
      if (!utc_offset(v, off)) return false;
      pg::Timestamp ts;
      e = pg::make_timestamp({PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)},
                             {PyDateTime_DATE_GET_HOUR(v), PyDateTime_DATE_GET_MINUTE(v),
                              PyDateTime_DATE_GET_SECOND(v), PyDateTime_DATE_GET_MICROSECOND(v)},
                             off, ts);
      if (e != pg::Error::kNone) return fail(index, pg::describe(e), v);
      pg::encode_timestamp(ts, out);
      return true;
    }
    case pg::oid::kTime:
    case pg::oid::kTimetz: {
      pg::TimeOfDay tod{PyDateTime_TIME_GET_HOUR(v), PyDateTime_TIME_GET_MINUTE(v), PyDateTime_TIME_GET_SECOND(v),
                        PyDateTime_TIME_GET_MICROSECOND(v)};
      if (type == pg::oid::kTime) {
        pg::Time t;
        if ((e = pg::make_time(tod, t)) != pg::Error::kNone) return fail(index, pg::describe(e), v);
        pg::encode_time(t, out);
      } else {
        std::int32_t off = 0;
        if (!utc_offset(v, off)) return false;
        pg::TimeTz t;
        if ((e = pg::make_timetz(tod, off, t)) != pg::Error::kNone) return fail(index, pg::describe(e), v);
        pg::encode_timetz(t, out);
      }
      return true;
    }
    case pg::oid::kInterval:
      pg::encode_interval(pg::interval_from_timedelta({PyDateTime_DELTA_GET_DAYS(v), PyDateTime_DELTA_GET_SECONDS(v),
                                                       PyDateTime_DELTA_GET_MICROSECONDS(v)}),
                          out);
      return true;
    case pg::oid::kUuid: {
      PyObject* b = PyObject_GetAttrString(v, "bytes");
      if (!b) return false;
      if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 16) {
        Py_DECREF(b);
        return fail(index, "UUID.bytes is not 16 bytes", v);
      }
      pg::Uuid u;
      std::memcpy(u.data(), PyBytes_AS_STRING(b), 16);
      Py_DECREF(b);
      pg::encode_uuid(u, out);
      return true;
    }
    case pg::oid::kJsonb: {
      PyObject* s = PyObject_CallOneArg(g_dumps, v);
      if (!s) {
        PyErr_Clear();
        return fail(index, "not JSON-serializable", v);
      }
      Py_ssize_t n;
      const char* p = PyUnicode_AsUTF8AndSize(s, &n);
      if (p) pg::encode_jsonb(std::string_view(p, static_cast<std::size_t>(n)), out);
      Py_DECREF(s);
      return p != nullptr;
    }
    default:
      return fail(index, "unsupported element type", v);
  }
}

/** Walks a (nested) list: its shape, and the type its leaves need. */
bool scan_list(PyObject* v, int depth, std::vector<pg::ArrayDim>& dims, pg::Oid& type, bool& mixed_int, int index) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
  if (depth >= pg::kMaxArrayDims) return fail(index, "more than 6 array dimensions", v);
  if (static_cast<int>(dims.size()) == depth) dims.push_back({static_cast<std::int32_t>(n), 1});
  else if (dims[static_cast<std::size_t>(depth)].size != n) return fail(index, "nested lists of different lengths", v);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(v, i);
    if (PyList_Check(item) || PyTuple_Check(item)) {
      PyObject* seq = PySequence_Fast(item, "");
      bool ok = seq && scan_list(seq, depth + 1, dims, type, mixed_int, index);
      Py_XDECREF(seq);
      if (!ok) return false;
      continue;
    }
    if (static_cast<int>(dims.size()) != depth + 1) return fail(index, "nested lists of different depths", v);
    if (item == Py_None) continue;
    pg::Oid t = scalar_oid(item);
    if (PyErr_Occurred()) return false;
    if (t == 0) return fail(index, "list element of an unsupported type", item);
    auto rank = [](pg::Oid o) {
      return o == pg::oid::kInt2 ? 1 : o == pg::oid::kInt4 ? 2 : o == pg::oid::kInt8 ? 3 : o == pg::oid::kNumeric ? 4 : 0;
    };
    if (type == 0) type = t;
    else if (rank(t) && rank(type)) {
      if (rank(t) > rank(type)) type = t;
      mixed_int = true;
    } else if (t != type && !((t == pg::oid::kTimestamp || t == pg::oid::kTimestamptz) &&
                               (type == pg::oid::kTimestamp || type == pg::oid::kTimestamptz))) {
      return fail(index, "a list mixes element types", v);
    } else if (t == pg::oid::kTimestamptz) {
      type = t;
    }
  }
  return true;
}

bool write_elements(PyObject* v, int depth, int ndim, pg::Oid type, pg::ArrayWriter& w, std::string& out, int index) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(v, i);
    if (depth + 1 < ndim) {
      PyObject* seq = PySequence_Fast(item, "");
      bool ok = seq && write_elements(seq, depth + 1, ndim, type, w, out, index);
      Py_XDECREF(seq);
      if (!ok) return false;
    } else if (item == Py_None) {
      w.add_null();
    } else {
      w.begin_element();
      if (!encode_binary(type, item, out, index)) return false;
      w.end_element();
    }
  }
  return true;
}

}  // namespace

bool encode_param(PyObject* v, pg::Params& params, int index) {
  if (!ensure()) return false;
  if (v == Py_None) {
    params.add_null();
    return true;
  }
  if (PyUnicode_Check(v)) {
    Py_ssize_t n;
    const char* p = PyUnicode_AsUTF8AndSize(v, &n);
    if (!p) return false;
    if (std::memchr(p, 0, static_cast<std::size_t>(n))) return fail(index, "a string with a NUL character", v);
    params.add(std::string_view(p, static_cast<std::size_t>(n)));  // text, OID 0: the server infers
    return true;
  }
  std::string buf;
  if (PyList_Check(v) || PyTuple_Check(v)) {
    PyObject* seq = PySequence_Fast(v, "");
    if (!seq) return false;
    std::vector<pg::ArrayDim> dims;
    pg::Oid type = 0;
    bool mixed_int = false;
    if (!scan_list(seq, 0, dims, type, mixed_int, index)) {
      Py_DECREF(seq);
      return false;
    }
    if (dims.empty() || dims[0].size == 0) {
      Py_DECREF(seq);
      params.add("{}");  // the empty array, typed by the server
      return true;
    }
    if (type == 0) type = pg::oid::kText;  // only NULLs
    pg::ArrayWriter w(buf, type, dims);
    bool ok = write_elements(seq, 0, static_cast<int>(dims.size()), type, w, buf, index);
    Py_DECREF(seq);
    if (!ok) return false;
    if (auto e = w.finish(); e != pg::Error::kNone) return fail(index, pg::describe(e), v);
    params.add(buf, pg::array_type_of(type), pg::Format::Binary);
    return true;
  }
  pg::Oid type = scalar_oid(v);
  if (PyErr_Occurred()) return false;
  if (type == 0) return fail(index, "cannot be adapted to a Postgres type", v);
  if (!encode_binary(type, v, buf, index)) return false;
  params.add(buf, type, pg::Format::Binary);
  return true;
}

}  // namespace puff::py
