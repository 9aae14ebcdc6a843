#!/usr/bin/env bash
# The README's first command: set up, then run the main job on the demo site.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
run .venv/bin/umhctl validate -f blueprints/demo-site.yaml
run .venv/bin/umhctl validate -f blueprints/retrofit-site.yaml
