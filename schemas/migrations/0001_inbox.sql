-- The durable inbox of webhook deliveries. A delivery is stored once per (host, delivery_id):
-- a redelivery of the same id is recognised and not stored again.
CREATE TABLE deliveries (
  id            INTEGER PRIMARY KEY,
  host          TEXT    NOT NULL,            -- configured host name (/hooks/<host>)
  delivery_id   TEXT    NOT NULL,            -- X-GitHub-Delivery, X-Gitea-Delivery, GitLab idempotency key
  event         TEXT    NOT NULL,            -- the event header's value
  repo          TEXT    NOT NULL DEFAULT '', -- owner/name from the payload, when it names one
  received_at   INTEGER NOT NULL,            -- unix milliseconds
  body          BLOB    NOT NULL,            -- the JSON payload as received
  state         TEXT    NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'normalized', 'ignored', 'failed')),
  event_json    TEXT,                        -- the normalised Event (state normalized)
  error         TEXT,                        -- why it failed (state failed)
  UNIQUE (host, delivery_id)
);
CREATE INDEX deliveries_by_state ON deliveries (state, id);
