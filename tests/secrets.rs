//! No secret value leaves its Secret: with planted values in a bearer token, basic-auth
//! credentials, a Prometheus address and webhook URLs, the operator's logs (at debug),
//! Events, the status of every object and the metrics are searched for them.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use cutover::{
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, workload::WorkloadConfig},
};
use kube::{Api, api::DynamicObject, core::ApiResource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PLANTED: [&str; 5] = [
    "tok-3f9a1c",
    "user-77b2e0",
    "pass-5d04aa",
    "prom-internal-91c3.example",
    "hook-path-e8d2",
];

async fn create(sim: &Sim, manifest: Value) {
    let api_version = manifest["apiVersion"].as_str().unwrap().to_string();
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let (group, version, plural) =
        cutover::simulate::scenario::resource_type(&api_version, &kind).unwrap();
    let ar = ApiResource {
        group,
        version,
        api_version,
        kind,
        plural,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &ar);
    api.create(
        &Default::default(),
        &serde_json::from_value(manifest).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn planted_secret_values_appear_in_no_log_event_status_or_metric() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .finish(),
    );
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus()
        .set_script(MetricScript::parse("metrics:\n  - match: errors\n    value: 0.5\n").unwrap());
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(
        // Every host allowed: the planted values must not leak from the requests either.
        Context::new(
            sim.client(),
            Config {
                allowed_hosts: vec!["*".into()],
                ..Config::default()
            },
            clock,
            metrics.clone(),
        )
        .with_prometheus(sim.prometheus_transport()),
    );
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    create(
        &sim,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"token": PLANTED[0], "username": PLANTED[1], "password": PLANTED[2],
            "address": format!("http://{}", PLANTED[3]),
            "hook": format!("http://127.0.0.1:9/{}", PLANTED[4])}}),
    )
    .await;
    let metric = |name: &str, auth: Value| {
        json!({"name": name, "interval": "10s", "count": 2, "successCondition": "result < 0.01",
            "prometheus": {"query": "errors", "addressFrom": {"name": "creds", "key": "address"}, "auth": auth}})
    };
    create(&sim, json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "notifications": {"webhooks": [{"name": "hook", "urlFrom": {"name": "creds", "key": "hook"}}]},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {"metrics": [
                metric("bearer", json!({"bearerToken": {"name": "creds", "key": "token"}})),
                metric("basic", json!({"basicAuth": {"secretName": "creds"}}))]}}]}}}})).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rollouts = ApiResource::erase::<cutover::api::Rollout>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(sim.client(), "default", &rollouts);
    api.patch(
        "web",
        &Default::default(),
        &kube::api::Patch::Merge(&json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})),
    )
    .await
    .unwrap();
    // The analysis fails (0.5 is above 0.01) and the rollout aborts; webhooks fire and fail.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let status = api.get("web").await.unwrap().data["status"].clone();
    assert_eq!(status["phase"], "Aborted", "{status}");

    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push((
        "logs".into(),
        String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned(),
    ));
    haystacks.push(("metrics".into(), metrics.render()));
    for (group, plural) in [
        ("events.k8s.io", "events"),
        ("", "events"),
        ("cutover.dev", "rollouts"),
        ("cutover.dev", "migrationjobs"),
        ("cutover.dev", "featureflags"),
        ("apps", "deployments"),
        ("", "configmaps"),
    ] {
        let version = if group == "cutover.dev" {
            "v1alpha1"
        } else {
            "v1"
        };
        let Some(rt) = sim.store().resolve(group, version, plural) else {
            continue;
        };
        for object in sim
            .store()
            .list(&rt, &Default::default(), None, None)
            .unwrap()
            .items
        {
            haystacks.push((format!("{group}/{plural}"), object.to_string()));
        }
    }
    assert!(
        haystacks[0].1.contains("measured") || haystacks[0].1.contains("notification"),
        "the logs were captured"
    );
    for (place, text) in &haystacks {
        for planted in PLANTED {
            assert!(!text.contains(planted), "{planted} found in {place}");
        }
    }
}
