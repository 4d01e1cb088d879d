-- Bodies are not kept forever (intake.keep_bodies, default 30 days; service/body_retention.cpp).
-- Once a delivery is done with (ignored, failed, or normalised and applied by the engine) and older
-- than that, its body is emptied; the row stays, with its delivery id (replay detection), its size
-- as received and its normalised event. Bodies are dropped in id order: every delivery with an id
-- up to `through` has had its body dropped, and `tollgate inbox` says so rather than showing an
-- empty body.
CREATE TABLE delivery_bodies_dropped (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  through BIGINT  NOT NULL
);
INSERT INTO delivery_bodies_dropped (id, through) VALUES (1, 0);
