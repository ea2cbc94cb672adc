#!/usr/bin/env bash
# Idempotent set-up of the virtual environments:
#   .venv          Python 3.11  pipeline + dev extras (kfp, feast, torch CPU, lightning, mlflow, evidently)
#   .venv-serving  Python 3.12  serving + dev extras (seldon-core 1.19, onnxruntime, faiss; no torch)
#   .venv-seldon-apache  Python 3.11  the Apache-2.0 seldon-core 1.17.1 wrapper for the graph nodes only
#                  (extra seldon-apache, without the core deps: 1.17.1 pins click<8.1); the executor
#                  launches nodes with it under SMARTRECO_SELDON=apache
# Re-running is cheap: a venv is reinstalled only when pyproject.toml changed since its last install.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WHICH=${1:-all}   # all | pipeline | serving | seldon-apache

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

build_venv() {  # $1 = venv dir, $2 = python version, $3 = extras, $4 = "extras-only" (skip the core deps)
  local dir=$1 ver=$2 extras=$3 only=${4:-} py stamp target
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
  target=(-e ".[$extras]")
  if [ "$only" = extras-only ]; then  # the extra's pins alone; the node processes get the project on PYTHONPATH
    "$dir/bin/python" -c 'import sys, tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"][sys.argv[1]]))' "$extras" > "$dir/.requirements.txt"
    target=(-r "$dir/.requirements.txt")
  fi
  if ! "$dir/bin/python" -m pip install -q "${target[@]}" > "$dir/.pip-install.log" 2>&1; then
    grep -v "^WARNING: Location" "$dir/.pip-install.log" | tail -30 >&2
    echo "ERROR: installing .[$extras] into $dir failed (full log: $dir/.pip-install.log)" >&2
    exit 1
  fi
  "$dir/bin/python" -m pip check || echo "[setup] WARNING: pip check reported conflicts in $dir" >&2
  echo "$stamp" > "$dir/.smartreco-stamp"
  echo "[setup] $dir ready"
}

case "$WHICH" in
  all) build_venv "$ROOT/.venv" 3.11 pipeline,dev; build_venv "$ROOT/.venv-serving" 3.12 serving,dev
       # 110 s (warm pip cache) to 250 s (cold): built in CI (its tests must not skip), when asked, or to keep it current
       if [[ "${CI:-}" =~ ^(1|true|yes|TRUE|True)$ ]] || [ "${SMARTRECO_SELDON:-}" = apache ] || [ -d "$ROOT/.venv-seldon-apache" ]; then
         build_venv "$ROOT/.venv-seldon-apache" 3.11 seldon-apache extras-only
       fi ;;
  pipeline) build_venv "$ROOT/.venv" 3.11 pipeline,dev ;;
  serving) build_venv "$ROOT/.venv-serving" 3.12 serving,dev ;;
  seldon-apache) build_venv "$ROOT/.venv-seldon-apache" 3.11 seldon-apache extras-only ;;
  *) echo "usage: $0 [all|pipeline|serving|seldon-apache]" >&2; exit 2 ;;
esac
