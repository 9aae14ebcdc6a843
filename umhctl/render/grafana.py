"""Grafana provisioning for a hub, as values of the UMH chart's grafana sub-chart.

`grafana.datasources` replaces the chart's default list as a whole (Helm replaces lists), so UMH's own
datasources are emitted again next to ours. Passwords never appear here: Grafana expands `$VARS` from
environment variables that come from Kubernetes Secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from umhctl.blueprint import jsontext
from umhctl.blueprint.model import Dashboard, Device, SiteBlueprint
from umhctl.blueprint.repofiles import MAX_DASHBOARD, RepoFiles
from umhctl.errors import UmhctlError
from umhctl.render.k8s import UMH_NAMESPACE, config_map, slug

FACTORYINSIGHT_URL = "http://united-manufacturing-hub-factoryinsight-service/"
DASHBOARD_ROOT = "/var/lib/grafana/dashboards"

# UMH 0.29.0's own datasources (values.yaml), kept so UMH's plugins and dashboards keep working.
UMH_DATASOURCES: list[dict[str, Any]] = [
    {
        "name": "umh-v2-datasource",
        "type": "umh-v2-datasource",
        "access": "proxy",
        "orgId": 1,
        "url": FACTORYINSIGHT_URL,
        "jsonData": {
            "customerID": "$FACTORYINSIGHT_CUSTOMERID",
            "apiKey": "$FACTORYINSIGHT_PASSWORD",
            "baseURL": FACTORYINSIGHT_URL,
            "apiKeyConfigured": True,
        },
        "version": 1,
        "isDefault": False,
        "editable": False,
    },
    {
        "name": "umh-datasource",
        "type": "umh-datasource",
        "access": "proxy",
        "orgId": 1,
        "url": FACTORYINSIGHT_URL,
        "jsonData": {
            "customerId": "$FACTORYINSIGHT_CUSTOMERID",
            "apiKey": "$FACTORYINSIGHT_PASSWORD",
            "serverURL": FACTORYINSIGHT_URL,
            "apiKeyConfigured": True,
        },
        "version": 1,
        "isDefault": False,
        "editable": False,
    },
]


def datasource_uid(name: str) -> str:
    """Stable Grafana uid from a blueprint datasource name (Grafana allows [A-Za-z0-9_-], at most 40)."""
    return slug(name, 40)


def datasources(bp: SiteBlueprint, hub: Device) -> list[dict[str, Any]]:
    result = [dict(d) for d in UMH_DATASOURCES]
    if any(db.device == hub.name for db in bp.databases):
        result.append(
            {
                "name": "UMH TimescaleDB",  # UMH's name, so dashboards that refer to it by name keep working
                "uid": datasource_uid("timescaledb"),
                "type": "grafana-postgresql-datasource",
                "access": "proxy",
                "orgId": 1,
                "url": "united-manufacturing-hub:5432",
                "user": "$GRAFANAREADER_USER",
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "database": "umh_v2",
                    "sslmode": "require",
                    "postgresVersion": 1300,
                    "timescaledb": True,
                    "maxOpenConns": 100,
                    "maxIdleConns": 100,
                    "maxIdleConnsAuto": True,
                    "connMaxLifetime": 14400,
                },
                "secureJsonData": {"password": "$GRAFANAREADER_PASSWORD"},
            }
        )
    if bp.grafana.mqtt_datasource:
        result.append(
            {
                "name": "UMH MQTT",
                "uid": datasource_uid("mqtt"),
                "type": "grafana-mqtt-datasource",
                "access": "proxy",
                "orgId": 1,
                "isDefault": False,
                "editable": False,
                "jsonData": {"uri": "tcp://united-manufacturing-hub-mqtt:1883", "clientID": f"grafana-{hub.name}"},
            }
        )
    return result


def hub_dashboards(bp: SiteBlueprint, hub: Device) -> list[Dashboard]:
    return [d for d in bp.dashboards if d.devices is None or hub.name in d.devices]


def dashboard_configmap_name(dashboard: Dashboard) -> str:
    return slug(f"umhctl-dashboard-{dashboard.name}", 63)


def dashboard_provider(dashboard: Dashboard) -> str:
    return slug(f"umhctl-{dashboard.name}", 63)


def dashboard_values(bp: SiteBlueprint, hub: Device) -> dict[str, Any]:
    """Grafana sub-chart values: one file provider per dashboard, each fed by its own ConfigMap.

    One ConfigMap (and one manifest file) per dashboard: removing a dashboard from the blueprint deletes exactly
    its file, and dashboard JSON stays out of the chart values.
    """
    dashboards = hub_dashboards(bp, hub)
    if not dashboards:
        return {}
    providers = [
        {
            "name": dashboard_provider(d),
            "orgId": 1,
            "folder": d.folder,
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "options": {"path": f"{DASHBOARD_ROOT}/{dashboard_provider(d)}"},
        }
        for d in dashboards
    ]
    return {
        "dashboardProviders": {"dashboardproviders.yaml": {"apiVersion": 1, "providers": providers}},
        "dashboardsConfigMaps": {dashboard_provider(d): dashboard_configmap_name(d) for d in dashboards},
    }


def dashboard_configmap(dashboard: Dashboard, base_dir: Path) -> dict[str, Any]:
    # validate refuses all of these; read the same way here, so a file changed since is a clean error all the same
    raw = RepoFiles(base_dir).read(dashboard.file, "dashboard file", MAX_DASHBOARD)
    try:
        data = jsontext.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, jsontext.JsonProblem) as exc:
        raise UmhctlError(f"dashboard file '{dashboard.file}' is not valid JSON: {exc}") from None
    # Re-serialized so the render does not depend on the file's whitespace.
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    labels = {"umhctl/dashboard": dashboard.name}
    return config_map(dashboard_configmap_name(dashboard), UMH_NAMESPACE, {f"{dashboard.name}.json": text}, labels)
