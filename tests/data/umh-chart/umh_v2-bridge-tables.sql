-- The tables UMH's kafka-to-postgres historian bridge creates in umh_v2 when it starts, for tests: the init_statement
-- of its two sql_insert outputs, written from deployment/united-manufacturing-hub/templates/bridges/kafka_to_postgres/
-- historian/configmap.yaml (united-manufacturing-hub repository, commit f68e1bec4). The bridge runs it as its own
-- user, so the test runs it as kafkatopostgresqlv2. Left out: create_hypertable() (TimescaleDB) and the LOCK TABLE
-- statements that serialise concurrent bridge starts.
\set ON_ERROR_STOP on

CREATE TABLE IF NOT EXISTS tag (
  timestamp TIMESTAMPTZ NOT NULL,
  name TEXT NOT NULL,
  origin TEXT NOT NULL,
  asset_id INT REFERENCES asset(id) NOT NULL,
  value REAL,
  UNIQUE (name, asset_id, timestamp)
);
CREATE INDEX IF NOT EXISTS idx_tag_asset_timestamp ON tag (asset_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_tag_name ON tag (name);
CREATE INDEX IF NOT EXISTS idx_tag_asset_name ON tag (asset_id, name);
ALTER TABLE tag OWNER TO kafkatopostgresqlv2;
GRANT SELECT ON public.asset TO grafanareader;
GRANT SELECT ON public.tag TO grafanareader;

CREATE TABLE IF NOT EXISTS tag_string (
  timestamp TIMESTAMPTZ NOT NULL,
  name TEXT NOT NULL,
  origin TEXT NOT NULL,
  asset_id INT REFERENCES asset(id) NOT NULL,
  value TEXT,
  UNIQUE (name, asset_id, timestamp)
);
CREATE INDEX IF NOT EXISTS idx_tag_string_asset_timestamp ON tag_string (asset_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_tag_string_name ON tag_string (name);
CREATE INDEX IF NOT EXISTS idx_tag_string_asset_name ON tag_string (asset_id, name);
ALTER TABLE tag_string OWNER TO kafkatopostgresqlv2;
GRANT SELECT ON public.asset TO grafanareader;
GRANT SELECT ON public.tag_string TO grafanareader;
