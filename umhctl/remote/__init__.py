"""The remote gate: the only way umhctl reaches a device.

- ssh.py: paramiko (imported nowhere else): strict host keys, scripts on stdin as root
- scripts.py: every bash script umhctl runs on a device, as pure functions (pinned by golden tests)
- gate.py: `Remote`, one method per script, answers parsed into data or errors that say what state the device is in
"""
