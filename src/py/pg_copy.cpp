// COPY steps for PgLease.copy() (the protocol side is src/pg/connection_copy.cpp; the Python API
// is puff/_pg_copy.py). Python thread only.
#include "py/pg_values.hpp"

namespace puff::py {

PyObject* build_copy_result(const pg::Result& r) {
  switch (r.status()) {
    case pg::Result::Status::CopyIn:
      return PyUnicode_FromString("in");
    case pg::Result::Status::CopyOut:
      return PyUnicode_FromString("out");
    default: {
      auto d = r.copy_data();
      return PyBytes_FromStringAndSize(d.data(), static_cast<Py_ssize_t>(d.size()));
    }
  }
}

bool parse_copy_step(PyObject* const* args, Py_ssize_t nargs, pg::Query& q) {
  if (nargs < 1 || nargs > 2 || !PyLong_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "copy(step: int, data: bytes | str = b'')");
    return false;
  }
  long step = PyLong_AsLong(args[0]);
  if (step < static_cast<long>(pg::CopyStep::Start) || step > static_cast<long>(pg::CopyStep::Read)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "copy: unknown step");
    return false;
  }
  q.copy = static_cast<pg::CopyStep>(step);
  q.prepare = false;
  if (nargs == 2 && args[1] != Py_None) {
    PyObject* d = args[1];
    if (PyUnicode_Check(d)) {
      Py_ssize_t n;
      const char* s = PyUnicode_AsUTF8AndSize(d, &n);
      if (!s) return false;
      q.sql.assign(s, static_cast<std::size_t>(n));
    } else {
      Py_buffer view;
      if (PyObject_GetBuffer(d, &view, PyBUF_SIMPLE) < 0) return false;
      q.sql.assign(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
      PyBuffer_Release(&view);
    }
  }
  if (q.copy == pg::CopyStep::Start && q.sql.find('\0') != std::string::npos) {
    PyErr_SetString(PyExc_ValueError, "copy: the statement contains a NUL character");
    return false;
  }
  return true;
}

}  // namespace puff::py
