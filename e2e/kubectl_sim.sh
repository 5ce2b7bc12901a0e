#!/usr/bin/env bash
# Real kubectl against `cutover dev`: the verbs users run, with their expected results.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
examples="$here/../examples"

NS=e2e
start_dev --api-only
[ "$TARGET" = testbed ] || echo "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$NS\"}}" | kubectl apply -f - >/dev/null
n() { kubectl -n "$NS" "$@"; }

# the CRD install the operator's missing-CRD error suggests works where they are installed
out=$("$CUTOVER" crd | kubectl apply --server-side -f - 2>&1) || fail "cutover crd | kubectl apply --server-side: $out"

# server-side apply, then client-side apply of another manifest, twice (the second is a no-op)
n apply --server-side -f "$examples/canary.yaml" >/dev/null
n apply -f "$examples/bluegreen.yaml" >/dev/null
out=$(n apply -f "$examples/bluegreen.yaml")
grep -q "rollout.cutover.dev/api unchanged" <<<"$out" || fail "re-apply should be unchanged: $out"

# get with printer columns, short name and category
names=$(n get cro -o name | sort | tr '\n' ' ')
expect_eq "$names" "rollout.cutover.dev/api rollout.cutover.dev/web " "get cro"
expect_out "^rollout.cutover.dev/web" "get cutover (the category)" n get cutover
expect_out "^NAME *STRATEGY *PHASE *STEP *WEIGHT *STABLE *CURRENT *AGE" "printer columns" n get cro web
expect_eq "$(n get cro web -o jsonpath='{.spec.strategy.canary.steps[0].setWeight}')" "20" "get -o jsonpath"
expect_out "stableService: web" "get -o yaml" n get cro web -o yaml

# a watch sees a status change
n get cro web -w --request-timeout=30s >"$WORK/watch.out" 2>&1 &
watch_pid=$!
# The watch has listed the Rollout (not yet Healthy) before the status changes, so the
# change can only reach it through the watch.
for _ in $(seq 1 100); do grep -q "^web " "$WORK/watch.out" && break; sleep 0.1; done
grep -q "^web " "$WORK/watch.out" || { cat "$WORK/watch.out"; fail "get -w listed nothing"; }
grep -q "Healthy" "$WORK/watch.out" && fail "the Rollout was Healthy before the status change"
n patch cro web --subresource=status --type merge \
  -p '{"status":{"phase":"Healthy","strategy":"Canary","conditions":[{"type":"Available","status":"True","reason":"Serving","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}' >/dev/null
for _ in $(seq 1 100); do grep -q "Healthy" "$WORK/watch.out" && break; sleep 0.1; done
kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null || true
grep -q "Healthy" "$WORK/watch.out" || { cat "$WORK/watch.out"; fail "get -w did not show the status change"; }

# kubectl explain reads the published OpenAPI, for custom and built-in kinds
expect_out "FIELD: strategy <Object>" "explain a Rollout field" kubectl explain rollout.spec.strategy
expect_out "^  canary" "explain lists the strategies" kubectl explain rollout.spec.strategy
expect_out "FIELD: replicas <integer>" "explain a Deployment field" kubectl explain deployment.spec.replicas
expect_out "^KIND: *Pod" "explain a core kind" kubectl explain pods

# wait for a condition
n wait --for=condition=Available cro/web --timeout=10s >/dev/null || fail "kubectl wait"

# scale through the scale subresource
n scale cro web --replicas=4 >/dev/null
expect_eq "$(n get cro web -o jsonpath='{.spec.replicas}')" "4" "scale"

# the API server rejects invalid manifests with the schema's message
out=$(n apply --server-side -f "$examples/invalid/weight-over-100.yaml" 2>&1 || true)
grep -q "should be less than or equal to 100" <<<"$out" || fail "invalid manifest accepted: $out"

# kubectl diff and server-side dry runs answer with the change and write nothing
rv=$(n get cro web -o jsonpath='{.metadata.resourceVersion}')
sed 's#web:1\.0\.0#web:9.9.9#' "$examples/canary.yaml" >"$WORK/changed.yaml"
grep -q 'web:9.9.9' "$WORK/changed.yaml" || fail "the example's image moved; update this test"
rc=0; out=$(n diff -f "$WORK/changed.yaml" 2>&1) || rc=$?
expect_eq "$rc" "1" "kubectl diff exits 1 on a difference: $out"
grep -q '^+.*image: .*web:9.9.9' <<<"$out" || fail "kubectl diff shows no new image: $out"
rc=0; out=$(n diff --server-side --force-conflicts -f "$WORK/changed.yaml" 2>&1) || rc=$?
expect_eq "$rc" "1" "kubectl diff --server-side exits 1 on a difference: $out"
out=$(n patch cro web --type merge -p '{"spec":{"replicas":9}}' --dry-run=server -o jsonpath='{.spec.replicas}')
expect_eq "$out" "9" "patch --dry-run=server answers with the patched object"
n annotate cro web note=dry --dry-run=server >/dev/null
n label cro web tier=dry --dry-run=server >/dev/null
n delete cro web --dry-run=server >/dev/null
expect_eq "$(n get cro web -o jsonpath='{.metadata.resourceVersion}')" "$rv" "dry runs stored nothing"
expect_eq "$(n get cro web -o jsonpath='{.spec.replicas}/{.metadata.annotations.note}')" "4/" "dry runs changed nothing"

# kubectl's imperative commands send protobuf bodies; what they create reads back as sent
imp_ns="imp-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
expect_out "namespace/$imp_ns created" "create namespace" kubectl create namespace "$imp_ns"
i() { kubectl -n "$imp_ns" "$@"; }
expect_out "configmap/settings created" "create configmap" i create configmap settings --from-literal=mode=fast
expect_out "secret/creds created" "create secret" i create secret generic creds --from-literal=password=s3cret
expect_out "deployment.apps/shop created" "create deployment" i create deployment shop --image=nginx:1.27 --replicas=2 --port=8080
expect_out "job.batch/once created" "create job" i create job once --image=busybox -- echo hi
expect_out "service/shop created" "create service" i create service clusterip shop --tcp=80:8080
expect_out "serviceaccount/deployer created" "create serviceaccount" i create serviceaccount deployer
expect_eq "$(i get cm settings -o jsonpath='{.data.mode}')" "fast" "the configmap's data"
expect_eq "$(i get secret creds -o jsonpath='{.data.password}' | base64 -d)" "s3cret" "the secret's data"
expect_eq "$(i get deploy shop -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}')" \
  "2 nginx:1.27 8080" "the deployment's spec"
expect_eq "$(i get job once -o jsonpath='{.spec.template.spec.containers[0].command}')" '["echo","hi"]' "the job's command"
expect_eq "$(i get svc shop -o jsonpath='{.spec.ports[0].port}/{.spec.ports[0].targetPort}')" "80/8080" "the service's port"
expect_out "^shop .*80/TCP" "the service's PORT(S) column" i get svc shop
i get sa deployer >/dev/null || fail "get serviceaccount"
# ... and the edits that follow them
i scale deployment shop --replicas=3 >/dev/null
i label deployment shop tier=frontend >/dev/null
i annotate deployment shop owner=team-a >/dev/null
i set image deployment/shop nginx=nginx:1.28 >/dev/null
i rollout restart deployment/shop >/dev/null
printf '#!/bin/sh\nsed -i "s/mode: fast/mode: slow/" "$1"\n' >"$WORK/editor.sh"
chmod +x "$WORK/editor.sh"
expect_out "configmap/settings edited" "kubectl edit" env KUBE_EDITOR="$WORK/editor.sh" kubectl -n "$imp_ns" edit configmap settings
expect_eq "$(i get cm settings -o jsonpath='{.data.mode}')" "slow" "edit changed the configmap"
expect_eq "$(i get deploy shop -o jsonpath='{.spec.replicas} {.metadata.labels.tier} {.metadata.annotations.owner} {.spec.template.spec.containers[0].image}')" \
  "3 frontend team-a nginx:1.28" "scale, label, annotate and set image"
[ -n "$(i get deploy shop -o jsonpath='{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}')" ] ||
  fail "rollout restart stamped no restartedAt"
out=$(i create deployment shop --image=nginx 2>&1 || true)
grep -q 'AlreadyExists\|already exists' <<<"$out" || fail "a second create should conflict: $out"
kubectl delete namespace "$imp_ns" --wait=false >/dev/null

# delete
n delete cro web >/dev/null
out=$(n get cro web 2>&1 || true)
grep -q "NotFound" <<<"$out" || fail "delete: $out"

stop_dev
echo "kubectl e2e against cutover dev: ok"
