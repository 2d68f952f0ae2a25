// The ASGI `scope` of an HTTP or WebSocket exchange (asgi.cpp runs the app with it).
// Deviations and choices (numbered as in asgi.cpp, as STYLE.md asks):
//  1. Header names in the scope are lower-cased bytes; duplicates and order are kept.
//  2. `path` is percent-decoded UTF-8 (invalid sequences replaced) and includes `root_path`.
#include <iterator>
#include <string>
#include <string_view>

#include "py/http_bridge.hpp"

namespace puff::py {

namespace {

struct K {
  PyObject *type, *asgi, *http_version, *server, *client, *scheme, *method, *root_path, *path, *raw_path,
      *query_string, *headers, *state, *http, *h10, *h11, *h2, *empty_bytes;
  PyObject* asgi_dict;  // {"version": "3.0", "spec_version": "2.3"}
};

K* k() {
  static K* k = [] {
    auto* k = new K();
    auto s = [](const char* v) { return PyUnicode_InternFromString(v); };
    k->type = s("type");
    k->asgi = s("asgi");
    k->http_version = s("http_version");
    k->server = s("server");
    k->client = s("client");
    k->scheme = s("scheme");
    k->method = s("method");
    k->root_path = s("root_path");
    k->path = s("path");
    k->raw_path = s("raw_path");
    k->query_string = s("query_string");
    k->headers = s("headers");
    k->state = s("state");
    k->http = s("http");
    k->h10 = s("1.0");
    k->h11 = s("1.1");
    k->h2 = s("2");
    k->empty_bytes = PyBytes_FromStringAndSize("", 0);
    k->asgi_dict = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version", "2.3");
    return k;
  }();
  return k;
}

int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

PyObject* decoded_path(std::string_view raw) {
  if (raw.find('%') == std::string_view::npos)  // the common case: nothing to decode
    return PyUnicode_DecodeUTF8(raw.data(), static_cast<Py_ssize_t>(raw.size()), "replace");
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '%' && i + 2 < raw.size() && hexval(raw[i + 1]) >= 0 && hexval(raw[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexval(raw[i + 1]) * 16 + hexval(raw[i + 2])));
      i += 2;
    } else {
      out.push_back(raw[i]);
    }
  }
  return PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()), "replace");
}

int put(PyObject* d, PyObject* key, PyObject* value) {
  if (!value) return -1;
  int r = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  return r;
}

/** (host, port): a new tuple. */
PyObject* addr_tuple(const std::string& host, std::uint16_t port) {
  PyObject* h = PyUnicode_FromStringAndSize(host.data(), static_cast<Py_ssize_t>(host.size()));
  PyObject* p = h ? PyLong_FromLong(port) : nullptr;
  PyObject* t = p ? PyTuple_New(2) : nullptr;
  if (!t) {
    Py_XDECREF(h);
    Py_XDECREF(p);
    return nullptr;
  }
  PyTuple_SET_ITEM(t, 0, h);
  PyTuple_SET_ITEM(t, 1, p);
  return t;
}

/** The method as str: the common ones are shared interned strings. */
PyObject* method_str(std::string_view m) {
  static const char* const common[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"};
  static PyObject* interned[std::size(common)] = {};
  for (std::size_t i = 0; i < std::size(common); ++i) {
    if (m == common[i]) {
      if (!interned[i]) interned[i] = PyUnicode_InternFromString(common[i]);
      return Py_XNewRef(interned[i]);
    }
  }
  return PyUnicode_DecodeLatin1(m.data(), static_cast<Py_ssize_t>(m.size()), nullptr);
}

/** [(lowercased name, value), ...] as bytes pairs, in the request's order (duplicates kept). */
PyObject* header_list(const http::Exchange& ex) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(ex.headers.size()));
  for (std::size_t i = 0; list && i < ex.headers.size(); ++i) {
    const auto& h = ex.headers[i];
    PyObject* name = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(h.name.size()));
    PyObject* value = name ? PyBytes_FromStringAndSize(h.value.data(), static_cast<Py_ssize_t>(h.value.size())) : nullptr;
    PyObject* pair = value ? PyTuple_New(2) : nullptr;
    if (!pair) {
      Py_XDECREF(name);
      Py_XDECREF(value);
      Py_CLEAR(list);
      break;
    }
    char* out = PyBytes_AS_STRING(name);
    for (std::size_t j = 0; j < h.name.size(); ++j) {
      char ch = h.name[j];
      out[j] = ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch + 32) : ch;
    }
    PyTuple_SET_ITEM(pair, 0, name);
    PyTuple_SET_ITEM(pair, 1, value);
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), pair);
  }
  return list;
}

/** An empty scope with room for every key: each request's scope is a copy of it (one memcpy of
 *  the key table, no resizing as the keys go in). Its values are placeholders, all replaced. */
PyObject* scope_template(bool websocket) {
  K* kk = k();
  PyObject* t = PyDict_New();
  PyObject* keys[] = {kk->type, kk->asgi, kk->http_version, kk->method, kk->scheme, kk->path, kk->raw_path,
                      kk->query_string, kk->root_path, kk->server, kk->client, kk->headers};
  for (PyObject* key : keys) {
    if (!t) break;
    if (websocket && key == kk->method) continue;
    if (PyDict_SetItem(t, key, Py_None) < 0) Py_CLEAR(t);
  }
  return t;
}

}  // namespace

PyObject* build_scope(AppHandle& app, const http::Exchange& ex, bool websocket) {
  K* kk = k();
  static PyObject* templates[2] = {scope_template(false), scope_template(true)};
  PyObject* tmpl = templates[websocket ? 1 : 0];
  if (!tmpl) {
    PyErr_SetString(PyExc_MemoryError, "ASGI scope template");
    return nullptr;
  }
  PyObject* scope = PyDict_Copy(tmpl);
  if (!scope) return nullptr;
  std::string_view raw_path = ex.path.empty() ? std::string_view("/") : ex.path;
  bool tls = ex.tls || app.state.settings.url_scheme == "https";
  static PyObject* s_websocket = PyUnicode_InternFromString("websocket");
  static PyObject* s_empty = PyUnicode_InternFromString("");
  static PyObject* schemes[4] = {PyUnicode_InternFromString("http"), PyUnicode_InternFromString("https"),
                                 PyUnicode_InternFromString("ws"), PyUnicode_InternFromString("wss")};
  if (!s_websocket || !s_empty || !schemes[0] || !schemes[1] || !schemes[2] || !schemes[3]) {
    Py_DECREF(scope);
    PyErr_NoMemory();
    return nullptr;
  }
  const std::string& prefix = app.state.settings.mounts[ex.mount].prefix;
  bool ok = PyDict_SetItem(scope, kk->type, websocket ? s_websocket : kk->http) == 0 &&
            PyDict_SetItem(scope, kk->asgi, kk->asgi_dict) == 0 &&
            PyDict_SetItem(scope, kk->http_version, ex.http2 ? kk->h2 : ex.version_minor == 0 ? kk->h10 : kk->h11) == 0 &&
            (websocket || put(scope, kk->method, method_str(ex.method)) == 0) &&
            PyDict_SetItem(scope, kk->scheme, schemes[(websocket ? 2 : 0) + (tls ? 1 : 0)]) == 0 &&
            put(scope, kk->path, decoded_path(raw_path)) == 0 &&
            put(scope, kk->raw_path, PyBytes_FromStringAndSize(raw_path.data(), static_cast<Py_ssize_t>(raw_path.size()))) == 0 &&
            put(scope, kk->query_string, ex.query.empty() ? Py_NewRef(kk->empty_bytes)
                                                          : PyBytes_FromStringAndSize(ex.query.data(), static_cast<Py_ssize_t>(ex.query.size()))) == 0 &&
            put(scope, kk->root_path, prefix.empty() ? Py_XNewRef(s_empty)
                                                     : PyUnicode_FromStringAndSize(prefix.data(), static_cast<Py_ssize_t>(prefix.size()))) == 0;
  if (ok) {
    if (ex.unix_socket) {
      ok = PyDict_SetItem(scope, kk->server, Py_None) == 0 && PyDict_SetItem(scope, kk->client, Py_None) == 0;
    } else {
      ok = put(scope, kk->server, addr_tuple(ex.local_addr, ex.local_port)) == 0 &&
           put(scope, kk->client, addr_tuple(ex.remote_addr, ex.remote_port)) == 0;
    }
  }
  ok = ok && put(scope, kk->headers, header_list(ex)) == 0;  // deviation 1
  if (ok && !websocket) {
    // {"http.response.pathsend": {}}: new each time, apps may write to it.
    static PyObject* key = PyUnicode_InternFromString("extensions");
    static PyObject* pathsend = PyUnicode_InternFromString("http.response.pathsend");
    PyObject* extensions = PyDict_New();
    ok = extensions && put(extensions, pathsend, PyDict_New()) == 0 && PyDict_SetItem(scope, key, extensions) == 0;
    Py_XDECREF(extensions);
  }
  PyObject* life = app.state.settings.mounts[ex.mount].state;
  if (ok && life) ok = put(scope, kk->state, PyDict_Copy(life)) == 0;
  if (!ok) {
    Py_DECREF(scope);
    return nullptr;
  }
  return scope;
}

}  // namespace puff::py
