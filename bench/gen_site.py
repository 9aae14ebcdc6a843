"""Generate a large site blueprint that validates, for the scale benchmarks.

    python3 bench/gen_site.py 500 --out /tmp/site-500      # writes /tmp/site-500/site.yaml and known_hosts

N devices: one hub per 50 devices (at least one), the rest edges. Every edge polls one IO-Link master (AL1350,
4 ports) with four sensors; the first edge of each hub has three, so N=500 gives 10 hubs, 490 edges, 490 masters
and 1,950 sensors. Every hub runs a broker and a database. The data is built as data and dumped as YAML.

Addresses: management addresses are documentation ranges (RFC 5737: 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, .10-.249 of each, so up to 720 devices). The three /24s do not hold a field network per edge
as well, so each edge's field network (a /29: edge .1, master .2) comes from 198.18.0.0/15, the range RFC 2544
reserves for benchmarking: like the documentation ranges it is never routed, and `umhctl sim` never contacts
either (simulated devices live on 127.0.0.0/8).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import Any

MANAGEMENT = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
FIELD = ipaddress.ip_network("198.18.0.0/15")
HOSTS_PER_NETWORK = 240  # .10 to .249; .1 gateway, .2 DNS, .3 NTP
MAX_DEVICES = HOSTS_PER_NETWORK * len(MANAGEMENT)
AUTHORIZED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICHy9siiBYpe75OvPUvPWpZJohaG6qJIYtVgi+z0y40g ops@example-plant"
# (name, port, deviceId, processData, tag, unit, scale): ifm VVB001, TV7105, TV7105, O5D100 as in the retrofit
# example.
SENSORS = [
    ("spindle-vib", 1, 1028, "v-Rms", "spindleVibration", "m/s", 0.0001),
    ("spindle-temp", 2, 733, "Temperature", "spindleTemperature", "degC", 0.1),
    ("coolant-temp", 3, 733, "Temperature", "coolantTemperature", "degC", 0.1),
    ("part-dist", 4, 372, "Distance", "partDistance", "mm", None),
]
EDGES_PER_LINE = 10


def management_address(index: int) -> tuple[str, ipaddress.IPv4Network]:
    net = MANAGEMENT[index // HOSTS_PER_NETWORK]
    return str(net.network_address + 10 + index % HOSTS_PER_NETWORK), net


def interface(address: str, net: ipaddress.IPv4Network, name: str = "eth0") -> dict[str, Any]:
    base = net.network_address
    return {
        "name": name,
        "address": f"{address}/{net.prefixlen}",
        "gateway": str(base + 1),
        "dns": [str(base + 2)],
    }


def blueprint(count: int, name: str) -> dict[str, Any]:
    if not 2 <= count <= MAX_DEVICES:
        raise ValueError(f"N must be between 2 and {MAX_DEVICES}")
    hubs = max(1, count // 50)
    edges = count - hubs
    per_hub = [edges // hubs + (1 if h < edges % hubs else 0) for h in range(hubs)]
    devices: list[dict[str, Any]] = []
    areas: list[dict[str, Any]] = []
    masters: list[dict[str, Any]] = []
    sensors: list[dict[str, Any]] = []
    brokers: list[dict[str, Any]] = []
    databases: list[dict[str, Any]] = []
    secrets: dict[str, Any] = {"grafana-admin": {"generate": {"type": "password"}}}
    index = 0  # management address slot
    edge_number = 0
    for h in range(hubs):
        hub = f"hub-{h + 1:02d}"
        area = f"hall-{h + 1:02d}"
        address, net = management_address(index)
        index += 1
        devices.append(
            {
                "name": hub,
                "role": "hub",
                "address": address,
                "installDisk": "/dev/nvme0n1",
                "location": area,
                "interfaces": [interface(address, net)],
            }
        )
        brokers.append(
            {
                "device": hub,
                "mqtt": {"externalListener": True, "tlsOnly": False, "mutualAuth": False},
                "kafka": {"storage": "10Gi", "retention": "168h"},
            }
        )
        secrets[f"db-{hub}-grafanareader"] = {"generate": {"type": "password"}}
        databases.append(
            {
                "device": hub,
                "storage": "20Gi",
                "retention": "90d",
                "users": [{"name": "grafanareader", "passwordSecret": f"db-{hub}-grafanareader", "role": "readonly"}],
            }
        )
        lines: list[dict[str, Any]] = []
        for e in range(per_hub[h]):
            if e % EDGES_PER_LINE == 0:
                lines.append({"name": f"line-{e // EDGES_PER_LINE + 1:02d}", "workCells": []})
            line = lines[-1]
            cell = f"cell-{edge_number + 1:03d}"
            line["workCells"].append({"name": cell})
            edge = f"edge-{edge_number + 1:03d}"
            address, net = management_address(index)
            index += 1
            field = ipaddress.ip_network((int(FIELD.network_address) + 8 * edge_number, 29))
            devices.append(
                {
                    "name": edge,
                    "role": "edge",
                    "hub": hub,
                    "address": address,
                    "installDisk": "/dev/sda",
                    "location": f"{area}/{line['name']}",
                    "interfaces": [
                        interface(address, net),
                        {"name": "eth1", "address": f"{field.network_address + 1}/29"},
                    ],
                }
            )
            master = f"iolm-{edge_number + 1:03d}"
            masters.append(
                {"name": master, "device": edge, "address": str(field.network_address + 2), "model": "AL1350"}
            )
            used = SENSORS[:3] if e == 0 else SENSORS
            for sensor, port, device_id, process_data, tag, unit, scale in used:
                value: dict[str, Any] = {"processData": process_data, "tag": tag, "unit": unit}
                if scale is not None:
                    value["scale"] = scale
                sensors.append(
                    {
                        "name": f"{edge}-{sensor}",
                        "master": master,
                        "port": port,
                        "vendorId": 310,
                        "deviceId": device_id,
                        "workCell": f"{area}/{line['name']}/{cell}",
                        "values": [value],
                    }
                )
            edge_number += 1
        areas.append({"name": area, "lines": lines})
    return {
        "apiVersion": "umhctl/v1",
        "kind": "SiteBlueprint",
        "metadata": {"name": name, "description": f"generated by bench/gen_site.py: {hubs} hubs, {edges} edges"},
        "location": {"enterprise": "acme", "site": "benchtown", "areas": areas},
        "versions": {
            "flatcar": {"version": "4152.2.3", "channel": "stable"},
            "k3s": "v1.32.2+k3s1",
            "umhChart": "0.29.0",
            "benthosUmh": "0.12.6",
        },
        "access": {"user": "core", "authorizedKeys": [AUTHORIZED_KEY], "knownHostsFile": "known_hosts"},
        "os": {
            "timezone": "Europe/Berlin",
            "updates": {"rebootStrategy": "off"},
            "ntp": [str(net.network_address + 3) for net in MANAGEMENT],
        },
        "secrets": secrets,
        "devices": devices,
        "brokers": brokers,
        "databases": databases,
        "grafana": {"adminPasswordSecret": "grafana-admin", "mqttDatasource": True},
        "ioLinkMasters": masters,
        "sensors": sensors,
    }


def write_site(count: int, out: Path, name: str | None = None) -> Path:
    """Write `out`/site.yaml (and an empty known_hosts next to it); returns the blueprint's path."""
    from ruamel.yaml import YAML

    out.mkdir(parents=True, exist_ok=True)
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    path = out / "site.yaml"
    with path.open("w", encoding="utf-8") as stream:
        yaml.dump(blueprint(count, name or f"bench-{count}"), stream)
    known_hosts = out / "known_hosts"
    if not known_hosts.exists():
        known_hosts.write_text("")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int, metavar="N", help=f"number of devices (2 to {MAX_DEVICES})")
    parser.add_argument("--out", type=Path, required=True, help="directory to write site.yaml and known_hosts into")
    parser.add_argument("--name", help="metadata.name (default bench-N)")
    args = parser.parse_args()
    try:
        path = write_site(args.count, args.out, args.name)
    except ValueError as exc:
        parser.error(str(exc))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
