"""The simulated site: every blueprint device as a real sshd in a Flatcar-shaped root provisioned by real Ignition.

Everything in this package is a simulation part; none of it is ever installed on a real device.

- site.py: `sim up/down/status` as a library (`up`, `down`, `status`), reboots (`process_reboots`,
  `reboot_device`), and `SimSite`, the API plan/apply/reset use in sim mode (endpoints, known_hosts, identity)
- state.py: the state dir layout and site.json
- provision.py: the Flatcar-shaped base root and the real Ignition run
- layer.py, standins/: the read-only /usr overlay layer (no Python; systemctl, reboot and flatcar-reset stand-ins)
- process.py, devinit.sh: one device = `unshare` (mount, pid, uts namespaces) -> mounts -> chroot -> sshd
- reset.py: what Flatcar's initrd does after a staged flatcar-reset
- net.py: loopback-only addresses (`assert_loopback`); probe.py: banner and SSH login; watch.py: the
  reboot watcher; cli.py: the typer sub-app
"""
