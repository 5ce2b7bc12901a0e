#!/usr/bin/env bash
# MigrationJobs driven with real kubectl against `cutover dev` (or the cluster in
# E2E_KUBECONFIG): one that succeeds and is not rerun, one that fails with its log in
# `kubectl describe`, a Rollout gated by a migration, and a rollback asked for by hand.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NS=e2e-migrations
start_dev
[ "$TARGET" = testbed ] || echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
k() { kubectl -n "$NS" "$@"; }
wait_for() { k wait "$@" --timeout=90s >/dev/null || { k get mj,cro -o yaml >&2; fail "wait $*"; }; }
migration() {  # name image pod-annotations-json
  cat <<YAML | k apply --server-side -f - >/dev/null
apiVersion: cutover.dev/v1alpha1
kind: MigrationJob
metadata: {name: $1}
spec:
  lockKey: orders-db
  template:
    metadata: {annotations: $3}
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "$2", args: [up]}]
  rollback:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: migrate, image: "$2", args: [down]}]
YAML
}

# --- a migration that succeeds, and stays done -----------------------------------------
migration add-column migrate:1 '{}'
wait_for mj/add-column --for=condition=Ready
expect_eq "$(k get mj add-column -o jsonpath='{.status.phase}')" "Succeeded" "migration succeeded"
expect_health migrationjob add-column Healthy
expect_kstatus migrationjob add-column Current
expect_out "Succeeded" "printer columns" k get mj add-column
job=$(k get mj add-column -o jsonpath='{.status.jobName}')
expect_eq "$(k get jobs -l cutover.dev/migration=add-column -o name | wc -l | tr -d ' ')" "1" "one Job"
# Re-applied unchanged: the API server stores nothing new, so nothing can wake a rerun.
version=$(k get mj add-column -o jsonpath='{.metadata.resourceVersion}')
migration add-column migrate:1 '{}'
expect_eq "$(k get mj add-column -o jsonpath='{.metadata.resourceVersion}')" "$version" "an unchanged apply writes nothing"
expect_eq "$(k get jobs -l cutover.dev/migration=add-column -o name | wc -l | tr -d ' ')" "1" "still one Job"
expect_eq "$(k get mj add-column -o jsonpath='{.status.jobName}')" "$job" "same Job"

# --- a migration that fails, readable with kubectl describe ---------------------------
migration broken migrate:2 '{"sim.cutover.dev/fail-attempts": "always", "sim.cutover.dev/log": "ERROR: relation orders is locked"}'
wait_for mj/broken --for=jsonpath='{.status.phase}'=Failed
wait_for mj/broken --for=condition=Stalled
expect_health migrationjob broken Degraded
expect_kstatus migrationjob broken Failed
expect_out "relation orders is locked" "the log tail in describe" k describe mj broken
expect_eq "$(k get mj broken -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" "BackoffLimitExceeded" "failure reason"

# --- a Rollout gated by a migration ----------------------------------------------------
cat <<'YAML' | k apply --server-side -f - >/dev/null
apiVersion: cutover.dev/v1alpha1
kind: Rollout
metadata: {name: orders}
spec:
  replicas: 4
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec: {containers: [{name: app, image: "orders:1"}]}
  migrations: {before: [add-column]}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {duration: 2s}}]}}
YAML
wait_for cro/orders --for=jsonpath='{.status.phase}'=Healthy
# Long enough that the checks below run while it lasts, however slow the machine.
migration add-column migrate:3 '{"sim.cutover.dev/duration": "20s"}'
k patch cro orders --type merge -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"orders:2"}]}}}}' >/dev/null
wait_for cro/orders --for=jsonpath='{.status.conditions[?(@.type=="Progressing")].reason}'=WaitingForMigrations
expect_eq "$(k get deploy -l cutover.dev/rollout=orders -o jsonpath='{.items[*].spec.template.spec.containers[0].image}')" "orders:1" "no pod of the new version yet"
wait_for cro/orders --for=jsonpath='{.status.phase}'=Healthy
expect_eq "$(k get cro orders -o jsonpath='{.status.stableRevision}')" "$(k get cro orders -o jsonpath='{.status.currentRevision}')" "rolled out after the migration"

# --- a rollback asked for by hand --------------------------------------------------------
k annotate mj add-column cutover.dev/rollback=by-hand >/dev/null
wait_for mj/add-column --for=jsonpath='{.status.phase}'=RolledBack
expect_eq "$(k get jobs -l cutover.dev/migration=add-column,cutover.dev/role=rollback -o name | wc -l | tr -d ' ')" "1" "one rollback Job"

# --- an abort rolls the migration back; a retry of the Rollout runs it again ------------
k annotate mj add-column cutover.dev/retry=by-hand >/dev/null
wait_for mj/add-column --for=condition=Ready
k patch cro orders --type merge -p '{"spec":{"migrations":{"rollbackOnAbort":true},"strategy":{"canary":{"steps":[{"setWeight":50},{"pause":{}}]}},"template":{"spec":{"containers":[{"name":"app","image":"orders:3"}]}}}}' >/dev/null
wait_for cro/orders --for=jsonpath='{.status.phase}'=Paused
k annotate cro orders cutover.dev/abort=1 >/dev/null
wait_for cro/orders --for=jsonpath='{.status.phase}'=Aborted
wait_for mj/add-column --for=jsonpath='{.status.phase}'=RolledBack
k annotate cro orders cutover.dev/retry=1 >/dev/null
wait_for mj/add-column --for=jsonpath='{.status.phase}'=Succeeded
wait_for cro/orders --for=jsonpath='{.status.phase}'=Paused
expect_eq "$(k get cro orders -o jsonpath='{.status.currentStepIndex}')" "1" "the retried rollout is back at its gate"
expect_eq "$(k get cro orders -o jsonpath='{.status.canaryWeight}')" "50" "the new version serves again"

stop_dev
echo "migrations e2e: ok"
