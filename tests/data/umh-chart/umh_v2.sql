-- UMH 0.29.0's database umh_v2 on a plain PostgreSQL, for tests: what the chart's post-init script creates in it.
-- Written from deployment/united-manufacturing-hub/templates/timescaledb/configmap.yaml, section "DATAMODEL V2"
-- (united-manufacturing-hub repository, commit f68e1bec4): the same tables, columns, constraints, functions, owners
-- and grants. Left out: TimescaleDB (CREATE EXTENSION timescaledb and the create_hypertable() calls on product and
-- state, which change how rows are stored, not names, columns or rights) and pg_stat_statements. The roles and the
-- database itself are created by the test (tests/pgcluster.py) as the script does: CREATE USER kafkatopostgresqlv2,
-- CREATE DATABASE umh_v2 OWNER kafkatopostgresqlv2, CREATE USER grafanareader.
-- Tables tag and tag_string come from the historian bridge: umh_v2-bridge-tables.sql.
\set ON_ERROR_STOP on

-- PostgreSQL 13, the chart's TimescaleDB image, lets every role create tables in schema public; 15 does not.
GRANT CREATE ON SCHEMA public TO PUBLIC;

CREATE TABLE IF NOT EXISTS asset (
  id SERIAL PRIMARY KEY,
  enterprise TEXT NOT NULL,
  site TEXT DEFAULT '' NOT NULL,
  area TEXT DEFAULT '' NOT NULL,
  line TEXT DEFAULT '' NOT NULL,
  workcell TEXT DEFAULT '' NOT NULL,
  origin_id TEXT DEFAULT '' NOT NULL,
  UNIQUE (enterprise, site, area, line, workcell, origin_id)
);

-- The asset lookups dashboards use; the chart's are plpgsql with the same signatures and volatility.
CREATE OR REPLACE FUNCTION get_asset_id(_enterprise text, _site text DEFAULT '', _area text DEFAULT '',
    _line text DEFAULT '', _workcell text DEFAULT '', _origin_id text DEFAULT '') RETURNS integer AS $$
  SELECT id FROM asset WHERE enterprise = _enterprise AND site = _site AND area = _area AND line = _line
    AND workcell = _workcell AND origin_id = _origin_id LIMIT 1
$$ LANGUAGE sql;
CREATE OR REPLACE FUNCTION get_asset_id_stable(_enterprise text, _site text DEFAULT '', _area text DEFAULT '',
    _line text DEFAULT '', _workcell text DEFAULT '', _origin_id text DEFAULT '') RETURNS integer AS $$
  SELECT get_asset_id(_enterprise, _site, _area, _line, _workcell, _origin_id)
$$ LANGUAGE sql STABLE;
CREATE OR REPLACE FUNCTION get_asset_id_immutable(_enterprise text, _site text DEFAULT '', _area text DEFAULT '',
    _line text DEFAULT '', _workcell text DEFAULT '', _origin_id text DEFAULT '') RETURNS integer AS $$
  SELECT get_asset_id(_enterprise, _site, _area, _line, _workcell, _origin_id)
$$ LANGUAGE sql IMMUTABLE;
CREATE OR REPLACE FUNCTION get_asset_ids(_enterprise text, _site text DEFAULT '', _area text DEFAULT '',
    _line text DEFAULT '', _workcell text DEFAULT '', _origin_id text DEFAULT '') RETURNS SETOF integer AS $$
  SELECT id FROM asset WHERE enterprise = _enterprise AND (_site = '' OR site = _site)
    AND (_area = '' OR area = _area) AND (_line = '' OR line = _line)
    AND (_workcell = '' OR workcell = _workcell) AND (_origin_id = '' OR origin_id = _origin_id)
$$ LANGUAGE sql;
CREATE OR REPLACE FUNCTION get_asset_ids_stable(_enterprise text, _site text DEFAULT '', _area text DEFAULT '',
    _line text DEFAULT '', _workcell text DEFAULT '', _origin_id text DEFAULT '') RETURNS SETOF integer AS $$
  SELECT get_asset_ids(_enterprise, _site, _area, _line, _workcell, _origin_id)
$$ LANGUAGE sql STABLE;
GRANT EXECUTE ON FUNCTION get_asset_id(text, text, text, text, text, text), get_asset_id_stable(text, text, text, text, text, text),
  get_asset_id_immutable(text, text, text, text, text, text), get_asset_ids(text, text, text, text, text, text),
  get_asset_ids_stable(text, text, text, text, text, text) TO grafanareader;

CREATE TABLE IF NOT EXISTS product_type (
  product_type_id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  external_product_type_id TEXT NOT NULL,
  cycle_time_ms INTEGER NOT NULL,
  asset_id INTEGER REFERENCES asset(id),
  CONSTRAINT external_product_asset_uniq UNIQUE (external_product_type_id, asset_id),
  CHECK (cycle_time_ms > 0)
);

CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE IF NOT EXISTS work_order (
  work_order_id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  external_work_order_id TEXT NOT NULL,
  asset_id INTEGER NOT NULL REFERENCES asset(id),
  product_type_id INTEGER NOT NULL REFERENCES product_type(product_type_id),
  quantity INTEGER NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  start_time TIMESTAMPTZ,
  end_time TIMESTAMPTZ,
  CONSTRAINT asset_workorder_uniq UNIQUE (asset_id, external_work_order_id),
  CHECK (quantity > 0),
  CHECK (status BETWEEN 0 AND 2),
  UNIQUE (asset_id, start_time),
  EXCLUDE USING gist (asset_id WITH =, tstzrange(start_time, end_time) WITH &&)
    WHERE (start_time IS NOT NULL AND end_time IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS product (
  product_type_id INTEGER REFERENCES product_type(product_type_id),
  product_batch_id TEXT,
  asset_id INTEGER REFERENCES asset(id),
  start_time TIMESTAMPTZ,
  end_time TIMESTAMPTZ NOT NULL,
  quantity INTEGER NOT NULL,
  bad_quantity INTEGER DEFAULT 0,
  CHECK (quantity > 0),
  CHECK (bad_quantity >= 0),
  CHECK (bad_quantity <= quantity),
  CHECK (start_time <= end_time),
  UNIQUE (asset_id, end_time, product_batch_id)
);
CREATE INDEX IF NOT EXISTS idx_products_asset_end_time ON product(asset_id, end_time DESC);

CREATE TABLE IF NOT EXISTS shift (
  shift_id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  asset_id INTEGER REFERENCES asset(id),
  start_time TIMESTAMPTZ NOT NULL,
  end_time TIMESTAMPTZ NOT NULL,
  CONSTRAINT shift_start_asset_uniq UNIQUE (start_time, asset_id),
  CHECK (start_time < end_time),
  EXCLUDE USING gist (asset_id WITH =, tstzrange(start_time, end_time) WITH &&)
);

CREATE TABLE IF NOT EXISTS state (
  asset_id INTEGER REFERENCES asset(id),
  start_time TIMESTAMPTZ NOT NULL,
  state INT NOT NULL,
  CHECK (state >= 0),
  UNIQUE (start_time, asset_id)
);
CREATE INDEX IF NOT EXISTS idx_states_asset_start_time ON state(asset_id, start_time DESC);

-- "FIX OWNERS" and the grants to grafanareader (the chart's ALTER TABLE tag/tag_string fail there: not yet created).
ALTER TABLE asset OWNER TO kafkatopostgresqlv2;
ALTER TABLE work_order OWNER TO kafkatopostgresqlv2;
ALTER TABLE product_type OWNER TO kafkatopostgresqlv2;
ALTER TABLE product OWNER TO kafkatopostgresqlv2;
ALTER TABLE shift OWNER TO kafkatopostgresqlv2;
ALTER TABLE state OWNER TO kafkatopostgresqlv2;
GRANT SELECT ON asset, work_order, product_type, product, shift, state TO grafanareader;
