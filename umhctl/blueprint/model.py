"""The site blueprint (apiVersion umhctl/v1, kind SiteBlueprint) as pydantic models.

These models check the shape of each value on its own. Everything that relates two parts of the blueprint
(references, uniqueness, addresses inside prefixes, ports of a master) lives in `checks.py`, where each problem
can point at the exact YAML position.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictInt,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

API_VERSION = "umhctl/v1"
KIND = "SiteBlueprint"
DEFAULT_UMH_CHART = "0.29.0"

# IO-Link masters by model, with their port count (ifm datasheets). Other models need `ports:`.
IOLINK_MASTER_PORTS: dict[str, int] = {
    "AL1100": 4,
    "AL1120": 4,
    "AL1300": 4,
    "AL1302": 8,
    "AL1320": 4,
    "AL1322": 8,
    "AL1340": 4,
    "AL1342": 8,
    "AL1350": 4,
    "AL1352": 8,
    "AL1950": 4,
    "AL1952": 8,
}


@dataclass(frozen=True)
class Format:
    """A text format whose mismatch message says what is expected, in words, with an example.

    Used as `Annotated[str, Format(...)]`; the pattern also lands in the JSON Schema for editors.
    """

    pattern: str
    problem: str
    example: str
    max_length: int = 253

    def check(self, value: str) -> str:
        if len(value) > self.max_length or not re.fullmatch(self.pattern, value):
            raise PydanticCustomError(
                "umhctl_format",
                "'{value}' is not {problem} (example: {example})",
                {"value": value, "problem": self.problem, "example": self.example},
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        result = handler(schema)
        result.update(pattern=f"^{self.pattern}$", maxLength=self.max_length)
        return result


DnsLabel = Annotated[
    str,
    Format(
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?",
        "a valid name: lowercase letters, digits and '-', starting and ending with a letter or digit",
        "edge-01",
        max_length=63,
    ),
]
IsaName = Annotated[
    str,
    Format(
        r"[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?",
        "a valid ISA-95 name: letters, digits, '-' and '_' (it becomes part of UNS topics)",
        "line-1",
        max_length=63,
    ),
]
SecretName = Annotated[
    str,
    Format(
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?",
        "a valid secret name: lowercase letters, digits and '-'",
        "grafana-admin",
        max_length=63,
    ),
]
RelativePath = Annotated[
    str,
    Format(
        r"[^\x00]+",
        "a file path",
        "dashboards/line-overview.json",
        max_length=4096,
    ),
]
AbsolutePath = Annotated[
    str,
    Format(
        # No "." or ".." segments, no trailing slash, no spaces, backslashes or control characters.
        r"(/(?!\.\.?(/|$))[^/\x00-\x20\\\x7f]+)+",
        "a normalized absolute path on the device (no '..', spaces, backslashes or control characters)",
        "/etc/chrony.conf",
        max_length=4096,
    ),
]
# What `flatcar-reset --keep-paths` takes: an absolute path or an egrep regex for absolute paths.
KeepPattern = Annotated[
    str,
    Format(r"/[^\x00-\x20\x7f]*", "an absolute path or an egrep regex for absolute paths", "/var/log"),
]
# flatcar-install -d writes the whole device: only a normalized path under /dev (no '.', '..' or empty segments).
DiskPath = Annotated[
    str,
    Format(
        r"/dev(/(?!\.\.?(/|$))[A-Za-z0-9_.:-]+)+",
        "a normalized disk device path under /dev (no '..')",
        "/dev/sda or /dev/disk/by-id/ata-SAMSUNG_MZ7LH480",
        max_length=255,
    ),
]
Quantity = Annotated[str, Format(r"[1-9][0-9]*(Mi|Gi|Ti)", "a storage size in Mi, Gi or Ti", "20Gi", max_length=16)]
Duration = Annotated[str, Format(r"[1-9][0-9]*(h|d)", "a duration in hours or days", "168h or 30d", max_length=16)]
FileMode = Annotated[str, Format(r"0?[0-7]{3}", "an octal file mode", '"0644"', max_length=4)]
InterfaceName = Annotated[str, Format(r"[A-Za-z0-9_.:-]+", "a network interface name", "enp2s0", max_length=15)]
MacAddress = Annotated[
    str,
    Format(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", "a MAC address (lower case, colons)", "00:1b:21:3a:4f:c2", max_length=17),
]
# A host name or IPv4 address, as systemd-timesyncd's NTP= takes them (no URL, no port).
NtpServer = Annotated[
    str,
    Format(
        r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*",
        "an NTP server name or address",
        "192.0.2.123",
    ),
]
MirrorUrl = Annotated[
    str,
    Format(
        r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+-]+)*/?",
        "an http(s) URL of a directory",
        "https://mirror.plant.example/flatcar-extensions",
        max_length=400,
    ),
]
UnixUser = Annotated[str, Format(r"[a-z_][a-z0-9_-]*", "a valid user name", "core", max_length=32)]
PgName = Annotated[str, Format(r"[a-z_][a-z0-9_]*", "a valid PostgreSQL role name", "grafanareader", max_length=63)]
# A tag is a key of the _historian payload and the name UMH's bridge stores (see umhctl/blueprint/datapath.py):
# no '.' or '$' (the bridge turns '.' into '$', its separator for nested keys), nothing a topic segment cannot hold.
TAG_NAME_PATTERN = r"[A-Za-z0-9_]+"
TAG_NAME_PROBLEM = "a valid tag name: letters, digits and '_'"
TagName = Annotated[str, Format(TAG_NAME_PATTERN, TAG_NAME_PROBLEM, "temperature", max_length=63)]
# How sensorconnect names a value: the IODD's text for the process-data item, e.g. "v-Rms" or "Device status".
ProcessDataName = Annotated[
    str,
    Format(
        r"[^\x00-\x20\x7f]([^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?",
        "a process-data name (its name in the IODD, without leading or trailing spaces)",
        "v-Rms",
        max_length=128,
    ),
]
ModelName = Annotated[str, Format(r"[A-Za-z0-9][A-Za-z0-9_.-]*", "a model name", "AL1350", max_length=32)]
UnitName = Annotated[
    str,
    Format(r"[A-Za-z0-9:_.@-]+\.(service|socket|timer|path|target|mount)", "a systemd unit name", "chronyd.service"),
]


def _iana_zone(value: str) -> str:
    """A zone of the IANA time zone database, checked against the `tzdata` package (not the operator's OS): the
    device links /etc/localtime to /usr/share/zoneinfo/<zone>, and a zone it lacks is a dangling link."""
    import importlib.resources

    zones = importlib.resources.files("tzdata")
    if zones.joinpath("zoneinfo", *value.split("/")).is_file():
        return value
    from umhctl.blueprint.loader import did_you_mean

    guess = did_you_mean(value, zones.joinpath("zones").read_text().split())
    suggestion = f" ({guess})" if guess else " (example: Europe/Berlin)"
    raise PydanticCustomError(
        "umhctl_timezone", "unknown time zone '{value}'{suggestion}", {"value": value, "suggestion": suggestion}
    )


Timezone = Annotated[
    str,
    Format(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*", "a time zone name", "Europe/Berlin", max_length=64),
    AfterValidator(_iana_zone),
]
# ISA-95 paths: "area", "area/line" or "area/line/workcell".
LocationPath = Annotated[
    str, Format(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+){0,2}", "a location path", "assembly/line-1/press", max_length=200)
]

_FLOATING_WORDS = {"latest", "stable", "beta", "alpha", "edge", "lts", "current", "main", "master", "nightly", "dev"}
_RANGE = re.compile(r"[\^~<>=*|, ]|(^|\.)[xX](\.|$)")


@dataclass(frozen=True)
class Pinned:
    """A version that must be pinned exactly: floating names and ranges are refused with a clear reason."""

    pattern: str
    example: str
    what: str

    def check(self, value: str) -> str:
        if value.lower() in _FLOATING_WORDS or _RANGE.search(value):
            raise PydanticCustomError(
                "umhctl_floating_version",
                "floating {what} '{value}': every version must be pinned exactly (example: {example})",
                {"what": self.what, "value": value, "example": self.example},
            )
        if not re.fullmatch(self.pattern, value):
            raise PydanticCustomError(
                "umhctl_format",
                "'{value}' is not a valid {what} (example: {example})",
                {"what": self.what, "value": value, "example": self.example},
            )
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        result = handler(schema)
        result["pattern"] = f"^{self.pattern}$"
        return result


FlatcarVersion = Annotated[str, Pinned(r"\d+\.\d+\.\d+", "4081.2.0", "Flatcar version")]
K3sVersion = Annotated[str, Pinned(r"v\d+\.\d+\.\d+\+k3s\d+", "v1.31.4+k3s1", "k3s version")]
ChartVersion = Annotated[str, Pinned(r"\d+\.\d+\.\d+", DEFAULT_UMH_CHART, "chart version")]
PluginVersion = Annotated[str, Pinned(r"\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?", "1.3.5", "plugin version")]
ImageTag = Annotated[str, Pinned(r"v?\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?", "0.11.3", "image tag")]
# The bakery names Tailscale images by the upstream release tag (flatcar/sysext-bakery tailscale.sysext/create.sh:
# list_github_releases "tailscale" "tailscale"): tailscale-v1.80.0-x86-64.raw.
TailscaleVersion = Annotated[str, Pinned(r"v\d+\.\d+\.\d+", "v1.80.0", "Tailscale version")]


def _strict_bool(value: Any) -> Any:
    # pydantic would take "yes"/"on"/1 as true; in a blueprint that is almost always a typo, so only real booleans.
    if not isinstance(value, bool):
        raise PydanticCustomError("umhctl_bool", "expected true or false, got '{value}'", {"value": value})
    return value


Bool = Annotated[bool, BeforeValidator(_strict_bool)]
# Whole numbers without pydantic's lax coercion: `port: true` must not quietly become port 1.
Int = StrictInt


# Number of length-prefixed fields in the key data, by key type (RFC 4253, 5656, 8709; OpenSSH PROTOCOL.u2f).
_KEY_FIELDS = {
    "ssh-ed25519": 2,
    "ssh-rsa": 3,
    "ecdsa-sha2-nistp256": 3,
    "ecdsa-sha2-nistp384": 3,
    "ecdsa-sha2-nistp521": 3,
    "sk-ssh-ed25519@openssh.com": 3,
    "sk-ecdsa-sha2-nistp256@openssh.com": 4,
}


def _wire_fields(blob: bytes) -> list[bytes] | None:
    """Split SSH wire-format key data into its fields; None when it does not parse exactly (truncated, padded)."""
    fields, at = [], 0
    while at < len(blob):
        if at + 4 > len(blob):
            return None
        length = int.from_bytes(blob[at : at + 4], "big")
        if at + 4 + length > len(blob):
            return None
        fields.append(blob[at + 4 : at + 4 + length])
        at += 4 + length
    return fields


def _public_key(value: str) -> str:
    text = value.strip()
    if "PRIVATE KEY" in text:
        raise PydanticCustomError(
            "umhctl_private_key",
            "this is a private key: never put a private key in a blueprint; use the public key (the .pub file)",
        )
    parts = text.split()
    if len(parts) < 2 or parts[0] not in _KEY_FIELDS:
        raise PydanticCustomError(
            "umhctl_public_key",
            "not an SSH public key: expected '<type> <base64> [comment]' with type one of {types}",
            {"types": ", ".join(sorted(_KEY_FIELDS))},
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError(
            "umhctl_public_key", "the key data of this SSH public key is not valid base64"
        ) from None
    # The data must be exactly the fields of its type, starting with the type's own name: anything else is a
    # truncated key, or two keys pasted together.
    fields = _wire_fields(blob)
    if (
        fields is None
        or len(fields) != _KEY_FIELDS[parts[0]]
        or fields[0] != parts[0].encode()
        or (parts[0] == "ssh-ed25519" and len(fields[1]) != 32)
    ):
        raise PydanticCustomError(
            "umhctl_public_key",
            "the SSH public key is damaged (truncated or pasted together): its data does not match its type '{type}'",
            {"type": parts[0]},
        )
    return text


PublicKey = Annotated[str, AfterValidator(_public_key)]


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        # Only the camelCase spelling is accepted: one way to write a field keeps blueprints uniform.
        validate_by_name=False,
        validate_by_alias=True,
        str_strip_whitespace=False,
    )


class Metadata(Model):
    name: DnsLabel = Field(description="Site name (DNS label); names the simulated site and state directories.")
    description: str = ""


class WorkCell(Model):
    name: IsaName


class Line(Model):
    name: IsaName
    work_cells: list[WorkCell] = Field(min_length=1)


class Area(Model):
    name: IsaName
    lines: list[Line] = Field(min_length=1)


class Location(Model):
    """ISA-95 hierarchy; it becomes the UNS topic prefix umh.v1.<enterprise>.<site>.<area>.<line>.<workcell>."""

    enterprise: IsaName
    site: IsaName
    areas: list[Area] = Field(min_length=1)


class Flatcar(Model):
    version: FlatcarVersion
    channel: Literal["stable", "beta", "alpha", "lts"] = "stable"


class Versions(Model):
    flatcar: Flatcar
    k3s: K3sVersion = Field(alias="k3s")
    umh_chart: ChartVersion = DEFAULT_UMH_CHART
    benthos_umh: ImageTag = Field(description="Tag of ghcr.io/united-manufacturing-hub/benthos-umh.")
    grafana: ImageTag | None = Field(default=None, description="Override of the chart's Grafana image tag.")
    node_red: ImageTag | None = Field(default=None, description="Override of the chart's Node-RED image tag.")
    grafana_mqtt_plugin: PluginVersion = Field(
        default="1.3.5", description="Version of grafana-mqtt-datasource, installed when grafana.mqttDatasource is on."
    )


# Tailscale's own default control server (tailscale/tailscale ipn/prefs.go, DefaultControlURL).
DEFAULT_LOGIN_SERVER = "https://controlplane.tailscale.com"


def _acl_tag(value: str) -> str:
    # The rule `tailscale up --advertise-tags` enforces (tailscale/tailscale tailcfg/tailcfg.go, CheckTag).
    if not value.startswith("tag:"):
        raise PydanticCustomError(
            "umhctl_tailscale_tag",
            "'{value}' is not a Tailscale ACL tag: tags must start with 'tag:' (example: tag:{example})",
            {"value": value, "example": re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-") or "plant"},
        )
    if not re.fullmatch(r"tag:[A-Za-z][A-Za-z0-9-]*", value):
        raise PydanticCustomError(
            "umhctl_tailscale_tag",
            "'{value}' is not a Tailscale ACL tag: after 'tag:' a letter, then letters, digits or '-' "
            "(example: tag:plant-cologne)",
            {"value": value},
        )
    return value


def _https_url(value: str) -> str:
    # The auth key travels to this server: plain http would hand it to anyone on the path.
    if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~+-]*)*", value):
        raise PydanticCustomError(
            "umhctl_login_server",
            "'{value}' is not an https URL: the control server receives the auth key, so only https is accepted "
            "(example: https://headscale.plant.example)",
            {"value": value},
        )
    return value


AclTag = Annotated[str, AfterValidator(_acl_tag)]
LoginServer = Annotated[str, AfterValidator(_https_url)]
TailnetDomain = Annotated[
    str,
    Format(
        r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+",
        "a tailnet DNS name (MagicDNS domain, lower case)",
        "example-plant.ts.net",
    ),
]


class Tailscale(Model):
    """Remote access through plant firewalls: every device joins a tailnet (Tailscale, or a self-hosted
    Headscale) with outgoing connections only, enrolled once by a pre-authorized key."""

    enabled: Bool = Field(default=True, description="false keeps the section but renders nothing of it.")
    version: TailscaleVersion = Field(description="Version of the Flatcar sysext bakery's Tailscale extension.")
    auth_key_secret: SecretName = Field(
        description="The secret holding the auth key ({env: ...} or {file: ...}): a pre-authorized, tagged key; "
        "reusable or ephemeral keys let a rebuilt device enroll again."
    )
    tags: list[AclTag] = Field(default=[], description="ACL tags the devices advertise, e.g. tag:plant.")
    login_server: LoginServer = Field(
        default=DEFAULT_LOGIN_SERVER, description="Control server URL (https): Tailscale's, or a Headscale's."
    )
    tailnet: TailnetDomain | None = Field(
        default=None,
        description="The tailnet's MagicDNS domain (e.g. example-plant.ts.net): devices are reached as "
        "<tailnetHostname>.<tailnet> with access.via: tailscale.",
    )


class Access(Model):
    user: UnixUser = "core"
    authorized_keys: list[PublicKey] = Field(min_length=1)
    known_hosts_file: RelativePath = Field(
        default="known_hosts", description="The site's known_hosts, relative to the blueprint."
    )
    identity_file: str | None = Field(
        default=None,
        description="Private key umhctl logs in with, on the operator's machine (e.g. ~/.ssh/plant_ed25519; "
        "never inside the repository). Default: ssh-agent and the usual ~/.ssh keys; -i overrides it.",
    )
    tailscale: Tailscale | None = None
    via: Literal["management", "tailscale"] = Field(
        default="management",
        description="How umhctl reaches devices: their management address, or their tailnet name "
        "(needs tailscale.tailnet). `--via` overrides it for one run.",
    )

    @property
    def enabled_tailscale(self) -> Tailscale | None:
        """The Tailscale settings when they are on."""
        return self.tailscale if self.tailscale is not None and self.tailscale.enabled else None


class GenerateSpec(Model):
    type: Literal["password", "token"] = "password"
    length: Int = Field(default=32, ge=16, le=128)


class SecretRef(Model):
    """Exactly one of env, file or generate. Values never appear in the blueprint."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    file: RelativePath | None = None
    generate: GenerateSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_inline(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "umhctl_inline_secret",
                "inline secret values are not allowed: reference the secret with {{env: NAME}}, "
                "{{file: PATH}} or {{generate: {{type: password}}}}",
            )
        given = [k for k in ("env", "file", "generate") if k in value]
        if len(given) != 1:
            raise PydanticCustomError(
                "umhctl_secret_ref",
                "a secret reference needs exactly one of env, file or generate (found {found})",
                {"found": ", ".join(given) or "none"},
            )
        return value


class Interface(Model):
    """One network link, matched by its MAC address, its kernel name, or both (every given key must match)."""

    name: InterfaceName | None = Field(
        default=None, description="Kernel name (predictable names on bare metal, e.g. enp2s0)."
    )
    mac: MacAddress | None = Field(default=None, description="Hardware address: matches whatever the link is named.")
    dhcp: Bool = False
    address: IPv4Interface | None = Field(default=None, description="Static address with prefix, e.g. 192.0.2.11/24.")
    gateway: IPv4Address | None = None
    dns: list[IPv4Address] = []


class Device(Model):
    name: DnsLabel
    hostname: DnsLabel | None = Field(default=None, description="Defaults to the device name.")
    role: Literal["hub", "edge"]
    hub: DnsLabel | None = Field(default=None, description="For edge devices: the hub whose broker it forwards to.")
    address: IPv4Address = Field(description="Management address umhctl connects to over SSH.")
    ssh_port: Int = Field(default=22, ge=1, le=65535)
    install_disk: DiskPath = "/dev/sda"
    interfaces: list[Interface] = Field(min_length=1)
    location: LocationPath | None = Field(default=None, description="ISA-95 area or area/line the device serves.")
    tailnet_hostname: DnsLabel | None = Field(
        default=None, description="Its name in the tailnet (access.tailscale). Default: the device name."
    )

    @property
    def host_name(self) -> str:
        return self.hostname or self.name

    @property
    def tailnet_name(self) -> str:
        return self.tailnet_hostname or self.name


class Updates(Model):
    group: DnsLabel | None = Field(default=None, description="Flatcar update group; unset = updates disabled.")
    reboot_strategy: Literal["off", "reboot", "etcd-lock"] = "off"


class ResetPolicy(Model):
    """What `umhctl reset device` keeps and backs up."""

    keep: list[KeepPattern] = Field(
        default=[],
        description="Paths kept across a reset (egrep regexes for absolute paths allowed), besides the SSH host keys.",
    )
    data: list[AbsolutePath] = Field(
        default=["/var/lib/rancher/k3s/storage"],
        description="Data paths `reset device --backup DIR` saves first (k3s keeps volumes here by default).",
    )


class Os(Model):
    timezone: Timezone = "UTC"
    updates: Updates = Updates()
    ntp: list[NtpServer] = Field(
        default=[], description="NTP servers for systemd-timesyncd (Flatcar's time client). Default: from DHCP."
    )


class Artifacts(Model):
    """Files a device needs from outside (the k3s system extension), pinned by hash in the lock file."""

    mirror: MirrorUrl | None = Field(
        default=None,
        description="Base URL of the plant's mirror of the Flatcar sysext bakery's extensions. "
        "Default: https://extensions.flatcar.org/extensions",
    )
    delivery: Literal["apply", "ignition"] = Field(
        default="apply",
        description="'apply': first boot needs no network, apply pushes the images over SSH from the operator's "
        "verified cache. 'ignition': first boot fetches them (with their hashes) from the mirror.",
    )


class Mqtt(Model):
    external_listener: Bool = False
    tls_only: Bool = False
    mutual_auth: Bool = False


class Kafka(Model):
    storage: Quantity = "10Gi"
    retention: Duration = "168h"


class Broker(Model):
    """The brokers of one hub: HiveMQ CE (MQTT) and Redpanda (Kafka), as shipped by the UMH chart."""

    device: DnsLabel
    mqtt: Mqtt = Mqtt()
    kafka: Kafka = Kafka()


class DatabaseUser(Model):
    name: PgName
    password_secret: SecretName
    role: Literal["readonly", "readwrite"] = Field(
        description="What the user may do with UMH's tables in umh_v2: readonly (SELECT) or readwrite "
        "(SELECT, INSERT, UPDATE, DELETE). Neither may create tables."
    )


class Database(Model):
    """TimescaleDB of one hub."""

    device: DnsLabel
    storage: Quantity = "20Gi"
    retention: Duration | None = None
    users: list[DatabaseUser] = []


class Grafana(Model):
    admin_password_secret: SecretName | None = None
    mqtt_datasource: Bool = Field(default=False, description="Provision an MQTT datasource for the hub's broker.")


class IoLinkMaster(Model):
    name: DnsLabel
    device: DnsLabel = Field(description="The device that polls this master.")
    address: IPv4Address
    model: ModelName
    ports: Int | None = Field(default=None, ge=1, le=16, description="Port count; known models need none.")

    @property
    def port_count(self) -> int | None:
        return self.ports if self.ports is not None else IOLINK_MASTER_PORTS.get(self.model.upper())


class SensorValue(Model):
    """One process-data value of a sensor, published as one tag."""

    process_data: ProcessDataName = Field(
        description="The value's name in the sensor's process data, as sensorconnect reports it (the IODD's "
        "name, e.g. 'Temperature' or 'v-Rms')."
    )
    tag: TagName | None = Field(
        default=None,
        description="Tag it is stored under (letters, digits, '_'); defaults to the process-data name when that is "
        "a valid tag name.",
    )
    unit: str | None = Field(default=None, description="Unit of the published (scaled) value, e.g. degC.")
    scale: Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)] = Field(
        default=1.0, description="Factor from the raw process value to the unit (the IODD's gradient), e.g. 0.1."
    )

    @property
    def tag_name(self) -> str:
        return self.tag if self.tag is not None else self.process_data


class Sensor(Model):
    name: DnsLabel
    master: DnsLabel
    port: Int = Field(ge=1, le=16)
    vendor_id: Int = Field(ge=1, le=0xFFFF, description="IO-Link vendor id (ifm = 310).")
    device_id: Int = Field(ge=1, le=0xFFFFFF, description="IO-Link device id from the sensor's IODD.")
    work_cell: LocationPath = Field(description="ISA-95 path area/line/workcell.")
    values: list[SensorValue] = Field(min_length=1, description="The process-data values it publishes, one tag each.")
    iodd_url: Annotated[str, Format(r"https?://\S+", "an http(s) URL", "https://example.com/iodd.xml")] | None = Field(
        default=None,
        description="IODD XML to download at start, for a device UMH's IODD service does not know "
        "(sensorconnect's `devices` fallback).",
    )


class Dashboard(Model):
    name: DnsLabel
    folder: str = "General"
    file: RelativePath
    datasources: list[str] = Field(min_length=1)
    devices: list[DnsLabel] | None = Field(default=None, description="Hubs to provision it on; default all hubs.")


class ExtraFile(Model):
    path: AbsolutePath
    template: RelativePath = Field(description="Jinja2 template, relative to the blueprint.")
    mode: FileMode = "0644"
    devices: list[DnsLabel] | None = Field(default=None, description="Default: every device.")
    restart: list[UnitName] = Field(default=[], description="systemd units to restart when this file changes.")
    vars: dict[str, Any] = Field(default={}, description="Values the template sees as `vars`; any YAML.")


class SiteBlueprint(Model):
    """A site: its devices, sensors, brokers, database and dashboards, in one versioned file."""

    api_version: Literal["umhctl/v1"]
    kind: Literal["SiteBlueprint"]
    metadata: Metadata
    location: Location
    versions: Versions
    access: Access
    os: Os = Os()
    artifacts: Artifacts = Artifacts()
    reset: ResetPolicy = ResetPolicy()
    secrets: dict[SecretName, SecretRef] = {}
    devices: list[Device] = Field(min_length=1)
    brokers: list[Broker] = []
    databases: list[Database] = []
    grafana: Grafana = Grafana()
    io_link_masters: list[IoLinkMaster] = []
    sensors: list[Sensor] = []
    dashboards: list[Dashboard] = []
    files: list[ExtraFile] = []

    def device(self, name: str) -> Device:
        return next(d for d in self.devices if d.name == name)

    def hubs(self) -> list[Device]:
        return [d for d in self.devices if d.role == "hub"]


def json_schema() -> dict[str, Any]:
    schema = SiteBlueprint.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }
