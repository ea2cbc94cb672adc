#!/usr/bin/env bash
# The default test run, in both environments:
#   .venv          (Python 3.11) runs every test not marked `serving`
#   .venv-serving  (Python 3.12) runs the tests marked `serving` (graph nodes, torch-free runtime)
# Extra arguments go to both pytest calls. Exit 5 ("no tests collected") from the serving half is
# tolerated only when no test carries the marker; the pipeline half must always run tests.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONHASHSEED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
status=0
echo "== pipeline environment (.venv, Python 3.11): pytest -m 'not serving'"
.venv/bin/python -m pytest -m "not serving" "$@" || status=$?
echo "== serving environment (.venv-serving, Python 3.12): pytest -m serving"
.venv-serving/bin/python -m pytest -m serving "$@"
rc=$?
if [ $rc -eq 5 ] && ! grep -rqE "mark\.serving" tests; then rc=0; fi
[ $rc -ne 0 ] && status=$rc
exit $status
