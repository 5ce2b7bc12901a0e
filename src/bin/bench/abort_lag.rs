//! `bench abort-lag [--runs N]`: how soon an error spike seen by a real Prometheus aborts a
//! canary.
//!
//! A test exporter serves 200 requests a second to Debian's `prometheus`, scraping every
//! second; the operator runs on the sim in real time and measures the 5 s error rate every
//! 3 s. Once a healthy measurement is recorded the exporter's errors jump from 1 % to 30 %.
//! The figure is the time from the first instant query that shows the spike to the Rollout
//! being seen Aborted, per run.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use cutover::api::{Rollout, RolloutPhase};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use super::prometheus::{ERROR_RATE, start_exporter, start_prometheus};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn rollout() -> Result<Rollout, serde_json::Error> {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"analysis": {"metrics": [{
                "name": "error-rate", "interval": "3s", "count": 1000,
                "successCondition": "result < 0.05", "prometheus": {"query": ERROR_RATE}}]}}]}}}
    }))
}

/// Polls the Rollout every 20 ms until `check` holds, for at most a minute.
async fn until(
    api: &Api<Rollout>,
    what: &str,
    check: impl Fn(&Rollout) -> bool,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if check(&api.get("web").await?) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("timed out waiting for {what}").into())
}

/// One spike; returns seconds from the spike being visible to the abort being seen.
async fn once() -> Result<f64, BoxError> {
    let (exporter, exporter_addr) = start_exporter().await?;
    let prometheus = start_prometheus(exporter_addr).await?;
    let (api, _stop) = prometheus.operator()?;
    api.create(&PostParams::default(), &rollout()?).await?;
    until(&api, "the first revision", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Healthy)
    })
    .await?;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    until(&api, "a healthy measurement", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.analysis
                .iter()
                .any(|a| a.metrics.first().is_some_and(|m| m.successful >= 1))
        })
    })
    .await?;
    exporter.error_per_mille.store(300, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    let visible = loop {
        if prometheus
            .query(ERROR_RATE)
            .await
            .is_some_and(|v| v >= 0.05)
        {
            break Instant::now();
        }
        if Instant::now() > deadline {
            return Err("the spike never showed in Prometheus".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    until(&api, "the abort", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Aborted)
    })
    .await?;
    Ok(visible.elapsed().as_secs_f64())
}

pub async fn bench(runs: usize) -> Result<(), BoxError> {
    println!(
        "abort after an error spike in a real Prometheus (interval 3 s, scrape 1 s), {runs} runs"
    );
    let mut lags = Vec::new();
    for run in 0..runs {
        let lag = once().await?;
        println!("  run {run}: aborted {lag:.2} s after the spike was visible");
        lags.push(lag);
    }
    lags.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (lags.first(), lags.last()) {
        println!("  spike to abort: min {min:.2} s, max {max:.2} s");
    }
    Ok(())
}
