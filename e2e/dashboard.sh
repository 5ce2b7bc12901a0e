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

k apply --server-side -f "$here/../examples/canary.yaml" -f "$here/../examples/bluegreen.yaml" >/dev/null
analysis=0
if [ "$TARGET" = sim ]; then
  k apply --server-side -f "$here/fixtures/dashboard-analysis.yaml" >/dev/null
  analysis=1
fi
k wait cro/web --for=jsonpath='{.status.phase}'=Healthy --timeout=60s >/dev/null || fail "web is not Healthy"
[ "$analysis" = 0 ] || k wait cro/checkout --for=jsonpath='{.status.phase}'=Healthy --timeout=60s >/dev/null \
  || fail "checkout is not Healthy"

# dashboard KUBECONFIG LOG: starts a dashboard as that kubeconfig's user and prints its URL.
dashboard() {
  KUBECONFIG=$1 "$CUTOVER" kubectl -n "$NS" dashboard --port 0 --no-open >"$2" 2>&1 &
  DASHBOARD_PIDS="${DASHBOARD_PIDS:-} $!"
  for _ in $(seq 1 100); do
    grep -q 'http://' "$2" 2>/dev/null && break
    sleep 0.1
  done
  grep -o 'http://[^ ]*' "$2" || { cat "$2" >&2; fail "the dashboard printed no URL"; }
}
stop_dashboards() { for pid in ${DASHBOARD_PIDS:-}; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_dashboards; cleanup' EXIT

url=$(dashboard "$KUBECONFIG" "$WORK/dashboard.log")
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
  viewer_url=$(dashboard "$WORK/viewer.kubeconfig" "$WORK/viewer-dashboard.log")
fi

artifacts="$here/../target/test-artifacts"
URL="$url" VIEWER_URL="$viewer_url" NS="$NS" ARTIFACTS="$artifacts" ANALYSIS="$analysis" \
  node "$here/dashboard/dashboard.mjs" || {
    echo "--- dashboard log ---" >&2; cat "$WORK/dashboard.log" >&2
    fail "the browser test failed"
  }
echo "dashboard e2e passed against $TARGET"
