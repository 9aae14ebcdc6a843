set -u
umask 077
needle='"desired_fingerprint": "sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"'
answer=''
if [ -f /var/lib/umhctl/applied.json ]; then
  mapfile -t record < /var/lib/umhctl/applied.json
  for line in "${record[@]}"; do [[ $line == *"$needle"* ]] && answer=AT_DESIRED; done
fi
[ -n "$answer" ] || answer=$(
[ -d /var/lib/umhctl ] || { mkdir -p /var/lib/umhctl && chmod 0755 /var/lib/umhctl; }
L=/var/lib/umhctl/lock.d
me=token.0123abcd
holder() { printf '%s' alice; }
took() { holder > "$L/.new.0123abcd" && mv -f -T "$L/.new.0123abcd" "$L/$me"; }
try_take() {
  if [ -e "$L.new.0123abcd" ] || [ -L "$L.new.0123abcd" ]; then rm -rf "$L.new.0123abcd"; fi
  mkdir "$L.new.0123abcd" && holder > "$L.new.0123abcd/$me" || return 2
  if mv -T "$L.new.0123abcd" "$L" 2>/dev/null; then return 0; fi
  rm -rf "$L.new.0123abcd"
  return 1
}
try_take && { echo LOCKED; exit 0; }
[ -e "$L/$me" ] && { echo LOCKED; exit 0; }
now=$(date +%s)
for attempt in 1 2 3; do
  owners=("$L"/token.* "$L"/info)
  current=''
  for o in "${owners[@]}"; do [ -f "$o" ] && { current=$o; break; }; done
  if [ -z "$current" ]; then
    # A lock directory without an owner: an unlock half done, or a take that died. Judged by its own age.
    since=$(stat -c %Z "$L" 2>/dev/null) || { try_take && { echo LOCKED; exit 0; }; continue; }
    age=$(( now - since ))
    if [ "$age" -gt 900 ] || false; then
      rmdir "$L" 2>/dev/null || { mv -T "$L" "$L.stale.0123abcd" 2>/dev/null && rm -rf "$L.stale.0123abcd"; }
    fi
    try_take && { echo LOCKED; exit 0; }
    echo "HELD $age -"
    exit 0
  fi
  since=$(stat -c %Z "$current" 2>/dev/null) || continue
  if [ "${current##*/}" = info ]; then who=$(tail -n +2 "$current" | base64 -w0)
  else who=$(base64 -w0 < "$current"); fi
  age=$(( now - since ))
  if [ "$age" -gt 900 ] || false; then
    if mv -T "$current" "$L/$me" 2>/dev/null; then took; echo "TOOK_OVER $age ${who:--}"; exit 0; fi
    continue  # someone else was quicker: look again at who holds it now
  fi
  echo "HELD $age ${who:--}"
  exit 0
done
echo "BUSY"
)
printf '%s\n' "$answer"
paths=(/etc/hostname)
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
if ((learned)) && [ -d /var/lib/umhctl ]; then memo_write; fi
echo R
# The record is JSON umhctl wrote (ASCII, json.dumps): its lines joined by tabs, which JSON reads as whitespace.
if [ -f /var/lib/umhctl/applied.json ]; then mapfile -t record < /var/lib/umhctl/applied.json; IFS=$'\t'; printf '%s\n' "${record[*]}"; unset IFS; fi
echo U
units=(k3s.service)
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
