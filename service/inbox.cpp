#include "service/inbox.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <future>
#include <string_view>
#include <tuple>

#include "service/log.hpp"
#include "service/migrations.hpp"
#include "service/pg_schema.hpp"

namespace tollgate_migrations {
std::string_view embedded(std::string_view name);
}

namespace tollgate::service {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using store::describe;

// A piece of work's error that says PostgreSQL failed it for a conflict with a concurrent
// transaction (deadlock, serialization failure): worth doing again. Work reports errors as text
// (store::describe's "... (SQLSTATE nnnnn)").
bool lost_to_another_transaction(const std::string& error) {
  return error.find("(SQLSTATE 40P01)") != std::string::npos || error.find("(SQLSTATE 40001)") != std::string::npos;
}

void log_store(const StoredDelivery& d, StoreResult result, const std::string& error,
               std::chrono::steady_clock::time_point committed) {
  const double ms = d.received ? std::chrono::duration<double, std::milli>(committed - *d.received).count() : 0.0;
  if (result == StoreResult::failed) {
    log::write_fields(log::Level::error, "delivery not stored",
                      {{"delivery", d.delivery_id}, {"error", error}, {"event", d.event}, {"host", d.host}, {"ms", ms}, {"repo", d.repo}});
    return;
  }
  log::write_fields(log::Level::info, result == StoreResult::stored ? "delivery stored" : "delivery already stored",
                    {{"delivery", d.delivery_id}, {"event", d.event}, {"host", d.host}, {"ms", ms}, {"repo", d.repo}});
}

}  // namespace

tl::expected<int, std::string> migrate(store::Db& db) {
  if (auto* pg = db.postgres()) return pg::migrate(*pg);
  if (auto r = db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                       "applied_at INTEGER NOT NULL)");
      !r) {
    return tl::unexpected("cannot create schema_migrations: " + describe(r.error()));
  }
  auto current = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!current) return tl::unexpected(describe(current.error()));
  int version = 0;
  if (auto row = current->step(); row && *row) version = static_cast<int>(current->int64(0));
  current->reset();  // an open read cursor would lock the tables a migration alters or drops
  if (version > static_cast<int>(kMigrations.size())) {
    return tl::unexpected("the database has schema version " + std::to_string(version) + " but this tollgate knows only " +
                          std::to_string(kMigrations.size()) + ": it was written by a newer tollgate");
  }
  for (std::size_t i = static_cast<std::size_t>(version); i < kMigrations.size(); ++i) {
    std::string_view sql = tollgate_migrations::embedded(kMigrations[i]);
    if (sql.empty()) return tl::unexpected("migration " + std::string(kMigrations[i]) + " is not built in");
    if (auto r = db.begin_write(); !r) return tl::unexpected(describe(r.error()));
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
  if (!options.batch_target) inbox->options_.batch_target = options.synchronous_full ? 32 : 64;
  if (!options.batch_delay) inbox->options_.batch_delay = std::chrono::microseconds(options.synchronous_full ? 1000 : 2000);
  auto fail = [&](const store::Error& e) {
    return tl::unexpected("database '" + store::redact(options.path) + "': " + describe(e));
  };
  auto db = store::Db::open(options.path);
  if (!db) return fail(db.error());
  // 32 KiB pages (a new database only; SQLite's default is 4 KiB): a commit of 16-32 deliveries
  // of ~3.6 KB each is a few WAL frames instead of ~20, i.e. a few pwrite calls (two per frame)
  // and a few page copies for the checkpointer; measured best of 4-64 KiB (bench/RESULTS.md).
  const bool lite = db->kind() == store::Kind::sqlite;
  for (const char* pragma : {"PRAGMA page_size=32768", "PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON",
                             // Checkpoints run on their own thread (checkpointer_loop), never inside
                             // a commit that deliveries are waiting for.
                             "PRAGMA wal_autocheckpoint=0", "PRAGMA journal_size_limit=67108864",
                             options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"}) {
    if (!lite) break;
    if (auto r = db->exec(pragma); !r) return fail(r.error());
  }
  auto version = migrate(*db);
  if (!version) return tl::unexpected("database '" + store::redact(options.path) + "': " + version.error());
  inbox->schema_version_ = *version;
  if (lite) {
    if (auto ps = db->prepare("PRAGMA page_size"); ps) {
      if (auto row = ps->step(); row && *row) inbox->page_size_ = std::max<std::int64_t>(ps->int64(0), 512);
    }
  }
  auto insert = db->prepare(
      "INSERT INTO deliveries (host, delivery_id, event, repo, received_at, body, body_encoding, body_size) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (host, delivery_id) DO NOTHING");
  if (!insert) return fail(insert.error());
  inbox->insert_ = std::move(*insert);
  auto insert_outcome = db->prepare(
      "INSERT INTO delivery_outcomes (delivery, state, event_json, error, processed_at) VALUES (?, ?, ?, ?, ?) "
      "ON CONFLICT (delivery) DO NOTHING");
  if (!insert_outcome) return fail(insert_outcome.error());
  inbox->insert_outcome_ = std::move(*insert_outcome);
  inbox->writer_db_ = std::move(*db);
  if (auto* w = inbox->writer_db_->sqlite()) w->on_wal_commit([raw = inbox.get()](int frames) { raw->wal_grew(frames); });

  auto reader = store::Db::open(options.path);
  if (!reader) return fail(reader.error());
  if (lite) {
    if (auto r = reader->exec("PRAGMA wal_autocheckpoint=0"); !r) return fail(r.error());
  }
  // Deliveries are processed in id order; the ones after the last outcome are still waiting.
  auto depth = reader->prepare(
      "SELECT COUNT(*) FROM deliveries WHERE id > (SELECT COALESCE(MAX(delivery), 0) FROM delivery_outcomes)");
  if (!depth) return fail(depth.error());
  inbox->depth_stmt_ = std::move(*depth);
  inbox->reader_db_ = std::move(*reader);

  inbox->writer_ = std::thread([raw = inbox.get()] { raw->writer_loop(); });
  if (!lite) return inbox;  // PostgreSQL checkpoints by itself

  auto checkpointer = sqlite::Db::open(options.path);
  if (!checkpointer) return fail(store::Error{checkpointer.error().code, "", checkpointer.error().message});
  // A connection that has not read the database yet has not opened the WAL, and a checkpoint on
  // it silently does nothing: read once first.
  for (const char* sql : {"PRAGMA wal_autocheckpoint=0", "SELECT COUNT(*) FROM schema_migrations"}) {
    if (auto r = checkpointer->exec(sql); !r) return fail(store::Error{r.error().code, "", r.error().message});
  }
  inbox->checkpoint_db_ = std::move(*checkpointer);
  inbox->checkpointer_ = std::thread([raw = inbox.get()] { raw->checkpointer_loop(); });
  return inbox;
}

Inbox::~Inbox() { stop(); }

void Inbox::store(StoredDelivery delivery, std::function<void(StoreResult, const std::string&)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({std::move(delivery), std::move(done)});
      // The writer sleeps either idle (an empty queue) or collecting a batch (it wants
      // batch_target): waking it for every delivery in between would only cost futex calls.
      if (queue_.size() == 1 || queue_.size() == *options_.batch_target) wake_.notify_one();
      return;
    }
  }
  done(StoreResult::failed, "the inbox is shutting down");
}

void Inbox::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_stopping_ = true;
    checkpoint_wake_.notify_one();
  }
  if (checkpointer_.joinable()) checkpointer_.join();
}

void Inbox::wal_grew(int frames) {
  // Called on the writer thread after each commit. Past the soft limit the checkpointer is woken;
  // past the hard limit (the checkpointer cannot keep up with intake, e.g. a slow disk) the writer
  // checkpoints itself, so the WAL stays bounded and intake slows to what the disk sustains.
  const std::int64_t bytes = static_cast<std::int64_t>(frames) * page_size_;
  if (bytes >= options_.wal_hard_limit) {
    if (auto* w = writer_db_->sqlite()) (void)w->checkpoint_passive();
  } else if (bytes >= options_.wal_soft_limit) {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_wanted_ = true;
    checkpoint_wake_.notify_one();
  }
}

void Inbox::checkpointer_loop() {
  (void)::pthread_setname_np(::pthread_self(), "tg-checkpoint");
  while (true) {
    {
      std::unique_lock lock(checkpoint_mutex_);
      // Also on a timer: other connections (the normaliser) write to the WAL too.
      checkpoint_wake_.wait_for(lock, std::chrono::milliseconds(500),
                                [&] { return checkpoint_stopping_ || checkpoint_wanted_; });
      if (checkpoint_stopping_) return;
      checkpoint_wanted_ = false;
    }
    // PASSIVE: copies committed frames into the database file without blocking the writer or
    // readers. Once everything is copied, the writer's next transaction starts the WAL over.
    (void)checkpoint_db_->checkpoint_passive();
  }
}

void Inbox::writer_loop() {
  (void)::pthread_setname_np(::pthread_self(), "tg-inbox");
  std::vector<Pending> batch;
  std::vector<PendingOutcomes> outcome_batches;
  std::vector<PendingWork> works;
  std::vector<std::string> work_errors;
  std::vector<StoreResult> results;
  std::vector<std::size_t> order;
  auto last_commit = std::chrono::steady_clock::time_point{};
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !outcome_queue_.empty() || !work_queue_.empty(); });
      if (queue_.empty() && outcome_queue_.empty() && work_queue_.empty() && stopping_) return;
      // Under load (the last commit ended a moment ago), let the batch fill up a little.
      if (!stopping_ && !queue_.empty() && queue_.size() < *options_.batch_target &&
          std::chrono::steady_clock::now() - last_commit < *options_.batch_delay) {
        wake_.wait_for(lock, *options_.batch_delay, [&] { return stopping_ || queue_.size() >= *options_.batch_target; });
      }
      // Everything that arrived while the last commit was on disk goes into this one.
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      while (!outcome_queue_.empty()) {
        outcome_batches.push_back(std::move(outcome_queue_.front()));
        outcome_queue_.pop_front();
      }
      while (!work_queue_.empty() && works.size() < options_.max_batch) {
        works.push_back(std::move(work_queue_.front()));
        work_queue_.pop_front();
      }
    }
    work_errors.assign(works.size(), std::string{});
    results.assign(batch.size(), StoreResult::failed);
    std::string error;
    auto& db = *writer_db_;
    if (auto begin = db.begin_write(); !begin) {
      error = describe(begin.error());
    } else {
      const std::int64_t now = now_ms();
      // On PostgreSQL other replicas insert at the same time: in (host, delivery id) order, two
      // batches holding the same ids wait for each other in one direction only, never deadlock.
      order.resize(batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) order[i] = i;
      // Ids are handed out at insert and rows become visible at commit: with several replicas
      // inserting at once, a higher id could be seen before a lower one, and the normaliser,
      // which reads on from the last id it did, would skip the lower. Replicas therefore insert
      // deliveries one transaction at a time (the lock is held to this transaction's end).
      if (db.kind() == store::Kind::postgres && !batch.empty()) {
        if (auto l = store::lock_in_transaction(db, "tollgate:intake"); !l) error = describe(l.error());
      }
      if (db.kind() == store::Kind::postgres) {
        std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          const auto& x = batch[a].delivery;
          const auto& y = batch[b].delivery;
          return std::tie(x.host, x.delivery_id) < std::tie(y.host, y.delivery_id);
        });
      }
      for (const std::size_t i : order) {
        if (!error.empty()) break;
        const auto& d = batch[i].delivery;
        insert_->reset();
        insert_->bind(1, d.host).bind(2, d.delivery_id).bind(3, d.event).bind(4, d.repo).bind(5, now);
        insert_->bind_blob(6, d.body).bind(7, to_string(d.body_encoding));
        insert_->bind(8, static_cast<std::int64_t>(d.body_size.value_or(d.body.size())));
        if (auto s = insert_->step(); !s) {
          error = describe(s.error());
        } else {
          results[i] = db.changes() == 1 ? StoreResult::stored : StoreResult::duplicate;
        }
      }
      insert_->reset();
      for (const auto& pending : outcome_batches) {
        for (const auto& o : pending.outcomes) {
          if (!error.empty()) break;
          insert_outcome_->reset();
          insert_outcome_->bind(1, o.delivery).bind(2, o.state);
          if (o.event_json.empty()) insert_outcome_->bind_null(3); else insert_outcome_->bind(3, o.event_json);
          if (o.error.empty()) insert_outcome_->bind_null(4); else insert_outcome_->bind(4, o.error);
          insert_outcome_->bind(5, now);
          if (auto s = insert_outcome_->step(); !s) error = describe(s.error());
        }
      }
      insert_outcome_->reset();
      // Each piece of work in a savepoint of its own: one that fails is undone alone. On
      // PostgreSQL, work that lost a deadlock with another replica's transaction (each waiting for
      // a lock the other holds; the server picks one to fail) is undone and done again.
      for (std::size_t i = 0; i < works.size() && error.empty(); ++i) {
        for (int attempt = 1; error.empty(); ++attempt) {
          if (auto sp = db.exec("SAVEPOINT work"); !sp) {
            error = describe(sp.error());
            break;
          }
          try {
            work_errors[i] = works[i].work(db);
          } catch (const std::exception& e) {
            work_errors[i] = std::string("unexpected error: ") + e.what();
          }
          if (!work_errors[i].empty()) {
            if (auto rb = db.exec("ROLLBACK TO work"); !rb) error = describe(rb.error());
          }
          if (auto rel = db.exec("RELEASE work"); !rel && error.empty()) error = describe(rel.error());
          if (attempt >= 5 || !lost_to_another_transaction(work_errors[i])) break;
          log::warn("transaction lost to another replica's; doing it again", {{"attempt", attempt}, {"error", work_errors[i]}});
        }
      }
      if (error.empty()) {
        if (auto commit = db.exec("COMMIT"); !commit) error = describe(commit.error());
      }
      if (!error.empty()) (void)db.exec("ROLLBACK");
    }
    {
      log::Batch lines;  // the batch's log lines in one write
      const auto committed = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const StoreResult result = error.empty() ? results[i] : StoreResult::failed;
        log_store(batch[i].delivery, result, error, committed);
        batch[i].done(result, error);
      }
      for (auto& pending : outcome_batches) pending.done(error.empty(), error);
      for (std::size_t i = 0; i < works.size(); ++i) works[i].done(error.empty() ? work_errors[i] : error);
    }
    last_commit = std::chrono::steady_clock::now();
    const bool stored = error.empty() && !batch.empty();
    batch.clear();
    outcome_batches.clear();
    works.clear();
    if (stored && options_.on_commit) options_.on_commit();
  }
}

void Inbox::record(std::vector<DeliveryOutcome> outcomes, std::function<void(bool ok, const std::string& error)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      outcome_queue_.push_back({std::move(outcomes), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done(false, "the inbox is shutting down");
}

void Inbox::transact(Work work, std::function<void(const std::string& error)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      work_queue_.push_back({std::move(work), std::move(done)});
      wake_.notify_one();
      return;
    }
  }
  done("the inbox is shutting down");
}

std::string Inbox::transact_sync(Work work) {
  std::promise<std::string> result;
  auto future = result.get_future();
  transact(std::move(work), [&result](const std::string& error) { result.set_value(error); });
  return future.get();
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
