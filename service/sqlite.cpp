#include "service/sqlite.hpp"

#include <sqlite3.h>

namespace tollgate::service::sqlite {

namespace {
Error error_of(sqlite3* db, int code) {
  return Error{code, db ? sqlite3_errmsg(db) : sqlite3_errstr(code)};
}
}  // namespace

void Stmt::Finalize::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
void Db::Close::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Stmt& Stmt::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_.get(), index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
  return *this;
}
Stmt& Stmt::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}
Stmt& Stmt::bind_null(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

tl::expected<bool, Error> Stmt::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return tl::unexpected(error_of(db_, rc));
}

void Stmt::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::int64_t Stmt::int64(int column) const { return sqlite3_column_int64(stmt_.get(), column); }

std::string Stmt::text(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), column));
  int n = sqlite3_column_bytes(stmt_.get(), column);
  return p ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

bool Stmt::is_null(int column) const { return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL; }

tl::expected<Db, Error> Db::open(const std::string& path) {
  // Before the first connection: no up-front page-cache block per connection. By default each
  // connection takes 20 pages (20 x 32 KiB here) at its first read; the service keeps about ten
  // connections open, most of them idle, and pages are allocated as they are read anyway.
  static const int configured = [] { return sqlite3_config(SQLITE_CONFIG_PAGECACHE, nullptr, 0, 0); }();
  (void)configured;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db;
  db.db_.reset(raw);
  if (rc != SQLITE_OK) return tl::unexpected(error_of(raw, rc));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

tl::expected<void, Error> Db::exec(std::string_view sql) {
  char* msg = nullptr;
  std::string s(sql);
  int rc = sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &msg);
  if (rc != SQLITE_OK) {
    Error e{rc, msg ? msg : sqlite3_errstr(rc)};
    sqlite3_free(msg);
    return tl::unexpected(std::move(e));
  }
  return {};
}

tl::expected<Stmt, Error> Db::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return tl::unexpected(error_of(db_.get(), rc));
  Stmt s;
  s.stmt_.reset(raw);
  s.db_ = db_.get();
  return s;
}

void Db::on_wal_commit(std::function<void(int frames)> hook) {
  wal_hook_ = std::make_unique<std::function<void(int)>>(std::move(hook));
  sqlite3_wal_hook(
      db_.get(),
      [](void* arg, sqlite3*, const char*, int frames) {
        (*static_cast<std::function<void(int)>*>(arg))(frames);
        return SQLITE_OK;
      },
      wal_hook_.get());
}

tl::expected<Db::CheckpointResult, Error> Db::checkpoint_passive() {
  CheckpointResult r;
  int rc = sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &r.wal_frames, &r.checkpointed_frames);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) return tl::unexpected(error_of(db_.get(), rc));
  return r;
}

int Db::changes() const { return sqlite3_changes(db_.get()); }
std::int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_.get()); }

}  // namespace tollgate::service::sqlite
