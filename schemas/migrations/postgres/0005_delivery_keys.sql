-- Nothing to do on PostgreSQL: the SQLite inbox replaced its UNIQUE (host, delivery_id) index by
-- keys merged in sorted runs (schemas/migrations/0005_delivery_keys.sql), which relies on being
-- the database's only writer. Here several replicas insert at once and the UNIQUE constraint is
-- what makes them agree; this version number keeps the two schemas numbered alike.
SELECT 1;
