"""Remote access through plant firewalls: the Tailscale system extension, its auth key and the enroll unit.

Plant networks allow outgoing connections only; a device in a tailnet (Tailscale, or a self-hosted Headscale)
is reachable through them. The device enrolls itself once with a pre-authorized key (`tailscale up
--auth-key=file:...`); umhctl then reaches it as `<tailnetHostname>.<tailnet>` when `access.via: tailscale`.
"""

from __future__ import annotations

from umhctl.artifacts import ArtifactSource
from umhctl.blueprint.model import Device, SiteBlueprint
from umhctl.render.desired import DesiredState, File, Link
from umhctl.render.system import add_sysext
from umhctl.resolver import SecretResolver
from umhctl.templating import render_template

AUTH_KEY = "/etc/tailscale/authkey"
ENROLL_UNIT = "umhctl-tailscale-enroll.service"
ENROLL_UNIT_PATH = f"/etc/systemd/system/{ENROLL_UNIT}"
# Where the bakery's image puts the unit (flatcar/sysext-bakery tailscale.sysext/create.sh). Images from v1.78.1
# on also start it by themselves (multi-user.target.d/10-tailscale.conf: Upholds=tailscaled.service); the link
# enables it for older ones too, and systemd only reads a .wants link's name.
TAILSCALED_UNIT = "/usr/lib/systemd/system/tailscaled.service"
ENROLL_TIMEOUT = 120  # seconds `tailscale up` waits for the control server before the unit fails and retries
# A new image: merge it, restart the daemon, and enroll if the device has not yet (the enroll unit does nothing
# once it has). First boot without the image (artifacts.delivery: apply) enrolls at the first apply this way.
RESTARTS = ("systemd-sysext.service", "tailscaled.service", ENROLL_UNIT)
WANTS = "/etc/systemd/system/multi-user.target.wants"

# Paths this module writes: a site file must not take them over (blueprint checks).
RESERVED = (
    AUTH_KEY,
    ENROLL_UNIT_PATH,
    "/etc/extensions/tailscale.raw",
    f"{WANTS}/tailscaled.service",
    f"{WANTS}/{ENROLL_UNIT}",
)


def render_tailscale(
    bp: SiteBlueprint,
    device: Device,
    secrets: SecretResolver,
    artifacts: ArtifactSource,
    state: DesiredState,
    *,
    self_contained: bool = False,
    kept_images: bool = False,
) -> None:
    """`kept_images`: the device keeps its images across this rebuild (a reset in place): its first boot links
    the Tailscale image, so the rebuilt device enrolls again before anything else can reach it."""
    tailnet = bp.access.enabled_tailscale
    if tailnet is None:
        return
    add_sysext(bp, "tailscale", artifacts, state, RESTARTS, self_contained=self_contained, boot_link=kept_images)
    unit = render_template(
        "tailscale/enroll.service.j2",
        device=device.name,
        site=bp.metadata.name,
        auth_key=AUTH_KEY,
        hostname=device.tailnet_name,
        login_server=tailnet.login_server,
        tags=tailnet.tags,
        timeout=ENROLL_TIMEOUT,
    )
    key = secrets.value(tailnet.auth_key_secret)
    state.add(
        File(AUTH_KEY, (key + "\n").encode(), mode=0o600, secret=True, restarts=(ENROLL_UNIT,)),
        File(ENROLL_UNIT_PATH, unit.encode(), restarts=(ENROLL_UNIT,)),
    )
    state.links.append(Link(f"{WANTS}/tailscaled.service", TAILSCALED_UNIT))
    state.links.append(Link(f"{WANTS}/{ENROLL_UNIT}", ENROLL_UNIT_PATH))
