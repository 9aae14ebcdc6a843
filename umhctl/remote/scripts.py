"""Every bash script umhctl runs on a device, built in one place. Pure functions: inputs in, exact script out.

Each script is pinned by a golden test and run for real by bash against a scratch root in the tests. The device
has no Python (Flatcar ships none), so the scripts use bash and coreutils only.

Rules every script follows:
- `umask 077` first: whatever a script creates is private until it widens a mode on purpose. A temp file that
  will hold a host key or a token is never readable by others, not even for a moment.
- Values are quoted with shlex.quote; file contents travel base64-encoded inside the script (on stdin, never in
  argv), so secrets never show in a process list.
- Names are deterministic given the inputs (temp files carry the run's token), so a script can be pinned.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from umhctl.facts import CREATED_DIRS, LOCK_DIR, MANAGED_LIST, RECORD, STATE_DIR, SUMS
from umhctl.plan.model import Action, Change
from umhctl.render.desired import DesiredState

LOCK_STALE_SECONDS = 15 * 60
HISTORY = f"{STATE_DIR}/history.jsonl"
# Written before the reset reboot and not kept: finding it gone proves the reset really happened.
RESET_PENDING = f"{STATE_DIR}/reset-pending"
# Flatcar's keep-list syntax (flatcar-reset -K): egrep regexes for absolute paths.
HOST_KEYS_KEEP = "/etc/ssh/ssh_host_.*"
TEMP_PREFIX = ".umhctl-"  # every temp file umhctl stages starts with this, in the target's own directory

q = shlex.quote

_HEAD = "set -euo pipefail\numask 077\n"
_HEAD_LENIENT = "set -u\numask 077\n"


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


# -- facts ------------------------------------------------------------------------------------------------------

# A few processes per probe, not a few per path: `find -printf` reports type, mode, owner and link target of
# every path at once, one sha256sum hashes every regular file, one systemctl answers for every unit; directories
# are listed by bash's own globbing (nullglob: nothing for an empty one; dotglob: hidden names too, never . and
# ..). Paths never contain whitespace or control characters (the blueprint refuses them), so they travel as plain
# text fields.
_PROBE = r"""paths=(%(paths)s)
if [ -f %(managed)s ]; then mapfile -t -O "${#paths[@]}" paths < %(managed)s; fi
shopt -s nullglob dotglob
# Directories umhctl owns whole (artifact images): everything in them counts, leftovers included. A symlink in
# their place is not followed (it is reported as what it is).
for d in %(dirs)s; do [ -d "$d" ] && [ ! -L "$d" ] && paths+=("$d"/*); done
declare -A seen=(); unique=()
for p in "${paths[@]}"; do [ -n "${seen[$p]+x}" ] || { seen[$p]=1; unique+=("$p"); }; done
paths=("${unique[@]}")
echo P
t0=${EPOCHREALTIME:-0}  # taken before any path is looked at (the memo's race bound); 0 (no memo) before bash 5
t0=${t0//[!0-9]/}  # microseconds: the decimal point is the locale's
meta=()
((${#paths[@]})) && mapfile -t meta < <(find "${paths[@]}" -maxdepth 0 \
  -printf '%%p\t%%y\t%%m\t%%u\t%%g\t%%l\t%%s:%%i:%%T@:%%C@\n' 2>/dev/null)
# Each path's stamp (size, inode, mtime, ctime) is kept here, not printed.
declare -A stamp=()
for m in "${meta[@]}"; do printf '%%s\n' "${m%%	*}"; stamp[${m%%%%	*}]=${m##*	}; done
echo S
# A file whose stamp is the one the memo holds is not read again: its content is the one hashed then (_HASH).
declare -A memo=()
if [ -f %(sums)s ]; then while IFS='	' read -r s st p; do memo[$p]=$s'	'$st; done < %(sums)s; fi
files=() known=()
for p in "${paths[@]}"; do
  [ -f "$p" ] && [ ! -L "$p" ] || continue
  m=${memo[$p]-}
  if [ -n "$m" ] && [ "${m#*	}" = "${stamp[$p]-}" ]; then known+=("${m%%%%	*}  $p"); else files+=("$p"); fi
done
((${#known[@]})) && printf '%%s\n' "${known[@]}"
%(hash)secho R
# The record is JSON umhctl wrote (ASCII, json.dumps): its lines joined by tabs, which JSON reads as whitespace.
if [ -f %(record)s ]; then mapfile -t record < %(record)s; IFS=$'\t'; printf '%%s\n' "${record[*]}"; unset IFS; fi
echo U
units=(%(units)s)
# One systemctl for all units: it prints one state per unit, in order, unknown units "inactive" (systemd
# src/systemctl/systemctl-is-active.c, check_unit_generic). One line per unit even if it printed fewer.
if ((${#units[@]})); then
  mapfile -t states < <(systemctl is-active -- "${units[@]}" 2>/dev/null)
  for i in "${!units[@]}"; do printf '%%s\t%%s\n' "${units[i]}" "${states[i]:-}"; done
fi
%(lockfacts)s%(leftovers)s%(created)s%(extra)sshopt -u nullglob dotglob
echo E
"""

# Section S hashes the files the memo does not vouch for, straight to the output; then the memo (SUMS) learns
# them: one line per file, its sha256, its stamp and its path. A file enters it only if its ctime lies at least
# 2 s before the probe began (t0): any later write to it sets a ctime after that, so a stamp found equal later
# means the same content. 2 s: the kernel stamps with a clock that lags by up to a tick, and a filesystem may keep
# whole seconds only (ext4 with 128-byte inodes, ...). Only a clock set back by hand could fake a stamp; git's
# index and rsync's quick check trust less.
_HASH = r"""sums=()
((${#files[@]})) && mapfile -t sums < <(sha256sum -- "${files[@]}")
((${#sums[@]})) && printf '%%s\n' "${sums[@]}"
limit=$(( t0 - 2000000 )) entries=() learned=0
memo_line() {  # the memo's line for one "sha256  path" line, when its file has kept its stamp for 2 s
  local p=${1#*  } st c cf=000000
  st=${stamp[$p]-}
  [ -n "$st" ] || return 1
  c=${st##*:}
  [[ $c == *.* ]] && { cf=${c#*.}000000; c=${c%%%%.*}; }
  (( c * 1000000 + 10#${cf:0:6} < limit )) || return 1
  entries+=("${1%%%%  *}	$st	$p")
}
for k in "${sums[@]}"; do memo_line "$k" && learned=1; done
%(write)s"""

# Who writes the memo. The probe that verifies an apply, under its lock, rewrites it whole (files apply no longer
# manages leave it), and removes what a killed probe left. Any other probe (plan, status) writes it only when it
# hashed a file it can vouch for, typically one an apply wrote less than 2 s before its verify probe (the k3s
# image it uploaded): else every later plan would read that file in full again. git status refreshes its index
# the same way. Each writer renames its own temp file over the memo, so concurrent probes never mix their lines,
# and each line is true on its own (its stamp was taken before the file was hashed); a writer that fails (no
# /var/lib/umhctl yet, a full disk) leaves the memo as it was.
_MEMO_REWRITE = r"""rm -f -- %(sums)s.*.new
memo_write
"""
_MEMO_LEARN = r"""if ((learned)) && [ -d %(state)s ]; then memo_write; fi
"""
_MEMO_WRITE = r"""memo_write() {  # the files the memo vouched for, and those just hashed
  local tmp=%(sums)s.$$.new k
  for k in "${known[@]}"; do memo_line "$k"; done
  for e in "${entries[@]}"; do printf '%%s\n' "$e"; done 2>/dev/null > "$tmp" \
    && mv -f -T -- "$tmp" %(sums)s 2>/dev/null || rm -f -- "$tmp"
}
"""

# Section D: the directories apply created that still exist, each with how many entries it holds.
_PROBE_CREATED = r"""echo D
if [ -f %(created)s ]; then
  declare -A counted=()
  while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$d" ] && [ ! -L "$d" ] && [ -z "${counted[$d]+x}" ] || continue
    counted[$d]=1
    inside=("$d"/*)
    printf '%%s\t%%s\n' "$d" "${#inside[@]}"
  done < %(created)s
fi
"""

# Section L: the device lock when one is there (see _LOCK): owner file, its age, the holder (base64).
_PROBE_LOCK = r"""echo L
L=%(lock)s
o=''
if [ -e "$L" ] || [ -L "$L" ]; then
  for f in "$L"/token.* "$L"/info; do [ -f "$f" ] && { o=$f; break; }; done
fi
if [ -n "$o" ] && [ "${o##*/}" = %(mine)s ]; then
  # This run's own lock (the planner passes over it): its age and holder are not asked.
  printf '%%s\t0\t-\n' "${o##*/}"
elif [ -e "$L" ] || [ -L "$L" ]; then
  printf -v now '%%(%%s)T' -1  # the clock, without a process (bash's own strftime)
  since=$(stat -c %%Z -- "${o:-$L}" 2>/dev/null) || since=$now
  who=''
  if [ "${o##*/}" = info ]; then who=$(tail -n +2 -- "$o" | base64 -w0)
  elif [ -n "$o" ]; then who=$(base64 -w0 < "$o"); fi
  name=${o##*/}
  printf '%%s\t%%s\t%%s\n' "${name:--}" "$(( now - since ))" "${who:--}"
fi
"""

# Section T: umhctl's own temp files (TEMP_PREFIX...tmp) in the directories of the managed paths and in its state
# directory: what an interrupted apply leaves. The exact name shape is checked again by the parser (TEMP_NAME).
_PROBE_LEFTOVERS = r"""echo T
declare -A dirs_seen=([%(state)s]=1)
for p in "${paths[@]}"; do d=${p%%/*}; dirs_seen[${d:-/}]=1; done
for d in "${!dirs_seen[@]}"; do
  [ -d "$d" ] && [ ! -L "$d" ] || continue
  for f in "$d"/'%(prefix)s'*.tmp; do [ -f "$f" ] || [ -L "$f" ] && printf '%%s\n' "$f"; done
done
"""

# `umhctl status` asks a little more in the same round trip (section X): the OS version (os-release(5) VERSION_ID,
# "mostly numeric", which Flatcar sets to its release, e.g. 4152.2.3; VERSION where it is missing),
# each k3s unit's state and whether its main process really exists (systemctl(1) `show -p MainPID --value`; a
# unit can claim active with no process, as in the simulated site), and the failed units
# (`list-units --state=failed --no-legend --plain`: one unit per line, its name first).
_STATUS = r"""echo X
( . /etc/os-release 2>/dev/null; printf 'version\t%%s\n' "${VERSION_ID:-${VERSION:-}}" )
for u in %(k3s)s; do
  state=$(systemctl is-active -- "$u" 2>/dev/null)
  pid=$(systemctl show -p MainPID --value -- "$u" 2>/dev/null)
  running=no
  [ -n "$pid" ] && [ "$pid" != 0 ] && [ -d "/proc/$pid" ] && running=yes
  printf 'k3s\t%%s\t%%s\t%%s\n' "$u" "${state:-unknown}" "$running"
done
systemctl list-units --state=failed --no-legend --plain 2>/dev/null | while read -r unit _; do
  printf 'failed\t%%s\n' "$unit"
done
"""


def _hash(memoize: bool) -> str:
    keep = (_MEMO_REWRITE if memoize else _MEMO_LEARN) % {"sums": SUMS, "state": STATE_DIR}
    return _HASH % {"write": _MEMO_WRITE % {"sums": SUMS} + keep}


def probe(
    paths: Sequence[str], units: Sequence[str], dirs: Sequence[str] = (), *, status_units: Sequence[str] | None = None
) -> str:
    """Print the facts of `paths`, of what the last apply managed, and of everything in `dirs`: sections P, S,
    R, U, the lock (L), umhctl's leftover temp files (T), the directories it created (D), E. With
    `status_units` (the k3s units), also section X for `umhctl status`, before E."""
    return _HEAD_LENIENT + _probe_body(paths, units, dirs, status_units)


def _probe_body(
    paths: Sequence[str],
    units: Sequence[str],
    dirs: Sequence[str],
    status_units: Sequence[str] | None = None,
    token: str | None = None,
    memoize: bool = False,
) -> str:
    """`token`: the run whose lock the probe runs under (its own lock is reported without asking who holds it).
    `memoize`: rewrite the memo of file hashes whole (only under the lock, after a write); other probes only add
    what they learned."""
    extra = "" if status_units is None else _STATUS % {"k3s": " ".join(q(u) for u in status_units) or '""'}
    return _PROBE % {
        "sums": SUMS,
        "hash": _hash(memoize),
        "paths": " ".join(q(p) for p in paths),
        "dirs": " ".join(q(d) for d in dirs) or '""',
        "managed": MANAGED_LIST,
        "record": RECORD,
        "units": " ".join(q(u) for u in units),
        "lockfacts": _PROBE_LOCK % {"lock": LOCK_DIR, "mine": q(f"token.{token}" if token else "-")},
        "leftovers": _PROBE_LEFTOVERS % {"state": STATE_DIR, "prefix": TEMP_PREFIX},
        "created": _PROBE_CREATED % {"created": CREATED_DIRS},
        "extra": extra,
    }


# -- the device lock --------------------------------------------------------------------------------------------

# The lock is the directory lock.d holding one file `token.<TOKEN>`: the token names the run that holds it,
# the content says who that is. Taking it is one rename of a prepared directory (atomic; it fails while a lock
# is there). Taking over a stale lock is one rename of exactly the token file judged stale to our own token:
# it fails if that lock changed hands since it was judged, so two takers can never both win. Staleness is the
# token file's ctime, which that rename refreshes, so a lock just taken over never looks stale to a third.
# Unlock removes only the run's own token file, then the directory only if it is empty.
_LOCK = r"""[ -d %(state)s ] || { mkdir -p %(state)s && chmod 0755 %(state)s; }
L=%(lock)s
me=token.%(token)s
holder() { printf '%%s' %(holder)s; }
took() { holder > "$L/.new.%(token)s" && mv -f -T "$L/.new.%(token)s" "$L/$me"; }
try_take() {
  if [ -e "$L.new.%(token)s" ] || [ -L "$L.new.%(token)s" ]; then rm -rf "$L.new.%(token)s"; fi
  mkdir "$L.new.%(token)s" && holder > "$L.new.%(token)s/$me" || return 2
  if mv -T "$L.new.%(token)s" "$L" 2>/dev/null; then return 0; fi
  rm -rf "$L.new.%(token)s"
  return 1
}
try_take && { echo LOCKED; exit 0; }
[ -e "$L/$me" ] && { echo LOCKED; exit 0; }
now=$(date +%%s)
for attempt in 1 2 3; do
  owners=("$L"/token.* "$L"/info)
  current=''
  for o in "${owners[@]}"; do [ -f "$o" ] && { current=$o; break; }; done
  if [ -z "$current" ]; then
    # A lock directory without an owner: an unlock half done, or a take that died. Judged by its own age.
    since=$(stat -c %%Z "$L" 2>/dev/null) || { try_take && { echo LOCKED; exit 0; }; continue; }
    age=$(( now - since ))
    if [ "$age" -gt %(stale)d ] || %(force)s; then
      rmdir "$L" 2>/dev/null || { mv -T "$L" "$L.stale.%(token)s" 2>/dev/null && rm -rf "$L.stale.%(token)s"; }
    fi
    try_take && { echo LOCKED; exit 0; }
    echo "HELD $age -"
    exit 0
  fi
  since=$(stat -c %%Z "$current" 2>/dev/null) || continue
  if [ "${current##*/}" = info ]; then who=$(tail -n +2 "$current" | base64 -w0)
  else who=$(base64 -w0 < "$current"); fi
  age=$(( now - since ))
  if [ "$age" -gt %(stale)d ] || %(force)s; then
    if mv -T "$current" "$L/$me" 2>/dev/null; then took; echo "TOOK_OVER $age ${who:--}"; exit 0; fi
    continue  # someone else was quicker: look again at who holds it now
  fi
  echo "HELD $age ${who:--}"
  exit 0
done
echo "BUSY"
"""


def lock(token: str, holder: str, *, force: bool = False) -> str:
    """Take the device lock for the run `token`. Prints one of:
    `LOCKED`; `TOOK_OVER <age> <holder-b64>` (a stale lock, or with force any lock, was taken over);
    `HELD <age> <holder-b64 or ->`; `BUSY` (the lock changed hands three times while we looked)."""
    return _HEAD_LENIENT + _lock_body(token, holder, force)


def _lock_body(token: str, holder: str, force: bool) -> str:
    return _LOCK % {
        "state": STATE_DIR,
        "lock": LOCK_DIR,
        "token": token,
        "holder": q(holder),
        "stale": LOCK_STALE_SECONDS,
        "force": "true" if force else "false",
    }


def _lock_into_answer(token: str, holder: str, force: bool) -> str:
    """lock()'s answer into $answer: in a command substitution, the lock script's `exit` ends only that
    subshell."""
    return f"answer=$(\n{_lock_body(token, holder, force)})\n"


def lock_and_probe(
    token: str, holder: str, paths: Sequence[str], units: Sequence[str], dirs: Sequence[str], *, force: bool = False
) -> str:
    """lock(), and once the lock is this run's (LOCKED or TOOK_OVER), the probe's facts in the same round trip:
    facts read under the lock, which nothing can change until it is released. The lock's answer is the first
    line; the probe's sections follow it only when the lock was taken."""
    return (
        _HEAD_LENIENT
        + _lock_into_answer(token, holder, force)
        + "printf '%s\\n' \"$answer\"\n"
        + "case $answer in LOCKED | TOOK_OVER*) ;; *) exit 0 ;; esac\n"
        + _probe_body(paths, units, dirs, token=token)
    )


AT_DESIRED = "AT_DESIRED"


def probe_locking_if_behind(
    token: str, holder: str, fingerprint: str, paths: Sequence[str], units: Sequence[str], dirs: Sequence[str]
) -> str:
    """probe(), taking the device lock first (as lock()) unless the device's applied-state record names
    `fingerprint`, the state it is to have: a device behind it is about to be changed. The first line is the
    lock's answer, or AT_DESIRED when no lock was asked for; the probe's sections follow in every case (also
    when another run holds the lock: its plan can still be shown)."""
    # The record is written by json.dumps(indent=2, sort_keys=True) (converge.Phases.record): one key per line.
    needle = f'"desired_fingerprint": {json.dumps(fingerprint)}'
    return (
        _HEAD_LENIENT
        + f"needle={q(needle)}\nanswer=''\n"
        + f"if [ -f {RECORD} ]; then\n"
        + f"  mapfile -t record < {RECORD}\n"
        + f'  for line in "${{record[@]}}"; do [[ $line == *"$needle"* ]] && answer={AT_DESIRED}; done\n'
        + "fi\n"
        + '[ -n "$answer" ] || '
        + _lock_into_answer(token, holder, False)
        + "printf '%s\\n' \"$answer\"\n"
        + _probe_body(paths, units, dirs, token=token)
    )


def unlock(token: str) -> str:
    """Release the lock only if this run holds it. Prints `UNLOCKED` or `NOT_HELD`."""
    return _HEAD_LENIENT + _unlock_body(token)


def _unlock_body(token: str) -> str:
    return (
        f"L={LOCK_DIR}\n"
        f'if [ -e "$L/token.{token}" ]; then\n'
        f'  rm -f -- "$L/token.{token}" "$L/.new.{token}"\n'
        '  rmdir -- "$L" 2>/dev/null || true\n'
        "  echo UNLOCKED\n"
        "else\n"
        "  echo NOT_HELD\n"
        "fi\n"
    )


# -- writing a plan's changes -----------------------------------------------------------------------------------

# Directories umhctl has to create get 0755 each (mkdir -p would make them 0700 under umask 077).
# ${1%/*} ("/" for a top-level directory) is dirname(1) for the absolute, normalised paths these get, without
# starting a process for each.
_MKDIRS = r"""mkdirs() { [ -d "$1" ] && return 0; local up=${1%/*}; mkdirs "${up:-/}"; mkdir -m 0755 -- "$1"; }
"""
# The same for a managed path's directories, each noted as umhctl's when it is made (CREATED_DIRS): only those are
# ever removed again. Killed between mkdir and the note, a directory stays unnoted: kept, never wrongly removed.
_NEWDIRS = (
    r"""newdirs() {
  [ -d "$1" ] && return 0; local up=${1%/*}; newdirs "${up:-/}"; mkdir -m 0755 -- "$1"; printf '%s\n' "$1" >> """
    + CREATED_DIRS
    + "\n}\n"
)


def _temp(token: str, index: int, path: str) -> str:
    directory = path.rsplit("/", 1)[0] or "/"
    return f"{directory.rstrip('/')}/{TEMP_PREFIX}{token}-{index}.tmp"


@dataclass(frozen=True)
class _Staged:
    tmp: str
    mode: int
    owner: str
    group: str


def _stage_file(
    token: str, index: int, path: str, content: bytes, mode: int, owner: str, group: str, staged: list[_Staged]
) -> list[str]:
    """Write the content to a temp file next to `path`; its owner, mode and fsync come with the others'
    (`_settle`)."""
    tmp = _temp(token, index, path)
    staged.append(_Staged(tmp, mode, owner, group))
    return [
        f"newdirs {q(path.rsplit('/', 1)[0] or '/')}",
        f"t={q(tmp)}",
        'staged+=("$t")',
        # Created 0600 (umask 077) and owned by root until chown/chmod give it its real owner and mode.
        _content_to(content, '"$t"'),
        f'renames+=("$t" {q(path)})',
    ]


_PRINTF_LIMIT = 64 * 1024


def _content_to(content: bytes, target: str) -> str:
    """The shell line that writes `content` to `target`: text (UTF-8, no NUL) up to _PRINTF_LIMIT through bash's
    own printf, quoted (no process); anything else decoded by base64 from a here-document."""
    if len(content) <= _PRINTF_LIMIT and b"\0" not in content:
        try:
            return f"printf '%s' {q(content.decode('utf-8'))} > {target}"
        except UnicodeDecodeError:
            pass
    data = base64.encodebytes(content).decode()
    return f"base64 -d > {target} <<'UMHCTL_DATA'\n{data}UMHCTL_DATA"


def _settle(staged: Sequence[_Staged]) -> list[str]:
    """Give every staged file its owner, then its mode (chown may clear set-id bits), then fsync them all before
    anything is renamed: one command per owner, per mode and one sync, not three per file."""
    if not staged:
        return []
    owners: dict[str, list[str]] = {}
    modes: dict[int, list[str]] = {}
    for s in staged:
        if (s.owner, s.group) != ("root", "root"):  # root's already: the script runs as root
            owners.setdefault(f"{q(s.owner)}:{q(s.group)}", []).append(q(s.tmp))
        modes.setdefault(s.mode, []).append(q(s.tmp))
    return [
        *(f"chown -- {owner} {' '.join(tmps)}" for owner, tmps in owners.items()),
        *(f"chmod -- {mode:04o} {' '.join(tmps)}" for mode, tmps in modes.items()),
        "sync -- " + " ".join(q(s.tmp) for s in staged),
    ]


def _stage_link(token: str, index: int, path: str, target: str) -> list[str]:
    tmp = _temp(token, index, path)
    return [
        f"newdirs {q(path.rsplit('/', 1)[0] or '/')}",
        f"t={q(tmp)}",
        'staged+=("$t")',
        f'ln -sfn -- {q(target)} "$t"',
        f'renames+=("$t" {q(path)})',
    ]


def write(
    changes: Sequence[Change], desired: DesiredState, record: dict[str, Any], history: dict[str, Any], token: str
) -> str:
    """Make exactly these changes, then record what umhctl now manages.

    Every new file and link is staged as a temp file in its target directory (owner, mode, fsync done there);
    only when all are staged are they renamed into place, each rename atomic, and the directories synced. The
    record goes last, so it never claims a state the device does not have. Prints `RENAMING` when it starts
    changing the device and `APPLIED` when it is done.

    Apply sends this as the first part of converge(); on its own it is the part a test runs alone.
    """
    return _HEAD + _write_body(changes, desired, record, history, token)


def _write_body(
    changes: Sequence[Change], desired: DesiredState, record: dict[str, Any], history: dict[str, Any], token: str
) -> str:
    files = {f.path: f for f in desired.files}
    links = {link.path: link for link in desired.links}
    written = {c.target for c in changes if c.kind in ("file", "link") and c.action in _WRITES}
    # Directories that go: those umhctl created and the plan found left empty, the deepest first (as planned);
    # a directory standing where a file or link belongs goes just before that is renamed into its place.
    dirs_going = [c.target for c in changes if c.kind == "directory" and c.action is Action.DELETE]
    cleared = [c.target for c in changes if c.action is Action.REPLACE and _is_directory(c)]
    dirs_going += cleared
    file_deletes = [c.target for c in changes if c.kind in ("file", "link") and c.action is Action.DELETE]
    # A file or link of umhctl's standing where a directory of a new path belongs (file→dir) goes before staging.
    blocking = [p for p in file_deletes if any(w.startswith(p + "/") for w in written)]
    under_cleared = [p for p in file_deletes if any(p.startswith(d + "/") for d in cleared)]
    later = [p for p in file_deletes if p not in blocking and p not in under_cleared]
    lines = [
        _MKDIRS.rstrip("\n"),
        _NEWDIRS.rstrip("\n"),
        "staged=(); renames=()",
        # Until everything is staged, a failure removes the temp files and leaves the device unchanged.
        'cleanup() { for t in "${staged[@]}"; do rm -f -- "$t"; done; }',
        "trap cleanup EXIT",
        f"mkdirs {STATE_DIR}",
        f"chmod 0755 {STATE_DIR}",
        # An interrupted apply's temp files go first: they are nobody's files, and they may be what filled the disk.
        *(f"rm -f -- {q(c.target)}" for c in changes if c.kind == "leftover" and c.action is Action.DELETE),
        *(f"rm -f -- {q(p)}" for p in blocking),
    ]
    metadata_only: list[str] = []
    staged: list[_Staged] = []
    touched: set[str] = set(file_deletes) | set(dirs_going)
    for index, change in enumerate(changes):
        writes = change.action in _WRITES
        if change.kind == "file" and writes:
            f = files[change.target]
            # before and after carry the same kind of digest (both sealed for a secret-bearing file).
            content_changes = change.before is None or change.before.get("sha256") != (change.after or {}).get("sha256")
            if content_changes or change.action is Action.REPLACE:
                lines += _stage_file(token, index, f.path, f.content, f.mode, f.owner, f.group, staged)
            else:
                metadata_only += [
                    f"chown -- {q(f.owner)}:{q(f.group)} {q(f.path)}",
                    f"chmod -- {f.mode:04o} {q(f.path)}",
                ]
            touched.add(f.path)
        elif change.kind == "link" and writes:
            link = links[change.target]
            lines += _stage_link(token, index, link.path, link.target)
            touched.add(link.path)
    managed = "".join(f"{p}\n" for p in sorted(record["files"]) + sorted(record["links"]))
    record_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    # The record holds the hashes of secret-bearing files: root only, like the files themselves.
    for index, (path, text, mode) in enumerate(
        ((MANAGED_LIST, managed, 0o644), (RECORD, record_text, 0o600)), start=len(changes)
    ):
        lines += _stage_file(token, index, path, text.encode(), mode, "root", "root", staged)
    lines += _settle(staged)
    directories = sorted({p.rsplit("/", 1)[0] or "/" for p in touched} | {STATE_DIR})
    rename = 'mv -f -T -- "${renames[i]}" "${renames[i+1]}"'
    lines += [
        "echo RENAMING",
        # A file or symlink standing where the other belongs is replaced by the rename itself (atomic); a directory
        # (one umhctl created, emptied here: the plan refuses any other) is removed just before.
        *(f"rm -f -- {q(p)}" for p in under_cleared),
        *(f"rmdir -- {q(d)}" for d in dirs_going if any(d == c or d.startswith(c + "/") for c in cleared)),
        f"for ((i = 0; i < ${{#renames[@]}} - 4; i += 2)); do {rename}; done",
        *metadata_only,
        *(f"rm -f -- {q(p)}" for p in later),
        # rmdir removes only an empty directory: whatever someone put there since the plan keeps it.
        *(
            f"rmdir -- {q(d)} 2>/dev/null || echo {q(f'WARNING {d} was kept: it is not empty')}"
            for d in dirs_going
            if not any(d == c or d.startswith(c + "/") for c in cleared)
        ),
        *_forget_dirs(token, len(changes) + 2, dirs_going),
        f"for ((i = ${{#renames[@]}} - 4; i < ${{#renames[@]}}; i += 2)); do {rename}; done",
        "staged=()",
        # A rename is durable only once its directory is: sync them (GNU sync fsyncs a directory it is given).
        "sync -- "
        + " ".join(q(d) for d in directories if d not in dirs_going)
        + " || echo 'WARNING directories not synced'",
        f"printf '%s\\n' {q(json.dumps(history, sort_keys=True))} >> {HISTORY}",
        "echo APPLIED",
    ]
    return "\n".join(lines) + "\n"


_WRITES = (Action.CREATE, Action.UPDATE, Action.REPLACE)


def _is_directory(change: Change) -> bool:
    return (change.before or {}).get("type") == "directory"


def _forget_dirs(token: str, index: int, removed: Sequence[str]) -> list[str]:
    """Drop the removed directories from CREATED_DIRS (rewritten through a temp file and a rename)."""
    if not removed:
        return []
    patterns = " ".join(f"-e {q(d)}" for d in removed)
    tmp = q(_temp(token, index, CREATED_DIRS))
    return [
        f"{{ grep -vxF -e '' {patterns} {CREATED_DIRS} || true; }} > {tmp}",
        f"mv -f -T -- {tmp} {CREATED_DIRS}",
    ]


# -- units ------------------------------------------------------------------------------------------------------


REFRESH_SSH_KEYS = "update-ssh-keys:"  # + user: regenerate ~USER/.ssh/authorized_keys from authorized_keys.d


def refresh_command(target: str) -> str:
    """The command of a restart target that is not a unit (see render.system.update_ssh_keys)."""
    user = target.removeprefix(REFRESH_SSH_KEYS)
    if not target.startswith(REFRESH_SSH_KEYS) or not re.fullmatch(r"[a-z_][a-z0-9_-]*", user):
        raise ValueError(f"unknown refresh {target!r}")
    return f"update-ssh-keys -u {q(user)}"


def restart(units: Sequence[str], daemon_reload: bool) -> str:
    """Reload systemd and restart units in order (and run refreshes such as update-ssh-keys); report each
    result instead of stopping at the first. Apply sends this as the second part of converge()."""
    return _HEAD_LENIENT + _restart_body(units, daemon_reload)


def _restart_body(units: Sequence[str], daemon_reload: bool) -> str:
    lines = ["failed=0"]
    if daemon_reload:
        lines.append("systemctl daemon-reload || failed=1")
    for unit in units:
        command = refresh_command(unit) if unit.startswith(REFRESH_SSH_KEYS) else f"systemctl restart -- {q(unit)}"
        lines.append(f"if {command}; then echo RESTARTED {q(unit)}; else echo FAILED {q(unit)}; failed=1; fi")
    lines.append("exit $failed")
    return "\n".join(lines) + "\n"


# -- one round trip for a whole change --------------------------------------------------------------------------

MARK = "@@umhctl "  # section markers of converge(); no line of the parts can start with it


def converge(
    token: str,
    probe: tuple[Sequence[str], Sequence[str], Sequence[str]],
    write: tuple[Sequence[Change], DesiredState, dict[str, Any], dict[str, Any]] | None = None,
    restart: tuple[Sequence[str], bool] | None = None,
    *,
    unlock: bool = True,
) -> str:
    """write(), then restart() only if the write succeeded, then the probe that verifies the result, then
    unlock(): what apply does under its lock, in one round trip instead of four. Each part runs as before in its
    own subshell (the write's `set -e` and its clean-up trap stay its own) and its output follows a marker line
    `@@umhctl <part>`; `@@umhctl <part>-status N` gives a part's exit status. `unlock` False keeps the lock (apply
    still has old images to remove after verifying)."""
    lines = [_HEAD_LENIENT.rstrip("\n"), "ok=0"]
    if write is not None:
        lines += [
            f"echo '{MARK}write'",
            f"(\nset -euo pipefail\n{_write_body(*write, token)})",
            "ok=$?",
            f'echo "{MARK}write-status $ok"',
        ]
    lines.append('if [ "$ok" -eq 0 ]; then')
    if restart is not None:
        lines += [f"echo '{MARK}restart'", f"(\n{_restart_body(*restart)})", f'echo "{MARK}restart-status $?"']
    lines += [f"echo '{MARK}probe'", f"(\n{_probe_body(*probe, token=token, memoize=True)})", "fi"]
    if unlock:
        lines += [f"echo '{MARK}unlock'", _unlock_body(token).rstrip("\n")]
    return "\n".join(lines) + "\n"


# -- artifacts --------------------------------------------------------------------------------------------------


def upload(path: str, sha256: str, token: str, index: int) -> str:
    """Receive an artifact on stdin into a temp file next to `path`, check its sha256 there, and only then rename
    it into place. Prints `UPLOADED`, or `MISMATCH <actual sha256>` (exit 3) and keeps nothing. Runs from argv
    (its stdin is the data): paths and a hash only."""
    directory = path.rsplit("/", 1)[0] or "/"
    tmp = _temp(token, index, path)
    return (
        _HEAD
        + "\n".join(
            [
                _MKDIRS.rstrip("\n"),
                f"mkdirs {q(directory)}",
                f"t={q(tmp)}",
                "trap 'rm -f -- \"$t\"' EXIT",
                'cat > "$t"',
                'sum=$(sha256sum -- "$t" | cut -d " " -f 1)',
                f'if [ "$sum" != {q(sha256)} ]; then echo "MISMATCH $sum"; exit 3; fi',
                'chmod 0644 -- "$t"',
                'sync -- "$t"',
                f'mv -f -T -- "$t" {q(path)}',
                "trap - EXIT",
                f"sync -- {q(directory)} || echo 'WARNING directory not synced'",
                "echo UPLOADED",
            ]
        )
        + "\n"
    )


def prune(paths: Sequence[str]) -> str:
    """Remove artifacts no longer in use (only once the new ones are: apply runs this after verifying)."""
    return _HEAD + f"rm -f -- {' '.join(q(p) for p in paths)}\necho PRUNED\n"


# -- reset ------------------------------------------------------------------------------------------------------


def stage_reset(ignition: str, keep: Sequence[str]) -> str:
    """Stage `flatcar-reset` with this Ignition config and keep-list (flatcar/init bin/flatcar-reset: -F copies
    the config to /oem/config.ign, -K keeps matching paths, --keep-machine-id pins the machine id). Like the real
    tool it does not reboot. Prints `STAGED`."""
    return _HEAD + (
        "tmp=$(mktemp /var/tmp/umhctl-reset.XXXXXX)\n"
        "trap 'rm -f \"$tmp\"' EXIT\n"
        f"printf '%s' {q(_b64(ignition))} | base64 -d > \"$tmp\"\n"
        f'flatcar-reset --keep-machine-id --ignition-file "$tmp" --keep-paths {" ".join(q(k) for k in keep)}\n'
        f"mkdir -p {STATE_DIR}\n"
        f"date +%s > {RESET_PENDING}\n"
        "echo STAGED\n"
    )


def reboot() -> str:
    return _HEAD_LENIENT + "systemctl reboot\n"


def reset_state() -> str:
    """After a reset reboot: `PENDING` while the old system still runs, else `DONE <hostname>`."""
    return _HEAD_LENIENT + f'if [ -e {RESET_PENDING} ]; then echo PENDING; else echo "DONE $(hostname)"; fi\n'


def backup(paths: Sequence[str]) -> str:
    """A gzipped tar of the existing `paths` on stdout: nothing is written on the device's (maybe full) disk."""
    listing = " ".join(q(p.lstrip("/")) for p in paths)
    return _HEAD_LENIENT + (
        f'cd / && for p in {listing}; do [ -e "$p" ] && printf \'%s\\0\' "$p"; done | tar -czf - --null -T -\n'
    )
