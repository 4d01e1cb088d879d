-- The promotion engine's durable state (service/run_store.hpp). Each input (a delivery, a job's
-- result, a timer, an API action) is applied in one transaction: it is marked consumed, the run's
-- new state is written with its audit rows and the jobs it schedules. Times are unix milliseconds.

-- 1. Runs: the pinned definition and the engine's RunState (pipeline::to_json).
CREATE TABLE runs (
  id              TEXT    PRIMARY KEY,
  host            TEXT    NOT NULL,            -- configured host name
  repo            TEXT    NOT NULL,            -- the source repository (owner/name)
  pipeline        TEXT    NOT NULL,
  status          TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'aborted', 'superseded')),
  definition      TEXT    NOT NULL,            -- the .tollgate.yaml text the run is pinned to
  definition_sha  TEXT    NOT NULL,            -- the commit it was read at
  state           TEXT    NOT NULL,            -- RunState as JSON; status above is derived from it
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  finished_at     INTEGER                      -- set while the run is in a terminal status
);
-- In-flight runs of one pipeline (concurrency), oldest first.
CREATE INDEX runs_by_pipeline ON runs (host, repo, pipeline, status, created_at);
CREATE INDEX runs_by_created ON runs (created_at);

-- 2. What routes webhooks to runs: each stage's promotion and revert PR (kind 'pr', ref = the
-- number) and its head, merge and revert head commits (kind 'sha'), in the stage's repository.
-- Derived from the state on every save (a run's rows are replaced).
CREATE TABLE run_refs (
  host    TEXT NOT NULL,
  repo    TEXT NOT NULL COLLATE NOCASE,        -- hosts treat owner/name case-insensitively
  kind    TEXT NOT NULL CHECK (kind IN ('pr', 'sha')),
  ref     TEXT NOT NULL,
  run_id  TEXT NOT NULL REFERENCES runs (id),
  stage   TEXT NOT NULL,
  PRIMARY KEY (host, repo, kind, ref, run_id, stage)
) WITHOUT ROWID;
CREATE INDEX run_refs_by_run ON run_refs (run_id);

-- 3. The audit log: one row per engine Transition, numbered 1.. per run without gaps.
CREATE TABLE audit (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id      TEXT    NOT NULL REFERENCES runs (id),
  seq         INTEGER NOT NULL,
  at          INTEGER NOT NULL,
  stage       TEXT    NOT NULL DEFAULT '',     -- '': the run itself
  from_state  TEXT    NOT NULL,
  to_state    TEXT    NOT NULL,
  actor       TEXT    NOT NULL,
  reason      TEXT    NOT NULL DEFAULT '',
  input       TEXT,                            -- the key of the input that caused it (consumed.key)
  UNIQUE (run_id, seq)
);

-- 4. Jobs (side effects and timers). The key is the engine's idempotency key: a key seen once is
-- never scheduled again. A job is pending until due, leased while a worker runs it (a lease that
-- runs out makes it claimable again), then done or failed.
CREATE TABLE jobs (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  key          TEXT    NOT NULL UNIQUE,
  run_id       TEXT    NOT NULL REFERENCES runs (id),
  kind         TEXT    NOT NULL,               -- pipeline::to_string(JobKind)
  stage        TEXT    NOT NULL DEFAULT '',
  job          TEXT    NOT NULL,               -- the pipeline::Job as JSON
  due_at       INTEGER NOT NULL,
  state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done', 'failed')),
  lease_owner  TEXT,
  lease_until  INTEGER,
  attempts     INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT,
  created_at   INTEGER NOT NULL,
  finished_at  INTEGER
);
CREATE INDEX jobs_due ON jobs (state, due_at);
CREATE INDEX jobs_leased ON jobs (state, lease_until);
-- A run's unfinished side effects in order (per-run ordering of claims).
CREATE INDEX jobs_open_by_run ON jobs (run_id, id) WHERE state IN ('pending', 'leased') AND kind <> 'timer';

-- 5. Inputs already applied (delivery:<id>, job:<id>, api:<uuid>, ...): each is applied once.
CREATE TABLE consumed (
  key  TEXT    PRIMARY KEY,
  at   INTEGER NOT NULL
) WITHOUT ROWID;
