// A pre-completed awaitable: what receive()/send()/WebSocket calls return on Puff's loop when
// nothing has to wait. Cheaper than an asyncio future (no loop call, no callbacks).
#include <new>

#include "py/http_bridge.hpp"
#include "py/hub.hpp"

namespace puff::py {

namespace {

/** Who made an awaitable and takes back what it would have delivered when it is dropped or
 *  cancelled unawaited (an ASGI receive() event: the next receive() hands it out instead). */
struct GiveBack {
  PyObject* owner = nullptr;  // owned
  void (*fn)(PyObject* owner, PyObject* value) = nullptr;  // value: borrowed, the owner keeps a reference

  void give(PyObject* value) {
    if (owner && fn && value) fn(owner, value);
  }
  void clear() { Py_CLEAR(owner); }
};

struct ReadyObject {
  PyObject_HEAD
  PyObject* value;  // owned; null once delivered
  GiveBack back;
};

PyObject* ready_await(PyObject* self) { return Py_NewRef(self); }

/** Raises StopIteration(value) (value stolen; may be null for None), as tp_iternext returns. */
PyObject* stop_with(PyObject* value) {
  if (!value || value == Py_None) {
    Py_XDECREF(value);
    PyErr_SetNone(PyExc_StopIteration);
    return nullptr;
  }
  PyObject* exc = PyObject_CallOneArg(PyExc_StopIteration, value);
  Py_DECREF(value);
  if (exc) {
    PyErr_SetObject(PyExc_StopIteration, exc);
    Py_DECREF(exc);
  }
  return nullptr;
}

PyObject* ready_next(PyObject* o) {
  auto* self = reinterpret_cast<ReadyObject*>(o);
  PyObject* v = self->value;
  self->value = nullptr;
  return stop_with(v);
}

void ready_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<ReadyObject*>(o);
  self->back.give(self->value);  // never awaited: the event is not lost
  Py_CLEAR(self->value);
  self->back.clear();
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

// ---- the coroutine protocol (send/throw/close), so that asyncio.create_task(receive()) and
// the like accept these objects as they accept the coroutines other servers hand out ----------

/** Raises what coroutine.throw(typ[, val[, tb]]) was given. */
PyObject* raise_thrown(PyObject* args) {
  PyObject *typ, *val = nullptr, *tb = nullptr;
  if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) return nullptr;
  if (PyExceptionInstance_Check(typ)) {
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(typ)), typ);
  } else if (PyExceptionClass_Check(typ)) {
    PyErr_SetObject(typ, val && val != Py_None ? val : nullptr);
  } else {
    PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
  }
  return nullptr;
}

PyObject* ready_send_method(PyObject* o, PyObject*) { return ready_next(o); }

/** throw() or close() before the value was taken (a task made of it, cancelled before it ran):
 *  the value goes back to its owner. */
PyObject* ready_close(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<ReadyObject*>(o);
  self->back.give(self->value);
  Py_CLEAR(self->value);
  Py_RETURN_NONE;
}

PyObject* ready_throw(PyObject* o, PyObject* args) {
  PyObject* r = ready_close(o, nullptr);
  Py_XDECREF(r);
  return raise_thrown(args);
}

PyMethodDef ready_methods[] = {
    {"send", ready_send_method, METH_O, "coroutine.send(): the value, as StopIteration."},
    {"throw", ready_throw, METH_VARARGS, "coroutine.throw(): raises what it is given."},
    {"close", ready_close, METH_NOARGS, "coroutine.close()."},
    {nullptr, nullptr, 0, nullptr},
};

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
  t.tp_methods = ready_methods;
  return t;
}();

/** An asyncio future as a coroutine: what the ASGI callables return when they have to wait.
 *  Awaited, it does what the future's own __await__ does (yields the future to the task, then
 *  returns its result); it also has send/throw/close. */
struct WaitingObject {
  PyObject_HEAD
  PyObject* fut;  // owned; null once finished
  bool yielded;
  GiveBack back;
};

PySendResult waiting_step(WaitingObject* self, PyObject** result) {
  static PyObject* s_result = PyUnicode_InternFromString("result");
  static PyObject* s_blocking = PyUnicode_InternFromString("_asyncio_future_blocking");
  if (!self->fut) {
    PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited coroutine");
    *result = nullptr;
    return PYGEN_ERROR;
  }
  int is_done = future_done(self->fut);
  if (is_done < 0) {
    *result = nullptr;
    return PYGEN_ERROR;
  }
  if (!is_done) {
    if (self->yielded) {
      PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
      *result = nullptr;
      return PYGEN_ERROR;
    }
    if (PyObject_SetAttr(self->fut, s_blocking, Py_True) < 0) {
      *result = nullptr;
      return PYGEN_ERROR;
    }
    self->yielded = true;
    *result = Py_NewRef(self->fut);  // the task waits for it, then sends None
    return PYGEN_NEXT;
  }
  PyObject* fut = self->fut;
  self->fut = nullptr;
  *result = PyObject_CallMethodNoArgs(fut, s_result);
  Py_DECREF(fut);
  return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

PySendResult waiting_send(PyObject* o, PyObject*, PyObject** result) {
  return waiting_step(reinterpret_cast<WaitingObject*>(o), result);
}

PyObject* waiting_next(PyObject* o) {
  PyObject* r = nullptr;
  PySendResult s = waiting_step(reinterpret_cast<WaitingObject*>(o), &r);
  if (s != PYGEN_RETURN) return s == PYGEN_NEXT ? r : nullptr;
  return stop_with(r);
}

PyObject* waiting_send_method(PyObject* o, PyObject*) { return waiting_next(o); }

/** Lets go of the future without taking its outcome: cancelled if still pending, and a result it
 *  already has (an event delivered just before a cancellation reached the task) goes back to the
 *  owner. Keeps the exception being raised, if any. */
void waiting_release(WaitingObject* self) {
  PyObject* fut = self->fut;
  if (!fut) return;
  self->fut = nullptr;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  int is_done = future_done(fut);
  if (is_done == 0) {
    PyObject* r = PyObject_CallMethod(fut, "cancel", nullptr);
    Py_XDECREF(r);
  } else if (is_done == 1 && self->back.owner) {
    PyObject* cancelled = PyObject_CallMethod(fut, "cancelled", nullptr);
    if (cancelled == Py_False) {
      PyObject* result = PyObject_CallMethod(fut, "result", nullptr);
      self->back.give(result);
      Py_XDECREF(result);
    }
    Py_XDECREF(cancelled);
  }
  PyErr_Clear();
  PyErr_Restore(type, value, tb);
  Py_DECREF(fut);
}

PyObject* waiting_close(PyObject* o, PyObject*) {
  waiting_release(reinterpret_cast<WaitingObject*>(o));
  Py_RETURN_NONE;
}

PyObject* waiting_throw(PyObject* o, PyObject* args) {
  waiting_release(reinterpret_cast<WaitingObject*>(o));
  return raise_thrown(args);
}

void waiting_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<WaitingObject*>(o);
  waiting_release(self);  // dropped unawaited: the operation ends, a delivered event goes back
  self->back.clear();
  PyObject_Free(o);
}

PyAsyncMethods waiting_async = {ready_await, nullptr, nullptr, waiting_send};

PyMethodDef waiting_methods[] = {
    {"send", waiting_send_method, METH_O, "coroutine.send()."},
    {"throw", waiting_throw, METH_VARARGS, "coroutine.throw(): cancels the future, raises what it is given."},
    {"close", waiting_close, METH_NOARGS, "coroutine.close(): cancels the future."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject WaitingType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.Waiting";
  t.tp_basicsize = sizeof(WaitingObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "An asyncio future, awaitable as a coroutine.";
  t.tp_as_async = &waiting_async;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = waiting_next;
  t.tp_dealloc = waiting_dealloc;
  t.tp_methods = waiting_methods;
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
      new (&r->back) GiveBack();
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
  new (&r->back) GiveBack();
  return reinterpret_cast<PyObject*>(r);
}

}  // namespace

PyObject* make_ready(PyObject* value) { return ready(value); }

int future_done(PyObject* fut) {
  static PyObject* s_done = PyUnicode_InternFromString("done");
  PyObject* done = PyObject_CallMethodNoArgs(fut, s_done);
  int r = done ? PyObject_IsTrue(done) : -1;
  Py_XDECREF(done);
  return r;
}

void keep_given_back(PyObject*& list, PyObject* event) {
  if (!list) list = PyList_New(0);
  if (!list || PyList_Append(list, event) < 0) PyErr_Clear();  // out of memory: it is lost
}

PyObject* take_given_back(PyObject* list) {
  if (!list || PyList_GET_SIZE(list) == 0) return nullptr;
  PyObject* first = Py_NewRef(PyList_GET_ITEM(list, 0));
  if (PySequence_DelItem(list, 0) < 0) PyErr_Clear();
  return first;
}

PyObject* as_coroutine(PyObject* awaitable, PyObject* owner, void (*give_back)(PyObject* owner, PyObject* value)) {
  if (!awaitable || !coroutine_mode()) return awaitable;  // a greenlet got the value itself
  GiveBack back;
  if (owner && give_back) {
    back.owner = Py_NewRef(owner);
    back.fn = give_back;
  }
  if (Py_TYPE(awaitable) == &ReadyType) {
    auto* r = reinterpret_cast<ReadyObject*>(awaitable);
    if (r->value) r->back = back;  // not the shared None
    else back.clear();
    return awaitable;
  }
  auto* w = PyObject_New(WaitingObject, &WaitingType);
  if (!w) {
    back.clear();
    Py_DECREF(awaitable);
    return nullptr;
  }
  w->fut = awaitable;
  w->yielded = false;
  new (&w->back) GiveBack(back);
  return reinterpret_cast<PyObject*>(w);
}

bool add_ready_type() {
  if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&WaitingType) < 0) return false;
  // Registered as coroutines: asyncio.create_task() and iscoroutine() accept them.
  PyObject* abc = PyImport_ImportModule("collections.abc");
  PyObject* coroutine = abc ? PyObject_GetAttrString(abc, "Coroutine") : nullptr;
  PyObject* r1 = coroutine ? PyObject_CallMethod(coroutine, "register", "O", &ReadyType) : nullptr;
  PyObject* r2 = r1 ? PyObject_CallMethod(coroutine, "register", "O", &WaitingType) : nullptr;
  bool ok = r2 != nullptr;
  Py_XDECREF(r2);
  Py_XDECREF(r1);
  Py_XDECREF(coroutine);
  Py_XDECREF(abc);
  return ok;
}

}  // namespace puff::py
