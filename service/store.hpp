#pragma once
// The store's connection: SQLite (a file path) or PostgreSQL (a postgres:// URL), behind one
// surface, so the inbox, the normaliser, the engine and the API run their statements without
// knowing which. Statements are written once in the SQL both understand (`?` placeholders, ON
// CONFLICT, ...); the few things only one has are asked for by name (begin_write, sqlite()).
// One Db is used by one thread at a time.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <tl/expected.hpp>

#include "service/pg.hpp"
#include "service/sqlite.hpp"

namespace tollgate::service::store {

enum class Kind { sqlite, postgres };

struct Error {
  int code = 0;          // SQLite's result code (0 on PostgreSQL)
  std::string sqlstate;  // PostgreSQL's SQLSTATE (empty on SQLite)
  std::string message;
};

// The message with its code: "... (sqlite code 19)" / "... (SQLSTATE 23505)".
std::string describe(const Error& e);

// A postgres:// or postgresql:// URL: the PostgreSQL store; anything else is a SQLite file.
bool is_postgres(std::string_view database);
// The database setting as it may be shown: a URL's password replaced by ***.
std::string redact(std::string_view database);

class Stmt {
 public:
  Stmt(Stmt&&) noexcept = default;
  Stmt& operator=(Stmt&&) noexcept = default;

  Stmt& bind(int index, std::string_view text);
  Stmt& bind_blob(int index, std::string_view bytes);
  Stmt& bind(int index, std::int64_t value);
  Stmt& bind_null(int index);
  // true: a row is ready; false: done.
  [[nodiscard]] tl::expected<bool, Error> step();
  void reset();
  [[nodiscard]] std::int64_t int64(int column) const;
  [[nodiscard]] std::string text(int column) const;
  [[nodiscard]] bool is_null(int column) const;

 private:
  friend class Db;
  explicit Stmt(sqlite::Stmt s) : s_(std::move(s)) {}
  explicit Stmt(pg::Stmt s) : s_(std::move(s)) {}
  std::variant<sqlite::Stmt, pg::Stmt> s_;
};

class Db {
 public:
  [[nodiscard]] static tl::expected<Db, Error> open(const std::string& database);
  Db(Db&&) noexcept = default;
  Db& operator=(Db&&) noexcept = default;

  [[nodiscard]] Kind kind() const { return db_.index() == 0 ? Kind::sqlite : Kind::postgres; }
  [[nodiscard]] tl::expected<void, Error> exec(std::string_view sql);
  [[nodiscard]] tl::expected<Stmt, Error> prepare(std::string_view sql);
  [[nodiscard]] int changes() const;
  // Changes when the connection was opened again (PostgreSQL, after it broke): the session locks
  // taken before are gone. Always 1 on SQLite.
  [[nodiscard]] std::uint64_t session() const;
  // A transaction that will write: SQLite takes the write lock at once (BEGIN IMMEDIATE), so it
  // never fails half-way for another writer; PostgreSQL's BEGIN.
  [[nodiscard]] tl::expected<void, Error> begin_write();
  // The SQLite connection, for what only SQLite has (PRAGMAs, the WAL hook, checkpoints); null on
  // PostgreSQL.
  [[nodiscard]] sqlite::Db* sqlite() { return std::get_if<sqlite::Db>(&db_); }
  // The PostgreSQL connection (its schema migrations); null on SQLite.
  [[nodiscard]] pg::Db* postgres() { return std::get_if<pg::Db>(&db_); }

 private:
  explicit Db(sqlite::Db d) : db_(std::move(d)) {}
  explicit Db(pg::Db d) : db_(std::move(d)) {}
  std::variant<sqlite::Db, pg::Db> db_;
};

// Coordination between replicas on one PostgreSQL database: advisory locks on a name (hashed, with
// the connection's schema, to PostgreSQL's 64-bit lock key: deployments in two schemas of one
// database do not share locks). On SQLite, where one process owns the file, each is granted at once.
// A session lock is held until unlock() or until the connection ends, so a replica that dies lets
// go of its locks with its connections; a transaction lock until COMMIT or ROLLBACK.
[[nodiscard]] tl::expected<bool, Error> try_lock(Db& db, std::string_view name);  // false: another holds it
[[nodiscard]] tl::expected<void, Error> lock(Db& db, std::string_view name);      // waits for it
[[nodiscard]] tl::expected<void, Error> unlock(Db& db, std::string_view name);
[[nodiscard]] tl::expected<void, Error> lock_in_transaction(Db& db, std::string_view name);

}  // namespace tollgate::service::store
