//! Exactly-once notices: 300 Rollouts released at once while the operator is killed
//! (its tasks dropped mid-reconcile, as SIGKILL would) at every step boundary. No decision
//! is announced twice, because each is announced only after the status write that records
//! it, conditional on the version the decision was made from, succeeded.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use cutover::{
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, prometheus::MetricScript, store::Filter, workload::WorkloadConfig},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ROLLOUTS: usize = 300;
const PER_NAMESPACE: usize = 100;

fn namespace(i: usize) -> String {
    format!("team-{}", i / PER_NAMESPACE)
}

fn manifest(i: usize, image: &str) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": format!("app-{i}"), "namespace": namespace(i)},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
            "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 25},
                {"pause": {"duration": "20s"}},
                {"analysis": {"metrics": [{"name": "errors", "interval": "10s", "count": 2,
                    "successCondition": "result < 0.01", "prometheus": {"query": "errors"}}]}},
                {"setWeight": 75},
                {"pause": {"duration": "20s"}}]}}}})
}

/// Starts an operator; dropping what it returns kills it at whatever await it is in.
fn start_operator(sim: &Sim, clock: &Clock) -> Vec<JoinHandle<()>> {
    let config = Config {
        prometheus_url: Some("http://prometheus.sim".into()),
        ..Config::default()
    };
    let ctx = Arc::new(
        Context::new(
            sim.client(),
            config,
            clock.clone(),
            Arc::new(Metrics::new()),
        )
        .with_prometheus(sim.prometheus_transport()),
    );
    // The token is never cancelled: a kill gives no chance to finish anything.
    cutover::controller::runner::controllers(ctx, CancellationToken::new())
        .into_iter()
        .map(tokio::spawn)
        .collect()
}

fn kill(operator: Vec<JoinHandle<()>>) {
    for task in operator {
        task.abort();
    }
}

/// (phase, step, stable == current) of every Rollout.
fn states(sim: &Sim) -> Vec<(String, Option<i64>, bool)> {
    let rt = sim
        .store()
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    sim.store()
        .list(&rt, &Filter::default(), None, None)
        .unwrap()
        .items
        .iter()
        .map(|r| {
            let s = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
            (
                s("/status/phase").as_str().unwrap_or_default().to_string(),
                s("/status/currentStepIndex").as_i64(),
                s("/status/stableRevision") == s("/status/currentRevision"),
            )
        })
        .collect()
}

fn all_settled(sim: &Sim, image: &str) -> bool {
    let rt = sim
        .store()
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    let items = sim
        .store()
        .list(&rt, &Filter::default(), None, None)
        .unwrap()
        .items;
    items.len() == ROLLOUTS
        && items.iter().all(|r| {
            r.pointer("/status/phase") == Some(&json!("Healthy"))
                && r.pointer("/status/stableRevision").is_some()
                && r.pointer("/status/stableRevision") == r.pointer("/status/currentRevision")
                && r.pointer("/spec/template/spec/containers/0/image") == Some(&json!(image))
                && r.pointer("/status/observedGeneration") == r.pointer("/metadata/generation")
        })
}

#[tokio::test(start_paused = true)]
async fn no_decision_is_announced_twice_when_the_operator_is_killed_at_every_step() {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus().set_script(
        MetricScript::parse("metrics:\n  - match: errors\n    value: 0.001\n").unwrap(),
    );
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_secs(2),
            job_duration: Duration::from_secs(5),
        },
        stop.clone(),
    );
    let store = sim.store();
    let ns_rt = store.resolve("", "v1", "namespaces").unwrap();
    let rollouts = store
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    for t in 0..ROLLOUTS.div_ceil(PER_NAMESPACE) {
        store
            .create(
                &ns_rt,
                "",
                json!({"metadata": {"name": format!("team-{t}")}}),
                &Default::default(),
            )
            .unwrap();
    }
    for i in 0..ROLLOUTS {
        store
            .create(
                &rollouts,
                &namespace(i),
                manifest(i, "app:1"),
                &Default::default(),
            )
            .unwrap();
    }
    let mut operator = start_operator(&sim, &clock);
    let mut waited = 0;
    while !all_settled(&sim, "app:1") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        waited += 1;
        assert!(
            waited < 600,
            "the first revision never settled: {:?}",
            states(&sim)[..3].to_vec()
        );
    }
    for i in 0..ROLLOUTS {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
        store
            .patch(
                &rollouts,
                &namespace(i),
                &format!("app-{i}"),
                cutover::sim::store::PatchKind::Merge,
                &patch,
                cutover::sim::store::Subresource::Main,
                &Default::default(),
            )
            .unwrap();
    }
    // Kill whenever any Rollout crossed a step boundary since the last look.
    let mut last = states(&sim);
    let mut kills = 0;
    let mut waited = 0;
    while !all_settled(&sim, "app:2") {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = states(&sim);
        if now != last {
            kill(std::mem::take(&mut operator));
            kills += 1;
            operator = start_operator(&sim, &clock);
            last = now;
        }
        waited += 1;
        assert!(
            waited < 2400,
            "the release never settled after {kills} kills"
        );
    }
    kill(operator);
    assert!(kills >= 5, "killed at the step boundaries: {kills}");

    let events_rt = store.resolve("events.k8s.io", "v1", "events").unwrap();
    let events = store
        .list(&events_rt, &Filter::default(), None, None)
        .unwrap()
        .items;
    let mut groups: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    for e in &events {
        let s = |p: &str| {
            e.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        *groups
            .entry((
                s("/regarding/namespace"),
                s("/regarding/name"),
                s("/reason"),
                s("/note"),
            ))
            .or_default() += 1;
    }
    let repeated: Vec<_> = groups.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} of {} (object, reason, message) groups repeated after {kills} kills: {:?}",
        repeated.len(),
        groups.len(),
        &repeated[..repeated.len().min(5)]
    );
    let started = groups
        .keys()
        .filter(|(_, _, reason, _)| reason == "Started")
        .count();
    // A kill between the status write and the Event loses that Event, never repeats it.
    assert!(
        started <= 2 * ROLLOUTS,
        "{started} Started Events for {ROLLOUTS} Rollouts released twice"
    );
    assert!(
        started >= 2 * ROLLOUTS - kills,
        "{started} Started Events for {ROLLOUTS} Rollouts: more lost than there were kills ({kills})"
    );
}
