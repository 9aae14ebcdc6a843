set -euo pipefail
umask 077
mkdirs() { [ -d "$1" ] && return 0; local up=${1%/*}; mkdirs "${up:-/}"; mkdir -m 0755 -- "$1"; }
newdirs() {
  [ -d "$1" ] && return 0; local up=${1%/*}; newdirs "${up:-/}"; mkdir -m 0755 -- "$1"; printf '%s\n' "$1" >> /var/lib/umhctl/created-dirs.list
}
staged=(); renames=()
cleanup() { for t in "${staged[@]}"; do rm -f -- "$t"; done; }
trap cleanup EXIT
mkdirs /var/lib/umhctl
chmod 0755 /var/lib/umhctl
newdirs /etc/umhctl-demo
t=/etc/umhctl-demo/.umhctl-0123abcd-0.tmp
staged+=("$t")
printf '%s' 'answer=42
' > "$t"
renames+=("$t" /etc/umhctl-demo/app.conf)
newdirs /etc/umhctl-demo
t=/etc/umhctl-demo/.umhctl-0123abcd-1.tmp
staged+=("$t")
printf '%s' 's3cret
' > "$t"
renames+=("$t" /etc/umhctl-demo/token)
newdirs /home/core/.ssh/authorized_keys.d
t=/home/core/.ssh/authorized_keys.d/.umhctl-0123abcd-2.tmp
staged+=("$t")
printf '%s' 'ssh-ed25519 AAAA ops
' > "$t"
renames+=("$t" /home/core/.ssh/authorized_keys.d/ops)
newdirs /etc/umhctl-demo
t=/etc/umhctl-demo/.umhctl-0123abcd-3.tmp
staged+=("$t")
ln -sfn -- app.conf "$t"
renames+=("$t" /etc/umhctl-demo/current)
newdirs /var/lib/umhctl
t=/var/lib/umhctl/.umhctl-0123abcd-5.tmp
staged+=("$t")
printf '%s' '/etc/umhctl-demo/app.conf
/etc/umhctl-demo/token
/home/core/.ssh/authorized_keys.d/ops
/etc/umhctl-demo/current
' > "$t"
renames+=("$t" /var/lib/umhctl/managed.list)
newdirs /var/lib/umhctl
t=/var/lib/umhctl/.umhctl-0123abcd-6.tmp
staged+=("$t")
printf '%s' '{
  "files": {
    "/etc/umhctl-demo/app.conf": {
      "restarts": [
        "app.service"
      ],
      "secret": false,
      "sha256": "24cab0d01b67b184d0a737de3a5b5d47b8b69b36203273296d5ef763f7fdcf68"
    },
    "/etc/umhctl-demo/token": {
      "restarts": [
        "k3s.service"
      ],
      "secret": true,
      "sha256": "82ba9d712d21dc7585dd6a1f29790679985547f009baee10ea2e3edd41ce957d"
    },
    "/home/core/.ssh/authorized_keys.d/ops": {
      "restarts": [],
      "secret": false,
      "sha256": "292124b7db24c55d934cfd7949db5b672d1b5af1a43bb715dede29e3ac8ed7fb"
    }
  },
  "install_disk": "/dev/sda",
  "links": {
    "/etc/umhctl-demo/current": "app.conf"
  }
}
' > "$t"
renames+=("$t" /var/lib/umhctl/applied.json)
chown -- core:core /home/core/.ssh/authorized_keys.d/.umhctl-0123abcd-2.tmp
chmod -- 0644 /etc/umhctl-demo/.umhctl-0123abcd-0.tmp /var/lib/umhctl/.umhctl-0123abcd-5.tmp
chmod -- 0600 /etc/umhctl-demo/.umhctl-0123abcd-1.tmp /home/core/.ssh/authorized_keys.d/.umhctl-0123abcd-2.tmp /var/lib/umhctl/.umhctl-0123abcd-6.tmp
sync -- /etc/umhctl-demo/.umhctl-0123abcd-0.tmp /etc/umhctl-demo/.umhctl-0123abcd-1.tmp /home/core/.ssh/authorized_keys.d/.umhctl-0123abcd-2.tmp /var/lib/umhctl/.umhctl-0123abcd-5.tmp /var/lib/umhctl/.umhctl-0123abcd-6.tmp
echo RENAMING
for ((i = 0; i < ${#renames[@]} - 4; i += 2)); do mv -f -T -- "${renames[i]}" "${renames[i+1]}"; done
rm -f -- /etc/umhctl-demo/old.conf
for ((i = ${#renames[@]} - 4; i < ${#renames[@]}; i += 2)); do mv -f -T -- "${renames[i]}" "${renames[i+1]}"; done
staged=()
sync -- /etc/umhctl-demo /home/core/.ssh/authorized_keys.d /var/lib/umhctl || echo 'WARNING directories not synced'
printf '%s\n' '{"changes": 5}' >> /var/lib/umhctl/history.jsonl
echo APPLIED
