"""Connecting to a device: known_hosts as OpenSSH reads it (markers included), and one plain message for a device
that does not answer. Devices here are loopback TCP listeners that misbehave on purpose (127.0.0.0/8 only); the
host-key checks against a real sshd are in test_converge.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from umhctl.errors import UmhctlError
from umhctl.knownhosts import read_known_hosts, set_host_key
from umhctl.remote.ssh import Endpoint, _site_host_keys, connect

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICHy9siiBYpe75OvPUvPWpZJohaG6qJIYtVgi+z0y40g"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def test_known_hosts_markers_are_read_as_openssh_does(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(
        f"# site devices\n192.0.2.10 {KEY}\n[192.0.2.11]:2222 {OTHER} comment\n"
        f"@revoked * {KEY}\n@cert-authority *.plant.example {OTHER}\ngarbage\n192.0.2.12 ssh-ed25519 !!!\n"
    )
    known = read_known_hosts(path)
    assert known.revoked == {KEY}
    # the revoked key is trusted nowhere, even where a line lists it; a CA line trusts nothing
    assert [(names, f"{t} {d}") for names, t, d in known.trusted] == [
        (["[192.0.2.11]:2222"], OTHER),
        (["192.0.2.12"], "ssh-ed25519 !!!"),
    ]


def test_known_hosts_is_decoded_once_per_content_and_an_edit_between_connections_counts(tmp_path: Path) -> None:
    """Every connection of a fleet run checks its device's key; the file's keys are decoded once, not once per
    device (quadratic in the fleet), and a file rewritten in place, even to the same size, is read again."""
    path = tmp_path / "known_hosts"
    path.write_text(f"192.0.2.10 {KEY}\n[192.0.2.11]:2222 {OTHER}\n")
    known, table = _site_host_keys(path)
    assert _site_host_keys(path)[1] is table, "the same content: the same decoded keys"
    assert table.lookup("[192.0.2.11]:2222")["ssh-ed25519"].get_base64() == OTHER.split()[1]
    path.write_text(f"192.0.2.10 {OTHER}\n[192.0.2.11]:2222 {KEY}\n")
    known, table = _site_host_keys(path)
    assert table.lookup("[192.0.2.11]:2222")["ssh-ed25519"].get_base64() == KEY.split()[1]
    assert table.lookup("192.0.2.10")["ssh-ed25519"].get_base64() == OTHER.split()[1]
    path.write_text(f"@revoked * {KEY}\n192.0.2.10 {OTHER}\n[192.0.2.11]:2222 {KEY}\n")
    known, table = _site_host_keys(path)
    assert table.lookup("[192.0.2.11]:2222") is None and known.revoked == {KEY}


def test_a_revoked_key_is_not_recorded_as_trusted(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"@revoked * {KEY}\n")
    with pytest.raises(UmhctlError, match="marked @revoked"):
        set_host_key(path, "192.0.2.10", KEY + " hub-01@demo")
    assert set_host_key(path, "192.0.2.10", OTHER)
    assert path.read_text() == f"@revoked * {KEY}\n192.0.2.10 {OTHER}\n"


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[int]:
    """A loopback TCP port that accepts connections and then: says nothing ("silent"), sends an SSH banner and
    nothing more ("banner"), or closes the connection ("close")."""
    mode = request.param
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            if mode == "banner":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            elif mode == "close":
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def _endpoint(tmp_path: Path, port: int, known_hosts: str = "") -> Endpoint:
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts or f"[127.0.0.1]:{port} {KEY}\n")
    return Endpoint("edge-01", "127.0.0.1", port, "core", path)


@pytest.mark.parametrize("listener", ["silent", "banner"], indirect=True)
def test_a_hung_device_gets_one_plain_message_naming_the_timeout(tmp_path: Path, listener: int) -> None:
    started = time.monotonic()
    with pytest.raises(UmhctlError) as info:
        connect(_endpoint(tmp_path, listener), timeout=1.0)
    assert time.monotonic() - started < 10
    assert str(info.value) == (
        f"edge-01: cannot reach 127.0.0.1:{listener}: no SSH answer within the 1 s timeout "
        "(the device is down, or accepts connections but hangs)"
    )


@pytest.mark.parametrize("listener", ["close"], indirect=True)
def test_a_connection_closed_in_the_handshake_says_so(tmp_path: Path, listener: int) -> None:
    with pytest.raises(UmhctlError) as info:
        connect(_endpoint(tmp_path, listener), timeout=5.0)
    assert "EOFError" not in str(info.value) and "No existing session" not in str(info.value)
    assert str(info.value).endswith("the connection was closed during the SSH handshake (rebooting?)")


@pytest.mark.parametrize("listener", ["silent"], indirect=True)
def test_markers_and_garbage_in_known_hosts_do_not_crash_connect(tmp_path: Path, listener: int) -> None:
    """paramiko reads '@revoked' as a host name and fails on the line: it was 'internal error' on every device."""
    text = f"@revoked * {OTHER}\n@cert-authority * {OTHER}\n[127.0.0.1]:{listener} {KEY}\nnonsense line here\n"
    with pytest.raises(UmhctlError, match="no SSH answer within the 1 s timeout"):
        connect(_endpoint(tmp_path, listener, text), timeout=1.0)


def test_nothing_listening_is_said_plainly(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(UmhctlError, match=f"cannot reach 127.0.0.1:{port}: Connection refused"):
        connect(_endpoint(tmp_path, port), timeout=1.0)
