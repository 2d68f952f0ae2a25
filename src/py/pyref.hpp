// Owning references to Python objects. Only src/py/ includes Python.h.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <utility>

namespace puff::py {

/** An owned (strong) reference. Destroying or resetting it decrefs, so it may only be
 *  destroyed on a thread that holds the GIL; moving it between threads is fine. */
class Ref {
 public:
  Ref() = default;
  /** Takes ownership of a new reference (may be null). */
  static Ref steal(PyObject* o) noexcept { return Ref(o); }
  /** Adds a reference to a borrowed one. */
  static Ref borrow(PyObject* o) noexcept {
    Py_XINCREF(o);
    return Ref(o);
  }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref&& o) noexcept {
    if (this != &o) {
      Py_XDECREF(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  Ref(const Ref&) = delete;
  Ref& operator=(const Ref&) = delete;
  ~Ref() { Py_XDECREF(p_); }

  PyObject* get() const noexcept { return p_; }
  /** Gives up ownership: the caller now owns the reference. */
  PyObject* release() noexcept { return std::exchange(p_, nullptr); }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  explicit Ref(PyObject* o) noexcept : p_(o) {}
  PyObject* p_ = nullptr;
};

/** Takes the current exception as one normalized instance with its traceback attached
 *  (3.12's PyErr_GetRaisedException, for 3.11). Null if no exception is set. */
inline PyObject* take_exception() noexcept {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) return nullptr;
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
}

/** Raises `exc` (an exception instance; the reference is stolen). */
inline void raise_exception(PyObject* exc) noexcept {
  PyObject* tb = PyException_GetTraceback(exc);
  PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(exc))), exc, tb);
}

}  // namespace puff::py
