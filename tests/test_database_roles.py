"""The TimescaleDB setup Job against a real PostgreSQL 15: roles that can read (and write) what they should.

Each test builds UMH 0.29.0's umh_v2 as the chart's SQL does (tests/data/umh-chart/umh_v2.sql, and the historian
bridge's tables from umh_v2-bridge-tables.sql) in a throwaway cluster (tests/pgcluster.py), then runs the rendered
Job's command line, psql -v pw_<user>=... -f setup.sql, with its environment as Kubernetes would expand it: only the
connection points at the test cluster. TimescaleDB is not installed: its create_hypertable() calls are left out of
the schema, and its retention functions, which the Job calls, are stand-ins that record their calls.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from umhctl.blueprint.loader import load_blueprint
from umhctl.blueprint.model import Database, SiteBlueprint
from umhctl.render import render_site
from umhctl.render.system import K3S_MANIFESTS
from umhctl.render.umh import UMH_TABLES, setup_sql
from umhctl.secrets import SecretStore

from . import nodered_js, umh_bridge
from .conftest import BLUEPRINTS, EXAMPLES, ROOT
from .pgcluster import AVAILABLE, PG_BIN, Cluster, cluster

pytestmark = pytest.mark.skipif(
    not AVAILABLE, reason="needs PostgreSQL 15 (Debian package postgresql; scripts/setup.sh installs it)"
)
DATA = ROOT / "tests" / "data" / "umh-chart"
CHART_ROLES = ("kafkatopostgresqlv2", "grafanareader")
RETENTION_STANDINS = """
CREATE SCHEMA umhctl_test;
CREATE TABLE umhctl_test.retention_calls (n serial, call text);
CREATE FUNCTION public.remove_retention_policy(relation regclass, if_exists boolean DEFAULT false) RETURNS void
  LANGUAGE sql AS $$ INSERT INTO umhctl_test.retention_calls (call) VALUES (format('remove %s', relation)) $$;
CREATE FUNCTION public.add_retention_policy(relation regclass, drop_after interval) RETURNS integer
  LANGUAGE sql AS $$ INSERT INTO umhctl_test.retention_calls (call) VALUES (format('add %s %s', relation, drop_after))
  RETURNING 1 $$;
"""


@pytest.fixture(scope="module")
def pg() -> Iterator[Cluster]:
    """The cluster, with umh_v2 built once as two templates: before and after the bridge created its tables."""
    with cluster() as c:
        for role in CHART_ROLES:
            c.psql(f"CREATE USER {role}", database="postgres")
        for template, bridge_tables in (("umh_v2_installed", False), ("umh_v2_running", True)):
            c.psql("CREATE DATABASE umh_v2 OWNER kafkatopostgresqlv2", database="postgres")
            c.psql(file=DATA / "umh_v2.sql")
            c.psql(RETENTION_STANDINS)
            if bridge_tables:
                create_bridge_tables(c)
            c.psql(f"ALTER DATABASE umh_v2 RENAME TO {template}", database="postgres")
        yield c


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One secret store for the module: renders are cached, and a re-render keeps the users' passwords."""
    return tmp_path_factory.mktemp("secrets")


def fresh_umh_v2(pg: Cluster, *, bridge_tables: bool = True) -> None:
    """umh_v2 as a newly installed chart has it; the bridge's tables only once the bridge has started."""
    template = "umh_v2_running" if bridge_tables else "umh_v2_installed"
    pg.psql("DROP DATABASE IF EXISTS umh_v2 WITH (FORCE)", database="postgres")
    pg.psql(f"CREATE DATABASE umh_v2 OWNER kafkatopostgresqlv2 TEMPLATE {template}", database="postgres")


def create_bridge_tables(pg: Cluster) -> None:
    pg.psql(file=DATA / "umh_v2-bridge-tables.sql", role="kafkatopostgresqlv2")


def _docs(path: str, files: dict[str, bytes]) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(files[path].decode()) if d is not None]


class HubSetup:
    """The rendered setup Job of one hub, and what Kubernetes would hand it: its SQL file and its Secrets."""

    def __init__(self, files: dict[str, bytes]) -> None:
        configmap, self.job = _docs(f"{K3S_MANIFESTS}/umhctl-timescaledb-setup.yaml", files)
        self.sql = configmap["data"]["setup.sql"]
        self.secrets = {
            d["metadata"]["name"]: d["stringData"] for d in _docs(f"{K3S_MANIFESTS}/umhctl-secrets.yaml", files)
        }

    @property
    def passwords(self) -> dict[str, str]:
        return dict(self.secrets["umhctl-database-users"])

    def run(self, pg: Cluster, tmp: Path, *, sql: str | None = None) -> subprocess.Popen[str]:
        """Start the Job's container command, as Kubernetes expands it, against the test cluster."""
        (container,) = self.job["spec"]["template"]["spec"]["containers"]
        env: dict[str, str] = {}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                # The chart's own superuser secret is not rendered by umhctl; the test cluster trusts postgres.
                env[var["name"]] = self.secrets.get(ref["name"], {}).get(ref["key"], "chart-generated")
        # Only the connection changes: the test cluster's socket, where TLS does not apply.
        env |= {"PGHOST": str(pg.socket_dir), "PGSSLMODE": "disable", "PATH": pg.env()["PATH"]}
        (mount,) = container["volumeMounts"]
        script = tmp / "setup.sql"
        script.write_text(sql if sql is not None else self.sql)
        argv = [_k8s_expand(a, env).replace(mount["mountPath"] + "/setup.sql", str(script)) for a in container["args"]]
        assert container["command"] == ["psql"]
        return subprocess.Popen(
            [str(PG_BIN / "psql"), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run_to_end(self, pg: Cluster, tmp: Path, *, sql: str | None = None) -> tuple[int, str]:
        proc = self.run(pg, tmp, sql=sql)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err


def _k8s_expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args: defined variables are replaced, $$ is a literal $."""
    return re.sub(r"\$\$|\$\((\w+)\)", lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), arg)


@functools.cache
def render(path: Path, secrets: Path) -> tuple[SiteBlueprint, dict[str, HubSetup]]:
    loaded = load_blueprint(path)
    setups = {}
    for r in render_site(loaded, SecretStore.for_blueprint(loaded.blueprint, path.parent, secrets)):
        files = {f.path: f.content for f in r.state.files}
        if f"{K3S_MANIFESTS}/umhctl-timescaledb-setup.yaml" in files:
            setups[r.device] = HubSetup(files)
    return loaded.blueprint, setups


HUBS = [(path, hub.name) for path in EXAMPLES for hub in load_blueprint(path).blueprint.hubs()]


def probe(pg: Cluster, user: str, password: str, statements: list[str]) -> list[bool]:
    """Whether `user`, logged in with its password, may run each statement: one session, one DO block each."""
    blocks = [
        f"DO $probe$ BEGIN EXECUTE $sql${sql}$sql$; RAISE NOTICE 'probe {i}: allowed';\n"
        f"EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'probe {i}: denied'; END $probe$;"
        for i, sql in enumerate(statements)
    ]
    script = pg.socket_dir / f"probe-{user}.sql"
    script.write_text("\n".join(blocks))
    err = pg.psql(file=script, user=user, password=password).stderr
    verdicts = dict(re.findall(r"probe (\d+): (allowed|denied)", err))
    return [verdicts[str(i)] == "allowed" for i in range(len(statements))]


def allowed(pg: Cluster, user: str, password: str, sql: str) -> bool:
    (verdict,) = probe(pg, user, password, [sql])
    return verdict


WRITES = {
    "insert an asset": "INSERT INTO asset (enterprise) VALUES ('role-test') ON CONFLICT DO NOTHING",
    "insert a tag row": "INSERT INTO tag VALUES (now(), 'role-test', 'test', (SELECT min(id) FROM asset), 1)",
    "update a tag row": "UPDATE tag SET value = 2 WHERE name = 'role-test'",
    "delete a tag row": "DELETE FROM tag WHERE name = 'role-test'",
    "insert a string": "INSERT INTO tag_string VALUES (now(), 'role-test', 'test', (SELECT min(id) FROM asset), 'x')",
}
NEVER = {
    "create a table": "CREATE TABLE role_test (x int)",
    "truncate tag": "TRUNCATE tag",
    "drop tag": "DROP TABLE tag",
    "alter tag": "ALTER TABLE tag ADD COLUMN role_test int",
}


def check_roles(pg: Cluster, database: Database, passwords: dict[str, str]) -> None:
    pg.psql("INSERT INTO asset (enterprise, site) VALUES ('acme', 'roles') ON CONFLICT DO NOTHING")
    reads = [f"SELECT count(*) FROM {table}" for table in UMH_TABLES]
    reads.append("SELECT get_asset_id_immutable('acme', 'roles')")
    for user in database.users:
        password = passwords[user.name]
        wrong = pg.psql("SELECT 1", user=user.name, password=password + "-wrong", check=False)
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
        verdicts = probe(pg, user.name, password, reads + list(WRITES.values()) + list(NEVER.values()))
        assert verdicts[: len(reads)] == [True] * len(reads), (user.name, reads)
        writes = dict(zip(WRITES, verdicts[len(reads) : len(reads) + len(WRITES)], strict=True))
        assert writes == {what: user.role == "readwrite" for what in WRITES}, user.name
        never = dict(zip(NEVER, verdicts[len(reads) + len(WRITES) :], strict=True))
        assert never == {what: False for what in NEVER}, user.name


@pytest.mark.parametrize(("path", "hub"), HUBS, ids=[f"{p.stem}-{h}" for p, h in HUBS])
def test_each_database_user_can_do_what_its_role_says(
    pg: Cluster, secrets: Path, tmp_path: Path, path: Path, hub: str
) -> None:
    bp, setups = render(path, secrets)
    setup = setups[hub]
    fresh_umh_v2(pg)
    code, err = setup.run_to_end(pg, tmp_path)
    assert code == 0, err
    assert "waiting for table" not in err, "the tables were there"
    database = next(d for d in bp.databases if d.device == hub)
    check_roles(pg, database, setup.passwords)
    retention = pg.psql("SELECT call FROM umhctl_test.retention_calls ORDER BY n").stdout.split("\n")[:-1]
    days = database.retention.removesuffix("d") if database.retention else None
    assert retention == ["remove tag", f"add tag {days} days", "remove tag_string", f"add tag_string {days} days"]
    # The bridge restarts: its init statement recreates nothing and still may create tables, which come with rights.
    create_bridge_tables(pg)
    pg.psql("CREATE TABLE tag_future (x int)", role="kafkatopostgresqlv2")
    for user in database.users:
        assert allowed(pg, user.name, setup.passwords[user.name], "SELECT * FROM tag_future")
        assert allowed(pg, user.name, setup.passwords[user.name], "INSERT INTO tag_future VALUES (1)") is (
            user.role == "readwrite"
        )
    assert setup.run_to_end(pg, tmp_path)[0] == 0, "the Job runs again (a retry, a new password) without harm"


def test_the_retrofit_mes_export_account_reads_the_historian(pg: Cluster, secrets: Path, tmp_path: Path) -> None:
    _, setups = render(BLUEPRINTS / "retrofit-site.yaml", secrets)
    setup = setups["hub-assembly"]
    fresh_umh_v2(pg)
    assert setup.run_to_end(pg, tmp_path)[0] == 0
    pg.psql(
        "INSERT INTO asset (enterprise, site, area, line, workcell) VALUES ('acme', 'dortmund', 'assembly', 'line-1', "
        "'press-fit'); INSERT INTO tag VALUES (now(), 'oilTemperature', 'unknown', 1, 41.5)",
        role="kafkatopostgresqlv2",
    )
    proc = pg.psql(
        "SELECT a.workcell, t.name, t.value FROM tag t JOIN asset a ON a.id = t.asset_id",
        user="mesexport",
        password=setup.passwords["mesexport"],
    )
    assert proc.stdout.strip() == "press-fit|oilTemperature|41.5"


def test_a_role_change_takes_rights_away(pg: Cluster, secrets: Path, tmp_path: Path, demo_text: str) -> None:
    demo = BLUEPRINTS / "demo-site.yaml"
    _, setups = render(demo, secrets)
    fresh_umh_v2(pg)
    assert setups["hub-01"].run_to_end(pg, tmp_path)[0] == 0
    passwords = setups["hub-01"].passwords
    pg.psql("INSERT INTO asset (enterprise) VALUES ('acme')")
    assert allowed(pg, "nodered", passwords["nodered"], WRITES["insert a tag row"])
    copy = tmp_path / "site"
    copy.mkdir()
    shutil.copy(BLUEPRINTS / "known_hosts", copy)
    for name in ("dashboards", "files"):
        shutil.copytree(BLUEPRINTS / name, copy / name)
    (copy / "demo-site.yaml").write_text(demo_text.replace("role: readwrite", "role: readonly"))
    _, setups = render(copy / "demo-site.yaml", secrets)
    assert setups["hub-01"].run_to_end(pg, tmp_path)[0] == 0
    assert not allowed(pg, "nodered", passwords["nodered"], WRITES["insert a tag row"])
    assert allowed(pg, "nodered", passwords["nodered"], "SELECT count(*) FROM tag")


def test_the_job_waits_for_the_bridge_tables(pg: Cluster, secrets: Path, tmp_path: Path) -> None:
    bp, setups = render(BLUEPRINTS / "demo-site.yaml", secrets)
    database = bp.databases[0]
    sql = setup_sql(bp, bp.device("hub-01"), database, wait_seconds=30, poll_seconds=0.2)
    fresh_umh_v2(pg, bridge_tables=False)
    job = setups["hub-01"].run(pg, tmp_path, sql=sql)
    time.sleep(0.6)
    assert job.poll() is None, "it must not give up or go on while tag and tag_string are missing"
    create_bridge_tables(pg)
    _, err = job.communicate(timeout=30)
    assert job.returncode == 0, err
    assert "umhctl: waiting for table(s) tag, tag_string in umh_v2, created by UMH's historian bridge" in err
    check_roles(pg, database, setups["hub-01"].passwords)


def test_the_job_gives_up_after_its_bound_with_a_clear_message(pg: Cluster, secrets: Path, tmp_path: Path) -> None:
    bp, setups = render(BLUEPRINTS / "demo-site.yaml", secrets)
    sql = setup_sql(bp, bp.device("hub-01"), bp.databases[0], wait_seconds=0.4, poll_seconds=0.2)
    fresh_umh_v2(pg, bridge_tables=False)
    code, err = setups["hub-01"].run_to_end(pg, tmp_path, sql=sql)
    assert code != 0
    assert "umhctl: gave up after 0.4 s: table(s) tag, tag_string still missing in umh_v2" in err
    assert "historian bridge" in err and "kafka-t-psql-historian" in err
    assert pg.psql("SELECT count(*) FROM umhctl_test.retention_calls").stdout.strip() == "0", "nothing half-done"


# Grafana's SQL macros, as far as the example dashboards use them: a stand-in for Grafana's own expansion, over the
# dashboards' default time range (the last 6 hours).
_MACROS = [
    (re.compile(r"\$__timeGroupAlias\(([^,()]+),[^()]*\)"), "date_trunc('minute', \\1) AS \"time\""),
    (re.compile(r"\$__timeGroup\(([^,()]+),[^()]*\)"), r"date_trunc('minute', \1)"),
    (re.compile(r"\$__timeFilter\(([^()]+)\)"), r"\1 BETWEEN now() - interval '6 hours' AND now()"),
]


def grafana_sql(sql: str) -> str:
    for pattern, replacement in _MACROS:
        sql = pattern.sub(replacement, sql)
    assert "$__" not in sql, sql
    return sql


@pytest.mark.skipif(nodered_js.NODE is None, reason="needs node (Debian package nodejs)")
@pytest.mark.parametrize(("path", "hub"), HUBS, ids=[f"{p.stem}-{h}" for p, h in HUBS])
def test_every_dashboard_panel_has_data(pg: Cluster, secrets: Path, tmp_path: Path, path: Path, hub: str) -> None:
    """Sensors → converters (node) → UMH's bridges → PostgreSQL → each dashboard's SQL, as grafanareader."""
    from .test_converter_data_path import converter_configs, script, sensorconnect_message

    bp, setups = render(path, secrets)
    fresh_umh_v2(pg)
    assert setups[hub].run_to_end(pg, tmp_path)[0] == 0
    _, configs = converter_configs(path, secrets)
    masters = {m.name: m for m in bp.io_link_masters}
    hub_masters = [
        name for name in configs if masters[name].device == hub or bp.device(masters[name].device).hub == hub
    ]
    jobs = [
        (script(configs[m]), [sensorconnect_message(masters[m], s) for s in bp.sensors if s.master == m])
        for m in hub_masters
    ]
    inserts = []
    for batch in nodered_js.run(jobs):
        for result in batch:
            for row in umh_bridge.store(result.meta["umhctl_topic"], result.body):
                asset = ", ".join(f"'{part}'" for part in row.asset)
                inserts.append(
                    "INSERT INTO asset (enterprise, site, area, line, workcell, origin_id) "
                    f"VALUES ({asset}) ON CONFLICT DO NOTHING;\n"
                    f"INSERT INTO {row.table} (timestamp, name, origin, asset_id, value) VALUES "
                    f"(to_timestamp({row.timestamp_ms} / 1000.0), '{row.name}', 'unknown', "
                    f"get_asset_id({asset}), {json.dumps(row.value)});"
                )
    assert inserts
    rows_file = tmp_path / "rows.sql"
    rows_file.write_text("\n".join(inserts))
    pg.psql(file=rows_file, role="kafkatopostgresqlv2")  # as the bridge writes them
    reader = setups[hub].passwords["grafanareader"]
    for dashboard in bp.dashboards:
        if dashboard.devices is not None and hub not in dashboard.devices:
            continue
        data = json.loads((path.parent / dashboard.file).read_text())
        for panel in data["panels"]:
            for target in panel["targets"]:
                proc = pg.psql(grafana_sql(target["rawSql"]), user="grafanareader", password=reader)
                assert proc.stdout.strip(), f"{dashboard.file}: panel '{panel['title']}' has no data on {hub}"
