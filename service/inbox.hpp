#pragma once
// The durable inbox: webhook deliveries in SQLite (WAL). store() returns only once the delivery is
// committed; concurrent stores share one transaction (group commit), so durability does not cost
// throughput. (host, delivery_id) is unique: a redelivery is recognised, not stored twice.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <tl/expected.hpp>

#include "service/sqlite.hpp"

namespace tollgate::service {

struct InboxOptions {
  std::string path{};           // SQLite file
  bool synchronous_full = false;  // FULL: survives power loss; NORMAL (default): survives a crash of tollgate
  std::size_t max_batch = 1024;   // deliveries per transaction at most
  std::function<void()> on_commit{};  // after each commit that stored something (writer thread)
};

struct StoredDelivery {
  std::string host;
  std::string delivery_id;
  std::string event;
  std::string repo;
  std::string body;
};

enum class StoreResult { stored, duplicate, failed };

class Inbox {
 public:
  // Opens (creating if need be) the database and applies pending migrations.
  [[nodiscard]] static tl::expected<std::unique_ptr<Inbox>, std::string> open(const InboxOptions& options);
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Queues the delivery; `done` runs on the writer thread after its transaction committed (or
  // failed). Callers hop back to their own executor from there.
  void store(StoredDelivery delivery, std::function<void(StoreResult, const std::string& error)> done);

  // Stops accepting, commits what is queued, and joins the writer.
  void stop();

  // For /readyz and /metrics (a separate read connection; cheap).
  [[nodiscard]] bool reachable();
  [[nodiscard]] std::optional<std::int64_t> depth();  // deliveries not yet processed

  // Schema version after migrations (tests).
  [[nodiscard]] int schema_version() const { return schema_version_; }

 private:
  Inbox() = default;
  void writer_loop();

  struct Pending {
    StoredDelivery delivery;
    std::function<void(StoreResult, const std::string&)> done;
  };

  InboxOptions options_;
  std::optional<sqlite::Db> writer_db_;
  std::optional<sqlite::Stmt> insert_;
  std::mutex reader_mutex_;
  std::optional<sqlite::Db> reader_db_;
  std::optional<sqlite::Stmt> depth_stmt_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread writer_;
  int schema_version_ = 0;
};

// Applies schemas/migrations (embedded) in order, each in its own transaction; returns the version.
[[nodiscard]] tl::expected<int, std::string> migrate(sqlite::Db& db);

}  // namespace tollgate::service
