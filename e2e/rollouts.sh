#!/usr/bin/env bash
# Rollouts driven with real kubectl against `cutover dev` (or the cluster in E2E_KUBECONFIG):
# a canary through a manual gate, a Gateway API canary, a blue-green with a scale-down
# delay, and a rolling update.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NS=e2e-rollouts
start_dev
[ "$TARGET" = testbed ] || echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
k() { kubectl -n "$NS" "$@"; }
wait_for() { k wait "$@" --timeout=60s >/dev/null || { k get cro -o yaml >&2; fail "wait $*"; }; }
set_image() { k patch cro "$1" --type merge -p "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"$2\"}]}}}}" >/dev/null; }
rollout() {  # name replicas strategy-json
  cat <<YAML | k apply --server-side -f - >/dev/null
apiVersion: cutover.dev/v1alpha1
kind: Rollout
metadata: {name: $1}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec: {containers: [{name: app, image: "$1:1"}]}
  strategy: $3
YAML
}

# --- canary with a manual gate -------------------------------------------------------
rollout web 10 '{canary: {steps: [{setWeight: 20}, {pause: {duration: 2s}}, {setWeight: 50}, {pause: {}}]}}'
wait_for cro/web --for=jsonpath='{.status.phase}'=Healthy
set_image web web:2
wait_for cro/web --for=jsonpath='{.status.currentStepIndex}'=3
expect_eq "$(k get cro web -o jsonpath='{.status.phase}')" "Paused" "canary waits at the gate"
expect_eq "$(k get cro web -o jsonpath='{.status.canaryWeight}')" "50" "canary weight at the gate"
expect_out "Canary *Paused *3 *50" "printer columns during the canary" k get cro web
k annotate cro web cutover.dev/promote=1 >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Healthy
expect_eq "$(k get cro web -o jsonpath='{.status.stableRevision}')" "$(k get cro web -o jsonpath='{.status.currentRevision}')" "promoted"

# --- Gateway API canary --------------------------------------------------------------
cat <<'YAML' | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: shop-stable}
spec: {selector: {app: shop}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop-canary}
spec: {selector: {app: shop}, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: public}]
  rules:
    - backendRefs: [{name: shop-stable, port: 80, weight: 100}, {name: shop-canary, port: 80, weight: 0}]
YAML
rollout shop 4 '{canary: {stableService: shop-stable, canaryService: shop-canary, trafficRouting: {gatewayAPI: {httpRoute: shop}}, steps: [{setWeight: 25}, {pause: {}}]}}'
wait_for cro/shop --for=jsonpath='{.status.phase}'=Healthy
set_image shop shop:2
wait_for cro/shop --for=jsonpath='{.status.phase}'=Paused
expect_eq "$(k get httproute shop -o jsonpath='{.spec.rules[0].backendRefs[*].weight}')" "75 25" "route weights"
k annotate cro shop cutover.dev/abort=1 >/dev/null
wait_for cro/shop --for=jsonpath='{.status.phase}'=Aborted
expect_eq "$(k get httproute shop -o jsonpath='{.spec.rules[0].backendRefs[*].weight}')" "100 0" "abort takes the weight back"

# --- blue-green with a scale-down delay ------------------------------------------------
cat <<'YAML' | k apply -f - >/dev/null
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {selector: {app: api}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-preview}
spec: {selector: {app: api}, ports: [{port: 80}]}
YAML
rollout api 3 '{blueGreen: {activeService: api, previewService: api-preview, autoPromotionEnabled: false, scaleDownDelaySeconds: 4}}'
wait_for cro/api --for=jsonpath='{.status.phase}'=Healthy
blue=$(k get cro api -o jsonpath='{.status.stableRevision}')
set_image api api:2
wait_for cro/api --for=jsonpath='{.status.phase}'=Paused
green=$(k get cro api -o jsonpath='{.status.currentRevision}')
expect_eq "$(k get svc api -o jsonpath='{.spec.selector.cutover\.dev/revision}')" "$blue" "active before promotion"
expect_eq "$(k get svc api-preview -o jsonpath='{.spec.selector.cutover\.dev/revision}')" "$green" "preview"
k annotate cro api cutover.dev/promote=1 >/dev/null
wait_for cro/api --for=jsonpath='{.status.stableRevision}'="$green"
expect_eq "$(k get svc api -o jsonpath='{.spec.selector.cutover\.dev/revision}')" "$green" "active after promotion"
expect_eq "$(k get deploy "api-$blue" -o jsonpath='{.spec.replicas}')" "3" "blue kept during the delay"
wait_for deploy/"api-$blue" --for=jsonpath='{.spec.replicas}'=0

# --- rolling update --------------------------------------------------------------------
rollout worker 6 '{rolling: {batchSize: 2, maxUnavailable: 0}}'
wait_for cro/worker --for=jsonpath='{.status.phase}'=Healthy
old=$(k get cro worker -o jsonpath='{.status.stableRevision}')
set_image worker worker:2
wait_for cro/worker --for=jsonpath='{.status.phase}'=Healthy
new=$(k get cro worker -o jsonpath='{.status.stableRevision}')
[ "$old" != "$new" ] || fail "rolling update did not change the stable revision"
expect_eq "$(k get deploy "worker-$old" -o jsonpath='{.spec.replicas}')" "0" "old revision scaled to zero"

stop_dev
echo "rollout e2e: ok"
