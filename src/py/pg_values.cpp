// Postgres binary values <-> Python objects (see pg_values.hpp). Decoding and encoding use the pure
// codecs of src/pg/binary.hpp; this file only builds and reads Python objects.
#include "py/pg_values.hpp"

#include "pg/binary.hpp"
#include "pg/types.hpp"

#include <datetime.h>

#include <cstdarg>
#include <string>
#include <vector>

namespace puff::py {

namespace {

struct Imports {
  bool ready = false;
  PyObject* decimal = nullptr;      // decimal.Decimal
  PyObject* uuid = nullptr;         // uuid.UUID
  PyObject* json_loads = nullptr;
  PyObject* json_dumps = nullptr;
  PyObject* ip_interface = nullptr;
  PyObject* ip_network = nullptr;
  PyObject* utc = nullptr;          // datetime.timezone.utc
  PyObject* timezone = nullptr;     // datetime.timezone
  PyObject* json_scan = nullptr;    // json's C scanner: scan(text, 0) -> (value, end)
  PyObject* uuid_int = nullptr;     // UUID's slot descriptors (UUID.__init__ is Python code: a
  PyObject* uuid_is_safe = nullptr;  // UUID is built as __init__ would, from C)
  PyObject* uuid_safe_unknown = nullptr;  // uuid.SafeUUID.unknown
};
Imports g;

PyObject* import_attr(const char* mod, const char* attr) {
  PyObject* m = PyImport_ImportModule(mod);
  if (!m) return nullptr;
  PyObject* a = PyObject_GetAttrString(m, attr);
  Py_DECREF(m);
  return a;
}

PyObject* utf8(std::string_view s) { return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr); }

PyObject* call1(PyObject* fn, PyObject* arg) {  // steals arg
  if (!arg) return nullptr;
  PyObject* r = PyObject_CallOneArg(fn, arg);
  Py_DECREF(arg);
  return r;
}

PyObject* bad(pg::Oid type, pg::Error e) {
  return raise_data_error("cannot decode a value of type oid %u: %s", static_cast<unsigned>(type), pg::describe(e));
}

PyObject* tz_from_offset(std::int32_t seconds) {
  if (seconds == 0) return Py_NewRef(g.utc);
  PyObject* delta = PyDelta_FromDSU(0, seconds, 0);
  return call1(g.timezone, delta);
}

PyObject* decode_array_value(pg::Oid type, std::string_view in);

/** jsonb's text (server-made: no surrounding white space) through json's C scanner, which
 *  json.loads reaches only after two Python frames and a regex; json.loads for anything else, so
 *  errors read as they would from it. */
PyObject* json_value(std::string_view text) {
  PyObject* s = utf8(text);
  if (!s) return nullptr;
  PyObject* args[] = {s, nullptr};
  args[1] = PyLong_FromLong(0);
  PyObject* r = args[1] ? PyObject_Vectorcall(g.json_scan, args, 2, nullptr) : nullptr;
  Py_XDECREF(args[1]);
  if (r && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2 &&
      PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1)) == PyUnicode_GET_LENGTH(s)) {
    PyObject* v = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    Py_DECREF(r);
    Py_DECREF(s);
    return v;
  }
  Py_XDECREF(r);
  PyErr_Clear();
  return call1(g.json_loads, s);
}

/** uuid.UUID(bytes=b) without running UUID.__init__: what it stores, set through the slots. */
PyObject* new_uuid(const unsigned char* bytes16) {
  auto* type = reinterpret_cast<PyTypeObject*>(g.uuid);
  PyObject* u = type->tp_alloc(type, 0);
  if (!u) return nullptr;
  PyObject* value = _PyLong_FromByteArray(bytes16, 16, /*little_endian=*/0, /*is_signed=*/0);
  if (!value || Py_TYPE(g.uuid_int)->tp_descr_set(g.uuid_int, u, value) < 0 ||
      Py_TYPE(g.uuid_is_safe)->tp_descr_set(g.uuid_is_safe, u, g.uuid_safe_unknown) < 0) {
    Py_XDECREF(value);
    Py_DECREF(u);
    return nullptr;
  }
  Py_DECREF(value);
  return u;
}

}  // namespace

bool pg_values_init() {
  if (g.ready) return true;
  PyDateTime_IMPORT;
  if (!PyDateTimeAPI) return false;
  g.decimal = import_attr("decimal", "Decimal");
  g.uuid = g.decimal ? import_attr("uuid", "UUID") : nullptr;
  g.json_loads = g.uuid ? import_attr("json", "loads") : nullptr;
  g.json_dumps = g.json_loads ? import_attr("json", "dumps") : nullptr;
  g.ip_interface = g.json_dumps ? import_attr("ipaddress", "ip_interface") : nullptr;
  g.ip_network = g.ip_interface ? import_attr("ipaddress", "ip_network") : nullptr;
  g.timezone = g.ip_network ? import_attr("datetime", "timezone") : nullptr;
  g.utc = g.timezone ? PyObject_GetAttrString(g.timezone, "utc") : nullptr;
  if (g.utc) {
    PyObject* decoder = import_attr("json.decoder", "JSONDecoder");
    PyObject* inst = decoder ? PyObject_CallNoArgs(decoder) : nullptr;
    g.json_scan = inst ? PyObject_GetAttrString(inst, "scan_once") : nullptr;
    Py_XDECREF(inst);
    Py_XDECREF(decoder);
  }
  g.uuid_int = g.json_scan ? PyObject_GetAttrString(g.uuid, "int") : nullptr;
  g.uuid_is_safe = g.uuid_int ? PyObject_GetAttrString(g.uuid, "is_safe") : nullptr;
  if (g.uuid_is_safe) {
    PyObject* safe = import_attr("uuid", "SafeUUID");
    g.uuid_safe_unknown = safe ? PyObject_GetAttrString(safe, "unknown") : nullptr;
    Py_XDECREF(safe);
  }
  g.ready = g.uuid_safe_unknown != nullptr && Py_TYPE(g.uuid_int)->tp_descr_set &&
            Py_TYPE(g.uuid_is_safe)->tp_descr_set && PyType_Check(g.uuid);
  if (g.uuid_safe_unknown && !g.ready)
    PyErr_SetString(PyExc_RuntimeError, "puff: uuid.UUID has no 'int'/'is_safe' slots");
  return g.ready;
}

PgErrorClasses& pg_error_classes() {
  static PgErrorClasses c;
  return c;
}

PyObject* raise_data_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  PyObject* msg = PyUnicode_FromFormatV(fmt, ap);
  va_end(ap);
  if (!msg) return nullptr;
  PyObject* cls = pg_error_classes().data_error ? pg_error_classes().data_error : PyExc_ValueError;
  PyErr_SetObject(cls, msg);
  Py_DECREF(msg);
  return nullptr;
}

PyObject* raise_pg_error(const pg::ErrorInfo& e) {
  PyObject* factory = pg_error_classes().factory;
  if (!factory) {
    PyErr_Format(PyExc_RuntimeError, "%s: %s", e.sqlstate.c_str(), e.message.c_str());
    return nullptr;
  }
  PyObject* d = PyDict_New();
  if (!d) return nullptr;
  auto put = [&](const char* k, const std::string& v) {
    if (v.empty()) return true;
    PyObject* s = PyUnicode_DecodeUTF8(v.data(), static_cast<Py_ssize_t>(v.size()), "replace");
    bool ok = s && PyDict_SetItemString(d, k, s) == 0;
    Py_XDECREF(s);
    return ok;
  };
  bool ok = put("sqlstate", e.sqlstate) && put("severity", e.severity) && put("message_primary", e.message) &&
            put("message_detail", e.detail) && put("message_hint", e.hint) && put("context", e.context) &&
            put("schema_name", e.schema) && put("table_name", e.table) && put("column_name", e.column) &&
            put("datatype_name", e.datatype) && put("constraint_name", e.constraint) &&
            (e.position == 0 || put("statement_position", std::to_string(e.position))) &&
            PyDict_SetItemString(d, "connection", e.connection ? Py_True : Py_False) == 0;
  if (!ok) {
    Py_DECREF(d);
    return nullptr;
  }
  PyObject* exc = PyObject_CallOneArg(factory, d);
  Py_DECREF(d);
  if (!exc) return nullptr;
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
  Py_DECREF(exc);
  return nullptr;
}

PyObject* decode_value(pg::Oid type, std::string_view in) {
  using pg::Codec;
  pg::Error e = pg::Error::kNone;
  switch (pg::codec_of(type)) {
    case Codec::kBool: {
      bool v;
      if ((e = pg::decode_bool(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyBool_FromLong(v);
    }
    case Codec::kInt2: {
      std::int16_t v;
      if ((e = pg::decode_int2(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyLong_FromLong(v);
    }
    case Codec::kInt4: {
      std::int32_t v;
      if ((e = pg::decode_int4(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyLong_FromLong(v);
    }
    case Codec::kInt8: {
      std::int64_t v;
      if ((e = pg::decode_int8(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyLong_FromLongLong(v);
    }
    case Codec::kOid: {
      std::uint32_t v;
      if ((e = pg::decode_oid(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyLong_FromUnsignedLong(v);
    }
    case Codec::kFloat4: {
      float v;
      if ((e = pg::decode_float4(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyFloat_FromDouble(v);
    }
    case Codec::kFloat8: {
      double v;
      if ((e = pg::decode_float8(in, v)) != pg::Error::kNone) return bad(type, e);
      return PyFloat_FromDouble(v);
    }
    case Codec::kNumeric: {
      std::string text;
      if ((e = pg::decode_numeric(in, text)) != pg::Error::kNone) return bad(type, e);
      return call1(g.decimal, utf8(text));
    }
    case Codec::kText:
      return utf8(in);
    case Codec::kJson:
      return call1(g.json_loads, utf8(in));
    case Codec::kJsonb: {
      std::string_view text;
      if ((e = pg::decode_jsonb(in, text)) != pg::Error::kNone) return bad(type, e);
      return json_value(text);
    }
    case Codec::kBytea:
      return PyBytes_FromStringAndSize(in.data(), static_cast<Py_ssize_t>(in.size()));
    case Codec::kDate: {
      pg::Date d;
      if ((e = pg::decode_date(in, d)) != pg::Error::kNone) return bad(type, e);
      if (!d.in_python_range())
        return raise_data_error("date out of Python's range (years 1..9999): %s",
                                d.special == pg::Special::kInfinity      ? "infinity"
                                : d.special == pg::Special::kNegInfinity ? "-infinity"
                                                                         : "year outside 1..9999");
      return PyDate_FromDate(d.civil.year, d.civil.month, d.civil.day);
    }
    case Codec::kTime: {
      pg::Time t;
      if ((e = pg::decode_time(in, t)) != pg::Error::kNone) return bad(type, e);
      if (!t.in_python_range()) return raise_data_error("time 24:00:00 is out of Python's range");
      return PyTime_FromTime(t.time.hour, t.time.minute, t.time.second, t.time.microsecond);
    }
    case Codec::kTimetz: {
      pg::TimeTz t;
      if ((e = pg::decode_timetz(in, t)) != pg::Error::kNone) return bad(type, e);
      if (!t.in_python_range()) return raise_data_error("time 24:00:00 is out of Python's range");
      PyObject* tz = tz_from_offset(t.utc_offset);
      if (!tz) return nullptr;
      PyObject* r = PyDateTimeAPI->Time_FromTime(t.time.hour, t.time.minute, t.time.second, t.time.microsecond, tz,
                                                 PyDateTimeAPI->TimeType);
      Py_DECREF(tz);
      return r;
    }
    case Codec::kTimestamp:
    case Codec::kTimestamptz: {
      pg::Timestamp ts;
      if ((e = pg::decode_timestamp(in, ts)) != pg::Error::kNone) return bad(type, e);
      if (!ts.in_python_range())
        return raise_data_error("timestamp out of Python's range (years 1..9999): %s",
                                ts.special == pg::Special::kInfinity      ? "infinity"
                                : ts.special == pg::Special::kNegInfinity ? "-infinity"
                                                                          : "year outside 1..9999");
      PyObject* tz = pg::codec_of(type) == Codec::kTimestamptz ? g.utc : Py_None;
      return PyDateTimeAPI->DateTime_FromDateAndTime(ts.date.year, ts.date.month, ts.date.day, ts.time.hour,
                                                     ts.time.minute, ts.time.second, ts.time.microsecond, tz,
                                                     PyDateTimeAPI->DateTimeType);
    }
    case Codec::kInterval: {
      pg::Interval iv;
      pg::Timedelta td;
      if ((e = pg::decode_interval(in, iv)) != pg::Error::kNone) return bad(type, e);
      if ((e = pg::interval_to_timedelta(iv, td)) != pg::Error::kNone)
        return raise_data_error("interval out of timedelta's range");
      return PyDelta_FromDSU(static_cast<int>(td.days), td.seconds, td.microseconds);
    }
    case Codec::kUuid: {
      pg::Uuid u;
      if ((e = pg::decode_uuid(in, u)) != pg::Error::kNone) return bad(type, e);
      return new_uuid(u.data());
    }
    case Codec::kInet:
    case Codec::kCidr: {
      pg::Inet v;
      bool cidr = pg::codec_of(type) == Codec::kCidr;
      if ((e = cidr ? pg::decode_cidr(in, v) : pg::decode_inet(in, v)) != pg::Error::kNone) return bad(type, e);
      return call1(cidr ? g.ip_network : g.ip_interface, utf8(pg::format_inet(v)));
    }
    case Codec::kArray:
      return decode_array_value(type, in);
    case Codec::kUnknown:
      break;
  }
  // No codec (enums, ranges, ...): an enum's binary form is its label, so valid UTF-8 is returned
  // as str; anything else as the raw bytes (docs/postgres.md, "Unknown types").
  PyObject* s = PyUnicode_DecodeUTF8(in.data(), static_cast<Py_ssize_t>(in.size()), nullptr);
  if (s) return s;
  PyErr_Clear();
  return PyBytes_FromStringAndSize(in.data(), static_cast<Py_ssize_t>(in.size()));
}

namespace {

PyObject* build_level(const pg::Array& a, int dim, std::size_t& pos, pg::Oid elem) {
  Py_ssize_t n = a.dims[static_cast<std::size_t>(dim)].size;
  PyObject* list = PyList_New(n);
  if (!list) return nullptr;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item;
    if (dim + 1 < a.ndim) {
      item = build_level(a, dim + 1, pos, elem);
    } else {
      const auto& el = a.elements[pos++];
      item = el ? decode_value(elem, *el) : Py_NewRef(Py_None);
    }
    if (!item) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, i, item);
  }
  return list;
}

PyObject* decode_array_value(pg::Oid type, std::string_view in) {
  pg::Array a;
  pg::Oid elem = pg::element_type_of(type);
  if (auto e = pg::decode_array(in, a, elem); e != pg::Error::kNone) return bad(type, e);
  if (a.ndim == 0) return PyList_New(0);
  std::size_t pos = 0;
  return build_level(a, 0, pos, elem);
}

}  // namespace

PyObject* decode_rows(const pg::Result& r) {
  int rows = r.row_count(), cols = r.column_count();
  std::vector<pg::Oid> types(static_cast<std::size_t>(cols));
  std::vector<bool> text(static_cast<std::size_t>(cols));
  for (int c = 0; c < cols; ++c) {
    types[static_cast<std::size_t>(c)] = r.column_type(c);
    text[static_cast<std::size_t>(c)] = r.column_format(c) == pg::Format::Text;
  }
  PyObject* list = PyList_New(rows);
  if (!list) return nullptr;
  // Nothing built here can form a cycle, yet every tuple, dict and list counts towards the cyclic
  // GC's next collection, which would then scan the whole half-built result again and again.
  struct GcPause {
    int was_enabled = PyGC_Disable();
    ~GcPause() {
      if (was_enabled) PyGC_Enable();
    }
  } gc_pause;
  for (int i = 0; i < rows; ++i) {
    PyObject* row = PyTuple_New(cols);
    if (!row) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, i, row);
    for (int c = 0; c < cols; ++c) {
      auto cell = r.cell(i, c);
      PyObject* v;
      if (cell.null)
        v = Py_NewRef(Py_None);
      else if (text[static_cast<std::size_t>(c)])
        v = utf8(cell.view());
      else
        v = decode_value(types[static_cast<std::size_t>(c)], cell.view());
      if (!v) {
        Py_DECREF(list);
        return nullptr;
      }
      PyTuple_SET_ITEM(row, c, v);
    }
  }
  return list;
}

}  // namespace puff::py
