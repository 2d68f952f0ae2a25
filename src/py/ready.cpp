// A pre-completed awaitable: what receive()/send()/WebSocket calls return on Puff's loop when
// nothing has to wait. Cheaper than an asyncio future (no loop call, no callbacks).
#include "py/http_bridge.hpp"

namespace puff::py {

namespace {

struct ReadyObject {
  PyObject_HEAD
  PyObject* value;  // owned; null once delivered
};

PyObject* ready_await(PyObject* self) { return Py_NewRef(self); }

PyObject* ready_next(PyObject* o) {
  auto* self = reinterpret_cast<ReadyObject*>(o);
  PyObject* v = self->value ? self->value : Py_None;
  if (v == Py_None) {
    Py_CLEAR(self->value);
    PyErr_SetNone(PyExc_StopIteration);
    return nullptr;
  }
  PyObject* exc = PyObject_CallOneArg(PyExc_StopIteration, v);
  Py_CLEAR(self->value);
  if (exc) {
    PyErr_SetObject(PyExc_StopIteration, exc);
    Py_DECREF(exc);
  }
  return nullptr;
}

void ready_dealloc(PyObject* o) {
  Py_CLEAR(reinterpret_cast<ReadyObject*>(o)->value);
  PyObject_Free(o);
}

/** `await` on Python 3.10+ (PyIter_Send): hands the value back as a return, without raising
 *  and catching a StopIteration as tp_iternext must. */
PySendResult ready_send(PyObject* o, PyObject*, PyObject** result) {
  auto* self = reinterpret_cast<ReadyObject*>(o);
  *result = self->value ? self->value : Py_NewRef(Py_None);  // the reference moves to the caller
  self->value = nullptr;
  return PYGEN_RETURN;
}

PyAsyncMethods ready_async = {ready_await, nullptr, nullptr, ready_send};

PyTypeObject ReadyType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.Ready";
  t.tp_basicsize = sizeof(ReadyObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "An awaitable whose value is already there.";
  t.tp_as_async = &ready_async;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = ready_next;
  t.tp_dealloc = ready_dealloc;
  return t;
}();

/** Steals `value`. None (what every send() returns) is one shared object: with no value left
 *  to hand over, awaiting it any number of times gives None. */
PyObject* ready(PyObject* value) {
  if (!value) return nullptr;
  if (value == Py_None) {
    static PyObject* none = nullptr;  // Python thread (GIL held); made when first needed
    Py_DECREF(value);
    if (!none) {
      auto* r = PyObject_New(ReadyObject, &ReadyType);
      if (!r) return nullptr;
      r->value = nullptr;
      none = reinterpret_cast<PyObject*>(r);
    }
    return Py_NewRef(none);
  }
  auto* r = PyObject_New(ReadyObject, &ReadyType);
  if (!r) {
    Py_DECREF(value);
    return nullptr;
  }
  r->value = value;
  return reinterpret_cast<PyObject*>(r);
}

}  // namespace

PyObject* make_ready(PyObject* value) { return ready(value); }

bool add_ready_type() { return PyType_Ready(&ReadyType) == 0; }

}  // namespace puff::py
