set -u
umask 077
L=/var/lib/umhctl/lock.d
if [ -e "$L/token.0123abcd" ]; then
  rm -f -- "$L/token.0123abcd" "$L/.new.0123abcd"
  rmdir -- "$L" 2>/dev/null || true
  echo UNLOCKED
else
  echo NOT_HELD
fi
