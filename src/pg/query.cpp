#include "pg/query.hpp"

#include <cctype>
#include <charconv>
#include <cstring>

namespace puff::pg {

// ---- Params ----------------------------------------------------------------------------------

void Params::add_null(Oid type) {
  types_.push_back(type);
  lengths_.push_back(-1);
  formats_.push_back(static_cast<int>(Format::Text));
  offsets_.push_back(data_.size());
}

void Params::add(std::string_view bytes, Oid type, Format format) {
  types_.push_back(type);
  lengths_.push_back(static_cast<int>(bytes.size()));
  formats_.push_back(static_cast<int>(format));
  offsets_.push_back(data_.size());
  data_.append(bytes);
  // Text values are read as C strings by libpq (it ignores lengths for text): terminate them.
  data_.push_back('\0');
}

void Params::clear() {
  types_.clear();
  lengths_.clear();
  formats_.clear();
  offsets_.clear();
  data_.clear();
  values_.clear();
}

void Params::reserve(std::size_t count, std::size_t bytes) {
  types_.reserve(count);
  lengths_.reserve(count);
  formats_.reserve(count);
  offsets_.reserve(count);
  data_.reserve(bytes + count);
}

const std::vector<const char*>& Params::values() const {
  values_.resize(types_.size());
  for (std::size_t i = 0; i < types_.size(); ++i)
    values_[i] = lengths_[i] < 0 ? nullptr : data_.data() + offsets_[i];
  return values_;
}

// ---- ErrorInfo / Result ----------------------------------------------------------------------

ErrorInfo ErrorInfo::make(std::string_view code, std::string message, bool connection) {
  ErrorInfo e;
  e.sqlstate = std::string(code);
  e.severity = "ERROR";
  e.message = std::move(message);
  e.connection = connection;
  return e;
}

namespace {

std::string field(const PGresult* res, int code) {
  const char* v = PQresultErrorField(res, code);
  return v ? std::string(v) : std::string();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const ErrorInfo& empty_error() {
  static const ErrorInfo e;
  return e;
}

}  // namespace

Result Result::from_pg(PGresult* raw) {
  Result r;
  r.res_.reset(raw, [](PGresult* p) { PQclear(p); });
  switch (PQresultStatus(raw)) {
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
      r.status_ = Status::Rows;
      return r;
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
      r.status_ = Status::Command;
      return r;
    case PGRES_COPY_IN:
      r.status_ = Status::CopyIn;
      return r;
    case PGRES_COPY_OUT:
      r.status_ = Status::CopyOut;
      return r;
    default:
      break;
  }
  auto e = std::make_shared<ErrorInfo>();
  e->sqlstate = field(raw, PG_DIAG_SQLSTATE);
  e->severity = field(raw, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (e->severity.empty()) e->severity = field(raw, PG_DIAG_SEVERITY);
  e->message = field(raw, PG_DIAG_MESSAGE_PRIMARY);
  if (e->message.empty()) e->message = trim(PQresultErrorMessage(raw));
  e->detail = field(raw, PG_DIAG_MESSAGE_DETAIL);
  e->hint = field(raw, PG_DIAG_MESSAGE_HINT);
  e->context = field(raw, PG_DIAG_CONTEXT);
  e->schema = field(raw, PG_DIAG_SCHEMA_NAME);
  e->table = field(raw, PG_DIAG_TABLE_NAME);
  e->column = field(raw, PG_DIAG_COLUMN_NAME);
  e->datatype = field(raw, PG_DIAG_DATATYPE_NAME);
  e->constraint = field(raw, PG_DIAG_CONSTRAINT_NAME);
  std::string pos = field(raw, PG_DIAG_STATEMENT_POSITION);
  if (!pos.empty()) std::from_chars(pos.data(), pos.data() + pos.size(), e->position);
  if (e->severity.empty()) e->severity = "ERROR";
  r.error_ = std::move(e);
  r.status_ = Status::Error;
  return r;
}

Result Result::failure(ErrorInfo error) {
  Result r;
  r.error_ = std::make_shared<const ErrorInfo>(std::move(error));
  r.status_ = Status::Error;
  return r;
}

Result Result::copy_chunk(std::string data) {
  Result r;
  r.status_ = Status::CopyData;
  if (!data.empty()) r.data_ = std::make_shared<const std::string>(std::move(data));
  return r;
}

const ErrorInfo& Result::error() const noexcept { return error_ ? *error_ : empty_error(); }

std::string_view Result::command_tag() const noexcept {
  if (!res_ || status_ == Status::Error) return {};
  return PQcmdStatus(res_.get());
}

std::int64_t Result::rows_affected() const noexcept {
  if (!res_ || status_ == Status::Error) return -1;
  const char* t = PQcmdTuples(res_.get());
  if (!t || !*t) return -1;
  std::int64_t n = -1;
  std::from_chars(t, t + std::strlen(t), n);
  return n;
}

int Result::row_count() const noexcept { return res_ && status_ == Status::Rows ? PQntuples(res_.get()) : 0; }
int Result::column_count() const noexcept {
  bool cols = status_ == Status::Rows || status_ == Status::CopyIn || status_ == Status::CopyOut;
  return res_ && cols ? PQnfields(res_.get()) : 0;
}

std::string_view Result::column_name(int col) const noexcept {
  const char* n = res_ ? PQfname(res_.get(), col) : nullptr;
  return n ? std::string_view(n) : std::string_view();
}

Oid Result::column_type(int col) const noexcept { return res_ ? PQftype(res_.get(), col) : 0; }
int Result::column_typmod(int col) const noexcept { return res_ ? PQfmod(res_.get(), col) : -1; }
Format Result::column_format(int col) const noexcept {
  return res_ && PQfformat(res_.get(), col) == 1 ? Format::Binary : Format::Text;
}

Result::Cell Result::cell(int row, int col) const noexcept {
  Cell c;
  if (!res_) return c;
  PGresult* r = res_.get();
  if (PQgetisnull(r, row, col)) return c;
  c.data = PQgetvalue(r, row, col);
  c.size = PQgetlength(r, row, col);
  c.null = false;
  return c;
}

// ---- leading_keyword -------------------------------------------------------------------------

std::string leading_keyword(std::string_view sql) {
  std::size_t i = 0;
  const std::size_t n = sql.size();
  for (;;) {
    while (i < n && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
    if (i + 1 < n && sql[i] == '-' && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      continue;
    }
    if (i + 1 < n && sql[i] == '/' && sql[i + 1] == '*') {
      // Postgres block comments nest.
      int depth = 0;
      while (i < n) {
        if (i + 1 < n && sql[i] == '/' && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (i + 1 < n && sql[i] == '*' && sql[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      continue;
    }
    if (i < n && sql[i] == '(') {  // "(SELECT ...)": look inside
      ++i;
      continue;
    }
    break;
  }
  std::string word;
  while (i < n && (std::isalpha(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) {
    word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i]))));
    ++i;
  }
  return word;
}

}  // namespace puff::pg
