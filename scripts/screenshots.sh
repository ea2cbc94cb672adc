#!/usr/bin/env bash
# bash scripts/screenshots.sh [OUT_DIR] [USER]: screenshots of the three web pages (storefront, experiments, model) into docs/screenshots/ (the README
# shows them), taken from the demo's model: run `make demo` first. Starts `scripts/demo.sh storefront`
# (feature server + graph + `smartreco web`), sends some traffic through the graph so the experiments page
# has both arms, drives headless Chromium (Selenium), then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export SMARTRECO_RUNS=${SMARTRECO_RUNS:-$PWD/runs}
export SMARTRECO_DEMO_PORT=${SMARTRECO_DEMO_PORT:-8289}
export SMARTRECO_WEB_PORT=${SMARTRECO_WEB_PORT:-8280}
OUT=${1:-docs/screenshots}
SHOT_USER=${2:-42}  # the storefront shot's user (a known one)
[ -f "$SMARTRECO_RUNS/demo/training-run.json" ] || { echo "no demo run in $SMARTRECO_RUNS/demo: run \`make demo\` first" >&2; exit 1; }
setsid bash scripts/demo.sh storefront > "$SMARTRECO_RUNS/demo/storefront.log" 2>&1 &
PID=$!
trap 'kill -TERM -- "-$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
.venv/bin/python -m tests.browser.screenshots --web "http://127.0.0.1:$SMARTRECO_WEB_PORT" \
  --graph "http://127.0.0.1:$SMARTRECO_DEMO_PORT" --out "$OUT" --user "$SHOT_USER" \
  || { tail -20 "$SMARTRECO_RUNS/demo/storefront.log" >&2; exit 1; }
