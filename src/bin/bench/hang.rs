//! `bench hang`: whether one Rollout's hanging Prometheus delays the others.
//!
//! 50 Rollouts run a canary whose analysis takes 5 measurements 2 s apart from the sim's
//! Prometheus over HTTP; beside them, one more Rollout's metric names a Prometheus that
//! accepts connections and never answers (its query times out after 10 s). The figure is
//! the delay of the 50's measurements after they fell due (when the status write recording
//! one was seen, minus its due time), with the hanging Rollout and without it, on the real
//! clock with two threads.

use std::{sync::Arc, time::Duration};

use cutover::{
    controller::{Clock, Config, Context, Metrics},
    sim::store::{Filter, PatchKind, Subresource},
};
use serde_json::{Value, json};

const ROLLOUTS: usize = 50;

fn manifest(name: &str, address: Option<&str>) -> Value {
    let mut provider = json!({"query": "errors"});
    if let Some(address) = address {
        provider["address"] = json!(address);
    }
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"analysis": {"metrics": [{"name": "errors", "interval": "2s", "count": 5,
                    "successCondition": "result < 0.01", "prometheus": provider}]}},
                {"setWeight": 100}]}}}})
}

/// Accepts connections and never answers them.
async fn hanging_prometheus() -> Result<std::net::SocketAddr, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(addr)
}

/// Delays in seconds of every measurement of the 50, sorted.
async fn run(with_hang: bool) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let (sim, stop, _stop) = super::live_sim()?;
    sim.prometheus()
        .set_script(cutover::sim::prometheus::MetricScript::parse(
            "metrics:\n  - match: errors\n    value: 0.001\n",
        )?);
    let (addr, _server) = sim.serve("127.0.0.1:0".parse()?, stop.clone()).await?;
    let hang = hanging_prometheus().await?;
    let store = sim.store().clone();
    let rollouts = store
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .ok_or("no rollouts")?;
    super::create_namespace(&sim, "team")?;
    for i in 0..ROLLOUTS {
        store.create(
            &rollouts,
            "team",
            manifest(&format!("app-{i}"), None),
            &Default::default(),
        )?;
    }
    if with_hang {
        store.create(
            &rollouts,
            "team",
            manifest("hanging", Some(&format!("http://{hang}"))),
            &Default::default(),
        )?;
    }
    let config = Config {
        prometheus_url: Some(format!("http://{addr}/prometheus")),
        allowed_hosts: vec!["127.0.0.1".into()],
        ..Config::default()
    };
    // Analysis goes over HTTP, as in a cluster; the API calls stay in-process.
    let ctx = Arc::new(Context::new(
        sim.client(),
        config,
        Clock::System,
        Arc::new(Metrics::new()),
    ));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    let ours = |r: &Value| r.pointer("/metadata/name") != Some(&json!("hanging"));
    let healthy_on = |image: &'static str| {
        let store = store.clone();
        let rollouts = rollouts.clone();
        move || -> Result<bool, Box<dyn std::error::Error>> {
            Ok(store
                .list(&rollouts, &Filter::default(), None, None)?
                .items
                .iter()
                .filter(|r| ours(r))
                .all(|r| {
                    r.pointer("/status/phase") == Some(&json!("Healthy"))
                        && r.pointer("/spec/template/spec/containers/0/image")
                            == Some(&json!(image))
                        && r.pointer("/status/stableRevision")
                            == r.pointer("/status/currentRevision")
                        && r.pointer("/status/observedGeneration")
                            == r.pointer("/metadata/generation")
                }))
        }
    };
    let first = healthy_on("app:1");
    let started = std::time::Instant::now();
    while !first()? {
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the first revision did not settle".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    let names: Vec<String> = (0..ROLLOUTS)
        .map(|i| format!("app-{i}"))
        .chain(with_hang.then(|| "hanging".to_string()))
        .collect();
    for name in &names {
        store.patch(
            &rollouts,
            "team",
            name,
            PatchKind::Merge,
            &image,
            Subresource::Main,
            &Default::default(),
        )?;
    }
    // Each measurement's delay: when its status write was first seen (polled every 10 ms)
    // minus when it fell due. Status times have whole seconds, and due times are computed
    // from them, so `dueAt` is exact.
    let second = healthy_on("app:2");
    let started = std::time::Instant::now();
    let mut seen: std::collections::HashSet<(String, String, String)> = Default::default();
    let mut delays = Vec::new();
    loop {
        let now = jiff::Timestamp::now();
        for r in store
            .list(&rollouts, &Filter::default(), None, None)?
            .items
            .iter()
            .filter(|r| ours(r))
        {
            let name = r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let runs = r
                .pointer("/status/analysis")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for run in &runs {
                let run_name = run["name"].as_str().unwrap_or_default().to_string();
                for m in run
                    .pointer("/metrics/0/measurements")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let Some(due) = m
                        .get("dueAt")
                        .and_then(Value::as_str)
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    else {
                        continue;
                    };
                    if seen.insert((name.clone(), run_name.clone(), due.to_string())) {
                        delays.push(now.duration_since(due).as_secs_f64());
                    }
                }
            }
        }
        if second()? {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            return Err("the 50 were not promoted in 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    delays.sort_by(f64::total_cmp);
    Ok(delays)
}

/// Runs the benchmark.
pub async fn bench() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "hang: {ROLLOUTS} Rollouts with analysis (5 measurements, 2 s apart) over HTTP, sim, real clock, 2 threads"
    );
    for with_hang in [false, true] {
        let delays = run(with_hang).await?;
        let pct = |p: f64| {
            delays
                .get(((delays.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "  {:<44} measurement delay p50 {:.3} s  p99 {:.3} s  max {:.3} s over {}",
            if with_hang {
                "beside one whose Prometheus hangs:"
            } else {
                "alone:"
            },
            pct(0.5),
            pct(0.99),
            delays.last().copied().unwrap_or(f64::NAN),
            delays.len()
        );
    }
    Ok(())
}
