#include "service/inbox.hpp"

#include <array>
#include <chrono>
#include <string_view>

namespace tollgate_migrations {
std::string_view embedded(std::string_view name);
}

namespace tollgate::service {

namespace {

// In order; each file's name is its version. Never edit a released one: add the next.
constexpr std::array<std::string_view, 1> kMigrations{"0001_inbox.sql"};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string describe(const sqlite::Error& e) { return e.message + " (sqlite code " + std::to_string(e.code) + ")"; }

}  // namespace

tl::expected<int, std::string> migrate(sqlite::Db& db) {
  if (auto r = db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                       "applied_at INTEGER NOT NULL)");
      !r) {
    return tl::unexpected("cannot create schema_migrations: " + describe(r.error()));
  }
  auto current = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current) return tl::unexpected(describe(current.error()));
  int version = 0;
  if (auto row = current->step(); row && *row) version = static_cast<int>(current->int64(0));
  if (version > static_cast<int>(kMigrations.size())) {
    return tl::unexpected("the database has schema version " + std::to_string(version) + " but this tollgate knows only " +
                          std::to_string(kMigrations.size()) + ": it was written by a newer tollgate");
  }
  for (std::size_t i = static_cast<std::size_t>(version); i < kMigrations.size(); ++i) {
    std::string_view sql = tollgate_migrations::embedded(kMigrations[i]);
    if (sql.empty()) return tl::unexpected("migration " + std::string(kMigrations[i]) + " is not built in");
    if (auto r = db.exec("BEGIN IMMEDIATE"); !r) return tl::unexpected(describe(r.error()));
    auto applied = db.exec(sql);
    if (applied) {
      auto record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
      if (!record) {
        applied = tl::unexpected(record.error());
      } else {
        record->bind(1, static_cast<std::int64_t>(i + 1)).bind(2, kMigrations[i]).bind(3, now_ms());
        if (auto s = record->step(); !s) applied = tl::unexpected(s.error());
      }
    }
    if (!applied) {
      (void)db.exec("ROLLBACK");
      return tl::unexpected("migration " + std::string(kMigrations[i]) + " failed: " + describe(applied.error()));
    }
    if (auto r = db.exec("COMMIT"); !r) return tl::unexpected(describe(r.error()));
    version = static_cast<int>(i + 1);
  }
  return version;
}

tl::expected<std::unique_ptr<Inbox>, std::string> Inbox::open(const InboxOptions& options) {
  std::unique_ptr<Inbox> inbox(new Inbox());
  inbox->options_ = options;
  auto db = sqlite::Db::open(options.path);
  if (!db) return tl::unexpected("database '" + options.path + "': " + describe(db.error()));
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON"}) {
    if (auto r = db->exec(pragma); !r) return tl::unexpected("database '" + options.path + "': " + describe(r.error()));
  }
  if (auto r = db->exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !r) {
    return tl::unexpected(describe(r.error()));
  }
  auto version = migrate(*db);
  if (!version) return tl::unexpected("database '" + options.path + "': " + version.error());
  inbox->schema_version_ = *version;
  auto insert = db->prepare(
      "INSERT INTO deliveries (host, delivery_id, event, repo, received_at, body) VALUES (?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (host, delivery_id) DO NOTHING");
  if (!insert) return tl::unexpected(describe(insert.error()));
  inbox->insert_ = std::move(*insert);
  inbox->writer_db_ = std::move(*db);

  auto reader = sqlite::Db::open(options.path);
  if (!reader) return tl::unexpected(describe(reader.error()));
  auto depth = reader->prepare("SELECT COUNT(*) FROM deliveries WHERE state = 'new'");
  if (!depth) return tl::unexpected(describe(depth.error()));
  inbox->depth_stmt_ = std::move(*depth);
  inbox->reader_db_ = std::move(*reader);
  inbox->writer_ = std::thread([raw = inbox.get()] { raw->writer_loop(); });
  return inbox;
}

Inbox::~Inbox() { stop(); }

void Inbox::store(StoredDelivery delivery, std::function<void(StoreResult, const std::string&)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(delivery), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(StoreResult::failed, "the inbox is shutting down");
}

void Inbox::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (writer_.joinable()) writer_.join();
}

void Inbox::writer_loop() {
  std::vector<Pending> batch;
  std::vector<StoreResult> results;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      // Everything that arrived while the last commit was on disk goes into this one.
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    results.assign(batch.size(), StoreResult::failed);
    std::string error;
    auto& db = *writer_db_;
    if (auto begin = db.exec("BEGIN IMMEDIATE"); !begin) {
      error = describe(begin.error());
    } else {
      const std::int64_t received = now_ms();
      for (std::size_t i = 0; i < batch.size() && error.empty(); ++i) {
        const auto& d = batch[i].delivery;
        insert_->reset();
        insert_->bind(1, d.host).bind(2, d.delivery_id).bind(3, d.event).bind(4, d.repo).bind(5, received);
        insert_->bind_blob(6, d.body);
        if (auto s = insert_->step(); !s) {
          error = describe(s.error());
        } else {
          results[i] = db.changes() == 1 ? StoreResult::stored : StoreResult::duplicate;
        }
      }
      insert_->reset();
      if (error.empty()) {
        if (auto commit = db.exec("COMMIT"); !commit) error = describe(commit.error());
      }
      if (!error.empty()) (void)db.exec("ROLLBACK");
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].done(error.empty() ? results[i] : StoreResult::failed, error);
    }
    batch.clear();
    if (error.empty() && options_.on_commit) options_.on_commit();
  }
}

bool Inbox::reachable() { return depth().has_value(); }

std::optional<std::int64_t> Inbox::depth() {
  std::lock_guard lock(reader_mutex_);
  depth_stmt_->reset();
  auto row = depth_stmt_->step();
  std::optional<std::int64_t> out;
  if (row && *row) out = depth_stmt_->int64(0);
  depth_stmt_->reset();
  return out;
}

}  // namespace tollgate::service
