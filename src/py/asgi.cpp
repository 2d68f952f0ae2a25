// ASGI 3 `http` on Puff's asyncio loop: receive() and send() in C (the scope: asgi_scope.cpp).
//
// receive() and send() return a pre-completed awaitable when nothing has to wait (the common
// case: a body already here, a response that fits the socket buffers), and an asyncio future
// only when they must wait (body still arriving, backpressure, waiting for a disconnect).
// Deviations and choices (numbered, as STYLE.md asks; 1 and 2 are the scope's, asgi_scope.cpp):
//  3. After the client has gone, send() drops messages silently (as uvicorn does) instead of
//     raising; receive() returns http.disconnect.
#include "http/response.hpp"
#include "py/http_bridge.hpp"

#include <fcntl.h>
#include <new>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace puff::py {

namespace {

struct K {
  PyObject *type, *body, *more_body, *status, *headers, *http_request, *http_disconnect, *http_response_start,
      *http_response_body, *create_task, *set_result, *receive, *send;
};

K* k() {
  static K* k = [] {
    auto* k = new K();
    auto s = [](const char* v) { return PyUnicode_InternFromString(v); };
    k->type = s("type");
    k->body = s("body");
    k->more_body = s("more_body");
    k->status = s("status");
    k->headers = s("headers");
    k->http_request = s("http.request");
    k->http_disconnect = s("http.disconnect");
    k->http_response_start = s("http.response.start");
    k->http_response_body = s("http.response.body");
    k->create_task = s("create_task");
    k->set_result = s("set_result");
    k->receive = s("receive");
    k->send = s("send");
    return k;
  }();
  return k;
}

// ---- the channel: receive/send of one request ------------------------------------------------------

struct ChannelObject {
  PyObject_HEAD
  std::shared_ptr<http::Exchange> ex;
  std::shared_ptr<AppHandle> app;
  std::optional<http::ResponseWriter> w;
  PyObject* pending_receive;  // owned future, while receive() waits
  bool started, finished, body_done;
  bool wake_armed;  // a ReceiveWake will come (registered with the exchange, or queued)
  PyObject* given_back;  // owned list: events a receive() could not deliver, handed out first
};


PyObject* disconnect_message() {
  PyObject* d = PyDict_New();
  if (d && PyDict_SetItem(d, k()->type, k()->http_disconnect) < 0) Py_CLEAR(d);
  return d;
}

PyObject* request_message(const std::string& data, bool more) {
  PyObject* body = PyBytes_FromStringAndSize(data.data(), static_cast<Py_ssize_t>(data.size()));
  if (!body) return nullptr;
  PyObject* d = PyDict_New();
  if (!d || PyDict_SetItem(d, k()->type, k()->http_request) < 0 || PyDict_SetItem(d, k()->body, body) < 0 ||
      PyDict_SetItem(d, k()->more_body, more ? Py_True : Py_False) < 0)
    Py_CLEAR(d);
  Py_DECREF(body);
  return d;
}

/** The next receive() message, or null with `would_block` set (and no exception). */
PyObject* try_receive(ChannelObject* c, bool& would_block) {
  would_block = false;
  if (!c->body_done) {
    std::string data;
    switch (c->ex->read_body(1 << 20, data, nullptr)) {
      case http::Exchange::Read::Data: {
        bool fin = c->ex->body_finished();
        if (fin) c->body_done = true;
        return request_message(data, !fin);
      }
      case http::Exchange::Read::Eof:
        c->body_done = true;
        return request_message(data, false);
      case http::Exchange::Read::Error:
        c->body_done = true;
        return disconnect_message();
      case http::Exchange::Read::WouldBlock:
        would_block = true;
        return nullptr;
    }
  }
  if (c->finished || c->ex->peer_gone()) return disconnect_message();
  would_block = true;
  return nullptr;
}

/** Wakes a waiting receive() on the Python thread. */
class ReceiveWake final : public Completion {
 public:
  explicit ReceiveWake(PyObject* chan) : chan_(chan) {}  // owns one reference
  void deliver() override;
  void discard() override {
    Py_DECREF(chan_);
    delete this;
  }

 private:
  PyObject* chan_;
};

/** Registers the wake-up for a waiting receive(). */
void arm_receive(ChannelObject* c) {
  c->wake_armed = true;
  PyObject* self = reinterpret_cast<PyObject*>(c);
  Py_INCREF(self);  // held by the waiter until ReceiveWake is delivered
  auto fire = [self] { push(new ReceiveWake(self)); };
  bool waiting = !c->body_done ? c->ex->wait_body(fire) : c->ex->wait_closed(fire);
  if (!waiting) push(new ReceiveWake(self));
}

void ReceiveWake::deliver() {
  auto* c = reinterpret_cast<ChannelObject*>(chan_);
  c->wake_armed = false;  // arm_receive() below sets it again if it waits once more
  PyObject* fut = c->pending_receive;
  if (fut) {
    if (future_done(fut) != 0) {
      Py_CLEAR(c->pending_receive);
    } else {
      bool would_block;
      PyObject* msg = try_receive(c, would_block);
      if (would_block) {
        arm_receive(c);  // spurious wake-up: wait again
      } else {
        c->pending_receive = nullptr;
        PyObject* r = nullptr;
        if (msg) {
          r = PyObject_CallMethodOneArg(fut, k()->set_result, msg);
        } else {  // the event could not be made (memory): the waiting receive() raises, not hangs
          PyObject *type, *value, *tb;
          PyErr_Fetch(&type, &value, &tb);
          PyErr_NormalizeException(&type, &value, &tb);
          if (value) r = PyObject_CallMethod(fut, "set_exception", "O", value);
          Py_XDECREF(type);
          Py_XDECREF(value);
          Py_XDECREF(tb);
        }
        if (!r) log_exception("ASGI receive failed");
        Py_XDECREF(r);
        Py_XDECREF(msg);
        Py_DECREF(fut);
      }
    }
  }
  PyErr_Clear();
  Py_DECREF(chan_);
  delete this;
}

PyObject* new_future() {
  Hub* h = hub();
  if (!h || !h->create_future) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI needs Puff's asyncio loop");
    return nullptr;
  }
  return PyObject_CallNoArgs(h->create_future);
}

PyObject* channel_receive(PyObject* o, PyObject*) {
  auto* c = reinterpret_cast<ChannelObject*>(o);
  if (c->pending_receive) {
    int is_done = future_done(c->pending_receive);
    if (is_done < 0) return nullptr;
    if (!is_done) {
      PyErr_SetString(PyExc_RuntimeError, "ASGI receive() called while another receive() is pending");
      return nullptr;
    }
    // The earlier receive was given up (its task cancelled, asyncio.wait_for timed out): its
    // wake-up, still armed, serves this one.
    Py_CLEAR(c->pending_receive);
  }
  if (PyObject* back = take_given_back(c->given_back)) return make_ready(back);
  bool would_block;
  PyObject* msg = try_receive(c, would_block);
  if (!would_block) return make_ready(msg);
  PyObject* fut = new_future();
  if (!fut) return nullptr;
  c->pending_receive = Py_NewRef(fut);
  if (!c->wake_armed) arm_receive(c);
  return fut;
}

/** Resolves a send() that waited for the socket to drain. */
class DrainWake final : public Completion {
 public:
  explicit DrainWake(PyObject* fut) : fut_(fut) {}  // owns one reference
  void deliver() override {
    if (future_done(fut_) == 0) {
      PyObject* r = PyObject_CallMethodOneArg(fut_, k()->set_result, Py_None);
      Py_XDECREF(r);
    }
    PyErr_Clear();
    Py_DECREF(fut_);
    delete this;
  }
  void discard() override {
    Py_DECREF(fut_);
    delete this;
  }

 private:
  PyObject* fut_;
};

bool bytes_of(PyObject* o, std::string_view& out) {
  if (PyBytes_Check(o)) {
    out = std::string_view(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
    return true;
  }
  if (PyByteArray_Check(o)) {
    out = std::string_view(PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)));
    return true;
  }
  return false;
}

PyObject* start_response(ChannelObject* c, PyObject* msg) {
  if (c->started) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI: http.response.start sent twice");
    return nullptr;
  }
  PyObject* status = PyDict_GetItemWithError(msg, k()->status);
  if (!status) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "ASGI http.response.start needs 'status'");
    return nullptr;
  }
  long code = PyLong_AsLong(status);
  if (code == -1 && PyErr_Occurred()) return nullptr;
  c->w.emplace(*c->ex);
  std::string_view err = c->w->set_status(static_cast<int>(code));
  if (!err.empty()) {
    PyErr_Format(PyExc_ValueError, "ASGI http.response.start: %s (got %ld)", std::string(err).c_str(), code);
    return nullptr;
  }
  PyObject* headers = PyDict_GetItemWithError(msg, k()->headers);
  if (headers) {
    PyObject* it = PyObject_GetIter(headers);
    if (!it) return nullptr;
    while (PyObject* item = PyIter_Next(it)) {
      PyObject* pair = PySequence_Fast(item, "ASGI header must be a [name, value] pair");
      Py_DECREF(item);
      if (!pair) break;
      std::string_view name, value;
      if (PySequence_Fast_GET_SIZE(pair) != 2 || !bytes_of(PySequence_Fast_GET_ITEM(pair, 0), name) ||
          !bytes_of(PySequence_Fast_GET_ITEM(pair, 1), value)) {
        PyErr_Format(PyExc_TypeError, "ASGI header must be a [bytes, bytes] pair, got %R", pair);
        Py_DECREF(pair);
        break;
      }
      err = c->w->add_header(name, value);
      Py_DECREF(pair);
      if (!err.empty()) {
        PyErr_Format(PyExc_ValueError, "ASGI response header: %s", std::string(err).c_str());
        break;
      }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return nullptr;
  } else if (PyErr_Occurred()) {
    return nullptr;
  }
  c->started = true;
  return make_ready(Py_NewRef(Py_None));
}

PyObject* send_body(ChannelObject* c, PyObject* msg) {
  if (!c->started) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI: http.response.body sent before http.response.start");
    return nullptr;
  }
  if (c->finished) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI: http.response.body sent after the response was complete");
    return nullptr;
  }
  PyObject* body = PyDict_GetItemWithError(msg, k()->body);
  if (!body && PyErr_Occurred()) return nullptr;
  PyObject* more_obj = PyDict_GetItemWithError(msg, k()->more_body);
  if (!more_obj && PyErr_Occurred()) return nullptr;
  bool more = more_obj && PyObject_IsTrue(more_obj) == 1;
  Py_buffer view{};
  if (body && PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0) return nullptr;
  const char* data = body ? static_cast<const char*>(view.buf) : "";
  std::size_t n = body ? static_cast<std::size_t>(view.len) : 0;
  if (!more) c->finished = true;
  if (c->ex->closed()) {  // deviation 3
    if (body) PyBuffer_Release(&view);
    return make_ready(Py_NewRef(Py_None));
  }
  std::string out;
  if (!c->w->head_sent()) out = c->w->head(more ? -1 : static_cast<long long>(n));
  queue_body(*c->ex, *c->w, std::move(out), body, data, n, !more);
  if (body) PyBuffer_Release(&view);
  if (more && c->ex->queued() > c->ex->out_high_water) {
    PyObject* fut = new_future();
    if (!fut) return nullptr;
    Py_INCREF(fut);
    PyObject* held = fut;
    if (!c->ex->wait_drained([held] { push(new DrainWake(held)); })) push(new DrainWake(held));
    return fut;
  }
  return make_ready(Py_NewRef(Py_None));
}

/** http.response.pathsend (ASGI extension): the file at `path` is the whole body; sendfile(2)
 *  when the connection allows it, else read in blocks here. */
PyObject* send_path(ChannelObject* c, PyObject* msg) {
  if (!c->started || c->finished || c->w->head_sent()) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI: http.response.pathsend must follow http.response.start and be the body");
    return nullptr;
  }
  PyObject* path = PyDict_GetItemString(msg, "path");
  PyObject* fs = path ? PyOS_FSPath(path) : nullptr;
  PyObject* encoded = nullptr;
  if (!fs || !PyUnicode_FSConverter(fs, &encoded)) {
    Py_XDECREF(fs);
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "ASGI http.response.pathsend needs 'path'");
    return nullptr;
  }
  Py_DECREF(fs);
  int fd = ::open(PyBytes_AS_STRING(encoded), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = fd < 0 ? errno : EISDIR;
    if (fd >= 0) ::close(fd);
    errno = err;
    PyErr_SetFromErrnoWithFilename(PyExc_OSError, PyBytes_AS_STRING(encoded));
    Py_DECREF(encoded);
    return nullptr;
  }
  Py_DECREF(encoded);
  c->finished = true;
  std::uint64_t length = static_cast<std::uint64_t>(st.st_size);
  std::string out = c->w->head(static_cast<long long>(length));
  c->ex->keep_alive = c->w->keep_alive();
  if (c->ex->sendfile_ok && !c->w->compressing() && c->ex->method != "HEAD" && length > 0) {
    c->ex->write_file(std::move(out), fd, 0, length);
    return make_ready(Py_NewRef(Py_None));
  }
  std::vector<char> buf(256 * 1024);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    c->w->frame(out, buf.data(), static_cast<std::size_t>(n));
    if (out.size() >= buf.size()) {
      c->ex->write(std::move(out), false);
      out.clear();
    }
  }
  ::close(fd);
  out += c->w->finish();
  c->ex->keep_alive = c->w->keep_alive();
  c->ex->write(std::move(out), true);
  return make_ready(Py_NewRef(Py_None));
}

PyObject* channel_send(PyObject* o, PyObject* msg) {
  auto* c = reinterpret_cast<ChannelObject*>(o);
  if (!PyDict_Check(msg)) {
    PyErr_Format(PyExc_TypeError, "ASGI send() expects a dict, got %.100s", Py_TYPE(msg)->tp_name);
    return nullptr;
  }
  PyObject* type = PyDict_GetItemWithError(msg, k()->type);
  if (!type) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "ASGI message without 'type'");
    return nullptr;
  }
  if (PyUnicode_Check(type)) {
    batch_posts_this_round();  // the response goes out with the others of this loop round
    if (PyUnicode_Compare(type, k()->http_response_body) == 0) return send_body(c, msg);
    if (PyUnicode_Compare(type, k()->http_response_start) == 0) return start_response(c, msg);
    if (PyUnicode_CompareWithASCIIString(type, "http.response.pathsend") == 0) return send_path(c, msg);
  }
  PyErr_Format(PyExc_ValueError, "unexpected ASGI message type %R for an http connection", type);
  return nullptr;
}

void send_500(ChannelObject* c) {
  if (c->ex->closed()) return;
  int status = c->ex->body_error_status() ? c->ex->body_error_status() : 500;  // 400/413: the body's fault
  c->ex->keep_alive = false;
  c->ex->write(http::simple_response(*c->ex, status, http::reason_phrase(status)), true);
}

/** The application's coroutine ended (returned, raised, or was cancelled or dropped): counts it
 *  and makes sure the client gets an answer. An exception, if any, was reported already. */
void channel_finished(ChannelObject* c, bool returned) {
  if (c->app) --c->app->state.running, ++c->app->state.served;
  if (returned && !c->started) {
    PyObject* err = PySys_GetObject("stderr");
    if (err && PyFile_WriteString("puff: ASGI application returned without starting a response\n", err) < 0) PyErr_Clear();
  }
  if (!c->started) {
    send_500(c);
  } else if (!c->finished) {
    c->ex->abort();  // the head is out; a cut connection is the only honest signal left
  }
}

void channel_ended(PyObject* chan, bool returned) {
  channel_finished(reinterpret_cast<ChannelObject*>(chan), returned);
}

void channel_dealloc(PyObject* o) {
  auto* c = reinterpret_cast<ChannelObject*>(o);
  Py_CLEAR(c->pending_receive);
  Py_CLEAR(c->given_back);
  c->ex.~shared_ptr();
  c->app.~shared_ptr();
  c->w.~optional();
  PyObject_Free(o);
}

// What the app gets: coroutines (asyncio.create_task(receive()) works, as with other servers).
void channel_give_back(PyObject* o, PyObject* event) {
  keep_given_back(reinterpret_cast<ChannelObject*>(o)->given_back, event);
}
PyObject* channel_receive_coro(PyObject* o, PyObject* a) {
  return as_coroutine(channel_receive(o, a), o, channel_give_back);
}
PyObject* channel_send_coro(PyObject* o, PyObject* m) { return as_coroutine(channel_send(o, m)); }

PyMethodDef channel_methods[] = {
    {"receive", channel_receive_coro, METH_NOARGS, "ASGI receive()"},
    {"send", channel_send_coro, METH_O, "ASGI send(message)"},
    {nullptr, nullptr, 0, nullptr},
};

PyTypeObject ChannelType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.AsgiChannel";
  t.tp_basicsize = sizeof(ChannelObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "receive() and send() of one ASGI http connection.";
  t.tp_dealloc = channel_dealloc;
  t.tp_methods = channel_methods;
  return t;
}();

}  // namespace

/** loop.create_task(coro, context=<a fresh contextvars.Context>): each request its own context.
 *  Without a task factory on Puff's loop, the Task is made directly with `name`: the loop's
 *  create_task would format a "Task-<n>" name for every request first (about 2% of a bare
 *  ASGI hello's time on Python 3.11). */
PyObject* create_task_in_new_context(PyObject* loop, PyObject* coro, PyObject* name) {
  static PyObject* context_kw = Py_BuildValue("(s)", "context");
  static PyObject* task_kw = Py_BuildValue("(sss)", "loop", "name", "context");
  static PyObject* task_type = [] {
    PyObject* mod = PyImport_ImportModule("asyncio");
    PyObject* t = mod ? PyObject_GetAttrString(mod, "Task") : nullptr;
    Py_XDECREF(mod);
    if (!t) PyErr_Clear();  // then the loop's create_task
    return t;
  }();
  Hub* h = hub();
  bool ours = h && h->create_task && loop == h->loop;
  PyObject* ctx = PyContext_New();
  if (!ctx) return nullptr;
  PyObject* task = nullptr;
  PyObject* factory = ours && task_type ? PyObject_CallNoArgs(h->get_task_factory) : nullptr;
  if (!factory) PyErr_Clear();  // could not tell: the loop's create_task decides
  if (factory == Py_None && name) {
    PyObject* args[4] = {coro, loop, name, ctx};  // Task(coro, loop=, name=, context=)
    task = PyObject_Vectorcall(task_type, args, 1, task_kw);
  } else {  // a factory, or not Puff's loop
    PyObject* create = ours ? Py_NewRef(h->create_task) : PyObject_GetAttr(loop, k()->create_task);
    if (create) {
      PyObject* args[2] = {coro, ctx};  // create_task(coro, context=ctx), vectorcall
      task = PyObject_Vectorcall(create, args, 1, context_kw);
      Py_DECREF(create);
    }
  }
  Py_XDECREF(factory);
  Py_DECREF(ctx);
  return task;
}

/** The ASGI `websocket` scope runs in Python (puff/_asgi_ws.py) on the native WebSocket. */
void handle_asgi_websocket(const std::shared_ptr<AppHandle>& app, std::shared_ptr<http::Exchange> ex) {
  Hub* h = hub();
  static PyObject* runner = nullptr;
  if (!runner) {
    PyObject* mod = PyImport_ImportModule("puff._asgi_ws");
    runner = mod ? PyObject_GetAttrString(mod, "run") : nullptr;
    Py_XDECREF(mod);
  }
  PyObject *scope = nullptr, *ws = nullptr, *coro = nullptr, *task = nullptr;
  if (runner && h && h->loop && (scope = build_scope(*app, *ex, true)) && (ws = new_websocket(ex, app->state.settings.ws_deflate)) &&
      (coro = PyObject_CallFunctionObjArgs(runner, app->state.settings.mounts[ex->mount].app, scope, ws, nullptr))) {
    static PyObject* name = PyUnicode_InternFromString("puff-asgi-websocket");
    task = create_task_in_new_context(h->loop, coro, name);
  }
  if (!task) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "ASGI apps need Puff's asyncio loop (asyncio = true)");
    log_exception("could not start the ASGI websocket handler");
    ex->abort();
  }
  Py_XDECREF(task);
  Py_XDECREF(coro);
  Py_XDECREF(ws);
  Py_XDECREF(scope);
}

void handle_asgi(const std::shared_ptr<AppHandle>& app, std::shared_ptr<http::Exchange> ex) {
  if (ex->websocket) {
    handle_asgi_websocket(app, std::move(ex));
    return;
  }
  Hub* h = hub();
  auto* c = PyObject_New(ChannelObject, &ChannelType);
  if (!c) {
    log_exception("out of memory");
    ex->abort();
    return;
  }
  new (&c->ex) std::shared_ptr<http::Exchange>(std::move(ex));
  new (&c->app) std::shared_ptr<AppHandle>(app);
  new (&c->w) std::optional<http::ResponseWriter>();
  c->pending_receive = nullptr;
  c->started = c->finished = c->body_done = false;
  c->wake_armed = false;
  c->given_back = nullptr;
  PyObject* chan = reinterpret_cast<PyObject*>(c);
  ++app->state.running;
  PyObject *scope = nullptr, *recv = nullptr, *send = nullptr, *coro = nullptr, *run = nullptr, *task = nullptr;
  if (!h || !h->loop) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI apps need Puff's asyncio loop (asyncio = true)");
  } else if ((scope = build_scope(*app, *c->ex)) && (recv = PyObject_GetAttr(chan, k()->receive)) &&
             (send = PyObject_GetAttr(chan, k()->send))) {
    PyObject* args[3] = {scope, recv, send};
    coro = PyObject_Vectorcall(app->state.settings.mounts[c->ex->mount].app, args, 3, nullptr);
    static PyObject* name = PyUnicode_InternFromString("puff-asgi-http");
    if (coro && (run = new_asgi_run(coro, chan, channel_ended))) task = create_task_in_new_context(h->loop, run, name);
  }
  if (!task) {
    log_exception("could not start the ASGI application");
    if (run) {
      PyObject* r = asgi_run_close(run);  // ends the request (500) once
      Py_XDECREF(r);
      PyErr_Clear();
    } else {
      if (coro) {
        PyObject* r = PyObject_CallMethod(coro, "close", nullptr);
        Py_XDECREF(r);
        PyErr_Clear();
      }
      --app->state.running;
      send_500(c);
    }
  }
  Py_XDECREF(run);
  Py_XDECREF(task);
  Py_XDECREF(coro);
  Py_XDECREF(send);
  Py_XDECREF(recv);
  Py_XDECREF(scope);
  Py_DECREF(chan);
}

bool add_asgi_types(PyObject* module) {
  if (!add_ready_type() || PyType_Ready(&ChannelType) < 0 || !add_asgi_run_type()) return false;
  Py_INCREF(&ChannelType);
  return PyModule_AddObject(module, "AsgiChannel", reinterpret_cast<PyObject*>(&ChannelType)) == 0;
}

}  // namespace puff::py
