# Shared helpers of the e2e scripts: start `cutover dev` (unless KUBECONFIG points at a real
# cluster), assert with kubectl, clean up on exit.
set -euo pipefail

CUTOVER=${CUTOVER:-cutover}
WORK=$(mktemp -d)
DEV_PID=""

cleanup() {
  if [ -n "$DEV_PID" ]; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    wait "$DEV_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts `cutover dev` on a free port and points kubectl at it.
start_dev() {
  if [ -n "${E2E_KUBECONFIG:-}" ]; then
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

# Stops `cutover dev` with SIGTERM and checks that it exits cleanly.
stop_dev() {
  [ -n "$DEV_PID" ] || return 0
  kill -TERM "$DEV_PID"
  local status=0
  wait "$DEV_PID" || status=$?
  DEV_PID=""
  [ "$status" = 0 ] || { cat "$WORK/dev.log" >&2; fail "cutover dev exited with $status on SIGTERM"; }
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
  [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}
