#pragma once
// The engine's durable state in SQLite (schemas/migrations/0003_engine.sql): runs with their
// pinned definition and RunState, the refs that route webhooks to runs, the audit log, the job
// table and the inputs already consumed.
//
// Plain functions over a connection the caller has opened a transaction on: none of them begins,
// commits or rolls back, reads the clock or starts a thread. One input is applied as
//   BEGIN; try_consume(key) (false: already applied, roll back); load_run; pipeline::apply;
//   save_step(..., key, now, ...); COMMIT.
// Errors come back as values naming what failed (the run, the job) with SQLite's message.
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "pipeline/engine.hpp"
#include "service/store.hpp"

namespace tollgate::pipeline {
// The JSON form of a job as the job table stores it. from_json throws nlohmann::json::exception
// when malformed (an unknown kind included).
void to_json(nlohmann::json& j, const Job& job);
void from_json(const nlohmann::json& j, Job& job);
}  // namespace tollgate::pipeline

namespace tollgate::service::runs {

// Times in the store are unix milliseconds; pipeline::TimePoint (seconds) converts implicitly.
using Instant = std::chrono::time_point<std::chrono::system_clock, std::chrono::milliseconds>;

// One run as stored. The run's status column is derived from state.status.
struct RunRecord {
  std::string id{};        // == state.id
  std::string host{};      // configured host name
  std::string repo{};      // the source repository
  std::string pipeline{};  // == state.pipeline
  std::string definition{};      // the .tollgate.yaml text the run is pinned to
  std::string definition_sha{};  // the commit it was read at
  pipeline::RunState state{};
  Instant created_at{};
  Instant updated_at{};
  std::optional<Instant> finished_at{};
};

// The release's `version` value, else the source's short sha (the runs.version column).
[[nodiscard]] std::string run_version(const pipeline::RunState& state);

// Stage name -> the stage's repository (where its promotion and revert PRs live).
using StageRepos = std::map<std::string, std::string, std::less<>>;
[[nodiscard]] StageRepos stage_repos(const pipeline::Pipeline& def);

// Marks an input applied. true: newly consumed; false: it was applied before (the caller rolls back
// or skips it).
[[nodiscard]] tl::expected<bool, std::string> try_consume(store::Db& db, std::string_view key, Instant now);

// A new run (updated_at = created_at; finished_at from the state when it is already terminal).
// Fails when the id exists or record.id / record.pipeline disagree with the state.
[[nodiscard]] tl::expected<void, std::string> insert_run(store::Db& db, const RunRecord& record);
// Nothing when there is no such run; an error naming the run when its stored state is malformed.
[[nodiscard]] tl::expected<std::optional<RunRecord>, std::string> load_run(store::Db& db, std::string_view id);

struct SaveResult {
  std::size_t audited = 0;          // audit rows written
  std::size_t scheduled = 0;        // jobs newly scheduled
  std::size_t duplicate_jobs = 0;   // jobs whose key was scheduled before (not scheduled again)
};
// Writes the outcome of one input for run meta.id: step.run as the run's state and status
// (finished_at while terminal, cleared when a /retry makes it run again), its refs (replaced, in
// the stage repos of `repos`), one audit row per transition (seq continuing from the run's last,
// input = input_key) and the jobs (by key, at most once ever; due at job.at, else now).
[[nodiscard]] tl::expected<SaveResult, std::string> save_step(store::Db& db, const RunRecord& meta,
                                                            const pipeline::Step& step, std::string_view input_key,
                                                            Instant now, const StageRepos& repos);

// Runs with a stage whose promotion or revert PR is `pr` in `repo` / with `sha` as a stage's head,
// merge or revert head in `repo`: their ids, oldest run first (the caller loads each, so one broken
// run does not keep the others from their webhooks).
[[nodiscard]] tl::expected<std::vector<std::string>, std::string> runs_by_pr(store::Db& db, std::string_view host,
                                                                             std::string_view repo, std::int64_t pr);
[[nodiscard]] tl::expected<std::vector<std::string>, std::string> runs_by_sha(store::Db& db, std::string_view host,
                                                                              std::string_view repo, std::string_view sha);
// Queued and running runs of one pipeline (source host + repo + pipeline name), oldest first.
[[nodiscard]] tl::expected<std::vector<RunRecord>, std::string> in_flight_runs(store::Db& db, std::string_view host,
                                                                               std::string_view repo,
                                                                               std::string_view pipeline);
// The newest run of one pipeline (source host + repo + pipeline name) created after `created_at`,
// whatever its status; nothing when there is none.
[[nodiscard]] tl::expected<std::optional<std::string>, std::string> newer_run(store::Db& db, std::string_view host,
                                                                              std::string_view repo,
                                                                              std::string_view pipeline,
                                                                              Instant created_at);
// The newest `limit` runs, newest first, of one status when given.
[[nodiscard]] tl::expected<std::vector<RunRecord>, std::string> list_runs(
    store::Db& db, std::size_t limit, std::optional<pipeline::RunStatus> status = std::nullopt);

struct AuditRow {
  std::int64_t seq = 0;
  Instant at{};
  std::string stage{};  // empty: the run itself
  std::string from, to;
  std::string actor{};
  std::string reason{};
  std::string input{};  // the consumed input's key
  friend bool operator==(const AuditRow&, const AuditRow&) = default;
};
// A run's audit log in seq order.
[[nodiscard]] tl::expected<std::vector<AuditRow>, std::string> audit_of(store::Db& db, std::string_view run_id);

// ---------------------------------------------------------------------------------------------
// Jobs

struct ClaimedJob {
  std::int64_t id = 0;  // the result goes back to the engine as input "job:<id>"
  std::string key{};
  std::string run_id{};
  pipeline::Job job{};
  Instant due_at{};
  Instant lease_until{};
  int attempts = 0;          // including this one
  std::string last_error{};  // of the previous attempt
};

struct Claim {
  std::vector<ClaimedJob> jobs;
  // Jobs whose stored JSON could not be read: failed in place (so they block nothing), with why.
  std::vector<std::string> broken;
};

// Leases up to `limit` due jobs to `owner` until now + lease: pending jobs due by now and leased
// jobs whose lease ran out (a crashed worker's), by due_at then id, status updates (commit status,
// status comment) counted as due a second later; attempts + 1.
// Per-stage order: a job other than a timer is not claimed while an earlier one (lower id, not a
// timer) of the same stage of the same run is unfinished (pending or leased), so a stage's side
// effects happen in the order the engine scheduled them, retries included; except that jobs that
// move the stage on do not wait for status updates. Different stages, and
// timers, are claimed regardless.
[[nodiscard]] tl::expected<Claim, std::string> claim_jobs(store::Db& db, Instant now, std::string_view owner,
                                                          std::chrono::milliseconds lease, std::size_t limit);
// The three ends of a lease; each only while the job is leased by `owner` (false otherwise: the
// lease ran out and another worker has it, or it is finished).
[[nodiscard]] tl::expected<bool, std::string> complete_job(store::Db& db, std::int64_t id, std::string_view owner,
                                                           Instant now);
[[nodiscard]] tl::expected<bool, std::string> retry_job(store::Db& db, std::int64_t id, std::string_view owner,
                                                        Instant due_at, std::string_view error);
[[nodiscard]] tl::expected<bool, std::string> fail_job(store::Db& db, std::int64_t id, std::string_view owner,
                                                       std::string_view error, Instant now);
// At start: the leased jobs of processes that are gone (killed, crashed) go back to pending at once
// instead of after their lease, with that attempt not counted (a crash is not the job's failure).
// Those are every leased job when one process serves the database (SQLite; owner_prefix empty),
// else the jobs whose owner starts with `owner_prefix` (this replica's earlier processes, on
// PostgreSQL). Returns how many.
[[nodiscard]] tl::expected<std::int64_t, std::string> release_leases(store::Db& db, std::string_view owner_prefix = {});
// Extends the leases `owner` holds on `ids` to `until` (a worker still at the job; a replica that
// dies stops renewing, and its jobs are claimable once the lease runs out). Returns how many were
// still held.
[[nodiscard]] tl::expected<std::int64_t, std::string> renew_leases(store::Db& db, const std::vector<std::int64_t>& ids,
                                                                   std::string_view owner, Instant until);

// Inside a write transaction, before runs are read to be changed (a run's state, its audit rows and
// jobs): on PostgreSQL, waits until no other replica's transaction is changing runs and holds that
// to the end of this transaction. So a run is never changed from a stale read, queueing and
// superseding see every run of their pipeline, and audit rows commit in id order (the event stream
// reads on from the last id it sent). On SQLite, whose one writer orders every transaction, a no-op.
[[nodiscard]] tl::expected<void, std::string> lock_runs(store::Db& db);
// When claim_jobs may next have something: the earliest due_at of a pending job not held back by
// per-run order, or lease_until of a leased job. Nothing: no pending or leased job.
[[nodiscard]] tl::expected<std::optional<Instant>, std::string> next_due(store::Db& db);
// Jobs per state (pending, leased, done, failed; every state present).
[[nodiscard]] tl::expected<std::map<std::string, std::int64_t>, std::string> job_counts(store::Db& db);

}  // namespace tollgate::service::runs
