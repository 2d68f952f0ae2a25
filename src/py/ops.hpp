// Built-in async native functions exposed by puff._native (all dual-mode, see hub.hpp start()).
#pragma once

#include "py/pyref.hpp"

#include <functional>

namespace puff::py {

/** sleep_ms(ms): a native timer. May switch greenlets. */
PyObject* sleep_ms(PyObject* self, PyObject* ms);
/** noop_async(): goes to an I/O thread and back; the floor of every native call. May switch greenlets. */
PyObject* noop_async(PyObject* self, PyObject* unused);
/** read_file_bytes(path): the file's bytes, read on an I/O thread. May switch greenlets. */
PyObject* read_file_bytes(PyObject* self, PyObject* path);
/** Adds RetFunc to the module. */
bool add_ops_types(PyObject* module);

/** Python thread. `r` is what start() returned: when it is an asyncio future (a coroutine
 *  caller), `on_cancel` runs if that future is cancelled (task.cancel(), wait_for's timeout), so
 *  the native work can stop early. Returns `r`, or NULL with an exception set (and `r` dropped). */
PyObject* on_future_cancelled(PyObject* r, std::function<void()> on_cancel);

/** run_blocking(fn, on_done): runs fn() on the blocking pool; on_done(value, exc) on the Python thread. */
PyObject* run_blocking(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
/** Python thread: retires the blocking pool (called by runtime stop). */
void shutdown_blocking_pool();
/** blocking_stats() -> dict. */
PyObject* blocking_stats(PyObject* self, PyObject* unused);

/** Adds the _C_API capsule. */
bool add_capi(PyObject* module);

}  // namespace puff::py
