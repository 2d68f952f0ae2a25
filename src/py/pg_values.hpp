// Postgres values <-> Python objects for puff.postgres, over the pure codecs of src/pg/binary.hpp.
// Python thread only (GIL held). The mapping: docs/postgres-types.md and docs/postgres.md.
#pragma once

#include "pg/query.hpp"
#include "py/pyref.hpp"

#include <string_view>

namespace puff::py {

/** Imports what the conversions need (datetime C API, Decimal, UUID, json, ipaddress). Idempotent;
 *  false with an exception set. */
bool pg_values_init();

/** The exception classes set by puff.postgres (borrowed; null until registered). */
struct PgErrorClasses {
  PyObject* data_error = nullptr;    // DataError: a value that cannot be converted
  PyObject* factory = nullptr;       // factory(fields: dict) -> exception instance
};
PgErrorClasses& pg_error_classes();

/** Raises the exception for a failed query: factory(fields), or RuntimeError before
 *  registration. Always returns null. */
PyObject* raise_pg_error(const pg::ErrorInfo& e);

/** Raises DataError (or ValueError before registration) with `msg`. Returns null. */
PyObject* raise_data_error(const char* fmt, ...);

/** One binary field of type `type` as a Python object; new reference, or null with DataError set. */
PyObject* decode_value(pg::Oid type, std::string_view in);

/** Appends parameter `index` (0-based) from `value`. False with DataError set (naming $index+1). */
bool encode_param(PyObject* value, pg::Params& params, int index);

/** pg_pool.cpp: adds PgPool, PgLease and pg_set_errors to puff._native. */
bool add_pg_types(PyObject* module);
/** pg_pool.cpp: at runtime stop, before the I/O threads stop: releases every lease and closes
 *  every pool (their Python objects then report "closed"). */
void close_pg_pools();

/** pg_copy.cpp: a COPY step's result that is not an error: "in" / "out" for Start, bytes for
 *  Write (empty) and Read. New reference or null with an exception set. */
PyObject* build_copy_result(const pg::Result& r);
/** pg_copy.cpp: (step: int, data: bytes | str = b"") -> a COPY step query; false with an
 *  exception set. */
bool parse_copy_step(PyObject* const* args, Py_ssize_t nargs, pg::Query& q);
/** pg_listen.cpp: adds PgListener and PgSubscription to puff._native. */
bool add_pg_listen_types(PyObject* module);
/** pg_listen.cpp: at runtime stop: closes every listener (waiting get()s return None). */
void close_pg_listeners();

/** Every row of `r` as a list of tuples; null with an exception set. */
PyObject* decode_rows(const pg::Result& r);

}  // namespace puff::py
