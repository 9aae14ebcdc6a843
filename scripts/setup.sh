#!/usr/bin/env bash
# Set up umhctl on a fresh Debian 12 machine (as root): system packages, then a virtualenv in .venv
# with umhctl and its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh installs Debian packages: run it as root (sudo bash scripts/setup.sh)" >&2
  exit 1
fi

# git: blueprints live in git; ignition: ignition-validate and the real Ignition binary for render checks
# and simulated devices; openssh-server and sudo: simulated devices are real sshd processes whose core user
# has passwordless sudo, as on Flatcar; nodejs: the tests run the converters' rendered JavaScript (no benthos here);
# postgresql (15): the tests run the TimescaleDB setup Job's SQL and check each database role against a real server.
packages=(git python3 python3-venv python3-pip ignition openssh-server openssh-client sudo iproute2 util-linux nodejs
  postgresql)
# systemd: systemd-analyze verifies the units umhctl renders, as systemd on a device reads them.
packages+=(systemd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,dev]'
# pip byte-compiles a wheel's modules as it installs them; an editable install runs from this tree instead, where
# PYTHONDONTWRITEBYTECODE (set on some machines) would make every start compile them again.
.venv/bin/python -m compileall -q umhctl
echo "umhctl set up: $(.venv/bin/umhctl --version) in .venv"
