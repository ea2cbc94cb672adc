#!/usr/bin/env bash
# The default test run: the pipeline venv runs tests/ except serving-only tests, the serving venv runs
# tests marked `serving`. Both must pass; pytest's "no tests ran" (exit 5) counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -m "not serving" "$@"
if compgen -G "tests/**/test_*serving*.py" >/dev/null || grep -rlq "pytest.mark.serving\|pytestmark = pytest.mark.serving" tests 2>/dev/null; then
  .venv-serving/bin/python -m pytest -m serving "$@"
fi
