//! The operator against the real control plane: kube-apiserver, etcd and
//! kube-controller-manager built from their Go modules, fake nodes, the CRDs from `crds/`
//! and the chart installed by the Helm engine. The operator runs as a process outside the
//! cluster with the chart ServiceAccount's token, so it has exactly the chart's RBAC.

#[path = "support/testbed.rs"]
mod testbed;

use std::{process::Command, time::Duration};

use cutover::api::{FeatureFlag, FlagPhase, MigrationJob, Rollout, RolloutPhase};
use k8s_openapi::api::{
    apps::v1::Deployment,
    autoscaling::v2::HorizontalPodAutoscaler,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Namespace, Secret, Service},
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use testbed::{Testbed, eventually, set_image};

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

fn kubectl(bed: &Testbed, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(bed.admin_kubeconfig())
        .args(args)
        .output()
        .expect("kubectl runs")
}

fn rollout(name: &str, replicas: i32, strategy: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": format!("{name}:1")}]}},
            "strategy": strategy}
    }))
    .expect("a rollout")
}

async fn annotate(api: &Api<Rollout>, name: &str, key: &str) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default();
    let patch = json!({"metadata": {"annotations": {key: stamp}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotated");
}

async fn phase_is(api: &Api<Rollout>, name: &str, phase: RolloutPhase) -> Option<Rollout> {
    let r = api.get(name).await.ok()?;
    let status = r.status.as_ref()?;
    (status.phase == phase && status.observed_generation == r.metadata.generation).then_some(r)
}

async fn wait_phase(api: &Api<Rollout>, name: &str, phase: RolloutPhase) -> Rollout {
    eventually(&format!("{name} {phase:?}"), LIMIT, async || {
        phase_is(api, name, phase).await
    })
    .await
}

fn go_mod_kubernetes_version() -> String {
    let go_mod =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/cluster/go.mod"))
            .expect("e2e/cluster/go.mod");
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .or_else(|| {
            go_mod.lines().find_map(|l| {
                let l = l.trim();
                l.strip_prefix("k8s.io/kubernetes ")
                    .filter(|v| v.starts_with('v'))
            })
        })
        .expect("k8s.io/kubernetes is pinned")
        .trim()
        .to_string()
}

#[test]
fn kubectl_version_reports_the_real_server_version() {
    let bed = testbed::shared();
    let out = kubectl(bed, &["version", "-o", "json"]);
    let version: Value = serde_json::from_slice(&out.stdout).expect("kubectl version -o json");
    assert_eq!(
        version["serverVersion"]["gitVersion"],
        json!(go_mod_kubernetes_version()),
        "{version}"
    );
}

/// The resources a group version serves, as (kind, plural, namespaced, subresources).
fn served(out: &Value) -> Vec<(String, String, bool, Vec<String>)> {
    let resources = out["resources"].as_array().cloned().unwrap_or_default();
    let mut found: Vec<_> = resources
        .iter()
        .filter_map(|r| r["name"].as_str().map(|n| (n, r)))
        .filter(|(name, _)| !name.contains('/'))
        .map(|(plural, r)| {
            let mut subresources: Vec<String> = resources
                .iter()
                .filter_map(|s| s["name"].as_str())
                .filter_map(|s| s.strip_prefix(&format!("{plural}/")))
                .map(String::from)
                .collect();
            subresources.sort();
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                plural.to_string(),
                r["namespaced"].as_bool().unwrap_or_default(),
                subresources,
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn the_sims_built_in_kinds_are_those_the_real_api_server_serves() {
    // src/sim/kubernetes-discovery.json is what `cutover dev` serves; it must be what the
    // pinned kube-apiserver serves, or `scripts/kube-discovery` is due.
    let bed = testbed::shared();
    let raw = |path: &str| -> Value {
        let out = kubectl(bed, &["get", "--raw", path]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let mut live = Vec::new();
    for (kind, plural, namespaced, subresources) in served(&raw("/api/v1")) {
        live.push((
            "".to_string(),
            "v1".to_string(),
            kind,
            plural,
            namespaced,
            subresources,
        ));
    }
    for group in raw("/apis")["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = group["name"].as_str().unwrap_or_default().to_string();
        if name.ends_with("cutover.dev") {
            continue;
        }
        let version = group["preferredVersion"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for (kind, plural, namespaced, subresources) in
            served(&raw(&format!("/apis/{name}/{version}")))
        {
            live.push((
                name.clone(),
                version.clone(),
                kind,
                plural,
                namespaced,
                subresources,
            ));
        }
    }
    let file: Value =
        serde_json::from_str(include_str!("../src/sim/kubernetes-discovery.json")).unwrap();
    let mut published: Vec<_> = file
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let mut subresources: Vec<String> = r["subresources"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            subresources.sort();
            (
                s("group"),
                s("version"),
                s("kind"),
                s("plural"),
                r["namespaced"].as_bool().unwrap(),
                subresources,
            )
        })
        .collect();
    live.sort();
    published.sort();
    assert_eq!(
        published, live,
        "run scripts/kube-discovery against the test bed"
    );
}

#[test]
fn kubectl_explain_prints_the_field_documentation_from_the_crds() {
    let bed = testbed::shared();
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crds/rollouts.cutover.dev.yaml"
        ))
        .expect("the CRD file"),
    )
    .expect("CRD YAML");
    let description = crd.pointer(
        "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/strategy/description",
    )
    .and_then(Value::as_str)
    .expect("strategy has a description");
    let out = kubectl(bed, &["explain", "rollout.spec.strategy"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // kubectl wraps lines; compare word by word.
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let first: Vec<String> = words(description).into_iter().take(6).collect();
    assert!(
        words(&text)
            .windows(first.len())
            .any(|w| w == first.as_slice()),
        "explain does not show {description:?}:\n{text}"
    );
    assert!(text.contains("canary"), "{text}");
}

#[tokio::test]
async fn the_operator_token_is_refused_what_the_chart_does_not_grant() {
    let bed = testbed::shared();
    let client = bed.operator_client().await;
    // The test bed installs the chart with rbac.readSecrets=false.
    let err = Api::<Secret>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect_err("listing Secrets must be refused");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected a 403, got {other}"),
    }
    // What the chart grants works with the same token.
    Api::<Rollout>::all(client)
        .list(&ListParams::default())
        .await
        .expect("the chart grants listing Rollouts");
}

#[tokio::test]
async fn every_crd_is_established_and_the_chart_installed_its_objects() {
    let bed = testbed::shared();
    let out = kubectl(
        bed,
        &["get", "crd", "-o", "jsonpath={.items[*].metadata.name}"],
    );
    let names = String::from_utf8_lossy(&out.stdout).to_string();
    for crd in cutover::api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        assert!(names.contains(&name), "{name} missing from {names}");
    }
    let out = kubectl(
        bed,
        &[
            "-n",
            "cutover-system",
            "get",
            "deploy,sa,pdb,svc",
            "-l",
            "app.kubernetes.io/name=cutover",
            "-o",
            "name",
        ],
    );
    let objects = String::from_utf8_lossy(&out.stdout).to_string();
    for kind in [
        "deployment.apps/",
        "serviceaccount/",
        "poddisruptionbudget.policy/",
        "service/",
    ] {
        assert!(
            objects.contains(kind),
            "the chart's {kind} missing: {objects}"
        );
    }
    let out = kubectl(
        bed,
        &[
            "-n",
            "cutover-system",
            "get",
            "configmap",
            "cutover-dashboard",
            "-o",
            "jsonpath={.data.cutover\\.json}",
        ],
    );
    let installed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the dashboard ConfigMap holds JSON: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/cutover/files/dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        installed, file,
        "the chart ships the dashboard as it is kept"
    );
}

#[tokio::test]
async fn a_canary_is_aborted_retried_and_undone_on_the_real_control_plane() {
    let bed = testbed::shared();
    let ns = bed.namespace("canary").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let r = rollout(
        "web",
        4,
        json!({"canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "1s"}}]}}),
    );
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let first = wait_phase(&api, "web", RolloutPhase::Healthy).await;
    let stable = first
        .status
        .and_then(|s| s.stable_revision)
        .expect("stable");

    set_image(&api, "web", "web:2").await;
    let paused = wait_phase(&api, "web", RolloutPhase::Paused).await;
    let status = paused.status.expect("status");
    let canary = status.current_revision.expect("current");
    assert_ne!(canary, stable);
    assert_eq!(status.canary_weight, Some(25));
    // One of four pods runs the canary, and kube-controller-manager made them available.
    let canary_deploy = deploys.get(&format!("web-{canary}")).await.expect("canary");
    assert_eq!(canary_deploy.spec.and_then(|s| s.replicas), Some(1));

    annotate(&api, "web", "cutover.dev/abort").await;
    wait_phase(&api, "web", RolloutPhase::Aborted).await;
    eventually("canary scaled to zero", LIMIT, async || {
        let d = deploys.get(&format!("web-{canary}")).await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;

    annotate(&api, "web", "cutover.dev/retry").await;
    wait_phase(&api, "web", RolloutPhase::Paused).await;
    annotate(&api, "web", "cutover.dev/promote").await;
    let promoted = wait_phase(&api, "web", RolloutPhase::Healthy).await;
    assert_eq!(
        promoted.status.and_then(|s| s.stable_revision),
        Some(canary.clone()),
        "{}",
        op.log_tail()
    );

    // Undo (what `kubectl cutover undo` writes) brings the earlier template back, and with
    // it the earlier revision.
    set_image(&api, "web", "web:1").await;
    eventually("undo to the first revision", LIMIT, async || {
        let s = api.get("web").await.ok()?.status?;
        (s.current_revision.as_deref() == Some(stable.as_str())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_blue_green_switches_the_active_service_in_one_write() {
    let bed = testbed::shared();
    let ns = bed.namespace("bluegreen").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    for name in ["api", "api-preview"] {
        let svc: Service = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}))
        .expect("a service");
        services
            .create(&PostParams::default(), &svc)
            .await
            .expect("service");
    }
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r = rollout(
        "api",
        2,
        json!({"blueGreen": {"activeService": "api", "previewService": "api-preview",
            "autoPromotionEnabled": false, "scaleDownDelaySeconds": 1}}),
    );
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let blue = wait_phase(&api, "api", RolloutPhase::Healthy)
        .await
        .status
        .and_then(|s| s.stable_revision)
        .expect("blue");
    set_image(&api, "api", "api:2").await;
    let green = wait_phase(&api, "api", RolloutPhase::Paused)
        .await
        .status
        .and_then(|s| s.current_revision)
        .expect("green");
    let selector = async |name: &str| {
        services
            .get(name)
            .await
            .ok()?
            .spec?
            .selector?
            .get("cutover.dev/revision")
            .cloned()
    };
    assert_eq!(selector("api").await, Some(blue.clone()));
    assert_eq!(selector("api-preview").await, Some(green.clone()));
    annotate(&api, "api", "cutover.dev/promote").await;
    wait_phase(&api, "api", RolloutPhase::Healthy).await;
    assert_eq!(selector("api").await, Some(green));
}

#[tokio::test]
async fn a_horizontal_pod_autoscaler_scales_a_rollout_through_its_scale_subresource() {
    let bed = testbed::shared();
    let ns = bed.namespace("hpa").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r = rollout("web", 1, json!({"canary": {"steps": [{"setWeight": 50}]}}));
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    wait_phase(&api, "web", RolloutPhase::Healthy).await;
    // Without metrics the HPA still enforces minReplicas through /scale.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "name": "web"},
            "minReplicas": 3, "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    }))
    .expect("an HPA");
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &hpa)
        .await
        .expect("HPA created");
    let stable = eventually("HPA scales the Rollout to 3", LIMIT, async || {
        let r = api.get("web").await.ok()?;
        (r.spec.replicas == Some(3)).then_some(r.status?.stable_revision?)
    })
    .await;
    let deploys: Api<Deployment> = Api::namespaced(client, &ns.name);
    eventually("the stable Deployment follows", LIMIT, async || {
        let d = deploys.get(&format!("web-{stable}")).await.ok()?;
        (d.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;
}

fn migration(name: &str, image: &str, annotations: Value) -> MigrationJob {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": name},
        "spec": {"lockKey": "orders-db",
            "template": {"metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": image, "args": ["up"]}]}},
            "rollback": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": image, "args": ["down"]}]}}}}
    }))
    .expect("a migration")
}

#[tokio::test]
async fn a_migration_gates_the_rollout_and_is_rolled_back_when_it_aborts() {
    let bed = testbed::shared();
    let ns = bed.namespace("migrate").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let migrations: Api<MigrationJob> = Api::namespaced(client.clone(), &ns.name);
    migrations
        .create(
            &PostParams::default(),
            &migration("add-column", "migrate:1", json!({})),
        )
        .await
        .expect("migration");
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let mut r = rollout(
        "orders",
        2,
        json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}),
    );
    r.spec.migrations =
        serde_json::from_value(json!({"before": ["add-column"], "rollbackOnAbort": true}))
            .expect("migrations");
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    wait_phase(&api, "orders", RolloutPhase::Healthy).await;

    // A new migration spec and a new image: no pod of the new image before it succeeds.
    let slow = migration(
        "add-column",
        "migrate:2",
        json!({"sim.cutover.dev/duration": "3s"}),
    );
    migrations
        .patch(
            "add-column",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&slow),
        )
        .await
        .expect("migration changed");
    set_image(&api, "orders", "orders:2").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let images = async || -> Vec<String> {
        deploys
            .list(&ListParams::default().labels("cutover.dev/rollout=orders"))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
            .filter_map(|d| d.spec?.template.spec?.containers.first()?.image.clone())
            .collect()
    };
    eventually("waiting for the migration", LIMIT, async || {
        let status = api.get("orders").await.ok()?.status?;
        let waiting = status
            .conditions
            .iter()
            .any(|c| c.reason == "WaitingForMigrations");
        waiting.then_some(())
    })
    .await;
    assert_eq!(images().await, vec!["orders:1".to_string()]);
    wait_phase(&api, "orders", RolloutPhase::Paused).await;
    annotate(&api, "orders", "cutover.dev/abort").await;
    wait_phase(&api, "orders", RolloutPhase::Aborted).await;
    eventually("the down migration ran", LIMIT, async || {
        let m = migrations.get("add-column").await.ok()?;
        let phase = serde_json::to_value(m.status?.phase).ok()?;
        (phase == json!("RolledBack")).then_some(())
    })
    .await;
    assert!(
        images().await.iter().all(|i| i == "orders:1"),
        "{}",
        op.log_tail()
    );
}

fn flag(name: &str, spec: Value) -> FeatureFlag {
    let mut base = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off", "output": {"configMap": {"name": "flags"}}});
    if let (Some(b), Some(s)) = (base.as_object_mut(), spec.as_object()) {
        b.extend(s.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
        "metadata": {"name": name}, "spec": base}),
    )
    .expect("a flag")
}

#[tokio::test]
async fn a_flag_rolls_out_by_percentage_and_the_kill_switch_takes_it_back() {
    let bed = testbed::shared();
    let ns = bed.namespace("flags").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), &ns.name);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    flags
        .create(
            &PostParams::default(),
            &flag(
                "checkout",
                json!({"rollout": {"variant": "on", "steps": [10, 50], "interval": "2s"}}),
            ),
        )
        .await
        .expect("flag");
    let rendered = async || -> Option<Value> {
        let cm = maps.get("flags").await.ok()?;
        let text = cm.data?.get("flags.flagd.json")?.clone();
        let doc: Value = serde_json::from_str(&text).ok()?;
        Some(doc["flags"]["checkout"].clone())
    };
    eventually("served at 50 %", LIMIT, async || {
        let f = flags.get("checkout").await.ok()?;
        let s = f.status?;
        (s.phase == FlagPhase::Serving && s.percentage == Some(50)).then_some(())
    })
    .await;
    let served = rendered().await.expect("rendered");
    assert_eq!(served["state"], "ENABLED");
    assert!(
        served["targeting"].to_string().contains("fractional"),
        "{served}"
    );
    // The kill switch: DISABLED stops serving the variant.
    flags
        .patch(
            "checkout",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"state": "DISABLED"}})),
        )
        .await
        .expect("disabled");
    eventually("disabled in the ConfigMap", LIMIT, async || {
        rendered().await.filter(|d| d["state"] == "DISABLED")
    })
    .await;
}

#[tokio::test]
async fn a_standby_operator_takes_over_when_the_leader_dies() {
    let bed = testbed::shared();
    let ns = bed.namespace("leader").await;
    let args = ["--leader-elect", "--leader-election-namespace", &ns.name];
    let mut first = bed.operator(&ns.name, &args);
    let client = bed.admin().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = async || -> Option<String> {
        leases
            .get("cutover-leader")
            .await
            .ok()?
            .spec?
            .holder_identity
    };
    let leader = eventually("a leader", LIMIT, holder).await;
    let mut second = bed.operator(&ns.name, &args);
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &rollout("web", 1, json!({"canary": {"steps": [{"setWeight": 50}]}})),
    )
    .await
    .expect("created");
    wait_phase(&api, "web", RolloutPhase::Healthy).await;
    assert!(second.running(), "the standby is alive");
    first.kill();
    let next = eventually("a new leader", LIMIT, async || {
        holder().await.filter(|h| *h != leader)
    })
    .await;
    assert_ne!(next, leader);
    // The new leader carries on: a new image goes through.
    set_image(&api, "web", "web:2").await;
    eventually("promoted by the new leader", LIMIT, async || {
        let r = phase_is(&api, "web", RolloutPhase::Healthy).await?;
        let s = r.status?;
        (s.stable_revision == s.current_revision && r.metadata.generation == Some(2)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_that_holds_all_three_kinds_completes() {
    let bed = testbed::shared();
    let ns = bed.namespace("delete").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    api.create(
        &PostParams::default(),
        &rollout("web", 1, json!({"canary": {"steps": [{"setWeight": 50}]}})),
    )
    .await
    .expect("rollout");
    Api::<MigrationJob>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &migration("m", "migrate:1", json!({})),
        )
        .await
        .expect("migration");
    let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), &ns.name);
    for name in ["a", "b"] {
        flags
            .create(&PostParams::default(), &flag(name, json!({})))
            .await
            .expect("flag");
    }
    wait_phase(&api, "web", RolloutPhase::Healthy).await;
    eventually("flags rendered", LIMIT, async || {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
            .get("flags")
            .await
            .ok()?;
        let text = cm.data?.get("flags.flagd.json")?.clone();
        (text.contains("\"a\"") && text.contains("\"b\"")).then_some(())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns.name, &Default::default())
        .await
        .expect("namespace deleted");
    eventually("the namespace is gone", LIMIT, async || {
        match namespaces.get(&ns.name).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test]
async fn flags_sharing_a_configmap_keep_each_others_keys_and_leave_it_alone_when_idle() {
    let bed = testbed::shared();
    let ns = bed.namespace("sharedcm").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let flags: Api<FeatureFlag> = Api::namespaced(client.clone(), &ns.name);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    for (name, key) in [("a", "a.flagd.json"), ("b", "b.flagd.json")] {
        let f = flag(
            name,
            json!({"output": {"configMap": {"name": "flags", "key": key}}}),
        );
        flags
            .create(&PostParams::default(), &f)
            .await
            .expect("flag");
    }
    let both = async || {
        let cm = maps.get("flags").await.ok()?;
        let data = cm.data?;
        let rendered = |k: &str| data.get(k).is_some_and(|t| t.contains("\"flags\""));
        (rendered("a.flagd.json") && rendered("b.flagd.json"))
            .then_some(cm.metadata.resource_version?)
    };
    eventually("both keys rendered", LIMIT, both).await;
    eventually("both flags serving", LIMIT, async || {
        let all = flags.list(&ListParams::default()).await.ok()?.items;
        all.iter()
            .all(|f| {
                f.status
                    .as_ref()
                    .is_some_and(|s| s.phase == FlagPhase::Serving)
            })
            .then_some(())
    })
    .await;
    // Settled: idle, neither flag writes the ConfigMap again (before, each removed the
    // other's key and they woke each other forever).
    let settled = both().await.expect("both keys rendered");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(both().await, Some(settled), "{}", op.log_tail());
}
