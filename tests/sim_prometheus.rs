//! The scripted Prometheus answers like Prometheus's HTTP API, from the script, on the
//! virtual clock.

use std::time::Duration;

use cutover::{
    controller::Clock,
    sim::{Sim, prometheus::MetricScript},
};
use serde_json::Value;

const SCRIPT: &str = r#"
metrics:
  - name: canary errors
    match: 'errors\{rev="{{canary}}"\}'
    values:
      - {at: 0s, value: 0.01}
      - {at: 6m, value: 0.08}
  - match: 'errors\{rev="{{stable}}"\}'
    value: 0.01
  - match: '^latency$'
    linear: true
    values:
      - {at: 0s, value: 100}
      - {at: 100s, value: 200}
  - match: '^nan$'
    value: NaN
  - match: '^missing$'
    empty: true
outages:
  - {from: 20m, to: 25m}
"#;

async fn query(sim: &Sim, path: &str) -> (u16, Value) {
    let req = http::Request::get(format!("/prometheus/api/v1/{path}"))
        .body(Vec::new())
        .unwrap();
    match sim.client().request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap()),
        Err(kube::Error::Api(s)) => (s.code, Value::Null),
        Err(e) => panic!("{e}"),
    }
}

fn enc(q: &str) -> String {
    form_urlencoded::byte_serialize(q.as_bytes()).collect()
}

fn scalar(body: &Value) -> Option<String> {
    body.pointer("/data/result/0/value/1")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn sim_with_rollout() -> Sim {
    let sim = Sim::new(Clock::tokio_at(
        jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    ));
    cutover::cli::dev::install_crds(&sim).unwrap();
    let rt = sim
        .store()
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    let rollout = serde_json::json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}, "strategy": {"rolling": {}}}});
    sim.store()
        .create(&rt, "default", rollout, &Default::default())
        .unwrap();
    let status =
        serde_json::json!({"status": {"currentRevision": "abc123", "stableRevision": "def456"}});
    sim.store()
        .patch(
            &rt,
            "default",
            "web",
            cutover::sim::store::PatchKind::Merge,
            &status,
            cutover::sim::store::Subresource::Status,
            &Default::default(),
        )
        .unwrap();
    sim.prometheus()
        .set_script(MetricScript::parse(SCRIPT).unwrap());
    sim
}

#[tokio::test(start_paused = true)]
async fn values_follow_the_script_over_virtual_time() {
    let sim = sim_with_rollout().await;
    let canary = format!("query?query={}", enc(r#"errors{rev="abc123"}"#));
    let stable = format!("query?query={}", enc(r#"errors{rev="def456"}"#));
    let (_, body) = query(&sim, &canary).await;
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(scalar(&body).as_deref(), Some("0.01"));
    tokio::time::sleep(Duration::from_secs(6 * 60)).await;
    assert_eq!(
        scalar(&query(&sim, &canary).await.1).as_deref(),
        Some("0.08")
    );
    assert_eq!(
        scalar(&query(&sim, &stable).await.1).as_deref(),
        Some("0.01"),
        "{{stable}} is the stable revision"
    );
    let other = format!("query?query={}", enc(r#"errors{rev="zzz"}"#));
    assert_eq!(
        query(&sim, &other).await.1["data"]["result"],
        serde_json::json!([]),
        "unmatched queries return no data"
    );
}

#[tokio::test(start_paused = true)]
async fn linear_nan_empty_and_outages() {
    let sim = sim_with_rollout().await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    assert_eq!(
        scalar(&query(&sim, "query?query=latency").await.1).as_deref(),
        Some("150")
    );
    assert_eq!(
        scalar(&query(&sim, "query?query=nan").await.1).as_deref(),
        Some("NaN")
    );
    assert_eq!(
        query(&sim, "query?query=missing").await.1["data"]["result"],
        serde_json::json!([])
    );
    tokio::time::sleep(Duration::from_secs(21 * 60)).await;
    assert_eq!(
        query(&sim, "query?query=latency").await.0,
        503,
        "scripted outage"
    );
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    assert_eq!(
        query(&sim, "query?query=latency").await.0,
        200,
        "back after the outage"
    );
}

#[tokio::test(start_paused = true)]
async fn range_queries_return_a_matrix_sampled_at_each_step() {
    let sim = sim_with_rollout().await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    let start = 1_800_000_000;
    let (code, body) = query(
        &sim,
        &format!(
            "query_range?query=latency&start={start}&end={}&step=25",
            start + 100
        ),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["data"]["resultType"], "matrix");
    let values: Vec<&str> = body["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap())
        .collect();
    assert_eq!(values, ["100", "125", "150", "175", "200"]);
}

#[test]
fn bad_scripts_are_rejected_with_a_reason() {
    assert!(
        MetricScript::parse("metrics: [{match: '('}]")
            .unwrap_err()
            .to_string()
            .contains("invalid regex")
    );
    assert!(
        MetricScript::parse("metrics: [{match: 'a', valu: 1}]").is_err(),
        "unknown fields are errors"
    );
}
