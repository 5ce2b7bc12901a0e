#!/usr/bin/env bash
# The day-to-day loop with `kubectl cutover` against `cutover dev` (or the cluster in
# E2E_KUBECONFIG): install the CRDs, apply an example, change its image, watch the status,
# promote, undo, abort and retry — all with real kubectl and the plugin.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NS=e2e-plugin
start_dev
# kubectl finds plugins named kubectl-* on PATH: link the binary under that name.
mkdir -p "$WORK/bin"
ln -sf "$(command -v "$CUTOVER")" "$WORK/bin/kubectl-cutover"
export PATH="$WORK/bin:$PATH"
plugins=$(kubectl plugin list 2>/dev/null || true)
grep -q kubectl-cutover <<<"$plugins" || fail "kubectl does not see the plugin: $plugins"

# Installing the CRDs again is harmless (cutover dev has them already; a cluster may not).
"$CUTOVER" crd | kubectl apply --server-side --force-conflicts -f - >/dev/null
[ "$TARGET" = testbed ] || echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
k() { kubectl -n "$NS" "$@"; }
kc() { kubectl cutover -n "$NS" "$@"; }
wait_for() { k wait "$@" --timeout=60s >/dev/null || { kc status web >&2; fail "wait $*"; }; }

k apply --server-side -f "$here/../examples/canary.yaml" >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Healthy
first=$(k get cro web -o jsonpath='{.status.stableRevision}')
expect_out "^web .*Healthy" "kubectl cutover get" kc get

kc set image web web=registry.example.com/web:1.1.0 >/dev/null
# Past the one-minute pause by hand, up to the manual gate.
wait_for cro/web --for=jsonpath='{.status.currentStepIndex}'=1
kc promote web >/dev/null
wait_for cro/web --for=jsonpath='{.status.currentStepIndex}'=3
expect_out "\[>\] 3: pause (until promoted)" "status shows the gate" kc status web
expect_eq "$(k get cro web -o jsonpath='{.status.canaryWeight}')" "50" "weight at the gate"
kc retry web 2>"$WORK/err" && fail "retry of a running rollout must be refused"
grep -q "only an aborted rollout can be retried" "$WORK/err" || fail "the refusal says why"

kc promote web >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Healthy
second=$(k get cro web -o jsonpath='{.status.stableRevision}')
[ "$second" != "$first" ] || fail "promoted to a new revision"

# Undo: the first revision comes back through the steps; abort it and retry it.
kc undo web >/dev/null
wait_for cro/web --for=jsonpath='{.status.currentRevision}'="$first"
wait_for cro/web --for=jsonpath='{.status.phase}'=Paused
kc abort web >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Aborted
expect_eq "$(k get cro web -o jsonpath='{.status.stableRevision}')" "$second" "abort keeps the stable revision"
kc retry web >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Paused
kc promote web --full >/dev/null
wait_for cro/web --for=jsonpath='{.status.phase}'=Healthy
expect_eq "$(k get cro web -o jsonpath='{.status.stableRevision}')" "$first" "undone to the first revision"

kc get nosuch 2>"$WORK/err" && fail "a missing rollout is an error"
grep -q "rollout \"nosuch\" not found in namespace \"$NS\"" "$WORK/err" || fail "the error names it"

stop_dev
echo "plugin e2e: ok"
