#include "py/http_routes.hpp"

#include "http/compression.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "http/chars.hpp"
#include "http/cors.hpp"
#include "http/static_files.hpp"

namespace puff::py {

namespace {

bool fail(PyObject* type, const std::string& where, const std::string& what) {
  PyErr_SetString(type, (where + ": " + what).c_str());
  return false;
}

/** Only keys from `allowed` (str keys), so a misspelt option is an error, not a no-op. */
bool check_keys(PyObject* dict, std::initializer_list<const char*> allowed, const std::string& where) {
  PyObject *key, *value;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    const char* k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : nullptr;
    if (!k) {
      PyErr_Clear();
      return fail(PyExc_TypeError, where, "keys must be strings");
    }
    bool known = false;
    for (const char* a : allowed) known = known || std::string_view(a) == k;
    if (!known) {
      std::string names;
      for (const char* a : allowed) names += names.empty() ? a : std::string(", ") + a;
      return fail(PyExc_ValueError, where, "unknown key '" + std::string(k) + "' (known: " + names + ")");
    }
  }
  return true;
}

/** The value under `key`, or nullptr when absent or None (borrowed). */
PyObject* item(PyObject* dict, const char* key) {
  PyObject* v = PyDict_GetItemString(dict, key);
  return v == Py_None ? nullptr : v;
}

bool get_str(PyObject* v, const std::string& where, std::string& out) {
  if (!PyUnicode_Check(v)) return fail(PyExc_TypeError, where, "must be a str");
  const char* s = PyUnicode_AsUTF8(v);
  if (!s) return false;
  out = s;
  return true;
}

bool get_path(PyObject* v, const std::string& where, std::string& out) {
  Ref p = Ref::steal(PyOS_FSPath(v));
  if (!p) {
    PyErr_Clear();
    return fail(PyExc_TypeError, where, "must be a str or os.PathLike");
  }
  return get_str(p.get(), where, out);
}

bool get_count(PyObject* v, const std::string& where, std::uint64_t& out) {
  if (!PyLong_Check(v) || PyBool_Check(v)) return fail(PyExc_TypeError, where, "must be an int");
  long long n = PyLong_AsLongLong(v);
  if (n == -1 && PyErr_Occurred()) return false;
  if (n < 0) return fail(PyExc_ValueError, where, "must be >= 0");
  out = static_cast<std::uint64_t>(n);
  return true;
}

/** A list or tuple (new reference from PySequence_Fast), else TypeError. */
Ref get_seq(PyObject* v, const std::string& where, const char* what) {
  if (!PyList_Check(v) && !PyTuple_Check(v)) {
    fail(PyExc_TypeError, where, std::string("must be ") + what);
    return Ref();
  }
  return Ref::steal(PySequence_Fast(v, what));
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!http::is_tchar(c)) return false;
  }
  return true;
}

enum class Items { Origin, Token };

/** "*" or a list of strings: origins are checked and normalized, names must be tokens. */
bool get_cors_list(PyObject* v, const std::string& where, Items kind, std::optional<http::CorsList>& out) {
  http::CorsList l;
  if (PyUnicode_Check(v)) {
    if (PyUnicode_CompareWithASCIIString(v, "*") != 0) return fail(PyExc_ValueError, where, "must be \"*\" or a list of strings");
    l.any = true;
    out = std::move(l);
    return true;
  }
  Ref seq = get_seq(v, where, "\"*\" or a list of strings");
  if (!seq) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    std::string s, at = where + "[" + std::to_string(i) + "]";
    if (!get_str(PySequence_Fast_GET_ITEM(seq.get(), i), at, s)) return false;
    if (kind == Items::Origin) {
      auto o = http::normalize_cors_origin(s);
      if (!o) return fail(PyExc_ValueError, at, "origin '" + s + "' must be http(s)://host[:port] (no path)");
      s = std::move(*o);
    } else if (!is_token(s)) {
      return fail(PyExc_ValueError, at, "'" + s + "' is not a valid token");
    }
    l.items.push_back(std::move(s));
  }
  out = std::move(l);
  return true;
}

bool parse_mount(PyObject* d, const std::string& where, http::StaticMount& m) {
  if (!PyDict_Check(d)) return fail(PyExc_TypeError, where, "must be a dict");
  if (!check_keys(d, {"prefix", "directory", "index", "max_age"}, where)) return false;
  PyObject* prefix = item(d, "prefix");
  PyObject* directory = item(d, "directory");
  if (!prefix) return fail(PyExc_ValueError, where, "'prefix' is required");
  if (!directory) return fail(PyExc_ValueError, where, "'directory' is required");
  if (!get_str(prefix, where + "['prefix']", m.prefix)) return false;
  if (m.prefix.empty() || m.prefix.front() != '/')
    return fail(PyExc_ValueError, where + "['prefix']", "'" + m.prefix + "' must start with '/'");
  if (!get_path(directory, where + "['directory']", m.directory)) return false;
  if (PyDict_GetItemString(d, "index") == Py_None) {
    m.index.clear();  // explicitly none
  } else if (PyObject* index = item(d, "index")) {
    if (!get_str(index, where + "['index']", m.index)) return false;
    if (m.index.find('/') != std::string::npos)
      return fail(PyExc_ValueError, where + "['index']", "must be a file name, not a path");
  }
  if (PyObject* age = item(d, "max_age")) {
    std::uint64_t n = 0;
    if (!get_count(age, where + "['max_age']", n)) return false;
    m.max_age = n;
  }
  return true;
}

bool parse_static(PyObject* v, std::vector<http::StaticMount>& mounts) {
  const std::string where = "options['static']";
  Ref seq = get_seq(v, where, "a list of dicts");
  if (!seq) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    http::StaticMount m;
    if (!parse_mount(PySequence_Fast_GET_ITEM(seq.get(), i), where + "[" + std::to_string(i) + "]", m)) return false;
    mounts.push_back(std::move(m));
  }
  return true;
}

bool parse_cors(PyObject* d, http::CorsOptions& o) {
  const std::string where = "options['cors']";
  if (!PyDict_Check(d)) return fail(PyExc_TypeError, where, "must be a dict");
  if (!check_keys(d,
                  {"base_config", "max_age_secs", "allow_credentials", "allowed_origins", "allowed_headers",
                   "allowed_methods", "expose_headers"},
                  where))
    return false;
  if (PyObject* b = item(d, "base_config")) {
    std::string base;
    if (!get_str(b, where + "['base_config']", base)) return false;
    if (base == "Default") {
      o.base = http::CorsOptions::Base::Default;
    } else if (base == "Permissive") {
      o.base = http::CorsOptions::Base::Permissive;
    } else if (base == "VeryPermissive") {
      o.base = http::CorsOptions::Base::VeryPermissive;
    } else {
      return fail(PyExc_ValueError, where + "['base_config']",
                  "must be 'Default', 'Permissive' or 'VeryPermissive', not '" + base + "'");
    }
  }
  if (PyObject* age = item(d, "max_age_secs")) {
    std::uint64_t n = 0;
    if (!get_count(age, where + "['max_age_secs']", n)) return false;
    o.max_age_secs = n;
  }
  if (PyObject* cred = item(d, "allow_credentials")) {
    if (!PyBool_Check(cred)) return fail(PyExc_TypeError, where + "['allow_credentials']", "must be a bool");
    o.allow_credentials = cred == Py_True;
  }
  struct ListKey {
    const char* key;
    Items kind;
    std::optional<http::CorsList>& out;
  };
  for (const ListKey& k : {ListKey{"allowed_origins", Items::Origin, o.allowed_origins},
                           ListKey{"allowed_headers", Items::Token, o.allowed_headers},
                           ListKey{"allowed_methods", Items::Token, o.allowed_methods},
                           ListKey{"expose_headers", Items::Token, o.expose_headers}}) {
    PyObject* v = item(d, k.key);
    if (v && !get_cors_list(v, where + "['" + k.key + "']", k.kind, k.out)) return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<http::Handler> wrap_native_routes(PyObject* options, std::shared_ptr<http::Handler> app) {
  if (!options) return app;
  std::shared_ptr<http::Handler> handler = std::move(app);
  if (PyObject* st = item(options, "static")) {
    std::vector<http::StaticMount> mounts;
    if (!parse_static(st, mounts)) return nullptr;
    try {
      if (!mounts.empty()) handler = std::make_shared<http::StaticFiles>(std::move(mounts), std::move(handler));
    } catch (const std::runtime_error& e) {
      PyErr_Format(PyExc_ValueError, "options['static']: %s", e.what());
      return nullptr;
    }
  }
  if (PyObject* cors = item(options, "cors")) {
    http::CorsOptions o;
    if (!parse_cors(cors, o)) return nullptr;
    handler = std::make_shared<http::Cors>(o, std::move(handler));
  }
  if (PyObject* comp = item(options, "compression")) {
    // True, or {"min_size": bytes}: gzip compressible responses of every route.
    std::size_t min_size = 1024;
    if (PyDict_Check(comp)) {
      if (PyObject* m = PyDict_GetItemString(comp, "min_size")) {
        long long n = PyLong_AsLongLong(m);
        if ((n == -1 && PyErr_Occurred()) || n < 1) {
          if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "options['compression']['min_size'] must be >= 1");
          return nullptr;
        }
        min_size = static_cast<std::size_t>(n);
      }
      handler = std::make_shared<http::Compression>(min_size, std::move(handler));
    } else if (PyObject_IsTrue(comp) == 1) {
      handler = std::make_shared<http::Compression>(min_size, std::move(handler));
    }
  }
  return handler;
}

}  // namespace puff::py
