-- PostgreSQL twin of ../0004_api.sql: what the REST API and the dashboard read.
ALTER TABLE runs ADD COLUMN version TEXT NOT NULL DEFAULT '';

CREATE TABLE run_stages (
  run_id       TEXT    NOT NULL REFERENCES runs (id),
  stage        TEXT    NOT NULL,
  host         TEXT    NOT NULL,
  repo         TEXT    NOT NULL,
  pipeline     TEXT    NOT NULL,
  status       TEXT    NOT NULL,
  rollback     TEXT    NOT NULL DEFAULT 'none',
  run_created  BIGINT  NOT NULL,
  started_at   BIGINT,
  finished_at  BIGINT,
  PRIMARY KEY (run_id, stage)
);
CREATE INDEX run_stages_newest ON run_stages (host, repo, pipeline, stage, run_created, started_at, status);
CREATE INDEX run_stages_finished ON run_stages (host, repo, pipeline, stage, finished_at, status);
CREATE INDEX audit_succeeded ON audit (run_id, at) WHERE stage = '' AND to_state = 'succeeded';
CREATE INDEX run_stages_rolled_back ON run_stages (run_id, finished_at) WHERE rollback <> 'none';
CREATE INDEX runs_by_pipeline_created ON runs (pipeline, created_at);
CREATE INDEX runs_delivery ON runs (finished_at, status, host, repo, pipeline, created_at, id) WHERE finished_at IS NOT NULL;

-- Runs written by an older tollgate (state is RunState JSON).
UPDATE runs SET version = COALESCE(
  (SELECT r.value ->> 1 FROM jsonb_array_elements(runs.state::jsonb -> 'release') AS r(value) WHERE r.value ->> 0 = 'version' LIMIT 1),
  substr(runs.state::jsonb #>> '{source,sha}', 1, 7), '');
INSERT INTO run_stages (run_id, stage, host, repo, pipeline, status, rollback, run_created, started_at, finished_at)
  SELECT r.id, s.value ->> 'name', r.host, r.repo, r.pipeline, s.value ->> 'status',
         COALESCE(s.value ->> 'rollback', 'none'), r.created_at, (s.value ->> 'started_at')::BIGINT,
         (s.value ->> 'finished_at')::BIGINT
  FROM runs r, jsonb_array_elements(r.state::jsonb -> 'stages') AS s(value);
