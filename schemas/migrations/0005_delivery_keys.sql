-- Replay detection without an index write per delivery. Delivery ids from the hosts are GUIDs in
-- no order: in the UNIQUE (host, delivery_id) index, each delivery landed on a leaf page of its
-- own and wrote a whole 32 KiB page to the WAL and again at the checkpoint, which halved intake
-- (bench/RESULTS.md, 2026-11-27). Now the inbox keeps the keys of its latest deliveries in memory
-- and merges them into delivery_keys in sorted runs, which touch each leaf once per run
-- (service/inbox.cpp, DeliveryKeys). delivery_keys_merged says how far: every delivery with an id
-- up to `through` has its key in delivery_keys; the keys of later ones are read from deliveries
-- at start. The deliveries table is rebuilt because SQLite cannot drop a UNIQUE constraint; ids,
-- bodies and order are kept. Runs with foreign keys off (the inbox turns them on afterwards and
-- checks them).
CREATE TABLE delivery_keys (
  host        TEXT    NOT NULL,
  delivery_id TEXT    NOT NULL,
  delivery    INTEGER NOT NULL,  -- deliveries.id
  PRIMARY KEY (host, delivery_id)
) WITHOUT ROWID;
INSERT INTO delivery_keys (host, delivery_id, delivery) SELECT host, delivery_id, id FROM deliveries ORDER BY host, delivery_id;
CREATE TABLE delivery_keys_merged (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  through INTEGER NOT NULL
);
INSERT INTO delivery_keys_merged (id, through) SELECT 1, COALESCE(MAX(id), 0) FROM deliveries;
DROP VIEW inbox;
CREATE TABLE deliveries_rebuilt (
  id            INTEGER PRIMARY KEY,
  host          TEXT    NOT NULL,            -- configured host name (/hooks/<host>)
  delivery_id   TEXT    NOT NULL,            -- X-GitHub-Delivery, X-Gitea-Delivery, GitLab idempotency key
  event         TEXT    NOT NULL,            -- the event header's value
  repo          TEXT    NOT NULL DEFAULT '', -- owner/name from the payload, when it names one
  received_at   INTEGER NOT NULL,            -- unix milliseconds
  body          BLOB    NOT NULL,            -- the payload as received, or encoded (body_encoding)
  body_encoding TEXT    NOT NULL DEFAULT 'identity' CHECK (body_encoding IN ('identity', 'lz4')),
  body_size     INTEGER                      -- the size as received
);
INSERT INTO deliveries_rebuilt (id, host, delivery_id, event, repo, received_at, body, body_encoding, body_size)
  SELECT id, host, delivery_id, event, repo, received_at, body, body_encoding, body_size FROM deliveries ORDER BY id;
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
CREATE VIEW inbox AS
  SELECT d.id, d.host, d.delivery_id, d.event, d.repo, d.received_at, d.body, d.body_encoding, d.body_size,
         COALESCE(o.state, 'new') AS state, o.event_json, o.error, o.processed_at
  FROM deliveries d LEFT JOIN delivery_outcomes o ON o.delivery = d.id;
