"""Kubernetes side of the render: every manifest passes a real schema validator; the hub's chart values are sane."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from umhctl.blueprint.loader import load_blueprint
from umhctl.render import DeviceRender, render_site
from umhctl.render.system import K3S_MANIFESTS
from umhctl.secrets import SecretStore

from .conftest import BLUEPRINTS, EXAMPLES, ROOT

KUBERNETES_VERSION = "1.32.0"  # the minor of the examples' pinned k3s (v1.32.2+k3s1)
DATA = ROOT / "tests" / "data" / "umh-chart"


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


@pytest.fixture(scope="module")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[DeviceRender]]:
    secrets = tmp_path_factory.mktemp("secrets")
    result = {}
    for path in EXAMPLES:
        loaded = load_blueprint(path)
        store = SecretStore.for_blueprint(loaded.blueprint, path.parent, secrets / path.stem)
        result[path.name] = render_site(loaded, store)
    return result


def _manifests(renders: list[DeviceRender]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for r in renders:
        for f in r.state.files:
            if f.path.startswith(K3S_MANIFESTS + "/"):
                out += [(f"{r.device}:{f.path}", doc) for doc in _docs(f.content.decode())]
    return out


def _helmchart_schema() -> dict[str, Any]:
    crd = _docs((DATA / "helm.cattle.io_helmcharts.yaml").read_text())[0]
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_every_manifest_passes_a_real_validator(renders, example: str) -> None:
    manifests = _manifests(renders[example])
    assert manifests
    helmchart = jsonschema.Draft7Validator(_helmchart_schema())
    kinds = set()
    for where, doc in manifests:
        kinds.add(doc["kind"])
        if doc["apiVersion"] == "helm.cattle.io/v1":
            errors = [e.message for e in helmchart.iter_errors(doc)]
            assert not errors, f"{where}: {errors}"
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {"HelmChart", "Namespace", "ConfigMap", "Deployment", "Secret", "Job"} <= kinds


def test_hub_values_content_is_plain_yaml_without_secrets(renders) -> None:
    hub = next(r for r in renders["demo-site.yaml"] if r.device == "hub-01")
    (chart,) = _docs(hub.state.file(f"{K3S_MANIFESTS}/united-manufacturing-hub.yaml").content.decode())
    spec = chart["spec"]
    assert (spec["chart"], spec["version"], spec["targetNamespace"], spec["createNamespace"]) == (
        "united-manufacturing-hub",
        "0.29.0",
        "united-manufacturing-hub",
        True,
    )
    assert chart["metadata"] == {
        "name": "united-manufacturing-hub",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/managed-by": "umhctl"},
    }
    values = YAML(typ="safe", pure=True).load(spec["valuesContent"])
    assert values["_000_commonConfig"]["instanceName"] == "hub-01"
    assert values["_001_mqttConfig"]["mqtt"]["external"] == {
        "enabled": True,
        "tlsOnly": False,
        "requireMutualAuth": False,
    }
    assert values["redpanda"]["config"]["cluster"]["log_retention_ms"] == 168 * 3600 * 1000
    assert values["timescaledb-single"]["persistentVolumes"]["data"]["size"] == "20Gi"
    grafana = values["grafana"]
    assert grafana["admin"]["existingSecret"] == "umhctl-grafana-admin"
    sources = grafana["datasources"]["datasources.yaml"]["datasources"]
    names = [s["name"] for s in sources]
    assert names[:2] == ["umh-v2-datasource", "umh-datasource"], "UMH's own datasources must stay"
    tsdb = next(s for s in sources if s["type"] == "grafana-postgresql-datasource")
    assert tsdb["uid"] == "timescaledb" and tsdb["jsonData"]["timescaledb"] is True
    assert tsdb["jsonData"]["database"] == "umh_v2" and tsdb["secureJsonData"]["password"] == "$GRAFANAREADER_PASSWORD"
    mqtt = next(s for s in sources if s["type"] == "grafana-mqtt-datasource")
    assert mqtt["uid"] == "mqtt"
    providers = grafana["dashboardProviders"]["dashboardproviders.yaml"]["providers"]
    assert [(p["name"], p["folder"], p["options"]["path"]) for p in providers] == [
        ("umhctl-line-overview", "Production", "/var/lib/grafana/dashboards/umhctl-line-overview")
    ]
    assert grafana["dashboardsConfigMaps"] == {"umhctl-line-overview": "umhctl-dashboard-line-overview"}
    (configmap,) = _docs(hub.state.file(f"{K3S_MANIFESTS}/umhctl-dashboard-line-overview.yaml").content.decode())
    assert configmap["metadata"]["name"] == "umhctl-dashboard-line-overview"
    assert configmap["metadata"]["namespace"] == "united-manufacturing-hub"
    dashboard = json.loads(configmap["data"]["line-overview.json"])
    assert dashboard["uid"] == "line-overview"
    for store_value in ("changeme",):
        assert store_value not in spec["valuesContent"]


def test_uids_are_grafana_safe(renders) -> None:
    import re

    for r in renders["retrofit-site.yaml"]:
        for f in r.state.files:
            if f.path.endswith("united-manufacturing-hub.yaml"):
                values = YAML(typ="safe", pure=True).load(_docs(f.content.decode())[0]["spec"]["valuesContent"])
                for source in values["grafana"]["datasources"]["datasources.yaml"]["datasources"]:
                    if "uid" in source:
                        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", source["uid"])


def test_dashboards_only_on_their_hubs(renders) -> None:
    bp = load_blueprint(BLUEPRINTS / "retrofit-site.yaml").blueprint
    for r in renders["retrofit-site.yaml"]:
        if bp.device(r.device).role != "hub":
            continue
        (chart,) = _docs(r.state.file(f"{K3S_MANIFESTS}/united-manufacturing-hub.yaml").content.decode())
        values = YAML(typ="safe", pure=True).load(chart["spec"]["valuesContent"])
        shown = set(values["grafana"]["dashboardsConfigMaps"].values())
        expected = {f"umhctl-dashboard-{d.name}" for d in bp.dashboards if d.devices is None or r.device in d.devices}
        assert shown == expected
        files = {f.path.rsplit("/", 1)[1] for f in r.state.files if "umhctl-dashboard-" in f.path}
        assert files == {f"{name}.yaml" for name in expected}


def _converter_config(renders: list[DeviceRender], device: str, master: str) -> dict[str, Any]:
    edge = next(r for r in renders if r.device == device)
    configmap, _ = _docs(edge.state.file(f"{K3S_MANIFESTS}/umhctl-converter-{master}.yaml").content.decode())
    config: dict[str, Any] = YAML(typ="safe", pure=True).load(configmap["data"]["benthos.yaml"])
    return config


def test_converters_publish_each_sensor_to_its_isa95_topic(renders) -> None:
    config = _converter_config(renders["demo-site.yaml"], "edge-01", "master-line1")
    assert config["input"]["sensorconnect"] == {"device_address": "198.51.100.20", "devices": []}
    (processor,) = config["pipeline"]["processors"]
    script = processor["nodered_js"]["code"]
    ports = json.loads(script.split("const ports = ", 1)[1].split(";\n", 1)[0])
    assert ports["2"] == {
        "sensor": "press-temperature",
        "vendorId": "310",
        "deviceId": "733",
        "topic": "umh/v1/acme/cologne/assembly/line-1/press/_historian",
        "values": [{"processData": "Temperature", "tag": "temperature", "scale": 0.1}],
    }
    assert [v["tag"] for v in ports["1"]["values"]] == ["vibration", "vibrationPeak"]
    assert set(ports) == {"1", "2", "3"}
    assert config["output"]["mqtt"]["urls"] == ["tcp://192.0.2.10:1883"], "edges publish to their hub's broker"
    assert config["output"]["mqtt"]["topic"] == '${! meta("umhctl_topic") }'
    edge = next(r for r in renders["demo-site.yaml"] if r.device == "edge-01")
    _, deployment = _docs(edge.state.file(f"{K3S_MANIFESTS}/umhctl-converter-master-line1.yaml").content.decode())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/united-manufacturing-hub/benthos-umh:0.12.6"
    hub_files = [f.path for f in next(r for r in renders["demo-site.yaml"] if r.device == "hub-01").state.files]
    assert not any("converter" in p for p in hub_files), "the demo hub polls no master"


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_no_sensorconnect_device_entry_without_an_iodd_url(renders, example: str) -> None:
    """benthos-umh requires iodd_url in every `devices` entry and downloads each at start (sensorconnect.go)."""
    for r in renders[example]:
        for f in r.state.files:
            if "umhctl-converter-" in f.path:
                config = YAML(typ="safe", pure=True).load(_docs(f.content.decode())[0]["data"]["benthos.yaml"])
                devices = config["input"]["sensorconnect"]["devices"]
                assert all(isinstance(d.get("iodd_url"), str) and d["iodd_url"] for d in devices), (f.path, devices)


def test_devices_lists_only_sensors_with_an_iodd_url(demo_text: str, tmp_path) -> None:
    url = "https://iodd.example.com/ifm-TV7105.xml"
    cell = "workCell: assembly/line-1/press,"
    text = demo_text.replace(f"deviceId: 733, {cell}", f"deviceId: 733, ioddUrl: '{url}', {cell}")
    for name in ("known_hosts", "dashboards/line-overview.json", "files/journald-retention.conf.j2"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes((BLUEPRINTS / name).read_bytes())
    (tmp_path / "bp.yaml").write_text(text)
    loaded = load_blueprint(tmp_path / "bp.yaml")
    store = SecretStore.for_blueprint(loaded.blueprint, tmp_path, tmp_path / "secrets")
    config = _converter_config(render_site(loaded, store), "edge-01", "master-line1")
    assert config["input"]["sensorconnect"]["devices"] == [{"device_id": 733, "vendor_id": 310, "iodd_url": url}]
    devices = _converter_config(render_site(loaded, store), "edge-02", "master-line2")["input"]["sensorconnect"]
    assert devices["devices"] == [{"device_id": 733, "vendor_id": 310, "iodd_url": url}], "the type's IODD, everywhere"


def test_secret_manifests_are_0600_and_separate(renders) -> None:
    hub = next(r for r in renders["demo-site.yaml"] if r.device == "hub-01")
    secrets = hub.state.file(f"{K3S_MANIFESTS}/umhctl-secrets.yaml")
    assert secrets.secret and secrets.mode == 0o600
    kinds = {d["kind"] for d in _docs(secrets.content.decode())}
    assert kinds == {"Secret"}
    for f in hub.state.files:
        if f.path.startswith(K3S_MANIFESTS) and f is not secrets:
            assert "Secret" not in {d["kind"] for d in _docs(f.content.decode())}


def _helm_merge(base: Any, override: Any) -> Any:
    """Helm's value merge: mappings merge recursively, everything else replaces, null deletes."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _helm_merge(base.get(key), value)
    return merged


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def _hub_values(renders: list[DeviceRender]) -> list[dict[str, Any]]:
    out = []
    for r in renders:
        for f in r.state.files:
            if f.path == f"{K3S_MANIFESTS}/united-manufacturing-hub.yaml":
                out.append(YAML(typ="safe", pure=True).load(_docs(f.content.decode())[0]["spec"]["valuesContent"]))
    return out


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_timescaledb_values_pass_the_subchart_schema_as_helm_merges_them(renders, example: str) -> None:
    defaults = YAML(typ="safe", pure=True).load((DATA / "timescaledb-single-0.26.9.values.yaml").read_text())
    umh = YAML(typ="safe", pure=True).load((DATA / "umh-0.29.0.values.yaml").read_text())["timescaledb-single"]
    schema = json.loads((DATA / "timescaledb-single-0.26.9.values.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    values = _hub_values(renders[example])
    assert values
    for hub in values:
        merged = _helm_merge(_helm_merge(defaults, umh), hub["timescaledb-single"])
        merged.setdefault("global", {})
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(merged)]
        assert not errors, errors


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_redpanda_values_pass_the_subchart_schema(renders, example: str) -> None:
    """Our redpanda overrides, over UMH's, against redpanda 5.9.7's schema.

    The sub-chart's own defaults (which satisfy the schema's `required` keys) are not available here (see
    tests/data/umh-chart/SOURCE.md), so `required` is not checked; types, patterns and unknown keys are.
    """
    umh = YAML(typ="safe", pure=True).load((DATA / "umh-0.29.0.values.yaml").read_text())["redpanda"]
    schema = _without_required(json.loads((DATA / "redpanda-5.9.7.values.schema.json").read_text()))
    validator = jsonschema.Draft202012Validator(schema)
    for hub in _hub_values(renders[example]):
        merged = _helm_merge(umh, hub["redpanda"])
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(merged)]
        assert not errors, errors
        broken = _helm_merge(merged, {"storage": {"persistentVolume": {"size": "ten gigs"}}})
        assert not validator.is_valid(broken), "the check must be able to fail"


def test_the_validators_can_fail(renders) -> None:
    edge = next(r for r in renders["demo-site.yaml"] if r.device == "edge-01")
    _, deployment = _docs(edge.state.file(f"{K3S_MANIFESTS}/umhctl-converter-master-line1.yaml").content.decode())
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    hub = next(r for r in renders["demo-site.yaml"] if r.device == "hub-01")
    (chart,) = _docs(hub.state.file(f"{K3S_MANIFESTS}/united-manufacturing-hub.yaml").content.decode())
    chart["spec"]["failurePolicy"] = "explode"
    assert not jsonschema.Draft7Validator(_helmchart_schema()).is_valid(chart)
