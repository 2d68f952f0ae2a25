// Postgres queries and results as the pool sees them: parameters in libpq's parallel-array form,
// results that keep their PGresult alive and hand out cell views without copying, and the error
// fields a DB-API layer maps to exceptions. No threads here: these are values.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace puff::pg {

using Oid = ::Oid;

/** Wire format of a parameter or of a result's columns (libpq's 0/1). */
enum class Format : int { Text = 0, Binary = 1 };

/** SQLSTATE codes the pool itself produces (synthetic errors use them too). */
namespace sqlstate {
inline constexpr std::string_view kUnableToConnect = "08001";      // connect failed or timed out
inline constexpr std::string_view kConnectionDoesNotExist = "08003";  // pool closed
inline constexpr std::string_view kConnectionFailure = "08006";    // lost while the query was in flight
inline constexpr std::string_view kResolutionUnknown = "08007";    // lost after COMMIT was sent (or a
                                                                    // statement's outcome was not confirmed)
inline constexpr std::string_view kQueryCanceled = "57014";
inline constexpr std::string_view kInvalidTransactionState = "25000";
inline constexpr std::string_view kInFailedTransaction = "25P02";  // COMMIT answered ROLLBACK
inline constexpr std::string_view kProtocolViolation = "08P01";
inline constexpr std::string_view kTooManyParameters = "54023";
}  // namespace sqlstate

/** Parameters of one statement. Values live in one buffer; `add*` copies the bytes. */
class Params {
 public:
  /** A NULL of type `type` (0 = let the server infer it). */
  void add_null(Oid type = 0);
  /** A value in `format` (binary needs the right `type`; text may leave it 0 to infer). */
  void add(std::string_view bytes, Oid type = 0, Format format = Format::Text);
  void clear();
  void reserve(std::size_t count, std::size_t bytes);

  std::size_t size() const noexcept { return types_.size(); }
  const std::vector<Oid>& types() const noexcept { return types_; }
  const std::vector<int>& lengths() const noexcept { return lengths_; }  // -1 = NULL
  const std::vector<int>& formats() const noexcept { return formats_; }
  /** Pointers into the buffer (null for NULLs), in libpq's `paramValues` form. Rebuilt per call:
   *  valid until the next add*() / clear(). */
  const std::vector<const char*>& values() const;

 private:
  std::vector<Oid> types_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::vector<std::size_t> offsets_;
  std::string data_;
  mutable std::vector<const char*> values_;
};

/** What went wrong: the server's error fields, or a synthetic error from the pool. */
struct ErrorInfo {
  std::string sqlstate;  // five characters
  std::string severity;  // ERROR, FATAL, PANIC (not localized); "ERROR" for synthetic errors
  std::string message;   // primary message
  std::string detail;
  std::string hint;
  std::string context;
  std::string schema;
  std::string table;
  std::string column;
  std::string datatype;
  std::string constraint;
  int position = 0;  // 1-based character position in the statement, 0 = none
  /** The connection failed or was lost: the statement may not have run (08xxx codes). Map to
   *  OperationalError. */
  bool connection = false;

  static ErrorInfo make(std::string_view sqlstate, std::string message, bool connection = false);
};

/** The outcome of one query. Cheap to copy (shared); any thread may read it once delivered. */
class Result {
 public:
  enum class Status : std::uint8_t {
    Rows,     // a statement that returns rows (PGRES_TUPLES_OK), possibly zero of them
    Command,  // a statement without rows (PGRES_COMMAND_OK)
    Error,
    CopyIn,   // CopyStep::Start: the server waits for COPY data (column_count() columns)
    CopyOut,  // CopyStep::Start: the server sends COPY data
    CopyData,  // CopyStep::Write (empty) or CopyStep::Read (copy_data(): one or more rows)
  };

  /** A cell of a row: a view into the PGresult, valid while any copy of its Result lives. */
  struct Cell {
    const char* data = nullptr;  // binary or text bytes (text is NUL-terminated too)
    int size = 0;
    bool null = true;
    std::string_view view() const noexcept { return {data, static_cast<std::size_t>(size)}; }
  };

  Result() = default;  // an Error with no fields; replaced before delivery
  /** Takes ownership of `res` (PQclear when the last copy goes). Errors are copied into
   *  ErrorInfo. */
  static Result from_pg(PGresult* res);
  static Result failure(ErrorInfo error);
  /** A COPY step's outcome that carries data (CopyStep::Read) or none (CopyStep::Write). */
  static Result copy_chunk(std::string data);

  Status status() const noexcept { return status_; }
  bool ok() const noexcept { return status_ != Status::Error; }
  /** The error (only for !ok(); an empty ErrorInfo otherwise). */
  const ErrorInfo& error() const noexcept;

  /** "SELECT 3", "INSERT 0 1", "COMMIT", ... (empty for errors). */
  std::string_view command_tag() const noexcept;
  /** Rows affected/returned per the tag; -1 when the tag carries no count. */
  std::int64_t rows_affected() const noexcept;

  int row_count() const noexcept;
  int column_count() const noexcept;
  std::string_view column_name(int col) const noexcept;
  Oid column_type(int col) const noexcept;
  int column_typmod(int col) const noexcept;
  Format column_format(int col) const noexcept;
  Cell cell(int row, int col) const noexcept;

  /** CopyData: the bytes read (whole rows, in the COPY's format); empty otherwise. */
  std::string_view copy_data() const noexcept { return data_ ? std::string_view(*data_) : std::string_view(); }

  /** The libpq result for decoders that want it (null for errors without one). Read only. */
  const PGresult* pg() const noexcept { return res_.get(); }

 private:
  std::shared_ptr<PGresult> res_;
  std::shared_ptr<const ErrorInfo> error_;
  std::shared_ptr<const std::string> data_;
  Status status_ = Status::Error;
};

/** Receives a query's Result. Runs on an I/O thread (see pool.hpp for the exact rules); must not
 *  block, and must not throw. */
using Callback = std::function<void(Result&&)>;

/** A step of a COPY on a lease (docs/postgres-internals.md §12). COPY cannot run in pipeline mode:
 *  Start waits until the lease's pipeline is empty, leaves pipeline mode and sends `sql` (a COPY
 *  ... FROM STDIN / TO STDOUT) by the simple protocol; the connection enters pipeline mode again
 *  once the COPY's final result has arrived. Send one step at a time (await each). */
enum class CopyStep : std::uint8_t {
  None,   // an ordinary statement
  Start,  // sql = the COPY statement -> CopyIn / CopyOut (or the statement's own result)
  Write,  // sql = data (COPY IN) -> CopyData (empty) once the data is on the socket
  End,    // COPY IN done -> the final result ("COPY n", or the error a row caused)
  Fail,   // sql = message: abort COPY IN -> the final result (an error, 57014)
  Read,   // COPY OUT: -> CopyData with the next rows, or the final result when none are left
};

/** One statement to run. */
struct Query {
  std::string sql;  // one statement; $1..$n placeholders
  Params params;
  Format result_format = Format::Binary;
  /** Run through the connection's prepared-statement cache (Parse once, then Bind/Execute).
   *  Off: an unnamed statement each time (for one-off SQL such as DDL or BEGIN/COMMIT). */
  bool prepare = true;
  /** Not None: a COPY step (Lease::query only; the pool refuses it on shared connections). */
  CopyStep copy = CopyStep::None;
};

/** The first SQL keyword of `sql`, upper-cased, after whitespace and comments ("" if none).
 *  Used to spot BEGIN/START/COMMIT/END without parsing SQL. */
std::string leading_keyword(std::string_view sql);

}  // namespace puff::pg
