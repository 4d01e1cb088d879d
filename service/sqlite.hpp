#pragma once
// A small RAII layer over SQLite: raw handles never leave it, errors come back as values with
// SQLite's message. One Db is used by one thread at a time.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

struct sqlite3;
struct sqlite3_stmt;

namespace tollgate::service::sqlite {

struct Error {
  int code = 0;
  std::string message;
};

class Stmt {
 public:
  Stmt() = default;
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
  struct Finalize {
    void operator()(sqlite3_stmt* s) const;
  };
  std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
  sqlite3* db_ = nullptr;
};

class Db {
 public:
  [[nodiscard]] static tl::expected<Db, Error> open(const std::string& path);
  Db(Db&&) noexcept = default;
  Db& operator=(Db&&) noexcept = default;

  [[nodiscard]] tl::expected<void, Error> exec(std::string_view sql);
  [[nodiscard]] tl::expected<Stmt, Error> prepare(std::string_view sql);
  [[nodiscard]] int changes() const;
  [[nodiscard]] std::int64_t last_insert_rowid() const;

  // After each commit on this connection: the number of frames now in the WAL. Replaces SQLite's
  // automatic checkpoint on this connection (wal_autocheckpoint), which runs inside the commit.
  void on_wal_commit(std::function<void(int frames)> hook);
  struct CheckpointResult {
    int wal_frames = 0;           // frames in the WAL
    int checkpointed_frames = 0;  // of which now copied into the database file
  };
  // A PASSIVE checkpoint: copies what it can without waiting for readers or the writer.
  [[nodiscard]] tl::expected<CheckpointResult, Error> checkpoint_passive();

 private:
  Db() = default;
  struct Close {
    void operator()(sqlite3* db) const;
  };
  std::unique_ptr<std::function<void(int)>> wal_hook_;  // before db_: destroyed after the handle closes
  std::unique_ptr<sqlite3, Close> db_;
};

}  // namespace tollgate::service::sqlite
