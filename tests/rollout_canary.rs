//! The Rollout controller through a real kube::Client against the sim, on the virtual clock.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{
        ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_RETRY, LABEL_ROLLOUT, Rollout,
        RolloutPhase,
    },
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Env {
    client: Client,
    rollouts: Api<Rollout>,
    deployments: Api<Deployment>,
    _stop: tokio_util::sync::DropGuard,
}

fn start() -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let client = sim.client();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Config::default(),
        clock,
        Arc::new(Metrics::new()),
    ));
    tokio::spawn(cutover::rollout::watch::run(ctx, stop.clone()));
    Env {
        rollouts: Api::namespaced(client.clone(), "default"),
        deployments: Api::namespaced(client.clone(), "default"),
        client,
        _stop: stop.drop_guard(),
    }
}

fn rollout(image: &str, steps: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"canary": {"steps": steps}}}
    }))
    .unwrap()
}

async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out waiting for {what}");
}

impl Env {
    async fn get(&self) -> Rollout {
        self.rollouts.get("web").await.unwrap()
    }

    async fn phase(&self) -> RolloutPhase {
        self.get().await.status.map(|s| s.phase).unwrap_or_default()
    }

    /// Replicas by revision hash.
    async fn replicas(&self) -> Vec<(String, i32)> {
        let list = self
            .deployments
            .list(&ListParams::default().labels(&format!("{LABEL_ROLLOUT}=web")))
            .await
            .unwrap();
        let mut out: Vec<(String, i32)> = list
            .items
            .into_iter()
            .map(|d| {
                (
                    d.metadata.labels.unwrap()["cutover.dev/revision"].clone(),
                    d.spec.unwrap().replicas.unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        out
    }

    async fn annotate(&self, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn set_image(&self, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}});
        self.rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn healthy_on(&self, image: &str) -> String {
        let env = self;
        until(
            &format!("healthy on {image}"),
            Duration::from_secs(300),
            || async move {
                let r = env.get().await;
                r.status.as_ref().is_some_and(|s| {
                    s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
                }) && r
                    .spec
                    .template
                    .as_ref()
                    .unwrap()
                    .spec
                    .as_ref()
                    .unwrap()
                    .containers[0]
                    .image
                    .as_deref()
                    == Some(image)
            },
        )
        .await;
        self.get().await.status.unwrap().stable_revision.unwrap()
    }
}

fn steps() -> serde_json::Value {
    json!([{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 50}, {"pause": {}}])
}

#[tokio::test(start_paused = true)]
async fn first_revision_goes_straight_to_healthy() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let stable = env.healthy_on("web:1").await;
    assert_eq!(env.replicas().await, vec![(stable.clone(), 10)]);
    let status = env.get().await.status.unwrap();
    assert_eq!(status.available_replicas, Some(10));
    assert_eq!(status.observed_generation, Some(1));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
    );
    let _ = env.client;
}

#[tokio::test(start_paused = true)]
async fn canary_walks_its_steps_and_waits_at_the_manual_gate() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;

    // Step 0: 20 % of 10 pods.
    let e = &env;
    until("weight 20", Duration::from_secs(120), || async move {
        e.get().await.status.and_then(|s| s.canary_weight) == Some(20)
    })
    .await;
    let new = env.get().await.status.unwrap().current_revision.unwrap();
    assert_ne!(new, old);
    assert!(env.replicas().await.contains(&(new.clone(), 2)));
    assert!(env.replicas().await.contains(&(old.clone(), 8)));

    // Step 1: a one-minute pause, then step 2 at 50 %, then the manual gate.
    until("the manual gate", Duration::from_secs(600), || async move {
        e.phase().await == RolloutPhase::Paused
            && e.get().await.status.unwrap().current_step_index == Some(3)
    })
    .await;
    let status = env.get().await.status.unwrap();
    assert_eq!(status.canary_weight, Some(50));
    assert!(env.replicas().await.contains(&(new.clone(), 5)));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.status == "True" && c.reason == "ManualGate")
    );

    // It stays there until a person promotes.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.get().await.status.unwrap().current_step_index, Some(3));
    env.annotate(ANNOTATION_PROMOTE, "1").await;
    let stable = env.healthy_on("web:2").await;
    assert_eq!(stable, new);
    assert_eq!(env.replicas().await, {
        let mut v = vec![(new.clone(), 10), (old.clone(), 0)];
        v.sort();
        v
    });
}

#[tokio::test(start_paused = true)]
async fn abort_returns_all_traffic_to_stable_and_retry_starts_over() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("the manual gate", Duration::from_secs(600), || async move {
        e.phase().await == RolloutPhase::Paused
            && e.get().await.status.unwrap().current_step_index == Some(3)
    })
    .await;
    let new = env.get().await.status.unwrap().current_revision.unwrap();

    env.annotate(ANNOTATION_ABORT, "1").await;
    until("aborted", Duration::from_secs(30), || async move {
        e.phase().await == RolloutPhase::Aborted
    })
    .await;
    let n = &new;
    until(
        "canary scaled down",
        Duration::from_secs(30),
        || async move { e.replicas().await.contains(&(n.clone(), 0)) },
    )
    .await;
    assert!(env.replicas().await.contains(&(old.clone(), 10)));
    let status = env.get().await.status.unwrap();
    assert_eq!(status.canary_weight, Some(0));
    assert_eq!(status.stable_revision.as_deref(), Some(old.as_str()));
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.status == "True")
    );

    // Nothing moves while aborted, however long it waits.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(env.phase().await, RolloutPhase::Aborted);

    env.annotate(ANNOTATION_RETRY, "1").await;
    until("weight 20 again", Duration::from_secs(120), || async move {
        let s = e.get().await.status.unwrap();
        s.phase != RolloutPhase::Aborted
            && s.canary_weight == Some(20)
            && s.current_step_index == Some(1)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn reverting_the_template_returns_to_the_stable_revision_at_once() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("weight 20", Duration::from_secs(120), || async move {
        e.get().await.status.and_then(|s| s.canary_weight) == Some(20)
    })
    .await;
    env.set_image("web:1").await;
    let stable = env.healthy_on("web:1").await;
    assert_eq!(stable, old);
    assert!(env.replicas().await.contains(&(old, 10)));
}

#[tokio::test(start_paused = true)]
async fn a_spec_naming_a_missing_object_gets_invalid_spec_and_no_deployment() {
    let env = start();
    let mut r = rollout("web:1", json!([{"setWeight": 50}]));
    r.spec.flags = Some(cutover::api::FlagLinks {
        enable_on_promotion: vec!["new-checkout".into()],
        ..Default::default()
    });
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let e = &env;
    until("InvalidSpec", Duration::from_secs(30), || async move {
        e.get().await.status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
        })
    })
    .await;
    let message = env.get().await.status.unwrap().message.unwrap();
    assert!(
        message.contains("FeatureFlag \"new-checkout\" (spec.flags) does not exist"),
        "{message}"
    );
    assert!(
        env.replicas().await.is_empty(),
        "no action on a spec it cannot act on"
    );

    // A missing adopted Deployment is reported together with the other problems.
    let mut adopting = r.clone();
    adopting.metadata = kube::api::ObjectMeta {
        name: Some("adopting".into()),
        ..Default::default()
    };
    adopting.spec.template = None;
    adopting.spec.workload_ref = Some(
        serde_json::from_value(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"}),
        )
        .unwrap(),
    );
    env.rollouts
        .create(&PostParams::default(), &adopting)
        .await
        .unwrap();
    let rollouts = env.rollouts.clone();
    until("InvalidSpec", Duration::from_secs(30), || {
        let rollouts = rollouts.clone();
        async move {
            rollouts
                .get("adopting")
                .await
                .unwrap()
                .status
                .is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
                })
        }
    })
    .await;
    let message = env
        .rollouts
        .get("adopting")
        .await
        .unwrap()
        .status
        .unwrap()
        .message
        .unwrap();
    assert!(
        message.contains("Deployment \"legacy\" (spec.workloadRef) does not exist"),
        "{message}"
    );
    assert!(
        message.contains("FeatureFlag \"new-checkout\" (spec.flags) does not exist"),
        "{message}"
    );
    assert!(env.replicas().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn adopting_a_deployment_scales_it_down_only_once_the_rollout_serves() {
    let env = start();
    let existing: Deployment = serde_json::from_value(json!({"metadata": {"name": "legacy"}, "spec": {"replicas": 4,
        "selector": {"matchLabels": {"app": "legacy"}},
        "template": {"metadata": {"labels": {"app": "legacy"}, "annotations": {"sim.cutover.dev/ready-after": "20s"}},
            "spec": {"containers": [{"name": "app", "image": "legacy:7"}]}}}}))
    .unwrap();
    env.deployments
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();
    let r: Rollout = serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}}))
    .unwrap();
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let e = &env;
    for _ in 0..200 {
        let legacy = e.deployments.get("legacy").await.unwrap();
        let rollout_available = e
            .get()
            .await
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if legacy.spec.unwrap().replicas == Some(0) {
            assert!(
                rollout_available >= 4,
                "the old Deployment went to zero before the Rollout served"
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        env.deployments
            .get("legacy")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );
    assert_eq!(env.phase().await, RolloutPhase::Healthy);
}

fn routed_rollout(image: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"canary": {"stableService": "web-stable", "canaryService": "web-canary",
                "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}, "abortScaleDownDelaySeconds": 30,
                "steps": [{"setWeight": 5}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]}}}
    }))
    .unwrap()
}

async fn route_weights(client: &Client) -> Vec<(String, i64)> {
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ar);
    let route = routes.get("web").await.unwrap();
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

async fn create_routing_objects(client: &Client) {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    for name in ["web-stable", "web-canary"] {
        let svc = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
    }
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ar);
    let route: kube::api::DynamicObject = serde_json::from_value(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web"}, "spec": {"parentRefs": [{"name": "public"}], "hostnames": ["shop.example.com"], "rules": [
            {"backendRefs": [{"name": "web-stable", "port": 80, "weight": 100}, {"name": "web-canary", "port": 80, "weight": 0}, {"name": "legacy", "port": 80, "weight": 7}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [{"name": "admin", "port": 80}]}]}}))
    .unwrap();
    routes.create(&PostParams::default(), &route).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn gateway_api_canary_sets_exact_weights_and_touches_only_its_backend_refs() {
    let env = start();
    create_routing_objects(&env.client).await;
    env.rollouts
        .create(&PostParams::default(), &routed_rollout("web:1"))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("the first gate", Duration::from_secs(300), || async move {
        e.phase().await == RolloutPhase::Paused
    })
    .await;
    let new = env.get().await.status.unwrap().current_revision.unwrap();
    assert_eq!(
        route_weights(&env.client).await,
        vec![
            ("web-stable".into(), 95),
            ("web-canary".into(), 5),
            ("legacy".into(), 7)
        ]
    );
    assert!(
        env.replicas().await.contains(&(old.clone(), 4)),
        "stable stays at full size with a router"
    );
    assert!(
        env.replicas().await.contains(&(new.clone(), 1)),
        "5 % of 4 pods still needs one canary pod"
    );
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.client.clone(), "default");
    let canary_svc = services
        .get("web-canary")
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap();
    assert_eq!(canary_svc.get("cutover.dev/revision"), Some(&new));
    assert_eq!(
        canary_svc.get("app").map(String::as_str),
        Some("web"),
        "the user's selector key is kept"
    );

    env.annotate(ANNOTATION_PROMOTE, "1").await;
    until("60 %", Duration::from_secs(300), || async move {
        e.get().await.status.unwrap().canary_weight == Some(60)
    })
    .await;
    assert!(env.replicas().await.contains(&(new.clone(), 3)));

    // Abort: weight back to stable in one reconcile; canary pods kept for the delay.
    env.annotate(ANNOTATION_ABORT, "1").await;
    until("aborted", Duration::from_secs(5), || async move {
        e.phase().await == RolloutPhase::Aborted
    })
    .await;
    assert_eq!(
        route_weights(&env.client).await[..2],
        [("web-stable".into(), 100), ("web-canary".into(), 0)]
    );
    assert!(
        env.replicas().await.contains(&(new.clone(), 3)),
        "canary pods stay during abortScaleDownDelaySeconds"
    );
    let n = &new;
    until(
        "canary scaled down after the delay",
        Duration::from_secs(120),
        || async move { e.replicas().await.contains(&(n.clone(), 0)) },
    )
    .await;

    // The route's other rule and fields are untouched.
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &ar);
    let route = routes.get("web").await.unwrap();
    assert_eq!(route.data["spec"]["hostnames"], json!(["shop.example.com"]));
    assert_eq!(
        route.data["spec"]["rules"][1]["backendRefs"],
        json!([{"name": "admin", "port": 80}])
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_route_is_named_in_the_condition_and_nothing_is_touched() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &routed_rollout("web:1"))
        .await
        .unwrap();
    let e = &env;
    until("InvalidSpec", Duration::from_secs(30), || async move {
        e.get().await.status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
        })
    })
    .await;
    let message = env.get().await.status.unwrap().message.unwrap();
    assert!(
        message.contains("HTTPRoute \"web\" does not exist"),
        "{message}"
    );
    assert!(message.contains("Service \"web-stable\""), "{message}");
    assert!(env.replicas().await.is_empty());
}

fn bluegreen_rollout(image: &str) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"blueGreen": {"activeService": "web-stable", "previewService": "web-canary",
                "autoPromotionEnabled": false, "scaleDownDelaySeconds": 30}}}
    }))
    .unwrap()
}

async fn selector_revision(client: &Client, service: &str) -> Option<String> {
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    services
        .get(service)
        .await
        .unwrap()
        .spec
        .unwrap()
        .selector
        .unwrap()
        .get("cutover.dev/revision")
        .cloned()
}

#[tokio::test(start_paused = true)]
async fn bluegreen_switches_on_promote_and_keeps_the_old_revision_for_the_delay() {
    let env = start();
    create_routing_objects(&env.client).await;
    env.rollouts
        .create(&PostParams::default(), &bluegreen_rollout("web:1"))
        .await
        .unwrap();
    let blue = env.healthy_on("web:1").await;
    assert_eq!(
        selector_revision(&env.client, "web-stable")
            .await
            .as_deref(),
        Some(blue.as_str())
    );
    env.set_image("web:2").await;
    let e = &env;
    until("preview ready", Duration::from_secs(300), || async move {
        e.phase().await == RolloutPhase::Paused
    })
    .await;
    let green = env.get().await.status.unwrap().current_revision.unwrap();
    assert_eq!(
        selector_revision(&env.client, "web-stable")
            .await
            .as_deref(),
        Some(blue.as_str()),
        "active unchanged before promotion"
    );
    assert_eq!(
        selector_revision(&env.client, "web-canary")
            .await
            .as_deref(),
        Some(green.as_str())
    );
    assert!(env.replicas().await.contains(&(green.clone(), 3)));

    env.annotate(ANNOTATION_PROMOTE, "1").await;
    let g = &green;
    until("switched", Duration::from_secs(30), || async move {
        selector_revision(&e.client, "web-stable").await.as_deref() == Some(g.as_str())
    })
    .await;
    assert!(
        env.replicas().await.contains(&(blue.clone(), 3)),
        "blue stays up during scaleDownDelaySeconds"
    );
    let b = &blue;
    until(
        "blue scaled down",
        Duration::from_secs(120),
        || async move { e.replicas().await.contains(&(b.clone(), 0)) },
    )
    .await;
    assert_eq!(env.phase().await, RolloutPhase::Healthy);
}

#[tokio::test(start_paused = true)]
async fn rolling_update_replaces_every_pod() {
    let env = start();
    let mut r = rollout("web:1", json!([]));
    r.spec.strategy.canary = None;
    r.spec.strategy.rolling = Some(
        serde_json::from_value(json!({"batchSize": 3, "pause": {"duration": "30s"}})).unwrap(),
    );
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("first batch", Duration::from_secs(120), || async move {
        e.phase().await == RolloutPhase::Paused
    })
    .await;
    let new = env.get().await.status.unwrap().current_revision.unwrap();
    assert!(env.replicas().await.contains(&(new.clone(), 3)));
    assert!(env.replicas().await.contains(&(old.clone(), 7)));
    let stable = env.healthy_on("web:2").await;
    assert_eq!(stable, new);
    assert!(env.replicas().await.contains(&(old, 0)));
}

#[tokio::test(start_paused = true)]
async fn a_revision_that_never_becomes_ready_aborts_at_the_progress_deadline() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    let patch = json!({"spec": {"progressDeadlineSeconds": 120, "template": {"metadata": {"annotations": {"sim.cutover.dev/never-ready": "true"}},
        "spec": {"containers": [{"name": "web", "image": "web:broken"}]}}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let e = &env;
    until("aborted", Duration::from_secs(600), || async move {
        e.phase().await == RolloutPhase::Aborted
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(120));
    let status = env.get().await.status.unwrap();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.reason == "ProgressDeadlineExceeded")
    );
    assert!(env.replicas().await.contains(&(old, 10)));
}

#[tokio::test(start_paused = true)]
async fn scaling_the_rollout_mid_canary_resizes_both_revisions() {
    let env = start();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    let old = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("the manual gate", Duration::from_secs(600), || async move {
        e.get().await.status.unwrap().current_step_index == Some(3)
    })
    .await;
    let new = env.get().await.status.unwrap().current_revision.unwrap();
    env.rollouts
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 20}})),
        )
        .await
        .unwrap();
    let (o, n) = (&old, &new);
    until("10 and 10", Duration::from_secs(120), || async move {
        let r = e.replicas().await;
        r.contains(&(o.clone(), 10)) && r.contains(&(n.clone(), 10))
    })
    .await;
    let scale = env.rollouts.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(20));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
}

#[tokio::test(start_paused = true)]
async fn bluegreen_abort_within_the_delay_switches_back_at_once() {
    let env = start();
    create_routing_objects(&env.client).await;
    let mut r = bluegreen_rollout("web:1");
    r.spec
        .strategy
        .blue_green
        .as_mut()
        .unwrap()
        .scale_down_delay_seconds = Some(600);
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let blue = env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("preview ready", Duration::from_secs(300), || async move {
        e.phase().await == RolloutPhase::Paused
    })
    .await;
    env.annotate(ANNOTATION_PROMOTE, "1").await;
    let green = env.get().await.status.unwrap().current_revision.unwrap();
    let g = &green;
    until("switched", Duration::from_secs(30), || async move {
        selector_revision(&e.client, "web-stable").await.as_deref() == Some(g.as_str())
    })
    .await;
    let before_abort = tokio::time::Instant::now();
    env.annotate(ANNOTATION_ABORT, "1").await;
    let b = &blue;
    until("switched back", Duration::from_secs(30), || async move {
        selector_revision(&e.client, "web-stable").await.as_deref() == Some(b.as_str())
    })
    .await;
    assert!(
        before_abort.elapsed() < Duration::from_secs(5),
        "no waiting for pods: blue was still up"
    );
    assert_eq!(env.phase().await, RolloutPhase::Aborted);
}

#[tokio::test(start_paused = true)]
async fn each_step_and_decision_is_an_event_on_the_rollout() {
    let env = start();
    env.rollouts
        .create(
            &PostParams::default(),
            &rollout("web:1", json!([{"setWeight": 20}, {"pause": {}}])),
        )
        .await
        .unwrap();
    env.healthy_on("web:1").await;
    env.set_image("web:2").await;
    let e = &env;
    until("the gate", Duration::from_secs(300), || async move {
        e.phase().await == RolloutPhase::Paused
    })
    .await;
    env.annotate(ANNOTATION_PROMOTE, "1").await;
    env.healthy_on("web:2").await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|ev| ev.reason)
        .collect();
    for expected in ["Started", "StepCompleted", "Paused", "Promoted", "Healthy"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "no {expected} event in {reasons:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollout_that_cannot_be_read_does_not_stop_the_others() {
    let env = start();
    // A CRD from an older or foreign version that lets anything through.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(env.client.clone());
    let permissive = json!({"spec": {"versions": [{"name": "v1alpha1", "served": true, "storage": true,
        "subresources": {"status": {}},
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    crds.patch(
        "rollouts.cutover.dev",
        &PatchParams::default(),
        &Patch::Merge(&permissive),
    )
    .await
    .unwrap();
    let dynamic = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("cutover.dev", "v1alpha1", "Rollout"),
        "rollouts",
    );
    let raw: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &dynamic);
    let broken: kube::api::DynamicObject = serde_json::from_value(
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "broken"}, "spec": {"replicas": "many", "strategy": 7}}),
    )
    .unwrap();
    raw.create(&PostParams::default(), &broken).await.unwrap();
    env.rollouts
        .create(&PostParams::default(), &rollout("web:1", steps()))
        .await
        .unwrap();
    env.healthy_on("web:1").await;
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    let e = &events;
    until(
        "an InvalidObject event",
        Duration::from_secs(30),
        || async move {
            e.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|ev| ev.reason.as_deref() == Some("InvalidObject"))
        },
    )
    .await;
}
