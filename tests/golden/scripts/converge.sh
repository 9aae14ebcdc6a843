set -u
umask 077
ok=0
echo '@@umhctl write'
(
set -euo pipefail
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
)
ok=$?
echo "@@umhctl write-status $ok"
if [ "$ok" -eq 0 ]; then
echo '@@umhctl restart'
(
failed=0
systemctl daemon-reload || failed=1
if systemctl restart -- app.service; then echo RESTARTED app.service; else echo FAILED app.service; failed=1; fi
exit $failed
)
echo "@@umhctl restart-status $?"
echo '@@umhctl probe'
(
paths=(/etc/umhctl-demo/app.conf)
if [ -f /var/lib/umhctl/managed.list ]; then mapfile -t -O "${#paths[@]}" paths < /var/lib/umhctl/managed.list; fi
shopt -s nullglob dotglob
# Directories umhctl owns whole (artifact images): everything in them counts, leftovers included. A symlink in
# their place is not followed (it is reported as what it is).
for d in ""; do [ -d "$d" ] && [ ! -L "$d" ] && paths+=("$d"/*); done
declare -A seen=(); unique=()
for p in "${paths[@]}"; do [ -n "${seen[$p]+x}" ] || { seen[$p]=1; unique+=("$p"); }; done
paths=("${unique[@]}")
echo P
((${#paths[@]})) && find "${paths[@]}" -maxdepth 0 -printf '%p	%y	%m	%u	%g	%l
' 2>/dev/null
echo S
files=()
for p in "${paths[@]}"; do [ -f "$p" ] && [ ! -L "$p" ] && files+=("$p"); done
((${#files[@]})) && sha256sum -- "${files[@]}"
echo R
[ -f /var/lib/umhctl/applied.json ] && base64 -w0 < /var/lib/umhctl/applied.json && echo
echo U
units=(app.service)
# One systemctl for all units: it prints one state per unit, in order, unknown units "inactive" (systemd
# src/systemctl/systemctl-is-active.c, check_unit_generic). One line per unit even if it printed fewer.
if ((${#units[@]})); then
  mapfile -t states < <(systemctl is-active -- "${units[@]}" 2>/dev/null)
  for i in "${!units[@]}"; do printf '%s\t%s\n' "${units[i]}" "${states[i]:-}"; done
fi
echo L
L=/var/lib/umhctl/lock.d
if [ -e "$L" ] || [ -L "$L" ]; then
  o=''
  for f in "$L"/token.* "$L"/info; do [ -f "$f" ] && { o=$f; break; }; done
  printf -v now '%(%s)T' -1  # the clock, without a process (bash's own strftime)
  since=$(stat -c %Z -- "${o:-$L}" 2>/dev/null) || since=$now
  who=''
  if [ "${o##*/}" = info ]; then who=$(tail -n +2 -- "$o" | base64 -w0)
  elif [ -n "$o" ]; then who=$(base64 -w0 < "$o"); fi
  name=${o##*/}
  printf '%s\t%s\t%s\n' "${name:--}" "$(( now - since ))" "${who:--}"
fi
echo T
declare -A dirs_seen=([/var/lib/umhctl]=1)
for p in "${paths[@]}"; do d=${p%/*}; dirs_seen[${d:-/}]=1; done
for d in "${!dirs_seen[@]}"; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  for f in "$d"/'.umhctl-'*.tmp; do [ -f "$f" ] || [ -L "$f" ] && printf '%s\n' "$f"; done
done
echo D
if [ -f /var/lib/umhctl/created-dirs.list ]; then
  declare -A counted=()
  while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$d" ] && [ ! -L "$d" ] && [ -z "${counted[$d]+x}" ] || continue
    counted[$d]=1
    inside=("$d"/*)
    printf '%s\t%s\n' "$d" "${#inside[@]}"
  done < /var/lib/umhctl/created-dirs.list
fi
shopt -u nullglob dotglob
echo E
)
fi
echo '@@umhctl unlock'
L=/var/lib/umhctl/lock.d
if [ -e "$L/token.0123abcd" ]; then
  rm -f -- "$L/token.0123abcd" "$L/.new.0123abcd"
  rmdir -- "$L" 2>/dev/null || true
  echo UNLOCKED
else
  echo NOT_HELD
fi
