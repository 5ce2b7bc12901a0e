//! `bench burst --rollouts N`: how long one person's change waits while N other Rollouts
//! are in a burst, on the in-process sim with the real clock and a two-thread runtime.
//!
//! N Rollouts (100 per namespace) and one more in a namespace of its own settle on a first
//! revision. Then every one of the N gets a new image, and right after, the lone Rollout
//! too. The figure is the wall time from the lone change until its status records the new
//! generation (the operator acted on it), and how many of the burst were acted on first.
//! A second round does the same with the lone Rollout inside the first busy namespace.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use cutover::{
    controller::{Clock, Config, Context, Metrics},
    sim::store::{Filter, PatchKind, Subresource},
};
use serde_json::{Value, json};

fn manifest(name: &str, namespace: &str, image: &str) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50},
                {"pause": {"duration": "10s"}},
                {"setWeight": 100}]}}}})
}

fn observed(r: &Value) -> bool {
    r.pointer("/status/observedGeneration") == r.pointer("/metadata/generation")
}

fn settled(r: &Value) -> bool {
    observed(r)
        && r.pointer("/status/phase") == Some(&json!("Healthy"))
        && r.pointer("/status/stableRevision").is_some()
        && r.pointer("/status/stableRevision") == r.pointer("/status/currentRevision")
}

/// Runs the benchmark.
pub async fn bench(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (sim, stop, _stop) = super::live_sim()?;
    let store = sim.store().clone();
    let rollouts = store
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .ok_or("no rollouts")?;
    let ns_of = |i: usize| format!("team-{}", i / 100);
    for t in 0..n.div_ceil(100) {
        super::create_namespace(&sim, &format!("team-{t}"))?;
    }
    super::create_namespace(&sim, "lone")?;
    for i in 0..n {
        store.create(
            &rollouts,
            &ns_of(i),
            manifest(&format!("app-{i}"), &ns_of(i), "app:1"),
            &Default::default(),
        )?;
    }
    store.create(
        &rollouts,
        "lone",
        manifest("edited", "lone", "app:1"),
        &Default::default(),
    )?;
    // The lone Rollout's twin inside the first busy namespace, for the second round.
    store.create(
        &rollouts,
        "team-0",
        manifest("edited", "team-0", "app:1"),
        &Default::default(),
    )?;
    let ctx = Arc::new(Context::new(
        sim.client(),
        Config::default(),
        Clock::System,
        Arc::new(Metrics::new()),
    ));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    let all = || -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        Ok(store.list(&rollouts, &Filter::default(), None, None)?.items)
    };
    let started = Instant::now();
    while !all()?.iter().all(settled) {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the first revision did not settle in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "burst: {n} Rollouts (100 per namespace) and one edited Rollout, sim, real clock, concurrency {}",
        Config::default().concurrency
    );
    println!("  first revision settled in {:.1?}", started.elapsed());
    for (round, (lone_ns, image)) in [("lone", "app:2"), ("team-0", "app:3")]
        .into_iter()
        .enumerate()
    {
        let image_patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        let burst_started = Instant::now();
        for i in 0..n {
            store.patch(
                &rollouts,
                &ns_of(i),
                &format!("app-{i}"),
                PatchKind::Merge,
                &image_patch,
                Subresource::Main,
                &Default::default(),
            )?;
        }
        let changed = Instant::now();
        store.patch(
            &rollouts,
            lone_ns,
            "edited",
            PatchKind::Merge,
            &image_patch,
            Subresource::Main,
            &Default::default(),
        )?;
        let (waited, before) = loop {
            let edited = store.get(&rollouts, lone_ns, "edited")?;
            if observed(&edited) {
                let waited = changed.elapsed();
                let before = all()?
                    .iter()
                    .filter(|r| {
                        r.pointer("/metadata/namespace") != Some(&json!(lone_ns))
                            || r.pointer("/metadata/name") != Some(&json!("edited"))
                    })
                    .filter(|r| {
                        observed(r)
                            && r.pointer("/spec/template/spec/containers/0/image")
                                == Some(&json!(image))
                    })
                    .count();
                break (waited, before);
            }
            if changed.elapsed() > Duration::from_secs(600) {
                return Err("the edited Rollout was not acted on in 10 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let where_ = if round == 0 {
            "in a namespace of its own"
        } else {
            "inside the first busy namespace"
        };
        println!(
            "  change {where_}: acted on {waited:>8.2?} after it was made ({before} of the {n} burst acted on first)"
        );
        while !all()?.iter().all(settled) {
            if burst_started.elapsed() > Duration::from_secs(900) {
                return Err("the burst did not settle in 15 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "    the whole burst settled {:.1?} after it began",
            burst_started.elapsed()
        );
    }
    Ok(())
}
