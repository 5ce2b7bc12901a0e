//! Every API call the controllers make is granted by the generated RBAC rules, and every
//! rule is used: the controllers run a scenario touching all their features against the sim
//! through a client that records each request's group, resource and verb.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use cutover::{
    analysis::prometheus::Transport,
    controller::{Clock, Config, Context, Metrics, leader, rbac},
    sim::{Sim, prometheus::MetricScript, workload::WorkloadConfig},
};
use futures::future::BoxFuture;
use kube::{Api, api::DynamicObject, core::ApiResource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type Seen = Arc<Mutex<BTreeSet<(String, String, String)>>>;

#[derive(Clone)]
struct Recording {
    inner: cutover::sim::SimService,
    seen: Seen,
}

/// (group, resource or resource/sub, verb) of a request path, if it names a resource.
fn classify(method: &str, path: &str, query: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _v, rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        r => r,
    };
    let (resource, named, sub) = match rest {
        [r] => (*r, false, None),
        [r, _name] => (*r, true, None),
        [r, _name, sub] => (*r, true, Some(*sub)),
        _ => return None,
    };
    let verb = match (method, named) {
        ("GET", false) if query.contains("watch=true") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        _ => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    Some((group.to_string(), resource, verb.to_string()))
}

impl tower::Service<http::Request<kube::client::Body>> for Recording {
    type Response =
        <cutover::sim::SimService as tower::Service<http::Request<kube::client::Body>>>::Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let key = classify(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or_default(),
        );
        if let Some(k) = &key {
            self.seen.lock().unwrap().insert(k.clone());
        }
        let seen = self.seen.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let response = fut.await?;
            // kube-apiserver authorizes a server-side apply that makes a new object as a
            // create as well.
            if let Some((group, resource, verb)) = key
                && verb == "patch"
                && response.status() == http::StatusCode::CREATED
            {
                seen.lock()
                    .unwrap()
                    .insert((group, resource, "create".into()));
            }
            Ok(response)
        })
    }
}

#[test]
fn paths_are_classified_like_the_api_server_authorizes_them() {
    assert_eq!(
        classify("GET", "/api/v1/namespaces/d/pods/p/log", ""),
        Some(("".into(), "pods/log".into(), "get".into()))
    );
    assert_eq!(
        classify("GET", "/apis/apps/v1/deployments", "watch=true&x=1"),
        Some(("apps".into(), "deployments".into(), "watch".into()))
    );
    assert_eq!(
        classify(
            "PATCH",
            "/apis/cutover.dev/v1alpha1/namespaces/d/rollouts/web/status",
            ""
        ),
        Some((
            "cutover.dev".into(),
            "rollouts/status".into(),
            "patch".into()
        ))
    );
    assert_eq!(classify("GET", "/apis", ""), None);
}

async fn apply(sim: &Sim, manifest: Value) {
    let api_version = manifest["apiVersion"].as_str().unwrap();
    let kind = manifest["kind"].as_str().unwrap();
    let (group, version, plural) =
        cutover::simulate::scenario::resource_type(api_version, kind).unwrap();
    let client = sim.client();
    let ar = ApiResource {
        group: group.clone(),
        version: version.clone(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let api: Api<DynamicObject> = if kind == "GatewayClass" {
        Api::all_with(client, &ar)
    } else {
        Api::namespaced_with(client, "default", &ar)
    };
    let obj: DynamicObject = serde_json::from_value(manifest).unwrap();
    api.create(&Default::default(), &obj).await.unwrap();
}

async fn merge(sim: &Sim, api_version: &str, kind: &str, name: &str, patch: Value) {
    let (group, version, plural) =
        cutover::simulate::scenario::resource_type(api_version, kind).unwrap();
    let ar = ApiResource {
        group,
        version,
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &ar);
    api.patch(name, &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
}

fn rollout(name: &str, strategy: Value, extra: Value) -> Value {
    let mut r = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 2, "revisionHistoryLimit": 0, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": strategy}});
    if let (Some(s), Some(e)) = (r["spec"].as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    r
}

#[tokio::test(start_paused = true)]
async fn the_controllers_use_exactly_the_permissions_the_rbac_grants() {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    cutover::simulate::install_gateway_api(&sim).unwrap();
    sim.prometheus().set_script(
        MetricScript::parse("metrics:\n  - match: errors\n    value: 0.001\n").unwrap(),
    );
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let seen: Seen = Arc::default();
    let recording = Recording {
        inner: sim.service(),
        seen: seen.clone(),
    };
    let client = kube::Client::new(recording, "default");
    let transport: Arc<dyn Transport> = sim.prometheus_transport();
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Config {
                allowed_hosts: vec!["prom".into()],
                ..Config::default()
            },
            clock.clone(),
            Arc::new(Metrics::new()),
        )
        .with_prometheus(transport),
    );
    for c in cutover::controller::runner::controllers(ctx.clone(), stop.clone()) {
        tokio::spawn(c);
    }
    // Leader election: take the lease, then renew it.
    let leases = Api::namespaced(client.clone(), "default");
    let election = leader::Election::new("default".into());
    assert!(leader::try_lead(&leases, &election, &clock).await);
    assert!(leader::try_lead(&leases, &election, &clock).await);

    // A routed canary with analysis using a bearer token from a Secret.
    for svc in ["stable", "canary", "active", "preview"] {
        apply(
            &sim,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
        )
        .await;
    }
    apply(
        &sim,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom"},
        "stringData": {"token": "t"}}),
    )
    .await;
    apply(&sim, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "route"},
        "spec": {"rules": [{"backendRefs": [{"name": "stable", "port": 80, "weight": 100}, {"name": "canary", "port": 80, "weight": 0}]}]}})).await;
    let analysis = json!({"metrics": [{"name": "errors", "interval": "10s", "count": 1, "successCondition": "result < 0.01",
        "prometheus": {"query": "errors", "address": "http://prom", "auth": {"bearerToken": {"name": "prom", "key": "token"}}}}]});
    apply(
        &sim,
        rollout(
            "routed",
            json!({"canary": {"stableService": "stable", "canaryService": "canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "route"}},
        "steps": [{"setWeight": 50}, {"analysis": analysis}]}}),
            json!({}),
        ),
    )
    .await;
    // A mirror step: before writing it, the operator asks whether the route's gateway can
    // mirror (its Gateway and GatewayClass).
    for svc in ["m-stable", "m-canary"] {
        apply(
            &sim,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
        )
        .await;
    }
    apply(&sim, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "cls"},
        "spec": {"controllerName": "example.com/gw"}})).await;
    apply(&sim, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": "cls", "listeners": [{"name": "web", "port": 80, "protocol": "HTTP"}]}})).await;
    apply(&sim, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "m-route"},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "m-stable", "port": 80, "weight": 100}, {"name": "m-canary", "port": 80, "weight": 0}]}]}})).await;
    apply(
        &sim,
        rollout(
            "mirrored",
            json!({"canary": {"stableService": "m-stable", "canaryService": "m-canary",
        "trafficRouting": {"gatewayAPI": {"httpRoute": "m-route"}},
        "steps": [{"setMirrorRoute": {"name": "shadow", "percentage": 10}}, {"setWeight": 50}]}}),
            json!({}),
        ),
    )
    .await;
    // A gRPC service behind a GRPCRoute.
    for svc in ["g-stable", "g-canary"] {
        apply(
            &sim,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 9000}]}}),
        )
        .await;
    }
    apply(&sim, json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute", "metadata": {"name": "g-route"},
        "spec": {"rules": [{"backendRefs": [{"name": "g-stable", "port": 9000, "weight": 100}, {"name": "g-canary", "port": 9000, "weight": 0}]}]}})).await;
    apply(
        &sim,
        rollout(
            "grpc",
            json!({"canary": {"stableService": "g-stable", "canaryService": "g-canary",
        "trafficRouting": {"gatewayAPI": {"grpcRoute": "g-route"}},
        "steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}]}}),
            json!({}),
        ),
    )
    .await;
    apply(
        &sim,
        rollout(
            "bg",
            json!({"blueGreen": {"activeService": "active", "previewService": "preview",
        "scaleDownDelaySeconds": 0}}),
            json!({}),
        ),
    )
    .await;
    // A Rollout adopting a Deployment.
    apply(&sim, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "legacy"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
            "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}})).await;
    let mut adopted = rollout("adopter", json!({"canary": {"steps": []}}), json!({}));
    adopted["spec"].as_object_mut().unwrap().remove("template");
    adopted["spec"].as_object_mut().unwrap().remove("selector");
    adopted["spec"]["workloadRef"] =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy"});
    apply(&sim, adopted).await;
    // A failing migration with a rollback; a flag.
    apply(&sim, json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": "m"},
        "spec": {"template": {"metadata": {"annotations": {"sim.cutover.dev/fail-attempts": "always", "sim.cutover.dev/log": "boom"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}},
            "rollback": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}}})).await;
    apply(&sim, json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag", "metadata": {"name": "f"},
        "spec": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "output": {"configMap": {"name": "flags"}}}})).await;
    // A Rollout gated by a migration and linked to the flag; aborted and retried twice, so
    // the same Event repeats (a patch of its series).
    apply(&sim, json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": "expand"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}})).await;
    apply(
        &sim,
        rollout(
            "gated",
            json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}),
            json!({"migrations": {"before": ["expand"]}, "flags": {"enableOnPromotion": ["f"]}}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    merge(&sim, "cutover.dev/v1alpha1", "Rollout", "gated",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}})).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    for i in 1..=2 {
        merge(
            &sim,
            "cutover.dev/v1alpha1",
            "Rollout",
            "gated",
            json!({"metadata": {"annotations": {"cutover.dev/abort": i.to_string()}}}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        merge(
            &sim,
            "cutover.dev/v1alpha1",
            "Rollout",
            "gated",
            json!({"metadata": {"annotations": {"cutover.dev/retry": i.to_string()}}}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // New revisions: the canary runs its steps, the blue-green switches, old ones go.
    for name in ["routed", "bg", "grpc"] {
        merge(&sim, "cutover.dev/v1alpha1", "Rollout", name,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}})).await;
    }
    merge(
        &sim,
        "cutover.dev/v1alpha1",
        "MigrationJob",
        "m",
        json!({"metadata": {"annotations": {"cutover.dev/rollback": "1"}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    // A running migration deleted: its Job goes through the finalizer.
    apply(&sim, json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": "long"},
        "spec": {"template": {"metadata": {"annotations": {"sim.cutover.dev/duration": "1h"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}})).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mjs: Api<cutover::api::MigrationJob> = Api::namespaced(sim.client(), "default");
    mjs.delete("long", &Default::default()).await.unwrap();
    // The adopting Rollout deleted: its Deployment gets its replicas back first.
    let rollouts: Api<cutover::api::Rollout> = Api::namespaced(sim.client(), "default");
    rollouts
        .delete("adopter", &Default::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;

    let seen = seen.lock().unwrap().clone();
    let rules = rbac::rules(true);
    let ungranted: Vec<_> = seen
        .iter()
        .filter(|(g, r, v)| !rbac::grants(&rules, g, r, v))
        .collect();
    assert!(
        ungranted.is_empty(),
        "calls the RBAC does not grant: {ungranted:?}"
    );
    let mut unused = Vec::new();
    for rule in &rules {
        for g in &rule.api_groups {
            for r in &rule.resources {
                for v in &rule.verbs {
                    if !seen.contains(&(g.to_string(), r.to_string(), v.to_string())) {
                        unused.push(format!("{g}/{r} {v}"));
                    }
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "granted but never used: {unused:?}\nseen: {seen:?}"
    );
}
