// puff_native_ext: an example extension module whose functions are dual-mode Puff calls.
//
// Each function below hands its work to a Puff I/O thread through Puff's C API capsule
// (include/puff/puff.h). Python then calls it like any Puff function:
//   - from a greenlet (puff.spawn, puff.run(main)): it suspends only that greenlet and returns
//     the value;
//   - from a coroutine on Puff's asyncio loop: it returns an awaitable;
//   - from a @puff.blocking / puff.spawn_blocking thread: it blocks that thread and returns the
//     value;
//   - outside the runtime: it raises RuntimeError.
//
// Rules (DESIGN.md §2): functions that may switch greenlets are raw CPython C-API functions
// (METH_O / METH_NOARGS / METH_FASTCALL), never pybind11 bindings; the work runs on an I/O
// thread without the GIL and must not touch Python objects; C++ exceptions never leave the work
// (puff::native::call turns them into RuntimeError).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <puff/native.hpp>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

const puff_capi* api = nullptr;  // set once at module init

/** Copies a str argument to UTF-8 on the Python thread (the work lambda may not touch it). */
bool utf8_arg(PyObject* arg, const char* what, std::string& out) {
  if (!PyUnicode_Check(arg)) {
    PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(arg)->tp_name);
    return false;
  }
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(arg, &n);
  if (!s) return false;
  out.assign(s, static_cast<std::size_t>(n));
  return true;
}

PyObject* to_str(std::string s) { return PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())); }

// ---- hello_from_cpp_async(name: str) -> str --------------------------------------------------

PyObject* hello_from_cpp_async(PyObject*, PyObject* arg) {
  std::string name;
  if (!utf8_arg(arg, "name", name)) return nullptr;
  return puff::native::call(
      api,
      // I/O thread, no GIL: only C++ values here.
      [name = std::move(name)] {
        return "Hello, " + name + "! (from C++ on I/O thread " + std::to_string(api->io_thread_index()) + ")";
      },
      // Python thread, GIL held: build the Python value.
      &to_str);
}

// ---- fail_async(msg: str): the work throws -> RuntimeError(msg) ------------------------------

PyObject* fail_async(PyObject*, PyObject* arg) {
  std::string msg;
  if (!utf8_arg(arg, "msg", msg)) return nullptr;
  return puff::native::call(
      api, [msg = std::move(msg)]() -> int { throw std::runtime_error(msg); },
      [](int) -> PyObject* { Py_RETURN_NONE; });
}

// ---- convert_fail_async(): the conversion sets a Python exception -> raised to the caller ----

PyObject* convert_fail_async(PyObject*, PyObject*) {
  return puff::native::call(
      api, [] { return api->io_thread_index(); },
      [](int index) -> PyObject* {
        PyErr_Format(PyExc_ValueError, "conversion failed (work ran on I/O thread %d)", index);
        return nullptr;
      });
}

// ---- add_async(a: int, b: int, delay_us: int = 0) -> int -------------------------------------

PyObject* add_async(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 2 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "add_async(a: int, b: int, delay_us: int = 0)");
    return nullptr;
  }
  long long a = PyLong_AsLongLong(args[0]);
  if (a == -1 && PyErr_Occurred()) return nullptr;
  long long b = PyLong_AsLongLong(args[1]);
  if (b == -1 && PyErr_Occurred()) return nullptr;
  long long delay_us = 0;
  if (nargs == 3) {
    delay_us = PyLong_AsLongLong(args[2]);
    if (delay_us == -1 && PyErr_Occurred()) return nullptr;
    if (delay_us < 0 || delay_us > 1'000'000) {
      PyErr_SetString(PyExc_ValueError, "add_async: delay_us must be in [0, 1000000]");
      return nullptr;
    }
  }
  return puff::native::call(
      api,
      [a, b, delay_us] {
        // Stands in for CPU work on the I/O thread (it occupies that thread meanwhile).
        if (delay_us) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
        long long sum;
        if (__builtin_add_overflow(a, b, &sum)) throw std::overflow_error("add_async: 64-bit overflow");
        return sum;
      },
      [](long long v) { return PyLong_FromLongLong(v); });
}

// ---- sleep_async(ms: int) -> None: the plain C interface (puff.h, no native.hpp) ------------
//
// run() only *starts* the work: a helper thread waits and calls api->complete() later, from a
// thread that is not a Puff thread at all. The op must stay alive until destroy() is called,
// which Puff does exactly once on the Python thread, also when the caller was killed meanwhile.

struct SleepOp {
  puff_op op;  // first member: a SleepOp* is a puff_op*
  unsigned long long ms;
};

void sleep_run(puff_op* op) {
  auto* self = reinterpret_cast<SleepOp*>(op);
  try {
    // Threads created here inherit the I/O thread's blocked signal mask.
    std::thread([self] {
      std::this_thread::sleep_for(std::chrono::milliseconds(self->ms));
      api->complete(&self->op);
    }).detach();
  } catch (...) {  // could not start a thread: complete now; result() still reports success
    api->complete(op);
  }
}

PyObject* sleep_result(puff_op*) { Py_RETURN_NONE; }

void sleep_destroy(puff_op* op) { delete reinterpret_cast<SleepOp*>(op); }

PyObject* sleep_async(PyObject*, PyObject* arg) {
  long long ms = PyLong_AsLongLong(arg);
  if (ms == -1 && PyErr_Occurred()) return nullptr;
  if (ms < 0) {
    PyErr_SetString(PyExc_ValueError, "sleep_async: ms must be >= 0");
    return nullptr;
  }
  auto* self = new SleepOp{};
  self->op.run = sleep_run;
  self->op.result = sleep_result;
  self->op.destroy = sleep_destroy;
  self->ms = static_cast<unsigned long long>(ms);
  return api->start(&self->op);  // takes ownership, also on failure
}

// ---- io_thread_count() -> int: an ordinary synchronous function ------------------------------

PyObject* io_thread_count(PyObject*, PyObject*) { return PyLong_FromUnsignedLong(api->io_thread_count()); }

PyMethodDef kMethods[] = {
    {"hello_from_cpp_async", hello_from_cpp_async, METH_O,
     "hello_from_cpp_async(name: str) -> str\n\nGreets `name` from a Puff I/O thread. Dual-mode."},
    {"fail_async", fail_async, METH_O,
     "fail_async(msg: str)\n\nThe native work throws std::runtime_error(msg): raises RuntimeError(msg). Dual-mode."},
    {"convert_fail_async", convert_fail_async, METH_NOARGS,
     "convert_fail_async()\n\nThe work succeeds, the conversion to Python raises ValueError. Dual-mode."},
    {"add_async", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(add_async)), METH_FASTCALL,
     "add_async(a: int, b: int, delay_us: int = 0) -> int\n\na + b computed on an I/O thread after "
     "busying it for delay_us microseconds. Dual-mode."},
    {"sleep_async", sleep_async, METH_O,
     "sleep_async(ms: int) -> None\n\nCompletes after `ms` milliseconds from a helper thread "
     "(the raw puff.h interface). Dual-mode."},
    {"io_thread_count", io_thread_count, METH_NOARGS,
     "io_thread_count() -> int\n\nNumber of Puff I/O threads (0 when the runtime is not running)."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT,
    "puff_native_ext",
    "Example C++ extension for Puff: dual-mode async native functions through Puff's C API.",
    -1,
    kMethods,
};

}  // namespace

PyMODINIT_FUNC PyInit_puff_native_ext() {
  api = puff::native::import_capi();
  if (!api) return nullptr;
  return PyModule_Create(&kModule);
}
