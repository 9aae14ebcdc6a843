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
base64 -d > "$t" <<'UMHCTL_DATA'
YW5zd2VyPTQyCg==
UMHCTL_DATA
renames+=("$t" /etc/umhctl-demo/app.conf)
newdirs /etc/umhctl-demo
t=/etc/umhctl-demo/.umhctl-0123abcd-1.tmp
staged+=("$t")
base64 -d > "$t" <<'UMHCTL_DATA'
czNjcmV0Cg==
UMHCTL_DATA
renames+=("$t" /etc/umhctl-demo/token)
newdirs /home/core/.ssh/authorized_keys.d
t=/home/core/.ssh/authorized_keys.d/.umhctl-0123abcd-2.tmp
staged+=("$t")
base64 -d > "$t" <<'UMHCTL_DATA'
c3NoLWVkMjU1MTkgQUFBQSBvcHMK
UMHCTL_DATA
renames+=("$t" /home/core/.ssh/authorized_keys.d/ops)
newdirs /etc/umhctl-demo
t=/etc/umhctl-demo/.umhctl-0123abcd-3.tmp
staged+=("$t")
ln -sfn -- app.conf "$t"
renames+=("$t" /etc/umhctl-demo/current)
newdirs /var/lib/umhctl
t=/var/lib/umhctl/.umhctl-0123abcd-5.tmp
staged+=("$t")
base64 -d > "$t" <<'UMHCTL_DATA'
L2V0Yy91bWhjdGwtZGVtby9hcHAuY29uZgovZXRjL3VtaGN0bC1kZW1vL3Rva2VuCi9ob21lL2Nv
cmUvLnNzaC9hdXRob3JpemVkX2tleXMuZC9vcHMKL2V0Yy91bWhjdGwtZGVtby9jdXJyZW50Cg==
UMHCTL_DATA
renames+=("$t" /var/lib/umhctl/managed.list)
newdirs /var/lib/umhctl
t=/var/lib/umhctl/.umhctl-0123abcd-6.tmp
staged+=("$t")
base64 -d > "$t" <<'UMHCTL_DATA'
ewogICJmaWxlcyI6IHsKICAgICIvZXRjL3VtaGN0bC1kZW1vL2FwcC5jb25mIjogewogICAgICAi
cmVzdGFydHMiOiBbCiAgICAgICAgImFwcC5zZXJ2aWNlIgogICAgICBdLAogICAgICAic2VjcmV0
IjogZmFsc2UsCiAgICAgICJzaGEyNTYiOiAiMjRjYWIwZDAxYjY3YjE4NGQwYTczN2RlM2E1YjVk
NDdiOGI2OWIzNjIwMzI3MzI5NmQ1ZWY3NjNmN2ZkY2Y2OCIKICAgIH0sCiAgICAiL2V0Yy91bWhj
dGwtZGVtby90b2tlbiI6IHsKICAgICAgInJlc3RhcnRzIjogWwogICAgICAgICJrM3Muc2Vydmlj
ZSIKICAgICAgXSwKICAgICAgInNlY3JldCI6IHRydWUsCiAgICAgICJzaGEyNTYiOiAiODJiYTlk
NzEyZDIxZGM3NTg1ZGQ2YTFmMjk3OTA2Nzk5ODU1NDdmMDA5YmFlZTEwZWEyZTNlZGQ0MWNlOTU3
ZCIKICAgIH0sCiAgICAiL2hvbWUvY29yZS8uc3NoL2F1dGhvcml6ZWRfa2V5cy5kL29wcyI6IHsK
ICAgICAgInJlc3RhcnRzIjogW10sCiAgICAgICJzZWNyZXQiOiBmYWxzZSwKICAgICAgInNoYTI1
NiI6ICIyOTIxMjRiN2RiMjRjNTVkOTM0Y2ZkNzk0OWRiNWI2NzJkMWI1YWYxYTQzYmI3MTVkZWRl
MjllM2FjOGVkN2ZiIgogICAgfQogIH0sCiAgImluc3RhbGxfZGlzayI6ICIvZGV2L3NkYSIsCiAg
ImxpbmtzIjogewogICAgIi9ldGMvdW1oY3RsLWRlbW8vY3VycmVudCI6ICJhcHAuY29uZiIKICB9
Cn0K
UMHCTL_DATA
renames+=("$t" /var/lib/umhctl/applied.json)
chown -- root:root /etc/umhctl-demo/.umhctl-0123abcd-0.tmp /etc/umhctl-demo/.umhctl-0123abcd-1.tmp /var/lib/umhctl/.umhctl-0123abcd-5.tmp /var/lib/umhctl/.umhctl-0123abcd-6.tmp
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
