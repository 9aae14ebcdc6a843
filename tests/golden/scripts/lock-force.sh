set -u
umask 077
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
    if [ "$age" -gt 900 ] || true; then
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
  if [ "$age" -gt 900 ] || true; then
    if mv -T "$current" "$L/$me" 2>/dev/null; then took; echo "TOOK_OVER $age ${who:--}"; exit 0; fi
    continue  # someone else was quicker: look again at who holds it now
  fi
  echo "HELD $age ${who:--}"
  exit 0
done
echo "BUSY"
