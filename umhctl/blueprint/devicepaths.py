"""Where a blueprint's `files[]` may write on a device: the places a Flatcar admin puts files, minus what the
system or umhctl itself owns. An allowlist, not a denylist: a path outside these places is refused.

Allowed:  /etc/...  /opt/...  /var/lib/<app>/...  /home/<user>/...

Sources for what Flatcar owns:
- flatcar/baselayout lib/tmpfiles.d/baselayout.conf: `/opt` and `/opt/bin` are the admin's (created empty),
  `/usr` is the read-only OS image (Flatcar docs, reference/developer-guides/sdk-disk-partitions: "a read-only
  /usr and a stateful read/write /"), `/boot`, `/dev`, `/proc`, `/sys`, `/run` are the system's.
- flatcar/baselayout lib/tmpfiles.d/baselayout-etc.conf: /etc/passwd, shadow, group, gshadow (also written by
  Ignition's passwd stage), /etc/sudoers.d, /etc/flatcar (and /etc/coreos linking to it), /etc/profile.d,
  /etc/nsswitch.conf and /etc/sudo.conf linking into /usr/share/baselayout.
- systemd-sysext(8): images in /etc/extensions and /var/lib/extensions are merged over /usr.
What umhctl owns is what umhctl/render writes (tests/test_devicepaths.py renders the example sites and checks
that every path they hold is refused here), its state in /var/lib/umhctl, and what umhctl depends on to reach a
device at all: sshd (/etc/ssh), `sudo -n` (sudoers), logins (PAM, NSS, the user's ~/.ssh).
"""

from __future__ import annotations

ALLOWED_PLACES = "/etc (except what Flatcar or umhctl manage), /opt, /var/lib/<app>/ or /home/{user}/"

# path (and everything below it) → who owns it. Checked per path segment: '/etc/ssh' does not cover '/etc/sshx'.
_OWNED: dict[str, str] = {
    # What umhctl renders or needs to reach the device.
    "/etc/ssh": "umhctl and sshd own it (host keys, sshd_config): a wrong file there cuts umhctl off the device",
    "/etc/systemd/network": "umhctl renders the network configuration there (devices[].interfaces)",
    "/etc/rancher": "umhctl renders k3s' configuration there",
    "/etc/extensions": "systemd-sysext merges the images there; umhctl manages the k3s extension",
    "/etc/flatcar": "Flatcar's own configuration; umhctl renders update.conf from 'os.updates'",
    "/etc/coreos": "Flatcar links it to /etc/flatcar",
    "/etc/hostname": "umhctl renders it from devices[].hostname",
    "/etc/localtime": "umhctl links it from 'os.timezone'",
    "/etc/systemd/timesyncd.conf.d/50-umhctl.conf": "umhctl renders it from 'os.ntp'",
    "/etc/systemd/system/k3s.service": "umhctl runs k3s from its system extension",
    "/etc/systemd/system/k3s.service.d": "umhctl runs k3s from its system extension",
    "/etc/systemd/system/multi-user.target.wants/k3s.service": "umhctl enables k3s there",
    "/etc/umhctl": "umhctl's own",
    # Remote access (umhctl/render/tailscale.py): the auth key, the enroll unit and the links enabling both.
    "/etc/tailscale": "umhctl writes the tailnet auth key there (access.tailscale)",
    "/etc/systemd/system/umhctl-tailscale-enroll.service": "umhctl enrolls the device in the tailnet with it",
    "/etc/systemd/system/multi-user.target.wants/tailscaled.service": "umhctl enables tailscaled there",
    "/etc/systemd/system/multi-user.target.wants/umhctl-tailscale-enroll.service": "umhctl enables enrolling there",
    "/var/lib/tailscale": "tailscaled's state (the node's identity in the tailnet)",
    "/opt/extensions": "umhctl keeps the system extension images there",
    "/var/lib/umhctl": "umhctl keeps its record and lock there",
    "/var/lib/rancher": "k3s' state, and the manifests umhctl renders",
    "/var/lib/extensions": "systemd-sysext merges the images there",
    # What the system owns.
    "/etc/passwd": "the user database (Ignition and Flatcar's baselayout manage it)",
    "/etc/shadow": "the user database (Ignition and Flatcar's baselayout manage it)",
    "/etc/group": "the user database (Ignition and Flatcar's baselayout manage it)",
    "/etc/gshadow": "the user database (Ignition and Flatcar's baselayout manage it)",
    "/etc/sudoers": "umhctl runs its scripts with 'sudo -n': a wrong sudoers cuts umhctl off the device",
    "/etc/sudoers.d": "umhctl runs its scripts with 'sudo -n': a wrong sudoers cuts umhctl off the device",
    "/etc/sudo.conf": "umhctl runs its scripts with 'sudo -n': a wrong sudo.conf cuts umhctl off the device",
    "/etc/pam.d": "logins depend on it: a wrong file cuts umhctl off the device",
    "/etc/nsswitch.conf": "user lookups depend on it: a wrong file cuts umhctl off the device",
    "/etc/machine-id": "systemd owns it",
    "/etc/os-release": "Flatcar links it to the OS image's",
    "/etc/resolv.conf": "systemd-resolved owns it (DNS comes from devices[].interfaces[].dns)",
    "/etc/mtab": "the kernel's mount table",
    "/var/lib/systemd": "systemd's state",
    "/var/lib/update_engine": "Flatcar's update engine state",
    "/var/lib/docker": "the container runtime's state",
    "/var/lib/containerd": "the container runtime's state",
}
# Directories that exist on every Flatcar device: a file there would replace a directory (baselayout, systemd).
_SYSTEM_DIRECTORIES = ("/etc/systemd", "/etc/systemd/system", "/etc/profile.d", "/opt/bin")


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def refusal(path: str, user: str) -> str | None:
    """Why a blueprint file may not be written at `path` (a normalized absolute path), or None when it may."""
    parts = path.split("/")[1:]
    if len(parts) == 1:
        return "is a top-level directory of the device, not a file"
    owned = {**_OWNED, f"/home/{user}/.ssh": "umhctl manages SSH access there (access.authorizedKeys)"}
    for top, why in owned.items():
        if _under(path, top):
            return f"is not a place for blueprint files: {why}"
    holds = next((top for top in owned if top.startswith(path + "/")), None)
    if holds is not None or path in _SYSTEM_DIRECTORIES:
        what = f"it holds {holds}" if holds else "it exists on every Flatcar device"
        return f"is a directory ({what}): a file cannot take its place"
    if parts[0] in ("etc", "opt") and len(parts) >= 2:
        return None
    if parts[:2] == ["var", "lib"] and len(parts) >= 4:
        return None
    if parts[:2] == ["home", user] and len(parts) >= 3:
        return None
    if parts[0] == "usr":
        return "is under /usr, the read-only Flatcar OS image"
    if parts[:2] == ["var", "lib"] and len(parts) == 3:
        return "is directly under /var/lib: put it in the directory of its application, /var/lib/<app>/"
    return "is outside the places a blueprint may write"


def hint(user: str) -> str:
    return "files[].path must be under " + ALLOWED_PLACES.format(user=user)
