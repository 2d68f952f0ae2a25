// Built-in async native calls: sleep_ms, read_file_bytes, noop_async, and the ret_func object
// of upstream's wrap_async protocol.
#include "py/ops.hpp"

#include "core/task_pool.hpp"
#include "py/hub.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace puff::py {

namespace {

class SleepOp final : public Op {
 public:
  explicit SleepOp(std::uint64_t ms) : ms_(ms) {}
  void run() override {
    core::run_after_here(*hub()->io, ms_, [this] { complete(); });
  }
  PyObject* result() override { Py_RETURN_NONE; }
  bool spin_for() const noexcept override { return false; }  // due at a known time, not soon

 private:
  std::uint64_t ms_;
};

class NoopOp final : public Op {
 public:
  void run() override { complete(); }
  PyObject* result() override { Py_RETURN_NONE; }
};

class ReadFileOp final : public Op {
 public:
  explicit ReadFileOp(std::string path) : path_(std::move(path)) {}
  // Regular files have no async read on Linux (without io_uring): read on the blocking-I/O
  // threads so a slow disk or a FIFO never stalls an I/O loop.
  void run() override {
    core::post_blocking_io([this] { read_file(); });
  }

 private:
  void read_file() {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      errno_ = errno;
    } else {
      struct stat st {};
      if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno_ = EISDIR;
      } else {
        if (st.st_size > 0) data_.reserve(static_cast<std::size_t>(st.st_size));
        char buf[65536];
        for (;;) {
          ssize_t n = ::read(fd, buf, sizeof buf);
          if (n > 0) {
            data_.append(buf, static_cast<std::size_t>(n));
          } else if (n == 0) {
            break;
          } else if (errno != EINTR) {
            errno_ = errno;
            break;
          }
        }
      }
      ::close(fd);
    }
    complete();
  }

 public:
  PyObject* result() override {
    if (errno_) {
      errno = errno_;
      return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path_.c_str());
    }
    return PyBytes_FromStringAndSize(data_.data(), static_cast<Py_ssize_t>(data_.size()));
  }

 private:
  std::string path_;
  std::string data_;
  int errno_ = 0;
};

// ---- RetFunc: ret_func(value, exception), exactly once, from any thread holding the GIL ----

struct RetFuncObject {
  PyObject_HEAD
  PyObject* target;  // called as target(value, exception) on the Python thread
  int used;
};

/** Carries a ret_func call from another thread to the Python thread. */
class CallLater final : public Completion {
 public:
  CallLater(PyObject* target, PyObject* value, PyObject* exc)
      : target_(Py_NewRef(target)), value_(Py_NewRef(value)), exc_(Py_NewRef(exc)) {}
  ~CallLater() override {
    Py_DECREF(target_);
    Py_DECREF(value_);
    Py_DECREF(exc_);
  }
  void deliver() override {
    PyObject* r = PyObject_CallFunctionObjArgs(target_, value_, exc_, nullptr);
    if (!r) PyErr_WriteUnraisable(target_);
    Py_XDECREF(r);
    delete this;
  }

 private:
  PyObject *target_, *value_, *exc_;
};

PyObject* retfunc_call(PyObject* self_obj, PyObject* args, PyObject* kwargs) {
  auto* self = reinterpret_cast<RetFuncObject*>(self_obj);
  PyObject* value = Py_None;
  PyObject* exc = Py_None;
  static const char* kwlist[] = {"value", "exception", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:ret_func", const_cast<char**>(kwlist), &value, &exc))
    return nullptr;
  if (self->used) {
    PyErr_SetString(PyExc_RuntimeError, "Already used: a ret_func may be called only once");
    return nullptr;
  }
  if (exc != Py_None && !PyExceptionInstance_Check(exc) &&
      !(PyType_Check(exc) && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(exc),
                                              reinterpret_cast<PyTypeObject*>(PyExc_BaseException)))) {
    PyErr_SetString(PyExc_TypeError, "ret_func: exception must be None or an exception");
    return nullptr;
  }
  self->used = 1;
  if (on_python_thread()) return PyObject_CallFunctionObjArgs(self->target, value, exc, nullptr);
  if (!hub()) {
    PyErr_SetString(PyExc_RuntimeError, "the Puff runtime is not running");
    return nullptr;
  }
  push(new CallLater(self->target, value, exc));
  Py_RETURN_NONE;
}

PyObject* retfunc_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  PyObject* target;
  if (!PyArg_ParseTuple(args, "O:RetFunc", &target)) return nullptr;
  if (!PyCallable_Check(target)) {
    PyErr_SetString(PyExc_TypeError, "RetFunc(target): target must be callable");
    return nullptr;
  }
  auto* self = reinterpret_cast<RetFuncObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  self->target = Py_NewRef(target);
  self->used = 0;
  return reinterpret_cast<PyObject*>(self);
}

void retfunc_dealloc(PyObject* self_obj) {
  auto* self = reinterpret_cast<RetFuncObject*>(self_obj);
  PyObject_GC_UnTrack(self_obj);
  Py_CLEAR(self->target);
  Py_TYPE(self_obj)->tp_free(self_obj);
}

int retfunc_traverse(PyObject* self_obj, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<RetFuncObject*>(self_obj)->target);
  return 0;
}

int retfunc_clear(PyObject* self_obj) {
  Py_CLEAR(reinterpret_cast<RetFuncObject*>(self_obj)->target);
  return 0;
}

PyObject* retfunc_used(PyObject* self_obj, void*) {
  return PyBool_FromLong(reinterpret_cast<RetFuncObject*>(self_obj)->used);
}

PyGetSetDef retfunc_getset[] = {
    {"used", retfunc_used, nullptr, "True once the ret_func has been called.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject RetFuncType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.RetFunc";
  t.tp_basicsize = sizeof(RetFuncObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC;
  t.tp_doc = "RetFunc(target): a one-shot callable ret_func(value, exception) that calls "
             "target(value, exception) on the Puff Python thread, whichever thread calls it.";
  t.tp_new = retfunc_new;
  t.tp_dealloc = retfunc_dealloc;
  t.tp_traverse = retfunc_traverse;
  t.tp_clear = retfunc_clear;
  t.tp_call = retfunc_call;
  t.tp_getset = retfunc_getset;
  return t;
}();

}  // namespace

PyObject* sleep_ms(PyObject*, PyObject* arg) {
  long long ms = PyLong_AsLongLong(arg);
  if (ms == -1 && PyErr_Occurred()) return nullptr;
  if (ms < 0) {
    PyErr_SetString(PyExc_ValueError, "sleep_ms: milliseconds must be >= 0");
    return nullptr;
  }
  return start(new SleepOp(static_cast<std::uint64_t>(ms)));
}

PyObject* noop_async(PyObject*, PyObject*) { return start(new NoopOp()); }

PyObject* read_file_bytes(PyObject*, PyObject* arg) {
  PyObject* encoded = nullptr;
  if (!PyUnicode_FSConverter(arg, &encoded)) return nullptr;
  std::string path(PyBytes_AS_STRING(encoded), static_cast<std::size_t>(PyBytes_GET_SIZE(encoded)));
  Py_DECREF(encoded);
  if (path.find('\0') != std::string::npos) {
    PyErr_SetString(PyExc_ValueError, "read_file_bytes: embedded null byte in path");
    return nullptr;
  }
  return start(new ReadFileOp(std::move(path)));
}

// ---- a future's done-callback that acts on cancellation ------------------------------------------

struct OnCancelObject {
  PyObject_HEAD
  std::function<void()>* fn;
};

PyObject* on_cancel_call(PyObject* o, PyObject* args, PyObject*) {
  auto* self = reinterpret_cast<OnCancelObject*>(o);
  PyObject* fut = PyTuple_Size(args) == 1 ? PyTuple_GET_ITEM(args, 0) : nullptr;
  if (!fut) Py_RETURN_NONE;
  PyObject* c = PyObject_CallMethod(fut, "cancelled", nullptr);
  if (!c) return nullptr;
  int cancelled = PyObject_IsTrue(c);
  Py_DECREF(c);
  if (cancelled > 0 && self->fn && *self->fn) (*self->fn)();
  Py_RETURN_NONE;
}

void on_cancel_dealloc(PyObject* o) {
  delete reinterpret_cast<OnCancelObject*>(o)->fn;
  PyObject_Free(o);
}

PyTypeObject OnCancelType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.OnCancel";
  t.tp_basicsize = sizeof(OnCancelObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "A future's done-callback: stops native work when the future was cancelled.";
  t.tp_call = on_cancel_call;
  t.tp_dealloc = on_cancel_dealloc;
  return t;
}();

PyObject* on_future_cancelled(PyObject* r, std::function<void()> on_cancel) {
  if (!r || !coroutine_mode() || !PyObject_HasAttrString(r, "add_done_callback")) return r;
  auto* cb = PyObject_New(OnCancelObject, &OnCancelType);
  if (!cb) {
    Py_DECREF(r);
    return nullptr;
  }
  cb->fn = new std::function<void()>(std::move(on_cancel));
  PyObject* ok = PyObject_CallMethod(r, "add_done_callback", "O", reinterpret_cast<PyObject*>(cb));
  Py_DECREF(cb);
  if (!ok) {
    Py_DECREF(r);
    return nullptr;
  }
  Py_DECREF(ok);
  return r;
}

bool add_ops_types(PyObject* module) {
  if (PyType_Ready(&RetFuncType) < 0 || PyType_Ready(&OnCancelType) < 0) return false;
  Py_INCREF(&RetFuncType);
  if (PyModule_AddObject(module, "RetFunc", reinterpret_cast<PyObject*>(&RetFuncType)) < 0) {
    Py_DECREF(&RetFuncType);
    return false;
  }
  return true;
}

}  // namespace puff::py
