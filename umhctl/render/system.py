"""The operating-system part of a device's desired state: identity, network, updates, SSH host key, k3s.

Every device runs Flatcar with k3s as a system extension (flatcar/sysext-bakery) and its own single-node k3s
server: an edge keeps collecting data when its hub is down, and one device's cluster never depends on another's.
"""

from __future__ import annotations

from umhctl.artifacts import ArtifactSource
from umhctl.artifacts import needed as needed_artifacts
from umhctl.blueprint.model import Device, Interface, SiteBlueprint
from umhctl.render.desired import ArtifactFile, DesiredState, File, Link
from umhctl.render.yamltext import to_yaml
from umhctl.resolver import SecretResolver
from umhctl.templating import render_template

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_TOKEN = "/etc/rancher/k3s/token"
K3S_MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
K3S_UNIT = "/usr/local/lib/systemd/system/k3s.service"  # shipped inside the k3s system extension
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
TIMESYNCD_DROPIN = "/etc/systemd/timesyncd.conf.d/50-umhctl.conf"
# A new extension image takes effect when systemd-sysext merges it again (Flatcar: `systemctl restart
# systemd-sysext`, which also runs ensure-sysext), and k3s restarts on the merged binary.
SYSEXT_RESTARTS = ("systemd-sysext.service", "k3s.service")


def authorized_keys_path(user: str) -> str:
    return f"/home/{user}/.ssh/authorized_keys.d/ignition"


def update_ssh_keys(user: str) -> str:
    """The refresh apply runs after a changed key set: on Flatcar, sshd reads only ~/.ssh/authorized_keys, which
    update-ssh-keys generates from authorized_keys.d/* (flatcar/update-ssh-keys; first boot runs it through
    flatcar/init's update-ssh-keys-after-ignition.service, and only then)."""
    return f"update-ssh-keys:{user}"


def add_sysext(
    bp: SiteBlueprint,
    name: str,
    artifacts: ArtifactSource,
    state: DesiredState,
    restarts: tuple[str, ...],
    *,
    self_contained: bool,
    boot_link: bool = False,
) -> None:
    """A system extension of the bakery: its pinned image in /opt/extensions/<name>/ and the
    /etc/extensions/<name>.raw link systemd-sysext merges. First boot fetches the image only with
    `artifacts.delivery: ignition` (and never for reset's self-contained config); otherwise apply uploads it."""
    (artifact,) = (a for a in needed_artifacts(bp) if a.name == name)
    pin = artifacts.pin(artifact)
    fetched = bp.artifacts.delivery == "ignition" and not self_contained
    state.artifacts.append(
        ArtifactFile(
            artifact.device_path,
            artifact.filename,
            pin.sha256 if pin else None,
            pin.size if pin else None,
            artifact.url(artifacts.base) if fetched else None,
            restarts,
            boot_link and not fetched,
        )
    )
    state.links.append(Link(artifact.link, artifact.device_path, restarts=restarts))


def _network_file_name(index: int, interface: Interface) -> str:
    # Numbered by blueprint order, all before Flatcar's zz-default.network (first match wins, systemd.network(5)).
    label = interface.name or (interface.mac or "").replace(":", "")
    return f"/etc/systemd/network/{10 + index:02d}-{label}.network"


def render_system(
    bp: SiteBlueprint,
    device: Device,
    secrets: SecretResolver,
    artifacts: ArtifactSource,
    state: DesiredState,
    *,
    self_contained: bool = False,
) -> None:
    """`self_contained`: first boot fetches nothing (reset's config: a rebuild never depends on a mirror)."""
    site = bp.metadata.name
    state.add(File("/etc/hostname", f"{device.host_name}\n".encode()))
    for index, interface in enumerate(device.interfaces):
        text = render_template(
            "network/interface.network.j2",
            device=device.name,
            site=site,
            interface={
                "name": interface.name,
                "mac": interface.mac,
                "dhcp": interface.dhcp,
                "address": str(interface.address) if interface.address else None,
                "gateway": str(interface.gateway) if interface.gateway else None,
                "dns": [str(d) for d in interface.dns],
            },
        )
        state.add(File(_network_file_name(index, interface), text.encode(), restarts=("systemd-networkd.service",)))
    if bp.os.ntp:
        text = render_template("flatcar/timesyncd.conf.j2", device=device.name, site=site, servers=bp.os.ntp)
        state.add(File(TIMESYNCD_DROPIN, text.encode(), restarts=("systemd-timesyncd.service",)))
    state.links.append(Link("/etc/localtime", f"../usr/share/zoneinfo/{bp.os.timezone}"))
    update_conf = render_template(
        "flatcar/update.conf.j2",
        device=device.name,
        site=site,
        group=bp.os.updates.group,
        reboot_strategy=bp.os.updates.reboot_strategy,
    )
    state.add(File("/etc/flatcar/update.conf", update_conf.encode(), restarts=("locksmithd.service",)))

    # Ignition's passwd stage writes this same file on first boot; owning it here lets apply rotate keys later.
    user = bp.access.user
    keys = "".join(f"{key}\n" for key in bp.access.authorized_keys)
    state.add(
        File(
            authorized_keys_path(user),
            keys.encode(),
            mode=0o600,
            owner=user,
            group=user,
            restarts=(update_ssh_keys(user),),
        )
    )

    host_key = secrets.host_key(device.name)
    state.add(
        File(HOST_KEY, host_key.private.encode(), mode=0o600, secret=True),
        File(HOST_KEY + ".pub", (host_key.public + "\n").encode()),
    )

    add_sysext(bp, "k3s", artifacts, state, SYSEXT_RESTARTS, self_contained=self_contained)
    state.links.append(Link("/etc/systemd/system/multi-user.target.wants/k3s.service", K3S_UNIT))
    config = {
        "token-file": K3S_TOKEN,
        "node-name": device.host_name,
        "node-ip": str(device.address),
        "tls-san": [str(device.address)],
        "write-kubeconfig-mode": "0600",
        # UMH exposes its services as LoadBalancers (served by k3s' servicelb); no ingress controller is needed.
        "disable": ["traefik"],
        "node-label": [f"umhctl/site={site}", f"umhctl/role={device.role}"],
    }
    state.add(
        File(K3S_CONFIG, to_yaml(config).encode(), restarts=("k3s.service",)),
        File(
            K3S_TOKEN,
            (secrets.k3s_token(device.name) + "\n").encode(),
            mode=0o600,
            secret=True,
            restarts=("k3s.service",),
        ),
    )
