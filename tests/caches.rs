//! Reads from a lagging watch cache never repeat or skip a step: on the sim, the Deployment
//! watch is held back while a canary runs, and the operator reads past the cache until it
//! has seen the operator's own writes.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{LABEL_ROLLOUT, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use k8s_openapi::api::{apps::v1::Deployment, events::v1::Event};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

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

/// The value of the metric line starting with `prefix` (0 when absent).
/// The sum of the samples whose series starts with `prefix` (a name, or a name and labels).
fn metric(metrics: &Metrics, prefix: &str) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(start_paused = true)]
async fn a_lagging_deployment_cache_never_repeats_or_skips_a_step() {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).expect("a time"));
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).expect("CRDs");
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let client = sim.client();
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(Context::new(
        client.clone(),
        Config::default(),
        clock,
        metrics.clone(),
    ));
    tokio::spawn(cutover::rollout::watch::run(ctx, stop.clone()));
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let rollout: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "revisionHistoryLimit": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 25}, {"pause": {"duration": "10s"}},
                {"setWeight": 75}, {"pause": {"duration": "10s"}}]}}}
    }))
    .expect("a rollout");
    rollouts
        .create(&PostParams::default(), &rollout)
        .await
        .expect("created");
    let healthy_on = |image: &'static str| {
        let rollouts = rollouts.clone();
        async move {
            rollouts.get("web").await.ok().and_then(|r| {
                let s = r.status?;
                let image_now = r.spec.template?.spec?.containers.first()?.image.clone();
                (s.phase == RolloutPhase::Healthy
                    && s.stable_revision == s.current_revision
                    && image_now.as_deref() == Some(image))
                .then_some(())
            })
        }
    };
    until("web:1 is Healthy", Duration::from_secs(120), || async {
        healthy_on("web:1").await.is_some()
    })
    .await;

    // From here every Deployment event reaches the operator's cache 3 s late.
    sim.store()
        .faults()
        .lag_watches("deployments", Some(Duration::from_secs(3)));
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&image))
        .await
        .expect("new image");
    // Someone keeps touching the Rollout: each touch is a reconcile that reads the
    // Deployments while their cache lags, not only once their own events arrive.
    let mut touch = 0;
    until("web:2 is Healthy", Duration::from_secs(600), || {
        touch += 1;
        let note = json!({"metadata": {"annotations": {"example.com/touched": touch.to_string()}}});
        let rollouts = rollouts.clone();
        let healthy = healthy_on("web:2");
        async move {
            let _ = rollouts
                .patch("web", &PatchParams::default(), &Patch::Merge(&note))
                .await;
            healthy.await.is_some()
        }
    })
    .await;
    let owned = deployments
        .list(&ListParams::default().labels(LABEL_ROLLOUT))
        .await
        .expect("deployments");
    assert_eq!(
        owned.items.len(),
        1,
        "the old revision is deleted once (history limit 0)"
    );

    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter_map(|e| Some(format!("{} {}", e.reason?, e.note.unwrap_or_default())))
        .collect();
    for step in 0..4 {
        let done = format!("StepCompleted step {step} completed");
        assert_eq!(
            reasons.iter().filter(|r| **r == done).count(),
            1,
            "step {step} completed exactly once: {reasons:#?}"
        );
    }
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("Promoted "))
            .count(),
        1,
        "one promotion: {reasons:#?}"
    );
    assert_eq!(
        metric(&metrics, "cutover_reconcile_errors_total"),
        0.0,
        "no reconcile acted on a stale read (a repeated delete is a 404):\n{}",
        metrics.render()
    );
    assert!(
        metric(
            &metrics,
            "cutover_cache_reads_total{kind=\"Deployment\",source=\"api\"}"
        ) > 0.0,
        "while the cache lagged, reads went to the API server"
    );
    assert!(
        metric(
            &metrics,
            "cutover_cache_reads_total{kind=\"Deployment\",source=\"cache\"}"
        ) > 0.0,
        "once it caught up, they came from the cache"
    );
}
