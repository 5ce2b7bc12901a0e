//! Analysis against a real Prometheus (Debian's `prometheus`, installed by `scripts/test`)
//! scraping a test exporter every second whose counters the test drives. The operator runs
//! on the sim in real time and queries Prometheus over HTTP like it would in a cluster.
//! (`bench abort-lag` measures how soon an abort follows a spike.)

#[path = "support/prometheus.rs"]
mod prometheus;

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use cutover::api::{AnalysisVerdict, MeasurementOutcome, Rollout, RolloutPhase};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use prometheus::{
    ERROR_RATE, Prometheus, canary_rollout, error_rate_metric, start_exporter, start_prometheus,
};

struct Operator {
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

fn start_operator(prometheus: &Prometheus) -> Operator {
    let (rollouts, stop) = prometheus.operator().unwrap();
    Operator {
        rollouts,
        _stop: stop,
    }
}

impl Operator {
    async fn roll(&self, metric: serde_json::Value) {
        self.rollouts
            .create(&PostParams::default(), &canary_rollout("web:1", metric))
            .await
            .unwrap();
        self.until("first revision healthy", Duration::from_secs(30), |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Healthy)
        })
        .await;
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        self.rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    async fn until(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&Rollout) -> bool,
    ) -> Rollout {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let r = self.rollouts.get("web").await.unwrap();
            if check(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.rollouts.get("web").await.unwrap().status
        );
    }
}

fn run_verdict(r: &Rollout) -> Option<AnalysisVerdict> {
    r.status
        .as_ref()?
        .analysis
        .iter()
        .find(|a| a.name == "step-1")
        .map(|a| a.verdict)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_against_real_prometheus() {
    let (_exporter, exporter_addr) = start_exporter().await.unwrap();
    let prometheus = start_prometheus(exporter_addr).await.unwrap();
    let operator = start_operator(&prometheus);
    operator
        .roll(error_rate_metric(ERROR_RATE, json!({})))
        .await;
    let r = operator
        .until("promotion", Duration::from_secs(60), |r| {
            r.status.as_ref().is_some_and(|s| {
                s.stable_revision == s.current_revision && s.phase == RolloutPhase::Healthy
            }) && run_verdict(r).is_some()
        })
        .await;
    let s = r.status.unwrap();
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    let values: Vec<f64> = run.metrics[0]
        .measurements
        .iter()
        .map(|m| m.value.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| (0.0..0.05).contains(v)), "{values:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_spike_aborts_on_the_first_measurement_that_sees_it() {
    let (exporter, exporter_addr) = start_exporter().await.unwrap();
    let prometheus = start_prometheus(exporter_addr).await.unwrap();
    let operator = start_operator(&prometheus);
    operator
        .roll(error_rate_metric(
            ERROR_RATE,
            json!({"interval": "3s", "count": 1000}),
        ))
        .await;
    // Healthy measurements first, so the abort is the spike's doing.
    operator
        .until("a healthy measurement", Duration::from_secs(30), |r| {
            r.status.as_ref().is_some_and(|s| {
                s.analysis
                    .iter()
                    .any(|a| a.metrics.first().is_some_and(|m| m.successful >= 1))
            })
        })
        .await;
    exporter.error_per_mille.store(300, Ordering::SeqCst);
    let r = operator
        .until("abort", Duration::from_secs(60), |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Aborted)
        })
        .await;
    let s = r.status.unwrap();
    assert_ne!(s.stable_revision, s.current_revision);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Failed);
    // Every measurement before the spike showed passed; the first that saw it failed, and
    // the rollout aborted on it without waiting for another.
    let taken: Vec<(MeasurementOutcome, f64)> = run.metrics[0]
        .measurements
        .iter()
        .map(|m| (m.outcome, m.value.as_deref().unwrap().parse().unwrap()))
        .collect();
    let (last, before) = taken.split_last().unwrap();
    assert_eq!(last.0, MeasurementOutcome::Failed, "{taken:?}");
    assert!(last.1 >= 0.05, "{taken:?}");
    assert!(
        before
            .iter()
            .all(|(o, v)| *o == MeasurementOutcome::Successful && *v < 0.05),
        "{taken:?}"
    );
    assert!(!before.is_empty(), "{taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_prometheus_gives_errors_then_a_pause_never_a_promotion() {
    let (_exporter, exporter_addr) = start_exporter().await.unwrap();
    let mut prometheus = start_prometheus(exporter_addr).await.unwrap();
    let operator = start_operator(&prometheus);
    operator
        .roll(error_rate_metric(
            ERROR_RATE,
            json!({"count": 1000, "consecutiveErrorLimit": 1}),
        ))
        .await;
    operator
        .until("a first measurement", Duration::from_secs(30), |r| {
            r.status.as_ref().is_some_and(|s| {
                s.analysis
                    .iter()
                    .any(|a| a.metrics.first().is_some_and(|m| m.successful >= 1))
            })
        })
        .await;
    prometheus.child.kill().unwrap();
    prometheus.child.wait().unwrap();
    let r = operator
        .until("pause", Duration::from_secs(60), |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Paused)
        })
        .await;
    let s = r.status.unwrap();
    assert_ne!(s.stable_revision, s.current_revision, "never promoted");
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Error);
    let last = run.metrics[0].measurements.last().unwrap();
    assert_eq!(last.outcome, MeasurementOutcome::Error);
    assert!(
        last.message.as_deref().unwrap().contains("unreachable"),
        "{:?}",
        last.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_is_inconclusive() {
    let (_exporter, exporter_addr) = start_exporter().await.unwrap();
    let prometheus = start_prometheus(exporter_addr).await.unwrap();
    let operator = start_operator(&prometheus);
    operator
        .roll(error_rate_metric(
            "sum(rate(not_exported_total[5s]))",
            json!({}),
        ))
        .await;
    let r = operator
        .until("pause", Duration::from_secs(30), |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Paused)
        })
        .await;
    let s = r.status.unwrap();
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Inconclusive);
    let m = &run.metrics[0].measurements[0];
    assert_eq!(m.outcome, MeasurementOutcome::Inconclusive);
    assert!(m.message.as_deref().unwrap().contains("no data"), "{m:?}");
}
