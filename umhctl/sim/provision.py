"""Provision a device root with the real Ignition binary (Debian package `ignition`), as first boot would.

The root starts Flatcar-shaped: `usr` is an empty mount point (the device gets a read-only /usr when it starts),
`bin`, `sbin`, `lib` and `lib64` point into it, /etc holds what Flatcar's base image has (the `core` user with
uid 500, so Ignition runs usermod rather than useradd; the groups the config names; sshd's privsep user; a PAM
stack; passwordless sudo for the sudo and wheel groups). Debian's Ignition always relabels for SELinux, so a
no-op `setfiles` goes first on PATH while it runs.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from umhctl.errors import UmhctlError
from umhctl.sim.process import in_private_mounts

IGNITION = Path("/usr/lib/dracut/modules.d/30ignition/ignition")
CORE_UID = 500

_PASSWD = """root:x:0:0:root:/root:/bin/bash
sshd:x:101:65534::/run/sshd:/usr/sbin/nologin
core:x:500:500:Flatcar Admin:/home/core:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
"""
_GROUPS = [
    ("root", 0),
    ("tty", 5),
    ("wheel", 10),
    ("adm", 4),
    ("systemd-journal", 190),
    ("sudo", 27),
    ("users", 100),
    ("docker", 233),
    ("core", 500),
    ("nogroup", 65534),
]
_CORE_GROUPS = ("wheel", "sudo", "docker", "adm", "systemd-journal")  # as on Flatcar

# sshd reads only ~/.ssh/authorized_keys, as on Flatcar (no AuthorizedKeysFile in flatcar/scripts'
# 50-flatcar-sshd.conf): Ignition's authorized_keys.d/ignition takes effect only through update-ssh-keys.
SSHD_CONFIG = """# Simulated Flatcar device (umhctl sim)
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile none
UsePAM yes
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
Subsystem sftp internal-sftp
UseDNS no
PrintMotd no
PrintLastLog no
ClientAliveInterval 180
"""
_PAM = "".join(f"{kind} required pam_unix.so\n" for kind in ("auth", "account", "password", "session"))
# use_pty: sudo's default since 1.9.14, written out so that the host's sudo (1.9.13 on Debian 12) behaves as a
# newer device's does. Without a terminal, as in umhctl's sessions, sudo passes the session's pipes through.
_SUDOERS = """Defaults env_reset
Defaults use_pty
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root ALL=(ALL:ALL) ALL
%sudo ALL=(ALL) NOPASSWD: ALL
%wheel ALL=(ALL) NOPASSWD: ALL
"""
_OS_RELEASE = """NAME="Flatcar Container Linux by Kinvolk"
ID=flatcar
ID_LIKE=coreos
PRETTY_NAME="Flatcar Container Linux (simulated by umhctl sim)"
VARIANT_ID=umhctl-sim
"""
SIM_LOG_DIR = "var/log/umhctl-sim"


def _write(path: Path, text: str, mode: int, keep_existing: bool) -> None:
    if keep_existing and (path.exists() or path.is_symlink()):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def make_base_root(root: Path, *, keep_existing: bool = False) -> None:
    """The Flatcar-shaped tree a device starts from (what Flatcar's image has before Ignition runs).

    With keep_existing, only what is missing is created: after a selective reset the kept files win, as the
    upper layer of Flatcar's /etc overlay does.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name, mode in [
        ("usr", 0o755),
        ("proc", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("var/lib", 0o755),
        ("var/log", 0o755),
        ("home", 0o755),
        ("root", 0o700),
        ("opt", 0o755),
        ("oem", 0o755),  # the OEM partition on a real device: flatcar-reset -F writes /oem/config.ign here
        ("boot/flatcar", 0o755),  # the ESP: holds the first_boot flag
        ("etc/ssh", 0o755),
        ("etc/pam.d", 0o755),
        ("etc/selinux", 0o755),
        ("etc/sudoers.d", 0o750),
        ("etc/systemd/system", 0o755),
        (SIM_LOG_DIR, 0o755),
    ]:
        path = root / name
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)
    for link, target in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")]:
        if not (root / link).is_symlink():
            os.symlink(target, root / link)
    if not (root / "var/run").is_symlink():
        os.symlink("../run", root / "var/run")
    etc = root / "etc"
    _write(etc / "passwd", _PASSWD, 0o644, keep_existing)
    _write(
        etc / "group",
        "".join(f"{name}:x:{gid}:{'core' if name in _CORE_GROUPS else ''}\n" for name, gid in _GROUPS),
        0o644,
        keep_existing,
    )
    _write(etc / "shadow", "root:*:19000:0:99999:7:::\ncore:*:19000:0:99999:7:::\n", 0o640, keep_existing)
    _write(etc / "gshadow", "".join(f"{name}:*::\n" for name, _ in _GROUPS), 0o640, keep_existing)
    # Debian's Ignition reads this to decide how to relabel; SELINUX=disabled alone does not stop it.
    _write(etc / "selinux" / "config", "SELINUX=disabled\nSELINUXTYPE=targeted\n", 0o644, keep_existing)
    _write(etc / "nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n", 0o644, keep_existing)
    _write(etc / "os-release", _OS_RELEASE, 0o644, keep_existing)
    _write(etc / "ssh" / "sshd_config", SSHD_CONFIG, 0o644, keep_existing)
    for service in ("sshd", "sudo", "other"):
        _write(etc / "pam.d" / service, _PAM, 0o644, keep_existing)
    _write(etc / "sudoers", _SUDOERS, 0o440, keep_existing)
    for log in ("lastlog", "wtmp", "btmp"):
        _write(root / "var/log" / log, "", 0o644, keep_existing)
    # The systemctl stand-in logs every call here, also unprivileged ones (is-active without sudo).
    _write(root / SIM_LOG_DIR / "systemctl.log", "", 0o666, keep_existing)
    home = root / "home" / "core"
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, CORE_UID, CORE_UID)


def ensure_groups(root: Path, config: dict[str, Any]) -> None:
    """Add every group the config names that the base root lacks; useradd/usermod fail on unknown groups."""
    wanted: list[str] = []
    for user in config.get("passwd", {}).get("users", []):
        wanted += user.get("groups", [])
    for kind in ("files", "directories"):
        for entry in config.get("storage", {}).get(kind, []):
            name = entry.get("group", {}).get("name")
            if name:
                wanted.append(name)
    group_file = root / "etc" / "group"
    lines = group_file.read_text().splitlines()
    present = {line.split(":")[0] for line in lines if line}
    gids = {int(line.split(":")[2]) for line in lines if line.count(":") >= 3}
    next_gid = 1000
    for name in dict.fromkeys(wanted):
        if name in present:
            continue
        while next_gid in gids:
            next_gid += 1
        gids.add(next_gid)
        present.add(name)
        with group_file.open("a") as handle:
            handle.write(f"{name}:x:{next_gid}:\n")
        with (root / "etc" / "gshadow").open("a") as handle:
            handle.write(f"{name}:*::\n")


def apply_presets(root: Path) -> list[str]:
    """Enable the units Ignition's preset file names, as systemd's first boot does; returns the units enabled.

    `enabled: true` in an Ignition unit only writes /etc/systemd/system-preset/20-ignition.preset; the
    [Install] symlinks appear when systemd applies presets on first boot. No systemd runs here, so do that part.
    """
    enabled: list[str] = []
    preset_dir = root / "etc/systemd/system-preset"
    if not preset_dir.is_dir():
        return enabled
    for preset in sorted(preset_dir.glob("*.preset")):
        for line in preset.read_text().splitlines():
            words = line.split()
            if len(words) != 2 or words[0] != "enable":
                continue
            unit = words[1]
            unit_file = root / "etc/systemd/system" / unit
            if not unit_file.is_file():
                continue  # a unit shipped by the OS: the sim's /usr is not Flatcar's, so there is nothing to link
            for target in _wanted_by(unit_file.read_text()):
                wants = root / "etc/systemd/system" / f"{target}.wants"
                wants.mkdir(parents=True, exist_ok=True)
                link = wants / unit
                if not link.is_symlink():
                    os.symlink(f"/etc/systemd/system/{unit}", link)
            enabled.append(unit)
    return enabled


def _wanted_by(unit_text: str) -> list[str]:
    targets: list[str] = []
    for line in unit_text.splitlines():
        key, _, value = line.strip().partition("=")
        if key.strip() == "WantedBy":
            targets += value.split()
    return targets


def new_machine_id(root: Path, machine_id: str | None = None) -> None:
    """What systemd does on first boot: a fresh /etc/machine-id (or the one pinned on the kernel command line)."""
    path = root / "etc" / "machine-id"
    path.write_text((machine_id or secrets.token_hex(16)) + "\n")
    os.chmod(path, 0o444)


def remote_sources(config: dict[str, Any]) -> list[str]:
    """Every source Ignition would download (anything but data: URLs)."""
    sources = []
    for entry in config.get("storage", {}).get("files", []) or []:
        source = (entry.get("contents") or {}).get("source") or ""
        if source and not source.startswith("data:"):
            sources.append(source)
    return sources


def run_ignition(config: dict[str, Any], root: Path) -> str:
    """Run Ignition's fetch-offline and files stages for `config` into `root`; returns Ignition's log.

    A simulated plant has no internet: a remote source is fetched for real, but only from 127.0.0.0/8 (a mirror
    the site or a test runs there). Anything else fails as a device without a route would, only sooner (a real
    one retries until ignition.timeouts.httpTotal). A missing file or a hash mismatch fails Ignition itself,
    as on a device, where first boot then stops in the emergency shell.
    """
    if not IGNITION.exists():
        raise UmhctlError(f"{IGNITION} is missing", hint="apt-get install ignition")
    for source in remote_sources(config):
        host = urlsplit(source).hostname or ""
        try:
            loopback = ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UmhctlError(
                f"Ignition cannot fetch {source}: a simulated plant has no internet (only 127.0.0.0/8 answers); "
                "on a device first boot would stop in the emergency shell",
                hint="deliver the artifacts by apply (artifacts.delivery: apply), or serve them from a mirror",
            )
    with tempfile.TemporaryDirectory(prefix="umhctl-ignition-") as tmp:
        work = Path(tmp)
        (work / "config.ign").write_text(json.dumps(config))
        stub = work / "bin"
        stub.mkdir()
        (stub / "setfiles").write_text("#!/bin/sh\ncat >/dev/null\nexit 0\n")
        os.chmod(stub / "setfiles", 0o755)
        env = {**os.environ, "IGNITION_CONFIG_FILE": str(work / "config.ign"), "PATH": f"{stub}:{os.environ['PATH']}"}
        common = [
            "-platform",
            "file",
            "-log-to-stdout",
            "-config-cache",
            str(work / "cache.json"),
            "-state-file",
            str(work / "state"),
        ]
        fetch = [str(IGNITION), "-stage", "fetch-offline", "-neednet", str(work / "neednet"), *common]
        if _reachable_by_core(root):
            files = [str(IGNITION), "-stage", "files", "-root", str(root), *common]
        else:
            files = _via_searchable_mount(root, work, common)
        log = ""
        for stage, argv in (("fetch-offline", fetch), ("files", files)):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            log += proc.stdout + proc.stderr
            if proc.returncode != 0:
                # Ignition logs its config at length; what went wrong is in its CRITICAL/ERROR lines.
                lines = log.strip().splitlines()
                errors = [line for line in lines if "CRITICAL" in line or "ERROR" in line]
                tail = "\n".join(errors[-5:] or lines[-15:])
                raise UmhctlError(f"Ignition stage {stage} failed (exit {proc.returncode}):\n{tail}")
    return log


def _via_searchable_mount(root: Path, work: Path, common: list[str]) -> list[str]:
    # Ignition writes ~core/.ssh as uid 500, so every directory above the root must let others pass through.
    # A root under a private directory (the sim's state dir is 0700: it holds keys) is bind-mounted at a
    # searchable path in a private mount namespace for the files stage; the mount ends with the stage.
    os.chmod(work, 0o711)
    mnt = work / "root"
    mnt.mkdir()
    return in_private_mounts(
        'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        str(root),
        str(mnt),
        str(IGNITION),
        "-stage",
        "files",
        "-root",
        str(mnt),
        *common,
    )


def _reachable_by_core(root: Path) -> bool:
    return all(
        directory.stat().st_mode & 0o001
        for directory in [root.resolve(), *root.resolve().parents]
        if directory.exists()
    )


# What the fake `tailscale up` (standins/tailscale) records in a device on a successful "enrollment".
TAILNET_NODE = "/var/lib/tailscale/umhctl-sim-node"

# Units that come with a system extension (the k3s sysext ships /usr/local/lib/systemd/system/k3s.service, the
# tailscale sysext /usr/lib/systemd/system/tailscaled.service).
SYSEXT_UNITS = {"k3s.service": "k3s", "tailscaled.service": "tailscale"}


def sysext_merge(root: Path, control: Path) -> list[str]:
    """What systemd-sysext does at boot: merge every /etc/extensions/<name>.raw whose image is there.

    SIMULATION: the image is not mounted (stand-ins are no squashfs); what was merged is recorded in
    /run/umhctl-sim/sysext/<name> (the image path), which the systemctl stand-in reads: k3s.service exists only
    while k3s is merged. The same rule as `systemctl restart systemd-sysext` in the stand-in."""
    merged = []
    extensions = root / "etc/extensions"
    for link in sorted(extensions.glob("*.raw")) if extensions.is_dir() else []:
        target = os.readlink(link) if link.is_symlink() else str(link)
        image = root / target.lstrip("/") if target.startswith("/") else link.parent / target
        if image.is_file() and image.stat().st_size > 0:
            (control / "sysext" / link.stem).write_text(target + "\n")
            merged.append(link.stem)
    return merged


def merge_ssh_keys(root: Path, layer: Path) -> None:
    """What Flatcar's update-ssh-keys-after-ignition.service does on the provisioning boot: `update-ssh-keys -u
    USER` for every user with ~/.ssh/authorized_keys.d (flatcar/init). Runs the update-ssh-keys stand-in in the
    device, chrooted, with the device's /usr."""
    homes = sorted(p.parent.parent for p in (root / "home").glob("*/.ssh/authorized_keys.d") if p.is_dir())
    for home in homes:
        argv = in_private_mounts(
            'mount -t overlay -o "ro,lowerdir=$2:/usr" umhctl-sim-usr "$1/usr" && exec chroot "$1" '
            '/usr/bin/update-ssh-keys -u "$3"',
            str(root),
            str(layer),
            home.name,
        )
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise UmhctlError(f"update-ssh-keys -u {home.name} failed after Ignition: {proc.stderr.strip()[-300:]}")
