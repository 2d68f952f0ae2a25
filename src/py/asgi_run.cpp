// An ASGI application's coroutine, wrapped for the task that runs one request.
//
// The task runs this wrapper instead of the application's coroutine: it forwards every step and
// learns the outcome inline, where a done-callback would cost a call_soon, a loop round and two
// method calls per request. An exception is reported here and the task ends with None, as a
// server's own task should; cancellation stays cancellation.

#include "py/http_bridge.hpp"

namespace puff::py {

namespace {

struct RunObject {
  PyObject_HEAD
  PyObject* coro;   // owned: app(scope, receive, send)
  PyObject* owner;  // owned: passed to on_end
  void (*on_end)(PyObject* owner, bool returned);
  bool over;
};

PyTypeObject RunType{PyVarObject_HEAD_INIT(nullptr, 0)};
PyObject* g_cancelled_error = nullptr;  // asyncio.CancelledError

/** After the inner coroutine stopped with `r`: ends the request once. Returns what the step
 *  returns (a result for the task) and leaves a CancelledError or GeneratorExit set. */
PySendResult run_outcome(RunObject* self, PySendResult r, PyObject** result) {
  if (r == PYGEN_NEXT) return r;
  self->over = true;
  if (r == PYGEN_RETURN) {
    self->on_end(self->owner, true);
    return r;
  }
  if (PyErr_ExceptionMatches(g_cancelled_error) || PyErr_ExceptionMatches(PyExc_GeneratorExit)) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    self->on_end(self->owner, false);
    PyErr_Restore(t, v, tb);
    return PYGEN_ERROR;
  }
  log_exception("ASGI application failed");
  self->on_end(self->owner, false);
  *result = Py_NewRef(Py_None);
  return PYGEN_RETURN;
}

PySendResult run_am_send(PyObject* o, PyObject* arg, PyObject** result) {
  auto* self = reinterpret_cast<RunObject*>(o);
  if (self->over) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited ASGI application");
    return PYGEN_ERROR;
  }
  return run_outcome(self, PyIter_Send(self->coro, arg, result), result);
}

/** A step's outcome in the generator protocol (send/throw/__next__ as methods). */
PyObject* run_as_method(PySendResult r, PyObject* result) {
  if (r == PYGEN_NEXT) return result;
  if (r == PYGEN_RETURN) {
    if (result == Py_None) {
      Py_DECREF(result);
      PyErr_SetNone(PyExc_StopIteration);
    } else {
      _PyGen_SetStopIterationValue(result);
      Py_DECREF(result);
    }
  }
  return nullptr;
}

PyObject* run_send(PyObject* o, PyObject* arg) {
  PyObject* result = nullptr;
  PySendResult r = run_am_send(o, arg, &result);
  return run_as_method(r, result);
}

PyObject* run_next(PyObject* o) {
  PyObject* result = nullptr;
  PySendResult r = run_am_send(o, Py_None, &result);
  if (r == PYGEN_RETURN) {  // tp_iternext: NULL without an exception means "returned None"
    if (result != Py_None) _PyGen_SetStopIterationValue(result);
    Py_DECREF(result);
    return nullptr;
  }
  return r == PYGEN_NEXT ? result : nullptr;
}

/** The inner coroutine's reply to throw()/close() as a step outcome. */
PySendResult step_of(PyObject* reply, PyObject** result) {
  if (reply) {
    *result = reply;
    return PYGEN_NEXT;
  }
  if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject* value = v ? PyObject_GetAttrString(v, "value") : nullptr;
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    if (!value) PyErr_Clear();
    *result = value ? value : Py_NewRef(Py_None);
    return PYGEN_RETURN;
  }
  return PYGEN_ERROR;
}

PyObject* run_throw(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<RunObject*>(o);
  static PyObject* name = PyUnicode_InternFromString("throw");
  PyObject* meth = PyObject_GetAttr(self->coro, name);
  if (!meth) return nullptr;
  PyObject* reply = PyObject_Vectorcall(meth, args, static_cast<std::size_t>(nargs), nullptr);
  Py_DECREF(meth);
  if (self->over) return reply;
  PyObject* result = nullptr;
  PySendResult r = step_of(reply, &result);
  return run_as_method(run_outcome(self, r, &result), result);
}

PyObject* run_close(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<RunObject*>(o);
  PyObject* r = PyObject_CallMethod(self->coro, "close", nullptr);
  if (!self->over) {
    self->over = true;
    self->on_end(self->owner, false);
  }
  return r;
}

PyObject* run_await(PyObject* o) { return Py_NewRef(o); }

/** cr_* attributes and names come from the application's coroutine (task reprs, stack dumps). */
PyObject* run_getattro(PyObject* o, PyObject* name) {
  PyObject* r = PyObject_GenericGetAttr(o, name);
  if (r || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
  static PyObject* cr = PyUnicode_InternFromString("cr_");
  if (PyUnicode_Check(name) && (PyUnicode_CompareWithASCIIString(name, "__qualname__") == 0 ||
                                PyUnicode_CompareWithASCIIString(name, "__name__") == 0 ||
                                PyUnicode_Tailmatch(name, cr, 0, 3, -1) == 1)) {
    PyErr_Clear();
    return PyObject_GetAttr(reinterpret_cast<RunObject*>(o)->coro, name);
  }
  return nullptr;
}

void run_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<RunObject*>(o);
  PyObject_GC_UnTrack(o);
  Py_CLEAR(self->coro);  // closes it if it never finished (its finally blocks may still send)
  if (!self->over && self->owner) {
    self->over = true;
    self->on_end(self->owner, false);
  }
  Py_CLEAR(self->owner);
  PyObject_GC_Del(o);
}

int run_traverse(PyObject* o, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<RunObject*>(o)->coro);
  return 0;
}

int run_clear(PyObject* o) {
  Py_CLEAR(reinterpret_cast<RunObject*>(o)->coro);
  return 0;
}

PyMethodDef run_methods[] = {
    {"send", run_send, METH_O, "coroutine.send(value)"},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(run_throw)), METH_FASTCALL, "coroutine.throw(...)"},
    {"close", run_close, METH_NOARGS, "coroutine.close()"},
    {nullptr, nullptr, 0, nullptr},
};

PyAsyncMethods run_async = {run_await, nullptr, nullptr, run_am_send};

}  // namespace

bool add_asgi_run_type() {
  RunType.tp_name = "puff._native.AsgiRun";
  RunType.tp_basicsize = sizeof(RunObject);
  RunType.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  RunType.tp_doc = "An ASGI application's coroutine, as run by Puff's task for one request.";
  RunType.tp_dealloc = run_dealloc;
  RunType.tp_traverse = run_traverse;
  RunType.tp_clear = run_clear;
  RunType.tp_as_async = &run_async;
  RunType.tp_iter = PyObject_SelfIter;
  RunType.tp_iternext = run_next;
  RunType.tp_methods = run_methods;
  RunType.tp_getattro = run_getattro;
  if (PyType_Ready(&RunType) < 0) return false;
  PyObject* asyncio = PyImport_ImportModule("asyncio");
  g_cancelled_error = asyncio ? PyObject_GetAttrString(asyncio, "CancelledError") : nullptr;
  Py_XDECREF(asyncio);
  if (!g_cancelled_error) return false;
  // asyncio accepts a task's coroutine by isinstance(coro, collections.abc.Coroutine).
  PyObject* abc = PyImport_ImportModule("collections.abc");
  PyObject* coroutine = abc ? PyObject_GetAttrString(abc, "Coroutine") : nullptr;
  PyObject* reg = coroutine ? PyObject_CallMethod(coroutine, "register", "O", reinterpret_cast<PyObject*>(&RunType)) : nullptr;
  Py_XDECREF(reg);
  Py_XDECREF(coroutine);
  Py_XDECREF(abc);
  return reg != nullptr;
}

PyObject* new_asgi_run(PyObject* coro, PyObject* owner, void (*on_end)(PyObject* owner, bool returned)) {
  auto* self = PyObject_GC_New(RunObject, &RunType);
  if (!self) return nullptr;
  self->coro = Py_NewRef(coro);
  self->owner = Py_NewRef(owner);
  self->on_end = on_end;
  self->over = false;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(self));
  return reinterpret_cast<PyObject*>(self);
}

PyObject* asgi_run_close(PyObject* run) { return run_close(run, nullptr); }

}  // namespace puff::py
