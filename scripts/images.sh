#!/usr/bin/env bash
# The project's images, before the tests (`make test` runs it after `setup`): `smartreco images build` (idempotent
# by inputs hash: seconds when up to date, ~6 min from scratch on 2 cores), timed as its own step, so the test run
# (scripts/test.sh, the 20-minute rule) times the tests and not the images, as it does not time the venvs.
# The container tests' session fixture runs the same build (then a no-op) for anyone calling pytest directly.
# No container engine: with CI=true that fails here (the container tests could not run); otherwise it says so and
# the container tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."
problem=$(.venv/bin/python -c 'from smartreco.containers.engine import engine_problem; print(engine_problem() or "")')
if [ -n "$problem" ]; then
  if [[ "${CI:-}" =~ ^(1|true|yes|TRUE|True)$ ]]; then
    echo "[images] no container engine under CI: $problem" >&2
    exit 2
  fi
  echo "[images] no container engine ($problem): images not built, the container tests will skip"
  exit 0
fi
start=$(date +%s)
echo "[images] smartreco images build (idempotent by inputs hash)"
.venv/bin/python -m smartreco images build || exit $?
echo "[images] done in $(( $(date +%s) - start )) s"
