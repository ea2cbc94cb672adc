#!/usr/bin/env bash
# Start/stop the local services the tests use. Today: none beyond the venvs; later issues add the
# Docker engine (container tests) and Redis (online-store option) here.
set -euo pipefail
case "${1:-start}" in
  start) echo "[services] nothing to start yet" ;;
  stop) echo "[services] nothing to stop" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
