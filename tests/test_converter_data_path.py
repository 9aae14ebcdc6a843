"""The converters' data mapping, run for real: rendered script → UMH's bridges → the rows the hub stores.

Each example converter's rendered `nodered_js` script runs in node (tests/nodered_js.py: the processor's wrapping,
mirrored from benthos-umh) on sensorconnect messages of the example sensors (tests/data/sensorconnect/). What it
emits goes through UMH's two historian bridges as re-implemented from the chart (tests/umh_bridge.py), and the rows
must hold every declared value as a number under the name umhctl's own rule predicts (umhctl/blueprint/datapath.py),
the rule the dashboard check relies on.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from umhctl.blueprint.datapath import asset_of, stored_tag_name, stored_tags
from umhctl.blueprint.loader import load_blueprint
from umhctl.blueprint.model import IoLinkMaster, Sensor, SiteBlueprint
from umhctl.render import render_site
from umhctl.render.system import K3S_MANIFESTS
from umhctl.secrets import SecretStore

from . import nodered_js, umh_bridge
from .conftest import EXAMPLES, ROOT
from .nodered_js import Message

pytestmark = pytest.mark.skipif(
    nodered_js.NODE is None, reason="needs node (Debian package nodejs; scripts/setup.sh installs it)"
)


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets")


RECORDED = json.loads((ROOT / "tests" / "data" / "sensorconnect" / "messages.json").read_text())


def sensorconnect_message(master: IoLinkMaster, sensor: Sensor, payload: dict[str, Any] | None = None) -> Message:
    """A message as sensorconnect emits it for the sensor's port (sensorconnect_plugin/processSensorData.go)."""
    recorded = RECORDED[str(sensor.device_id)]
    return Message(
        json.dumps(payload if payload is not None else recorded["payload"]).encode(),
        {
            "sensorconnect_port_mode": "io-link",
            "sensorconnect_port_number": str(sensor.port),
            "sensorconnect_port_iolink_vendor_id": str(sensor.vendor_id),
            "sensorconnect_port_iolink_device_id": str(sensor.device_id),
            "sensorconnect_port_iolink_product_name": recorded["product"],
            "sensorconnect_port_iolink_serial": f"000{sensor.port}2345",
            "sensorconnect_device_url": f"http://{master.address}",
            "sensorconnect_device_product_code": master.model,
            "sensorconnect_device_serial_number": "000201234567",
            "sensorconnect_bluetooth_meshadapter": "none",
        },
    )


@functools.cache
def converter_configs(path: Path, secrets: Path) -> tuple[SiteBlueprint, dict[str, dict[str, Any]]]:
    """The rendered benthos config of every converter of an example, by master name."""
    loaded = load_blueprint(path)
    configs = {}
    for r in render_site(loaded, SecretStore.for_blueprint(loaded.blueprint, path.parent, secrets)):
        for f in r.state.files:
            if f.path.startswith(f"{K3S_MANIFESTS}/umhctl-converter-"):
                configmap = next(YAML(typ="safe", pure=True).load_all(f.content.decode()))
                master = f.path.rsplit("umhctl-converter-", 1)[1].removesuffix(".yaml")
                configs[master] = YAML(typ="safe", pure=True).load(configmap["data"]["benthos.yaml"])
    return loaded.blueprint, configs


def script(config: dict[str, Any]) -> str:
    (processor,) = config["pipeline"]["processors"]
    code: str = processor["nodered_js"]["code"]
    return code


def published_topic(config: dict[str, Any], result: nodered_js.Result) -> str:
    """The MQTT output's topic, an interpolation of one metadata key the script sets."""
    assert config["output"]["mqtt"]["topic"] == '${! meta("umhctl_topic") }'
    return result.meta["umhctl_topic"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_sensor_value_is_stored_as_a_number_under_its_tag(path: Path, secrets: Path) -> None:
    bp, configs = converter_configs(path, secrets)
    masters = {m.name: m for m in bp.io_link_masters}
    jobs = []
    for name, config in configs.items():
        sensors = [s for s in bp.sensors if s.master == name]
        jobs.append((script(config), [sensorconnect_message(masters[name], s) for s in sensors]))
    before = time.time() * 1000
    results = nodered_js.run(jobs)
    after = time.time() * 1000
    predicted = {(t.sensor, t.name) for t in stored_tags(bp)}
    checked = 0
    for (name, config), batch in zip(configs.items(), results, strict=True):
        sensors = [s for s in bp.sensors if s.master == name]
        for sensor, result in zip(sensors, batch, strict=True):
            assert not result.dropped, (sensor.name, result.logs)
            rows = umh_bridge.store(published_topic(config, result), result.body)
            asset = asset_of(bp, sensor.work_cell)
            raw = RECORDED[str(sensor.device_id)]["payload"]
            assert {r.name for r in rows} == {stored_tag_name(v) for v in sensor.values}, sensor.name
            for value in sensor.values:
                (row,) = [r for r in rows if r.name == stored_tag_name(value)]
                assert (sensor.name, row.name) in predicted, "the dashboard check knows the name the bridge stores"
                assert row.table == "tag" and isinstance(row.value, (int, float)), row
                assert row.value == pytest.approx(raw[value.process_data] * value.scale, rel=1e-12)
                assert row.asset == (asset.enterprise, asset.site, asset.area, asset.line, asset.workcell, "")
                assert before <= row.timestamp_ms <= after
                checked += 1
    assert checked == sum(len(s.values) for s in bp.sensors)


def test_the_vvb001_example_from_the_sensorconnect_docs(secrets: Path) -> None:
    """press-vibration publishes v-Rms and a-Peak of the docs' VVB001 message, scaled, in one message."""
    bp, configs = converter_configs(EXAMPLES[0], secrets)
    sensor = next(s for s in bp.sensors if s.name == "press-vibration")
    master = next(m for m in bp.io_link_masters if m.name == sensor.master)
    ((result,),) = nodered_js.run([(script(configs[master.name]), [sensorconnect_message(master, sensor)])])
    assert published_topic(configs[master.name], result) == "umh/v1/acme/cologne/assembly/line-1/press/_historian"
    payload = result.payload
    assert set(payload) == {"timestamp_ms", "vibration", "vibrationPeak"}
    assert (payload["vibration"], payload["vibrationPeak"]) == (0, 0.2)
    assert isinstance(payload["timestamp_ms"], int)


def test_what_is_not_published(secrets: Path) -> None:
    bp, configs = converter_configs(EXAMPLES[0], secrets)
    master = next(m for m in bp.io_link_masters if m.name == "master-line1")
    temperature = next(s for s in bp.sensors if s.name == "press-temperature")
    ok = sensorconnect_message(master, temperature)
    cases = {
        "an undeclared port": Message(ok.body, {**ok.meta, "sensorconnect_port_number": "4"}),
        "a digital input": Message(
            b"1", {"sensorconnect_port_mode": "digital-input", "sensorconnect_port_number": "2"}
        ),
        "another device on the port": Message(ok.body, {**ok.meta, "sensorconnect_port_iolink_device_id": "372"}),
        "no IODD (raw output only)": Message(b'{"raw_sensor_output": "00d7"}', ok.meta),
        "a text value": sensorconnect_message(master, temperature, {"Temperature": "00d7"}),
        "not JSON": Message(b"garbage", ok.meta),
    }
    (results,) = nodered_js.run([(script(configs["master-line1"]), list(cases.values()))])
    for (what, _), result in zip(cases.items(), results, strict=True):
        assert result.dropped, what
    assert any("expected press-temperature" in line and line.startswith("warn") for line in results[2].logs)
    assert any('no number for "Temperature"' in line for line in results[3].logs)


def test_booleans_are_published_as_numbers(secrets: Path) -> None:
    """A switching output (BooleanT) would land in tag_string as 'true'; the converter sends 1 or 0."""
    bp, configs = converter_configs(EXAMPLES[0], secrets)
    master = next(m for m in bp.io_link_masters if m.name == "master-line1")
    sensor = next(s for s in bp.sensors if s.name == "welding-distance")
    code = script(configs["master-line1"]).replace('"processData": "Distance"', '"processData": "OUT1"')
    ((result,),) = nodered_js.run([(code, [sensorconnect_message(master, sensor)])])
    (row,) = umh_bridge.store(published_topic(configs["master-line1"], result), result.body)
    assert (row.table, row.name, row.value) == ("tag", "distance", 1)


@pytest.mark.parametrize(
    ("topic", "payload", "stored"),
    [
        # The two shapes: tag_processor's and the classic one umhctl publishes.
        ("umh/v1/acme/cologne/assembly/line-1/press/_historian/temperature", {"value": 21.5}, {"temperature$value"}),
        ("umh/v1/acme/cologne/assembly/line-1/press/_historian", {"temperature": 21.5}, {"temperature"}),
        ("umh/v1/acme/cologne/assembly/line-1/press/_historian/axis.x", {"pos": 1}, {"axis$x$pos"}),
        ("umh/v1/acme/cologne/assembly/line-1/press/_historian", {"spindle": {"speed": 3}}, {"spindle$speed"}),
    ],
)
def test_the_bridges_naming_rule(topic: str, payload: dict[str, Any], stored: set[str]) -> None:
    rows = umh_bridge.store(topic, json.dumps({"timestamp_ms": 1733904000000, **payload}).encode())
    assert {r.name for r in rows} == stored
    assert all(r.asset == ("acme", "cologne", "assembly", "line-1", "press", "") for r in rows)


def test_the_bridges_drop_what_does_not_fit_the_historian_contract() -> None:
    topic = "umh/v1/acme/cologne/assembly/line-1/press/_historian"
    assert umh_bridge.store(topic, b'{"temperature": 21.5}') == [], "no timestamp_ms"
    assert umh_bridge.store(topic, b'{"timestamp_ms": 1.5, "temperature": 21.5}') == [], "timestamp_ms not an integer"
    assert umh_bridge.store(topic, b'{"timestamp_ms": 1, "t": [1, 2]}') == [], "arrays are refused on the way in"
    assert umh_bridge.store("umh/v1/acme/cologne/_raw/x", b'{"timestamp_ms": 1, "t": 1}') == [], "not _historian"
    (row,) = umh_bridge.store(topic, b'{"timestamp_ms": 1, "state": "running"}')
    assert (row.table, row.value) == ("tag_string", "running")
