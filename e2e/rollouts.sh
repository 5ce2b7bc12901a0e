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
# exit_code CMD...: CMD's exit code, its output in $WORK/out.
exit_code() { local code=0; "$@" >"$WORK/out" 2>&1 || code=$?; echo "$code"; }
condition() { k get "$1" -o jsonpath="{.status.conditions[?(@.type==\"$2\")].status}"; }

rollout web 10 '{canary: {steps: [{setWeight: 20}, {pause: {duration: 2s}}, {setWeight: 50}, {pause: {}}]}}'
wait_for cro/web --for=condition=Ready
expect_eq "$(k get cro web -o jsonpath='{.status.phase}')" "Healthy" "Ready means Healthy"
expect_health rollout web Healthy
expect_kstatus rollout web Current
set_image web web:2
wait_for cro/web --for=jsonpath='{.status.currentStepIndex}'=3
expect_eq "$(k get cro web -o jsonpath='{.status.phase}')" "Paused" "canary waits at the gate"
expect_eq "$(k get cro web -o jsonpath='{.status.canaryWeight}')" "50" "canary weight at the gate"
expect_out "Canary *Paused *3 *50" "printer columns during the canary" k get cro web
expect_eq "$(condition cro/web Ready)/$(condition cro/web Reconciling)/$(condition cro/web Stalled)" "False/True/" "kstatus: in progress at the gate"
expect_health rollout web Suspended
expect_kstatus rollout web InProgress
expect_eq "$(exit_code plugin status web --wait --timeout 2s)" "2" "status --wait times out at the gate: $(cat "$WORK/out")"
grep -q "Paused step 3 weight 50%" "$WORK/out" || fail "status --wait prints the decision: $(cat "$WORK/out")"
expect_eq "$(argocd_actions rollout web)" "abort promote promote-full " "Argo CD actions at the gate"
argocd_action rollout web promote
expect_eq "$(exit_code plugin status web --wait --timeout 60s)" "0" "status --wait after promotion"
grep -q "rollout web is healthy" "$WORK/out" || fail "status --wait: $(cat "$WORK/out")"
wait_for cro/web --for=condition=Ready
expect_eq "$(k get cro web -o jsonpath='{.status.phase}')" "Healthy" "promoted and Ready"
# Each decision is one info line naming the object. It is logged after the status that
# records it is written, so Ready can be read before the line is there: wait for it.
for _ in $(seq 1 300); do
  operator_log | grep "decision" | grep "web" | grep -q "Promoted" && break
  sleep 0.1
done
operator_log | grep "decision" | grep "web" | grep -q "Promoted" || { operator_log | tail -20 >&2; fail "no decision line for the promotion"; }
expect_eq "$(k get cro web -o jsonpath='{.status.stableRevision}')" "$(k get cro web -o jsonpath='{.status.currentRevision}')" "promoted"
# The operator's Events (events.k8s.io/v1) are what describe and get events (core v1) show.
expect_out "Normal *Promoted .*cutover" "describe shows the operator's events" k describe cro web
expect_out "Promoted *rollout/web" "get events lists them" k get events --field-selector involvedObject.name=web

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
wait_for cro/shop --for=condition=Stalled
expect_eq "$(condition cro/shop Ready)" "False" "an aborted rollout is not Ready"
expect_health rollout shop Degraded
expect_kstatus rollout shop Failed
expect_eq "$(exit_code plugin status shop)" "1" "status of an aborted rollout"
expect_eq "$(exit_code plugin status shop --wait --timeout 60s)" "1" "status --wait of an aborted rollout"
grep -q "needs a person: Aborted" "$WORK/out" || fail "status --wait: $(cat "$WORK/out")"
expect_eq "$(argocd_actions rollout shop)" "retry " "Argo CD actions of an aborted rollout"
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

# --- an invalid spec: shown as such, nothing done ------------------------------------------
rollout bad 1 '{canary: {steps: [{analysis: {metrics: [{name: errors, successCondition: "result < ", prometheus: {query: up}}]}}]}}'
wait_for cro/bad --for=condition=Stalled
expect_eq "$(k get cro bad -o jsonpath='{.status.phase}')" "Degraded" "an invalid rollout is Degraded"
expect_out "Degraded.*InvalidSpec.*invalid CEL expression" "-o wide names the reason" k get cro bad -o wide
expect_health rollout bad Degraded
expect_kstatus rollout bad Failed
expect_eq "$(exit_code plugin status bad)" "1" "status of an invalid rollout"
expect_eq "$(k get deploy -l cutover.dev/rollout=bad -o name)" "" "nothing deployed for an invalid spec"

# --- rolling update --------------------------------------------------------------------
rollout worker 6 '{rolling: {batchSize: 2, maxUnavailable: 0}}'
wait_for cro/worker --for=jsonpath='{.status.phase}'=Healthy
old=$(k get cro worker -o jsonpath='{.status.stableRevision}')
set_image worker worker:2
wait_for cro/worker --for=jsonpath='{.status.phase}'=Healthy
new=$(k get cro worker -o jsonpath='{.status.stableRevision}')
[ "$old" != "$new" ] || fail "rolling update did not change the stable revision"
expect_eq "$(k get deploy "worker-$old" -o jsonpath='{.spec.replicas}')" "0" "old revision scaled to zero"

# --- a feature flag stepping, then served -------------------------------------------------
cat <<'YAML' | k apply -f - >/dev/null
apiVersion: cutover.dev/v1alpha1
kind: FeatureFlag
metadata: {name: banner}
spec:
  state: ENABLED
  variants: {"on": true, "off": false}
  defaultVariant: "off"
  rollout: {variant: "on", steps: [50, 100], interval: 1h}
  output: {configMap: {name: flags}}
YAML
# The step lasts an hour while it is looked at, so no check races the next step; a shorter
# interval then lets it go on.
wait_for ff/banner --for=jsonpath='{.status.percentage}'=50
expect_eq "$(condition ff/banner Ready)/$(condition ff/banner Reconciling)" "False/True" "kstatus: a stepping flag is in progress"
expect_health featureflag banner Progressing
expect_kstatus featureflag banner InProgress
k patch ff banner --type=merge -p '{"spec": {"rollout": {"interval": "1s"}}}' >/dev/null
wait_for ff/banner --for=condition=Ready
expect_eq "$(k get ff banner -o jsonpath='{.status.percentage}')" "100" "Ready once served to everyone"
expect_health featureflag banner Healthy
expect_kstatus featureflag banner Current

stop_dev
echo "rollout e2e: ok"
