//! Analysis wired into Rollouts, through the real controller and kube::Client against the
//! sim and its scripted Prometheus, on the virtual clock.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{AnalysisVerdict, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, workload::WorkloadConfig},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Env {
    rollouts: Api<Rollout>,
    client: kube::Client,
    _stop: tokio_util::sync::DropGuard,
}

fn start(script: &str) -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus()
        .set_script(MetricScript::parse(script).unwrap());
    let stop = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let client = sim.client();
    let ctx = Context::new(
        client.clone(),
        Config {
            allowed_hosts: vec!["prometheus.test".into()],
            ..Config::default()
        },
        clock,
        Arc::new(Metrics::new()),
    )
    .with_prometheus(sim.prometheus_transport());
    tokio::spawn(cutover::rollout::watch::run(Arc::new(ctx), stop.clone()));
    Env {
        rollouts: Api::namespaced(client.clone(), "default"),
        client,
        _stop: stop.drop_guard(),
    }
}

fn rollout(image: &str, canary: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"canary": canary}}
    }))
    .unwrap()
}

fn error_rate_metric(extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({"name": "error-rate", "interval": "30s", "count": 4, "successCondition": "result < 0.05",
        "prometheus": {"query": "error_rate{revision=\"{{ rollout.canaryRevision }}\"}", "address": "http://prometheus.test"}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

impl Env {
    async fn get(&self) -> Rollout {
        self.rollouts.get("web").await.unwrap()
    }

    /// Creates the Rollout on `web:1`, waits for it to be healthy, then sets `web:2`.
    async fn roll(&self, canary: serde_json::Value) {
        self.rollouts
            .create(&PostParams::default(), &rollout("web:1", canary))
            .await
            .unwrap();
        self.until("first revision healthy", |r| {
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

    async fn until(&self, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
        for _ in 0..4000 {
            let r = self.get().await;
            if check(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.get().await.status
        );
    }
}

fn ended(r: &Rollout) -> bool {
    r.status.as_ref().is_some_and(|s| {
        matches!(
            s.phase,
            RolloutPhase::Aborted | RolloutPhase::Paused | RolloutPhase::Degraded
        ) || (s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision)
            && s.current_step_index.is_none()
            && s.analysis.iter().any(|a| a.name == "step-1")
    })
}

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_passes_its_analysis_and_is_promoted() {
    let env =
        start("metrics:\n  - match: 'error_rate\\{revision=\"{{canary}}\"'\n    value: 0.01\n");
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [error_rate_metric(json!({}))]}}]}))
        .await;
    let r = env.until("the rollout to finish", ended).await;
    let s = r.status.unwrap();
    assert_eq!(s.phase, RolloutPhase::Healthy, "{:?}", s.message);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    let m = &run.metrics[0];
    assert_eq!((m.count, m.successful), (4, 4));
    assert_eq!(m.measurements[0].value.as_deref(), Some("0.01"));
    let spacing: Vec<i64> = m
        .measurements
        .windows(2)
        .map(|w| w[1].due_at.0.as_second() - w[0].due_at.0.as_second())
        .collect();
    assert_eq!(spacing, vec![30, 30, 30]);
}

#[tokio::test(start_paused = true)]
async fn a_rising_error_rate_aborts_the_canary() {
    // The canary's error rate jumps to 20 % four minutes after the sim starts.
    let env = start(
        "metrics:\n  - match: 'error_rate\\{revision=\"{{canary}}\"'\n    values:\n      - {at: 0s, value: 0.01}\n      - {at: 4m, value: 0.2}\n",
    );
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [error_rate_metric(json!({"count": 100}))]}}]}))
        .await;
    let r = env.until("the rollout to end", ended).await;
    let s = r.status.unwrap();
    assert_eq!(s.phase, RolloutPhase::Aborted, "{:?}", s.message);
    assert_ne!(s.stable_revision, s.current_revision, "stable untouched");
    assert_eq!(s.canary_weight, Some(0));
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    let failed = run.metrics[0]
        .measurements
        .iter()
        .find(|m| m.outcome == cutover::api::MeasurementOutcome::Failed)
        .unwrap();
    let aborted_at = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Aborted")
        .unwrap()
        .last_transition_time
        .0;
    let lag = aborted_at.as_second() - 1_800_000_000 - 240;
    assert!(
        (0..=31).contains(&lag),
        "aborted {lag}s after the spike (interval 30s); failing sample at {}",
        failed.taken_at.0
    );
}

#[tokio::test(start_paused = true)]
async fn a_prometheus_outage_pauses_and_never_promotes() {
    let env = start(
        "metrics:\n  - match: 'error_rate'\n    value: 0.01\noutages:\n  - {from: 0s, to: 1h}\n",
    );
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [error_rate_metric(json!({}))]}}]}))
        .await;
    let r = env.until("the rollout to stop", ended).await;
    let s = r.status.unwrap();
    assert_eq!(s.phase, RolloutPhase::Paused, "{:?}", s.message);
    assert_ne!(s.stable_revision, s.current_revision);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Error);
    let last = run.metrics[0].measurements.last().unwrap();
    assert!(
        last.message.as_deref().unwrap().contains("503"),
        "{:?}",
        last.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_credentials_secret_is_an_error_naming_it_and_a_present_one_is_used() {
    let env = start("metrics:\n  - match: 'error_rate'\n    value: 0.01\n");
    let auth = json!({"auth": {"bearerToken": {"name": "prom-token", "key": "token"}}});
    let mut metric = error_rate_metric(json!({"count": 2, "consecutiveErrorLimit": 0}));
    metric["prometheus"]
        .as_object_mut()
        .unwrap()
        .extend(auth.as_object().unwrap().clone());
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}]}))
        .await;
    let r = env.until("the rollout to stop", ended).await;
    let s = r.status.unwrap();
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    let message = run.metrics[0].measurements[0].message.clone().unwrap();
    assert!(
        message.contains("Secret \"prom-token\" not found"),
        "{message}"
    );
    // Once the Secret exists, an abort and retry runs the analysis again, and it passes.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), "default");
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "prom-token"},
        "stringData": {"token": "planted-secret-value"}}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let patch = json!({"metadata": {"annotations": {"cutover.dev/abort": "1"}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.until("aborted", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RolloutPhase::Aborted)
    })
    .await;
    let patch = json!({"metadata": {"annotations": {"cutover.dev/retry": "1"}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let r = env
        .until("promoted", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
            })
        })
        .await;
    let text = serde_json::to_string(&r.status).unwrap();
    assert!(!text.contains("planted-secret-value"));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_placeholder_is_an_invalid_spec_and_nothing_is_measured() {
    let env = start("metrics: []\n");
    let mut metric = error_rate_metric(json!({}));
    metric["prometheus"]["query"] = json!("errors{app=\"{{ args.app }}\"}");
    env.rollouts
        .create(
            &PostParams::default(),
            &rollout(
                "web:1",
                json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}]}),
            ),
        )
        .await
        .unwrap();
    let r = env
        .until("InvalidSpec", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "InvalidSpec" && c.status == "True")
            })
        })
        .await;
    let message = r.status.unwrap().message.unwrap();
    assert!(message.contains("args.app"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_background_analysis_aborts_during_a_pause() {
    let env = start(
        "metrics:\n  - match: 'error_rate\\{revision=\"{{canary}}\"'\n    values:\n      - {at: 0s, value: 0.01}\n      - {at: 3m, value: 0.3}\n",
    );
    env.roll(
        json!({"steps": [{"setWeight": 25}, {"pause": {"duration": "30m"}}],
        "analysis": {"startingStep": 1, "metrics": [error_rate_metric(json!({"count": null}))]}}),
    )
    .await;
    let r = env
        .until("abort", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Aborted)
        })
        .await;
    let s = r.status.unwrap();
    assert_eq!(s.current_step_index, Some(1), "during the 30m pause");
    let run = s.analysis.iter().find(|a| a.name == "background").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Failed);
    assert!(
        run.metrics[0].successful >= 1,
        "it measured healthy values first"
    );
}

#[tokio::test(start_paused = true)]
async fn the_judge_aborts_a_canary_slower_than_stable() {
    let env = start(
        "metrics:\n  - match: 'latency\\{revision=\"{{canary}}\"'\n    value: 0.4\n    jitter: 0.1\n  - match: 'latency\\{revision=\"{{stable}}\"'\n    value: 0.2\n    jitter: 0.1\n",
    );
    let metric = json!({"name": "latency-vs-stable", "interval": "1m", "count": 2, "compare": {
        "canaryQuery": "latency{revision=\"{{ rollout.canaryRevision }}\"}",
        "stableQuery": "latency{revision=\"{{ rollout.stableRevision }}\"}",
        "window": "10m", "step": "30s", "address": "http://prometheus.test"}});
    env.roll(json!({"steps": [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}]}))
        .await;
    let r = env.until("the rollout to end", ended).await;
    let s = r.status.unwrap();
    assert_eq!(s.phase, RolloutPhase::Aborted, "{:?}", s.message);
    let m = &s
        .analysis
        .iter()
        .find(|a| a.name == "step-1")
        .unwrap()
        .metrics[0];
    let value = m.measurements[0].value.clone().unwrap();
    assert!(value.starts_with("High: p="), "{value}");
    assert!(value.contains("n=21/21"), "{value}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_pre_promotion_analysis_never_moves_the_active_service() {
    let env = start("metrics:\n  - match: 'error_rate'\n    value: 0.5\n");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(env.client.clone(), "default");
    for name in ["active", "preview"] {
        let svc = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
        .unwrap();
        services.create(&PostParams::default(), &svc).await.unwrap();
    }
    let mut r = rollout("web:1", json!({}));
    r.spec.strategy.canary = None;
    r.spec.strategy.blue_green = Some(
        serde_json::from_value(
            json!({"activeService": "active", "previewService": "preview",
            "prePromotionAnalysis": {"metrics": [error_rate_metric(json!({}))]}}),
        )
        .unwrap(),
    );
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let first = env
        .until("first revision healthy", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Healthy)
        })
        .await
        .status
        .unwrap()
        .stable_revision
        .unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let r = env
        .until("abort", |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Aborted)
        })
        .await;
    let s = r.status.unwrap();
    assert_eq!(s.stable_revision.as_deref(), Some(first.as_str()));
    let active = services.get("active").await.unwrap();
    assert_eq!(
        active.spec.unwrap().selector.unwrap()["cutover.dev/revision"],
        first,
        "the active Service never moved"
    );
    let run = s
        .analysis
        .iter()
        .find(|a| a.name == "prePromotion")
        .unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Failed);
}
