// puff._native: the module definition. Every function that may switch greenlets is a raw
// CPython function (METH_O / METH_NOARGS / METH_FASTCALL), never a pybind11 binding.
#include "py/hub.hpp"
#include "py/http_bridge.hpp"
#include "py/ops.hpp"
#include "py/pg_values.hpp"

namespace puff::py {
namespace {

PyObject* io_thread_index(PyObject*, PyObject*) { return PyLong_FromLong(core::IoPool::current_index()); }

PyMethodDef kMethods[] = {
    {"start", runtime_start, METH_O,
     "start(settings: dict) -> dict\nStarts the I/O threads. Main greenlet of the main thread; once per process."},
    {"stop", runtime_stop, METH_NOARGS, "stop()\nStops and joins the I/O threads; pending completions are dropped."},
    {"run_hub", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(run_hub)), METH_FASTCALL,
     "run_hub(signal_fd=-1)\nRuns the greenlet scheduler until stop_hub(). Main greenlet only."},
    {"stop_hub", stop_hub, METH_NOARGS, "stop_hub()\nMakes run_hub() (or the asyncio drain) return soon. Any thread."},
    {"flush", flush, METH_NOARGS, "flush()\nPosts the native calls started so far to the I/O threads."},
    {"drain", drain, METH_NOARGS, "drain()\nDelivers queued completions; the asyncio reader callback."},
    {"drain_loop", drain_loop, METH_NOARGS,
     "drain_loop()\nPolls the Python thread's own I/O loop, then drain(): the reader callback of loop_fd()."},
    {"schedule", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(schedule)), METH_FASTCALL,
     "schedule(greenlet, value=None)\nResumes greenlet with value from the hub soon."},
    {"yield_now", yield_now, METH_NOARGS, "yield_now()\nLets other ready greenlets run. May switch greenlets."},
    {"set_loop", set_loop, METH_O, "set_loop(loop_or_None)\nDeclares Puff's asyncio loop (enables awaitable mode)."},
    {"wakeup_fd", wakeup_fd, METH_NOARGS, "wakeup_fd() -> int\nThe completion queue's eventfd."},
    {"loop_fd", loop_fd, METH_NOARGS,
     "loop_fd() -> int\nReadable while the Python thread's own I/O loop has work: call drain() then."},
    {"stats", stats, METH_NOARGS, "stats() -> dict\nPending native calls, ready greenlets, I/O threads, the hub's waits (sleeps) and those that spun first (spun_sleeps)."},
    {"sleep_ms", sleep_ms, METH_O, "sleep_ms(ms)\nDual-mode native timer."},
    {"noop_async", noop_async, METH_NOARGS, "noop_async()\nDual-mode round trip to an I/O thread."},
    {"read_file_bytes", read_file_bytes, METH_O, "read_file_bytes(path) -> bytes\nDual-mode file read."},
    {"run_blocking", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(run_blocking)), METH_FASTCALL,
     "run_blocking(fn, on_done)\nRuns fn() on the blocking pool, then on_done(value, exc) on the Python thread."},
    {"blocking_stats", blocking_stats, METH_NOARGS, "blocking_stats() -> dict"},
    {"io_thread_index", io_thread_index, METH_NOARGS, "io_thread_index() -> int\n-1 unless on an I/O thread."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT, "puff._native", "Puff's native runtime (C++).", -1, kMethods,
    nullptr, nullptr, nullptr, nullptr,
};

}  // namespace
}  // namespace puff::py

PyMODINIT_FUNC PyInit__native() {
  PyObject* m = PyModule_Create(&puff::py::kModule);
  if (!m) return nullptr;
  if (!puff::py::add_ops_types(m) || !puff::py::add_capi(m) || !puff::py::add_http_types(m) ||
      !puff::py::add_pg_types(m)) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
