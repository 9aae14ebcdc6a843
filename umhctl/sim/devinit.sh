#!/bin/bash
# umhctl SIMULATION PART: the "boot" of one simulated device. It runs as the first process of the device's own
# mount, pid and uts namespaces (started by `unshare --mount --propagation private --uts --pid --fork
# --kill-child`), so every mount below disappears with the device and sshd becomes the device's PID 1.
#   devinit.sh ROOT LAYER CONTROL ADDRESS PORT HOSTNAME
# ROOT     the device's root directory (provisioned by Ignition)
# LAYER    the sim's /usr layer: stand-ins and whiteouts that hide the host's Python (Flatcar has none)
# CONTROL  a host directory shown as /run/umhctl-sim in the device (reboot requests, active units)
set -euo pipefail
root=$1 layer=$2 control=$3 address=$4 port=$5 host=$6

# Flatcar's /usr is read-only: a read-only overlay (no upper layer) of the host /usr under the sim layer.
mount -t overlay -o "ro,lowerdir=$layer:/usr" umhctl-sim-usr "$root/usr"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o mode=755,size=1m,nosuid umhctl-sim-dev "$root/dev"
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 666 "$root/dev/$name" c "$major" "$minor"
done
mkdir -m 755 "$root/dev/pts"
mkdir -m 1777 "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev umhctl-sim-shm "$root/dev/shm"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=755,nosuid,nodev umhctl-sim-run "$root/run"
mkdir -m 755 "$root/run/sshd" "$root/run/umhctl-sim"
: >"$root/run/utmp"
mount --bind "$control" "$root/run/umhctl-sim"
hostname "$host"
# The device's own oneshot units (umhctl's tailnet enroll unit), started as systemd starts them at boot: through
# the systemctl stand-in, which checks their conditions and dependencies and runs their Exec lines.
while read -r unit; do
  [[ -n $unit ]] && chroot "$root" /usr/bin/systemctl start "$unit" || true
done <"$control/boot-oneshots"
echo "umhctl sim: $host booted, sshd on $address:$port"
# The sim operator's key is authorized from /run/umhctl-sim/authorized_keys/<user>, a file the sim writes outside
# the device's disk: the device's own files stay exactly what Ignition (and later apply) put there.
exec chroot "$root" /usr/sbin/sshd -D -e -o "ListenAddress=$address:$port" \
  -o "AuthorizedKeysFile=.ssh/authorized_keys /run/umhctl-sim/authorized_keys/%u"
