"""From a sensor to a dashboard: where a value is published, and the name UMH stores it under.

This is the one naming rule the converters, the dashboard check and the README share. A converter publishes each
reading of a sensor as one `_historian` message in UMH's classic payload shape, on its work cell's topic with
nothing after `_historian`:

    umh/v1/<enterprise>/<site>/<area>/<line>/<workcell>/_historian
    {"timestamp_ms": 1733904000000, "<tag>": <number>, "<tag>": <number>, ...}

UMH 0.29.0's historian bridge decides what lands in the database (united-manufacturing-hub repository,
deployment/united-manufacturing-hub/templates/bridges/kafka_to_postgres/historian/configmap.yaml): step
"extract_hierarchy_from_topic" takes the asset (enterprise, site, area, line, workcell, origin_id) from the topic
and the topic tag from what follows `_historian`; step "flatten_payload_for_insertion" stores every payload key k
except timestamp_ms as `(<topic tag> + "$" + k).trim("$")` ('.' becoming '$'), numbers in table `tag`, anything
else in `tag_string`. With no topic tag, and tag names that hold neither '.' nor '$', the stored name is the tag
itself. So: **a sensor value is stored in `tag` under its tag name, in the asset row of its sensor's work cell.**

Why not benthos-umh's tag_processor: it publishes `{"value": ...}` on `.../_historian/<tag>`, which the same step
stores as `<tag>$value`; a name with '$' in it is awkward in SQL and Grafana (`$value` reads as a dashboard
variable), and one message per value instead of one per reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from umhctl.blueprint.model import Sensor, SensorValue, SiteBlueprint

HISTORIAN = "_historian"


@dataclass(frozen=True)
class Asset:
    """A row of UMH's `asset` table: the ISA-95 position the bridge reads from the topic."""

    enterprise: str
    site: str
    area: str
    line: str
    workcell: str
    origin_id: str = ""  # umhctl publishes no origin id: nothing follows the work cell in its topics


@dataclass(frozen=True)
class StoredTag:
    """A name the bridge stores for one value of one sensor, in the database of one hub."""

    name: str
    asset: Asset
    sensor: str
    hub: str | None  # None when the blueprint does not connect the sensor to a hub (validate reports that)


def asset_of(bp: SiteBlueprint, work_cell: str) -> Asset:
    area, line, cell = work_cell.split("/")
    return Asset(bp.location.enterprise, bp.location.site, area, line, cell)


def historian_topic(bp: SiteBlueprint, work_cell: str) -> str:
    """The MQTT topic a converter publishes a work cell's readings on (UMH's `_historian` data contract)."""
    asset = asset_of(bp, work_cell)
    return "/".join(["umh", "v1", asset.enterprise, asset.site, asset.area, asset.line, asset.workcell, HISTORIAN])


def stored_tag_name(value: SensorValue) -> str:
    """The payload key a converter writes for `value`, which is also the name UMH's bridge stores it under."""
    return value.tag_name


def sensor_hub(bp: SiteBlueprint, sensor: Sensor) -> str | None:
    """The hub whose database receives the sensor's data: its master's device, or that device's hub."""
    master = next((m for m in bp.io_link_masters if m.name == sensor.master), None)
    device = next((d for d in bp.devices if master is not None and d.name == master.device), None)
    if device is None:
        return None
    return device.name if device.role == "hub" else device.hub


def stored_tags(bp: SiteBlueprint) -> list[StoredTag]:
    return [
        StoredTag(stored_tag_name(value), asset_of(bp, sensor.work_cell), sensor.name, sensor_hub(bp, sensor))
        for sensor in bp.sensors
        if sensor.work_cell.count("/") == 2
        for value in sensor.values
    ]
