set -u
umask 077
failed=0
systemctl daemon-reload || failed=1
if update-ssh-keys -u core; then echo RESTARTED update-ssh-keys:core; else echo FAILED update-ssh-keys:core; failed=1; fi
if systemctl restart -- systemd-networkd.service; then echo RESTARTED systemd-networkd.service; else echo FAILED systemd-networkd.service; failed=1; fi
if systemctl restart -- k3s.service; then echo RESTARTED k3s.service; else echo FAILED k3s.service; failed=1; fi
exit $failed
