#include "service/pg_schema.hpp"

#include <chrono>

#include "service/migrations.hpp"

namespace tollgate_pg_migrations {
std::string_view embedded(std::string_view name);
}

namespace tollgate::service::pg {

namespace {

// pg_advisory_xact_lock's key: "tollgate" as the first 8 bytes, so other applications sharing
// the database are unlikely to collide with it.
constexpr std::int64_t kMigrationLock = 0x746f6c6c67617465;

std::string describe(const Error& e) { return e.message + (e.sqlstate.empty() ? "" : " (SQLSTATE " + e.sqlstate + ")"); }

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

tl::expected<int, std::string> migrate(Db& db) {
  const auto fail = [&](const std::string& what, const Error& e) -> tl::unexpected<std::string> {
    (void)db.exec("ROLLBACK");
    return tl::unexpected(what + ": " + describe(e));
  };
  // The table and the version are read under the lock, in the transaction of the first missing
  // migration: a replica that waited finds the others' work done.
  int version = 0;
  while (true) {
    if (auto r = db.exec("BEGIN"); !r) return fail("cannot start a transaction", r.error());
    if (auto r = db.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")"); !r) {
      return fail("cannot take the migration lock", r.error());
    }
    if (auto r = db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                         "applied_at BIGINT NOT NULL)");
        !r) {
      return fail("cannot create schema_migrations", r.error());
    }
    auto current = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    if (!current) return fail("cannot read the schema version", current.error());
    auto row = current->step();
    if (!row) return fail("cannot read the schema version", row.error());
    version = *row ? static_cast<int>(current->int64(0)) : 0;
    current->reset();
    if (version > static_cast<int>(kMigrations.size())) {
      (void)db.exec("ROLLBACK");
      return tl::unexpected("the database has schema version " + std::to_string(version) + " but this tollgate knows only " +
                            std::to_string(kMigrations.size()) + ": it was written by a newer tollgate");
    }
    if (version == static_cast<int>(kMigrations.size())) {
      if (auto r = db.exec("COMMIT"); !r) return fail("cannot commit", r.error());
      return version;
    }
    const auto name = kMigrations[static_cast<std::size_t>(version)];
    const std::string_view sql = tollgate_pg_migrations::embedded(name);
    if (sql.empty()) {
      (void)db.exec("ROLLBACK");
      return tl::unexpected("migration postgres/" + std::string(name) + " is not built in");
    }
    if (auto r = db.exec(sql); !r) return fail("migration postgres/" + std::string(name) + " failed", r.error());
    auto record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    if (!record) return fail("cannot record migration " + std::string(name), record.error());
    record->bind(1, static_cast<std::int64_t>(version + 1)).bind(2, name).bind(3, now_ms());
    if (auto s = record->step(); !s) return fail("cannot record migration " + std::string(name), s.error());
    if (auto r = db.exec("COMMIT"); !r) return fail("migration postgres/" + std::string(name) + " did not commit", r.error());
  }
}

}  // namespace tollgate::service::pg
