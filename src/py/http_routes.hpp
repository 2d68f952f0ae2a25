// HttpServer's native routes from its options dict: "static" mounts and "cors" settings become
// Handler decorators around the application, Cors(StaticFiles(app)), so static files get CORS
// too, and both answer natively before any request reaches Python.
#pragma once

#include <memory>

#include "http/server.hpp"
#include "py/pyref.hpp"

namespace puff::py {

/** Returns `app` wrapped as `options` ask (a dict, or nullptr for none). Python thread, GIL held.
 *  On invalid options returns nullptr with TypeError or ValueError set; the message names the
 *  option (`options['static'][1]['directory']: ...`). */
std::shared_ptr<http::Handler> wrap_native_routes(PyObject* options, std::shared_ptr<http::Handler> app);

}  // namespace puff::py
