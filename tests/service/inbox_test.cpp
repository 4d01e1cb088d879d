#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "service/inbox.hpp"
#include "service/sqlite.hpp"

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

std::int64_t count_rows(const fs::path& db_path, const std::string& where = "1") {
  auto db = sqlite::Db::open(db_path.string());
  auto stmt = db->prepare("SELECT COUNT(*) FROM deliveries WHERE " + where);
  REQUIRE(stmt);
  auto row = stmt->step();
  REQUIRE((row && *row));
  return stmt->int64(0);
}

}  // namespace

TEST_CASE("a stored delivery is committed before store() reports it, once per id", "[inbox]") {
  TempDir dir;
  auto db = dir.path / "t.db";
  auto inbox = Inbox::open({.path = db.string()});
  REQUIRE(inbox);
  CHECK((*inbox)->schema_version() == 1);
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
    CHECK((*inbox)->schema_version() == 1);
  }
  CHECK(count_rows(path) == 1);
  {
    auto db = sqlite::Db::open(path);
    REQUIRE(db->exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"));
  }
  auto newer = Inbox::open({.path = path});
  REQUIRE_FALSE(newer);
  CHECK(newer.error().find("schema version 99 but this tollgate knows only 1") != std::string::npos);
  auto bad = Inbox::open({.path = (dir.path / "missing-dir" / "t.db").string()});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("missing-dir") != std::string::npos);
}
