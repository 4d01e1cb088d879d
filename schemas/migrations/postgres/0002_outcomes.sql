-- PostgreSQL twin of ../0002_outcomes.sql.
-- 1. Normalisation outcomes move out of the delivery row.
CREATE TABLE delivery_outcomes (
  delivery      BIGINT  PRIMARY KEY REFERENCES deliveries (id),
  state         TEXT    NOT NULL CHECK (state IN ('normalized', 'ignored', 'failed')),
  event_json    TEXT,
  error         TEXT,
  processed_at  BIGINT  NOT NULL
);
INSERT INTO delivery_outcomes (delivery, state, event_json, error, processed_at)
  SELECT id, state, event_json, error, received_at FROM deliveries WHERE state <> 'new';
DROP INDEX deliveries_by_state;
ALTER TABLE deliveries DROP COLUMN state;
ALTER TABLE deliveries DROP COLUMN event_json;
ALTER TABLE deliveries DROP COLUMN error;
-- 2. Bodies may be stored compressed (service/body_codec.hpp): body_size is the size as received.
ALTER TABLE deliveries ADD COLUMN body_encoding TEXT NOT NULL DEFAULT 'identity'
  CHECK (body_encoding IN ('identity', 'lz4'));
ALTER TABLE deliveries ADD COLUMN body_size BIGINT;
UPDATE deliveries SET body_size = length(body);
-- 3. One place to read a delivery with its state.
CREATE VIEW inbox AS
  SELECT d.id, d.host, d.delivery_id, d.event, d.repo, d.received_at, d.body, d.body_encoding, d.body_size,
         COALESCE(o.state, 'new') AS state, o.event_json, o.error, o.processed_at
  FROM deliveries d LEFT JOIN delivery_outcomes o ON o.delivery = d.id;
