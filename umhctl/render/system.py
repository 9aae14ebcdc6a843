"""The operating-system part of a device's desired state: identity, network, updates, SSH host key, k3s.

Every device runs Flatcar with k3s as a system extension (flatcar/sysext-bakery) and its own single-node k3s
server: an edge keeps collecting data when its hub is down, and one device's cluster never depends on another's.
"""

from __future__ import annotations

from umhctl.blueprint.model import Device, SiteBlueprint
from umhctl.render.desired import DesiredState, File, Link, RemoteFile
from umhctl.render.yamltext import to_yaml
from umhctl.secrets import SecretStore
from umhctl.templating import render_template

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_TOKEN = "/etc/rancher/k3s/token"
K3S_MANIFESTS = "/var/lib/rancher/k3s/server/manifests"
K3S_UNIT = "/usr/local/lib/systemd/system/k3s.service"  # shipped inside the k3s system extension
SYSEXT_BAKERY = "https://extensions.flatcar.org/extensions"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"


def sysext_image(k3s_version: str) -> str:
    return f"/opt/extensions/k3s/k3s-{k3s_version}-x86-64.raw"


def authorized_keys_path(user: str) -> str:
    return f"/home/{user}/.ssh/authorized_keys.d/ignition"


def render_system(bp: SiteBlueprint, device: Device, secrets: SecretStore, state: DesiredState) -> None:
    site = bp.metadata.name
    state.add(File("/etc/hostname", f"{device.host_name}\n".encode()))
    for index, interface in enumerate(device.interfaces):
        text = render_template(
            "network/interface.network.j2",
            device=device.name,
            site=site,
            interface={
                "name": interface.name,
                "dhcp": interface.dhcp,
                "address": str(interface.address) if interface.address else None,
                "gateway": str(interface.gateway) if interface.gateway else None,
                "dns": [str(d) for d in interface.dns],
            },
        )
        # Numbered by blueprint order so networkd matches them in the order the blueprint lists them.
        state.add(
            File(
                f"/etc/systemd/network/{10 + index:02d}-{interface.name}.network",
                text.encode(),
                restarts=("systemd-networkd.service",),
            )
        )
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
    state.add(File(authorized_keys_path(user), keys.encode(), mode=0o600, owner=user, group=user))

    host_key = secrets.host_key(device.name)
    state.add(
        File(HOST_KEY, host_key.private.encode(), mode=0o600, secret=True),
        File(HOST_KEY + ".pub", (host_key.public + "\n").encode()),
    )

    k3s = bp.versions.k3s
    state.remote_files.append(RemoteFile(sysext_image(k3s), f"{SYSEXT_BAKERY}/k3s-{k3s}-x86-64.raw"))
    state.links.append(Link("/etc/extensions/k3s.raw", sysext_image(k3s)))
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
