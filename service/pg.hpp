#pragma once
// A small RAII layer over libpq with the surface of service/sqlite.hpp (Db, Stmt), so that the
// store's statements can run on PostgreSQL as well as on SQLite: `?` and `?N` placeholders are
// rewritten to `$N`, parameters are sent as text (blobs as binary bytea), and results are read as
// text (bytea columns decoded). Errors come back as values with PostgreSQL's message and SQLSTATE;
// a connection string's password never appears in them. One Db is used by one thread at a time.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

struct pg_conn;
struct pg_result;

namespace tollgate::service::pg {

struct Error {
  std::string sqlstate;  // e.g. 23505 (unique_violation); empty when the connection failed
  std::string message;
};

// The URL with any password replaced by "***" (for logs and error messages).
std::string redact(std::string_view url);

// `?` -> `$1`, `$2`, ... in order; `?N` -> `$N`. Quoted strings, quoted identifiers and comments
// are left alone.
std::string translate_placeholders(std::string_view sql);

class Db;
struct Connection;  // the libpq handle and what statements share; stays put when a Db moves

class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&&) noexcept = default;
  Stmt& operator=(Stmt&&) noexcept = default;

  Stmt& bind(int index, std::string_view text);
  Stmt& bind_blob(int index, std::string_view bytes);
  Stmt& bind(int index, std::int64_t value);
  Stmt& bind_null(int index);
  // The first call runs the statement; true: a row is ready; false: done.
  [[nodiscard]] tl::expected<bool, Error> step();
  // Forgets the result and the bindings.
  void reset();
  [[nodiscard]] std::int64_t int64(int column) const;
  [[nodiscard]] std::string text(int column) const;  // bytea columns: the bytes
  [[nodiscard]] bool is_null(int column) const;

 private:
  friend class Db;
  struct Clear {
    void operator()(pg_result* r) const;
  };
  struct Param {
    std::optional<std::string> value;
    bool binary = false;
  };
  Connection* conn_ = nullptr;
  std::string name_;
  int params_ = 0;
  std::vector<Param> bound_;
  std::unique_ptr<pg_result, Clear> result_;
  int row_ = -1;
  bool ran_ = false;
};

class Db {
 public:
  // A libpq connection string or URL (postgres://user@host:port/db?...).
  [[nodiscard]] static tl::expected<Db, Error> open(const std::string& url);
  Db(Db&&) noexcept;
  Db& operator=(Db&&) noexcept;

  // One or more statements (the simple query protocol: a migration file at once).
  [[nodiscard]] tl::expected<void, Error> exec(std::string_view sql);
  [[nodiscard]] tl::expected<Stmt, Error> prepare(std::string_view sql);
  // Rows changed by the last statement run on this connection.
  [[nodiscard]] int changes() const;
  // Which session of the server this is: a broken connection is opened again before the next
  // statement, with a new session (session locks and settings of the old one are gone).
  [[nodiscard]] std::uint64_t session() const;
  ~Db();

 private:
  Db() = default;
  std::unique_ptr<Connection> conn_;
};

}  // namespace tollgate::service::pg
