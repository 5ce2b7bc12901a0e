# Shared helpers of the e2e scripts. Each script runs against one of three targets:
# - E2E_TESTBED=DIR: the real control plane of `e2e/testbed up DIR`; the script's
#   namespace is made unique and the operator runs as the chart's ServiceAccount, watching
#   only that namespace (so scripts can run side by side);
# - E2E_KUBECONFIG=FILE: a user's cluster with cutover already installed;
# - neither: `cutover dev` (the sim, with the operator embedded).
# Scripts set NS before `start_dev` and address objects through "$NS".
set -euo pipefail

CUTOVER=${CUTOVER:-cutover}
WORK=$(mktemp -d)
DEV_PID=""
OPERATOR_PID=""
TARGET=sim

cleanup() {
  if [ "$TARGET" = testbed ] && [ -n "${NS:-}" ]; then
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
  for pid in "$OPERATOR_PID" "$DEV_PID"; do
    if [ -n "$pid" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$WORK/operator.log" ]; then
    echo "--- operator log (last 40 lines) ---" >&2
    tail -n 40 "$WORK/operator.log" >&2
  fi
  exit 1
}

# Starts the target: `cutover dev` on a free port (`--api-only` for no operator), or on the
# test bed, the operator for "$NS" (none with `--api-only`), and points kubectl at it.
start_dev() {
  if [ -n "${E2E_TESTBED:-}" ]; then
    TARGET=testbed
    export KUBECONFIG="$E2E_TESTBED/admin.kubeconfig"
    NS="$NS-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
    echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
    [ "${1:-}" = "--api-only" ] && return
    "$CUTOVER" run --namespace "$NS" --kubeconfig "$E2E_TESTBED/operator.kubeconfig" \
      --metrics-addr 127.0.0.1:0 --log-format json >"$WORK/operator.log" 2>&1 &
    OPERATOR_PID=$!
    return
  fi
  if [ -n "${E2E_KUBECONFIG:-}" ]; then
    TARGET=cluster
    export KUBECONFIG="$E2E_KUBECONFIG"
    return
  fi
  "$CUTOVER" dev --listen 127.0.0.1:0 --kubeconfig "$WORK/kubeconfig" "$@" >"$WORK/dev.log" 2>&1 &
  DEV_PID=$!
  for _ in $(seq 1 100); do
    grep -q "ready" "$WORK/dev.log" 2>/dev/null && break
    kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.log" >&2; fail "cutover dev exited"; }
    sleep 0.1
  done
  grep -q "ready" "$WORK/dev.log" || { cat "$WORK/dev.log" >&2; fail "cutover dev did not become ready"; }
  export KUBECONFIG="$WORK/kubeconfig"
}

# Stops `cutover dev` (or the test bed's operator) with SIGTERM and checks that it exits
# cleanly.
stop_dev() {
  local pid=${DEV_PID:-$OPERATOR_PID}
  [ -n "$pid" ] || return 0
  if [ "$TARGET" = testbed ]; then
    # Namespaces go before the operator that removes their finalizers.
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
  kill -TERM "$pid"
  local status=0
  wait "$pid" || status=$?
  DEV_PID=""
  OPERATOR_PID=""
  [ "$status" = 0 ] || { cat "$WORK/dev.log" "$WORK/operator.log" >&2 2>/dev/null; fail "the operator exited with $status on SIGTERM"; }
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
  [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

# expect_out PATTERN WHAT CMD...: runs CMD once and fails, showing its output, unless the
# output (stdout and stderr) matches the basic regular expression PATTERN. The output is
# captured first: piping into `grep -q` under pipefail fails when grep exits early and the
# writer is killed by SIGPIPE.
expect_out() {
  local pattern=$1 what=$2 out status=0
  shift 2
  out=$("$@" 2>&1) || status=$?
  [ "$status" = 0 ] || fail "$what: '$*' exited with $status:"$'\n'"$out"
  grep -q -- "$pattern" <<<"$out" || fail "$what: expected /$pattern/ in:"$'\n'"$out"
}

# argocd_health KIND NAME: the Argo CD health (`Status: message`) of an object, from the
# Lua check in config/argocd/ run with Lua 5.1.
argocd_health() {
  kubectl -n "$NS" get "$1" "$2" -o json | python3 "$(dirname "${BASH_SOURCE[0]}")/argocd_lua.py" health "$1"
}

# argocd_actions KIND NAME: the Argo CD resource actions enabled on the object, sorted.
argocd_actions() {
  kubectl -n "$NS" get "$1" "$2" -o json | python3 "$(dirname "${BASH_SOURCE[0]}")/argocd_lua.py" actions "$1" | tr '\n' ' '
}

# argocd_action KIND NAME ACTION: runs the Argo CD resource action and writes its result
# back, as Argo CD does when a person picks the action.
argocd_action() {
  kubectl -n "$NS" get "$1" "$2" -o json \
    | python3 "$(dirname "${BASH_SOURCE[0]}")/argocd_lua.py" action "$1" "$3" \
    | kubectl -n "$NS" replace -f - >/dev/null || fail "Argo CD action $3 on $1/$2"
}

# expect_health KIND NAME STATUS: fails unless the Argo CD health of the object is STATUS.
expect_health() {
  local got
  got=$(argocd_health "$1" "$2") || fail "the Argo CD health check of $1/$2 failed"
  [ "${got%%:*}" = "$3" ] || fail "Argo CD health of $1/$2: expected $3, got '$got'"
}

# plugin ARGS...: `kubectl cutover ARGS`, the plugin found on PATH as kubectl finds it.
plugin() {
  if [ ! -e "$WORK/bin/kubectl-cutover" ]; then
    mkdir -p "$WORK/bin"
    ln -s "$(realpath "$(command -v "$CUTOVER")")" "$WORK/bin/kubectl-cutover"
  fi
  PATH="$WORK/bin:$PATH" kubectl cutover -n "$NS" "$@"
}

# expect_kstatus KIND NAME STATUS: fails unless the kstatus library (sigs.k8s.io/cli-utils,
# as Flux reads health) computes STATUS (Current, InProgress, Failed) for the object. The
# checker in e2e/kstatus is built on first use and rebuilt when its source changes.
expect_kstatus() {
  local root bin got
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  bin="$root/target/e2e-kstatus"
  if [ ! -x "$bin" ] || [ "$root/e2e/kstatus/main.go" -nt "$bin" ] || [ "$root/e2e/kstatus/go.sum" -nt "$bin" ]; then
    (cd "$root/e2e/kstatus" && go build -o "$bin.$$" . && mv -f "$bin.$$" "$bin") >&2 \
      || fail "cannot build the kstatus checker"
  fi
  got=$(kubectl -n "$NS" get "$1" "$2" -o json | "$bin") || fail "kstatus could not read $1/$2"
  [ "${got%%:*}" = "$3" ] || fail "kstatus of $1/$2: expected $3, got '$got'"
}

# operator_log: the log of the operator under test (cutover dev's own, or the test bed's).
operator_log() {
  if [ "$TARGET" = testbed ]; then cat "$WORK/operator.log"; else cat "$WORK/dev.log"; fi
}
