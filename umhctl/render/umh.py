"""The UMH stack of a hub: a k3s HelmChart for the united-manufacturing-hub chart, its values, and Secrets.

k3s applies every file in its auto-deploy directory. Secret values go into Secret manifests in a separate
0600 file that the chart values only reference, so the HelmChart manifest itself carries no secret.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from umhctl.blueprint.model import Database, Device, SiteBlueprint
from umhctl.render import grafana
from umhctl.render.desired import DesiredState, File
from umhctl.render.k8s import UMH_NAMESPACE, config_map, content_hash, metadata, secret
from umhctl.render.system import K3S_MANIFESTS
from umhctl.render.yamltext import to_yaml, to_yaml_documents
from umhctl.resolver import SecretResolver
from umhctl.templating import render_template

CHART = "united-manufacturing-hub"
CHART_REPO = "https://management.umh.app/helm/umh"
RELEASE = "united-manufacturing-hub"  # the chart's bridges and services assume this release name
TIMESCALEDB_IMAGE = "management.umh.app/oci/timescale/timescaledb-ha:pg13.8-ts2.8.0-p1"  # the chart's own image
GRAFANA_ADMIN_SECRET = "umhctl-grafana-admin"
DATABASE_USERS_SECRET = "umhctl-database-users"
SIMULATORS = ("iotsensorsmqtt", "opcuasimulator", "opcuasimulatorv2", "modbussimulator", "packmlmqttsimulator")
# UMH 0.29.0's tables in umh_v2: templates/timescaledb/configmap.yaml (post-init) creates all but tag and tag_string,
# which the historian bridge creates when it starts (templates/bridges/kafka_to_postgres/historian/configmap.yaml).
UMH_TABLES = ("asset", "tag", "tag_string", "product_type", "work_order", "product", "shift", "state")
ROLE_PRIVILEGES = {"readonly": "SELECT", "readwrite": "SELECT, INSERT, UPDATE, DELETE"}
# How long the setup Job waits for the bridge's tables before it fails (and Kubernetes retries it).
TABLE_WAIT_SECONDS = 900


def _hours(duration: str) -> int:
    number, unit = int(duration[:-1]), duration[-1]
    return number * 24 if unit == "d" else number


def _interval(duration: str) -> str:
    number, unit = int(duration[:-1]), duration[-1]
    return f"{number} {'days' if unit == 'd' else 'hours'}"


def chart_values(bp: SiteBlueprint, hub: Device) -> dict[str, Any]:
    """Values for the UMH chart, built as data: only what the blueprint decides, on top of UMH's defaults."""
    broker = next((b for b in bp.brokers if b.device == hub.name), None)
    database = next((d for d in bp.databases if d.device == hub.name), None)
    values: dict[str, Any] = {
        "_000_commonConfig": {"instanceName": hub.host_name},
        # A production site runs no demo data generators.
        "_002_simulatorConfig": {name: {"enabled": False} for name in SIMULATORS},
    }
    if broker is not None:
        values["_001_mqttConfig"] = {
            "mqtt": {
                "external": {
                    "enabled": broker.mqtt.external_listener,
                    "tlsOnly": broker.mqtt.tls_only,
                    "requireMutualAuth": broker.mqtt.mutual_auth,
                }
            }
        }
        values["redpanda"] = {
            "storage": {"persistentVolume": {"size": broker.kafka.storage}},
            "config": {"cluster": {"log_retention_ms": _hours(broker.kafka.retention) * 3_600_000}},
        }
    if database is not None:
        values["timescaledb-single"] = {"persistentVolumes": {"data": {"size": database.storage}}}
    values["grafana"] = _grafana_values(bp, hub, database)
    nodered: dict[str, Any] = {"timezone": bp.os.timezone}
    if bp.versions.node_red:
        nodered["tag"] = bp.versions.node_red
    values["nodered"] = nodered
    return values


def _grafana_values(bp: SiteBlueprint, hub: Device, database: Database | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "datasources": {"datasources.yaml": {"apiVersion": 1, "datasources": grafana.datasources(bp, hub)}}
    }
    if bp.versions.grafana:
        values["image"] = {"tag": bp.versions.grafana}
    if bp.grafana.admin_password_secret:
        values["admin"] = {
            "existingSecret": GRAFANA_ADMIN_SECRET,
            "userKey": "adminuser",
            "passwordKey": "adminpassword",
        }
    if database is not None and any(u.name == "grafanareader" for u in database.users):
        # The TimescaleDB datasource logs in as grafanareader; its password is the blueprint's, not the chart's.
        values["envValueFrom"] = {
            "GRAFANAREADER_PASSWORD": {"secretKeyRef": {"name": DATABASE_USERS_SECRET, "key": "grafanareader"}}
        }
    if bp.grafana.mqtt_datasource:
        values["plugins"] = [f"grafana-mqtt-datasource {bp.versions.grafana_mqtt_plugin}"]
    values.update(grafana.dashboard_values(bp, hub))
    return values


def helm_chart(bp: SiteBlueprint, values: dict[str, Any]) -> dict[str, Any]:
    """The k3s HelmChart, using only fields helm-controller has had for years."""
    return {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": metadata(RELEASE, "kube-system"),
        "spec": {
            "chart": CHART,
            "repo": CHART_REPO,
            "version": bp.versions.umh_chart,
            "targetNamespace": UMH_NAMESPACE,
            "createNamespace": True,
            "valuesContent": to_yaml(values),
        },
    }


def setup_sql(
    bp: SiteBlueprint,
    hub: Device,
    database: Database,
    *,
    wait_seconds: float = TABLE_WAIT_SECONDS,
    poll_seconds: float = 5,
) -> str:
    """The SQL the setup Job runs in umh_v2: wait for UMH's tables, then users with their roles, then retention."""
    users = [
        {
            "name": u.name,
            "variable": f"pw_{u.name}",
            "role": u.role,
            "privileges": ROLE_PRIVILEGES[u.role],
            "writes": u.role == "readwrite",
        }
        for u in database.users
    ]
    return render_template(
        "timescaledb/setup.sql.j2",
        site=bp.metadata.name,
        hub=hub.name,
        users=users,
        tables=UMH_TABLES,
        wait_seconds=wait_seconds,
        poll_seconds=poll_seconds,
        retention=_interval(database.retention) if database.retention else None,
    )


def _database_setup(
    bp: SiteBlueprint, hub: Device, database: Database, passwords: dict[str, str], seal: Callable[[str], str]
) -> list[Any]:
    """A ConfigMap with the SQL and a Job that runs it: blueprint users, roles, passwords and retention."""
    sql = setup_sql(bp, hub, database)
    # A Job is immutable: its name changes with its inputs, so a change runs a new Job. Passwords enter the
    # name only as keyed digests (HMAC with the secret store's seal key): a password change reruns the Job, and
    # the name allows no offline guessing of a weak password.
    digests = {name: seal(pw) for name, pw in passwords.items()}
    name = f"umhctl-timescaledb-setup-{content_hash(sql, digests)}"
    env: list[dict[str, Any]] = [
        {"name": "PGHOST", "value": RELEASE},
        {"name": "PGPORT", "value": "5432"},
        {"name": "PGDATABASE", "value": "umh_v2"},
        {"name": "PGUSER", "value": "postgres"},
        {"name": "PGSSLMODE", "value": "require"},
        {
            "name": "PGPASSWORD",
            "valueFrom": {"secretKeyRef": {"name": f"{RELEASE}-credentials", "key": "PATRONI_SUPERUSER_PASSWORD"}},
        },
    ]
    args = ["psql"]
    for user in database.users:
        var = f"PW_{user.name.upper()}"
        env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": DATABASE_USERS_SECRET, "key": user.name}}})
        args += ["-v", f"pw_{user.name}=$({var})"]  # Kubernetes expands $(VAR) from env: no shell involved
    args += ["-f", "/setup/setup.sql"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, UMH_NAMESPACE),
        "spec": {
            # The database comes up minutes after the chart is installed; keep retrying until it answers. Once it
            # does, the SQL itself waits (bounded, logging) for the tables the historian bridge creates.
            "backoffLimit": 60,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "umhctl-timescaledb-setup"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "setup",
                            "image": TIMESCALEDB_IMAGE,
                            "command": args[:1],
                            "args": args[1:],
                            "env": env,
                            "volumeMounts": [{"name": "setup", "mountPath": "/setup", "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "setup", "configMap": {"name": "umhctl-timescaledb-setup"}}],
                },
            },
        },
    }
    return [config_map("umhctl-timescaledb-setup", UMH_NAMESPACE, {"setup.sql": sql}), job]


def render_hub(bp: SiteBlueprint, hub: Device, secrets: SecretResolver, base_dir: Path, state: DesiredState) -> None:
    values = chart_values(bp, hub)
    state.add(File(f"{K3S_MANIFESTS}/{RELEASE}.yaml", to_yaml_documents([helm_chart(bp, values)]).encode()))
    for dashboard in grafana.hub_dashboards(bp, hub):
        manifest = to_yaml_documents([grafana.dashboard_configmap(dashboard, base_dir)])
        state.add(File(f"{K3S_MANIFESTS}/{grafana.dashboard_configmap_name(dashboard)}.yaml", manifest.encode()))

    secret_docs: list[Any] = []
    if bp.grafana.admin_password_secret:
        password = secrets.value(bp.grafana.admin_password_secret)
        secret_docs.append(
            secret(GRAFANA_ADMIN_SECRET, UMH_NAMESPACE, {"adminuser": "admin", "adminpassword": password})
        )
    database = next((d for d in bp.databases if d.device == hub.name), None)
    passwords = {u.name: secrets.value(u.password_secret) for u in database.users} if database else {}
    if passwords:
        secret_docs.append(secret(DATABASE_USERS_SECRET, UMH_NAMESPACE, passwords))
    if secret_docs:
        state.add(
            File(
                f"{K3S_MANIFESTS}/umhctl-secrets.yaml", to_yaml_documents(secret_docs).encode(), mode=0o600, secret=True
            )
        )
    if database is not None and (database.users or database.retention):
        docs = _database_setup(bp, hub, database, passwords, secrets.sealer())
        state.add(File(f"{K3S_MANIFESTS}/umhctl-timescaledb-setup.yaml", to_yaml_documents(docs).encode()))
