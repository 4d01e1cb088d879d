#pragma once
// The durable inbox: webhook deliveries in SQLite (WAL). store() returns only once the delivery is
// committed; concurrent stores share one transaction (group commit), so durability does not cost
// throughput. (host, delivery_id) is unique: a redelivery is recognised, not stored twice (SQLite:
// by DeliveryKeys in inbox.cpp, which needs the inbox to be the database's only writer, so open()
// takes a lock file; PostgreSQL: by the table's UNIQUE constraint).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tl/expected.hpp>

#include "service/body_codec.hpp"
#include "service/store.hpp"

namespace tollgate::service {

struct InboxOptions {
  std::string path{};           // SQLite file
  bool synchronous_full = false;  // FULL: survives power loss; NORMAL (default): survives a crash of tollgate
  std::size_t max_batch = 1024;   // deliveries per transaction at most
  // Group commit under load: once a commit has just finished and fewer than `batch_target`
  // deliveries wait, the writer waits up to `batch_delay` for more before the next commit, or
  // until no announced delivery is on its way (arriving(), below). Larger
  // commits write each shared page (the index's, the last table page) once for many deliveries.
  // An idle inbox commits a lone delivery at once. Unset: chosen by durability (bench/RESULTS.md):
  // NORMAL 64 / 2 ms (against 32 / 1 ms in interleaved pairs at 64 connections: ~9% less CPU per
  // delivery, p99 8.6 -> 6.8 ms); FULL 32 / 1 ms, where the fsync of each commit is the wait and
  // a longer one only leaves the disk idle (~15% more than 64 / 2 ms).
  std::optional<std::size_t> batch_target{};
  std::optional<std::chrono::microseconds> batch_delay{};
  std::function<void()> on_commit{};  // after each commit that stored something (writer thread)
  std::int64_t wal_soft_limit = 8 << 20;         // WAL bytes that wake the checkpointer
  std::int64_t wal_hard_limit = std::int64_t{1} << 30;  // WAL bytes past which the writer checkpoints itself
  // SQLite replay detection (DeliveryKeys in inbox.cpp): the keys of the latest deliveries stay in
  // memory until `key_run` of them are merged into delivery_keys as one sorted run, `key_chunk`
  // keys per commit. After `key_idle` with nothing to do, the writer merges what it holds.
  std::size_t key_run = 16384;
  std::size_t key_chunk = 512;
  std::chrono::milliseconds key_idle{1000};
};

struct StoredDelivery {
  std::string host;
  std::string delivery_id;
  std::string event;
  std::string repo;
  std::string body;  // as received, or encoded (encode_body) with its encoding and size below
  BodyEncoding body_encoding = BodyEncoding::identity;
  std::optional<std::size_t> body_size{};  // the size as received; unset: body.size()
  // When the request began (for the "ms" of the log line the inbox writes once it is committed).
  std::optional<std::chrono::steady_clock::time_point> received{};
};

enum class StoreResult { stored, duplicate, failed };

// The engine marks a delivery it applied in the table consumed, under this prefix and the
// delivery's id ("delivery:42").
inline constexpr std::string_view kDeliveryConsumedPrefix = "delivery:";

// What became of a stored delivery (the normaliser's verdict).
struct DeliveryOutcome {
  std::int64_t delivery = 0;  // deliveries.id
  std::string state;          // normalized | ignored | failed
  std::string event_json{};   // normalized: the Event
  std::string error{};        // failed: why
};

class Inbox {
 public:
  // Opens (creating if need be) the database and applies pending migrations.
  [[nodiscard]] static tl::expected<std::unique_ptr<Inbox>, std::string> open(const InboxOptions& options);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Queues the delivery; `done` runs on the writer thread after its transaction committed (or
  // failed). Callers hop back to their own executor from there. The inbox logs each delivery's
  // fate ("delivery stored", "delivery already stored", "delivery not stored"), one write per
  // commit.
  // `announced`: the caller announced this delivery with `arriving()` (it then counts as arrived).
  void store(StoredDelivery delivery, std::function<void(StoreResult, const std::string& error)> done,
             bool announced = false);

  // Group commit: a request that may become a delivery is on its way (an I/O thread is reading or
  // checking it). While any are, a writer collecting a batch waits for them (up to batch_delay);
  // once none are and the latest delivery queued was announced, it commits at once instead of
  // idling out the delay (callers that announce nothing get the plain delay). Each call is matched
  // by store(..., announced=true) or by `not_arriving()`.
  void arriving() { arriving_.fetch_add(1, std::memory_order_relaxed); }
  void not_arriving();
  // How many are on their way now (/metrics: tollgate_intake_requests_in_progress).
  [[nodiscard]] int arriving_now() const { return arriving_.load(std::memory_order_relaxed); }

  // Records outcomes through the same writer (the inbox has exactly one writing connection, so
  // nobody waits in SQLite's busy handler); `done` runs on the writer thread after the commit.
  void record(std::vector<DeliveryOutcome> outcomes, std::function<void(bool ok, const std::string& error)> done);

  // Runs `work` on the writer thread inside a transaction (a savepoint of the writer's next
  // commit, which it may share with deliveries and other work). `work` returns an empty string to
  // keep its changes, or why it failed (its changes are rolled back; an exception counts as a
  // failure). `done` runs on the writer thread after the commit with the work's error, or the
  // commit's. The promotion engine applies every input this way, exactly once.
  using Work = std::function<std::string(store::Db&)>;
  void transact(Work work, std::function<void(const std::string& error)> done);
  // The same, waiting for the commit (never call it from the writer thread's callbacks).
  [[nodiscard]] std::string transact_sync(Work work);

  // Stops accepting, commits what is queued, and joins the writer.
  void stop();

  // For /readyz and /metrics (a separate read connection; cheap).
  [[nodiscard]] bool reachable();
  [[nodiscard]] std::optional<std::int64_t> depth();  // deliveries not yet processed

  // Schema version after migrations (tests).
  [[nodiscard]] int schema_version() const { return schema_version_; }
  // SQLite: keys of stored deliveries not yet merged into delivery_keys (tests; writer state, so
  // read it only when the writer is idle or stopped). 0 on PostgreSQL.
  [[nodiscard]] std::size_t unmerged_keys() const;

 private:
  Inbox();
  class Keys;
  void writer_loop();
  void checkpointer_loop();
  void wal_grew(int frames);

  struct Pending {
    StoredDelivery delivery;
    std::function<void(StoreResult, const std::string&)> done;
    bool announced = false;
  };

  InboxOptions options_;
  std::optional<store::Db> writer_db_;
  std::optional<store::Stmt> insert_;
  std::optional<store::Stmt> insert_outcome_;
  std::unique_ptr<Keys> keys_;  // SQLite only
  int lock_fd_ = -1;            // SQLite: the lock file that keeps a second inbox off the database
  std::mutex reader_mutex_;
  std::optional<store::Db> reader_db_;
  std::optional<store::Stmt> depth_stmt_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  std::atomic<int> arriving_{0};
  struct PendingOutcomes {
    std::vector<DeliveryOutcome> outcomes;
    std::function<void(bool, const std::string&)> done;
  };
  std::deque<PendingOutcomes> outcome_queue_;
  struct PendingWork {
    Work work;
    std::function<void(const std::string&)> done;
  };
  std::deque<PendingWork> work_queue_;
  bool stopping_ = false;
  std::thread writer_;
  int schema_version_ = 0;
  std::int64_t page_size_ = 4096;  // the database's, for WAL sizes

  std::optional<sqlite::Db> checkpoint_db_;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_wake_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stopping_ = false;
  std::thread checkpointer_;
};

// Applies schemas/migrations (embedded) in order, each in its own transaction; returns the version.
[[nodiscard]] tl::expected<int, std::string> migrate(store::Db& db);

}  // namespace tollgate::service
