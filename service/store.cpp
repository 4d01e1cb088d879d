#include "service/store.hpp"

#include <type_traits>

namespace tollgate::service::store {

namespace {
Error from(const sqlite::Error& e) { return Error{e.code, "", e.message}; }
Error from(const pg::Error& e) { return Error{0, e.sqlstate, e.message}; }

template <typename T, typename E>
tl::expected<T, Error> lift(tl::expected<T, E>&& r) {
  if (!r) return tl::unexpected(from(r.error()));
  if constexpr (std::is_void_v<T>) {
    return {};
  } else {
    return std::move(*r);
  }
}
}  // namespace

std::string describe(const Error& e) {
  if (!e.sqlstate.empty()) return e.message + " (SQLSTATE " + e.sqlstate + ")";
  return e.message + " (sqlite code " + std::to_string(e.code) + ")";
}

bool is_postgres(std::string_view database) {
  return database.rfind("postgres://", 0) == 0 || database.rfind("postgresql://", 0) == 0;
}

std::string redact(std::string_view database) { return is_postgres(database) ? pg::redact(database) : std::string(database); }

Stmt& Stmt::bind(int index, std::string_view text) {
  std::visit([&](auto& s) { s.bind(index, text); }, s_);
  return *this;
}
Stmt& Stmt::bind_blob(int index, std::string_view bytes) {
  std::visit([&](auto& s) { s.bind_blob(index, bytes); }, s_);
  return *this;
}
Stmt& Stmt::bind(int index, std::int64_t value) {
  std::visit([&](auto& s) { s.bind(index, value); }, s_);
  return *this;
}
Stmt& Stmt::bind_null(int index) {
  std::visit([&](auto& s) { s.bind_null(index); }, s_);
  return *this;
}
tl::expected<bool, Error> Stmt::step() {
  return std::visit([](auto& s) { return lift(s.step()); }, s_);
}
void Stmt::reset() {
  std::visit([](auto& s) { s.reset(); }, s_);
}
std::int64_t Stmt::int64(int column) const {
  return std::visit([&](const auto& s) { return s.int64(column); }, s_);
}
std::string Stmt::text(int column) const {
  return std::visit([&](const auto& s) { return s.text(column); }, s_);
}
bool Stmt::is_null(int column) const {
  return std::visit([&](const auto& s) { return s.is_null(column); }, s_);
}

tl::expected<Db, Error> Db::open(const std::string& database) {
  if (is_postgres(database)) {
    auto d = pg::Db::open(database);
    if (!d) return tl::unexpected(from(d.error()));
    return Db(std::move(*d));
  }
  auto d = sqlite::Db::open(database);
  if (!d) return tl::unexpected(from(d.error()));
  return Db(std::move(*d));
}

tl::expected<void, Error> Db::exec(std::string_view sql) {
  return std::visit([&](auto& d) { return lift(d.exec(sql)); }, db_);
}

tl::expected<Stmt, Error> Db::prepare(std::string_view sql) {
  return std::visit(
      [&](auto& d) -> tl::expected<Stmt, Error> {
        auto s = d.prepare(sql);
        if (!s) return tl::unexpected(from(s.error()));
        return Stmt(std::move(*s));
      },
      db_);
}

std::uint64_t Db::session() const {
  const auto* pg = std::get_if<pg::Db>(&db_);
  return pg != nullptr ? pg->session() : 1;
}

int Db::changes() const {
  return std::visit([](const auto& d) { return d.changes(); }, db_);
}

namespace {
// Runs `select <function>(key)`: true unless it answered false. Advisory locks are the server's,
// not a schema's: the key is the lock's name in this connection's schema (tollgate's tables'), so
// that deployments in other schemas of the same database never wait for each other.
tl::expected<bool, Error> advisory(Db& db, const char* function, std::string_view name) {
  auto q = db.prepare(std::string("SELECT ") + function + "(hashtextextended(COALESCE(current_schema(), '') || '/' || ?1, 0))::text");
  if (!q) return tl::unexpected(q.error());
  q->bind(1, name);
  auto row = q->step();
  if (!row) return tl::unexpected(row.error());
  const bool granted = *row && q->text(0) != "false";
  q->reset();
  return granted;
}
}  // namespace

tl::expected<bool, Error> try_lock(Db& db, std::string_view name) {
  if (db.kind() == Kind::sqlite) return true;
  return advisory(db, "pg_try_advisory_lock", name);
}

tl::expected<void, Error> lock(Db& db, std::string_view name) {
  if (db.kind() == Kind::sqlite) return {};
  if (auto r = advisory(db, "pg_advisory_lock", name); !r) return tl::unexpected(r.error());
  return {};
}

tl::expected<void, Error> unlock(Db& db, std::string_view name) {
  if (db.kind() == Kind::sqlite) return {};
  if (auto r = advisory(db, "pg_advisory_unlock", name); !r) return tl::unexpected(r.error());
  return {};
}

tl::expected<void, Error> lock_in_transaction(Db& db, std::string_view name) {
  if (db.kind() == Kind::sqlite) return {};
  if (auto r = advisory(db, "pg_advisory_xact_lock", name); !r) return tl::unexpected(r.error());
  return {};
}

tl::expected<void, Error> Db::begin_write() { return exec(kind() == Kind::sqlite ? "BEGIN IMMEDIATE" : "BEGIN"); }

}  // namespace tollgate::service::store
