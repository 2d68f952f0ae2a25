// C++ convenience over puff.h: write an async native function as two lambdas.
//
//   (Python.h first)
//   #include <puff/native.hpp>
//   static const puff_capi* api;
//   static PyObject* add_async(PyObject*, PyObject* arg) {
//     long n = PyLong_AsLong(arg);
//     return puff::native::call(api,
//         [n] { return n + 1; },                                  // I/O thread, no GIL
//         [](long v) { return PyLong_FromLong(v); });            // Python thread, GIL held
//   }
//
// Include Python.h before this header. A C++ exception thrown by the work lambda becomes a
// Python RuntimeError carrying its what(); it never crosses into Python or a greenlet switch.
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "puff/puff.h"

namespace puff::native {

/** Imports puff._native and returns its C API, or NULL with a Python exception set. */
inline const puff_capi* import_capi() {
  auto* api = static_cast<const puff_capi*>(PyCapsule_Import(PUFF_CAPI_CAPSULE, 0));
  if (api && api->version < PUFF_CAPI_VERSION) {
    PyErr_SetString(PyExc_ImportError, "puff._native C API is older than this extension needs");
    return nullptr;
  }
  return api;
}

template <class Work, class Convert>
struct LambdaOp : puff_op {
  using Value = std::invoke_result_t<Work&>;
  LambdaOp(const puff_capi* a, Work w, Convert c) : puff_op{}, api(a), work(std::move(w)), convert(std::move(c)) {
    puff_op::run = &LambdaOp::run_op;
    puff_op::result = &LambdaOp::result_op;
    puff_op::destroy = &LambdaOp::destroy_op;
  }
  const puff_capi* api;
  Work work;
  Convert convert;
  std::optional<Value> value;
  std::string error;

  static void run_op(puff_op* op) {
    auto* self = static_cast<LambdaOp*>(op);
    try {
      self->value.emplace(self->work());
    } catch (const std::exception& e) {
      self->error = e.what();
      if (self->error.empty()) self->error = "native function failed";
    } catch (...) {
      self->error = "native function failed with an unknown C++ exception";
    }
    self->api->complete(op);
  }
  static PyObject* result_op(puff_op* op) {
    auto* self = static_cast<LambdaOp*>(op);
    if (!self->value) {
      PyErr_SetString(PyExc_RuntimeError, self->error.c_str());
      return nullptr;
    }
    try {
      return self->convert(std::move(*self->value));
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      return nullptr;
    }
  }
  static void destroy_op(puff_op* op) { delete static_cast<LambdaOp*>(op); }
};

/** Starts `work` on a Puff I/O thread and delivers `convert(work())` to the caller (see puff.h
 *  for the thread rules). Returns what api->start returns. */
template <class Work, class Convert>
PyObject* call(const puff_capi* api, Work work, Convert convert) {
  using Op = LambdaOp<Work, Convert>;
  auto* op = new Op(api, std::move(work), std::move(convert));
  return api->start(op);
}

}  // namespace puff::native
