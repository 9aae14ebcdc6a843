"""UMH 0.29.0's historian bridges, re-implemented for tests: what a hub does with a converter's MQTT message.

Written from the chart's templates in the united-manufacturing-hub repository (read at commit f68e1bec4, Feb 2025,
the bridges the 0.29.0 chart ships), on purpose apart from umhctl's own naming rule (umhctl/blueprint/datapath.py),
so that tests cross-check the two. Line numbers are those of that commit:

- M2K: deployment/united-manufacturing-hub/templates/bridges/mqtt-to-kafka/historian/configmap.yaml
- K2P: deployment/united-manufacturing-hub/templates/bridges/kafka_to_postgres/historian/configmap.yaml

Only what decides whether and where a message is stored is modelled; Kafka, caching and SQL batching are not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# M2K lines 61-66: the MQTT subscriptions, enterprise down to origin id, each with '#' after _historian.
SUBSCRIPTIONS = [f"umh/v1/{'+/' * levels}_historian/#" for levels in range(1, 7)]
MERGE_POINT = 5  # M2K line 98: `umhMergePoint | default 5`; the chart's values keep 5

# K2P line 173, step "extract_hierarchy_from_topic". The Go (RE2) class [\w-_] means word characters, '-' and '_';
# Python spells it [\w_-], and RE2's \w is ASCII.
_W = r"[\w_-]"
HIERARCHY = re.compile(
    rf"^umh\.v1\.(?P<enterprise>{_W}+)\.((?P<site>{_W}+)\.)?((?P<area>{_W}+)\.)?((?P<productionLine>{_W}+)\.)?"
    rf"((?P<workCell>{_W}+)\.)?((?P<originId>{_W}+)\.)?_(?P<usecase>(historian)|(analytics))"
    rf"(\.(?P<tag>(?:[\w_.-]+)+))?$",
    re.ASCII,
)


@dataclass(frozen=True)
class Row:
    """One row the bridge inserts: into `tag` (numbers) or `tag_string` (anything else)."""

    table: str
    name: str
    value: Any
    timestamp_ms: int
    asset: tuple[str, str, str, str, str, str]  # enterprise, site, area, line, workcell, origin_id


def mqtt_subscribed(topic: str) -> bool:
    """Whether an MQTT topic matches one of the bridge's subscriptions (MQTT 3.1.1 §4.7: '#' matches the parent too)."""

    def match(pattern: list[str], levels: list[str]) -> bool:
        if pattern == ["#"]:
            return True
        if not pattern or not levels:
            return not pattern and not levels
        return pattern[0] in ("+", levels[0]) and match(pattern[1:], levels[1:])

    return any(match(s.split("/"), topic.split("/")) for s in SUBSCRIPTIONS)


def _historian_schema_ok(payload: Any, *, allow_arrays: bool) -> bool:
    """The _historian JSON schema: an object with an integer timestamp_ms and at least one more property.

    M2K step 6 (label check_if_previously_bridged_and_validate_schema) also refuses array values and drops what
    fails (label delete_if_invalid_schema); K2P step 4 (label validate_against_historian_schema) allows them.
    """
    if not isinstance(payload, dict) or len(payload) < 2:
        return False
    stamp = payload.get("timestamp_ms")
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        return False

    def no_arrays(value: Any) -> bool:
        if isinstance(value, list):
            return False
        return all(no_arrays(v) for v in value.values()) if isinstance(value, dict) else True

    return allow_arrays or all(no_arrays(v) for k, v in payload.items() if k != "timestamp_ms")


def mqtt_to_kafka(topic: str, body: bytes) -> tuple[str, str, bytes] | None:
    """(Kafka topic, key, value) the mqtt-to-kafka bridge produces, or None when it drops the message."""
    if not mqtt_subscribed(topic):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None  # M2K step 3/4: invalid JSON is deleted
    if "_historian" in topic and not _historian_schema_ok(payload, allow_arrays=False):
        return None
    converted = re.sub(r"[^a-zA-Z0-9._-]", "_", topic.replace("/", "."))  # M2K lines 109, 114
    parts = converted.strip(".").split(".")  # M2K line 116
    split = min(MERGE_POINT, len(parts))  # M2K lines 117-123
    return ".".join(parts[:split]), ".".join(parts[split:]), body


def _collapse(data: dict[str, Any], path: str = "") -> dict[str, Any]:
    """K2P `map collapse_rec` (lines 287-303): nested objects become keys joined by '$'."""
    prefix = f"{path}$" if path else ""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_collapse(value, prefix + key))
        elif isinstance(value, list):
            flat[prefix + key] = [_collapse(v) if isinstance(v, dict) else v for v in value]
        else:
            flat[prefix + key] = value
    return flat


def kafka_to_postgres(kafka_topic: str, kafka_key: str, body: bytes) -> list[Row]:
    """The rows the kafka-to-postgres historian bridge inserts for one Kafka record."""
    topic = f"{kafka_topic}.{kafka_key}".strip(".")  # K2P step 1 (label reconstruct_full_topic_name), line 85
    if "_historian" not in topic:  # step 2
        return []
    try:
        payload = json.loads(body)
    except ValueError:
        return []  # step 3
    if not _historian_schema_ok(payload, allow_arrays=True):  # step 4
        return []
    match = HIERARCHY.match(topic)  # step 5
    if match is None:
        return []
    parts = match.groupdict()
    asset = (
        parts["enterprise"],
        parts["site"] or "",
        parts["area"] or "",
        parts["productionLine"] or "",
        parts["workCell"] or "",
        parts["originId"] or "",
    )
    tag = (parts["tag"] or "").replace(".", "$")  # K2P line 326
    rows = []
    for key, value in _collapse({k: v for k, v in payload.items() if k != "timestamp_ms"}).items():
        name = (tag + "$" + key.replace(".", "$")).strip("$")  # K2P line 331: the stored name
        # Output switch `check: this.t == "number"`: numbers go to tag, everything else to tag_string.
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        rows.append(Row("tag" if number else "tag_string", name, value, payload["timestamp_ms"], asset))
    return rows


def store(mqtt_topic: str, body: bytes) -> list[Row]:
    """Both bridges: the rows an MQTT message on the hub's broker ends up as."""
    record = mqtt_to_kafka(mqtt_topic, body)
    return kafka_to_postgres(*record) if record is not None else []
