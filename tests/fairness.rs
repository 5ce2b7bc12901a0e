//! Fair queueing: while a burst of Rollouts in busy namespaces waits for the operator, a
//! change to a Rollout in another namespace is acted on after a few of them, not after all.

use std::{sync::Arc, time::Duration};

use cutover::{
    controller::{Clock, Config, Context, Metrics},
    sim::{
        Sim,
        store::{Filter, PatchKind, Subresource},
        workload::WorkloadConfig,
    },
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BUSY_NAMESPACES: usize = 3;
const PER_NAMESPACE: usize = 40;
/// Reconciles at once: few, so that the burst has to queue.
const CONCURRENCY: usize = 2;

fn manifest(name: &str, image: &str) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}]}}}})
}

fn observed(r: &Value) -> bool {
    r.pointer("/status/observedGeneration") == r.pointer("/metadata/generation")
}

fn settled(r: &Value) -> bool {
    observed(r)
        && r.pointer("/status/phase") == Some(&json!("Healthy"))
        && r.pointer("/status/stableRevision") == r.pointer("/status/currentRevision")
}

#[tokio::test(start_paused = true)]
async fn a_change_in_a_quiet_namespace_does_not_wait_for_a_burst_in_busy_ones() {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_secs(1),
            job_duration: Duration::from_secs(1),
        },
        stop.clone(),
    );
    let store = sim.store();
    let namespaces = store.resolve("", "v1", "namespaces").unwrap();
    let rollouts = store
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    let busy: Vec<String> = (0..BUSY_NAMESPACES).map(|t| format!("busy-{t}")).collect();
    for ns in busy.iter().map(String::as_str).chain(["quiet"]) {
        store
            .create(
                &namespaces,
                "",
                json!({"metadata": {"name": ns}}),
                &Default::default(),
            )
            .unwrap();
    }
    for ns in &busy {
        for i in 0..PER_NAMESPACE {
            store
                .create(
                    &rollouts,
                    ns,
                    manifest(&format!("app-{i}"), "app:1"),
                    &Default::default(),
                )
                .unwrap();
        }
    }
    store
        .create(
            &rollouts,
            "quiet",
            manifest("edited", "app:1"),
            &Default::default(),
        )
        .unwrap();
    let config = Config {
        concurrency: CONCURRENCY as u16,
        ..Config::default()
    };
    let ctx = Arc::new(Context::new(
        sim.client(),
        config,
        clock.clone(),
        Arc::new(Metrics::new()),
    ));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    let all = || {
        store
            .list(&rollouts, &Filter::default(), None, None)
            .unwrap()
            .items
    };
    for _ in 0..600 {
        if all().iter().all(settled) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(all().iter().all(settled), "the first revision settled");

    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
    for ns in &busy {
        for i in 0..PER_NAMESPACE {
            store
                .patch(
                    &rollouts,
                    ns,
                    &format!("app-{i}"),
                    PatchKind::Merge,
                    &image,
                    Subresource::Main,
                    &Default::default(),
                )
                .unwrap();
        }
    }
    // The operator is into the burst, the rest of it queued, when the change comes.
    let acted_on = || {
        all()
            .iter()
            .filter(|r| r.pointer("/metadata/namespace") != Some(&json!("quiet")))
            .filter(|r| observed(r))
            .count()
    };
    for _ in 0..1_000_000 {
        if acted_on() >= 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    let before_change = acted_on();
    assert!(
        before_change < 10,
        "the burst is still queued: {before_change}"
    );
    store
        .patch(
            &rollouts,
            "quiet",
            "edited",
            PatchKind::Merge,
            &image,
            Subresource::Main,
            &Default::default(),
        )
        .unwrap();
    let burst = BUSY_NAMESPACES * PER_NAMESPACE;
    let mut first = None;
    for _ in 0..1_000_000 {
        if observed(&store.get(&rollouts, "quiet", "edited").unwrap()) {
            first = Some(acted_on() - before_change);
            break;
        }
        // Not a sleep: with the paused clock the runtime is never idle while the burst is
        // being worked off, so time would not move until it was all done.
        tokio::task::yield_now().await;
    }
    let first = first.expect("the quiet namespace's change was acted on");
    // Served in turn with the busy namespaces: at most the reconciles already running, those
    // let in while the change's watch event was on its way to the operator (the operator
    // reads the burst's own status events first; on a loaded machine that took one more
    // round of the running reconciles), and one per busy namespace go first — where a
    // first-come queue puts the queued part of the burst, about a hundred, ahead of it.
    let bound = 2 * CONCURRENCY + BUSY_NAMESPACES;
    assert!(
        first <= bound,
        "{first} of the {burst} burst were acted on between the quiet namespace's change and its turn (at most {bound})"
    );
}
