"""The simulated site: every blueprint device as a real sshd in a Flatcar-shaped root provisioned by real Ignition.

Everything in this package is a simulation part; none of it is ever installed on a real device.

- api.py: `sim_up`, `sim_down`, `sim_status`, `sim_lock` with typed results (the CLI is umhctl/cli/sim.py)
- site.py: `sim up/down/status` as a library (`up`, `down`, `status`), reboots (`process_reboots`,
  `reboot_device`)
- state.py: the state dir layout and site.json; `SimSite.inventory()`, what plan/apply/reset get in sim mode
  (endpoints, known_hosts, identity, stand-in artifacts)
- provision.py: the Flatcar-shaped base root, the real Ignition run (no internet), what Flatcar does once after
  it (update-ssh-keys) and at every boot (systemd-sysext)
- publisher.py: the stand-in sysext publisher (static HTTP on the site's base address, run by the watcher)
- layer.py, standins/: the read-only /usr overlay layer (no Python; systemctl, reboot, flatcar-reset and
  update-ssh-keys stand-ins)
- process.py, devinit.sh: one device = `unshare` (mount, pid, uts namespaces) -> mounts -> chroot -> sshd
- reset.py: what Flatcar's initrd does after a staged flatcar-reset
- net.py: loopback-only addresses (`assert_loopback`); probe.py: banner and SSH login; watch.py: the
  reboot watcher and publisher
"""
