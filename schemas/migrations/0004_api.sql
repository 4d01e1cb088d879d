-- What the REST API and the dashboard read (docs/api.md), kept next to the runs' state so no
-- listing has to parse it: each run's release version, and one row per stage of each run with its
-- status, its rollback and when it ended. service/run_store.cpp writes both with the run.

ALTER TABLE runs ADD COLUMN version TEXT NOT NULL DEFAULT '';  -- release.version, else the short sha

CREATE TABLE run_stages (
  run_id       TEXT    NOT NULL REFERENCES runs (id),
  stage        TEXT    NOT NULL,
  host         TEXT    NOT NULL,
  repo         TEXT    NOT NULL,
  pipeline     TEXT    NOT NULL,
  status       TEXT    NOT NULL,
  rollback     TEXT    NOT NULL DEFAULT 'none',  -- none | opening | merging | done | failed
  run_created  INTEGER NOT NULL,
  started_at   INTEGER,                          -- when the run reached the stage (null: never)
  finished_at  INTEGER,                          -- when the stage ended (promoted, failed, ...)
  PRIMARY KEY (run_id, stage)
) WITHOUT ROWID;
-- Each stage's newest run (GET /api/v1/pipelines, `latest`): a stage's rows newest first, so the
-- walk stops at the first match without reading the runs' rows (whose state and definition fill
-- overflow pages).
CREATE INDEX run_stages_newest ON run_stages (host, repo, pipeline, stage, run_created, started_at, status);
-- ... and the one promoted most recently (the environment's version: an older run retried after a
-- newer one put its own back).
CREATE INDEX run_stages_finished ON run_stages (host, repo, pipeline, stage, finished_at, status);
-- Delivery metrics: a run's rolled-back stages among the few such rows, and when a run reached
-- production (its run-level transition to succeeded, kept when a rollback fails the run later).
CREATE INDEX audit_succeeded ON audit (run_id, at) WHERE stage = '' AND to_state = 'succeeded';
CREATE INDEX run_stages_rolled_back ON run_stages (run_id, finished_at) WHERE rollback <> 'none';

-- Runs of one pipeline newest first (the API's filters), and the runs that ended in a window
-- (delivery metrics) read from the index alone.
CREATE INDEX runs_by_pipeline_created ON runs (pipeline, created_at);
CREATE INDEX runs_delivery ON runs (finished_at, status, host, repo, pipeline, created_at, id) WHERE finished_at IS NOT NULL;

-- Runs written by an older tollgate.
UPDATE runs SET version = COALESCE(
  (SELECT json_extract(value, '$[1]') FROM json_each(runs.state, '$.release') WHERE json_extract(value, '$[0]') = 'version'),
  substr(json_extract(runs.state, '$.source.sha'), 1, 7), '');
INSERT INTO run_stages (run_id, stage, host, repo, pipeline, status, rollback, run_created, started_at, finished_at)
  SELECT r.id, json_extract(s.value, '$.name'), r.host, r.repo, r.pipeline, json_extract(s.value, '$.status'),
         COALESCE(json_extract(s.value, '$.rollback'), 'none'), r.created_at, json_extract(s.value, '$.started_at'),
         json_extract(s.value, '$.finished_at')
  FROM runs r, json_each(r.state, '$.stages') s;
