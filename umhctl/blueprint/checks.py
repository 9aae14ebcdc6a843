"""Cross-reference checks: what no single field can know on its own.

Each check reports at the YAML position of the value that is wrong (the second of two duplicates, the
reference that does not resolve), with a hint where one helps.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from umhctl.blueprint import devicepaths, jsontext
from umhctl.blueprint.dashboards import SqlTarget, parse_query, sql_targets
from umhctl.blueprint.datapath import StoredTag, stored_tag_name, stored_tags
from umhctl.blueprint.model import (
    IOLINK_MASTER_PORTS,
    TAG_NAME_PATTERN,
    TAG_NAME_PROBLEM,
    Dashboard,
    Device,
    Interface,
    Sensor,
    SiteBlueprint,
)
from umhctl.blueprint.repofiles import (
    MAX_DASHBOARD,
    MAX_KNOWN_HOSTS,
    MAX_TEMPLATE,
    RepoFileProblem,
    RepoFiles,
    read_regular,
)
from umhctl.blueprint.yamlsource import SourceMap
from umhctl.diagnostics import Diagnostic, Severity, format_path

Loc = tuple[str | int, ...]

DATASOURCES = ("timescaledb", "mqtt")
T = TypeVar("T")


class _Report:
    def __init__(self, source: SourceMap, ignore: set[str] | None = None) -> None:
        self.source = source
        self.items: list[Diagnostic] = []
        # Names of parts left out because they did not parse: a reference to one is not "unknown".
        self.ignore = ignore or set()

    def error(self, path: Loc, message: str, hint: str | None = None, *, key: bool = False) -> None:
        self.items.append(self.source.diagnostic(path, message, hint=hint, key=key))

    def warning(self, path: Loc, message: str, hint: str | None = None) -> None:
        self.items.append(self.source.diagnostic(path, message, hint=hint, severity="warning"))

    def in_file(
        self, file: str, position: tuple[int, int], path: Loc, message: str, hint: str | None, severity: Severity
    ) -> None:
        """A problem in another file the blueprint points at (a dashboard), at its own line and column."""
        line, column = position
        self.items.append(Diagnostic(file, line, column, message, severity, hint, format_path(path)))

    def unique(self, what: str, entries: Iterable[tuple[Any, Loc]]) -> None:
        first: dict[Any, Loc] = {}
        for value, path in entries:
            if value in first:
                line, col = self.source.locate(first[value])
                self.error(path, f"duplicate {what} '{value}'", f"already used at line {line}, column {col}")
            else:
                first[value] = path

    def reference(self, path: Loc, what: str, name: str, known: Iterable[str]) -> bool:
        names = list(known)
        if name in names:
            return True
        if name in self.ignore:
            return False
        from umhctl.blueprint.loader import did_you_mean

        hint = did_you_mean(name, names) or (f"known {what}s: {', '.join(names)}" if names else f"no {what} is defined")
        self.error(path, f"unknown {what} '{name}'", hint)
        return False


def _first(pairs: Iterable[tuple[str, T]]) -> dict[str, T]:
    """Name → item where the first definition wins, as with bp.device(): duplicates are reported elsewhere."""
    result: dict[str, T] = {}
    for name, item in pairs:
        result.setdefault(name, item)
    return result


def check_blueprint(
    bp: SiteBlueprint, source: SourceMap, base_dir: Path, *, ignore: set[str] | None = None
) -> list[Diagnostic]:
    """Cross-reference checks. `ignore`: names of parts that did not parse (references to them are not errors)."""
    report = _Report(source, ignore)
    files = RepoFiles(base_dir)
    _check_location(bp, report)
    _check_secrets(bp, report, files)
    _check_access(bp, report, files)
    _check_tailscale(bp, report)
    _check_devices(bp, report)
    _check_services(bp, report)
    _check_masters_and_sensors(bp, report)
    _check_dashboards(bp, report, files)
    _check_extra_files(bp, report, files)
    return report.items


def _location_paths(bp: SiteBlueprint) -> tuple[list[str], list[str]]:
    """(area and area/line paths, area/line/cell paths) of the ISA-95 tree."""
    containers: list[str] = []
    cells: list[str] = []
    for area in bp.location.areas:
        containers.append(area.name)
        for line in area.lines:
            containers.append(f"{area.name}/{line.name}")
            cells += [f"{area.name}/{line.name}/{cell.name}" for cell in line.work_cells]
    return containers, cells


def _check_location(bp: SiteBlueprint, report: _Report) -> None:
    areas = bp.location.areas
    report.unique("area name", ((a.name, ("location", "areas", i, "name")) for i, a in enumerate(areas)))
    for i, area in enumerate(areas):
        base: Loc = ("location", "areas", i, "lines")
        report.unique(
            f"line name in area '{area.name}'", ((ln.name, base + (j, "name")) for j, ln in enumerate(area.lines))
        )
        for j, line in enumerate(area.lines):
            cells: Loc = base + (j, "workCells")
            report.unique(
                f"work cell name in line '{line.name}'",
                ((c.name, cells + (k, "name")) for k, c in enumerate(line.work_cells)),
            )


def secret_uses(bp: SiteBlueprint) -> Iterable[tuple[str, Loc]]:
    """Every place the blueprint uses a named secret: (name, where)."""
    if bp.grafana.admin_password_secret:
        yield bp.grafana.admin_password_secret, ("grafana", "adminPasswordSecret")
    for i, db in enumerate(bp.databases):
        for j, user in enumerate(db.users):
            yield user.password_secret, ("databases", i, "users", j, "passwordSecret")
    if bp.access.enabled_tailscale is not None:
        yield bp.access.enabled_tailscale.auth_key_secret, ("access", "tailscale", "authKeySecret")


def _check_secrets(bp: SiteBlueprint, report: _Report, files: RepoFiles) -> None:
    for name, path in secret_uses(bp):
        report.reference(path, "secret", name, bp.secrets)
    for name, ref in bp.secrets.items():
        if ref.file is None:
            continue
        at: Loc = ("secrets", name, "file")
        target = files.resolve(ref.file)
        if target is None:
            # A secret file outside the repository would let a blueprint ship any file of the operator's machine
            # (an SSH key, a cloud credential) to the devices as a "secret".
            report.error(
                at,
                f"secret file '{ref.file}' is outside the blueprint's repository",
                "keep secret files in the repository directory and git-ignore them, or use {env: NAME}",
            )
            continue
        if target.exists() and not target.is_file():
            report.error(at, f"secret file '{ref.file}' is not a regular file")
            continue
        if not (files.root / ".git").exists():
            continue
        tracked = files.git("ls-files", "--error-unmatch", "--", str(target))
        if tracked is not None and tracked.returncode == 0:
            report.error(
                at,
                f"secret file '{ref.file}' is tracked by git: secret values must never be committed",
                f"run 'git rm --cached {ref.file}', add it to .gitignore and rotate the secret",
            )
            continue
        ignored = files.git("check-ignore", "-q", "--", str(target))
        if ignored is not None and ignored.returncode == 1:
            report.warning(
                at,
                f"secret file '{ref.file}' is inside the repository but not git-ignored",
                "add it to .gitignore so it cannot be committed by accident",
            )


def _networks(device: Device) -> list[IPv4Network]:
    return [i.address.network for i in device.interfaces if i.address is not None]


def _all_static(device: Device) -> bool:
    return all(not i.dhcp for i in device.interfaces)


def _check_access(bp: SiteBlueprint, report: _Report, files: RepoFiles) -> None:
    # umhctl rewrites known_hosts (render --update-known-hosts, reset --rotate-host-key) and commits it: it must
    # be a file of the site repository, like dashboards and templates.
    at: Loc = ("access", "knownHostsFile")
    path = files.resolve(bp.access.known_hosts_file)
    if path is None:
        report.error(
            at,
            f"'{bp.access.known_hosts_file}' is outside the blueprint's repository",
            "keep known_hosts in the site repository, next to the blueprint (the default: known_hosts)",
        )
    elif path.exists():  # render --update-known-hosts creates it
        try:
            read_regular(path, f"known_hosts file '{bp.access.known_hosts_file}'", MAX_KNOWN_HOSTS)
        except RepoFileProblem as problem:
            report.error(at, str(problem), problem.hint)
        except OSError as exc:
            report.error(at, f"cannot read '{bp.access.known_hosts_file}': {exc.strerror}")


def _check_tailscale(bp: SiteBlueprint, report: _Report) -> None:
    access = bp.access
    tailnet = access.enabled_tailscale
    if access.via == "tailscale":
        if access.tailscale is None:
            report.error(
                ("access", "via"),
                "'via: tailscale' needs an access.tailscale section: the devices must be enrolled in a tailnet",
                "add access.tailscale (version, authKeySecret, tailnet), or use 'via: management'",
            )
        elif tailnet is None:
            report.error(
                ("access", "via"),
                "'via: tailscale' but access.tailscale is disabled ('enabled: false')",
                "enable access.tailscale, or use 'via: management'",
            )
        elif tailnet.tailnet is None:
            report.error(
                ("access", "via"),
                "'via: tailscale' needs the tailnet's domain: umhctl reaches a device as <hostname>.<tailnet>",
                "set access.tailscale.tailnet to the tailnet's MagicDNS domain, e.g. 'tailnet: example-plant.ts.net'",
            )
    if tailnet is None:
        return
    ref = bp.secrets.get(tailnet.auth_key_secret)
    if ref is not None and ref.generate is not None:
        report.error(
            ("secrets", tailnet.auth_key_secret, "generate"),
            f"secret '{tailnet.auth_key_secret}' is the Tailscale auth key: it comes from the tailnet's admin "
            "console (or `headscale preauthkeys create`), umhctl cannot generate one",
            "reference it with {env: NAME} or {file: PATH}",
        )
    # Two devices with one tailnet name: the control server would rename the second (name-1), and umhctl would
    # reach the first under both.
    report.unique(
        "tailnet hostname",
        (
            (d.tailnet_name, ("devices", i, "tailnetHostname" if d.tailnet_hostname else "name"))
            for i, d in enumerate(bp.devices)
            if d.tailnet_hostname or [x.name for x in bp.devices].index(d.name) == i
        ),
    )


def _check_devices(bp: SiteBlueprint, report: _Report) -> None:
    devices = bp.devices
    report.unique("device name", ((d.name, ("devices", i, "name")) for i, d in enumerate(devices)))
    # A device without a hostname is named by its name; a duplicate name is already reported once.
    names = [d.name for d in devices]
    report.unique(
        "hostname",
        (
            (d.host_name, ("devices", i, "hostname" if d.hostname else "name"))
            for i, d in enumerate(devices)
            if d.hostname or names.index(d.name) == i
        ),
    )
    report.unique("device address", ((str(d.address), ("devices", i, "address")) for i, d in enumerate(devices)))
    report.unique(
        "interface address",
        (
            (str(itf.address.ip), ("devices", i, "interfaces", j, "address"))
            for i, d in enumerate(devices)
            for j, itf in enumerate(d.interfaces)
            if itf.address is not None
        ),
    )
    containers, _ = _location_paths(bp)
    hubs = _first((d.name, d) for d in devices if d.role == "hub")
    for i, device in enumerate(devices):
        at: Loc = ("devices", i)
        _check_interfaces(device, at, report)
        if device.location is not None:
            report.reference(at + ("location",), "location", device.location, containers)
        if device.role == "hub" and device.hub is not None:
            report.error(at + ("hub",), f"'{device.name}' is a hub; only edge devices name a hub", "remove 'hub'")
        if device.role == "edge":
            if device.hub is None:
                report.error(
                    at + ("role",),
                    f"edge device '{device.name}' needs a hub to forward its data to",
                    f"add 'hub: <name>' (hubs: {', '.join(hubs) or 'none defined'})",
                )
            elif device.hub not in hubs:
                if any(d.name == device.hub for d in devices):
                    report.error(at + ("hub",), f"'{device.hub}' is not a hub (role: edge)")
                else:
                    report.reference(at + ("hub",), "hub", device.hub, hubs)
            elif _all_static(device) and not _reaches(device, hubs[device.hub].address):
                report.error(
                    at + ("hub",),
                    f"edge device '{device.name}' cannot reach hub '{device.hub}' ({hubs[device.hub].address}): "
                    "it is on none of the edge's networks and the edge has no gateway",
                    "put both on one network, or give the edge a gateway",
                )


def _reaches(device: Device, address: IPv4Address) -> bool:
    if any(itf.gateway is not None for itf in device.interfaces):
        return True
    return any(address in net for net in _networks(device))


def _could_match_the_same_link(a: Interface, b: Interface) -> bool:
    """systemd-networkd applies the first .network file that matches a link (systemd.network(5), [Match]); two
    of ours that could both match one link would leave the second without effect."""
    if a.name is not None and b.name is not None and a.name != b.name:
        return False
    return not (a.mac is not None and b.mac is not None and a.mac != b.mac)


def _label(itf: Interface) -> str:
    return " ".join(filter(None, (itf.name, itf.mac)))


def _check_interfaces(device: Device, at: Loc, report: _Report) -> None:
    interfaces = device.interfaces
    gateways = 0
    for j, itf in enumerate(interfaces):
        here = at + ("interfaces", j)
        if itf.name is None and itf.mac is None:
            report.error(
                here,
                "an interface needs 'name' or 'mac' (or both): a .network file without them would match every link",
                "on bare metal, 'mac: 00:1b:21:3a:4f:c2' matches whatever the link is called (enp2s0, eth0, ...)",
                key=False,
            )
            continue
        earlier = next(
            (
                k
                for k, other in enumerate(interfaces[:j])
                if (other.name or other.mac) and _could_match_the_same_link(other, itf)
            ),
            None,
        )
        if earlier is not None:
            report.error(
                here + ("mac" if itf.mac is not None else "name",),
                f"interface '{_label(itf)}' could match the same link as interface {earlier + 1} "
                f"('{_label(interfaces[earlier])}'): systemd-networkd would apply only the first",
                "give each interface a different name, or each a different MAC address",
            )
        if itf.dhcp and itf.address is not None:
            report.error(here + ("address",), "an interface has either 'dhcp: true' or a static 'address', not both")
        if not itf.dhcp and itf.address is None:
            report.error(here, f"interface '{_label(itf)}' needs 'address: IP/PREFIX' or 'dhcp: true'", key=False)
        if itf.address is not None:
            net = itf.address.network
            if net.prefixlen < 31 and itf.address.ip in (net.network_address, net.broadcast_address):
                report.error(
                    here + ("address",),
                    f"{itf.address} is the {'network' if itf.address.ip == net.network_address else 'broadcast'} "
                    f"address of {net}, not a host address",
                )
            if itf.gateway is not None and itf.gateway not in net:
                report.error(
                    here + ("gateway",),
                    f"gateway {itf.gateway} is outside the interface's network {net}",
                    f"a gateway must be inside {net}",
                )
        if itf.gateway is not None:
            gateways += 1
            if gateways > 1:
                report.error(here + ("gateway",), f"'{device.name}' has more than one default gateway")
            if itf.dhcp:
                report.error(here + ("gateway",), "a DHCP interface gets its gateway from DHCP; remove 'gateway'")
    nets = _networks(device)
    if _all_static(device) and nets and not any(device.address in net for net in nets):
        report.error(
            at + ("address",),
            f"management address {device.address} is outside every network of '{device.name}' "
            f"({', '.join(str(n) for n in nets)})",
            "use the address of one of its interfaces",
        )
    elif _all_static(device) and nets and device.address not in [i.address.ip for i in interfaces if i.address]:
        # k3s' node-ip is the management address: it must be an address the device really has.
        report.error(
            at + ("address",),
            f"management address {device.address} is no interface's address on '{device.name}' "
            f"(k3s would advertise an address the device does not have)",
            "use the static address of one of its interfaces",
        )


def _check_hub_service(bp: SiteBlueprint, report: _Report, section: str, what: str, devices: list[str]) -> None:
    roles = _first((d.name, d.role) for d in bp.devices)
    seen: dict[str, int] = {}
    for i, name in enumerate(devices):
        path: Loc = (section, i, "device")
        if not report.reference(path, "device", name, roles):
            continue
        if roles[name] != "hub":
            report.error(path, f"{what} runs only on a hub, and '{name}' is an edge device", "move it to a hub")
        elif name in seen:
            report.error(path, f"'{name}' already has {what} (entry {seen[name] + 1} of '{section}')")
        seen.setdefault(name, i)


def _check_services(bp: SiteBlueprint, report: _Report) -> None:
    _check_hub_service(bp, report, "brokers", "a broker", [b.device for b in bp.brokers])
    _check_hub_service(bp, report, "databases", "a database", [d.device for d in bp.databases])
    for i, broker in enumerate(bp.brokers):
        if broker.mqtt.mutual_auth and not broker.mqtt.external_listener:
            report.error(
                ("brokers", i, "mqtt", "mutualAuth"),
                "mutual TLS authentication applies to the external listener, which is off",
                "set 'externalListener: true'",
            )
    for i, db in enumerate(bp.databases):
        report.unique("database user", ((u.name, ("databases", i, "users", j, "name")) for j, u in enumerate(db.users)))
        for j, user in enumerate(db.users):
            if user.name in RESERVED_DATABASE_USERS:
                report.error(
                    ("databases", i, "users", j, "name"),
                    f"database user '{user.name}' belongs to the UMH chart: {RESERVED_DATABASE_USERS[user.name]}",
                    "give the blueprint's user another name",
                )


# Roles the UMH 0.29.0 chart and its TimescaleDB sub-chart create and use themselves: the setup Job must not
# change their passwords or grants (the historian bridge's DSN, for one, carries the chart's built-in password).
RESERVED_DATABASE_USERS = {
    "postgres": "the superuser the setup Job itself logs in as",
    "kafkatopostgresqlv2": "the historian bridge writes umh_v2 as this user, with the chart's built-in password",
    "factoryinsight": "factoryinsight's own user",
    "grafana": "Grafana's own database user (grafana.ini)",
    "admin": "a Patroni role of the timescaledb-single sub-chart",
    "standby": "a Patroni replication role of the timescaledb-single sub-chart",
}
# The _historian payload carries its timestamp under this key: a tag of that name would be taken for it.
RESERVED_TAG_NAMES = ("timestamp_ms",)


def _check_masters_and_sensors(bp: SiteBlueprint, report: _Report) -> None:
    masters = bp.io_link_masters
    devices = _first((d.name, d) for d in bp.devices)
    report.unique("IO-Link master name", ((m.name, ("ioLinkMasters", i, "name")) for i, m in enumerate(masters)))
    taken = {str(d.address): f"device '{d.name}'" for d in bp.devices}
    for d in bp.devices:
        taken.update({str(itf.address.ip): f"device '{d.name}'" for itf in d.interfaces if itf.address})
    report.unique(
        "IO-Link master address", ((str(m.address), ("ioLinkMasters", i, "address")) for i, m in enumerate(masters))
    )
    for i, master in enumerate(masters):
        at: Loc = ("ioLinkMasters", i)
        if str(master.address) in taken:
            report.error(at + ("address",), f"address {master.address} is already used by {taken[str(master.address)]}")
        if master.port_count is None:
            report.error(
                at + ("model",),
                f"unknown IO-Link master model '{master.model}'",
                "set 'ports: N' for this model, or use one of " + ", ".join(IOLINK_MASTER_PORTS),
            )
        if report.reference(at + ("device",), "device", master.device, devices):
            poller = devices[master.device]
            nets = _networks(poller)
            if _all_static(poller) and nets and not any(master.address in n for n in nets):
                report.error(
                    at + ("address",),
                    f"IO-Link master {master.address} is on none of the networks of '{poller.name}' "
                    f"({', '.join(str(n) for n in nets)})",
                    "the device polls the master directly: give it an interface on the master's network",
                )

    _check_forwarding(bp, report)
    by_name = _first((m.name, m) for m in masters)
    _, cells = _location_paths(bp)
    report.unique("sensor name", ((s.name, ("sensors", i, "name")) for i, s in enumerate(bp.sensors)))
    report.unique(
        "sensor port",
        ((f"{s.master} port {s.port}", ("sensors", i, "port")) for i, s in enumerate(bp.sensors)),
    )
    # The bridge keys rows by (asset, name, timestamp): two values under one name in one work cell would overwrite
    # each other's readings (ON CONFLICT DO NOTHING keeps whichever came first).
    report.unique(
        "tag in work cell",
        (
            (f"{s.work_cell}: {stored_tag_name(v)}", _value_name_at(i, j, v.tag))
            for i, s in enumerate(bp.sensors)
            for j, v in enumerate(s.values)
        ),
    )
    _check_iodd_urls(bp, report)
    for i, sensor in enumerate(bp.sensors):
        at = ("sensors", i)
        _check_sensor_values(i, sensor, report)
        report.reference(at + ("workCell",), "work cell", sensor.work_cell, cells)
        if report.reference(at + ("master",), "IO-Link master", sensor.master, by_name):
            ports = by_name[sensor.master].port_count
            if ports is not None and sensor.port > ports:
                report.error(
                    at + ("port",),
                    f"port {sensor.port} does not exist: master '{sensor.master}' "
                    f"({by_name[sensor.master].model}) has {ports} ports",
                    f"use a port from 1 to {ports}",
                )


def _value_name_at(sensor: int, value: int, tag: str | None) -> Loc:
    return ("sensors", sensor, "values", value, "tag" if tag is not None else "processData")


def _check_sensor_values(i: int, sensor: Sensor, report: _Report) -> None:
    report.unique(
        "process-data value",
        ((v.process_data, ("sensors", i, "values", j, "processData")) for j, v in enumerate(sensor.values)),
    )
    for j, value in enumerate(sensor.values):
        name = stored_tag_name(value)
        where = _value_name_at(i, j, value.tag)
        if value.tag is None and not re.fullmatch(TAG_NAME_PATTERN, name):
            report.error(
                where,
                f"process-data name '{name}' is not {TAG_NAME_PROBLEM}, so it cannot be the tag it is stored under",
                f"give this value a tag, e.g. 'tag: {re.sub(r'[^A-Za-z0-9_]+', '_', name).strip('_') or 'value'}'",
            )
        elif name in RESERVED_TAG_NAMES:
            report.error(where, f"'{name}' cannot be a tag: the _historian payload carries its timestamp under it")


def _check_iodd_urls(bp: SiteBlueprint, report: _Report) -> None:
    """sensorconnect keeps one IODD per vendor and device id: two sensors of one type cannot name two IODDs."""
    first: dict[tuple[int, int], tuple[str, int]] = {}
    for i, sensor in enumerate(bp.sensors):
        if sensor.iodd_url is None:
            continue
        key = (sensor.vendor_id, sensor.device_id)
        url, index = first.setdefault(key, (sensor.iodd_url, i))
        if url != sensor.iodd_url:
            report.error(
                ("sensors", i, "ioddUrl"),
                f"vendorId {key[0]} / deviceId {key[1]} already has ioddUrl '{url}' (sensor "
                f"'{bp.sensors[index].name}'): sensorconnect keeps one IODD per device type",
                "use the same ioddUrl for every sensor of this type",
            )


def _check_forwarding(bp: SiteBlueprint, report: _Report) -> None:
    """An edge with sensors publishes to its hub's MQTT broker from outside the hub: the listener must allow it."""
    brokers = _first((b.device, (i, b)) for i, b in enumerate(bp.brokers))
    edges = _first((d.name, d) for d in bp.devices if d.role == "edge")
    hubs = {h.name for h in bp.hubs()}
    reported: set[str] = set()
    for i, master in enumerate(bp.io_link_masters):
        edge = edges.get(master.device)
        if edge is None or edge.hub not in hubs or edge.hub in reported:
            continue  # hubs and their references are checked with the devices; one report per hub
        assert edge.hub is not None
        index, broker = brokers.get(edge.hub, (None, None))
        where: Loc = ("brokers", index, "mqtt") if index is not None else ("ioLinkMasters", i, "device")
        if broker is None or not broker.mqtt.external_listener:
            report.error(
                where,
                f"'{edge.name}' forwards sensor data to hub '{edge.hub}', whose MQTT external listener is off",
                f"set 'externalListener: true' under the brokers entry of '{edge.hub}'",
            )
            reported.add(edge.hub)
        elif broker.mqtt.tls_only:
            report.error(
                where + ("tlsOnly",),
                f"'{edge.name}' forwards sensor data to hub '{edge.hub}' over MQTT, but umhctl cannot yet give "
                "edges the broker's TLS certificate authority, so a TLS-only listener would refuse them",
                "set 'tlsOnly: false' (plain MQTT on 1883 inside the plant network) until broker CAs are supported",
            )
            reported.add(edge.hub)


# Problems in these parts make the list of stored tags wrong; dashboards are checked against it only without them.
_DATA_PATH_PARTS = ("location", "devices", "ioLinkMasters", "sensors")


def _check_dashboards(bp: SiteBlueprint, report: _Report, files: RepoFiles) -> None:
    data_path_ok = not any(d.severity == "error" and d.path.startswith(_DATA_PATH_PARTS) for d in report.items)
    roles = _first((d.name, d.role) for d in bp.devices)
    databases = {db.device for db in bp.databases}
    hubs = [d.name for d in bp.hubs()]
    known: dict[str, list[StoredTag]] = {}  # per hub, what its database stores: built once for all dashboards
    report.unique("dashboard name", ((d.name, ("dashboards", i, "name")) for i, d in enumerate(bp.dashboards)))
    for i, dash in enumerate(bp.dashboards):
        at: Loc = ("dashboards", i)
        targets = dash.devices if dash.devices is not None else hubs
        for j, name in enumerate(dash.devices or []):
            if report.reference(at + ("devices", j), "device", name, roles) and roles[name] != "hub":
                report.error(at + ("devices", j), f"dashboards are served by Grafana on hubs; '{name}' is an edge")
        for j, source_name in enumerate(dash.datasources):
            path = at + ("datasources", j)
            if not report.reference(path, "datasource", source_name, DATASOURCES):
                continue
            if source_name == "mqtt" and not bp.grafana.mqtt_datasource:
                report.error(path, "datasource 'mqtt' is not enabled", "set 'grafana: {mqttDatasource: true}'")
            if source_name == "timescaledb":
                for hub in (t for t in targets if roles.get(t) == "hub" and t not in databases):
                    report.error(
                        path, f"hub '{hub}' has no database for datasource 'timescaledb'", "add it under 'databases'"
                    )
        loaded = _check_json_file(dash.file, at + ("file",), report, files)
        if loaded is not None and data_path_ok:
            served = [t for t in targets if roles.get(t) == "hub" and t in databases]
            if served and not known:
                for tag in stored_tags(bp):
                    if tag.hub is not None:  # stored nowhere: no hub's database has it
                        known.setdefault(tag.hub, []).append(tag)
            _check_dashboard_queries(i, dash, served, known, *loaded, report)


def _check_json_file(relative: str, path: Loc, report: _Report, files: RepoFiles) -> tuple[Any, str] | None:
    """The dashboard's JSON and its text, or None (reported) when it cannot be read as a dashboard."""
    try:
        raw = files.read(relative, "dashboard file", MAX_DASHBOARD)
    except RepoFileProblem as problem:
        report.error(path, str(problem), problem.hint)
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        report.error(path, f"cannot read dashboard file '{relative}': {exc}")
        return None
    try:
        data = jsontext.loads(text)
    except jsontext.JsonProblem as exc:
        report.error(path, f"'{relative}' is not valid JSON: {exc.message} (line {exc.line}, column {exc.column})")
        return None
    if not isinstance(data, dict):
        report.error(path, f"'{relative}' must hold a Grafana dashboard object, not a JSON {type(data).__name__}")
        return None
    return data, text


def _names(tags: Iterable[StoredTag], limit: int = 12) -> str:
    names = sorted({t.name for t in tags})
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") if names else "none"


def _stored_there(name: str, tags: list[StoredTag]) -> str:
    from umhctl.blueprint.loader import did_you_mean

    guess = did_you_mean(name, {t.name for t in tags})
    return f"{guess + ' ' if guess else ''}tags stored there: {_names(tags)}"


def _cells(tags: Iterable[StoredTag], limit: int = 6) -> str:
    cells = sorted({f"{t.asset.area}/{t.asset.line}/{t.asset.workcell}" for t in tags})
    return ", ".join(cells[:limit]) + (f", ... ({len(cells)} in all)" if len(cells) > limit else "")


def _asset_id_call(tag: StoredTag) -> str:
    a = tag.asset
    return f"get_asset_id_immutable('{a.enterprise}', '{a.site}', '{a.area}', '{a.line}', '{a.workcell}')"


def _dashboard_problem(
    report: _Report,
    target: SqlTarget,
    display: str,
    here: Loc,
    relative: str,
    offset: int,
    message: str,
    hint: str | None,
    severity: Severity = "error",
) -> None:
    position = target.position(offset)
    if position is None:  # the SQL was not found in the text (it never is for a file json.loads read)
        report.error(here, f"{relative}: {message}", hint)
    else:
        report.in_file(display, position, here, message, hint, severity)


def _check_dashboard_queries(
    index: int,
    dash: Dashboard,
    hubs: list[str],
    known: dict[str, list[StoredTag]],
    data: Any,
    text: str,
    report: _Report,
) -> None:
    """Every tag name (and asset filter) a dashboard's SQL asks for must be one the bridge stores on its hubs.

    The names are those of umhctl.blueprint.datapath (the rule the converters publish by); a miss is reported at
    the dashboard file's own line and column, with the names that hub's database does hold.
    """
    display = os.path.normpath(os.path.join(os.path.dirname(report.source.file), dash.file))
    here: Loc = ("dashboards", index, "file")
    for target in sql_targets(data, text):
        query = parse_query(target.sql)
        if query is None:
            continue  # it does not read the historian tables
        problem = functools.partial(_dashboard_problem, report, target, display, here, dash.file)
        panel = f"panel '{target.panel}'" if target.panel else "a panel"
        for hub in hubs:
            on_hub = known.get(hub, [])
            in_filter = [t for t in on_hub if query.asset_matches(t.asset)]
            for test in query.names:
                named = [t for t in on_hub if test.matches(t.name)]
                found = [t for t in named if t in in_filter]
                if not named:
                    problem(
                        test.literal.start,
                        f"{panel} of dashboard '{dash.name}' queries tag {test.describe()}, which no sensor "
                        f"stores in the database of hub '{hub}'",
                        _stored_there(test.literal.value, on_hub),
                    )
                elif not found:
                    problem(
                        test.literal.start,
                        f"{panel} of dashboard '{dash.name}' queries tag {test.describe()} where "
                        f"{query.describe_assets()}, but on hub '{hub}' it is stored only for {_cells(named)}",
                        f"tags stored where {query.describe_assets()}: {_names(in_filter)}",
                    )
                elif test.op == "=" and not query.filters_by_asset and len({t.asset for t in found}) > 1:
                    problem(
                        test.literal.start,
                        f"{panel} of dashboard '{dash.name}' mixes {len(found)} sensors: tag {test.describe()} is "
                        f"stored for {_cells(found)} on hub '{hub}'",
                        f"filter by asset, e.g. asset_id = {_asset_id_call(found[0])}",
                        "warning",
                    )
            if not query.names and query.assets and not query.has_or and not in_filter:
                # Point at a filter nothing matches on its own, if there is one: that is the likely mistake.
                culprit = next((f for f in query.assets if not any(f.matches(t.asset) for t in on_hub)), None)
                problem(
                    (culprit or query.assets[0]).literal.start,
                    f"{panel} of dashboard '{dash.name}' reads tags where {query.describe_assets()}, and no sensor "
                    f"stores any there on hub '{hub}'",
                    f"work cells with data on hub '{hub}': {_cells(on_hub) or 'none'}",
                )


def _nested(a: str, b: str) -> bool:
    """One of two paths is a directory the other lies in."""
    return a.startswith(b + "/") or b.startswith(a + "/")


def _check_extra_files(bp: SiteBlueprint, report: _Report, files: RepoFiles) -> None:
    names = [d.name for d in bp.devices]
    claimed: dict[tuple[str, str], int] = {}
    for i, extra in enumerate(bp.files):
        where: Loc = ("files", i, "path")
        problem = devicepaths.refusal(extra.path, bp.access.user)
        if problem:
            report.error(where, f"'{extra.path}' {problem}", devicepaths.hint(bp.access.user))
            continue
        for device in extra.devices if extra.devices is not None else names:
            first = claimed.setdefault((device, extra.path), i)
            if first != i:
                report.error(where, f"'{extra.path}' is already written to '{device}' by files[{first}]")
                break
            nested = next(
                (j for (d, p), j in claimed.items() if d == device and j != i and _nested(p, extra.path)), None
            )
            if nested is not None:
                other = bp.files[nested].path
                report.error(
                    where,
                    f"'{extra.path}' and files[{nested}] ('{other}') cannot both be written to '{device}': "
                    f"'{min(other, extra.path, key=len)}' would have to be a file and a directory",
                    "a path cannot hold a file and, below it, other files: pick another path for one of them",
                )
                break
    if not bp.files:
        return
    # Imported here: only blueprints with extra files pay for jinja2.
    from umhctl.templating import TemplateProblem, render_extra_file

    for i, extra in enumerate(bp.files):
        at: Loc = ("files", i)
        targets = extra.devices if extra.devices is not None else names
        valid = [
            n for j, n in enumerate(extra.devices or []) if report.reference(at + ("devices", j), "device", n, names)
        ]
        try:
            files.read(extra.template, "template", MAX_TEMPLATE)
        except RepoFileProblem as problem:
            report.error(at + ("template",), str(problem), problem.hint)
            continue
        template = files.path(extra.template, "template")
        for name in valid if extra.devices is not None else targets:
            try:
                render_extra_file(bp, bp.device(name), extra, template)
            except TemplateProblem as problem:
                report.error(at + ("template",), f"{extra.template}: {problem} (rendering for '{name}')")
                break
