#!/usr/bin/env bash
# Start/stop the local services the tests use.
#   docker engine: container tests (`-m container`) need one. If none answers and we run as root, install
#   Debian's docker.io + debootstrap (base images are built from Debian packages where no registry is
#   reachable) and start dockerd the way STACK_NOTES "Containers" describes; `stop` stops only a dockerd
#   this script started (and with it the containers it ran). Not root and no engine: container tests skip
#   (and fail under CI=true).
#   redis: the Feast Redis online store tests (`-m redis`) need one. If `redis-server` is missing and we run as
#   root, install Debian's redis-server; start it on 127.0.0.1:$SMARTRECO_REDIS_PORT (default 6390, not the
#   default 6379, so it never collides with a system Redis), no persistence, and write its URL to
#   $STATE/redis.url (the tests and the feature benchmark read it). `stop` stops only a server this script
#   started. No redis-server and not root: redis tests skip (and fail under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${SMARTRECO_SERVICES_DIR:-/tmp/smartreco-services}
mkdir -p "$STATE"
DOCKERD_PID="$STATE/dockerd.pid"
REDIS_PORT=${SMARTRECO_REDIS_PORT:-6390}
REDIS_PID="$STATE/redis.pid"
REDIS_URL_FILE="$STATE/redis.url"

# `start` names each service it starts (not one that already answered) in $SMARTRECO_SERVICES_STARTED when
# that is set, so a caller (.ci/run) can stop exactly those: `stop docker redis` stops only the named ones.
started() { [ -z "${SMARTRECO_SERVICES_STARTED:-}" ] || echo "$1" >> "$SMARTRECO_SERVICES_STARTED"; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {  # packages that are missing, in one apt-get call
  [ "$#" -gt 0 ] || return 0
  echo "[services] apt-get install $*"
  apt-get update -qq >"$STATE/apt.log" 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$STATE/apt.log" 2>&1 \
    || { tail -5 "$STATE/apt.log" >&2; echo "[services] ERROR: apt-get install $* failed" >&2; return 1; }
}

start_docker() {
  if engine_answers; then
    echo "[services] docker engine answers ($(docker version --format '{{.Server.Version}}'))"; return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "[services] no docker engine answers and not root: container tests will be skipped"; return 0
  fi
  local want=()
  command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || want+=(debootstrap)
  apt_install "${want[@]}"
  echo "[services] starting dockerd (no iptables, no bridge: containers use --network host)"
  setsid nohup dockerd --iptables=false --ip6tables=false --bridge=none -H unix:///var/run/docker.sock \
    >"$STATE/dockerd.log" 2>&1 < /dev/null &
  echo $! > "$DOCKERD_PID"
  started docker
  for _ in $(seq 1 60); do
    if engine_answers; then echo "[services] docker engine ready (pid $(cat "$DOCKERD_PID"))"; return 0; fi
    kill -0 "$(cat "$DOCKERD_PID")" 2>/dev/null || break
    sleep 1
  done
  tail -5 "$STATE/dockerd.log" >&2
  echo "[services] ERROR: dockerd did not answer within 60 s (log: $STATE/dockerd.log)" >&2
  return 1
}

stop_started() {  # NAME PIDFILE SECONDS: stop what this script started (SIGTERM, then SIGKILL), forget its pid
  local name=$1 pidfile=$2 seconds=$3
  [ -f "$pidfile" ] || { echo "[services] no $name started by this script"; return 0; }
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    echo "[services] stopping $name (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 "$seconds"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { echo "[services] $name still running; SIGKILL" >&2; kill -KILL "$pid"; }
  fi
  rm -f "$pidfile"
}

stop_docker() { stop_started dockerd "$DOCKERD_PID" 30; }  # its containers stop with it

redis_answers() { command -v redis-cli >/dev/null 2>&1 && [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start_redis() {
  if redis_answers; then
    echo "127.0.0.1:$REDIS_PORT" > "$REDIS_URL_FILE"
    echo "[services] redis answers on 127.0.0.1:$REDIS_PORT"; return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "[services] no redis-server and not root: redis tests will be skipped"; return 0
    fi
    apt_install redis-server
  fi
  echo "[services] starting redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
  setsid nohup redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --daemonize no --dir "$STATE" --logfile "$STATE/redis.log" >/dev/null 2>&1 < /dev/null &
  echo $! > "$REDIS_PID"
  started redis
  for _ in $(seq 1 30); do
    if redis_answers; then
      echo "127.0.0.1:$REDIS_PORT" > "$REDIS_URL_FILE"
      echo "[services] redis ready (pid $(cat "$REDIS_PID"), url in $REDIS_URL_FILE)"; return 0
    fi
    kill -0 "$(cat "$REDIS_PID")" 2>/dev/null || break
    sleep 0.5
  done
  tail -5 "$STATE/redis.log" >&2 || true
  echo "[services] ERROR: redis-server did not answer within 15 s (log: $STATE/redis.log)" >&2
  return 1
}

stop_redis() { stop_started redis-server "$REDIS_PID" 10; rm -f "$REDIS_URL_FILE"; }

case "${1:-start}" in
  start) bash scripts/tools.sh; start_docker; start_redis ;;
  stop)
    shift
    want=" ${*:-redis docker} "
    [[ $want == *" redis "* ]] && stop_redis
    [[ $want == *" docker "* ]] && stop_docker
    true ;;
  *) echo "usage: $0 start | stop [redis] [docker]" >&2; exit 2 ;;
esac
