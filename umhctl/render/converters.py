"""Sensors → data flows: one benthos-umh protocol converter per IO-Link master, on the device that polls it.

The converter reads the master with the `sensorconnect` input, names each port's data with `tag_processor`
(ISA-95 location from the blueprint) and publishes to the hub's MQTT broker under umh/v1/...; the UMH chart's
own bridge carries it on into Kafka and TimescaleDB. An edge reaches its hub's broker through the hub's external
MQTT listener.
"""

from __future__ import annotations

from typing import Any

from umhctl.blueprint.model import Device, IoLinkMaster, SiteBlueprint
from umhctl.render.desired import DesiredState, File
from umhctl.render.k8s import CONVERTER_NAMESPACE, config_map, content_hash, metadata
from umhctl.render.system import K3S_MANIFESTS
from umhctl.render.yamltext import to_yaml, to_yaml_documents
from umhctl.templating import render_template

IMAGE = "ghcr.io/united-manufacturing-hub/benthos-umh"
HUB_MQTT = "united-manufacturing-hub-mqtt.united-manufacturing-hub.svc.cluster.local:1883"


def location_path(bp: SiteBlueprint, work_cell: str) -> str:
    return ".".join([bp.location.enterprise, bp.location.site, *work_cell.split("/")])


def broker_url(bp: SiteBlueprint, device: Device) -> str:
    if device.role == "hub":
        return f"tcp://{HUB_MQTT}"
    assert device.hub is not None  # validate guarantees every edge names its hub
    return f"tcp://{bp.device(device.hub).address}:1883"


def benthos_config(bp: SiteBlueprint, device: Device, master: IoLinkMaster) -> dict[str, Any]:
    sensors = sorted((s for s in bp.sensors if s.master == master.name), key=lambda s: s.port)
    ids: dict[tuple[int, int], dict[str, Any]] = {}
    for s in sensors:
        entry: dict[str, Any] = {"device_id": s.device_id, "vendor_id": s.vendor_id}
        if s.iodd_url:
            entry["iodd_url"] = s.iodd_url
        ids.setdefault((s.vendor_id, s.device_id), entry)
    ports = {
        str(s.port): {"location_path": location_path(bp, s.work_cell), "tag_name": s.tag or s.name} for s in sensors
    }
    script = render_template("converters/tag_processor.js.j2", device=device.name, master=master.name, ports=ports)
    return {
        "input": {"sensorconnect": {"device_address": str(master.address), "devices": [ids[k] for k in sorted(ids)]}},
        "pipeline": {"processors": [{"tag_processor": {"defaults": script}}]},
        "output": {
            "mqtt": {
                "urls": [broker_url(bp, device)],
                "client_id": f"umhctl-{device.name}-{master.name}",
                "topic": '${! meta("umh_topic").replace_all(".", "/") }',
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
