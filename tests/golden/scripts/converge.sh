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
t0=${EPOCHREALTIME:-0}  # taken before any path is looked at (the memo's race bound); 0 (no memo) before bash 5
t0=${t0//[!0-9]/}  # microseconds: the decimal point is the locale's
meta=()
((${#paths[@]})) && mapfile -t meta < <(find "${paths[@]}" -maxdepth 0 \
  -printf '%p\t%y\t%m\t%u\t%g\t%l\t%s:%i:%T@:%C@\n' 2>/dev/null)
# Each path's stamp (size, inode, mtime, ctime) is kept here, not printed.
declare -A stamp=()
for m in "${meta[@]}"; do printf '%s\n' "${m%	*}"; stamp[${m%%	*}]=${m##*	}; done
echo S
# A file whose stamp is the one the memo holds is not read again: its content is the one hashed then (_HASH).
declare -A memo=()
if [ -f /var/lib/umhctl/sums ]; then while IFS='	' read -r s st p; do memo[$p]=$s'	'$st; done < /var/lib/umhctl/sums; fi
files=() known=()
for p in "${paths[@]}"; do
  [ -f "$p" ] && [ ! -L "$p" ] || continue
  m=${memo[$p]-}
  if [ -n "$m" ] && [ "${m#*	}" = "${stamp[$p]-}" ]; then known+=("${m%%	*}  $p"); else files+=("$p"); fi
done
((${#known[@]})) && printf '%s\n' "${known[@]}"
sums=()
((${#files[@]})) && mapfile -t sums < <(sha256sum -- "${files[@]}")
((${#sums[@]})) && printf '%s\n' "${sums[@]}"
limit=$(( t0 - 2000000 )) entries=() learned=0
memo_line() {  # the memo's line for one "sha256  path" line, when its file has kept its stamp for 2 s
  local p=${1#*  } st c cf=000000
  st=${stamp[$p]-}
  [ -n "$st" ] || return 1
  c=${st##*:}
  [[ $c == *.* ]] && { cf=${c#*.}000000; c=${c%%.*}; }
  (( c * 1000000 + 10#${cf:0:6} < limit )) || return 1
  entries+=("${1%%  *}	$st	$p")
}
for k in "${sums[@]}"; do memo_line "$k" && learned=1; done
memo_write() {  # the files the memo vouched for, and those just hashed
  local tmp=/var/lib/umhctl/sums.$$.new k
  for k in "${known[@]}"; do memo_line "$k"; done
  for e in "${entries[@]}"; do printf '%s\n' "$e"; done 2>/dev/null > "$tmp" \
    && mv -f -T -- "$tmp" /var/lib/umhctl/sums 2>/dev/null || rm -f -- "$tmp"
}
rm -f -- /var/lib/umhctl/sums.*.new
memo_write
echo R
# The record is JSON umhctl wrote (ASCII, json.dumps): its lines joined by tabs, which JSON reads as whitespace.
if [ -f /var/lib/umhctl/applied.json ]; then mapfile -t record < /var/lib/umhctl/applied.json; IFS=$'\t'; printf '%s\n' "${record[*]}"; unset IFS; fi
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
o=''
if [ -e "$L" ] || [ -L "$L" ]; then
  for f in "$L"/token.* "$L"/info; do [ -f "$f" ] && { o=$f; break; }; done
fi
if [ -n "$o" ] && [ "${o##*/}" = token.0123abcd ]; then
  # This run's own lock (the planner passes over it): its age and holder are not asked.
  printf '%s\t0\t-\n' "${o##*/}"
elif [ -e "$L" ] || [ -L "$L" ]; then
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
