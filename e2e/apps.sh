#!/usr/bin/env bash
# What a team tries first on a cluster: install cutover's chart with Helm, and apply their
# own application's manifests (every kind a typical service carries), with the real Helm
# engine and the real kubectl.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

NS=apps
start_dev --api-only
[ "$TARGET" = testbed ] || kubectl create namespace "$NS" >/dev/null
n() { kubectl -n "$NS" "$@"; }
kubeconfig=$KUBECONFIG

# --- helm install, upgrade and uninstall of the chart ---
release="cycle-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
helm_ns="$NS-helm"
helm() { python3 "$here/helm_cycle.py" "$1" --kubeconfig "$kubeconfig" --namespace "$helm_ns" --release "$release" "${@:2}"; }
expect_out "helm install $release: deployed" "helm install" helm install --chart "$here/../charts/cutover"
h() { kubectl -n "$helm_ns" "$@"; }
full="$release-cutover"
expect_eq "$(h get deploy "$full" -o jsonpath='{.spec.replicas}')" "2" "the chart's Deployment"
h get sa "$full" >/dev/null || fail "the chart's ServiceAccount"
h get svc "$full-metrics" >/dev/null || fail "the chart's Service"
h get pdb "$full" >/dev/null || fail "the chart's PodDisruptionBudget"
kubectl get clusterrole "$full" >/dev/null || fail "the chart's ClusterRole"
kubectl get clusterrolebinding "$full" >/dev/null || fail "the chart's ClusterRoleBinding"
expect_eq "$(h get secret -l owner=helm,name="$release" -o jsonpath='{.items[*].metadata.name}')" \
  "sh.helm.release.v1.$release.v1" "Helm's release Secret"
expect_out "helm upgrade $release: deployed" "helm upgrade" helm upgrade --chart "$here/../charts/cutover" --values '{"replicaCount": 3}'
expect_eq "$(h get deploy "$full" -o jsonpath='{.spec.replicas}')" "3" "the upgrade's replicas"
expect_eq "$(h get secret -l owner=helm,name="$release" -o jsonpath='{.items[*].metadata.labels.status}' | tr ' ' '\n' | sort | tr '\n' ' ')" \
  "deployed superseded " "Helm's release history"
expect_out "helm uninstall $release: uninstalled" "helm uninstall" helm uninstall
for what in "deploy $full" "sa $full" "svc $full-metrics" "pdb $full"; do
  # shellcheck disable=SC2086
  out=$(h get $what 2>&1 || true)
  grep -q NotFound <<<"$out" || fail "uninstall left $what: $out"
done
out=$(kubectl get clusterrole "$full" 2>&1 || true)
grep -q NotFound <<<"$out" || fail "uninstall left the ClusterRole: $out"
expect_eq "$(h get secret -l owner=helm,name="$release" -o name)" "" "uninstall removes the release Secrets"
kubectl delete namespace "$helm_ns" --wait=false >/dev/null

# --- an application's own manifests ---
bundle="$here/fixtures/app-bundle.yaml"
kinds="serviceaccount/shop configmap/shop-config secret/shop-db role.rbac.authorization.k8s.io/shop-reader
rolebinding.rbac.authorization.k8s.io/shop-reader deployment.apps/shop-worker service/shop
ingress.networking.k8s.io/shop horizontalpodautoscaler.autoscaling/shop poddisruptionbudget.policy/shop
networkpolicy.networking.k8s.io/shop cronjob.batch/shop-cleanup persistentvolumeclaim/shop-uploads
statefulset.apps/shop-cache rollout.cutover.dev/shop"
out=$(n apply -f "$bundle" 2>&1) || fail "kubectl apply of the bundle: $out"
for object in $kinds; do grep -q "^$object created" <<<"$out" || fail "apply did not create $object: $out"; done
# Applied again, the objects whose defaults kubectl's three-way merge sees as changes (a
# NetworkPolicy port's protocol, a StatefulSet's claim templates, a PDB's selector, a
# Secret's stringData) report "configured", the rest "unchanged", as on kube-apiserver.
out=$(n apply -f "$bundle" 2>&1) || fail "second apply: $out"
configured=$(grep ' configured$' <<<"$out" | sed 's/ configured$//' | sort | tr '\n' ' ')
expect_eq "$configured" "networkpolicy.networking.k8s.io/shop poddisruptionbudget.policy/shop secret/shop-db statefulset.apps/shop-cache " \
  "what a second apply reconfigures"
# Server-side apply, into a namespace of its own: on top of the client-side apply a real
# API server reports conflicts with the fields it defaulted.
ssa_ns="$NS-ssa"
kubectl create namespace "$ssa_ns" >/dev/null
for round in first second; do
  out=$(kubectl -n "$ssa_ns" apply --server-side -f "$bundle" 2>&1) || fail "$round kubectl apply --server-side of the bundle: $out"
  for object in $kinds; do grep -q "^$object serverside-applied" <<<"$out" || fail "$round server-side apply of $object: $out"; done
done
kubectl delete namespace "$ssa_ns" --wait=false >/dev/null
all=$(n get all -o name 2>&1) || fail "get all: $all"
for object in deployment.apps/shop-worker service/shop statefulset.apps/shop-cache \
  horizontalpodautoscaler.autoscaling/shop cronjob.batch/shop-cleanup; do
  grep -q "^$object$" <<<"$all" || fail "get all lists no $object: $all"
done
expect_eq "$(n get hpa shop -o jsonpath='{.spec.scaleTargetRef.kind}/{.spec.minReplicas}')" "Rollout/2" "the HPA's target"
expect_eq "$(n get ing shop -o jsonpath='{.spec.rules[0].http.paths[0].backend.service.port.number}')" "80" "the Ingress"
expect_eq "$(n get sts shop-cache -o jsonpath='{.spec.volumeClaimTemplates[0].spec.resources.requests.storage}')" "1Gi" "the StatefulSet"
# kubectl explain describes the kinds an application brings
expect_out "FIELD: serviceName <string>" "explain a StatefulSet field" kubectl explain statefulset.spec.serviceName
expect_out "FIELD: minAvailable <" "explain a PodDisruptionBudget field" kubectl explain pdb.spec.minAvailable
expect_out "FIELD: scaleTargetRef <CrossVersionObjectReference>" "explain an HPA field" kubectl explain hpa.spec.scaleTargetRef
# the HPA scales the Rollout through its scale subresource
expect_eq "$(kubectl get --raw "/apis/cutover.dev/v1alpha1/namespaces/$NS/rollouts/shop/scale" | python3 -c 'import json, sys; print(json.load(sys.stdin)["spec"]["replicas"])')" "2" "the Rollout's scale"
# a kind the API server does not know is refused by name
out=$(printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n' | n apply -f - 2>&1 || true)
grep -q 'no matches for kind "Widget"' <<<"$out" || fail "an unknown kind: $out"

# imperative creates of the new kinds send protobuf too
expect_out "role.rbac.authorization.k8s.io/pod-reader created" "create role" n create role pod-reader --verb=get,list --resource=pods
expect_out "rolebinding.rbac.authorization.k8s.io/pod-reader created" "create rolebinding" n create rolebinding pod-reader --role=pod-reader --serviceaccount="$NS:shop"
expect_out "cronjob.batch/nightly created" "create cronjob" n create cronjob nightly --image=busybox --schedule='0 1 * * *' -- echo hi
expect_out "ingress.networking.k8s.io/web created" "create ingress" n create ingress web --rule='web.example.com/*=shop:80'
expect_out "poddisruptionbudget.policy/web created" "create pdb" n create pdb web --selector=app=shop --min-available=1
expect_out "resourcequota/small created" "create quota" n create quota small --hard=pods=10
expect_eq "$(n get role pod-reader -o jsonpath='{.rules[0].verbs}')" '["get","list"]' "the role's verbs"
expect_eq "$(n get cronjob nightly -o jsonpath='{.spec.schedule}')" "0 1 * * *" "the cronjob's schedule"
expect_eq "$(n get ingress web -o jsonpath='{.spec.rules[0].host} {.spec.rules[0].http.paths[0].pathType}')" "web.example.com Prefix" "the ingress rule"
expect_eq "$(n get pdb web -o jsonpath='{.spec.minAvailable}')" "1" "the pdb"

# the namespace takes everything in it along
kubectl delete namespace "$NS" --timeout=60s >/dev/null || fail "delete namespace"
for object in $kinds; do
  out=$(n get "$object" 2>&1 || true)
  grep -q NotFound <<<"$out" || fail "$object outlived its namespace: $out"
done
echo "helm and application manifests against $TARGET: ok"
