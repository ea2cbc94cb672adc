#!/usr/bin/env bash
# Idempotent set-up of the two virtual environments:
#   .venv          Python 3.11  pipeline + dev extras (kfp, feast, torch CPU, lightning, mlflow, evidently)
#   .venv-serving  Python 3.12  serving + dev extras (seldon-core 1.19, onnxruntime, faiss; no torch)
# Re-running is cheap: a venv is reinstalled only when pyproject.toml changed since its last install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHICH=${1:-all}   # all | pipeline | serving

find_python() {  # $1 = major.minor ; prints an interpreter path or nothing
  local want=$1 cand
  for cand in "python$want" \
              "${PYENV_ROOT:-$HOME/.pyenv}/versions/$want"*/bin/"python$want" \
              "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/$want"*/bin/"python$want"; do
    if [ -x "$(command -v "$cand" 2>/dev/null)" ] && "$cand" -c 'import sys' >/dev/null 2>&1; then
      if [ "$("$cand" -c 'import sys;print("%d.%d"%sys.version_info[:2])')" = "$want" ]; then
        command -v "$cand"; return 0
      fi
    fi
  done
}

build_venv() {  # $1 = venv dir, $2 = python version, $3 = extras
  local dir=$1 ver=$2 extras=$3 py stamp
  py=$(find_python "$ver" || true)
  if [ -z "$py" ]; then
    echo "ERROR: Python $ver not found. Install it (e.g. 'pyenv install $ver' or 'apt-get install python$ver python$ver-venv') and re-run $0." >&2
    exit 2
  fi
  stamp=$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras
  if [ -f "$dir/.smartreco-stamp" ] && [ "$(cat "$dir/.smartreco-stamp")" = "$stamp" ] && "$dir/bin/python" -c 'import smartreco' 2>/dev/null; then
    echo "[setup] $dir up to date ($py)"; return 0
  fi
  echo "[setup] building $dir with $py, extras [$extras]"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade pip "setuptools<81" wheel
  if ! "$dir/bin/python" -m pip install -q -e ".[$extras]" > "$dir/.pip-install.log" 2>&1; then
    grep -v "^WARNING: Location" "$dir/.pip-install.log" | tail -30 >&2
    echo "ERROR: installing .[$extras] into $dir failed (full log: $dir/.pip-install.log)" >&2
    exit 1
  fi
  "$dir/bin/python" -m pip check || echo "[setup] WARNING: pip check reported conflicts in $dir" >&2
  echo "$stamp" > "$dir/.smartreco-stamp"
  echo "[setup] $dir ready"
}

case "$WHICH" in
  all) build_venv "$ROOT/.venv" 3.11 pipeline,dev; build_venv "$ROOT/.venv-serving" 3.12 serving,dev ;;
  pipeline) build_venv "$ROOT/.venv" 3.11 pipeline,dev ;;
  serving) build_venv "$ROOT/.venv-serving" 3.12 serving,dev ;;
  *) echo "usage: $0 [all|pipeline|serving]" >&2; exit 2 ;;
esac
