#include <atomic>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "pipeline/engine.hpp"
#include "service/api.hpp"
#include "service/inbox.hpp"
#include "service/migrations.hpp"
#include "service/run_store.hpp"
#include "service/store.hpp"

namespace tollgate_migrations {
std::string_view embedded(std::string_view name);
}

using namespace tollgate::service;
using namespace tollgate::pipeline;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using runs::Instant;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("tollgate-runs-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
};

// A migrated database: a SQLite file in a temp dir, with foreign keys on as the inbox opens it;
// or, with TOLLGATE_TEST_STORE=postgres, a schema of its own on the PostgreSQL server at
// TOLLGATE_TEST_POSTGRES (ctest run_store_on_postgres), dropped at the end.
struct Store {
  TempDir dir;
  std::string schema;
  store::Db db;
  Store() : db(open(dir, schema)) {}
  ~Store() {
    if (!schema.empty()) (void)db.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
  }
  static bool on_postgres() {
    const char* s = std::getenv("TOLLGATE_TEST_STORE");
    return s != nullptr && std::string(s) == "postgres";
  }
  // Another connection to the same store (another process, or a replica).
  store::Db connect() const {
    const char* url = std::getenv("TOLLGATE_TEST_POSTGRES");
    const std::string base = url != nullptr ? url : "";
    auto opened = schema.empty() ? store::Db::open((dir.path / "t.db").string())
                                 : store::Db::open(base + (base.find('?') == std::string::npos ? "?" : "&") +
                                                   "options=-csearch_path%3D" + schema);
    if (!opened) FAIL(store::describe(opened.error()));
    return std::move(*opened);
  }
  static store::Db open(const TempDir& d, std::string& schema) {
    if (on_postgres()) {
      const char* url = std::getenv("TOLLGATE_TEST_POSTGRES");
      if (url == nullptr) FAIL("TOLLGATE_TEST_STORE=postgres needs TOLLGATE_TEST_POSTGRES");
      schema = "tg_rs_" + std::to_string(::getpid()) + "_" + std::to_string(TempDir::counter()++);
      auto admin = store::Db::open(url);
      if (!admin) FAIL(store::describe(admin.error()));
      REQUIRE(admin->exec("CREATE SCHEMA " + schema));
      const std::string base(url);
      auto db = store::Db::open(base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema);
      if (!db) FAIL(store::describe(db.error()));
      auto v = migrate(*db);
      if (!v) FAIL(v.error());
      CHECK(*v == static_cast<int>(kMigrations.size()));
      return std::move(*db);
    }
    auto db = store::Db::open((d.path / "t.db").string());
    REQUIRE(db);
    REQUIRE(db->exec("PRAGMA foreign_keys=ON"));
    auto v = migrate(*db);
    REQUIRE(v);
    CHECK(*v == static_cast<int>(kMigrations.size()));
    return std::move(*db);
  }
  std::int64_t count(const std::string& sql) {
    auto s = db.prepare(sql);
    REQUIRE(s);
    auto row = s->step();
    REQUIRE((row && *row));
    return s->int64(0);
  }
  std::string text(const std::string& sql) {
    auto s = db.prepare(sql);
    REQUIRE(s);
    auto row = s->step();
    REQUIRE((row && *row));
    return s->is_null(0) ? "NULL" : s->text(0);
  }
};

// Monday 2026-11-23 10:00 UTC.
const TimePoint kT0 = TimePoint{std::chrono::seconds{1795392000}} + 10h;

Stage stage(std::string name, std::vector<std::string> after, std::string repo) {
  Stage s;
  s.name = std::move(name);
  s.after = std::move(after);
  s.repo = std::move(repo);
  return s;
}

// dev (acme/env-dev) then qa (acme/env-qa), no gates: dev merges as soon as its PR is open.
Pipeline two_stages() {
  Pipeline p;
  p.name = "payments";
  p.stages = {stage("dev", {}, "acme/env-dev"), stage("qa", {"dev"}, "acme/env-qa")};
  return p;
}

std::string sha(char c) { return std::string(40, c); }

Context cx(TimePoint now) { return Context{now, nullptr, EngineOptions{}}; }

runs::RunRecord record(const Pipeline& def, const std::string& id, TimePoint created) {
  runs::RunRecord r;
  r.id = id;
  r.host = "github";
  r.repo = "acme/payments";
  r.pipeline = def.name;
  r.definition = "version: 1\npipelines: []\n";
  r.definition_sha = sha('d');
  r.state = make_run(def, id, SourceFacts{"acme/payments", "main", sha('s'), 7, "dave"}, {{"version", "abc1234"}}, created);
  r.created_at = created;
  return r;
}

// A run in the store, started: the start step saved under input "api:start-<id>".
struct Run {
  Pipeline def = two_stages();
  runs::RunRecord meta;
  RunState state;
  TimePoint now = kT0;
  std::vector<Transition> audit;

  Run(store::Db& db, const std::string& id, TimePoint created = kT0) : now(created) {
    meta = record(def, id, created);
    REQUIRE(runs::insert_run(db, meta));
    state = meta.state;
    apply_step(db, start_run(def, state, cx(now)), "api:start-" + id);
  }

  runs::SaveResult apply_step(store::Db& db, const Step& step, const std::string& key) {
    auto saved = runs::save_step(db, meta, step, key, now, runs::stage_repos(def));
    REQUIRE(saved);
    state = step.run;
    audit.insert(audit.end(), step.transitions.begin(), step.transitions.end());
    return *saved;
  }
  runs::SaveResult in(store::Db& db, const Input& input, const std::string& key) {
    return apply_step(db, apply(def, state, input, cx(now)), key);
  }
};

JobResult prepared(const std::string& st, const std::string& head) {
  JobResult r;
  r.kind = JobKind::prepare_branch;
  r.stage = st;
  r.outcome = JobResult::Outcome::ok;
  r.sha = head;
  return r;
}

JobResult opened(const std::string& st, std::int64_t pr, const std::string& head) {
  JobResult r;
  r.kind = JobKind::open_pr;
  r.stage = st;
  r.outcome = JobResult::Outcome::ok;
  r.pr = pr;
  r.sha = head;
  return r;
}

Job job(JobKind kind, std::string key, std::optional<TimePoint> at = std::nullopt) {
  Job j;
  j.kind = kind;
  j.key = std::move(key);
  j.stage = "dev";
  j.at = at;
  if (kind == JobKind::timer) j.timer = "soak";
  return j;
}

// Schedules `jobs` for the run, with its state unchanged.
runs::SaveResult schedule(store::Db& db, Run& run, std::vector<Job> jobs, const std::string& key) {
  Step s;
  s.run = run.state;
  s.jobs = std::move(jobs);
  return run.apply_step(db, s, key);
}

std::vector<std::string> keys(const runs::Claim& c) {
  std::vector<std::string> out;
  for (const auto& j : c.jobs) out.push_back(j.key);
  return out;
}

runs::Claim claim(store::Db& db, Instant now, const std::string& owner, std::chrono::milliseconds lease = 30s,
                  std::size_t limit = 10) {
  auto c = runs::claim_jobs(db, now, owner, lease, limit);
  REQUIRE(c);
  CHECK(c->broken.empty());
  return std::move(*c);
}

}  // namespace

TEST_CASE("migration 3 applies to a database at version 2 and keeps its deliveries", "[run_store]") {
  TempDir dir;
  auto path = (dir.path / "v2.db").string();
  {
    auto db = store::Db::open(path);
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
    REQUIRE(db->exec(std::string(tollgate_migrations::embedded("0001_inbox.sql"))));
    REQUIRE(db->exec(std::string(tollgate_migrations::embedded("0002_outcomes.sql"))));
    REQUIRE(db->exec("INSERT INTO schema_migrations VALUES (1, '0001_inbox.sql', 0), (2, '0002_outcomes.sql', 0)"));
    REQUIRE(db->exec("INSERT INTO deliveries (host, delivery_id, event, received_at, body, body_size) "
                     "VALUES ('github', 'a', 'push', 1, '{}', 2), ('github', 'b', 'pull_request', 2, '{\"x\":1}', 7)"));
    REQUIRE(db->exec("INSERT INTO delivery_outcomes VALUES (1, 'normalized', '{}', NULL, 5)"));
  }
  auto db = store::Db::open(path);
  REQUIRE(db);
  auto v = migrate(*db);
  REQUIRE(v);
  CHECK(*v == static_cast<int>(kMigrations.size()));
  auto again = migrate(*db);
  REQUIRE(again);
  CHECK(*again == static_cast<int>(kMigrations.size()));
  auto q = db->prepare("SELECT delivery_id || ' ' || state || ' ' || body FROM inbox ORDER BY id");
  REQUIRE(q);
  std::vector<std::string> rows;
  while (auto step = q->step()) {
    if (!*step) break;
    rows.push_back(q->text(0));
  }
  CHECK(rows == std::vector<std::string>{"a normalized {}", "b new {\"x\":1}"});
  // The new tables are there and usable.
  REQUIRE(runs::try_consume(*db, "delivery:1", kT0));
  auto none = runs::load_run(*db, "nope");
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
}

TEST_CASE("an input is consumed once", "[run_store]") {
  Store s;
  auto first = runs::try_consume(s.db, "delivery:42", kT0);
  REQUIRE(first);
  CHECK(*first);
  auto second = runs::try_consume(s.db, "delivery:42", kT0 + 1s);
  REQUIRE(second);
  CHECK_FALSE(*second);
  auto other = runs::try_consume(s.db, "job:42", kT0);
  REQUIRE(other);
  CHECK(*other);
  CHECK(s.count("SELECT at FROM consumed WHERE key = 'delivery:42'") == Instant{kT0}.time_since_epoch().count());
  CHECK_FALSE(runs::try_consume(s.db, "", kT0));
}

TEST_CASE("a run's state round-trips through save_step and load_run", "[run_store]") {
  Store s;
  Run run(s.db, "r1");
  auto loaded = runs::load_run(s.db, "r1");
  REQUIRE(loaded);
  REQUIRE(loaded->has_value());
  const auto& r = **loaded;
  CHECK(r.state == run.state);
  CHECK(r.state.status == RunStatus::running);
  CHECK(r.state.stage("dev")->status == StageStatus::preparing);
  CHECK(r.host == "github");
  CHECK(r.repo == "acme/payments");
  CHECK(r.pipeline == "payments");
  CHECK(r.definition == run.meta.definition);
  CHECK(r.definition_sha == sha('d'));
  CHECK(r.created_at == Instant{kT0});
  CHECK(r.updated_at == Instant{kT0});
  CHECK_FALSE(r.finished_at);
  CHECK(s.text("SELECT status FROM runs WHERE id = 'r1'") == "running");

  // Further steps, with state the engine keeps (head, PR, timers), still round-trip.
  run.now += 5s;
  run.in(s.db, prepared("dev", sha('h')), "job:1");
  run.in(s.db, opened("dev", 11, sha('h')), "job:2");
  loaded = runs::load_run(s.db, "r1");
  REQUIRE(loaded);
  REQUIRE(loaded->has_value());
  CHECK((*loaded)->state == run.state);
  CHECK((*loaded)->state.stage("dev")->pr == 11);
  CHECK((*loaded)->updated_at == Instant{kT0 + 5s});

  // The start step's prepare_branch job, stored as JSON, comes back equal.
  auto c = claim(s.db, kT0 + 1h, "w1");
  REQUIRE_FALSE(c.jobs.empty());
  const auto& first = c.jobs.front();
  CHECK(first.job.kind == JobKind::prepare_branch);
  CHECK(first.run_id == "r1");
  CHECK(first.job.stage == "dev");
  CHECK(first.attempts == 1);

  SECTION("an aborted run is finished and no longer in flight") {
    auto inflight = runs::in_flight_runs(s.db, "github", "acme/payments", "payments");
    REQUIRE(inflight);
    REQUIRE(inflight->size() == 1);
    run.now += 1min;
    run.in(s.db, ApiAction{ApiAction::Kind::abort, "", "alice", "not today"}, "api:abort");
    CHECK(run.state.status == RunStatus::aborted);
    auto done = runs::load_run(s.db, "r1");
    REQUIRE(done);
    REQUIRE((*done)->finished_at);
    CHECK(*(*done)->finished_at == Instant{kT0 + 5s + 1min});
    CHECK(s.text("SELECT status FROM runs WHERE id = 'r1'") == "aborted");
    inflight = runs::in_flight_runs(s.db, "github", "acme/payments", "payments");
    REQUIRE(inflight);
    CHECK(inflight->empty());
    auto aborted = runs::list_runs(s.db, 10, RunStatus::aborted);
    REQUIRE(aborted);
    REQUIRE(aborted->size() == 1);
    CHECK(aborted->front().id == "r1");
    auto running = runs::list_runs(s.db, 10, RunStatus::running);
    REQUIRE(running);
    CHECK(running->empty());
  }
}

TEST_CASE("insert_run and save_step refuse inconsistent runs", "[run_store]") {
  Store s;
  Pipeline def = two_stages();
  auto r = record(def, "r1", kT0);
  r.state.id = "other";
  auto bad = runs::insert_run(s.db, r);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().find("'r1'") != std::string::npos);
  r = record(def, "r1", kT0);
  REQUIRE(runs::insert_run(s.db, r));
  auto twice = runs::insert_run(s.db, r);
  REQUIRE_FALSE(twice);
  CHECK((twice.error().find("UNIQUE") != std::string::npos || twice.error().find("duplicate key") != std::string::npos));

  auto ghost = record(def, "ghost", kT0);
  Step step = start_run(def, ghost.state, cx(kT0));
  auto missing = runs::save_step(s.db, ghost, step, "k", kT0, runs::stage_repos(def));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().find("no such run") != std::string::npos);
  auto mixed = runs::save_step(s.db, r, step, "k", kT0, runs::stage_repos(def));
  REQUIRE_FALSE(mixed);
  CHECK(mixed.error().find("'ghost'") != std::string::npos);
}

TEST_CASE("the audit log numbers a run's transitions without gaps across saves", "[run_store]") {
  Store s;
  Run r1(s.db, "r1");
  Run r2(s.db, "r2");  // interleaved: its numbering is its own
  r1.now += 1s;
  r1.in(s.db, prepared("dev", sha('h')), "job:1");
  r2.in(s.db, prepared("dev", sha('i')), "job:2");
  r1.now += 1s;
  r1.in(s.db, opened("dev", 11, sha('h')), "job:3");
  r1.now += 1s;
  auto none = r1.in(s.db, opened("dev", 11, sha('h')), "job:4");  // applied twice: no transition
  CHECK(none.audited == 0);
  r1.in(s.db, ApiAction{ApiAction::Kind::abort, "", "alice", "stop"}, "api:x");

  auto log = runs::audit_of(s.db, "r1");
  REQUIRE(log);
  REQUIRE(log->size() == r1.audit.size());
  REQUIRE(log->size() >= 4);
  for (std::size_t i = 0; i < log->size(); ++i) {
    const auto& row = (*log)[i];
    CHECK(row.seq == static_cast<std::int64_t>(i + 1));
    CHECK(row.stage == r1.audit[i].stage);
    CHECK(row.from == r1.audit[i].from);
    CHECK(row.to == r1.audit[i].to);
    CHECK(row.actor == r1.audit[i].actor);
    CHECK(row.reason == r1.audit[i].reason);
  }
  CHECK(log->front().input == "api:start-r1");
  CHECK(log->front().at == Instant{kT0});
  CHECK(log->back().input == "api:x");
  CHECK(log->back().actor == "alice");
  CHECK(log->back().at == Instant{kT0 + 3s});
  auto log2 = runs::audit_of(s.db, "r2");
  REQUIRE(log2);
  REQUIRE(log2->size() == r2.audit.size());
  for (std::size_t i = 0; i < log2->size(); ++i) CHECK((*log2)[i].seq == static_cast<std::int64_t>(i + 1));
  CHECK(s.count("SELECT COUNT(*) FROM audit WHERE run_id = 'r1'") == static_cast<std::int64_t>(r1.audit.size()));
}

TEST_CASE("a job key is scheduled once", "[run_store]") {
  Store s;
  Run run(s.db, "r1");
  const auto before = s.count("SELECT COUNT(*) FROM jobs");
  auto first = schedule(s.db, run, {job(JobKind::reply, "reply:dev:5:r1"), job(JobKind::add_reaction, "react:dev:5:r1")},
                        "delivery:1");
  CHECK(first.scheduled == 2);
  CHECK(first.duplicate_jobs == 0);
  auto again = schedule(s.db, run, {job(JobKind::reply, "reply:dev:5:r1"), job(JobKind::close_pr, "close:dev:r1")},
                        "delivery:2");
  CHECK(again.scheduled == 1);
  CHECK(again.duplicate_jobs == 1);
  CHECK(s.count("SELECT COUNT(*) FROM jobs") == before + 3);
  // Once done, the same key is still not scheduled again.
  REQUIRE(runs::complete_job(s.db, 1, "nobody", kT0));  // not leased: nothing happens
  CHECK(s.text("SELECT state FROM jobs WHERE id = 1") == "pending");
  REQUIRE(s.db.exec("UPDATE jobs SET state = 'done'"));
  auto late = schedule(s.db, run, {job(JobKind::reply, "reply:dev:5:r1")}, "delivery:3");
  CHECK(late.scheduled == 0);
  CHECK(s.count("SELECT COUNT(*) FROM jobs WHERE state = 'pending'") == 0);
  // A job without a key cannot be deduplicated: refused.
  Step keyless;
  keyless.run = run.state;
  keyless.jobs = {job(JobKind::reply, "")};
  auto refused = runs::save_step(s.db, run.meta, keyless, "delivery:4", kT0, runs::stage_repos(run.def));
  REQUIRE_FALSE(refused);
  CHECK(refused.error().find("no idempotency key") != std::string::npos);
}

TEST_CASE("jobs are claimed when due, in due order, and come back when a lease runs out", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  Run b(s.db, "rb");
  REQUIRE(s.db.exec("DELETE FROM jobs"));  // only the jobs below
  const TimePoint t = kT0;
  // Timers of two runs, due at different times, scheduled out of order.
  schedule(s.db, a, {job(JobKind::timer, "timer:a:late", t + 60s)}, "k1");
  schedule(s.db, b, {job(JobKind::timer, "timer:b:soon", t + 10s)}, "k2");
  schedule(s.db, a, {job(JobKind::timer, "timer:a:soon", t + 10s)}, "k3");
  auto counts = runs::job_counts(s.db);
  REQUIRE(counts);
  CHECK(*counts == std::map<std::string, std::int64_t>{{"pending", 3}, {"leased", 0}, {"done", 0}, {"failed", 0}});
  auto next = runs::next_due(s.db);
  REQUIRE(next);
  CHECK(*next == Instant{t + 10s});

  CHECK(claim(s.db, t + 9s, "w1").jobs.empty());
  auto c = claim(s.db, t + 60s, "w1", 30s, 2);
  CHECK(keys(c) == std::vector<std::string>{"timer:b:soon", "timer:a:soon"});  // due_at, then id
  REQUIRE(c.jobs.size() == 2);
  CHECK(c.jobs[0].lease_until == Instant{t + 90s});
  CHECK(c.jobs[0].job.at == t + 10s);
  CHECK(c.jobs[0].due_at == Instant{t + 10s});
  CHECK(keys(claim(s.db, t + 60s, "w1", 1h)) == std::vector<std::string>{"timer:a:late"});
  next = runs::next_due(s.db);
  REQUIRE(next);
  CHECK(*next == Instant{t + 90s});  // the first leases' end
  counts = runs::job_counts(s.db);
  REQUIRE(counts);
  CHECK(counts->at("leased") == 3);

  // w1 completes one and "crashes" with the others: they come back once their lease is over.
  auto done = runs::complete_job(s.db, c.jobs[0].id, "w1", t + 61s);
  REQUIRE(done);
  CHECK(*done);
  CHECK(claim(s.db, t + 89s, "w2").jobs.empty());
  auto back = claim(s.db, t + 91s, "w2");
  REQUIRE(keys(back) == std::vector<std::string>{"timer:a:soon"});
  CHECK(back.jobs[0].attempts == 2);
  // The old owner can no longer finish it; the new one can.
  auto stale = runs::complete_job(s.db, back.jobs[0].id, "w1", t + 92s);
  REQUIRE(stale);
  CHECK_FALSE(*stale);
  auto stale_fail = runs::fail_job(s.db, back.jobs[0].id, "w1", "boom", t + 92s);
  REQUIRE(stale_fail);
  CHECK_FALSE(*stale_fail);
  auto mine = runs::fail_job(s.db, back.jobs[0].id, "w2", "boom", t + 92s);
  REQUIRE(mine);
  CHECK(*mine);
  CHECK(s.text("SELECT last_error FROM jobs WHERE key = 'timer:a:soon'") == "boom");
  CHECK(s.text("SELECT state FROM jobs WHERE key = 'timer:a:soon'") == "failed");
  // A completed job does not come back.
  CHECK(claim(s.db, t + 1h, "w3").jobs.empty());  // timer:a:late's lease runs to 1 h 1 min
  auto again = claim(s.db, t + 1h + 1min, "w3");
  CHECK(keys(again) == std::vector<std::string>{"timer:a:late"});

  // Retried: pending again, due later, with its error.
  auto retried = runs::retry_job(s.db, again.jobs[0].id, "w3", t + 2h, "host down");
  REQUIRE(retried);
  CHECK(*retried);
  next = runs::next_due(s.db);
  REQUIRE(next);
  CHECK(*next == Instant{t + 2h});
  CHECK(claim(s.db, t + 2h - 1s, "w4").jobs.empty());
  auto retry = claim(s.db, t + 2h, "w4");
  REQUIRE(retry.jobs.size() == 1);
  CHECK(retry.jobs[0].attempts == 3);
  CHECK(retry.jobs[0].last_error == "host down");
  REQUIRE(runs::complete_job(s.db, retry.jobs[0].id, "w4", t + 2h));
  counts = runs::job_counts(s.db);
  REQUIRE(counts);
  CHECK(*counts == std::map<std::string, std::int64_t>{{"pending", 0}, {"leased", 0}, {"done", 2}, {"failed", 1}});
  next = runs::next_due(s.db);
  REQUIRE(next);
  CHECK_FALSE(*next);
}

TEST_CASE("two processes claiming the same due job at once: one leases it, the other gets nothing", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  schedule(s.db, a, {job(JobKind::timer, "timer:a", kT0 + 10s)}, "k1");
  store::Db other = s.connect();
  std::atomic<int> claimed{0};
  std::string problems;
  std::mutex problems_mutex;
  // Each claims in a transaction of its own; the first holds its transaction open a while, so the
  // second claims while the first's lease is not yet committed.
  const auto claimer = [&](store::Db& db, const char* owner, std::chrono::milliseconds hold) {
    const auto fail = [&](const std::string& why) {
      std::lock_guard lock(problems_mutex);
      problems += std::string(owner) + ": " + why + "\n";
    };
    if (auto b = db.begin_write(); !b) return fail(store::describe(b.error()));
    auto c = runs::claim_jobs(db, kT0 + 20s, owner, 30s, 4);
    if (!c) {
      (void)db.exec("ROLLBACK");
      return fail(c.error());
    }
    std::this_thread::sleep_for(hold);
    if (auto r = db.exec("COMMIT"); !r) return fail(store::describe(r.error()));
    claimed += static_cast<int>(c->jobs.size());
  };
  std::thread first([&] { claimer(s.db, "w1", 300ms); });
  std::this_thread::sleep_for(50ms);
  std::thread second([&] { claimer(other, "w2", 0ms); });
  first.join();
  second.join();
  CHECK(problems.empty());
  CHECK(claimed == 1);
  CHECK(s.count("SELECT COUNT(*) FROM jobs WHERE state = 'leased' AND attempts = 1") == 1);
}

TEST_CASE("a run's side effects are claimed in the order scheduled; timers are not held back", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  Run b(s.db, "rb");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  const TimePoint t = kT0;
  schedule(s.db, a, {job(JobKind::set_commit_status, "status:a:1"), job(JobKind::upsert_sticky_comment, "sticky:a:1")},
           "k1");
  schedule(s.db, b, {job(JobKind::set_commit_status, "status:b:1")}, "k2");
  schedule(s.db, a, {job(JobKind::timer, "timer:a", t + 5s)}, "k3");

  // The first of run a and run b's job; a's second waits for a's first.
  auto c1 = claim(s.db, t + 10s, "w1");
  CHECK(keys(c1) == std::vector<std::string>{"status:a:1", "status:b:1", "timer:a"});
  // While the first is leased (live), the second is not claimed, and next_due does not point at it.
  CHECK(claim(s.db, t + 11s, "w2").jobs.empty());
  auto next = runs::next_due(s.db);
  REQUIRE(next);
  CHECK(*next == Instant{t + 40s});
  // A timer of the same run scheduled later is claimed regardless.
  schedule(s.db, a, {job(JobKind::timer, "timer:a:2", t + 12s)}, "k4");
  auto timer2 = claim(s.db, t + 12s, "w2");
  CHECK(keys(timer2) == std::vector<std::string>{"timer:a:2"});

  SECTION("the next one is claimed once the first is done") {
    REQUIRE(runs::complete_job(s.db, c1.jobs[0].id, "w1", t + 13s));
    CHECK(keys(claim(s.db, t + 13s, "w2")) == std::vector<std::string>{"sticky:a:1"});
  }
  SECTION("or failed") {
    REQUIRE(runs::fail_job(s.db, c1.jobs[0].id, "w1", "gone", t + 13s));
    CHECK(keys(claim(s.db, t + 13s, "w2")) == std::vector<std::string>{"sticky:a:1"});
  }
  SECTION("a retried first job keeps the second waiting through its backoff") {
    REQUIRE(runs::retry_job(s.db, c1.jobs[0].id, "w1", t + 60s, "502"));
    CHECK(claim(s.db, t + 13s, "w2").jobs.empty());
    next = runs::next_due(s.db);
    REQUIRE(next);
    CHECK(*next == Instant{t + 40s});  // the leases first, then the retry at 60 s
    REQUIRE(runs::complete_job(s.db, c1.jobs[1].id, "w1", t + 14s));
    REQUIRE(runs::complete_job(s.db, c1.jobs[2].id, "w1", t + 14s));
    REQUIRE(runs::complete_job(s.db, timer2.jobs[0].id, "w2", t + 14s));
    next = runs::next_due(s.db);
    REQUIRE(next);
    CHECK(*next == Instant{t + 60s});
    CHECK(claim(s.db, t + 59s, "w2").jobs.empty());
    auto c2 = claim(s.db, t + 60s, "w2");
    REQUIRE(keys(c2) == std::vector<std::string>{"status:a:1"});
    CHECK(c2.jobs[0].last_error == "502");
    REQUIRE(runs::complete_job(s.db, c2.jobs[0].id, "w2", t + 61s));
    CHECK(keys(claim(s.db, t + 61s, "w2")) == std::vector<std::string>{"sticky:a:1"});
  }
  SECTION("a crashed worker's first job comes back before the second") {
    auto c2 = claim(s.db, t + 41s, "w2");
    // timer:a:2's lease (w2's, until 42 s) still holds.
    CHECK(keys(c2) == std::vector<std::string>{"status:a:1", "status:b:1", "timer:a"});
    CHECK(c2.jobs[0].attempts == 2);
    CHECK(claim(s.db, t + 41s, "w3").jobs.empty());
    REQUIRE(runs::complete_job(s.db, c2.jobs[0].id, "w2", t + 42s));
    CHECK(keys(claim(s.db, t + 42s, "w3")) == std::vector<std::string>{"sticky:a:1", "timer:a:2"});
  }
}

TEST_CASE("webhooks find runs by PR and by commit; refs follow the state", "[run_store]") {
  Store s;
  Run run(s.db, "r1");
  Run other(s.db, "r2", kT0 + 1s);
  auto by_pr = [&](const std::string& repo, std::int64_t pr, const std::string& host = "github") {
    auto r = runs::runs_by_pr(s.db, host, repo, pr);
    REQUIRE(r);
    return *r;
  };
  auto by_sha = [&](const std::string& repo, const std::string& c, const std::string& host = "github") {
    auto r = runs::runs_by_sha(s.db, host, repo, c);
    REQUIRE(r);
    return *r;
  };
  using Ids = std::vector<std::string>;
  CHECK(by_pr("acme/env-dev", 11).empty());
  run.in(s.db, prepared("dev", sha('h')), "job:1");
  CHECK(by_sha("acme/env-dev", sha('h')) == Ids{"r1"});
  run.in(s.db, opened("dev", 11, sha('h')), "job:2");
  CHECK(by_pr("acme/env-dev", 11) == Ids{"r1"});
  CHECK(by_pr("Acme/Env-Dev", 11) == Ids{"r1"});  // owner/name case does not matter
  CHECK(by_pr("acme/env-qa", 11).empty());         // the stage's repo only
  CHECK(by_pr("acme/env-dev", 11, "gitlab").empty());
  CHECK(by_pr("acme/env-dev", 12).empty());

  // The head moves: the new head routes to the run, the old one no longer does.
  REQUIRE(run.state.stage("dev")->pr == 11);
  run.in(s.db, HeadChanged{"acme/env-dev", 11, sha('j')}, "delivery:7");
  REQUIRE(run.state.stage("dev")->head_sha == sha('j'));
  CHECK(by_sha("acme/env-dev", sha('j')) == Ids{"r1"});
  CHECK(by_sha("acme/env-dev", sha('h')).empty());
  CHECK(by_pr("acme/env-dev", 11) == Ids{"r1"});

  // Another run with the same PR number (it reused the branch's PR) and the same head: both, oldest first.
  other.in(s.db, prepared("dev", sha('j')), "job:3");
  other.in(s.db, opened("dev", 11, sha('j')), "job:4");
  CHECK(by_pr("acme/env-dev", 11) == Ids{"r1", "r2"});
  CHECK(by_sha("acme/env-dev", sha('j')) == Ids{"r1", "r2"});
  CHECK(s.count("SELECT COUNT(*) FROM run_refs WHERE run_id = 'r1'") == 2);

  // A stage with refs but no known repository is an error, not a run that webhooks never find.
  Step step;
  step.run = run.state;
  auto missing = runs::save_step(s.db, run.meta, step, "k", kT0, runs::StageRepos{{"qa", "acme/env-qa"}});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().find("stage 'dev'") != std::string::npos);
}

TEST_CASE("in-flight runs are the pipeline's queued and running runs, oldest first", "[run_store]") {
  Store s;
  Pipeline def = two_stages();
  REQUIRE(runs::insert_run(s.db, record(def, "z-first", kT0)));
  REQUIRE(runs::insert_run(s.db, record(def, "a-second", kT0 + 1s)));
  REQUIRE(runs::insert_run(s.db, record(def, "m-third", kT0 + 1s)));  // same time: insertion order
  auto elsewhere = record(def, "elsewhere", kT0);
  elsewhere.repo = "acme/other";
  REQUIRE(runs::insert_run(s.db, elsewhere));
  auto inflight = runs::in_flight_runs(s.db, "github", "acme/payments", "payments");
  REQUIRE(inflight);
  std::vector<std::string> ids;
  for (const auto& r : *inflight) ids.push_back(r.id);
  CHECK(ids == std::vector<std::string>{"z-first", "a-second", "m-third"});
  auto newest = runs::list_runs(s.db, 2);
  REQUIRE(newest);
  REQUIRE(newest->size() == 2);
  CHECK((*newest)[0].id == "m-third");  // newest first; the same time: the later inserted first
  CHECK((*newest)[1].id == "a-second");
}

TEST_CASE("a malformed stored state is an error naming the run", "[run_store]") {
  Store s;
  Run run(s.db, "r1");
  SECTION("not JSON") { REQUIRE(s.db.exec("UPDATE runs SET state = '{\"version\": 1,' WHERE id = 'r1'")); }
  SECTION("JSON of another shape") { REQUIRE(s.db.exec("UPDATE runs SET state = '{\"version\": 1}' WHERE id = 'r1'")); }
  const bool pg = s.db.kind() == store::Kind::postgres;
  SECTION("an unknown status") {
    REQUIRE(s.db.exec(pg ? "UPDATE runs SET state = jsonb_set(state::jsonb, '{status}', '\"exploded\"')::text WHERE id = 'r1'"
                         : "UPDATE runs SET state = json_set(state, '$.status', 'exploded') WHERE id = 'r1'"));
  }
  SECTION("another run's state") {
    REQUIRE(s.db.exec(pg ? "UPDATE runs SET state = jsonb_set(state::jsonb, '{id}', '\"r9\"')::text WHERE id = 'r1'"
                         : "UPDATE runs SET state = json_set(state, '$.id', 'r9') WHERE id = 'r1'"));
  }
  auto loaded = runs::load_run(s.db, "r1");
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().find("run 'r1'") != std::string::npos);
  auto inflight = runs::in_flight_runs(s.db, "github", "acme/payments", "payments");
  REQUIRE_FALSE(inflight);
  CHECK(inflight.error().find("run 'r1'") != std::string::npos);
}

TEST_CASE("jobs round-trip through JSON; a malformed stored job is failed, not claimed", "[run_store]") {
  for (int i = 0; i <= static_cast<int>(JobKind::timer); ++i) {
    Job j;
    j.kind = static_cast<JobKind>(i);
    j.key = "k" + std::to_string(i);
    j.stage = "prod";
    j.repo = "acme/env-prod";
    j.pr = 12;
    j.sha = sha('a');
    j.comment_id = 99;
    j.state = "success";
    j.text = "line\n\"quoted\"";
    j.timer = "soak";
    if (i % 2) j.at = kT0 + 30min;
    j.step = 2;
    j.seq = 3;
    j.attempt = 4;
    nlohmann::json js = j;
    CHECK(js.get<Job>() == j);
  }
  nlohmann::json bad = Job{};
  bad["kind"] = "teleport";
  CHECK_THROWS_AS(bad.get<Job>(), nlohmann::json::exception);

  Store s;
  Run run(s.db, "r1");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  schedule(s.db, run, {job(JobKind::reply, "reply:1"), job(JobKind::reply, "reply:2")}, "k");
  REQUIRE(s.db.exec("UPDATE jobs SET job = '{\"kind\": \"teleport\"}' WHERE key = 'reply:1'"));
  auto c = runs::claim_jobs(s.db, kT0, "w1", 30s, 10);
  REQUIRE(c);
  REQUIRE(c->broken.size() == 1);
  CHECK(c->broken[0].find("reply:1") != std::string::npos);
  CHECK(c->broken[0].find("teleport") != std::string::npos);
  // The broken one is failed in place and does not hold the run's next job back.
  CHECK(s.text("SELECT state FROM jobs WHERE key = 'reply:1'") == "failed");
  CHECK(keys(*c).empty());  // reply:2 was behind it when the claim looked
  CHECK(keys(claim(s.db, kT0, "w1")) == std::vector<std::string>{"reply:2"});
}

TEST_CASE("at start, the leases of a process that is gone are released at once, the attempt not counted", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  const TimePoint t = kT0;
  schedule(s.db, a, {job(JobKind::timer, "timer:a:1", t), job(JobKind::timer, "timer:a:2", t)}, "k1");
  auto c = claim(s.db, t, "old-process:1", 5min, 1);
  REQUIRE(c.jobs.size() == 1);
  CHECK(c.jobs[0].attempts == 1);
  // The process is killed; a new one starts long before the lease would run out.
  auto released = runs::release_leases(s.db);
  REQUIRE(released);
  CHECK(*released == 1);
  auto again = claim(s.db, t + 1s, "new-process:1", 5min, 2);
  CHECK(keys(again) == std::vector<std::string>{"timer:a:1", "timer:a:2"});
  REQUIRE(again.jobs.size() == 2);
  CHECK(again.jobs[0].attempts == 1);  // the killed attempt does not count against the job
  // The old owner can no longer finish it.
  auto stale = runs::complete_job(s.db, again.jobs[0].id, "old-process:1", t + 2s);
  REQUIRE(stale);
  CHECK_FALSE(*stale);
  auto none = runs::release_leases(s.db);
  REQUIRE(none);
  CHECK(*none == 2);  // the new process's own leases, were it to restart now
}

TEST_CASE("a restarted replica takes back its own leases only; renewing keeps a lease held", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  const TimePoint t = kT0;
  schedule(s.db, a, {job(JobKind::timer, "timer:a:1", t), job(JobKind::timer, "timer:a:2", t), job(JobKind::timer, "timer:a:3", t)},
           "k1");
  auto r1 = claim(s.db, t, "r1:100:1", 30s, 1);
  auto r10 = claim(s.db, t, "r10:200:1", 30s, 1);
  auto r2 = claim(s.db, t, "r2:300:1", 30s, 1);
  REQUIRE(r1.jobs.size() == 1);
  REQUIRE(r10.jobs.size() == 1);
  REQUIRE(r2.jobs.size() == 1);
  // Replica r1 restarts: its earlier process's job goes back at once; r10's and r2's stay leased
  // (a name that merely starts with "r1" is another replica).
  auto released = runs::release_leases(s.db, "r1:");
  REQUIRE(released);
  CHECK(*released == 1);
  auto again = claim(s.db, t + 1s, "r1:101:1", 30s, 5);
  CHECK(keys(again) == std::vector<std::string>{r1.jobs[0].key});
  REQUIRE(again.jobs.size() == 1);
  REQUIRE(runs::complete_job(s.db, again.jobs[0].id, "r1:101:1", t + 2s));
  // r2 keeps renewing: past its first lease, its job is still its own; r10 stopped: its job is
  // claimable once the lease ran out.
  auto renewed = runs::renew_leases(s.db, {r2.jobs[0].id, r10.jobs[0].id}, "r2:300:1", t + 60s);
  REQUIRE(renewed);
  CHECK(*renewed == 1);  // r10's job is not r2's to renew
  CHECK(keys(claim(s.db, t + 45s, "r3:400:1", 30s, 5)) == std::vector<std::string>{r10.jobs[0].key});
  auto done = runs::complete_job(s.db, r2.jobs[0].id, "r2:300:1", t + 50s);
  REQUIRE(done);
  CHECK(*done);
}

TEST_CASE("changes to runs from two connections go one transaction at a time", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  if (!Store::on_postgres()) {
    // SQLite's one writer orders every transaction already: the lock is granted at once.
    REQUIRE(s.db.begin_write());
    CHECK(runs::lock_runs(s.db));
    REQUIRE(s.db.exec("COMMIT"));
    return;
  }
  store::Db other = s.connect();
  REQUIRE(s.db.begin_write());
  REQUIRE(runs::lock_runs(s.db));
  std::atomic<bool> first_committed{false};
  std::atomic<bool> second_saw_commit{false};
  std::string problem;
  std::thread second([&] {
    if (auto b = other.begin_write(); !b) {
      problem = store::describe(b.error());
      return;
    }
    if (auto l = runs::lock_runs(other); !l) problem = l.error();
    second_saw_commit = first_committed.load();
    (void)other.exec("COMMIT");
  });
  std::this_thread::sleep_for(300ms);
  first_committed = true;
  REQUIRE(s.db.exec("COMMIT"));
  second.join();
  CHECK(problem.empty());
  CHECK(second_saw_commit);  // it waited for the first transaction to end
}

TEST_CASE("stages do not wait for each other's side effects", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  const TimePoint t = kT0;
  Job dev_status = job(JobKind::set_commit_status, "status:dev");
  Job dev_sticky = job(JobKind::upsert_sticky_comment, "sticky:dev");
  Job qa_prepare = job(JobKind::prepare_branch, "prepare:qa");
  qa_prepare.stage = "qa";
  schedule(s.db, a, {dev_status, dev_sticky, qa_prepare}, "k1");
  // qa's push goes first (status updates count as due a second later), then dev's status; dev's
  // comment waits for that status, qa's push did not wait for either.
  CHECK(keys(claim(s.db, t, "w1", 30s, 1)) == std::vector<std::string>{"prepare:qa"});
  CHECK(keys(claim(s.db, t, "w2", 30s, 5)) == std::vector<std::string>{"status:dev"});
  CHECK(keys(claim(s.db, t, "w3", 30s, 5)).empty());
}

TEST_CASE("a stage's status updates do not hold its promotion back, and keep their own order", "[run_store]") {
  Store s;
  Run a(s.db, "ra");
  REQUIRE(s.db.exec("DELETE FROM jobs"));
  const TimePoint t = kT0;
  // publish("merging") then the merge, as the engine schedules them when the gates pass.
  schedule(s.db, a,
           {job(JobKind::set_commit_status, "status:1"), job(JobKind::upsert_sticky_comment, "sticky:1"),
            job(JobKind::merge_pr, "merge:1")},
           "k1");
  // The merge first; the status of that revision next; its comment after the status.
  auto merge = claim(s.db, t, "w1", 30s, 1);
  CHECK(keys(merge) == std::vector<std::string>{"merge:1"});
  auto status = claim(s.db, t, "w2", 30s, 5);
  CHECK(keys(status) == std::vector<std::string>{"status:1"});
  CHECK(keys(claim(s.db, t, "w3", 30s, 5)).empty());
  // A status update scheduled after a job that moves the stage on waits for that job.
  schedule(s.db, a, {job(JobKind::set_commit_status, "status:2")}, "k2");
  REQUIRE(runs::complete_job(s.db, status.jobs.at(0).id, "w2", t));
  CHECK(keys(claim(s.db, t, "w3", 30s, 5)) == std::vector<std::string>{"sticky:1"});
  CHECK(keys(claim(s.db, t, "w4", 30s, 5)).empty());  // status:2 is behind merge:1 (and sticky:1)
  REQUIRE(runs::complete_job(s.db, merge.jobs.at(0).id, "w1", t));
  CHECK(keys(claim(s.db, t, "w5", 30s, 5)).empty());  // ... and still behind sticky:1
}

TEST_CASE("the API's version column and stage rows follow the run's state", "[run_store]") {
  Store s;
  Run run(s.db, "r1");
  CHECK(s.text("SELECT version FROM runs WHERE id = 'r1'") == "abc1234");
  CHECK(s.count("SELECT COUNT(*) FROM run_stages WHERE run_id = 'r1'") == 2);
  CHECK(s.text("SELECT status FROM run_stages WHERE run_id = 'r1' AND stage = 'dev'") == "preparing");
  CHECK(s.text("SELECT status FROM run_stages WHERE run_id = 'r1' AND stage = 'qa'") == "waiting");
  // Reached or not (the dashboard's `latest` is the newest run that reached a stage).
  CHECK(s.text("SELECT started_at FROM run_stages WHERE run_id = 'r1' AND stage = 'dev'") ==
        std::to_string(kT0.time_since_epoch().count()));
  CHECK(s.text("SELECT started_at FROM run_stages WHERE run_id = 'r1' AND stage = 'qa'") == "NULL");
  CHECK(s.text("SELECT pipeline || ' ' || repo || ' ' || host FROM run_stages WHERE stage = 'qa'") ==
        "payments acme/payments github");
  run.now += 5s;
  run.in(s.db, prepared("dev", sha('h')), "job:1");
  run.in(s.db, opened("dev", 11, sha('h')), "job:2");
  CHECK(s.text("SELECT status FROM run_stages WHERE run_id = 'r1' AND stage = 'dev'") ==
        to_string(run.state.stage("dev")->status));
  run.now += 1min;
  run.in(s.db, ApiAction{ApiAction::Kind::abort, "", "alice", "stop"}, "api:abort");
  CHECK(s.text("SELECT status FROM run_stages WHERE run_id = 'r1' AND stage = 'qa'") == "aborted");
  CHECK(s.text("SELECT started_at FROM run_stages WHERE run_id = 'r1' AND stage = 'qa'") == "NULL");
  CHECK(s.text("SELECT finished_at FROM run_stages WHERE run_id = 'r1' AND stage = 'qa'") ==
        std::to_string((kT0 + 5s + 1min).time_since_epoch().count()));
}

TEST_CASE("migration 4 fills the API's columns for runs an older tollgate wrote", "[run_store]") {
  TempDir dir;
  const std::string path = (dir.path / "old.db").string();
  {
    auto db = store::Db::open(path);
    REQUIRE(db);
    REQUIRE(db->exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"));
    for (const char* m : {"0001_inbox.sql", "0002_outcomes.sql", "0003_engine.sql"}) {
      REQUIRE(db->exec(std::string(tollgate_migrations::embedded(m))));
    }
    REQUIRE(db->exec("INSERT INTO schema_migrations VALUES (1, '0001_inbox.sql', 0), (2, '0002_outcomes.sql', 0), "
                     "(3, '0003_engine.sql', 0)"));
    // One run with a release version, one without (the short sha stands in).
    for (const bool versioned : {true, false}) {
      const std::string id = versioned ? "v1" : "v2";
      auto state = make_run(two_stages(), id, SourceFacts{"acme/payments", "main", sha('e'), 7, "dave"},
                            versioned ? std::vector<std::pair<std::string, std::string>>{{"version", "1.2.3"}}
                                      : std::vector<std::pair<std::string, std::string>>{},
                            kT0);
      state.stages[0].status = StageStatus::promoted;
      state.stages[0].finished_at = kT0 + 1min;
      auto ins = db->prepare("INSERT INTO runs (id, host, repo, pipeline, status, definition, definition_sha, state, "
                             "created_at, updated_at) VALUES (?, 'github', 'acme/payments', 'payments', 'running', '', '', ?, ?, ?)");
      REQUIRE(ins);
      ins->bind(1, id).bind(2, nlohmann::json(state).dump());
      ins->bind(3, kT0.time_since_epoch().count()).bind(4, kT0.time_since_epoch().count());
      REQUIRE(ins->step());
    }
  }
  auto db = store::Db::open(path);
  REQUIRE(db);
  auto v = migrate(*db);
  REQUIRE(v);
  CHECK(*v == static_cast<int>(kMigrations.size()));
  auto q = db->prepare("SELECT r.id, r.version, s.stage, s.status, COALESCE(s.finished_at, 0) FROM runs r "
                       "JOIN run_stages s ON s.run_id = r.id ORDER BY r.id, s.stage");
  REQUIRE(q);
  std::vector<std::string> rows;
  while (true) {
    auto row = q->step();
    REQUIRE(row);
    if (!*row) break;
    rows.push_back(q->text(0) + " " + q->text(1) + " " + q->text(2) + " " + q->text(3) + " " + std::to_string(q->int64(4)));
  }
  const std::string done = std::to_string((kT0 + 1min).time_since_epoch().count());
  CHECK(rows == std::vector<std::string>{"v1 1.2.3 dev promoted " + done, "v1 1.2.3 qa waiting 0",
                                         "v2 eeeeeee dev promoted " + done, "v2 eeeeeee qa waiting 0"});
}

TEST_CASE("delivery metrics: deployments, lead times, change failures and time to restore per pipeline", "[api]") {
  Store s;
  // A run that ended `status` at `finished`, every stage with it; `deployed`: when it reached
  // production (the run-level audit entry the engine writes); `rolled_back`: qa was rolled back.
  auto add = [&](const std::string& id, TimePoint created, TimePoint finished, RunStatus status,
                 std::optional<TimePoint> deployed, bool rolled_back = false) {
    auto rec = record(two_stages(), id, created);
    rec.state.status = status;
    rec.state.finished_at = finished;
    for (auto& st : rec.state.stages) {
      st.status = status == RunStatus::succeeded ? StageStatus::promoted : StageStatus::failed;
      st.finished_at = finished;
    }
    if (rolled_back) rec.state.stages[1].rollback = RollbackPhase::done;
    REQUIRE(runs::insert_run(s.db, rec));
    if (deployed) {
      auto a = s.db.prepare("INSERT INTO audit (run_id, seq, at, stage, from_state, to_state, actor) "
                            "VALUES (?, 1, ?, '', 'running', 'succeeded', 'tollgate')");
      REQUIRE(a);
      a->bind(1, id).bind(2, deployed->time_since_epoch().count());
      REQUIRE(a->step());
    }
  };
  add("old", kT0 - 48h, kT0 - 47h, RunStatus::succeeded, kT0 - 47h);  // before the window
  add("r1", kT0, kT0 + 1h, RunStatus::succeeded, kT0 + 1h);            // lead 1 h
  add("r2", kT0 + 1h, kT0 + 2h, RunStatus::failed, std::nullopt);      // a failed change...
  add("r3", kT0 + 4h + 30min, kT0 + 5h, RunStatus::succeeded, kT0 + 5h);  // ...restored 3 h later; lead 30 min
  // Reached production (lead 10 min), then rolled back, which failed the run: still a deployment,
  // and a failed change not yet restored.
  add("r4", kT0 + 6h - 10min, kT0 + 7h, RunStatus::failed, kT0 + 6h, true);
  add("x1", kT0 + 1h, kT0 + 3h, RunStatus::aborted, std::nullopt);     // aborted: not a change

  ApiOptions options;
  options.database = (s.dir.path / "t.db").string();
  options.now = [] { return std::chrono::system_clock::time_point(kT0 + 10h); };
  Api api(options);
  auto figures = api.delivery(24h);
  REQUIRE(figures.size() == 1);
  const auto& f = figures.front();
  CHECK(f.pipeline == "payments");
  CHECK(f.deployments == 3);
  CHECK(f.changes == 4);
  CHECK(f.failed_changes == 2);
  CHECK(f.lead_times == std::vector<double>{3600, 1800, 600});
  CHECK(f.restores == std::vector<double>{10800});  // r4's rollback has no later deployment yet
  CHECK(api.delivery(24h, "github", "acme/other").empty());

  // /metrics covers 30 days: the old run too.
  const std::string text = api.metrics_text();
  CHECK(text.find("tollgate_delivery_deployments{host=\"github\",repo=\"acme/payments\",pipeline=\"payments\"} 4") !=
        std::string::npos);
  CHECK(text.find("tollgate_delivery_change_failure_rate{host=\"github\",repo=\"acme/payments\",pipeline=\"payments\"} 0.4") !=
        std::string::npos);
  CHECK(text.find("quantile=\"0.5\"} 1800") != std::string::npos);

  // The same through the API, with a stage's current version.
  HttpRequest request{"GET", "/api/v1/delivery?window=1d", [](std::string_view) { return std::string_view{}; }, ""};
  options.config.anonymous_read = true;
  Api open_api(options);
  auto r = open_api.handle(request);
  CHECK(r.status == 200);
  auto body = nlohmann::json::parse(r.body);
  CHECK(body["window_seconds"] == 86400);
  CHECK(body["pipelines"][0]["change_failure_rate"] == 0.5);
  CHECK(body["pipelines"][0]["time_to_restore_seconds"]["median"] == 10800.0);
  request.target = "/api/v1/delivery?window=2y";
  CHECK(open_api.handle(request).status == 400);
  request.target = "/api/v1/runs?state=running";
  CHECK(nlohmann::json::parse(open_api.handle(request).body)["runs"].empty());
  request.target = "/api/v1/runs?limit=2";
  auto page = nlohmann::json::parse(open_api.handle(request).body);
  REQUIRE(page["runs"].size() == 2);
  CHECK(page["runs"][0]["id"] == "r4");
  CHECK(page["runs"][0]["version"] == "abc1234");
  request.target = "/api/v1/runs?limit=2&cursor=" + page["next_cursor"].get<std::string>();
  auto second = nlohmann::json::parse(open_api.handle(request).body);
  REQUIRE(second["runs"].size() == 2);
  CHECK(second["runs"][0]["id"] == "x1");
  request.target = "/api/v1/runs?cursor=12";
  CHECK(open_api.handle(request).status == 400);
  request.target = "/api/v1/runs?colour=red";
  CHECK(open_api.handle(request).body.find("unknown query parameter 'colour'") != std::string::npos);
}
