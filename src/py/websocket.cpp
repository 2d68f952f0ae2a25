// puff._native.WebSocket: one WebSocket upgrade request, from the handshake to the close.
// Dual-mode like every Puff call: receive()/send() suspend only the calling greenlet, or return
// awaitables on Puff's loop. WSGI apps get it as environ["puff.websocket"]; the ASGI
// `websocket` scope is built on it (python/puff/_asgi_ws.py).
#include <cstring>
#include <new>

#include "http/response.hpp"
#include "http/ws_deflate.hpp"
#include "http/ws_handshake.hpp"
#include "http/ws_session.hpp"
#include "py/http_bridge.hpp"

namespace puff::py {

namespace {

struct WsObject {
  PyObject_HEAD
  std::shared_ptr<http::Exchange> ex;
  std::shared_ptr<http::WsSession> session;
  bool accepted;
  bool denied;
  bool deflate_ok;  // the server allows permessage-deflate
  bool asgi_connect_sent;  // the ASGI adapter: websocket.connect was handed to the app
  bool asgi_app_closed;    // the ASGI adapter: the app sent websocket.close
  PyObject* asgi_given_back;  // owned list: events a receive() could not deliver, handed out first
};

class WsRecvOp final : public Op {
 public:
  /** `asgi`: the result is the ASGI event (websocket.receive / websocket.disconnect). */
  WsRecvOp(std::shared_ptr<http::WsSession> s, bool asgi) : s_(std::move(s)), asgi_(asgi) {}
  void run() override {
    if (!s_->wait_ready([this] { complete(); })) complete();
  }
  PyObject* result() override;
  bool spin_for() const noexcept override { return false; }  // the client talks when it likes
  bool run_inline() const noexcept override { return true; }   // registers a waiter, no more

 private:
  std::shared_ptr<http::WsSession> s_;
  bool asgi_;
};

class WsDrainOp final : public Op {
 public:
  explicit WsDrainOp(std::shared_ptr<http::WsSession> s) : s_(std::move(s)) {}
  void run() override {
    if (!s_->wait_drained([this] { complete(); })) complete();
  }
  PyObject* result() override { Py_RETURN_NONE; }
  bool run_inline() const noexcept override { return true; }

 private:
  std::shared_ptr<http::WsSession> s_;
};

/** A message as str (text) or bytes (binary); None when closed; null + exception otherwise. */
PyObject* take_message(http::WsSession& s, bool& would_block) {
  http::WsSession::Message m;
  would_block = false;
  switch (s.receive(m, nullptr)) {
    case http::WsSession::Recv::Message:
      if (m.binary) return PyBytes_FromStringAndSize(m.data.data(), static_cast<Py_ssize_t>(m.data.size()));
      return PyUnicode_DecodeUTF8(m.data.data(), static_cast<Py_ssize_t>(m.data.size()), "strict");
    case http::WsSession::Recv::Closed:
      Py_RETURN_NONE;
    case http::WsSession::Recv::WouldBlock:
      would_block = true;
      return nullptr;
  }
  return nullptr;
}

/** The interned keys and types of the ASGI websocket events. */
struct AsgiKeys {
  PyObject* type = PyUnicode_InternFromString("type");
  PyObject* text = PyUnicode_InternFromString("text");
  PyObject* bytes = PyUnicode_InternFromString("bytes");
  PyObject* code = PyUnicode_InternFromString("code");
  PyObject* reason = PyUnicode_InternFromString("reason");
  PyObject* subprotocol = PyUnicode_InternFromString("subprotocol");
  PyObject* headers = PyUnicode_InternFromString("headers");
  PyObject* receive = PyUnicode_InternFromString("websocket.receive");
  PyObject* disconnect = PyUnicode_InternFromString("websocket.disconnect");
};

const AsgiKeys& keys() {
  static const AsgiKeys k;  // Python thread, GIL held
  return k;
}

/** The ASGI event for what take_message() returned (stolen): websocket.receive with "text" or
 *  "bytes", or websocket.disconnect with the close code and reason for None. */
PyObject* asgi_event(PyObject* message, http::WsSession& s) {
  if (!message) return nullptr;
  const AsgiKeys& k = keys();
  PyObject* event = PyDict_New();
  bool ok = event != nullptr;
  if (ok && message != Py_None) {
    ok = PyDict_SetItem(event, k.type, k.receive) == 0 &&
         PyDict_SetItem(event, PyUnicode_Check(message) ? k.text : k.bytes, message) == 0;
  } else if (ok) {
    std::string reason = s.close_reason();
    PyObject* code = PyLong_FromLong(s.close_code());
    PyObject* why = PyUnicode_DecodeUTF8(reason.data(), static_cast<Py_ssize_t>(reason.size()), "replace");
    ok = code && why && PyDict_SetItem(event, k.type, k.disconnect) == 0 && PyDict_SetItem(event, k.code, code) == 0 &&
         PyDict_SetItem(event, k.reason, why) == 0;
    Py_XDECREF(code);
    Py_XDECREF(why);
  }
  Py_DECREF(message);
  if (!ok) Py_CLEAR(event);
  return event;
}

PyObject* WsRecvOp::result() {
  bool would_block;
  PyObject* r = take_message(*s_, would_block);
  if (would_block)
    PyErr_SetString(PyExc_RuntimeError,
                    "WebSocket.receive(): another receive() on this WebSocket started meanwhile and waits instead "
                    "(one receive at a time)");
  return asgi_ && r ? asgi_event(r, *s_) : r;
}

PyObject* none_or_ready() {
  if (coroutine_mode()) return make_ready(Py_NewRef(Py_None));
  Py_RETURN_NONE;
}

bool header_text(PyObject* o, std::string& out) {
  if (PyBytes_Check(o)) {
    out.assign(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
    return true;
  }
  if (PyUnicode_Check(o)) {
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(o, &n);
    if (!s) return false;
    out.assign(s, static_cast<std::size_t>(n));
    return true;
  }
  PyErr_Format(PyExc_TypeError, "header names and values must be str or bytes, not %.100s", Py_TYPE(o)->tp_name);
  return false;
}

bool clean(const std::string& s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

bool permessage_deflate_enabled(WsObject* self) { return self->deflate_ok; }

PyObject* accept(WsObject* self, PyObject* subprotocol, PyObject* headers) {
  if (self->accepted || self->denied) {
    PyErr_SetString(PyExc_RuntimeError, "WebSocket.accept(): the handshake was already answered");
    return nullptr;
  }
  std::string head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  head += "Sec-WebSocket-Accept: " + http::ws::accept_key(self->ex->ws_key) + "\r\n";
  if (subprotocol != Py_None) {
    std::string sp;
    if (!header_text(subprotocol, sp)) return nullptr;
    if (!clean(sp) || sp.empty()) {
      PyErr_SetString(PyExc_ValueError, "invalid subprotocol");
      return nullptr;
    }
    head += "Sec-WebSocket-Protocol: " + sp + "\r\n";
  }
  if (headers != Py_None) {
    PyObject* it = PyObject_GetIter(headers);
    if (!it) return nullptr;
    while (PyObject* item = PyIter_Next(it)) {
      PyObject* pair = PySequence_Fast(item, "accept(headers=...): each header must be a (name, value) pair");
      Py_DECREF(item);
      if (!pair) break;
      std::string name, value;
      bool ok = PySequence_Fast_GET_SIZE(pair) == 2 && header_text(PySequence_Fast_GET_ITEM(pair, 0), name) &&
                header_text(PySequence_Fast_GET_ITEM(pair, 1), value);
      Py_DECREF(pair);
      if (!ok) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "accept(headers=...): (name, value) pairs");
        break;
      }
      if (!clean(name) || !clean(value) || name.empty() || name.find(':') != std::string::npos) {
        PyErr_SetString(PyExc_ValueError, "accept(headers=...): invalid header");
        break;
      }
      head += name + ": " + value + "\r\n";
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return nullptr;
  }
  auto session = std::make_shared<http::WsSession>();
  if (!self->ex->ws_extensions.empty() && permessage_deflate_enabled(self)) {
    if (auto params = http::ws::negotiate_deflate(self->ex->ws_extensions)) {
      head += "Sec-WebSocket-Extensions: " + http::ws::deflate_response(*params) + "\r\n";
      session->deflate = params;
    }
  }
  head += "\r\n";
  if (!self->ex->upgrade(session, std::move(head))) {
    PyErr_SetString(PyExc_ConnectionResetError, "the client went away before the WebSocket was accepted");
    return nullptr;
  }
  self->session = std::move(session);
  self->accepted = true;
  return none_or_ready();
}

PyObject* ws_accept(PyObject* o, PyObject* args, PyObject* kwargs) {
  PyObject *subprotocol = Py_None, *headers = Py_None;
  static const char* kwlist[] = {"subprotocol", "headers", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:accept", const_cast<char**>(kwlist), &subprotocol, &headers))
    return nullptr;
  return accept(reinterpret_cast<WsObject*>(o), subprotocol, headers);
}

bool require_open(WsObject* self) {
  if (!self->accepted) {
    PyErr_SetString(PyExc_RuntimeError, "WebSocket: call accept() first");
    return false;
  }
  return true;
}

PyObject* ws_receive(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (!require_open(self)) return nullptr;
  bool would_block;
  PyObject* r = take_message(*self->session, would_block);
  if (!would_block) return coroutine_mode() ? make_ready(r) : r;
  return start(new WsRecvOp(self->session, false));
}

PyObject* ws_send(PyObject* o, PyObject* data) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (!require_open(self)) return nullptr;
  batch_posts_this_round();
  bool ok;
  if (PyUnicode_Check(data)) {
    Py_ssize_t n;
    const char* s = PyUnicode_AsUTF8AndSize(data, &n);
    if (!s) return nullptr;
    ok = self->session->send(std::string_view(s, static_cast<std::size_t>(n)), false);
  } else {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
      PyErr_Format(PyExc_TypeError, "WebSocket.send() takes str or bytes, not %.100s", Py_TYPE(data)->tp_name);
      return nullptr;
    }
    ok = self->session->send(std::string_view(static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len)),
                             true);
    PyBuffer_Release(&view);
  }
  if (!ok) {
    PyErr_SetString(PyExc_ConnectionResetError, "WebSocket is closed");
    return nullptr;
  }
  if (self->session->queued() > self->session->out_high_water) return start(new WsDrainOp(self->session));
  return none_or_ready();
}

PyObject* close(WsObject* self, int code, const char* reason) {
  if (!self->accepted) {
    // Refusing the handshake: an HTTP 403, as the ASGI spec asks for a close before accept.
    if (!self->denied) {
      self->denied = true;
      self->ex->keep_alive = false;
      self->ex->write(http::simple_response(*self->ex, 403, {}), true);
    }
    return none_or_ready();
  }
  if (code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 || code == 1015) {
    PyErr_Format(PyExc_ValueError, "WebSocket.close(): invalid close code %d", code);
    return nullptr;
  }
  self->session->close(static_cast<std::uint16_t>(code), reason);
  return none_or_ready();
}

PyObject* ws_close(PyObject* o, PyObject* args, PyObject* kwargs) {
  int code = 1000;
  const char* reason = "";
  static const char* kwlist[] = {"code", "reason", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|is:close", const_cast<char**>(kwlist), &code, &reason))
    return nullptr;
  return close(reinterpret_cast<WsObject*>(o), code, reason);
}

// ---- the ASGI `websocket` scope's receive() and send() (python/puff/_asgi_ws.py passes them
// to the app): ASGI events straight from the session, with no Python frame per message.

PyObject* ws_asgi_receive(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (!self->asgi_connect_sent) {
    self->asgi_connect_sent = true;
    PyObject* event = Py_BuildValue("{s:s}", "type", "websocket.connect");
    return event ? make_ready(event) : nullptr;
  }
  // An event an earlier receive() took but could not deliver (cancelled as it arrived).
  if (PyObject* back = take_given_back(self->asgi_given_back)) return make_ready(back);
  if (!self->accepted) {
    PyErr_SetString(PyExc_RuntimeError, "ASGI websocket: receive() before websocket.accept or websocket.close");
    return nullptr;
  }
  bool would_block;
  PyObject* r = take_message(*self->session, would_block);
  if (!would_block) return r ? make_ready(asgi_event(r, *self->session)) : nullptr;
  return start(new WsRecvOp(self->session, true));
}

/** message[key] as a new reference; null when absent or on error (then with the exception). The
 *  reference is owned: the app's own code run by a later call (an __index__, a __len__) could
 *  take the item out of the dict. */
PyObject* field(PyObject* message, PyObject* key) { return Py_XNewRef(PyDict_GetItemWithError(message, key)); }

/** The ASGI websocket.send / accept / close events (see python/puff/_asgi_ws.py). */
PyObject* ws_asgi_send(PyObject* o, PyObject* message) {
  auto* self = reinterpret_cast<WsObject*>(o);
  const AsgiKeys& k = keys();
  PyObject* kind = PyDict_Check(message) ? field(message, k.type) : nullptr;
  if (PyErr_Occurred()) return nullptr;
  const char* name = kind && PyUnicode_Check(kind) ? PyUnicode_AsUTF8(kind) : nullptr;
  PyObject* result = nullptr;
  if (name && std::strcmp(name, "websocket.send") == 0) {
    PyObject* data = field(message, k.bytes);
    if (!PyErr_Occurred() && (!data || data == Py_None)) {
      Py_XDECREF(data);
      data = field(message, k.text);
    }
    if (!PyErr_Occurred() && (!data || data == Py_None))
      PyErr_SetString(PyExc_ValueError, "ASGI websocket.send needs 'bytes' or 'text'");
    if (!PyErr_Occurred()) result = ws_send(o, data);
    Py_XDECREF(data);
  } else if (name && std::strcmp(name, "websocket.accept") == 0) {
    PyObject* subprotocol = field(message, k.subprotocol);
    PyObject* headers = PyErr_Occurred() ? nullptr : field(message, k.headers);
    int has_headers = headers ? PyObject_IsTrue(headers) : 0;  // [] or None: none
    if (has_headers >= 0 && !PyErr_Occurred())
      result = accept(self, subprotocol ? subprotocol : Py_None, has_headers ? headers : Py_None);
    Py_XDECREF(subprotocol);
    Py_XDECREF(headers);
  } else if (name && std::strcmp(name, "websocket.close") == 0) {
    PyObject* code_obj = field(message, k.code);
    PyObject* reason_obj = PyErr_Occurred() ? nullptr : field(message, k.reason);
    long code = 1000;
    if (!PyErr_Occurred() && code_obj && code_obj != Py_None) {
      code = PyLong_AsLong(code_obj);
      if (!PyErr_Occurred() && (code < 0 || code > 65535))
        PyErr_Format(PyExc_ValueError, "WebSocket.close(): invalid close code %ld", code);
    }
    const char* reason = "";
    if (!PyErr_Occurred() && reason_obj && reason_obj != Py_None) {
      reason = PyUnicode_Check(reason_obj) ? PyUnicode_AsUTF8(reason_obj) : nullptr;
      if (!reason && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "ASGI websocket.close: 'reason' must be a str");
    }
    if (!PyErr_Occurred()) {
      result = close(self, static_cast<int>(code), reason);
      if (result) self->asgi_app_closed = true;
    }
    Py_XDECREF(code_obj);
    Py_XDECREF(reason_obj);
  } else if (!PyErr_Occurred()) {
    PyObject* shown = kind ? PyObject_Repr(kind) : PyUnicode_FromString("None");
    if (shown) {
      PyErr_Format(PyExc_ValueError, "unexpected ASGI message %U for a websocket connection", shown);
      Py_DECREF(shown);
    }
  }
  Py_XDECREF(kind);
  return result;
}

// What the app gets: coroutines (asyncio.create_task(receive()) works, as with other servers).
void ws_give_back(PyObject* o, PyObject* event) { keep_given_back(reinterpret_cast<WsObject*>(o)->asgi_given_back, event); }
PyObject* ws_asgi_receive_coro(PyObject* o, PyObject* a) {
  return as_coroutine(ws_asgi_receive(o, a), o, ws_give_back);
}
PyObject* ws_asgi_send_coro(PyObject* o, PyObject* m) { return as_coroutine(ws_asgi_send(o, m)); }

PyObject* ws_get_close_code(PyObject* o, void*) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (!self->session) Py_RETURN_NONE;
  return PyLong_FromLong(self->session->close_code());
}

PyObject* ws_get_close_reason(PyObject* o, void*) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (!self->session) Py_RETURN_NONE;
  std::string r = self->session->close_reason();
  return PyUnicode_DecodeUTF8(r.data(), static_cast<Py_ssize_t>(r.size()), "replace");
}

PyObject* ws_get_subprotocols(PyObject* o, void*) {
  auto* self = reinterpret_cast<WsObject*>(o);
  PyObject* list = PyList_New(0);
  std::string_view v = self->ex->ws_protocols;
  std::size_t i = 0;
  while (list && i < v.size()) {
    std::size_t j = v.find(',', i);
    if (j == std::string_view::npos) j = v.size();
    std::string_view t = v.substr(i, j - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (!t.empty()) {
      PyObject* s = PyUnicode_DecodeLatin1(t.data(), static_cast<Py_ssize_t>(t.size()), nullptr);
      if (!s || PyList_Append(list, s) < 0) Py_CLEAR(list);
      Py_XDECREF(s);
    }
    i = j + 1;
  }
  return list;
}

PyObject* ws_get_accepted(PyObject* o, void*) { return PyBool_FromLong(reinterpret_cast<WsObject*>(o)->accepted); }

PyObject* ws_get_asgi_app_closed(PyObject* o, void*) {
  return PyBool_FromLong(reinterpret_cast<WsObject*>(o)->asgi_app_closed);
}

void ws_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<WsObject*>(o);
  if (self->session) self->session->close(1000, "");  // the application is done with it
  Py_CLEAR(self->asgi_given_back);
  self->ex.~shared_ptr();
  self->session.~shared_ptr();
  PyObject_Free(o);
}

PyMethodDef ws_methods[] = {
    {"accept", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ws_accept)), METH_VARARGS | METH_KEYWORDS,
     "accept(subprotocol=None, headers=None): answer the handshake with 101."},
    {"receive", ws_receive, METH_NOARGS, "receive() -> str | bytes | None (None: closed; see close_code)."},
    {"send", ws_send, METH_O, "send(str | bytes): a text or binary message."},
    {"close", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(ws_close)), METH_VARARGS | METH_KEYWORDS,
     "close(code=1000, reason=''): before accept(), refuses the handshake with 403."},
    {"asgi_receive", ws_asgi_receive_coro, METH_NOARGS, "The ASGI websocket scope's receive()."},
    {"asgi_send", ws_asgi_send_coro, METH_O, "The ASGI websocket scope's send(message)."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef ws_getset[] = {
    {"close_code", ws_get_close_code, nullptr, "The peer's close code once closed (1006: dropped).", nullptr},
    {"close_reason", ws_get_close_reason, nullptr, "The peer's close reason.", nullptr},
    {"subprotocols", ws_get_subprotocols, nullptr, "Subprotocols the client offered.", nullptr},
    {"accepted", ws_get_accepted, nullptr, "accept() was called.", nullptr},
    {"asgi_app_closed", ws_get_asgi_app_closed, nullptr, "The ASGI app sent websocket.close.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject WsType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.WebSocket";
  t.tp_basicsize = sizeof(WsObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "A WebSocket upgrade request: accept(), receive(), send(), close().";
  t.tp_dealloc = ws_dealloc;
  t.tp_methods = ws_methods;
  t.tp_getset = ws_getset;
  return t;
}();

}  // namespace

PyObject* new_websocket(const std::shared_ptr<http::Exchange>& ex, bool permessage_deflate) {
  auto* self = PyObject_New(WsObject, &WsType);
  if (!self) return nullptr;
  new (&self->ex) std::shared_ptr<http::Exchange>(ex);
  new (&self->session) std::shared_ptr<http::WsSession>();
  self->accepted = self->denied = false;
  self->deflate_ok = permessage_deflate;
  self->asgi_connect_sent = self->asgi_app_closed = false;
  self->asgi_given_back = nullptr;
  return reinterpret_cast<PyObject*>(self);
}

bool websocket_answered(PyObject* ws) {
  auto* self = reinterpret_cast<WsObject*>(ws);
  return self->accepted || self->denied;
}

bool add_websocket_type(PyObject* module) {
  if (PyType_Ready(&WsType) < 0) return false;
  Py_INCREF(&WsType);
  return PyModule_AddObject(module, "WebSocket", reinterpret_cast<PyObject*>(&WsType)) == 0;
}

}  // namespace puff::py
