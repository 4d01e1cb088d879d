// The PostgreSQL layer (service/pg.hpp) and schema (service/pg_schema.hpp). The tests that need a
// server use TOLLGATE_TEST_POSTGRES (a libpq URL; tests/run.sh starts a PostgreSQL 15 on
// 127.0.0.1 and sets it); each works in a schema of its own, dropped at the end. Without it they
// are skipped with a warning, except under CI=true, where its absence is a failure.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <future>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "service/inbox.hpp"
#include "service/migrations.hpp"
#include "service/pg.hpp"
#include "service/pg_schema.hpp"
#include "service/sqlite.hpp"
#include "service/store.hpp"
#include "tests/service/retention_scenario.hpp"

using namespace tollgate::service;
namespace fs = std::filesystem;

namespace {

std::string server_url() {
  const char* url = std::getenv("TOLLGATE_TEST_POSTGRES");
  return url != nullptr ? url : "";
}

// False (after a warning) when there is no server to test against; fails the test under CI.
bool have_server() {
  if (!server_url().empty()) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") FAIL("CI=true but TOLLGATE_TEST_POSTGRES is not set (tests/run.sh starts a server)");
  WARN("TOLLGATE_TEST_POSTGRES is not set: skipping the tests that need a PostgreSQL server");
  return false;
}

// A connection whose search_path is a fresh schema of its own; the schema is dropped at the end.
struct Scratch {
  std::string schema;
  std::optional<pg::Db> db;
  Scratch() {
    static std::atomic<int> counter{0};
    schema = "tg_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    auto opened = pg::Db::open(server_url());
    if (!opened) FAIL(opened.error().message);
    db.emplace(std::move(*opened));
    REQUIRE(db->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE"));
    REQUIRE(db->exec("CREATE SCHEMA " + schema));
    REQUIRE(db->exec("SET search_path TO " + schema));
  }
  // A connection URL whose connections work in this schema (libpq's options parameter).
  std::string url() const {
    const std::string base = server_url();
    return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
  }
  // Another connection to the same schema.
  pg::Db connect() const {
    auto other = pg::Db::open(server_url());
    if (!other) FAIL(other.error().message);
    REQUIRE(other->exec("SET search_path TO " + schema));
    return std::move(*other);
  }
  ~Scratch() {
    if (db) (void)db->exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
};

std::vector<std::string> column_strings(pg::Db& db, const std::string& sql, const std::vector<std::string>& params = {}) {
  auto q = db.prepare(sql);
  if (!q) FAIL(q.error().message);
  for (std::size_t i = 0; i < params.size(); ++i) q->bind(static_cast<int>(i + 1), params[i]);
  std::vector<std::string> out;
  while (true) {
    auto row = q->step();
    if (!row) FAIL(row.error().message);
    if (!*row) break;
    out.push_back(q->text(0));
  }
  return out;
}

}  // namespace

TEST_CASE("pg: ? and ?N placeholders become $N, outside quotes and comments", "[pg]") {
  CHECK(pg::translate_placeholders("SELECT a FROM t WHERE b = ? AND c = ?") == "SELECT a FROM t WHERE b = $1 AND c = $2");
  CHECK(pg::translate_placeholders("WHERE o.delivery > ?1 AND x = ?1 || ?2") == "WHERE o.delivery > $1 AND x = $1 || $2");
  CHECK(pg::translate_placeholders("SELECT '?', \"a?b\", ? -- why?\n, ?") == "SELECT '?', \"a?b\", $1 -- why?\n, $2");
  CHECK(pg::translate_placeholders("SELECT 'it''s ?', ?") == "SELECT 'it''s ?', $1");
  CHECK(pg::translate_placeholders("no placeholders") == "no placeholders");
}

TEST_CASE("pg: passwords are redacted from connection strings", "[pg]") {
  CHECK(pg::redact("postgres://tollgate:s3cret@db.example:5432/tollgate") == "postgres://tollgate:***@db.example:5432/tollgate");
  CHECK(pg::redact("postgresql://tollgate@db/tollgate?sslmode=require&password=s3cret") ==
        "postgresql://tollgate@db/tollgate?sslmode=require&password=***");
  CHECK(pg::redact("host=db user=tollgate password=s3cret dbname=x") == "host=db user=tollgate password=*** dbname=x");
  CHECK(pg::redact("postgres://db.example/tollgate") == "postgres://db.example/tollgate");
}

TEST_CASE("pg: a server that is not there is a clear error without the password", "[pg]") {
  auto db = pg::Db::open("postgres://tollgate:s3cret@127.0.0.1:1/tollgate?connect_timeout=5");
  REQUIRE_FALSE(db);
  CHECK_THAT(db.error().message, Catch::Contains("cannot connect to PostgreSQL at 'postgres://tollgate:***@127.0.0.1:1/tollgate"));
  CHECK_THAT(db.error().message, !Catch::Contains("s3cret"));
}

TEST_CASE("pg: migrations build the SQLite store's tables, columns and indexes, once", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  auto version = pg::migrate(*s.db);
  REQUIRE(version);
  CHECK(*version == static_cast<int>(kMigrations.size()));
  auto again = pg::migrate(*s.db);
  REQUIRE(again);
  CHECK(*again == *version);
  CHECK(column_strings(*s.db, "SELECT name FROM schema_migrations ORDER BY version") ==
        std::vector<std::string>(kMigrations.begin(), kMigrations.end()));

  // The same migrations on SQLite, then both schemas side by side.
  const auto file = fs::temp_directory_path() / ("tollgate-pg-test-" + std::to_string(::getpid()) + ".db");
  fs::remove(file);
  std::map<std::string, std::vector<std::string>> lite_tables;
  std::vector<std::string> lite_indexes;
  {
    auto lite = store::Db::open(file.string());
    REQUIRE(lite);
    auto v = migrate(*lite);
    REQUIRE(v);
    CHECK(*v == *version);
    auto tables = lite->prepare(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name");
    REQUIRE(tables);
    std::vector<std::string> names;
    while (*tables->step()) names.push_back(tables->text(0));
    for (const auto& t : names) {
      auto cols = lite->prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid");
      REQUIRE(cols);
      cols->bind(1, t);
      while (*cols->step()) lite_tables[t].push_back(cols->text(0));
    }
    auto idx = lite->prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name");
    REQUIRE(idx);
    while (*idx->step()) lite_indexes.push_back(idx->text(0));
  }
  fs::remove(file);
  std::map<std::string, std::vector<std::string>> pg_tables;
  for (const auto& t : column_strings(*s.db, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name",
                                      {s.schema})) {
    pg_tables[t] = column_strings(
        *s.db, "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        {s.schema, t});
  }
  // PostgreSQL's runs carry SQLite's implicit rowid as a column (runs has a TEXT primary key).
  auto& runs_columns = pg_tables["runs"];
  CHECK(std::count(runs_columns.begin(), runs_columns.end(), "rowid") == 1);
  runs_columns.erase(std::remove(runs_columns.begin(), runs_columns.end(), "rowid"), runs_columns.end());
  // SQLite's replay detection keeps keys in tables of its own (migration 0005, Inbox::Keys), which
  // relies on one writer; PostgreSQL recognises replays by the deliveries' UNIQUE constraint, and
  // has no use for them. Every other table is the same on both.
  for (const char* sqlite_only : {"delivery_keys", "delivery_keys_merged"}) {
    CHECK(lite_tables.erase(sqlite_only) == 1);
    CHECK(pg_tables.count(sqlite_only) == 0);
  }
  CHECK(pg_tables == lite_tables);
  // Indexes by name, less the ones PostgreSQL makes for primary keys and UNIQUE constraints
  // (SQLite's are automatic too and have no SQL).
  auto pg_indexes = column_strings(*s.db,
                                   "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND indexname NOT LIKE '%\\_pkey' "
                                   "AND indexname NOT LIKE '%\\_key' ORDER BY indexname",
                                   {s.schema});
  CHECK(pg_indexes == lite_indexes);
}

TEST_CASE("pg: statements round-trip bytes, numbers and NULL; ON CONFLICT and unique violations", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  REQUIRE(pg::migrate(*s.db));
  const std::string body("\x00\x01\xff\xfe{\"a\":\"\\u00e9\"}\n\x00", 19);
  auto insert = s.db->prepare(
      "INSERT INTO deliveries (host, delivery_id, event, repo, received_at, body, body_encoding, body_size) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, delivery_id) DO NOTHING");
  REQUIRE(insert);
  const std::int64_t big = 4'102'444'800'000;  // 2100-01-01 in unix milliseconds: beyond 32 bits
  insert->bind(1, "github").bind(2, "d-1").bind(3, "push").bind(4, "acme/app").bind(5, big);
  insert->bind_blob(6, body).bind(7, "identity").bind_null(8);
  REQUIRE(insert->step());
  CHECK(s.db->changes() == 1);
  insert->reset();
  insert->bind(1, "github").bind(2, "d-1").bind(3, "push").bind(4, "acme/app").bind(5, big);
  insert->bind_blob(6, body).bind(7, "identity").bind_null(8);
  REQUIRE(insert->step());
  CHECK(s.db->changes() == 0);  // the same (host, delivery id): not stored twice

  auto read = s.db->prepare("SELECT id, body, received_at, body_size, repo FROM deliveries WHERE delivery_id = ?1 AND host = ?2");
  REQUIRE(read);
  read->bind(1, "d-1").bind(2, "github");
  auto row = read->step();
  REQUIRE(row);
  REQUIRE(*row);
  CHECK(read->int64(0) >= 1);
  CHECK(read->text(1) == body);
  CHECK(read->int64(2) == big);
  CHECK(read->is_null(3));
  CHECK_FALSE(read->is_null(4));
  CHECK(read->text(4) == "acme/app");
  auto more = read->step();
  REQUIRE(more);
  CHECK_FALSE(*more);

  auto plain = s.db->prepare("INSERT INTO deliveries (host, delivery_id, event, received_at, body) VALUES (?, ?, ?, ?, ?)");
  REQUIRE(plain);
  plain->bind(1, "github").bind(2, "d-1").bind(3, "push").bind(4, std::int64_t{1}).bind_blob(5, "x");
  auto dup = plain->step();
  REQUIRE_FALSE(dup);
  CHECK(dup.error().sqlstate == "23505");
  CHECK_THAT(dup.error().message, Catch::Contains("deliveries_host_delivery_id_key"));

  auto bad = s.db->prepare("SELECT nope FROM deliveries");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().sqlstate == "42703");
}

TEST_CASE("pg: run_refs match owner/name case-insensitively, as hosts do", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  REQUIRE(pg::migrate(*s.db));
  REQUIRE(s.db->exec("INSERT INTO runs (id, host, repo, pipeline, status, definition, definition_sha, state, created_at, updated_at) "
                     "VALUES ('r1', 'github', 'Acme/App', 'p', 'running', '', '', '{}', 1, 1)"));
  REQUIRE(s.db->exec("INSERT INTO run_refs (host, repo, kind, ref, run_id, stage) VALUES ('github', 'Acme/Env-Dev', 'pr', '7', 'r1', 'dev')"));
  CHECK(column_strings(*s.db, "SELECT run_id FROM run_refs WHERE host = ? AND repo = ? AND kind = 'pr' AND ref = ?",
                       {"github", "acme/env-dev", "7"}) == std::vector<std::string>{"r1"});
  // The primary key is case-insensitive too: the same ref under another spelling is a duplicate.
  auto dup = s.db->exec("INSERT INTO run_refs (host, repo, kind, ref, run_id, stage) VALUES ('github', 'ACME/ENV-DEV', 'pr', '7', 'r1', 'dev')");
  REQUIRE_FALSE(dup);
  CHECK(dup.error().sqlstate == "23505");
}

TEST_CASE("pg: replicas migrating at once each end at the latest version, every migration applied once", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  constexpr int kReplicas = 4;
  std::vector<std::string> results(kReplicas);
  std::vector<pg::Db> dbs;
  for (int i = 0; i < kReplicas; ++i) dbs.push_back(s.connect());
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] {
      auto v = pg::migrate(dbs[static_cast<std::size_t>(i)]);
      results[static_cast<std::size_t>(i)] = v ? std::to_string(*v) : v.error();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) CHECK(r == std::to_string(kMigrations.size()));
  CHECK(column_strings(*s.db, "SELECT COUNT(*) FROM schema_migrations") == std::vector<std::string>{std::to_string(kMigrations.size())});
}

TEST_CASE("pg: a database from a newer tollgate is refused, not changed", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  REQUIRE(pg::migrate(*s.db));
  REQUIRE(s.db->exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future.sql', 0)"));
  auto v = pg::migrate(*s.db);
  REQUIRE_FALSE(v);
  CHECK_THAT(v.error(), Catch::Contains("schema version 99") && Catch::Contains("newer tollgate"));
}

TEST_CASE("pg: the inbox on PostgreSQL: two inboxes (replicas) store each (host, delivery id) once", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  auto first = Inbox::open({.path = s.url()});
  REQUIRE(first);
  CHECK((*first)->schema_version() == static_cast<int>(kMigrations.size()));
  auto second = Inbox::open({.path = s.url()});
  REQUIRE(second);
  const auto store_sync = [](Inbox& inbox, StoredDelivery d) {
    std::promise<StoreResult> p;
    auto f = p.get_future();
    inbox.store(std::move(d), [&p](StoreResult r, const std::string&) { p.set_value(r); });
    return f.get();
  };
  // Every id sent to both replicas at once, from several threads each.
  constexpr int kThreads = 4, kIds = 150;
  std::atomic<int> stored{0}, duplicates{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2 * kThreads; ++t) {
    threads.emplace_back([&, t] {
      Inbox& inbox = t % 2 == 0 ? **first : **second;
      for (int i = t / 2; i < kIds; i += kThreads) {
        const std::string body = "{\"n\":" + std::to_string(i) + "}";
        switch (store_sync(inbox, {"github", "id-" + std::to_string(i), "push", "acme/app", body})) {
          case StoreResult::stored: ++stored; break;
          case StoreResult::duplicate: ++duplicates; break;
          case StoreResult::failed: ++failed; break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failed == 0);
  CHECK(stored == kIds);
  CHECK(duplicates == kIds);
  CHECK(column_strings(*s.db, "SELECT COUNT(*) FROM deliveries") == std::vector<std::string>{std::to_string(kIds)});
  CHECK(column_strings(*s.db, "SELECT body FROM deliveries WHERE delivery_id = 'id-7'") == std::vector<std::string>{"{\"n\":7}"});
  CHECK((*first)->depth() == kIds);
  CHECK((*first)->reachable());
}

TEST_CASE("pg: a connection the server ended is opened again; a transaction it was in fails until rolled back", "[pg][server]") {
  if (!have_server()) return;
  Scratch s;
  REQUIRE(s.db->exec("CREATE TABLE t (v INTEGER)"));
  auto opened = pg::Db::open(s.url());  // search_path from the URL: it survives a reconnection
  REQUIRE(opened);
  pg::Db& db = *opened;
  const auto pid_of = [](pg::Db& d) { return column_strings(d, "SELECT pg_backend_pid()::text").at(0); };
  auto insert = db.prepare("INSERT INTO t (v) VALUES (?)");
  REQUIRE(insert);
  const auto session = db.session();
  const auto terminate = [&](const std::string& pid) {
    CHECK(column_strings(*s.db, "SELECT pg_terminate_backend(" + pid + ")::text") == std::vector<std::string>{"true"});
    // The server ends the session at once; wait until it is gone.
    for (int i = 0; i < 100; ++i) {
      if (column_strings(*s.db, "SELECT COUNT(*)::text FROM pg_stat_activity WHERE pid = " + pid) == std::vector<std::string>{"0"}) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };

  // Outside a transaction: the statement after the loss fails (the server is gone mid-request), the
  // next one runs on a new session, with the statement prepared before prepared again.
  const std::string first = pid_of(db);
  terminate(first);
  if (auto probe = db.prepare("SELECT 1")) (void)probe->step();  // may fail: libpq notices the loss here
  insert->reset();
  insert->bind(1, std::int64_t{1});
  auto ran = insert->step();
  if (!ran) {  // noticed only now: the next try reconnects
    insert->reset();
    insert->bind(1, std::int64_t{1});
    ran = insert->step();
  }
  REQUIRE(ran);
  CHECK(pid_of(db) != first);
  CHECK(db.session() > session);

  // Inside a transaction: what was written is gone with the session, and the rest of the
  // transaction does not run on its own: statements fail until ROLLBACK.
  REQUIRE(db.exec("BEGIN"));
  insert->reset();
  insert->bind(1, std::int64_t{2});
  REQUIRE(insert->step());
  terminate(pid_of(db));
  insert->reset();
  insert->bind(1, std::int64_t{3});
  CHECK_FALSE(insert->step());  // the broken connection, or the transaction that is lost
  insert->reset();
  insert->bind(1, std::int64_t{4});
  auto after = insert->step();
  REQUIRE_FALSE(after);
  CHECK(after.error().sqlstate == "08006");
  CHECK_THAT(after.error().message, Catch::Contains("lost during this transaction"));
  auto commit = db.exec("COMMIT");
  REQUIRE_FALSE(commit);
  REQUIRE(db.exec("ROLLBACK"));
  insert->reset();
  insert->bind(1, std::int64_t{5});
  REQUIRE(insert->step());
  CHECK(column_strings(*s.db, "SELECT string_agg(v::text, ',' ORDER BY v) FROM t") == std::vector<std::string>{"1,5"});
}

TEST_CASE("pg: replica locks are per schema: two deployments in one database never wait for each other", "[pg][server]") {
  if (!have_server()) return;
  Scratch a, b;
  auto open = [](const std::string& url) {
    auto d = store::Db::open(url);
    if (!d) FAIL(store::describe(d.error()));
    return std::move(*d);
  };
  store::Db a1 = open(a.url()), a2 = open(a.url()), b1 = open(b.url());
  auto got = store::try_lock(a1, "tollgate:events");
  REQUIRE(got);
  CHECK(*got);
  got = store::try_lock(a2, "tollgate:events");  // the same schema: another replica
  REQUIRE(got);
  CHECK_FALSE(*got);
  got = store::try_lock(b1, "tollgate:events");  // another deployment
  REQUIRE(got);
  CHECK(*got);
  REQUIRE(store::unlock(a1, "tollgate:events"));
  got = store::try_lock(a2, "tollgate:events");
  REQUIRE(got);
  CHECK(*got);
}

TEST_CASE("pg: old bodies of deliveries done with are dropped in id order; the rows and replay detection stay", "[pg][server][retention]") {
  if (!have_server()) return;
  Scratch s;
  auto inbox = Inbox::open({.path = s.url()});
  REQUIRE(inbox);
  auto reader = store::Db::open(s.url());
  REQUIRE(reader);
  retention_test::check_dropping(**inbox, *reader);
}
