#!/usr/bin/env bash
# The README's first command: set up, then run the main job on a local simulated site built from the demo
# blueprint: validate, render, start the simulated devices, fetch the (stand-in) k3s image, plan, apply, plan
# again (no changes), and rebuild one edge device with `reset device`. The simulated site keeps running; `umhctl sim down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

bp=blueprints/demo-site.yaml
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
export PATH="$PWD/.venv/bin:$PATH"
run umhctl validate -f "$bp"
run umhctl render -f "$bp" --out out/demo-render --redact
run umhctl sim up -f "$bp"
run umhctl fetch --sim -f "$bp"   # the simulated site's stand-in k3s image into the local cache, hash verified
run umhctl plan --sim -f "$bp"
run umhctl apply --sim -f "$bp" --yes
run umhctl plan --sim -f "$bp" --detailed-exitcode
run umhctl reset device edge-01 --sim -f "$bp" --yes
printf '\nThe simulated demo site is still running: try `umhctl sim status -f %s`, edit the blueprint, commit,\n' "$bp"
printf 'and `umhctl plan --sim -f %s`. Stop it with `umhctl sim down -f %s`.\n' "$bp" "$bp"
