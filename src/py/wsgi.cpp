// PEP 3333: the environ, start_response/write, and the response body with backpressure.
//
// Deviations (numbered, as STYLE.md asks):
//  1. Request headers whose names contain '_' are dropped, so `X_Forwarded_For` cannot pose as
//     `X-Forwarded-For` (both would become HTTP_X_FORWARDED_FOR); gunicorn and nginx do the same.
//  2. Repeated headers are joined with ", " (Cookie with "; "), as RFC 9110 §5.3 allows.
//  3. Hop-by-hop response headers from the application (Connection, Keep-Alive,
//     Transfer-Encoding, Upgrade) are not forwarded; `Connection: close` is honoured.
#include "py/http_bridge.hpp"

#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http/response.hpp"
#include "http/server.hpp"

namespace puff::py {

namespace {

// ---- interned environ keys ------------------------------------------------------------------------

struct Keys {
  PyObject *request_method, *script_name, *path_info, *query_string, *content_type, *content_length,
      *server_name, *server_port, *server_protocol, *remote_addr, *remote_port, *wsgi_version, *wsgi_url_scheme,
      *wsgi_input, *wsgi_errors, *wsgi_multithread, *wsgi_multiprocess, *wsgi_run_once, *wsgi_input_terminated,
      *wsgi_file_wrapper, *http_1_0, *http_1_1, *version_tuple, *empty, *close, *puff_websocket, *http_2;
  PyObject* file_wrapper = nullptr;  // puff._wsgi.FileWrapper (set lazily)
};

Keys* keys() {
  static Keys* k = [] {
    auto* k = new Keys();
    auto s = [](const char* v) { return PyUnicode_InternFromString(v); };
    k->request_method = s("REQUEST_METHOD");
    k->script_name = s("SCRIPT_NAME");
    k->path_info = s("PATH_INFO");
    k->query_string = s("QUERY_STRING");
    k->content_type = s("CONTENT_TYPE");
    k->content_length = s("CONTENT_LENGTH");
    k->server_name = s("SERVER_NAME");
    k->server_port = s("SERVER_PORT");
    k->server_protocol = s("SERVER_PROTOCOL");
    k->remote_addr = s("REMOTE_ADDR");
    k->remote_port = s("REMOTE_PORT");
    k->wsgi_version = s("wsgi.version");
    k->wsgi_url_scheme = s("wsgi.url_scheme");
    k->wsgi_input = s("wsgi.input");
    k->wsgi_errors = s("wsgi.errors");
    k->wsgi_multithread = s("wsgi.multithread");
    k->wsgi_multiprocess = s("wsgi.multiprocess");
    k->wsgi_run_once = s("wsgi.run_once");
    k->wsgi_input_terminated = s("wsgi.input_terminated");
    k->wsgi_file_wrapper = s("wsgi.file_wrapper");
    k->http_1_0 = s("HTTP/1.0");
    k->http_1_1 = s("HTTP/1.1");
    k->version_tuple = Py_BuildValue("(ii)", 1, 0);
    k->empty = s("");
    k->close = s("close");
    k->puff_websocket = s("puff.websocket");
    k->http_2 = s("HTTP/2");
    return k;
  }();
  return k;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

PyObject* latin1(std::string_view s) {
  return PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr);
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

int set_item(PyObject* d, PyObject* key, PyObject* value) {
  if (!value) return -1;
  int r = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  return r;
}

PyObject* build_environ(AppState& app, const std::shared_ptr<http::Exchange>& ex) {
  Keys* k = keys();
  PyObject* env = PyDict_New();
  if (!env) return nullptr;
  bool ok = true;
  ok &= set_item(env, k->request_method, latin1(ex->method)) == 0;
  std::string path = percent_decode(ex->path.empty() ? std::string_view("/") : ex->path);
  const std::string& root = app.settings.mounts[ex->mount].prefix;
  if (!root.empty() && path.compare(0, root.size(), root) == 0 &&
      (path.size() == root.size() || path[root.size()] == '/')) {
    ok &= set_item(env, k->script_name, latin1(root)) == 0;
    ok &= set_item(env, k->path_info, latin1(std::string_view(path).substr(root.size()))) == 0;
  } else {
    ok &= set_item(env, k->script_name, latin1(root)) == 0;
    ok &= set_item(env, k->path_info, latin1(path)) == 0;
  }
  ok &= set_item(env, k->query_string, latin1(ex->query)) == 0;
  ok &= PyDict_SetItem(env, k->server_protocol, ex->http2 ? k->http_2 : ex->version_minor == 0 ? k->http_1_0 : k->http_1_1) == 0;
  if (ex->unix_socket) {
    std::string_view host = ex->host;
    auto colon = host.rfind(':');
    if (colon != std::string_view::npos && host.find(']') == std::string_view::npos) host = host.substr(0, colon);
    ok &= set_item(env, k->server_name, latin1(host.empty() ? std::string_view("localhost") : host)) == 0;
    ok &= set_item(env, k->server_port, latin1(app.settings.url_scheme == "https" ? "443" : "80")) == 0;
    ok &= PyDict_SetItem(env, k->remote_addr, k->empty) == 0;
  } else {
    ok &= set_item(env, k->server_name, latin1(ex->local_addr)) == 0;
    ok &= set_item(env, k->server_port, PyUnicode_FromFormat("%u", static_cast<unsigned>(ex->local_port))) == 0;
    ok &= set_item(env, k->remote_addr, latin1(ex->remote_addr)) == 0;
    ok &= set_item(env, k->remote_port, PyUnicode_FromFormat("%u", static_cast<unsigned>(ex->remote_port))) == 0;
  }
  // Headers: CONTENT_TYPE/CONTENT_LENGTH without the prefix, the rest as HTTP_*.
  std::string name;
  for (std::size_t i = 0; ok && i < ex->headers.size(); ++i) {
    const auto& h = ex->headers[i];
    if (h.name.find('_') != std::string_view::npos) continue;  // deviation 1
    PyObject* key;
    if (ieq(h.name, "content-type")) {
      key = Py_NewRef(k->content_type);
    } else if (ieq(h.name, "content-length")) {
      key = Py_NewRef(k->content_length);
    } else {
      name.assign("HTTP_");
      for (char c : h.name) name.push_back(c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
      key = PyUnicode_InternFromString(name.c_str());
      if (!key) {
        ok = false;
        break;
      }
    }
    PyObject* existing = PyDict_GetItemWithError(env, key);
    PyObject* value;
    if (existing) {  // deviation 2
      const char* sep = ieq(h.name, "cookie") ? "; " : ", ";
      PyObject* tail = latin1(h.value);
      PyObject* sepo = tail ? PyUnicode_FromString(sep) : nullptr;
      PyObject* a = sepo ? PyUnicode_Concat(existing, sepo) : nullptr;
      value = a ? PyUnicode_Concat(a, tail) : nullptr;
      Py_XDECREF(a);
      Py_XDECREF(sepo);
      Py_XDECREF(tail);
    } else {
      value = latin1(h.value);
    }
    ok &= set_item(env, key, value) == 0;
    Py_DECREF(key);
  }
  if (ok && !ex->chunked && ex->content_length > 0 && !PyDict_Contains(env, k->content_length))
    ok &= set_item(env, k->content_length, PyUnicode_FromFormat("%llu", static_cast<unsigned long long>(ex->content_length))) == 0;
  ok &= PyDict_SetItem(env, k->wsgi_version, k->version_tuple) == 0;
  ok &= set_item(env, k->wsgi_url_scheme, latin1(ex->tls ? std::string_view("https") : std::string_view(app.settings.url_scheme))) == 0;
  ok &= set_item(env, k->wsgi_input, new_wsgi_input(ex)) == 0;
  PyObject* err = PySys_GetObject("stderr");  // borrowed
  ok &= PyDict_SetItem(env, k->wsgi_errors, err ? err : Py_None) == 0;
  ok &= PyDict_SetItem(env, k->wsgi_multithread, Py_False) == 0;
  ok &= PyDict_SetItem(env, k->wsgi_multiprocess, app.settings.multiprocess ? Py_True : Py_False) == 0;
  ok &= PyDict_SetItem(env, k->wsgi_run_once, Py_False) == 0;
  ok &= PyDict_SetItem(env, k->wsgi_input_terminated, Py_True) == 0;
  if (!k->file_wrapper) {
    PyObject* mod = PyImport_ImportModule("puff._wsgi");
    k->file_wrapper = mod ? PyObject_GetAttrString(mod, "FileWrapper") : nullptr;
    Py_XDECREF(mod);
    if (!k->file_wrapper) ok = false;
  }
  if (ok) ok &= PyDict_SetItem(env, k->wsgi_file_wrapper, k->file_wrapper) == 0;
  if (ok && ex->websocket) ok &= set_item(env, k->puff_websocket, new_websocket(ex, app.settings.ws_deflate)) == 0;
  if (!ok) {
    Py_DECREF(env);
    return nullptr;
  }
  return env;
}

// ---- the response --------------------------------------------------------------------------------

/** One request's response state. Lives inside the start_response object. */
struct Response {
  std::shared_ptr<http::Exchange> ex;
  http::ResponseWriter w;
  bool started = false;  // start_response called

  explicit Response(const std::shared_ptr<http::Exchange>& e)
      : ex(e), w(*e) {}

  std::string head(long long body_size) {
    std::string h = w.head(body_size);
    ex->keep_alive = w.keep_alive();
    return h;
  }
  void frame(std::string& out, const char* data, std::size_t n) { w.frame(out, data, n); }
  std::string finish_bytes() {
    std::string f = w.finish();
    ex->keep_alive = w.keep_alive();
    return f;
  }
};

struct StartResponseObject {
  PyObject_HEAD
  Response* r;
};

bool parse_status(PyObject* status, http::ResponseWriter& w) {
  if (!PyUnicode_Check(status)) {
    PyErr_SetString(PyExc_TypeError, "start_response: status must be a str like '200 OK'");
    return false;
  }
  PyObject* b = PyUnicode_AsLatin1String(status);
  if (!b) {
    PyErr_Format(PyExc_ValueError, "start_response: status %R is not ISO-8859-1 (PEP 3333)", status);
    return false;
  }
  std::string_view err = w.set_status_line(std::string_view(PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b))));
  Py_DECREF(b);
  if (!err.empty()) {
    PyErr_Format(PyExc_ValueError, "start_response: %s: %R", std::string(err).c_str(), status);
    return false;
  }
  return true;
}

bool parse_headers(PyObject* headers, http::ResponseWriter& w) {
  if (!PyList_Check(headers)) {
    PyErr_SetString(PyExc_TypeError, "start_response: headers must be a list of (name, value) tuples");
    return false;
  }
  w.clear_headers();
  Py_ssize_t count = PyList_GET_SIZE(headers);
  for (Py_ssize_t i = 0; i < count; ++i) {
    PyObject* item = PyList_GET_ITEM(headers, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item, 1))) {
      PyErr_Format(PyExc_TypeError, "start_response: header %zd must be a (str, str) tuple, got %R", i, item);
      return false;
    }
    // PEP 3333: header names and values are str of ISO-8859-1 characters, sent as those bytes.
    PyObject* nb = PyUnicode_AsLatin1String(PyTuple_GET_ITEM(item, 0));
    PyObject* vb = nb ? PyUnicode_AsLatin1String(PyTuple_GET_ITEM(item, 1)) : nullptr;
    if (!vb) {
      Py_XDECREF(nb);
      PyErr_Format(PyExc_ValueError, "start_response: header %R is not ISO-8859-1 (PEP 3333)", item);
      return false;
    }
    std::string_view err = w.add_header(std::string_view(PyBytes_AS_STRING(nb), static_cast<std::size_t>(PyBytes_GET_SIZE(nb))),
                                        std::string_view(PyBytes_AS_STRING(vb), static_cast<std::size_t>(PyBytes_GET_SIZE(vb))));
    Py_DECREF(nb);
    Py_DECREF(vb);
    if (!err.empty()) {
      PyErr_Format(PyExc_ValueError, "start_response: %s: %R", std::string(err).c_str(), item);
      return false;
    }
  }
  return true;
}

/** Queues one body chunk (after `before`) and waits while the output is over its high-water
 *  mark. False when the client is gone (no exception) or the wait failed (exception set). */
bool send_chunk(Response& r, std::string before, PyObject* obj, const char* data, std::size_t n) {
  if (!queue_body(*r.ex, r.w, std::move(before), obj, data, n, false)) return false;  // client gone
  if (r.ex->queued() > r.ex->out_high_water) return wait_output_drained(r.ex);
  return true;
}

Response* live_response(PyObject* o) {
  Response* r = reinterpret_cast<StartResponseObject*>(o)->r;
  if (!r) PyErr_SetString(PyExc_RuntimeError, "this WSGI response is already finished");
  return r;
}

PyObject* start_response_call(PyObject* o, PyObject* args, PyObject* kwargs) {
  Response* rp = live_response(o);
  if (!rp) return nullptr;
  Response& r = *rp;
  PyObject *status, *headers, *exc_info = Py_None;
  static const char* kwlist[] = {"status", "headers", "exc_info", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kwlist), &status, &headers,
                                   &exc_info))
    return nullptr;
  if (exc_info != Py_None) {
    if (r.w.head_sent()) {  // PEP 3333: re-raise, the response cannot be changed any more
      if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a sys.exc_info() tuple");
        return nullptr;
      }
      PyObject* val = PyTuple_GET_ITEM(exc_info, 1);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(val)), val);
      return nullptr;
    }
  } else if (r.started) {
    PyErr_SetString(PyExc_RuntimeError, "start_response called twice without exc_info");
    return nullptr;
  }
  http::ResponseWriter trial(*r.ex);
  if (!parse_status(status, trial) || !parse_headers(headers, trial)) return nullptr;
  r.w = std::move(trial);
  r.started = true;
  return PyObject_GetAttrString(o, "write");
}

PyObject* write_method(PyObject* o, PyObject* data) {
  Response* rp = live_response(o);
  if (!rp) return nullptr;
  Response& r = *rp;
  if (!r.started) {
    PyErr_SetString(PyExc_RuntimeError, "write() called before start_response()");
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  std::string out;
  if (!r.w.head_sent()) out = r.head(-1);
  bool sent = send_chunk(r, std::move(out), data, static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
  PyBuffer_Release(&view);
  if (!sent) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ConnectionResetError, "client disconnected");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef start_response_methods[] = {
    {"write", write_method, METH_O, "write(data): PEP 3333's legacy write callable."},
    {nullptr, nullptr, 0, nullptr},
};

void start_response_dealloc(PyObject* o) { PyObject_Free(o); }

PyTypeObject StartResponseType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.StartResponse";
  t.tp_basicsize = sizeof(StartResponseObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "start_response(status, headers, exc_info=None) for one WSGI request.";
  t.tp_call = start_response_call;
  t.tp_dealloc = start_response_dealloc;
  t.tp_methods = start_response_methods;
  return t;
}();

void send_error_response(Response& r, int status, const char* text) {
  r.ex->keep_alive = false;
  r.ex->write(http::simple_response(*r.ex, status, text), true);
}

/** Iterates the app's result and sends it. Returns false with an exception set on failure. */
/** wsgi.file_wrapper over a regular file, on a connection that can sendfile: the kernel sends
 *  the file. Returns true when it handled the response (false: iterate as usual; no exception). */
bool try_sendfile(Response& r, PyObject* result) {
  Keys* k = keys();
  if (!k->file_wrapper || Py_TYPE(result) != reinterpret_cast<PyTypeObject*>(k->file_wrapper) || !r.started ||
      r.w.head_sent() || !r.ex->sendfile_ok)
    return false;
  PyObject* filelike = PyObject_GetAttrString(result, "filelike");
  PyObject* fdobj = filelike ? PyObject_CallMethod(filelike, "fileno", nullptr) : nullptr;
  Py_XDECREF(filelike);
  long fd = fdobj ? PyLong_AsLong(fdobj) : -1;
  Py_XDECREF(fdobj);
  if (fd < 0) {
    PyErr_Clear();  // not a real file (BytesIO, ...): iterate it
    return false;
  }
  struct stat st {};
  off_t pos = ::lseek(static_cast<int>(fd), 0, SEEK_CUR);
  if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode) || pos < 0 || pos > st.st_size) return false;
  std::uint64_t length = static_cast<std::uint64_t>(st.st_size - pos);
  std::string head = r.head(static_cast<long long>(length));
  if (r.w.compressing()) {
    // gzip on: send the head now and let the caller iterate (frame() compresses each block).
    r.ex->write(std::move(head), false);
    return false;
  }
  if (r.ex->method == "HEAD" || length == 0) {
    r.ex->write(std::move(head) + r.finish_bytes(), true);
    return true;
  }
  int dup_fd = ::dup(static_cast<int>(fd));
  if (dup_fd < 0) {
    r.ex->write(std::move(head), false);
    return false;
  }
  r.ex->write_file(std::move(head), dup_fd, static_cast<std::uint64_t>(pos), length);
  return true;
}

bool send_body(Response& r, PyObject* result) {
  if (try_sendfile(r, result)) return true;
  // Fast path: a list or tuple of bytes (the common `return [b"..."]`) is sent in one write,
  // with its Content-Length.
  if ((PyList_CheckExact(result) || PyTuple_CheckExact(result))) {
    PyObject* seq = result;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    std::size_t total = 0;
    bool all_bytes = true;
    for (Py_ssize_t i = 0; i < n; ++i) {
      if (!PyBytes_CheckExact(items[i])) {
        all_bytes = false;
        break;
      }
      total += static_cast<std::size_t>(PyBytes_GET_SIZE(items[i]));
    }
    if (all_bytes && r.started && !r.w.head_sent() && n == 1) {
      queue_body(*r.ex, r.w, r.head(static_cast<long long>(total)), items[0], PyBytes_AS_STRING(items[0]), total, true);
      return true;
    }
    if (all_bytes && r.started && !r.w.head_sent()) {
      std::string out = r.head(static_cast<long long>(total));
      out.reserve(out.size() + total);
      for (Py_ssize_t i = 0; i < n; ++i)
        r.frame(out, PyBytes_AS_STRING(items[i]), static_cast<std::size_t>(PyBytes_GET_SIZE(items[i])));
      out += r.finish_bytes();
      r.ex->write(std::move(out), true);
      return true;
    }
  }
  PyObject* it = PyObject_GetIter(result);
  if (!it) return false;
  for (;;) {
    PyObject* item = PyIter_Next(it);
    if (!item) break;
    Py_buffer view;
    if (!PyBytes_Check(item) && !PyByteArray_Check(item) && !PyMemoryView_Check(item)) {
      PyErr_Format(PyExc_TypeError, "WSGI response body items must be bytes, got %.100s", Py_TYPE(item)->tp_name);
      Py_DECREF(item);
      break;
    }
    if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0) {
      Py_DECREF(item);
      break;
    }
    if (view.len > 0 || !r.w.head_sent()) {
      if (!r.started) {
        PyBuffer_Release(&view);
        Py_DECREF(item);
        PyErr_SetString(PyExc_RuntimeError, "WSGI app returned a body before calling start_response()");
        break;
      }
      std::string out;
      if (!r.w.head_sent() && view.len > 0) out = r.head(-1);
      bool sent = view.len == 0 ||
                  send_chunk(r, std::move(out), item, static_cast<const char*>(view.buf), static_cast<std::size_t>(view.len));
      PyBuffer_Release(&view);
      Py_DECREF(item);
      if (!sent) {
        if (!PyErr_Occurred()) {
          Py_DECREF(it);
          return true;  // the client went away: stop producing, close() still runs
        }
        break;
      }
    } else {
      PyBuffer_Release(&view);
      Py_DECREF(item);
    }
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) return false;
  if (!r.started) {
    PyErr_SetString(PyExc_RuntimeError, "WSGI app returned without calling start_response()");
    return false;
  }
  std::string out;
  if (!r.w.head_sent()) out = r.head(0);
  out += r.finish_bytes();
  r.ex->write(std::move(out), true);
  return true;
}

bool call_close(PyObject* result) {
  PyObject* close = PyObject_GetAttr(result, keys()->close);
  if (!close) {
    if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
      PyErr_Clear();
      return true;
    }
    return false;
  }
  PyObject* r = PyObject_CallNoArgs(close);
  Py_DECREF(close);
  Py_XDECREF(r);
  return r != nullptr;
}

}  // namespace

void log_exception(const char* msg) {
  PyObject* exc = take_exception();
  PyObject* err = PySys_GetObject("stderr");
  if (err) {
    PyFile_WriteString("puff: ", err);
    PyFile_WriteString(msg, err);
    PyFile_WriteString("\n", err);
  }
  if (exc) {
    PyObject* tb_mod = PyImport_ImportModule("traceback");
    PyObject* r = tb_mod ? PyObject_CallMethod(tb_mod, "print_exception", "O", exc) : nullptr;
    Py_XDECREF(r);
    Py_XDECREF(tb_mod);
    Py_DECREF(exc);
  }
  PyErr_Clear();
}

void handle_wsgi(AppState& app, const std::shared_ptr<http::Exchange>& ex) {
  Response r(ex);
  PyObject* environ = build_environ(app, ex);
  if (!environ) {
    log_exception("could not build the WSGI environ");
    send_error_response(r, 500, "Internal Server Error");
    return;
  }
  auto* sr = PyObject_New(StartResponseObject, &StartResponseType);
  if (!sr) {
    Py_DECREF(environ);
    log_exception("out of memory");
    send_error_response(r, 500, "Internal Server Error");
    return;
  }
  sr->r = &r;
  PyObject* result = PyObject_CallFunctionObjArgs(app.settings.mounts[ex->mount].app, environ, sr, nullptr);
  bool ok = result != nullptr;
  PyObject* ws = ex->websocket ? PyDict_GetItemWithError(environ, keys()->puff_websocket) : nullptr;  // borrowed
  if (ws && websocket_answered(ws) && !r.started) {
    // The app answered the upgrade through environ["puff.websocket"]: no HTTP response to send.
  } else if (ok) {
    ok = send_body(r, result);
  }
  int body_status = ok ? 0 : ex->body_error_status();
  if (!ok && body_status && !r.w.head_sent()) {
    // The request body was malformed or too large: the client's fault, answered as such.
    PyErr_Clear();
    send_error_response(r, body_status, body_status == 413 ? "Content Too Large" : "Bad Request");
  } else if (!ok) {
    log_exception("WSGI application failed");
    if (!r.w.head_sent()) {
      send_error_response(r, 500, "Internal Server Error");
    } else {
      ex->abort();  // the head is out: the only honest signal left is a broken connection
    }
  }
  if (result && !call_close(result)) log_exception("WSGI response close() failed");
  Py_XDECREF(result);
  sr->r = nullptr;
  Py_DECREF(reinterpret_cast<PyObject*>(sr));
  Py_DECREF(environ);
}

bool add_wsgi_types(PyObject* module) {
  if (PyType_Ready(&StartResponseType) < 0) return false;
  Py_INCREF(&StartResponseType);
  return PyModule_AddObject(module, "StartResponse", reinterpret_cast<PyObject*>(&StartResponseType)) == 0;
}

}  // namespace puff::py
