#!/usr/bin/env bash
# `kubectl cutover dashboard` in headless Chromium (Playwright), against `cutover dev` or
# the real control plane: the list, a release followed live, promote at the gates, a
# user whose RBAC denies patch (test bed), and a screenshot of a canary mid-analysis
# (cutover dev, whose scripted Prometheus answers the analysis) saved under
# target/test-artifacts/.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NS=e2e-dashboard
start_dev
[ "$TARGET" = testbed ] || echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
k() { kubectl -n "$NS" "$@"; }

k apply --server-side -f "$here/../examples/canary.yaml" -f "$here/../examples/bluegreen.yaml" \
  -f "$here/fixtures/dashboard-migration.yaml" >/dev/null
analysis=0
if [ "$TARGET" = sim ]; then
  k apply --server-side -f "$here/fixtures/dashboard-analysis.yaml" >/dev/null
  analysis=1
fi
k wait cro/web --for=jsonpath='{.status.phase}'=Healthy --timeout=60s >/dev/null || fail "web is not Healthy"
[ "$analysis" = 0 ] || k wait cro/checkout --for=jsonpath='{.status.phase}'=Healthy --timeout=60s >/dev/null \
  || fail "checkout is not Healthy"

# dashboard KUBECONFIG LOG [NAMESPACE]: starts a dashboard as that kubeconfig's user and
# sets DASHBOARD_URL to its URL.
DASHBOARD_PIDS=""
dashboard() {
  KUBECONFIG=$1 "$CUTOVER" kubectl -n "${3:-$NS}" dashboard --port 0 --no-open >"$2" 2>&1 &
  DASHBOARD_PIDS="$DASHBOARD_PIDS $!"
  for _ in $(seq 1 100); do
    grep -q 'http://' "$2" 2>/dev/null && break
    sleep 0.1
  done
  DASHBOARD_URL=$(grep -o 'http://[^ ]*' "$2") || { cat "$2" >&2; fail "the dashboard printed no URL"; }
}
stop_dashboards() { for pid in $DASHBOARD_PIDS; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_dashboards; cleanup' EXIT

dashboard "$KUBECONFIG" "$WORK/dashboard.log"
url=$DASHBOARD_URL
viewer_url=""
if [ "$TARGET" = testbed ]; then
  # A user who may read what the dashboard shows but not change a Rollout.
  k create serviceaccount viewer >/dev/null
  k create role viewer --verb=get,list,watch \
    --resource=rollouts.cutover.dev,migrationjobs.cutover.dev,featureflags.cutover.dev,deployments,pods,events >/dev/null
  k create rolebinding viewer --role=viewer --serviceaccount="$NS:viewer" >/dev/null
  cp "$KUBECONFIG" "$WORK/viewer.kubeconfig"
  kubectl --kubeconfig "$WORK/viewer.kubeconfig" config set-credentials viewer \
    --token="$(k create token viewer --duration=1h)" >/dev/null
  kubectl --kubeconfig "$WORK/viewer.kubeconfig" config set-context --current --user=viewer >/dev/null
  kubectl --kubeconfig "$WORK/viewer.kubeconfig" -n "$NS" auth can-i patch rollouts.cutover.dev >/dev/null \
    && fail "the viewer may patch Rollouts"
  dashboard "$WORK/viewer.kubeconfig" "$WORK/viewer-dashboard.log"
  viewer_url=$DASHBOARD_URL
fi

artifacts="$here/../target/test-artifacts"
URL="$url" VIEWER_URL="$viewer_url" NS="$NS" ARTIFACTS="$artifacts" ANALYSIS="$analysis" \
  node "$here/dashboard/dashboard.mjs" || {
    echo "--- dashboard log ---" >&2; cat "$WORK/dashboard.log" >&2
    fail "the browser test failed"
  }

# 500 Rollouts in one namespace (cutover dev: the test bed's fake nodes would run 500 more
# pods for every test process).
if [ "$TARGET" = sim ]; then
  MANY=e2e-dashboard-many
  COUNT=500
  python3 - "$MANY" "$COUNT" >"$WORK/many.json" <<'PY'
import json, sys
ns, count = sys.argv[1], int(sys.argv[2])
items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
for i in range(count):
    name = f"app-{i:04d}"
    items.append({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
  kubectl apply --server-side -f "$WORK/many.json" >/dev/null
  dashboard "$KUBECONFIG" "$WORK/many.log" "$MANY"
  many_url=$DASHBOARD_URL
  URL="$many_url" NS="$MANY" COUNT="$COUNT" node "$here/dashboard/scale.mjs" || fail "the dashboard at $COUNT Rollouts"
fi

# -A: one feed with the Rollouts of every namespace the user may list.
"$CUTOVER" kubectl dashboard -A --port 0 --no-open >"$WORK/all.log" 2>&1 &
DASHBOARD_PIDS="$DASHBOARD_PIDS $!"
for _ in $(seq 1 100); do grep -q 'http://' "$WORK/all.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'for all namespaces' "$WORK/all.log" || fail "the -A dashboard: $(cat "$WORK/all.log")"
all_url=$(grep -o 'http://[^ ]*' "$WORK/all.log")
token=${all_url##*token=}
curl -sN --max-time 5 "${all_url%%\?*}api/stream?token=$token" >"$WORK/all.stream" || true
python3 -c '
import json, sys
seen = set()
for line in open(sys.argv[1]):
    if line.startswith("data: "):
        m = json.loads(line[6:])
        if m["kind"] == "Rollout" and m["type"] == "apply":
            seen.add(m["object"]["metadata"]["namespace"])
missing = set(sys.argv[2:]) - seen
sys.exit(f"no Rollout of {sorted(missing)} in the feed (it has {sorted(seen)})" if missing else 0)' \
  "$WORK/all.stream" "$NS" ${MANY:+"$MANY"} || fail "the -A dashboard does not show every namespace"
echo "dashboard e2e passed against $TARGET"
