// wsgi.input: a file-like reader over the streaming request body. Reads suspend only the
// calling greenlet while the body is still arriving; nothing buffers the whole body.
#include "py/http_bridge.hpp"

#include <cstring>
#include <new>

namespace puff::py {

namespace {

constexpr std::size_t kChunk = 64 * 1024;

class BodyWaitOp final : public Op {
 public:
  explicit BodyWaitOp(std::shared_ptr<http::Exchange> ex) : ex_(std::move(ex)) {}
  void run() override {
    if (!ex_->wait_body([this] { complete(); })) complete();
  }
  PyObject* result() override { Py_RETURN_NONE; }
  bool run_inline() const noexcept override { return true; }  // registers a waiter, no more

 private:
  std::shared_ptr<http::Exchange> ex_;
};

class DrainWaitOp final : public Op {
 public:
  explicit DrainWaitOp(std::shared_ptr<http::Exchange> ex) : ex_(std::move(ex)) {}
  void run() override {
    if (!ex_->wait_drained([this] { complete(); })) complete();
  }
  PyObject* result() override { Py_RETURN_NONE; }
  bool run_inline() const noexcept override { return true; }  // registers a waiter, no more

 private:
  std::shared_ptr<http::Exchange> ex_;
};

struct InputObject {
  PyObject_HEAD
  std::shared_ptr<http::Exchange> ex;
  std::string buf;
  std::size_t pos;
  bool eof;
};

/** Makes at least one more byte available in self->buf (or sets eof). False with an
 *  exception set on failure. May switch greenlets. */
bool fill(InputObject* self) {
  if (self->eof) return true;
  if (self->pos > 0 && self->pos == self->buf.size()) {
    self->buf.clear();
    self->pos = 0;
  }
  for (;;) {
    auto r = self->ex->read_body(kChunk, self->buf, nullptr);
    switch (r) {
      case http::Exchange::Read::Data:
        return true;
      case http::Exchange::Read::Eof:
        self->eof = true;
        return true;
      case http::Exchange::Read::Error:
        PyErr_Format(PyExc_OSError, "request body: %s", self->ex->body_error().c_str());
        return false;
      case http::Exchange::Read::WouldBlock:
        if (!wait_body_ready(self->ex)) return false;
        break;
    }
  }
}

std::size_t avail(InputObject* self) { return self->buf.size() - self->pos; }

PyObject* take(InputObject* self, std::size_t n) {
  PyObject* b = PyBytes_FromStringAndSize(self->buf.data() + self->pos, static_cast<Py_ssize_t>(n));
  self->pos += n;
  return b;
}

bool parse_size(PyObject* const* args, Py_ssize_t nargs, Py_ssize_t& size) {
  size = -1;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "expected at most one argument");
    return false;
  }
  if (nargs == 1 && args[0] != Py_None) {
    size = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred()) return false;
  }
  return true;
}

PyObject* input_read(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<InputObject*>(o);
  Py_ssize_t size;
  if (!parse_size(args, nargs, size)) return nullptr;
  if (size < 0) {
    while (!self->eof)
      if (!fill(self)) return nullptr;
    return take(self, avail(self));
  }
  while (avail(self) < static_cast<std::size_t>(size) && !self->eof)
    if (!fill(self)) return nullptr;
  std::size_t n = avail(self) < static_cast<std::size_t>(size) ? avail(self) : static_cast<std::size_t>(size);
  return take(self, n);
}

PyObject* input_read1(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<InputObject*>(o);
  Py_ssize_t size;
  if (!parse_size(args, nargs, size)) return nullptr;
  if (avail(self) == 0 && !fill(self)) return nullptr;
  std::size_t n = avail(self);
  if (size >= 0 && static_cast<std::size_t>(size) < n) n = static_cast<std::size_t>(size);
  return take(self, n);
}

PyObject* readline_impl(InputObject* self, Py_ssize_t size) {
  std::size_t scanned = 0;
  for (;;) {
    const char* start = self->buf.data() + self->pos;
    std::size_t a = avail(self);
    std::size_t limit = size >= 0 && static_cast<std::size_t>(size) < a ? static_cast<std::size_t>(size) : a;
    const void* nl = limit > scanned ? std::memchr(start + scanned, '\n', limit - scanned) : nullptr;
    if (nl) return take(self, static_cast<const char*>(nl) - start + 1);
    if (size >= 0 && a >= static_cast<std::size_t>(size)) return take(self, static_cast<std::size_t>(size));
    if (self->eof) return take(self, a);
    scanned = limit;
    std::size_t before_pos = self->pos;
    if (!fill(self)) return nullptr;
    if (self->pos != before_pos) scanned = 0;  // fill() compacted the buffer
  }
}

PyObject* input_readline(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  Py_ssize_t size;
  if (!parse_size(args, nargs, size)) return nullptr;
  return readline_impl(reinterpret_cast<InputObject*>(o), size);
}

PyObject* input_readlines(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<InputObject*>(o);
  Py_ssize_t hint;
  if (!parse_size(args, nargs, hint)) return nullptr;
  PyObject* list = PyList_New(0);
  if (!list) return nullptr;
  Py_ssize_t total = 0;
  for (;;) {
    PyObject* line = readline_impl(self, -1);
    if (!line) {
      Py_DECREF(list);
      return nullptr;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    if (n == 0) {
      Py_DECREF(line);
      break;
    }
    PyList_Append(list, line);
    Py_DECREF(line);
    total += n;
    if (hint > 0 && total >= hint) break;
  }
  return list;
}

PyObject* input_iternext(PyObject* o) {
  PyObject* line = readline_impl(reinterpret_cast<InputObject*>(o), -1);
  if (line && PyBytes_GET_SIZE(line) == 0) {
    Py_DECREF(line);
    return nullptr;  // StopIteration
  }
  return line;
}

PyObject* input_close(PyObject*, PyObject*) { Py_RETURN_NONE; }

PyObject* input_readable(PyObject*, PyObject*) { Py_RETURN_TRUE; }

void input_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<InputObject*>(o);
  self->ex.~shared_ptr();
  self->buf.~basic_string();
  Py_TYPE(o)->tp_free(o);
}

PyMethodDef input_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read)), METH_FASTCALL,
     "read(size=-1) -> bytes. May wait for the client (suspends only this greenlet)."},
    {"read1", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_read1)), METH_FASTCALL,
     "read1(size=-1) -> bytes: what is buffered, waiting only if nothing is."},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readline)), METH_FASTCALL,
     "readline(size=-1) -> bytes"},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(input_readlines)), METH_FASTCALL,
     "readlines(hint=-1) -> list"},
    {"close", input_close, METH_NOARGS, "A no-op (the server owns the stream)."},
    {"readable", input_readable, METH_NOARGS, "True."},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject InputType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.WsgiInput";
  t.tp_basicsize = sizeof(InputObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "wsgi.input: the request body, streamed from the client.";
  t.tp_dealloc = input_dealloc;
  t.tp_iter = PyObject_SelfIter;
  t.tp_iternext = input_iternext;
  t.tp_methods = input_methods;
  return t;
}();

}  // namespace

bool wait_body_ready(const std::shared_ptr<http::Exchange>& ex) {
  PyObject* r = start(new BodyWaitOp(ex));
  Py_XDECREF(r);
  return r != nullptr;
}

bool wait_output_drained(const std::shared_ptr<http::Exchange>& ex) {
  PyObject* r = start(new DrainWaitOp(ex));
  Py_XDECREF(r);
  return r != nullptr;
}

PyObject* new_wsgi_input(const std::shared_ptr<http::Exchange>& ex) {
  auto* self = PyObject_New(InputObject, &InputType);
  if (!self) return nullptr;
  new (&self->ex) std::shared_ptr<http::Exchange>(ex);
  new (&self->buf) std::string();
  self->pos = 0;
  self->eof = false;
  return reinterpret_cast<PyObject*>(self);
}

bool add_wsgi_input_type(PyObject* module) {
  if (PyType_Ready(&InputType) < 0) return false;
  Py_INCREF(&InputType);
  return PyModule_AddObject(module, "WsgiInput", reinterpret_cast<PyObject*>(&InputType)) == 0;
}

}  // namespace puff::py
