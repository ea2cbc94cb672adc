#!/usr/bin/env bash
# The main job: the training pipeline end to end on MovieLens (kfp.local), then the local inference graph,
# a few recommendation requests and one feedback, and where every artifact is.
#   runner: docker (each step in the pipeline image) when an engine answers and the image exists, else
#   subprocess (this venv's Python); force one with SMARTRECO_RUNNER=docker|subprocess.
#   SMARTRECO_DEMO_SAMPLE_USERS=N trains on N random users (smoke runs); SMARTRECO_DEMO_PORT (default 8089).
set -euo pipefail
cd "$(dirname "$0")/.."
export SMARTRECO_RUNS=${SMARTRECO_RUNS:-$PWD/runs}
BIN=.venv/bin
RUNNER=${SMARTRECO_RUNNER:-auto}
PORT=${SMARTRECO_DEMO_PORT:-8089}
GRPC_PORT=$((PORT + 1))
URL="http://127.0.0.1:$PORT"
OUT="$SMARTRECO_RUNS/demo"
mkdir -p "$OUT"
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START )) s] $*"; }

step "1/4 training pipeline on MovieLens (kfp.local, runner=$RUNNER)"
ARGS=(pipeline run training --local --runner "$RUNNER" --json)
[ -n "${SMARTRECO_DEMO_SAMPLE_USERS:-}" ] && ARGS+=(--sample-users "$SMARTRECO_DEMO_SAMPLE_USERS")
"$BIN/smartreco" "${ARGS[@]}" > "$OUT/training-run.json"
"$BIN/python" - "$OUT/training-run.json" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
print(f"pipeline {run['pipeline']} finished in {run['seconds']} s with the {run['runner']} runner ({run['runner_reason']})")
gate = run["artifacts"].get("summary/gate")
if gate:
    g = json.load(open(gate))
    print("gate:", "PROMOTED -> deployed" if g["promoted"] else "not promoted -> nothing deployed", "|", "; ".join(g["reasons"]))
EOF

step "2/4 start the Feast feature server and the local inference graph (in-process nodes, REST $URL)"
FEAST_PORT=${SMARTRECO_FEAST_PORT:-6566}
export SMARTRECO_FEATURE_SERVER="http://127.0.0.1:$FEAST_PORT"
(cd "$SMARTRECO_RUNS/feast" && exec "$OLDPWD/$BIN/feast" serve -h 127.0.0.1 -p "$FEAST_PORT" -w 1 --no-access-log) \
  > "$OUT/feast.log" 2>&1 &
FEAST_PID=$!
MANIFEST_ARGS=()
BUNDLE=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['artifacts'].get('train-hybrid/bundle',''))" "$OUT/training-run.json")
if [ -f "$SMARTRECO_RUNS/deploy/seldondeployment.yaml" ]; then
  MANIFEST_ARGS=(--manifest "$SMARTRECO_RUNS/deploy/seldondeployment.yaml")
  echo "serving the deployed manifest $SMARTRECO_RUNS/deploy/seldondeployment.yaml"
else
  MANIFEST_ARGS=(--model-path "$BUNDLE")
  echo "nothing deployed (gate failed): serving this run's bundle $BUNDLE on both arms"
fi
"$BIN/smartreco" serve --in-process --port "$PORT" --grpc-port "$GRPC_PORT" "${MANIFEST_ARGS[@]}" \
  > "$OUT/graph.log" 2>&1 &
GRAPH_PID=$!
stop_graph() {
  kill "$GRAPH_PID" 2>/dev/null && wait "$GRAPH_PID" 2>/dev/null || true
  kill "$FEAST_PID" 2>/dev/null && wait "$FEAST_PID" 2>/dev/null || true
}
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

step "3/4 recommendations and one feedback"
for user in 1 42 414 999999; do
  echo "--- user $user$([ "$user" = 999999 ] && echo ' (unknown: cold start)')"
  "$BIN/smartreco" recommend --user "$user" --n 5 --explain --url "$URL"
done
"$BIN/smartreco" recommend --user 42 --n 5 --json --url "$URL" > "$OUT/recommend-42.json"
ITEM=$("$BIN/python" -c "import json,sys; r=json.load(open(sys.argv[1])); d=r.get('jsonData', r); print(d['recommendations'][0]['item_id'])" "$OUT/recommend-42.json")
echo "--- feedback: user 42 clicked item $ITEM"
"$BIN/smartreco" feedback --user 42 --item "$ITEM" --type click --url "$URL"

step "4/4 where everything is"
"$BIN/python" - "$OUT/training-run.json" <<'EOF'
import json, os, sys
run = json.load(open(sys.argv[1]))
runs = os.environ["SMARTRECO_RUNS"]
print(f"pipeline run folder: {run['run_dir']}")
for key, path in run["artifacts"].items():
    print(f"  {key:42s} {path}")
print(f"MLflow (runs, registry):  sqlite {runs}/mlflow/mlflow.db  -> .venv/bin/mlflow ui --backend-store-uri sqlite:///{runs}/mlflow/mlflow.db")
print(f"Feast repo (online sqlite): {runs}/feast")
print(f"deploy record:            {runs}/deploy/current.json")
print(f"graph / feature server logs: {runs}/demo/graph.log, {runs}/demo/feast.log")
print(f"compiled YAML:            .venv/bin/smartreco pipeline compile --out build/pipelines")
EOF
stop_graph
trap - EXIT
echo "demo finished in $(( $(date +%s) - START )) s; graph and feature server stopped"
