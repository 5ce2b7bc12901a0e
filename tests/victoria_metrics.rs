//! The same analysis against a real Prometheus and a real VictoriaMetrics (Debian's
//! packages, installed by `scripts/test`), both scraping one exporter: a Prometheus-
//! compatible server gives the same verdicts, measured through the same provider.

#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/victoria.rs"]
mod victoria;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use cutover::api::{AnalysisVerdict, MeasurementOutcome, Rollout, RolloutPhase};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use prometheus::{
    ERROR_RATE, Prometheus, canary_rollout, error_rate_metric, start_exporter, start_prometheus,
};
use victoria::start_victoria_metrics;

async fn until(rollouts: &Api<Rollout>, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let r = rollouts.get("web").await.unwrap();
        if check(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for {what}: {:#?}",
        rollouts.get("web").await.unwrap().status
    );
}

/// Rolls `web:1` then `web:2` with `metric` on an operator querying `server`, waits for the
/// rollout to stop (promoted, aborted or paused), calling `during` once the first
/// measurement passed; returns the phase and the step run's outcomes.
async fn roll(
    server: &Prometheus,
    metric: Value,
    during: impl AsyncFnOnce(),
) -> (RolloutPhase, AnalysisVerdict, Vec<MeasurementOutcome>) {
    let (rollouts, _stop) = server.operator().unwrap();
    rollouts
        .create(&PostParams::default(), &canary_rollout("web:1", metric))
        .await
        .unwrap();
    until(&rollouts, "first revision healthy", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Healthy)
    })
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until(&rollouts, "a first measurement", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.analysis
                .iter()
                .any(|a| a.metrics.first().is_some_and(|m| m.count >= 1))
        })
    })
    .await;
    during().await;
    let r = until(&rollouts, "the rollout to stop", |r| {
        r.status.as_ref().is_some_and(|s| {
            matches!(s.phase, RolloutPhase::Aborted | RolloutPhase::Paused)
                || (s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision)
        })
    })
    .await;
    let s = r.status.unwrap();
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    let outcomes = run.metrics[0]
        .measurements
        .iter()
        .map(|m| m.outcome)
        .collect();
    (s.phase, run.verdict, outcomes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_and_victoria_metrics_give_the_same_verdicts() {
    let (exporter, addr) = start_exporter().await.unwrap();
    let prometheus = start_prometheus(addr).await.unwrap();
    let victoria = start_victoria_metrics(addr).await.unwrap();
    for server in [&prometheus, &victoria] {
        // Both read the same counters: 1 % errors.
        let rate = server.query(ERROR_RATE).await.unwrap();
        assert!((0.0..0.05).contains(&rate), "{rate}");
    }

    // A healthy canary passes on both.
    let nothing = async || {};
    let healthy_p = roll(
        &prometheus,
        error_rate_metric(ERROR_RATE, json!({})),
        nothing,
    )
    .await;
    let healthy_v = roll(&victoria, error_rate_metric(ERROR_RATE, json!({})), nothing).await;
    assert_eq!(
        healthy_p,
        (
            RolloutPhase::Healthy,
            AnalysisVerdict::Successful,
            vec![MeasurementOutcome::Successful; 3]
        )
    );
    assert_eq!(healthy_v, healthy_p);

    // A metric nothing exports is no data on both: Inconclusive, a pause, never a promotion.
    let silent = error_rate_metric("sum(rate(not_exported_total[5s]))", json!({"count": 1}));
    let silent_p = roll(&prometheus, silent.clone(), nothing).await;
    let silent_v = roll(&victoria, silent, nothing).await;
    assert_eq!(
        silent_p,
        (
            RolloutPhase::Paused,
            AnalysisVerdict::Inconclusive,
            vec![MeasurementOutcome::Inconclusive]
        )
    );
    assert_eq!(silent_v, silent_p);

    // An error spike aborts on both, on a measurement that sees it.
    let spiking = error_rate_metric(ERROR_RATE, json!({"count": 1000}));
    let spike = async || {
        exporter.error_per_mille.store(300, Ordering::SeqCst);
    };
    // VictoriaMetrics first: it shows samples 3 s late, so a check that the spike has left
    // its window could pass before the spike reached it. Prometheus shows them at once.
    let spike_v = roll(&victoria, spiking.clone(), spike).await;
    exporter.error_per_mille.store(10, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while prometheus.query(ERROR_RATE).await.is_none_or(|r| r >= 0.05) {
        assert!(Instant::now() < deadline, "the error rate never settled");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let spike_p = roll(&prometheus, spiking, spike).await;
    for (phase, verdict, outcomes) in [&spike_p, &spike_v] {
        assert_eq!(
            (*phase, *verdict),
            (RolloutPhase::Aborted, AnalysisVerdict::Failed)
        );
        assert_eq!(
            outcomes.last(),
            Some(&MeasurementOutcome::Failed),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[0], MeasurementOutcome::Successful, "{outcomes:?}");
    }
}
