//! The Grafana dashboard the chart ships, against a real Prometheus scraping a running
//! operator: every PromQL expression in it parses and returns data, and the per-Rollout
//! metrics it charts say what the Rollouts say.

// Each test crate uses a part of the shared support.
#[allow(dead_code)]
#[path = "support/prometheus.rs"]
mod prometheus;

use std::{sync::Arc, time::Duration};

use cutover::{
    analysis::{
        condition::QueryResult,
        prometheus::{Endpoint, HttpTransport, instant},
    },
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
    telemetry::{Health, serve},
};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn rollout(name: &str, steps: Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": format!("{name}:1")}]}},
            "strategy": {"canary": {"steps": steps}}}
    }))
    .unwrap()
}

async fn until(api: &Api<Rollout>, name: &str, what: &str, check: impl Fn(&Rollout) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(r) = api.get(name).await
            && check(&r)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never reached {what}");
}

async fn set_image(api: &Api<Rollout>, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

fn phase(r: &Rollout) -> RolloutPhase {
    r.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// Every PromQL expression of the dashboard: panel targets, and the series selectors of its
/// `label_values(...)` variables, with the variables' "All" value put in.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"].as_str()
            && let Some(inner) = query.strip_prefix("label_values(")
        {
            let selector = inner.rsplit_once(',').unwrap().0;
            out.push(selector.to_string());
        }
    }
    out.into_iter()
        .map(|e| e.replace("$namespace", ".*").replace("$rollout", ".*"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_parses_and_returns_data_from_a_running_operator() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/cutover/files/dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let metrics = Arc::new(Metrics::new());
    let (metrics_addr, _) = serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        Arc::new(Health::default()),
        stop.clone(),
    )
    .await
    .unwrap();
    let prom = prometheus::start_prometheus_until(metrics_addr, "cutover_build_info")
        .await
        .unwrap();

    let sim = Sim::new(Clock::System);
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_millis(200),
            job_duration: Duration::from_millis(200),
        },
        stop.clone(),
    );
    let config = Config {
        prometheus_url: Some(format!("http://{}", prom.addr)),
        ..Config::default()
    };
    let ctx = Arc::new(Context::new(sim.client(), config, Clock::System, metrics));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    let api: Api<Rollout> = Api::namespaced(sim.client(), "default");
    // One Rollout promoted through an analysis the same Prometheus answers, one held at a
    // gate, so every panel has something to show.
    let analysed = rollout(
        "checkout",
        json!([{"setWeight": 40}, {"analysis": {"metrics": [{"name": "up", "interval": "1s", "count": 2,
            "successCondition": "result >= 1", "prometheus": {"query": "vector(1)"}}]}}]),
    );
    let gated = rollout("search", json!([{"setWeight": 20}, {"pause": {}}]));
    for r in [&analysed, &gated] {
        api.create(&PostParams::default(), r).await.unwrap();
    }
    for name in ["checkout", "search"] {
        until(&api, name, "Healthy", |r| phase(r) == RolloutPhase::Healthy).await;
        set_image(&api, name, &format!("{name}:2")).await;
    }
    until(&api, "search", "its gate", |r| {
        phase(r) == RolloutPhase::Paused
    })
    .await;
    until(&api, "checkout", "promotion", |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
    })
    .await;

    let endpoint = Endpoint::new(format!("http://{}", prom.addr));
    let transport = HttpTransport::new();
    let query = async |q: &str| instant(&transport, &endpoint, q, jiff::Timestamp::now()).await;
    // What the Rollouts say, as Prometheus scraped it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let checks = [
        r#"cutover_rollout_info{name="search",strategy="Canary",phase="Paused"}"#,
        r#"cutover_rollout_canary_weight{name="search"} == 20"#,
        r#"cutover_rollout_step{name="search"} == 1"#,
        r#"cutover_rollout_info{name="checkout",phase="Healthy"}"#,
        r#"cutover_analysis_verdicts_total{name="checkout",verdict="Successful"} == 1"#,
        // Two scrapes of every series, so the rates and increases over them have data.
        r#"min(count_over_time(cutover_analysis_verdicts_total[1h])) >= 2"#,
        r#"min(count_over_time(cutover_rollout_info{name="search",phase="Paused"}[1h])) >= 2"#,
    ];
    for check in checks {
        loop {
            if let Ok(QueryResult::Number(_)) = query(check).await {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Prometheus never had {check}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let exprs = expressions(&dashboard);
    assert!(exprs.len() >= 9, "{exprs:?}");
    for expr in exprs {
        match query(&expr).await {
            Ok(QueryResult::Number(_) | QueryResult::Numbers(_)) => {}
            other => panic!("{expr}: {other:?}"),
        }
    }
}
