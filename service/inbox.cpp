#include "service/inbox.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <chrono>
#include <future>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "service/key_filter.hpp"
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


// Keys (below) holds the latest delivery keys in memory, so a second inbox on the same SQLite
// database would not recognise this one's recent deliveries and could store a redelivery twice.
// The first inbox therefore holds an exclusive lock on <database>.lock (with its pid inside) and a
// second fails at start, naming the holder. The lock goes with the process, however it ends.
tl::expected<int, std::string> lock_database(const std::string& path) {
  if (path.empty() || path == ":memory:") return -1;
  // Beside the file itself, however it is named (a symlink, "..", another relative path): two
  // names for one database must meet at one lock. The file is created first (empty, which SQLite
  // takes for a new database) so that a symlink to a file that does not exist yet resolves too.
  if (const int db_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644); db_fd >= 0) ::close(db_fd);
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(path, ec);
  const std::string lock_path = (ec || real.empty() ? path : real.string()) + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return tl::unexpected("database '" + path + "': cannot open its lock file '" + lock_path + "': " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::array<char, 32> pid{};
    const ssize_t n = ::pread(fd, pid.data(), pid.size() - 1, 0);
    ::close(fd);
    std::string holder = n > 0 ? std::string(pid.data(), static_cast<std::size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    if (err == EWOULDBLOCK) {
      return tl::unexpected("database '" + path + "' is in use by another tollgate" + (holder.empty() ? "" : " (pid " + holder + ")") +
                            ", which holds '" + lock_path + "': stop it first or give this one another database (one tollgate per " +
                            "SQLite database; several replicas share a PostgreSQL database)");
    }
    return tl::unexpected("database '" + path + "': cannot lock '" + lock_path + "': " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // Only the pid in the message of a second tollgate is lost; the lock holds.
  }
  return fd;
}

}  // namespace

// SQLite's replay detection. Delivery ids from the hosts are GUIDs in no order, so a UNIQUE index
// on (host, delivery_id) put each delivery on an index leaf of its own: one whole page written to
// the WAL, and again by the checkpoint, per delivery, which halved intake (bench/RESULTS.md,
// 2026-11-27). Instead the keys live in three places, newest last:
//  - delivery_keys (WITHOUT ROWID, keyed by host and id): every delivery up to `through`
//    (delivery_keys_merged);
//  - run_: the keys of the deliveries after `through` up to run_through_, sorted, being merged
//    into delivery_keys `key_chunk` at a time in the writer's commits. Sorted, consecutive chunks
//    touch consecutive leaves, so a run writes each leaf about once instead of once per key; its
//    last chunk moves `through` to run_through_ in the same transaction;
//  - recent_: the keys of the later deliveries, in memory; `key_run` of them become the next run.
// A Bloom filter (KeyFilter) holds every key that has left recent_ for a run, so a new key, nearly
// every one, is found absent without a lookup in delivery_keys.
// A crash loses only what memory holds, and every key after `through` is read back from the
// deliveries table at start. Memory: about 2 x key_run keys, plus the filter, which grows with every
// delivery stored (16-32 bits a key: 2-4 MB per million; never shrinks). This needs the inbox to be
// the only writer of the database (Inbox::open takes a lock file). Only the writer thread uses it.
class Inbox::Keys {
 public:
  static tl::expected<std::unique_ptr<Keys>, store::Error> load(store::Db& db, const InboxOptions& options) {
    std::unique_ptr<Keys> k(new Keys());
    k->run_size_ = std::max<std::size_t>(options.key_run, 1);
    auto through = db.prepare("SELECT through FROM delivery_keys_merged WHERE id = 1");
    if (!through) return tl::unexpected(through.error());
    auto row = through->step();
    if (!row) return tl::unexpected(row.error());
    if (*row) k->through_ = through->int64(0);
    through->reset();
    auto later = db.prepare("SELECT id, host, delivery_id FROM deliveries WHERE id > ? ORDER BY id");
    if (!later) return tl::unexpected(later.error());
    later->bind(1, k->through_);
    while (true) {
      auto r = later->step();
      if (!r) return tl::unexpected(r.error());
      if (!*r) break;
      k->recent_.emplace(key_of(later->text(1), later->text(2)), later->int64(0));
    }
    later->reset();
    // The filter: every key merged so far (a run's keys join it as the run starts).
    const auto started = std::chrono::steady_clock::now();
    auto all = db.prepare("SELECT host, delivery_id FROM delivery_keys");
    if (!all) return tl::unexpected(all.error());
    while (true) {
      auto r = all->step();
      if (!r) return tl::unexpected(r.error());
      if (!*r) break;
      k->filter_.add(key_of(all->text(0), all->text(1)));
    }
    all->reset();
    if (k->filter_.keys() != 0) {
      log::info("delivery keys loaded for replay detection",
                {{"keys", static_cast<std::int64_t>(k->filter_.keys())},
                 {"filter_bytes", static_cast<std::int64_t>(k->filter_.bytes())},
                 {"ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count()}});
    }
    auto find = db.prepare("SELECT delivery FROM delivery_keys WHERE host = ? AND delivery_id = ?");
    if (!find) return tl::unexpected(find.error());
    k->find_ = std::move(*find);
    auto insert = db.prepare("INSERT INTO delivery_keys (host, delivery_id, delivery) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
    if (!insert) return tl::unexpected(insert.error());
    k->insert_ = std::move(*insert);
    auto advance = db.prepare("INSERT INTO delivery_keys_merged (id, through) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET through = excluded.through");
    if (!advance) return tl::unexpected(advance.error());
    k->advance_ = std::move(*advance);
    if (k->recent_.size() >= k->run_size_) k->start_run();
    return k;
  }

  // host and id, NUL between (neither holds one: a host name from the configuration, an id from a
  // header): sorts as delivery_keys' primary key does, host first, bytes compared unsigned.
  static std::string key_of(std::string_view host, std::string_view delivery_id) {
    std::string key;
    key.reserve(host.size() + 1 + delivery_id.size());
    key.append(host).push_back('\0');
    key.append(delivery_id);
    return key;
  }

  // Whether a delivery with this key (key_of(host, delivery_id)) is stored (or staged in the open
  // transaction).
  [[nodiscard]] tl::expected<bool, store::Error> known(const std::string& key, const std::string& host,
                                                       const std::string& delivery_id) {
    if (recent_.count(key) != 0) return true;
    if (std::binary_search(run_.begin(), run_.end(), std::pair<std::string, std::int64_t>{key, 0}, by_key)) return true;
    if (!filter_.may_contain(key)) return false;
    find_->reset();
    find_->bind(1, host).bind(2, delivery_id);
    auto row = find_->step();
    find_->reset();
    if (!row) return tl::unexpected(row.error());
    return *row;
  }

  // A delivery stored in the open transaction.
  void stage(std::string key, std::int64_t delivery) {
    auto [at, added] = recent_.emplace(std::move(key), delivery);
    if (added) staged_.push_back(at->first);
  }

  // Writes up to `limit` keys of the run into delivery_keys in the open transaction; with the
  // run's last, moves `through` past it.
  [[nodiscard]] tl::expected<void, store::Error> merge(std::size_t limit) {
    const std::size_t end = std::min(run_.size(), merged_ + limit);
    for (std::size_t i = merged_; i < end; ++i) {
      const std::string& key = run_[i].first;
      const std::size_t cut = key.find('\0');
      insert_->reset();
      insert_->bind(1, std::string_view(key).substr(0, cut)).bind(2, std::string_view(key).substr(cut + 1)).bind(3, run_[i].second);
      if (auto s = insert_->step(); !s) {
        insert_->reset();
        return tl::unexpected(s.error());
      }
    }
    insert_->reset();
    if (!run_.empty() && end == run_.size()) {
      advance_->reset();
      advance_->bind(1, run_through_);
      auto s = advance_->step();
      advance_->reset();
      if (!s) return tl::unexpected(s.error());
    }
    staged_merged_ = end;
    return {};
  }

  void committed() {
    staged_.clear();
    merged_ = staged_merged_;
    if (!run_.empty() && merged_ == run_.size()) {
      through_ = run_through_;
      run_ = {};  // gives the memory back
      merged_ = staged_merged_ = 0;
    }
    if (run_.empty() && recent_.size() >= run_size_) start_run();
  }

  void rolled_back() {
    for (const auto& key : staged_) recent_.erase(key);
    staged_.clear();
    staged_merged_ = merged_;
  }

  // Idle: the keys held in memory become a run, however few.
  void start_run_now() {
    if (run_.empty() && !recent_.empty()) start_run();
  }
  [[nodiscard]] bool unmerged() const { return !run_.empty() || !recent_.empty(); }
  [[nodiscard]] std::size_t count() const { return run_.size() - merged_ + recent_.size(); }

 private:
  Keys() = default;
  static bool by_key(const std::pair<std::string, std::int64_t>& a, const std::pair<std::string, std::int64_t>& b) {
    return a.first < b.first;
  }
  void start_run() {
    run_.reserve(recent_.size());
    run_through_ = through_;
    for (auto& [key, delivery] : recent_) {
      run_through_ = std::max(run_through_, delivery);
      run_.emplace_back(key, delivery);
      filter_.add(key);
    }
    recent_ = {};
    std::sort(run_.begin(), run_.end(), by_key);
    merged_ = staged_merged_ = 0;
  }

  std::size_t run_size_ = 16384;
  std::int64_t through_ = 0;
  std::unordered_map<std::string, std::int64_t> recent_;
  std::vector<std::string> staged_;  // keys added to recent_ by the open transaction
  std::vector<std::pair<std::string, std::int64_t>> run_;
  std::int64_t run_through_ = 0;
  std::size_t merged_ = 0;         // run_[0, merged_) is committed to delivery_keys
  std::size_t staged_merged_ = 0;  // ... and up to here once the open transaction commits
  std::optional<store::Stmt> find_;
  std::optional<store::Stmt> insert_;
  std::optional<store::Stmt> advance_;
  KeyFilter filter_;
};

namespace {

// The first reference to a missing row, if any (inside a migration's transaction, before COMMIT).
tl::expected<std::string, store::Error> dangling_reference(store::Db& db) {
  auto check = db.prepare("PRAGMA foreign_key_check");
  if (!check) return tl::unexpected(check.error());
  auto row = check->step();
  if (!row) return tl::unexpected(row.error());
  std::string found;
  if (*row) {
    found = "table " + check->text(0) + (check->is_null(1) ? std::string() : " row " + std::to_string(check->int64(1))) +
            " refers to a missing row of " + check->text(2);
  }
  check->reset();
  return found;
}

tl::expected<int, std::string> migrate_sqlite(store::Db& db) {
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
    // Foreign keys are off while a migration runs (one that rebuilds a table drops the old one
    // while others still refer to it), so the references are checked before it commits.
    if (auto dangling = dangling_reference(db); !dangling || !dangling->empty()) {
      (void)db.exec("ROLLBACK");
      return tl::unexpected("migration " + std::string(kMigrations[i]) + " failed: " +
                            (dangling ? *dangling + "; nothing was changed: restore the database from a backup"
                                      : describe(dangling.error())));
    }
    if (auto r = db.exec("COMMIT"); !r) return tl::unexpected(describe(r.error()));
    version = static_cast<int>(i + 1);
  }
  return version;
}

}  // namespace

tl::expected<int, std::string> migrate(store::Db& db) {
  if (auto* pg = db.postgres()) return pg::migrate(*pg);
  // A migration that rebuilds a table (0005) drops the old one while other tables still refer to
  // it: foreign keys are off while migrations run (each checks them before it commits), and as
  // the connection had them afterwards.
  bool foreign_keys = false;
  if (auto q = db.prepare("PRAGMA foreign_keys"); q) {
    if (auto row = q->step(); row && *row) foreign_keys = q->int64(0) != 0;
  }
  if (auto r = db.exec("PRAGMA foreign_keys=OFF"); !r) return tl::unexpected("cannot configure the connection: " + describe(r.error()));
  auto version = migrate_sqlite(db);
  if (foreign_keys) {
    if (auto r = db.exec("PRAGMA foreign_keys=ON"); !r && version) {
      return tl::unexpected("cannot configure the connection: " + describe(r.error()));
    }
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
  if (!store::is_postgres(options.path)) {
    if (auto lock = lock_database(options.path); !lock) {
      return tl::unexpected(lock.error());
    } else {
      inbox->lock_fd_ = *lock;
    }
  }
  auto db = store::Db::open(options.path);
  if (!db) return fail(db.error());
  // 32 KiB pages (a new database only; SQLite's default is 4 KiB): a commit of 16-32 deliveries
  // of ~3.6 KB each is a few WAL frames instead of ~20, i.e. a few pwrite calls (two per frame)
  // and a few page copies for the checkpointer; measured best of 4-64 KiB (bench/RESULTS.md).
  const bool lite = db->kind() == store::Kind::sqlite;
  // Foreign keys are turned on after the migrations (migrate() explains why).
  for (const char* pragma : {"PRAGMA page_size=32768", "PRAGMA journal_mode=WAL",
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
    if (auto r = db->exec("PRAGMA foreign_keys=ON"); !r) return fail(r.error());
    if (auto ps = db->prepare("PRAGMA page_size"); ps) {
      if (auto row = ps->step(); row && *row) inbox->page_size_ = std::max<std::int64_t>(ps->int64(0), 512);
    }
    auto keys = Keys::load(*db, inbox->options_);
    if (!keys) return tl::unexpected("database '" + store::redact(options.path) + "': cannot read the delivery keys: " + describe(keys.error()));
    inbox->keys_ = std::move(*keys);
  }
  // SQLite: Keys recognises a redelivery before the insert; PostgreSQL: the UNIQUE constraint.
  auto insert = db->prepare(lite ? "INSERT INTO deliveries (host, delivery_id, event, repo, received_at, body, body_encoding, body_size) "
                                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                                 : "INSERT INTO deliveries (host, delivery_id, event, repo, received_at, body, body_encoding, body_size) "
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

Inbox::Inbox() = default;

Inbox::~Inbox() {
  stop();
  // The connections close with the members, after this; the lock is released with them.
  keys_.reset();
  insert_.reset();
  insert_outcome_.reset();
  depth_stmt_.reset();
  writer_db_.reset();
  reader_db_.reset();
  checkpoint_db_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::size_t Inbox::unmerged_keys() const { return keys_ ? keys_->count() : 0; }

void Inbox::store(StoredDelivery delivery, std::function<void(StoreResult, const std::string&)> done, bool announced) {
  {
    std::lock_guard lock(mutex_);
    const bool last = announced && arriving_.fetch_sub(1, std::memory_order_relaxed) == 1;
    if (!stopping_) {
      queue_.push_back({std::move(delivery), std::move(done), announced});
      // The writer sleeps either idle (an empty queue) or collecting a batch (it wants
      // batch_target, or no delivery on its way): waking it for every delivery in between would
      // only cost futex calls.
      if (queue_.size() == 1 || queue_.size() == *options_.batch_target || last) wake_.notify_one();
      return;
    }
    if (last) wake_.notify_one();
  }
  done(StoreResult::failed, "the inbox is shutting down");
}

void Inbox::not_arriving() {
  if (arriving_.fetch_sub(1, std::memory_order_relaxed) != 1) return;
  // The last one on its way turned out not to be a delivery: a writer waiting for it commits now.
  // (Under the lock, so a writer between testing the count and sleeping cannot miss this.)
  std::lock_guard lock(mutex_);
  wake_.notify_one();
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
  // Long enough ago that the first delivery counts as arriving at an idle inbox (steady_clock's
  // epoch may be only seconds back, at boot).
  auto last_commit = std::chrono::steady_clock::now() - *options_.batch_delay - std::chrono::seconds(1);
  bool idle = false;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      const auto ready = [&] { return stopping_ || !queue_.empty() || !outcome_queue_.empty() || !work_queue_.empty(); };
      // With keys still in memory, an idle writer merges them (Keys) after key_idle, chunk after
      // chunk until done or until something else arrives.
      const bool merging = idle;
      idle = false;
      if (keys_ && keys_->unmerged()) {
        idle = !wake_.wait_for(lock, merging ? std::chrono::milliseconds(0) : options_.key_idle, ready);
      } else {
        wake_.wait(lock, ready);
      }
      if (queue_.empty() && outcome_queue_.empty() && work_queue_.empty() && stopping_) return;
      // Under load (the last commit ended a moment ago), let the batch fill up a little: until
      // batch_target, or until no announced delivery is still on its way (arriving()), so the
      // I/O threads never sit idle while the writer waits out the delay.
      if (!stopping_ && !queue_.empty() && queue_.size() < *options_.batch_target &&
          std::chrono::steady_clock::now() - last_commit < *options_.batch_delay) {
        wake_.wait_for(lock, *options_.batch_delay, [&] {
          return stopping_ || queue_.size() >= *options_.batch_target ||
                 (queue_.back().announced && arriving_.load(std::memory_order_relaxed) <= 0);
        });
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
    if (idle) keys_->start_run_now();
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
        std::string key;
        if (keys_) {
          key = Keys::key_of(d.host, d.delivery_id);
          if (auto known = keys_->known(key, d.host, d.delivery_id); !known) {
            error = describe(known.error());
            break;
          } else if (*known) {
            results[i] = StoreResult::duplicate;
            continue;
          }
        }
        insert_->reset();
        insert_->bind(1, d.host).bind(2, d.delivery_id).bind(3, d.event).bind(4, d.repo).bind(5, now);
        insert_->bind_blob(6, d.body).bind(7, to_string(d.body_encoding));
        insert_->bind(8, static_cast<std::int64_t>(d.body_size.value_or(d.body.size())));
        if (auto s = insert_->step(); !s) {
          error = describe(s.error());
        } else {
          results[i] = db.changes() == 1 ? StoreResult::stored : StoreResult::duplicate;
          if (keys_) keys_->stage(std::move(key), db.sqlite()->last_insert_rowid());
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
      // A chunk of the keys' run rides along (a bigger one when nothing else is waiting).
      if (keys_ && error.empty()) {
        // At least twice the batch: under a backlog (batches of up to max_batch) the run is
        // merged before the next one has gathered, so memory stays near 2 x key_run.
        const std::size_t chunk = idle ? std::max(options_.key_chunk, std::size_t{4096}) : std::max(options_.key_chunk, 2 * batch.size());
        if (auto m = keys_->merge(chunk); !m) {
          error = describe(m.error());
          log::error("cannot merge delivery keys", {{"error", error}});
        }
      }
      if (error.empty()) {
        if (auto commit = db.exec("COMMIT"); !commit) error = describe(commit.error());
      }
      if (!error.empty()) (void)db.exec("ROLLBACK");
    }
    if (keys_) {
      if (error.empty()) {
        keys_->committed();
      } else {
        keys_->rolled_back();
        idle = false;  // an idle merge that failed is tried again after key_idle, not at once
      }
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
