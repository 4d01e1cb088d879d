#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "service/inbox.hpp"
#include "service/inbox_command.hpp"
#include "service/migrations.hpp"
#include "service/normalizer.hpp"
#include "service/store.hpp"
#include "tests/service/retention_scenario.hpp"
#include "tests/webhooks/helpers.hpp"

namespace tollgate_migrations {
std::string_view embedded(std::string_view name);
}

using namespace tollgate::service;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("tollgate-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
};

StoreResult store_sync(Inbox& inbox, StoredDelivery d) {
  std::promise<StoreResult> p;
  auto f = p.get_future();
  inbox.store(std::move(d), [&p](StoreResult r, const std::string&) { p.set_value(r); });
  return f.get();
}

// The first column of the first row of `sql`, read on a connection of its own.
std::int64_t scalar(const fs::path& db_path, const std::string& sql) {
  auto db = store::Db::open(db_path.string());
  auto stmt = db->prepare(sql);
  REQUIRE(stmt);
  auto row = stmt->step();
  REQUIRE((row && *row));
  return stmt->int64(0);
}

std::int64_t count_rows(const fs::path& db_path, const std::string& where = "1", const std::string& table = "deliveries") {
  return scalar(db_path, "SELECT COUNT(*) FROM " + table + " WHERE " + where);
}

// `tollgate inbox` with these arguments: the rows it prints.
std::vector<nlohmann::json> inbox_rows(const tollgate::cli::InboxArgs& args) {
  std::ostringstream out, err;
  const int status = tollgate::cli::run_inbox(args, out, err);
  INFO(err.str());
  REQUIRE(status == 0);
  std::vector<nlohmann::json> rows;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

std::vector<nlohmann::json> inbox_rows(const fs::path& db_path, const std::string& delivery) {
  tollgate::cli::InboxArgs args;
  args.database = db_path.string();
  args.delivery = delivery;
  return inbox_rows(args);
}

}  // namespace

TEST_CASE("a stored delivery is committed before store() reports it, once per id", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  auto inbox = Inbox::open({.path = db.string()});
  REQUIRE(inbox);
  CHECK((*inbox)->schema_version() == static_cast<int>(kMigrations.size()));
  StoredDelivery d{"github", "id-1", "pull_request", "acme/app", R"({"a":1})"};
  CHECK(store_sync(**inbox, d) == StoreResult::stored);
  // Visible to another connection as soon as store() reported it.
  CHECK(count_rows(db) == 1);
  CHECK(store_sync(**inbox, d) == StoreResult::duplicate);
  d.host = "gitea";  // the same id from another host is another delivery
  CHECK(store_sync(**inbox, d) == StoreResult::stored);
  CHECK(count_rows(db) == 2);
  CHECK((*inbox)->depth() == 2);
  CHECK((*inbox)->reachable());
}

TEST_CASE("the inbox logs each delivery's fate once it is committed, and new databases use 32 KiB pages", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  const fs::path log_file = dir.path / "stderr.log";
  std::fflush(stderr);
  const int saved = ::dup(2);
  const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  ::dup2(fd, 2);
  {
    auto inbox = Inbox::open({.path = db.string()});
    REQUIRE(inbox);
    StoredDelivery d{"github", "id-7", "pull_request", "acme/app", R"({"a":1})"};
    d.received = std::chrono::steady_clock::now() - std::chrono::milliseconds(5);
    CHECK(store_sync(**inbox, d) == StoreResult::stored);
    CHECK(store_sync(**inbox, d) == StoreResult::duplicate);
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fd);
  std::ifstream in(log_file);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.value("delivery", "") == "id-7") lines.push_back(j);
  }
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["msg"] == "delivery stored");
  CHECK(lines[1]["msg"] == "delivery already stored");
  for (const auto& j : lines) {
    CHECK(j["level"] == "info");
    CHECK(j["host"] == "github");
    CHECK(j["event"] == "pull_request");
    CHECK(j["repo"] == "acme/app");
    CHECK(j["ms"].get<double>() >= 5.0);  // from `received` to the commit
  }
  auto conn = store::Db::open(db.string());
  REQUIRE(conn);
  auto ps = conn->prepare("PRAGMA page_size");
  REQUIRE(ps);
  auto row = ps->step();
  REQUIRE((row && *row));
  CHECK(ps->int64(0) == 32768);
}

TEST_CASE("concurrent deliveries share commits and none is lost", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  auto inbox = Inbox::open({.path = db.string()});
  REQUIRE(inbox);
  constexpr int kThreads = 8, kEach = 200;
  std::atomic<int> stored{0}, duplicates{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Every id twice: once from this thread, once (maybe concurrently) from its neighbour.
        std::string id = "id-" + std::to_string((t * kEach + i) % (kThreads * kEach / 2));
        auto r = store_sync(**inbox, {"github", id, "push", "acme/app", "{}"});
        (r == StoreResult::stored ? stored : duplicates)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(stored == kThreads * kEach / 2);
  CHECK(duplicates == kThreads * kEach / 2);
  CHECK(count_rows(db) == kThreads * kEach / 2);
}

TEST_CASE("under load the writer lets a batch fill up: many deliveries per commit", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  std::atomic<int> commits{0};
  auto inbox = Inbox::open({.path = db.string(), .on_commit = [&] { ++commits; }});
  REQUIRE(inbox);
  constexpr int kThreads = 16, kEach = 50;
  std::atomic<int> stored{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {  // no Catch assertions off the test's thread
      for (int i = 0; i < kEach; ++i) {
        if (store_sync(**inbox, {"github", "id-" + std::to_string(t) + "-" + std::to_string(i), "push", "acme/app", "{}"}) ==
            StoreResult::stored) {
          ++stored;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(stored == kThreads * kEach);
  CHECK(count_rows(db) == kThreads * kEach);
  // Each thread waits for its commit before sending the next, so at most 16 are ever queued: a
  // writer committing whatever it finds made 494 commits here (batch_delay 0), this one ~50.
  INFO("commits: " << commits.load());
  CHECK(commits.load() < kThreads * kEach / 4);
}

TEST_CASE("stop() commits everything queued before it returns", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  std::atomic<int> done{0};
  {
    auto inbox = Inbox::open({.path = db.string()});
    REQUIRE(inbox);
    for (int i = 0; i < 500; ++i) {
      (*inbox)->store({"github", "id-" + std::to_string(i), "push", "", "{}"},
                      [&](StoreResult r, const std::string&) { done += r == StoreResult::stored; });
    }
    (*inbox)->stop();
    CHECK(done == 500);
    std::promise<StoreResult> late;
    (*inbox)->store({"github", "late", "push", "", "{}"}, [&](StoreResult r, const std::string&) { late.set_value(r); });
    CHECK(late.get_future().get() == StoreResult::failed);
  }
  CHECK(count_rows(db) == 500);
}

TEST_CASE("migrations are versioned and applied once", "[inbox]") {
  TempDir dir;
  auto path = (dir.path / "t.db").string();
  {
    auto inbox = Inbox::open({.path = path});
    REQUIRE(inbox);
    CHECK(store_sync(**inbox, {"github", "keep", "push", "", "{}"}) == StoreResult::stored);
  }
  {
    auto inbox = Inbox::open({.path = path});  // reopening migrates nothing and keeps the data
    REQUIRE(inbox);
    CHECK((*inbox)->schema_version() == static_cast<int>(kMigrations.size()));
  }
  CHECK(count_rows(path) == 1);
  {
    auto db = store::Db::open(path);
    REQUIRE(db->exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"));
  }
  auto newer = Inbox::open({.path = path});
  REQUIRE_FALSE(newer);
  CHECK(newer.error().find("schema version 99 but this tollgate knows only " + std::to_string(kMigrations.size())) != std::string::npos);
  auto bad = Inbox::open({.path = (dir.path / "missing-dir" / "t.db").string()});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("missing-dir") != std::string::npos);
}

TEST_CASE("migration 2 moves normalisation outcomes out of the delivery rows", "[inbox]") {
  TempDir dir;
  auto path = (dir.path / "v1.db").string();
  {
    // A database as tollgate with schema version 1 left it: one delivery processed, one waiting.
    auto db = store::Db::open(path);
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
    REQUIRE(db->exec(std::string(tollgate_migrations::embedded("0001_inbox.sql"))));
    REQUIRE(db->exec("INSERT INTO schema_migrations VALUES (1, '0001_inbox.sql', 0)"));
    REQUIRE(db->exec("INSERT INTO deliveries (host, delivery_id, event, received_at, body, state, event_json) "
                     "VALUES ('github', 'a', 'push', 1, '{}', 'normalized', '{\"type\":\"push\"}'), "
                     "('github', 'b', 'push', 2, '{}', 'failed', NULL), ('github', 'c', 'push', 3, '{}', 'new', NULL)"));
    REQUIRE(db->exec("UPDATE deliveries SET error = 'broken' WHERE delivery_id = 'b'"));
  }
  auto inbox = Inbox::open({.path = path});
  REQUIRE(inbox);
  CHECK((*inbox)->schema_version() == static_cast<int>(kMigrations.size()));
  CHECK((*inbox)->depth() == 1);
  (*inbox)->stop();
  auto db = store::Db::open(path);
  REQUIRE(db);
  auto q = db->prepare("SELECT delivery_id, state, COALESCE(event_json, ''), COALESCE(error, '') FROM inbox ORDER BY id");
  REQUIRE(q);
  std::vector<std::string> rows;
  while (auto step = q->step()) {
    if (!*step) break;
    rows.push_back(q->text(0) + " " + q->text(1) + " " + q->text(2) + " " + q->text(3));
  }
  CHECK(rows == std::vector<std::string>{"a normalized {\"type\":\"push\"} ", "b failed  broken", "c new  "});
  // Migration 5: no UNIQUE index on deliveries any more; the keys of the rows went into
  // delivery_keys and are recognised from there.
  auto unique = db->prepare("SELECT COUNT(*) FROM pragma_index_list('deliveries') WHERE \"unique\"");
  REQUIRE(unique);
  REQUIRE(unique->step());
  CHECK(unique->int64(0) == 0);
  unique->reset();
  CHECK(count_rows(path, "1", "delivery_keys") == 3);
  inbox->reset();  // releases the database's lock file
  auto again = Inbox::open({.path = path});
  REQUIRE(again);
  CHECK((*again)->unmerged_keys() == 0);
  CHECK(store_sync(**again, {"github", "b", "push", "", "{}"}) == StoreResult::duplicate);
  CHECK(store_sync(**again, {"github", "d", "push", "", "{}"}) == StoreResult::stored);
  (*again)->stop();
  CHECK(count_rows(path) == 4);
  CHECK(count_rows(path, "delivery_id = 'd' AND id = 4") == 1);
}

TEST_CASE("a migration that would leave a reference to a missing row changes nothing and says which", "[inbox]") {
  TempDir dir;
  auto path = (dir.path / "v4.db").string();
  {
    // A version 4 database in which an outcome names a delivery that is not there (edited by hand).
    auto db = store::Db::open(path);
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
    int version = 0;
    for (const char* name : {"0001_inbox.sql", "0002_outcomes.sql", "0003_engine.sql", "0004_api.sql"}) {
      REQUIRE(db->exec(std::string(tollgate_migrations::embedded(name))));
      REQUIRE(db->exec("INSERT INTO schema_migrations VALUES (" + std::to_string(++version) + ", '" + name + "', 0)"));
    }
    REQUIRE(db->exec("INSERT INTO deliveries (host, delivery_id, event, received_at, body) VALUES ('github', 'a', 'push', 1, '{}')"));
    REQUIRE(db->exec("INSERT INTO delivery_outcomes (delivery, state, processed_at) VALUES (7, 'ignored', 1)"));
  }
  auto inbox = Inbox::open({.path = path});
  REQUIRE_FALSE(inbox);
  CHECK_THAT(inbox.error(), Catch::Contains("migration 0005_delivery_keys.sql failed: table delivery_outcomes") &&
                                Catch::Contains("refers to a missing row of deliveries; nothing was changed"));
  CHECK(scalar(path, "SELECT MAX(version) FROM schema_migrations") == 4);
  CHECK(scalar(path, "SELECT COUNT(*) FROM pragma_index_list('deliveries') WHERE \"unique\"") == 1);
}

TEST_CASE("migrate() leaves the connection's foreign keys as it found them", "[inbox]") {
  TempDir dir;
  for (const bool on : {true, false}) {
    auto db = store::Db::open((dir.path / (on ? "on.db" : "off.db")).string());
    REQUIRE(db);
    REQUIRE(db->exec(on ? "PRAGMA foreign_keys=ON" : "PRAGMA foreign_keys=OFF"));
    REQUIRE(migrate(*db));
    auto q = db->prepare("PRAGMA foreign_keys");
    REQUIRE(q);
    REQUIRE(q->step());
    CHECK(q->int64(0) == (on ? 1 : 0));
  }
}

namespace {
std::int64_t merged_through(const fs::path& path) { return scalar(path, "SELECT through FROM delivery_keys_merged"); }
}  // namespace

TEST_CASE("redeliveries are recognised whether their key is in memory, in a run being merged, or merged", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  // Runs of 3 keys, 2 merged per commit: every state a key can be in occurs below.
  const InboxOptions options{.path = path.string(), .key_run = 3, .key_chunk = 2, .key_idle = std::chrono::hours(1)};
  {
    auto inbox = Inbox::open(options);
    REQUIRE(inbox);
    for (int i = 0; i < 10; ++i) {
      CHECK(store_sync(**inbox, {"github", "g-" + std::to_string(i), "push", "", "{}"}) == StoreResult::stored);
      // The same id from another host is another delivery.
      CHECK(store_sync(**inbox, {"gitea", "g-" + std::to_string(i), "push", "", "{}"}) == StoreResult::stored);
      for (int j = 0; j <= i; ++j) {
        INFO("after " << i << ", delivery g-" << j);
        CHECK(store_sync(**inbox, {"github", "g-" + std::to_string(j), "push", "", "{}"}) == StoreResult::duplicate);
      }
      CHECK((*inbox)->unmerged_keys() <= 2 * 3 + 2);
    }
    (*inbox)->stop();
    CHECK(count_rows(path) == 20);
    // Some keys are merged, each delivery's key with its own row id; the rest wait in memory.
    const auto merged = count_rows(path, "1", "delivery_keys");
    CHECK(merged >= 12);
    CHECK(merged + static_cast<std::int64_t>((*inbox)->unmerged_keys()) == 20);
    CHECK(count_rows(path, "EXISTS (SELECT 1 FROM deliveries d WHERE d.id = delivery AND d.host = delivery_keys.host "
                           "AND d.delivery_id = delivery_keys.delivery_id)", "delivery_keys") == merged);
    CHECK(count_rows(path, "id <= " + std::to_string(merged_through(path))) ==
          count_rows(path, "id IN (SELECT delivery FROM delivery_keys)"));
  }
  // What was only in memory is read back from the deliveries at start, as after a crash.
  auto inbox = Inbox::open(options);
  REQUIRE(inbox);
  for (int j = 0; j < 10; ++j) {
    CHECK(store_sync(**inbox, {"github", "g-" + std::to_string(j), "push", "", "{}"}) == StoreResult::duplicate);
    CHECK(store_sync(**inbox, {"gitea", "g-" + std::to_string(j), "push", "", "{}"}) == StoreResult::duplicate);
  }
  CHECK(store_sync(**inbox, {"github", "g-10", "push", "", "{}"}) == StoreResult::stored);
  (*inbox)->stop();
  CHECK(count_rows(path) == 21);
}

TEST_CASE("an idle inbox merges the keys it holds, and a crash before that loses none", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  {
    // A long idle time: the keys stay in memory and die with the inbox, as in a crash.
    auto inbox = Inbox::open({.path = path.string(), .key_idle = std::chrono::hours(1)});
    REQUIRE(inbox);
    for (const char* id : {"a", "b", "c"}) CHECK(store_sync(**inbox, {"github", id, "push", "", "{}"}) == StoreResult::stored);
    CHECK((*inbox)->unmerged_keys() == 3);
  }
  CHECK(count_rows(path, "1", "delivery_keys") == 0);
  CHECK(merged_through(path) == 0);
  auto inbox = Inbox::open({.path = path.string(), .key_idle = std::chrono::milliseconds(50)});
  REQUIRE(inbox);
  // (Not unmerged_keys() here: the writer may already be merging; it reads the writer's state.)
  CHECK(store_sync(**inbox, {"github", "b", "push", "", "{}"}) == StoreResult::duplicate);
  // Nothing arrives for 50 ms: the three keys are merged.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count_rows(path, "1", "delivery_keys") < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(count_rows(path, "1", "delivery_keys") == 3);
  CHECK(merged_through(path) == 3);
  (*inbox)->stop();
  CHECK((*inbox)->unmerged_keys() == 0);
}

TEST_CASE("a commit that fails forgets the keys it added, so the deliveries can come again", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  auto inbox = Inbox::open({.path = path.string(), .key_run = 1, .key_chunk = 1, .key_idle = std::chrono::hours(1)});
  REQUIRE(inbox);
  {
    // Merging the key of 'poison' fails, and with it the commit it rides along with.
    auto db = store::Db::open(path.string());
    REQUIRE(db->exec("CREATE TRIGGER poison BEFORE INSERT ON delivery_keys WHEN NEW.delivery_id = 'poison' "
                     "BEGIN SELECT RAISE(ABORT, 'poisoned key'); END"));
  }
  CHECK(store_sync(**inbox, {"github", "poison", "push", "", "{}"}) == StoreResult::stored);
  CHECK(store_sync(**inbox, {"github", "x", "push", "", "{}"}) == StoreResult::failed);
  CHECK(store_sync(**inbox, {"github", "x", "push", "", "{}"}) == StoreResult::failed);
  CHECK(count_rows(path) == 1);
  {
    auto db = store::Db::open(path.string());
    REQUIRE(db->exec("DROP TRIGGER poison"));
  }
  CHECK(store_sync(**inbox, {"github", "x", "push", "", "{}"}) == StoreResult::stored);
  CHECK(store_sync(**inbox, {"github", "x", "push", "", "{}"}) == StoreResult::duplicate);
  CHECK(store_sync(**inbox, {"github", "poison", "push", "", "{}"}) == StoreResult::duplicate);
  (*inbox)->stop();
  CHECK(count_rows(path) == 2);
  CHECK(count_rows(path, "1", "delivery_keys") == 2);
}

TEST_CASE("tollgate inbox --delivery finds a delivery whether its key is merged or not, on every host", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  {
    // Runs of 4 keys: after 10 deliveries on each of three hosts most keys are merged, a few not.
    auto inbox = Inbox::open({.path = path.string(), .key_run = 4, .key_chunk = 4, .key_idle = std::chrono::hours(1)});
    REQUIRE(inbox);
    for (int i = 0; i < 10; ++i) {
      for (const char* host : {"github", "gitea", "gitlab"}) {
        // The same id on two hosts: two deliveries.
        const std::string id = std::string(host == std::string("gitlab") ? "lab-" : "d-") + std::to_string(i);
        CHECK(store_sync(**inbox, {host, id, "push", "acme/app", "{\"n\":" + std::to_string(i) + "}"}) == StoreResult::stored);
      }
    }
    (*inbox)->stop();
    CHECK(merged_through(path) > 0);
    CHECK(merged_through(path) < 30);
  }
  const auto find = [&](const std::string& id) { return inbox_rows(path, id); };
  for (int i = 0; i < 10; ++i) {
    INFO("delivery " << i);
    auto rows = find("d-" + std::to_string(i));
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["host"] == "github");
    CHECK(rows[1]["host"] == "gitea");
    CHECK(rows[0]["body"] == "{\"n\":" + std::to_string(i) + "}");
    auto lab = find("lab-" + std::to_string(i));
    REQUIRE(lab.size() == 1);
    CHECK(lab[0]["host"] == "gitlab");
  }
  CHECK(find("d-10").empty());
  CHECK(find("no-such-delivery").empty());
  // With --state and --limit as without --delivery.
  tollgate::cli::InboxArgs args;
  args.database = path.string();
  args.state = "new";
  args.delivery = "d-3";
  args.limit = 1;
  const auto newest = inbox_rows(args);
  REQUIRE(newest.size() == 1);
  CHECK(newest[0]["host"] == "gitea");
  args.state = "failed";
  CHECK(inbox_rows(args).empty());
}

TEST_CASE("tollgate inbox --delivery before any key is merged, and on a database of schema 4", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  const auto count = [&](const std::string& id) { return inbox_rows(path, id).size(); };
  {
    auto inbox = Inbox::open({.path = path.string(), .key_idle = std::chrono::hours(1)});
    REQUIRE(inbox);
    CHECK(store_sync(**inbox, {"github", "only", "push", "", "{}"}) == StoreResult::stored);
  }
  CHECK(count_rows(path, "1", "delivery_keys") == 0);
  CHECK(count("only") == 1);
  CHECK(count("other") == 0);
  // Read as it is (not migrated): without delivery_keys, every row is looked at.
  {
    auto db = store::Db::open(path.string());
    REQUIRE(db->exec("DROP TABLE delivery_keys"));
  }
  CHECK(count("only") == 1);
}

TEST_CASE("a second inbox on the same SQLite database is refused, naming the first", "[inbox][keys]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  auto first = Inbox::open({.path = path.string()});
  REQUIRE(first);
  auto second = Inbox::open({.path = path.string()});
  REQUIRE_FALSE(second);
  INFO(second.error());
  CHECK(second.error().find("is in use by another tollgate (pid " + std::to_string(::getpid()) + ")") != std::string::npos);
  CHECK(second.error().find(fs::weakly_canonical(path).string() + ".lock") != std::string::npos);
  // Another name for the same file (a symlink to it) meets the same lock.
  fs::create_symlink(path, dir.path / "other-name.db");
  auto via_link = Inbox::open({.path = (dir.path / "other-name.db").string()});
  REQUIRE_FALSE(via_link);
  CHECK(via_link.error().find("is in use by another tollgate") != std::string::npos);
  // A symlink to a file that does not exist yet: whichever name is opened first, the other is refused.
  fs::create_symlink(dir.path / "later.db", dir.path / "link-to-later.db");
  auto through_link = Inbox::open({.path = (dir.path / "link-to-later.db").string()});
  REQUIRE(through_link);
  auto by_target = Inbox::open({.path = (dir.path / "later.db").string()});
  REQUIRE_FALSE(by_target);
  CHECK(by_target.error().find("is in use by another tollgate") != std::string::npos);
  first->reset();
  auto third = Inbox::open({.path = path.string()});
  CHECK(third);
}

TEST_CASE("bodies are compressed when it pays and always decode to the bytes received", "[inbox][body]") {
  std::string json = "{\"url\": \"https://api.github.com/repos/o/r\", \"items\": [";
  for (int i = 0; i < 200; ++i) json += "{\"html_url\": \"https://github.com/o/r/pull/" + std::to_string(i) + "\"},";
  json += "{}]}";
  auto packed = encode_body(json);
  CHECK(packed.encoding == BodyEncoding::lz4);
  CHECK(packed.size == json.size());
  CHECK(packed.bytes.size() < json.size() / 4);
  auto back = decode_body(packed.encoding, packed.bytes, packed.size);
  REQUIRE(back);
  CHECK(*back == json);

  auto small = encode_body("{\"zen\": \"Keep it logically awesome.\"}");  // too small to bother
  CHECK(small.encoding == BodyEncoding::identity);
  CHECK(small.bytes == "{\"zen\": \"Keep it logically awesome.\"}");

  // Corrupt or inconsistent rows are reported, never read past or silently accepted.
  auto truncated = decode_body(BodyEncoding::lz4, std::string_view(packed.bytes).substr(0, packed.bytes.size() / 2), packed.size);
  REQUIRE_FALSE(truncated);
  CHECK(truncated.error().find("corrupt") != std::string::npos);
  auto wrong_size = decode_body(BodyEncoding::lz4, packed.bytes, packed.size + 1);
  REQUIRE_FALSE(wrong_size);
  auto identity_mismatch = decode_body(BodyEncoding::identity, "abc", 4);
  REQUIRE_FALSE(identity_mismatch);
  CHECK(identity_mismatch.error() == "stored body has 3 bytes, its row says 4");
  CHECK_FALSE(body_encoding_from("gzip"));
}

TEST_CASE("a compressed delivery is stored with its encoding and original size", "[inbox][body]") {
  TempDir dir;
  auto path = (dir.path / "t.db").string();
  std::string json(8000, ' ');
  json.front() = '[';
  json.back() = ']';
  auto packed = encode_body(json);
  REQUIRE(packed.encoding == BodyEncoding::lz4);
  {
    auto inbox = Inbox::open({.path = path});
    REQUIRE(inbox);
    CHECK(store_sync(**inbox, {"github", "z", "push", "", packed.bytes, packed.encoding, packed.size}) == StoreResult::stored);
  }
  auto db = store::Db::open(path);
  REQUIRE(db);
  auto q = db->prepare("SELECT body, body_encoding, body_size FROM deliveries WHERE delivery_id = 'z'");
  REQUIRE(q);
  REQUIRE(q->step().value_or(false));
  CHECK(q->text(1) == "lz4");
  CHECK(q->int64(2) == 8000);
  auto body = decode_body(BodyEncoding::lz4, q->text(0), 8000);
  REQUIRE(body);
  CHECK(*body == json);
}

TEST_CASE("under load the writer waits for announced deliveries on their way, and no longer", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  // A delay far longer than the test: any commit within it was not the delay running out.
  auto inbox = Inbox::open({.path = db.string(), .batch_target = 64, .batch_delay = std::chrono::seconds(30)});
  REQUIRE(inbox);
  Inbox& in = **inbox;
  // An idle inbox commits at once; the next commit counts as under load.
  REQUIRE(store_sync(in, {"github", "id-0", "push", "", "{}"}) == StoreResult::stored);

  auto store_async = [&in](std::string id, bool announced) {
    auto p = std::make_shared<std::promise<StoreResult>>();
    auto f = p->get_future();
    in.store({"github", std::move(id), "push", "", "{}"}, [p](StoreResult r, const std::string&) { p->set_value(r); }, announced);
    return f;
  };
  in.arriving();  // A
  in.arriving();  // B
  auto a = store_async("id-a", /*announced=*/true);
  // B is still on its way: the writer waits for it.
  CHECK(a.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  in.not_arriving();  // B was not a delivery after all: nothing else is coming, so commit now
  REQUIRE(a.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(a.get() == StoreResult::stored);

  // The last announced delivery itself ends the wait.
  in.arriving();
  auto c = store_async("id-c", /*announced=*/true);
  REQUIRE(c.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(c.get() == StoreResult::stored);

  // A caller that announces nothing gets the plain delay (here: until stop()).
  auto d = store_async("id-d", /*announced=*/false);
  CHECK(d.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  in.stop();
  CHECK(d.get() == StoreResult::stored);
  CHECK(count_rows(db) == 4);
}

TEST_CASE("old bodies of deliveries done with are dropped in id order; the rows and replay detection stay", "[inbox][retention]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  auto inbox = Inbox::open({.path = path.string()});
  REQUIRE(inbox);
  auto reader = store::Db::open(path.string());
  REQUIRE(reader);
  retention_test::check_dropping(**inbox, *reader);

  // After a restart the keys come from the database (Keys::load): still a duplicate.
  inbox->reset();
  inbox = Inbox::open({.path = path.string()});
  REQUIRE(inbox);
  CHECK(store_sync(**inbox, {"github", "d1", "push", "acme/app", "{}"}) == StoreResult::duplicate);
  CHECK(store_sync(**inbox, {"github", "d7", "push", "acme/app", "{\"kept\":true}"}) == StoreResult::stored);

  // tollgate inbox says a body was dropped rather than show an empty one; a kept one decodes.
  tollgate::cli::InboxArgs args;
  args.database = path.string();
  args.with_body = true;
  const auto rows = inbox_rows(args);
  REQUIRE(rows.size() == 7);
  CHECK(rows[0]["delivery_id"] == "d1");
  CHECK(rows[0]["body_dropped"] == true);
  CHECK(rows[0]["body_size"] > 1000);
  CHECK_FALSE(rows[0].contains("body"));
  CHECK_FALSE(rows[0].contains("body_error"));
  CHECK(rows[5]["body_dropped"] == true);
  CHECK(rows[6]["delivery_id"] == "d7");
  CHECK_FALSE(rows[6].contains("body_dropped"));
  CHECK(rows[6]["body"] == "{\"kept\":true}");
}

TEST_CASE("dropping a body rewrites every column of deliveries", "[inbox][retention]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  REQUIRE(Inbox::open({.path = path.string()}));
  auto db = store::Db::open(path.string());
  REQUIRE(db);
  auto q = db->prepare("SELECT name FROM pragma_table_info('deliveries') ORDER BY cid");
  REQUIRE(q);
  std::string names;
  while (q->step().value_or(false)) names += (names.empty() ? "" : ", ") + q->text(0);
  CHECK(names == kDeliveryColumns);
}

TEST_CASE("the space of dropped bodies is used again: the database file stops growing", "[inbox][retention]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  // No idle merge of delivery keys while this runs (it would add pages of its own).
  auto inbox = Inbox::open({.path = path.string(), .key_idle = std::chrono::hours(1)});
  REQUIRE(inbox);
  // Bodies that do not compress, ~3.6 KB each as a compressed GitHub pull request is.
  std::uint64_t x = 88172645463325252ULL;
  const auto body = [&x] {
    std::string s(3600, ' ');
    for (auto& c : s) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>('a' + x % 26);
    }
    return s;
  };
  const auto store_batch = [&](int from) {
    std::vector<std::future<StoreResult>> results;
    std::vector<std::promise<StoreResult>> promises(400);
    for (int i = 0; i < 400; ++i) {
      results.push_back(promises[i].get_future());
      (*inbox)->store({"github", "id-" + std::to_string(from + i), "push", "", body()},
                      [&promises, i](StoreResult r, const std::string&) { promises[i].set_value(r); });
    }
    for (auto& r : results) REQUIRE(r.get() == StoreResult::stored);
  };
  store_batch(0);
  const std::int64_t pages = scalar(path, "PRAGMA page_count");
  std::vector<DeliveryOutcome> outcomes;
  for (std::int64_t id = 1; id <= 400; ++id) outcomes.push_back({id, "ignored"});
  retention_test::record(**inbox, std::move(outcomes));
  auto reader = store::Db::open(path.string());
  REQUIRE(reader);
  auto dropped = drop_old_bodies(*reader, **inbox, retention_test::now_ms() + 1, 1000);
  REQUIRE(dropped);
  CHECK(dropped->rows == 400);
  CHECK(dropped->bytes == 400 * 3600);
  CHECK(scalar(path, "PRAGMA freelist_count") > pages / 2);
  // As many deliveries again fit in the pages freed.
  store_batch(400);
  CHECK(scalar(path, "PRAGMA page_count") <= pages + 2);
  CHECK(count_rows(path) == 800);
}

TEST_CASE("the normaliser drops old bodies while idle, and only of deliveries done with", "[inbox][retention]") {
  TempDir dir;
  const auto path = dir.path / "t.db";
  auto inbox = Inbox::open({.path = path.string()});
  REQUIRE(inbox);
  Normalizer normalizer(path.string(), {{"github", tollgate::webhooks::HostKind::github}});
  normalizer.keep_bodies(std::chrono::milliseconds(1));
  // Not JSON: the normaliser records it as failed. A ping: ignored. A merged pull request: normalised, and
  // (with no engine here) never applied, so it keeps its body and so does what comes after it.
  REQUIRE(store_sync(**inbox, {"github", "a", "push", "", "not json"}) == StoreResult::stored);
  REQUIRE(store_sync(**inbox, {"github", "b", "ping", "", "{\"zen\":\"x\"}"}) == StoreResult::stored);
  const std::string push = tollgate::webhooks::test::fixture("github", "pull_request.closed.merged.json").dump();
  REQUIRE(store_sync(**inbox, {"github", "c", "pull_request", "acme/app", push}) == StoreResult::stored);
  REQUIRE(store_sync(**inbox, {"github", "d", "ping", "", "{\"zen\":\"y\"}"}) == StoreResult::stored);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  normalizer.start(**inbox);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::int64_t through = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    through = scalar(path, "SELECT through FROM delivery_bodies_dropped");
    if (through >= 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  normalizer.stop();
  CHECK(through == 2);
  CHECK(scalar(path, "SELECT COUNT(*) FROM delivery_outcomes") == 4);
  CHECK(scalar(path, "SELECT state = 'normalized' FROM delivery_outcomes WHERE delivery = 3") == 1);
  CHECK(scalar(path, "SELECT length(body) FROM deliveries WHERE id = 1") == 0);
  CHECK(scalar(path, "SELECT length(body) FROM deliveries WHERE id = 2") == 0);
  CHECK(scalar(path, "SELECT length(body) FROM deliveries WHERE id = 3") == static_cast<std::int64_t>(push.size()));
  CHECK(scalar(path, "SELECT length(body) FROM deliveries WHERE id = 4") > 0);
}
