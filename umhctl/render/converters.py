"""Sensors → data flows: one benthos-umh protocol converter per IO-Link master, on the device that polls it.

The converter reads the master with benthos-umh's `sensorconnect` input, picks each sensor's declared process-data
values in a `nodered_js` processor (templates/converters/sensor_values.js.j2) and publishes them to the hub's MQTT
broker as UMH `_historian` messages; the UMH chart's own bridges carry them on into Kafka and TimescaleDB. Topic,
payload and tag names follow umhctl/blueprint/datapath.py, the rule the dashboard check uses too. An edge reaches
its hub's broker through the hub's external MQTT listener.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from umhctl.blueprint.datapath import historian_topic, stored_tag_name
from umhctl.blueprint.model import Device, IoLinkMaster, Sensor, SiteBlueprint
from umhctl.render.desired import DesiredState, File
from umhctl.render.k8s import CONVERTER_NAMESPACE, config_map, content_hash, metadata
from umhctl.render.system import K3S_MANIFESTS
from umhctl.render.yamltext import to_yaml, to_yaml_documents
from umhctl.templating import render_template

IMAGE = "ghcr.io/united-manufacturing-hub/benthos-umh"
HUB_MQTT = "united-manufacturing-hub-mqtt.united-manufacturing-hub.svc.cluster.local:1883"
TOPIC_META = "umhctl_topic"  # set by the script for each message; the MQTT output publishes to it


def broker_url(bp: SiteBlueprint, device: Device) -> str:
    if device.role == "hub":
        return f"tcp://{HUB_MQTT}"
    assert device.hub is not None  # validate guarantees every edge names its hub
    return f"tcp://{bp.device(device.hub).address}:1883"


@dataclass(frozen=True)
class _SensorIndex:
    blueprint: SiteBlueprint  # held, and compared by identity: the index belongs to this one loaded blueprint
    by_master: dict[str, list[Sensor]]
    iodd_urls: dict[tuple[int, int], str]


_last_index: list[_SensorIndex] = []


def _sensor_index(bp: SiteBlueprint) -> _SensorIndex:
    """The sensors grouped once per blueprint: looked up per master, the scan over every sensor of the site made
    rendering quadratic (a 500-device site has 490 masters and 1,950 sensors)."""
    if _last_index and _last_index[0].blueprint is bp:
        return _last_index[0]
    by_master: dict[str, list[Sensor]] = {}
    for sensor in bp.sensors:
        by_master.setdefault(sensor.master, []).append(sensor)
    urls = {(s.vendor_id, s.device_id): s.iodd_url for s in bp.sensors if s.iodd_url is not None}
    _last_index[:] = [_SensorIndex(bp, by_master, urls)]
    return _last_index[0]


def master_sensors(bp: SiteBlueprint, master: IoLinkMaster) -> list[Sensor]:
    return sorted(_sensor_index(bp).by_master.get(master.name, []), key=lambda s: s.port)


def converter_ports(bp: SiteBlueprint, master: IoLinkMaster) -> dict[str, dict[str, Any]]:
    """What the script knows per port (sensorconnect's `sensorconnect_port_number`, a string): data, not code."""
    return {
        str(s.port): {
            "sensor": s.name,
            # sensorconnect's metadata values are strings (sensorconnect_plugin/processSensorData.go, MetaSet).
            "vendorId": str(s.vendor_id),
            "deviceId": str(s.device_id),
            "topic": historian_topic(bp, s.work_cell),
            "values": [{"processData": v.process_data, "tag": stored_tag_name(v), "scale": v.scale} for v in s.values],
        }
        for s in master_sensors(bp, master)
    }


def sensorconnect_devices(bp: SiteBlueprint, sensors: list[Sensor]) -> list[dict[str, Any]]:
    """sensorconnect's `devices`: IODD downloads for device types UMH's IODD service lacks.

    benthos-umh declares `iodd_url` of each entry without a default, so it is mandatory, and the plugin downloads
    every listed IODD when it starts (sensorconnect_plugin/sensorconnect.go, ConfigSpec and NewSensorConnectInput).
    So only device types with an ioddUrl get an entry. An ioddUrl belongs to the device type (sensorconnect keys
    IODDs by vendor and device id; validate refuses two URLs for one type): every converter polling a sensor of
    that type gets it, whichever sensor of the site names it.
    """
    urls = _sensor_index(bp).iodd_urls
    here = sorted({(s.vendor_id, s.device_id) for s in sensors} & urls.keys())
    return [{"device_id": device, "vendor_id": vendor, "iodd_url": urls[(vendor, device)]} for vendor, device in here]


def benthos_config(bp: SiteBlueprint, device: Device, master: IoLinkMaster) -> dict[str, Any]:
    script = render_template(
        "converters/sensor_values.js.j2", device=device.name, master=master.name, ports=converter_ports(bp, master)
    )
    return {
        "input": {
            "sensorconnect": {
                "device_address": str(master.address),
                # The plugin declares `devices` without a default: it must be present, even when empty.
                "devices": sensorconnect_devices(bp, master_sensors(bp, master)),
            }
        },
        "pipeline": {"processors": [{"nodered_js": {"code": script}}]},
        "output": {
            "mqtt": {
                "urls": [broker_url(bp, device)],
                "client_id": f"umhctl-{device.name}-{master.name}",
                "topic": f'${{! meta("{TOPIC_META}") }}',
                "qos": 1,
            }
        },
    }


def converter_manifests(bp: SiteBlueprint, device: Device, master: IoLinkMaster) -> list[dict[str, Any]]:
    name = f"converter-{master.name}"
    labels = {"app.kubernetes.io/name": name, "umhctl/io-link-master": master.name}
    config = to_yaml(benthos_config(bp, device, master))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, CONVERTER_NAMESPACE, labels),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                # A changed config must restart the pod: the hash makes the pod template change with it.
                "metadata": {"labels": labels, "annotations": {"umhctl/config-hash": content_hash(config)}},
                "spec": {
                    "containers": [
                        {
                            "name": "benthos",
                            "image": f"{IMAGE}:{bp.versions.benthos_umh}",
                            "ports": [{"name": "http", "containerPort": 4195}],
                            "livenessProbe": {"httpGet": {"path": "/ping", "port": "http"}},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": "/benthos.yaml",
                                    "subPath": "benthos.yaml",
                                    "readOnly": True,
                                }
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": name}}],
                },
            },
        },
    }
    return [config_map(name, CONVERTER_NAMESPACE, {"benthos.yaml": config}, labels), deployment]


def render_converters(bp: SiteBlueprint, device: Device, state: DesiredState) -> None:
    for master in bp.io_link_masters:
        if master.device == device.name:
            docs = converter_manifests(bp, device, master)
            state.add(File(f"{K3S_MANIFESTS}/umhctl-converter-{master.name}.yaml", to_yaml_documents(docs).encode()))
