#include "service/run_store.hpp"

#include <nlohmann/json.hpp>
#include <utility>

namespace tollgate::pipeline {

namespace {
using nlohmann::json;

JobKind job_kind_from(const json& j) {
  const std::string s = j.get<std::string>();
  // timer is the last JobKind (the round-trip test goes through every kind up to it).
  for (int i = 0; i <= static_cast<int>(JobKind::timer); ++i) {
    if (s == to_string(static_cast<JobKind>(i))) return static_cast<JobKind>(i);
  }
  throw json::other_error::create(501, "unknown job kind '" + s + "'", &j);
}
}  // namespace

void to_json(json& j, const Job& job) {
  j = {
      {"kind", to_string(job.kind)},
      {"key", job.key},
      {"stage", job.stage},
      {"repo", job.repo},
      {"pr", job.pr},
      {"sha", job.sha},
      {"comment_id", job.comment_id},
      {"state", job.state},
      {"text", job.text},
      {"timer", job.timer},
      {"at", job.at ? json(job.at->time_since_epoch().count()) : json(nullptr)},
      {"step", job.step},
      {"seq", job.seq},
      {"attempt", job.attempt},
  };
}

void from_json(const json& j, Job& job) {
  Job out;
  out.kind = job_kind_from(j.at("kind"));
  out.key = j.at("key").get<std::string>();
  out.stage = j.at("stage").get<std::string>();
  out.repo = j.at("repo").get<std::string>();
  out.pr = j.at("pr").get<std::int64_t>();
  out.sha = j.at("sha").get<std::string>();
  out.comment_id = j.at("comment_id").get<std::int64_t>();
  out.state = j.at("state").get<std::string>();
  out.text = j.at("text").get<std::string>();
  out.timer = j.at("timer").get<std::string>();
  if (const json& at = j.at("at"); !at.is_null()) out.at = TimePoint{std::chrono::milliseconds{at.get<long long>()}};
  out.step = j.at("step").get<int>();
  out.seq = j.at("seq").get<int>();
  out.attempt = j.at("attempt").get<int>();
  job = std::move(out);
}

}  // namespace tollgate::pipeline

namespace tollgate::service::runs {

namespace {

using nlohmann::json;

constexpr std::string_view kRunColumns =
    "id, host, repo, pipeline, definition, definition_sha, state, created_at, updated_at, finished_at";

// The stage's published status (commit status and status comment): what people see, not what moves
// the promotion on.
#define TOLLGATE_COSMETIC "('set_commit_status', 'upsert_sticky_comment')"

// A non-timer job waits while an earlier non-timer job of the same stage of its run is unfinished
// (a stage's statuses and comments land in the order scheduled), except that a job that moves the
// promotion on (push, open, merge, ...) does not wait for status updates: a merge does not queue
// behind "merging" being shown, and the status job of that revision, superseded by "promoted"
// by the time it runs, is skipped (job_executor). Stages do not wait for each other: the next
// stage's push does not queue behind the last status update of a merged PR. The terms match the
// partial index jobs_open_by_run.
constexpr std::string_view kInRunOrder =
    "(j.kind = 'timer' OR NOT EXISTS (SELECT 1 FROM jobs e WHERE e.run_id = j.run_id AND e.id < j.id "
    "AND e.state IN ('pending', 'leased') AND e.kind <> 'timer' AND e.stage = j.stage "
    "AND (j.kind IN " TOLLGATE_COSMETIC " OR e.kind NOT IN " TOLLGATE_COSMETIC ")))";

// Claim order: due time, then id, with status updates counted as due one second later, so that when
// the workers are busy the promotions move first and a burst of status revisions collapses into the
// latest (each worker claims one job at a time: this only decides who goes first).
constexpr std::string_view kClaimOrder =
    "j.due_at + CASE WHEN j.kind IN " TOLLGATE_COSMETIC " THEN 1000 ELSE 0 END, j.id";
#undef TOLLGATE_COSMETIC

using store::describe;

std::int64_t ms(Instant t) { return t.time_since_epoch().count(); }
Instant instant(std::int64_t v) { return Instant{std::chrono::milliseconds{v}}; }

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

tl::expected<store::Stmt, std::string> prepare(store::Db& db, std::string_view sql, const std::string& what) {
  auto s = db.prepare(sql);
  if (!s) return tl::unexpected(what + ": " + describe(s.error()));
  return std::move(*s);
}

// Steps a statement that returns no rows.
tl::expected<void, std::string> run(store::Stmt& s, const std::string& what) {
  auto r = s.step();
  if (!r) return tl::unexpected(what + ": " + describe(r.error()));
  return {};
}

// Steps to the next row: true with a row, false when done.
tl::expected<bool, std::string> next(store::Stmt& s, const std::string& what) {
  auto r = s.step();
  if (!r) return tl::unexpected(what + ": " + describe(r.error()));
  return *r;
}

// A run row (kRunColumns) with its state parsed.
tl::expected<RunRecord, std::string> record_of(const store::Stmt& s) {
  RunRecord r;
  r.id = s.text(0);
  r.host = s.text(1);
  r.repo = s.text(2);
  r.pipeline = s.text(3);
  r.definition = s.text(4);
  r.definition_sha = s.text(5);
  try {
    r.state = json::parse(s.text(6)).get<pipeline::RunState>();
  } catch (const json::exception& e) {
    return tl::unexpected("run " + in_quotes(r.id) + ": the stored state is malformed: " + e.what());
  }
  if (r.state.id != r.id) {
    return tl::unexpected("run " + in_quotes(r.id) + ": the stored state is of run " + in_quotes(r.state.id));
  }
  r.created_at = instant(s.int64(7));
  r.updated_at = instant(s.int64(8));
  if (!s.is_null(9)) r.finished_at = instant(s.int64(9));
  return r;
}

tl::expected<std::vector<RunRecord>, std::string> records_of(store::Stmt& s, const std::string& what) {
  std::vector<RunRecord> out;
  while (true) {
    auto row = next(s, what);
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    auto r = record_of(s);
    if (!r) return tl::unexpected(what + ": " + r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

tl::expected<std::vector<std::string>, std::string> ids_of(store::Stmt& s, const std::string& what) {
  std::vector<std::string> out;
  while (true) {
    auto row = next(s, what);
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.push_back(s.text(0));
  }
  return out;
}

// finished_at of a run in `state`: set while terminal (the engine's time, else now), else none.
std::optional<std::int64_t> finished_ms(const pipeline::RunState& state, Instant now) {
  if (!pipeline::is_terminal(state.status)) return std::nullopt;
  return state.finished_at ? ms(*state.finished_at) : ms(now);
}

// The API's view of each stage (run_stages, 0004_api.sql): rows of the stages whose status,
// rollback, start or end changed since `before` (all of them when there is no before).
tl::expected<void, std::string> save_stage_rows(store::Db& db, const RunRecord& meta, const pipeline::RunState* before,
                                                const pipeline::RunState& state) {
  const std::string what = "run " + in_quotes(meta.id) + ": saving stage rows";
  std::optional<store::Stmt> ins;
  for (const auto& st : state.stages) {
    if (before) {
      const auto* old = before->stage(st.name);
      if (old && old->status == st.status && old->rollback == st.rollback && old->started_at == st.started_at &&
          old->finished_at == st.finished_at) {
        continue;
      }
    }
    if (!ins) {
      auto p = prepare(db,
                       "INSERT INTO run_stages (run_id, stage, host, repo, pipeline, status, rollback, run_created, "
                       "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, stage) DO "
                       "UPDATE SET status = excluded.status, rollback = excluded.rollback, started_at = excluded.started_at, "
                       "finished_at = excluded.finished_at",
                       what);
      if (!p) return tl::unexpected(p.error());
      ins.emplace(std::move(*p));
    }
    static constexpr const char* kRollback[] = {"none", "opening", "merging", "done", "failed"};
    ins->reset();
    ins->bind(1, meta.id).bind(2, st.name).bind(3, meta.host).bind(4, meta.repo).bind(5, meta.pipeline);
    ins->bind(6, std::string_view(pipeline::to_string(st.status)));
    ins->bind(7, std::string_view(kRollback[static_cast<std::size_t>(st.rollback)]));
    ins->bind(8, ms(meta.created_at));
    int i = 9;
    for (const auto* t : {&st.started_at, &st.finished_at}) {
      if (*t) ins->bind(i, static_cast<std::int64_t>((*t)->time_since_epoch().count())); else ins->bind_null(i);
      ++i;
    }
    if (auto r = run(*ins, what); !r) return r;
  }
  return {};
}

tl::expected<void, std::string> save_refs(store::Db& db, const RunRecord& meta, const pipeline::RunState& state,
                                          const StageRepos& repos) {
  const std::string what = "run " + in_quotes(meta.id) + ": saving refs";
  auto del = prepare(db, "DELETE FROM run_refs WHERE run_id = ?", what);
  if (!del) return tl::unexpected(del.error());
  del->bind(1, meta.id);
  if (auto r = run(*del, what); !r) return r;
  auto ins = prepare(db,
                     "INSERT INTO run_refs (host, repo, kind, ref, run_id, stage) VALUES (?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT DO NOTHING",
                     what);
  if (!ins) return tl::unexpected(ins.error());
  for (const auto& st : state.stages) {
    std::vector<std::pair<const char*, std::string>> refs;
    for (std::int64_t pr : {st.pr, st.revert_pr}) {
      if (pr > 0) refs.emplace_back("pr", std::to_string(pr));
    }
    for (const std::string* sha : {&st.head_sha, &st.merge_sha, &st.revert_head_sha}) {
      if (!sha->empty()) refs.emplace_back("sha", *sha);
    }
    if (refs.empty()) continue;
    auto repo = repos.find(st.name);
    if (repo == repos.end() || repo->second.empty()) {
      return tl::unexpected(what + ": no repository is known for stage " + in_quotes(st.name));
    }
    for (const auto& [kind, ref] : refs) {
      ins->reset();
      ins->bind(1, meta.host).bind(2, repo->second).bind(3, std::string_view(kind)).bind(4, ref);
      ins->bind(5, meta.id).bind(6, st.name);
      if (auto r = run(*ins, what); !r) return r;
    }
  }
  return {};
}

tl::expected<std::size_t, std::string> save_audit(store::Db& db, const std::string& run_id,
                                                  const std::vector<pipeline::Transition>& transitions,
                                                  std::string_view input_key, Instant now) {
  if (transitions.empty()) return 0;
  const std::string what = "run " + in_quotes(run_id) + ": writing the audit log";
  auto last = prepare(db, "SELECT COALESCE(MAX(seq), 0) FROM audit WHERE run_id = ?", what);
  if (!last) return tl::unexpected(last.error());
  last->bind(1, run_id);
  auto row = next(*last, what);
  if (!row) return tl::unexpected(row.error());
  std::int64_t seq = *row ? last->int64(0) : 0;
  last->reset();
  auto ins = prepare(db,
                     "INSERT INTO audit (run_id, seq, at, stage, from_state, to_state, actor, reason, input) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     what);
  if (!ins) return tl::unexpected(ins.error());
  for (const auto& t : transitions) {
    ins->reset();
    ins->bind(1, run_id).bind(2, ++seq).bind(3, ms(now)).bind(4, t.stage).bind(5, t.from).bind(6, t.to);
    ins->bind(7, t.actor).bind(8, t.reason);
    if (input_key.empty()) ins->bind_null(9); else ins->bind(9, input_key);
    if (auto r = run(*ins, what); !r) return tl::unexpected(r.error());
  }
  return transitions.size();
}

tl::expected<std::pair<std::size_t, std::size_t>, std::string> save_jobs(store::Db& db, const std::string& run_id,
                                                                         const std::vector<pipeline::Job>& jobs,
                                                                         Instant now) {
  std::size_t scheduled = 0, duplicates = 0;
  if (jobs.empty()) return std::pair{scheduled, duplicates};
  const std::string what = "run " + in_quotes(run_id) + ": scheduling jobs";
  auto ins = prepare(db,
                     "INSERT INTO jobs (key, run_id, kind, stage, job, due_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT (key) DO NOTHING",
                     what);
  if (!ins) return tl::unexpected(ins.error());
  for (const auto& job : jobs) {
    if (job.key.empty()) {
      return tl::unexpected(what + ": a " + pipeline::to_string(job.kind) + " job has no idempotency key");
    }
    const Instant due = job.at ? Instant{*job.at} : now;
    ins->reset();
    ins->bind(1, job.key).bind(2, run_id).bind(3, std::string_view(pipeline::to_string(job.kind))).bind(4, job.stage);
    ins->bind(5, json(job).dump()).bind(6, ms(due)).bind(7, ms(now));
    if (auto r = run(*ins, what + " (" + job.key + ")"); !r) return tl::unexpected(r.error());
    if (db.changes() == 1) ++scheduled; else ++duplicates;
  }
  return std::pair{scheduled, duplicates};
}

// Ends a lease held by `owner`: `set` is the SET clause, its parameters from 3 on (bound by `bind`).
template <class Bind>
tl::expected<bool, std::string> end_lease(store::Db& db, std::int64_t id, std::string_view owner, std::string_view set,
                                          const std::string& what, Bind bind) {
  auto s = prepare(db,
                   "UPDATE jobs SET " + std::string(set) +
                       " WHERE id = ?1 AND state = 'leased' AND lease_owner = ?2",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, id).bind(2, owner);
  bind(*s);
  if (auto r = run(*s, what); !r) return tl::unexpected(r.error());
  return db.changes() == 1;
}

}  // namespace

std::string run_version(const pipeline::RunState& state) {
  for (const auto& [k, v] : state.release) {
    if (k == "version") return v;
  }
  return state.source.sha.substr(0, 7);
}

StageRepos stage_repos(const pipeline::Pipeline& def) {
  StageRepos out;
  for (const auto& st : def.stages) out.emplace(st.name, st.repo);
  return out;
}

tl::expected<bool, std::string> try_consume(store::Db& db, std::string_view key, Instant now) {
  const std::string what = "consuming input " + in_quotes(key);
  if (key.empty()) return tl::unexpected(what + ": the key is empty");
  auto s = prepare(db, "INSERT INTO consumed (key, at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, key).bind(2, ms(now));
  if (auto r = run(*s, what); !r) return tl::unexpected(r.error());
  return db.changes() == 1;
}

tl::expected<void, std::string> insert_run(store::Db& db, const RunRecord& record) {
  const std::string what = "run " + in_quotes(record.id);
  if (record.id.empty()) return tl::unexpected(std::string("a run needs an id"));
  if (record.state.id != record.id) {
    return tl::unexpected(what + ": its state is of run " + in_quotes(record.state.id));
  }
  if (record.state.pipeline != record.pipeline) {
    return tl::unexpected(what + ": its state is of pipeline " + in_quotes(record.state.pipeline) + ", not " +
                          in_quotes(record.pipeline));
  }
  auto s = prepare(db,
                   "INSERT INTO runs (id, host, repo, pipeline, status, definition, definition_sha, state, created_at, "
                   "updated_at, finished_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   what + ": inserting");
  if (!s) return tl::unexpected(s.error());
  s->bind(1, record.id).bind(2, record.host).bind(3, record.repo).bind(4, record.pipeline);
  s->bind(5, std::string_view(pipeline::to_string(record.state.status)));
  s->bind(6, record.definition).bind(7, record.definition_sha).bind(8, json(record.state).dump());
  s->bind(9, ms(record.created_at)).bind(10, ms(record.created_at));
  if (auto f = finished_ms(record.state, record.created_at)) s->bind(11, *f); else s->bind_null(11);
  s->bind(12, run_version(record.state));
  if (auto r = run(*s, what + ": inserting"); !r) return r;
  return save_stage_rows(db, record, nullptr, record.state);
}

tl::expected<std::optional<RunRecord>, std::string> load_run(store::Db& db, std::string_view id) {
  const std::string what = "run " + in_quotes(id) + ": loading";
  auto s = prepare(db, "SELECT " + std::string(kRunColumns) + " FROM runs WHERE id = ?", what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, id);
  auto row = next(*s, what);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return std::optional<RunRecord>{};
  auto r = record_of(*s);
  if (!r) return tl::unexpected(r.error());
  return std::optional<RunRecord>{std::move(*r)};
}

tl::expected<SaveResult, std::string> save_step(store::Db& db, const RunRecord& meta, const pipeline::Step& step,
                                                std::string_view input_key, Instant now, const StageRepos& repos) {
  const std::string what = "run " + in_quotes(meta.id);
  if (step.run.id != meta.id) return tl::unexpected(what + ": the step is of run " + in_quotes(step.run.id));
  {
    auto s = prepare(db, "UPDATE runs SET status = ?, state = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                     what + ": saving");
    if (!s) return tl::unexpected(s.error());
    s->bind(1, std::string_view(pipeline::to_string(step.run.status))).bind(2, json(step.run).dump());
    s->bind(3, ms(now));
    if (auto f = finished_ms(step.run, now)) s->bind(4, *f); else s->bind_null(4);
    s->bind(5, meta.id);
    if (auto r = run(*s, what + ": saving"); !r) return tl::unexpected(r.error());
    if (db.changes() != 1) return tl::unexpected(what + ": saving: there is no such run");
  }
  if (auto r = save_refs(db, meta, step.run, repos); !r) return tl::unexpected(r.error());
  if (auto r = save_stage_rows(db, meta, &meta.state, step.run); !r) return tl::unexpected(r.error());
  SaveResult out;
  auto audited = save_audit(db, meta.id, step.transitions, input_key, now);
  if (!audited) return tl::unexpected(audited.error());
  out.audited = *audited;
  auto jobs = save_jobs(db, meta.id, step.jobs, now);
  if (!jobs) return tl::unexpected(jobs.error());
  out.scheduled = jobs->first;
  out.duplicate_jobs = jobs->second;
  return out;
}

tl::expected<std::vector<std::string>, std::string> runs_by_pr(store::Db& db, std::string_view host,
                                                               std::string_view repo, std::int64_t pr) {
  const std::string what = "runs of PR " + std::string(repo) + "#" + std::to_string(pr);
  auto s = prepare(db,
                   "SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM run_refs WHERE host = ? AND repo = ? "
                   "AND kind = 'pr' AND ref = ?) ORDER BY r.created_at, r.rowid",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, host).bind(2, repo).bind(3, std::to_string(pr));
  return ids_of(*s, what);
}

tl::expected<std::vector<std::string>, std::string> runs_by_sha(store::Db& db, std::string_view host,
                                                                std::string_view repo, std::string_view sha) {
  const std::string what = "runs of commit " + std::string(repo) + "@" + std::string(sha);
  auto s = prepare(db,
                   "SELECT r.id FROM runs r WHERE r.id IN (SELECT run_id FROM run_refs WHERE host = ? AND repo = ? "
                   "AND kind = 'sha' AND ref = ?) ORDER BY r.created_at, r.rowid",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, host).bind(2, repo).bind(3, sha);
  return ids_of(*s, what);
}

tl::expected<std::vector<RunRecord>, std::string> in_flight_runs(store::Db& db, std::string_view host,
                                                                 std::string_view repo, std::string_view pipeline) {
  const std::string what = "in-flight runs of " + std::string(repo) + " " + in_quotes(pipeline);
  auto s = prepare(db,
                   "SELECT " + std::string(kRunColumns) +
                       " FROM runs WHERE host = ? AND repo = ? AND pipeline = ? AND status IN ('queued', 'running') "
                       "ORDER BY created_at, rowid",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, host).bind(2, repo).bind(3, pipeline);
  return records_of(*s, what);
}

tl::expected<std::optional<std::string>, std::string> newer_run(store::Db& db, std::string_view host,
                                                                std::string_view repo, std::string_view pipeline,
                                                                Instant created_at) {
  const std::string what = "newer runs of " + std::string(repo) + " " + in_quotes(pipeline);
  auto s = prepare(db,
                   "SELECT id FROM runs WHERE host = ? AND repo = ? AND pipeline = ? AND created_at > ? "
                   "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, host).bind(2, repo).bind(3, pipeline).bind(4, ms(created_at));
  auto row = next(*s, what);
  if (!row) return tl::unexpected(row.error());
  std::optional<std::string> out;
  if (*row) out = s->text(0);
  s->reset();
  return out;
}

tl::expected<std::vector<RunRecord>, std::string> list_runs(store::Db& db, std::size_t limit,
                                                            std::optional<pipeline::RunStatus> status) {
  const std::string what = "listing runs";
  auto s = prepare(db,
                   "SELECT " + std::string(kRunColumns) +
                       " FROM runs WHERE CAST(?1 AS TEXT) IS NULL OR status = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
                   what);
  if (!s) return tl::unexpected(s.error());
  if (status) s->bind(1, std::string_view(pipeline::to_string(*status))); else s->bind_null(1);
  s->bind(2, static_cast<std::int64_t>(limit));
  return records_of(*s, what);
}

tl::expected<std::vector<AuditRow>, std::string> audit_of(store::Db& db, std::string_view run_id) {
  const std::string what = "run " + in_quotes(run_id) + ": reading the audit log";
  auto s = prepare(db,
                   "SELECT seq, at, stage, from_state, to_state, actor, reason, COALESCE(input, '') FROM audit "
                   "WHERE run_id = ? ORDER BY seq",
                   what);
  if (!s) return tl::unexpected(s.error());
  s->bind(1, run_id);
  std::vector<AuditRow> out;
  while (true) {
    auto row = next(*s, what);
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.push_back({s->int64(0), instant(s->int64(1)), s->text(2), s->text(3), s->text(4), s->text(5), s->text(6),
                   s->text(7)});
  }
  return out;
}

tl::expected<Claim, std::string> claim_jobs(store::Db& db, Instant now, std::string_view owner,
                                            std::chrono::milliseconds lease, std::size_t limit) {
  const std::string what = "claiming jobs";
  Claim out;
  if (limit == 0) return out;
  auto due = prepare(db,
                     "SELECT id, key, run_id, job, due_at, attempts, COALESCE(last_error, '') FROM jobs j "
                     "WHERE ((j.state = 'pending' AND j.due_at <= ?1) OR (j.state = 'leased' AND j.lease_until <= ?1)) "
                     "AND " + std::string(kInRunOrder) + " ORDER BY " + std::string(kClaimOrder) + " LIMIT ?2",
                     what);
  if (!due) return tl::unexpected(due.error());
  due->bind(1, ms(now)).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::pair<std::int64_t, std::string>> broken;  // id, why
  while (true) {
    auto row = next(*due, what);
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    ClaimedJob c;
    c.id = due->int64(0);
    c.key = due->text(1);
    c.run_id = due->text(2);
    c.due_at = instant(due->int64(4));
    c.attempts = static_cast<int>(due->int64(5)) + 1;
    c.last_error = due->text(6);
    c.lease_until = now + lease;
    try {
      c.job = json::parse(due->text(3)).get<pipeline::Job>();
      out.jobs.push_back(std::move(c));
    } catch (const json::exception& e) {
      broken.emplace_back(c.id, "the stored job is malformed: " + std::string(e.what()));
      out.broken.push_back("job " + std::to_string(c.id) + " (" + c.key + ") of run " + in_quotes(c.run_id) + ": " +
                           broken.back().second);
    }
  }
  due->reset();  // no read cursor left open on jobs while it is updated
  // The lease is taken only if the job is still claimable: another process on the same store (a
  // replica on PostgreSQL) that claimed it first has leased it by the time this UPDATE may change
  // the row (PostgreSQL re-checks the condition after waiting for its lock), so each job is
  // claimed once.
  auto lease_stmt = prepare(db,
                            "UPDATE jobs SET state = 'leased', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1 "
                            "WHERE id = ?3 AND ((state = 'pending' AND due_at <= ?4) OR (state = 'leased' AND lease_until <= ?4))",
                            what);
  if (!lease_stmt) return tl::unexpected(lease_stmt.error());
  std::vector<ClaimedJob> leased;
  for (auto& c : out.jobs) {
    lease_stmt->reset();
    lease_stmt->bind(1, owner).bind(2, ms(c.lease_until)).bind(3, c.id).bind(4, ms(now));
    if (auto r = run(*lease_stmt, what + " (job " + std::to_string(c.id) + ")"); !r) return tl::unexpected(r.error());
    if (db.changes() == 1) leased.push_back(std::move(c));
  }
  out.jobs = std::move(leased);
  if (!broken.empty()) {
    auto fail_stmt = prepare(db,
                             "UPDATE jobs SET state = 'failed', last_error = ?, finished_at = ?, lease_owner = NULL, "
                             "lease_until = NULL, attempts = attempts + 1 WHERE id = ?",
                             what);
    if (!fail_stmt) return tl::unexpected(fail_stmt.error());
    for (const auto& [id, why] : broken) {
      fail_stmt->reset();
      fail_stmt->bind(1, why).bind(2, ms(now)).bind(3, id);
      if (auto r = run(*fail_stmt, what + " (job " + std::to_string(id) + ")"); !r) return tl::unexpected(r.error());
    }
  }
  return out;
}

tl::expected<bool, std::string> complete_job(store::Db& db, std::int64_t id, std::string_view owner, Instant now) {
  return end_lease(db, id, owner, "state = 'done', finished_at = ?3", "completing job " + std::to_string(id),
                   [&](store::Stmt& s) { s.bind(3, ms(now)); });
}

tl::expected<bool, std::string> retry_job(store::Db& db, std::int64_t id, std::string_view owner, Instant due_at,
                                          std::string_view error) {
  return end_lease(db, id, owner,
                   "state = 'pending', due_at = ?3, last_error = ?4, lease_owner = NULL, lease_until = NULL",
                   "retrying job " + std::to_string(id), [&](store::Stmt& s) { s.bind(3, ms(due_at)).bind(4, error); });
}

tl::expected<bool, std::string> fail_job(store::Db& db, std::int64_t id, std::string_view owner,
                                         std::string_view error, Instant now) {
  return end_lease(db, id, owner, "state = 'failed', last_error = ?3, finished_at = ?4",
                   "failing job " + std::to_string(id), [&](store::Stmt& s) { s.bind(3, error).bind(4, ms(now)); });
}

tl::expected<std::int64_t, std::string> release_leases(store::Db& db, std::string_view owner_prefix) {
  const std::string what = "releasing job leases";
  auto q = prepare(db,
                   "UPDATE jobs SET state = 'pending', lease_owner = NULL, lease_until = NULL, "
                   "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "
                   "WHERE state = 'leased' AND (?1 = '' OR substr(lease_owner, 1, length(?1)) = ?1)",
                   what);
  if (!q) return tl::unexpected(q.error());
  const std::string prefix(owner_prefix);  // an empty view may have no data: bound as NULL
  q->bind(1, prefix);
  if (auto r = run(*q, what); !r) return tl::unexpected(r.error());
  return static_cast<std::int64_t>(db.changes());
}

tl::expected<std::int64_t, std::string> renew_leases(store::Db& db, const std::vector<std::int64_t>& ids,
                                                     std::string_view owner, Instant until) {
  const std::string what = "renewing job leases";
  auto q = prepare(db, "UPDATE jobs SET lease_until = ?1 WHERE id = ?2 AND state = 'leased' AND lease_owner = ?3", what);
  if (!q) return tl::unexpected(q.error());
  std::int64_t held = 0;
  for (const auto id : ids) {
    q->reset();
    q->bind(1, ms(until)).bind(2, id).bind(3, owner);
    if (auto r = run(*q, what); !r) return tl::unexpected(r.error());
    held += db.changes();
  }
  return held;
}

tl::expected<void, std::string> lock_runs(store::Db& db) {
  if (auto r = store::lock_in_transaction(db, "tollgate:runs"); !r) {
    return tl::unexpected("waiting for other replicas' changes to runs: " + describe(r.error()));
  }
  return {};
}

tl::expected<std::optional<Instant>, std::string> next_due(store::Db& db) {
  const std::string what = "finding the next due job";
  auto s = prepare(db,
                   "SELECT MIN(t) FROM (SELECT MIN(j.due_at) AS t FROM jobs j WHERE j.state = 'pending' AND " +
                       std::string(kInRunOrder) +
                       " UNION ALL SELECT MIN(lease_until) FROM jobs WHERE state = 'leased') AS due",
                   what);
  if (!s) return tl::unexpected(s.error());
  auto row = next(*s, what);
  if (!row) return tl::unexpected(row.error());
  if (!*row || s->is_null(0)) return std::optional<Instant>{};
  return std::optional<Instant>{instant(s->int64(0))};
}

tl::expected<std::map<std::string, std::int64_t>, std::string> job_counts(store::Db& db) {
  const std::string what = "counting jobs";
  std::map<std::string, std::int64_t> out{{"pending", 0}, {"leased", 0}, {"done", 0}, {"failed", 0}};
  auto s = prepare(db, "SELECT state, COUNT(*) FROM jobs GROUP BY state", what);
  if (!s) return tl::unexpected(s.error());
  while (true) {
    auto row = next(*s, what);
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out[s->text(0)] = s->int64(1);
  }
  return out;
}

}  // namespace tollgate::service::runs
