#!/usr/bin/env bash
# The main job: the training pipeline end to end on MovieLens (kfp.local), then the local inference graph,
# a few recommendation requests and one feedback, where everything is, and how to open the storefront.
#   bash scripts/demo.sh              the demo (`make demo`): one line per pipeline step with its time (a
#                                     progress bar on a terminal); kfp.local's logs go to runs/demo/pipeline.log
#   bash scripts/demo.sh storefront   serve the demo's model (feature server + graph) and the web UI
#                                     (`smartreco web`: storefront, experiments, model) until Ctrl-C (`make storefront`)
#   runner: docker (each step in the pipeline image) when an engine answers and the image exists, else
#   subprocess (this venv's Python); force one with SMARTRECO_RUNNER=docker|subprocess.
#   SMARTRECO_DEMO_SAMPLE_USERS=N trains on N random users (smoke runs); SMARTRECO_DEMO_PORT (graph, default
#   8089); SMARTRECO_WEB_PORT (storefront, default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-demo}
export SMARTRECO_RUNS=${SMARTRECO_RUNS:-$PWD/runs}
BIN=.venv/bin
RUNNER=${SMARTRECO_RUNNER:-auto}
PORT=${SMARTRECO_DEMO_PORT:-8089}
GRPC_PORT=$((PORT + 1))
WEB_PORT=${SMARTRECO_WEB_PORT:-8080}
URL="http://127.0.0.1:$PORT"
OUT="$SMARTRECO_RUNS/demo"
mkdir -p "$OUT"
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START )) s] $*"; }

GRAPH_PID=""
FEAST_PID=""
stop_graph() {
  [ -n "$GRAPH_PID" ] && { kill "$GRAPH_PID" 2>/dev/null && wait "$GRAPH_PID" 2>/dev/null || true; }
  [ -n "$FEAST_PID" ] && { kill "$FEAST_PID" 2>/dev/null && wait "$FEAST_PID" 2>/dev/null || true; }
  GRAPH_PID=""; FEAST_PID=""
}

start_graph() {  # the Feast feature server and the local graph on the deployed manifest (else this run's bundle)
  FEAST_PORT=${SMARTRECO_FEAST_PORT:-6566}
  export SMARTRECO_FEATURE_SERVER="http://127.0.0.1:$FEAST_PORT"
  (cd "$SMARTRECO_RUNS/feast" && exec "$OLDPWD/$BIN/feast" serve -h 127.0.0.1 -p "$FEAST_PORT" -w 1 --max-requests 0 --no-access-log) \
    > "$OUT/feast.log" 2>&1 &
  FEAST_PID=$!
  local args=()
  if [ -f "$SMARTRECO_RUNS/deploy/seldondeployment.yaml" ]; then
    args=(--manifest "$SMARTRECO_RUNS/deploy/seldondeployment.yaml")
    echo "serving the deployed manifest $SMARTRECO_RUNS/deploy/seldondeployment.yaml on $URL"
  else
    local bundle
    bundle=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['artifacts'].get('train-hybrid/bundle',''))" "$OUT/training-run.json")
    args=(--model-path "$bundle")
    echo "nothing deployed (gate failed): serving this run's bundle $bundle on both arms on $URL"
  fi
  "$BIN/smartreco" serve --in-process --port "$PORT" --grpc-port "$GRPC_PORT" "${args[@]}" > "$OUT/graph.log" 2>&1 &
  GRAPH_PID=$!
  trap stop_graph EXIT
  for _ in $(seq 1 120); do
    curl -fsS "$URL/health/ping" >/dev/null 2>&1 && break
    kill -0 "$GRAPH_PID" 2>/dev/null || { tail -20 "$OUT/graph.log"; echo "graph exited" >&2; exit 1; }
    sleep 1
  done
  curl -fsS "$URL/health/ping" >/dev/null || { tail -20 "$OUT/graph.log"; echo "graph not ready" >&2; exit 1; }
  for _ in $(seq 1 60); do
    curl -s -o /dev/null "$SMARTRECO_FEATURE_SERVER/health" && break
    sleep 1
  done
}

if [ "$MODE" = storefront ]; then
  [ -f "$OUT/training-run.json" ] || { echo "no demo run in $OUT yet: run \`make demo\` first" >&2; exit 1; }
  start_graph
  echo "storefront: http://127.0.0.1:$WEB_PORT/  (A/B results: /experiments, model: /model); Ctrl-C stops all"
  "$BIN/smartreco" web --port "$WEB_PORT" --graph "$URL" --event-log "$SMARTRECO_RUNS/feedback"
  exit 0
fi
[ "$MODE" = demo ] || { echo "usage: $0 [demo|storefront]" >&2; exit 2; }

step "1/4 training pipeline on MovieLens (kfp.local, runner=$RUNNER)"
ARGS=(pipeline run training --local --runner "$RUNNER" --json --log "$OUT/pipeline.log")
[ -n "${SMARTRECO_DEMO_SAMPLE_USERS:-}" ] && ARGS+=(--sample-users "$SMARTRECO_DEMO_SAMPLE_USERS")
"$BIN/smartreco" "${ARGS[@]}" > "$OUT/training-run.json"
"$BIN/python" - "$OUT/training-run.json" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
gate = run["artifacts"].get("summary/gate")
if gate:
    g = json.load(open(gate))
    print("gate:", "PROMOTED -> deployed" if g["promoted"] else "not promoted -> nothing deployed", "|", "; ".join(g["reasons"]))
PY

step "2/4 start the Feast feature server and the local inference graph (in-process nodes)"
start_graph

step "3/4 sample recommendations and one feedback"
for user in 1 42 999999; do
  echo "--- user $user$([ "$user" = 999999 ] && echo ' (unknown: cold start)')"
  "$BIN/smartreco" recommend --user "$user" --n 5 --explain --url "$URL"
done
"$BIN/smartreco" recommend --user 42 --n 5 --json --url "$URL" > "$OUT/recommend-42.json"
ITEM=$("$BIN/python" -c "import json,sys; r=json.load(open(sys.argv[1])); d=r.get('jsonData', r); print(d['recommendations'][0]['item_id'])" "$OUT/recommend-42.json")
echo "--- feedback: user 42 clicked item $ITEM"
FEEDBACK=$("$BIN/smartreco" feedback --user 42 --item "$ITEM" --type click --url "$URL")
echo "${FEEDBACK%%$'\n'*}"

step "4/4 where everything is"
"$BIN/python" - "$OUT/training-run.json" <<'PY'
import json, os, sys
run = json.load(open(sys.argv[1]))
runs, arts = os.environ["SMARTRECO_RUNS"], run["artifacts"]
print(f"pipeline run folder:   {run['run_dir']}  ({len(arts)} artifacts; `smartreco pipeline run ... --json` lists them)")
print(f"pipeline logs:         {runs}/demo/pipeline.log  (kfp.local: every step's output)")
for key, label in (("validate/report", "validation report"), ("evaluate/report", "evaluation report")):
    if key in arts:
        print(f"{label + ':':22s} {arts[key]}")
print(f"MLflow (runs, registry): .venv/bin/mlflow ui --backend-store-uri sqlite:///{runs}/mlflow/mlflow.db")
print(f"graph / feature server logs: {runs}/demo/graph.log, {runs}/demo/feast.log; deploy record {runs}/deploy/current.json")
PY
stop_graph
trap - EXIT
echo "demo finished in $(( $(date +%s) - START )) s; graph and feature server stopped"
echo
echo "Open the storefront (known user 42, a new user, click -> the next list changes; /experiments; /model):"
echo "  make storefront          # = bash scripts/demo.sh storefront: graph + \`smartreco web\` on http://127.0.0.1:$WEB_PORT/"
