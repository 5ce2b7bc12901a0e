//! Rollout controller figures: API writes for a complete 4-step canary, writes for a
//! reconcile that changes nothing, and CPU time of one plan of a steady Rollout.
//!
//! `cargo bench --bench rollout`

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cutover::{
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    rollout::plan::{Observed, RevisionObserved, plan},
    sim::{Sim, workload::WorkloadConfig},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
}

fn counted_client(sim: &Sim, counts: Arc<Counts>) -> kube::Client {
    let svc = tower::ServiceBuilder::new()
        .map_request(move |req: http::Request<kube::client::Body>| {
            let write = !matches!(*req.method(), http::Method::GET);
            let counter = if write { &counts.writes } else { &counts.reads };
            counter.fetch_add(1, Ordering::Relaxed);
            if write && std::env::var_os("BENCH_TRACE").is_some() {
                eprintln!("write {} {}", req.method(), req.uri());
            }
            req
        })
        .service(sim.service());
    kube::Client::new(svc, "default")
}

fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}, {"pause": {"duration": "30s"}}]}}}
    }))
    .expect("a valid Rollout")
}

async fn wait_for(api: &Api<Rollout>, what: impl Fn(&Rollout) -> bool) {
    for _ in 0..100_000 {
        if let Ok(r) = api.get("web").await
            && what(&r)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("rollout did not get there");
}

async fn writes_per_canary() -> (u64, u64, u64) {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).expect("a valid time"));
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).expect("CRDs install");
    let stop = CancellationToken::new();
    sim.start_workloads(WorkloadConfig::default(), stop.clone());
    let counts = Arc::new(Counts::default());
    let ctx = Arc::new(Context::new(
        counted_client(&sim, counts.clone()),
        Config::default(),
        clock,
        Arc::new(Metrics::new()),
    ));
    tokio::spawn(cutover::rollout::watch::run(ctx, stop.clone()));
    let api: Api<Rollout> = Api::namespaced(sim.client(), "default");
    api.create(&PostParams::default(), &rollout())
        .await
        .expect("created");
    let healthy = |r: &Rollout| {
        r.status.as_ref().is_some_and(|s| {
            s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
        })
    };
    wait_for(&api, healthy).await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let before = counts.writes.load(Ordering::Relaxed);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    wait_for(&api, |r| {
        healthy(r)
            && r.spec.template.as_ref().is_some_and(|t| {
                t.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some("web:2"))
            })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let canary_writes = counts.writes.load(Ordering::Relaxed) - before;

    // A change that asks for nothing: an unrelated label. The reconcile it triggers must write nothing.
    let before = counts.writes.load(Ordering::Relaxed);
    let reads_before = counts.reads.load(Ordering::Relaxed);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"team": "shop"}}})),
    )
    .await
    .expect("labelled");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let noop_writes = counts.writes.load(Ordering::Relaxed) - before;
    let noop_reads = counts.reads.load(Ordering::Relaxed) - reads_before;
    stop.cancel();
    (canary_writes, noop_writes, noop_reads)
}

fn plan_cpu() -> Duration {
    let mut r = rollout();
    r.metadata.generation = Some(1);
    r.metadata.uid = Some("u".into());
    let status = json!({"phase": "Healthy", "stableRevision": "abc", "currentRevision": "abc", "canaryWeight": 0, "replicas": 10,
        "availableReplicas": 10, "readyReplicas": 10, "selector": "app=web", "observedGeneration": 1, "strategy": "Canary"});
    r.status = Some(serde_json::from_value(status).expect("status"));
    let revisions = vec![RevisionObserved {
        revision: "abc".into(),
        replicas: 10,
        available: 10,
        role: Some("stable".into()),
        created: None,
        failure: None,
    }];
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("a valid time");
    let observe = |r: &Rollout| {
        plan(&Observed {
            rollout: r,
            target_revision: "abc".into(),
            revisions: revisions.clone(),
            route_weight: None,
            route_pending: None,
            route_rules: Default::default(),
            service_revisions: Default::default(),
            referenced_replicas: None,
            measurements: Vec::new(),
            migrations: Vec::new(),
            selector: Some("app=web".into()),
            freeze: None,
            images: vec!["web:2".into()],
            required: Vec::new(),
            started_by: None,
            now,
        })
    };
    // Settle once so the status is what the plan writes.
    let settled = observe(&r);
    r.status = Some(settled.status);
    let observed = Observed {
        rollout: &r,
        target_revision: "abc".into(),
        revisions,
        route_weight: None,
        route_pending: None,
        route_rules: Default::default(),
        service_revisions: Default::default(),
        referenced_replicas: None,
        measurements: Vec::new(),
        migrations: Vec::new(),
        selector: Some("app=web".into()),
        freeze: None,
        images: vec!["web:2".into()],
        required: Vec::new(),
        started_by: None,
        now,
    };
    let n = 100_000;
    let started = Instant::now();
    let mut actions = 0;
    for _ in 0..n {
        actions += std::hint::black_box(plan(std::hint::black_box(&observed)))
            .actions
            .len();
    }
    assert_eq!(actions, 0, "a steady Rollout plans no writes");
    started.elapsed() / n
}

/// CPU of one measurement without the HTTP round trip: parse Prometheus's answer, evaluate
/// the CEL conditions, record it and take the verdict.
fn measurement_cpu() -> (Duration, Duration) {
    use cutover::analysis::{judge, measure, prometheus};
    let metric: cutover::api::Metric = serde_json::from_value(json!({"name": "error-rate",
        "successCondition": "result < 0.01", "failureCondition": "result >= 0.05",
        "prometheus": {"query": "x"}}))
    .expect("metric");
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1800000000,"0.0042"]}]}}"#;
    let t = jiff::Timestamp::from_second(1_800_000_000).expect("a valid time");
    let n = 20_000;
    let mut state = cutover::api::MetricStatus::default();
    let started = Instant::now();
    for _ in 0..n {
        let result =
            prometheus::parse_instant(200, std::hint::black_box(body)).map_err(|e| e.to_string());
        let outcome = measure::classify(&metric, result);
        measure::record(&mut state, measure::measurement(t, t, outcome));
        std::hint::black_box(measure::verdict(&metric, &state));
    }
    let per_measurement = started.elapsed() / n;
    let compare = cutover::api::CompareMetric::default();
    let canary: Vec<f64> = (0..20).map(|i| 0.2 + f64::from(i % 7) * 0.01).collect();
    let stable: Vec<f64> = (0..20).map(|i| 0.2 + f64::from(i % 5) * 0.01).collect();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(judge::judge(&compare, &canary, &stable));
    }
    (per_measurement, started.elapsed() / n)
}

/// CPU of the deployment-window gate: open with no windows, and closed under an office-hours
/// allow window and a weekend deny window in a time zone (with the search for the opening).
fn window_cpu() -> (Duration, Duration, Duration) {
    use cutover::window::gate;
    let windows: Vec<cutover::api::DeploymentWindow> = serde_json::from_value(json!([
        {"kind": "Allow", "schedule": "0 9 * * MON-FRI", "duration": "8h", "timeZone": "Europe/Berlin"},
        {"kind": "Deny", "schedule": "0 18 * * FRI", "duration": "62h", "timeZone": "Europe/Berlin"}
    ]))
    .expect("windows");
    // Saturday noon: closed by both, open on Monday at 09:00.
    let closed = jiff::Timestamp::from_second(1_800_000_000 + 28 * 3600).expect("a time");
    // Tuesday 10:00 Berlin: open.
    let open = jiff::Timestamp::from_second(1_800_000_000 + 4 * 86_400 + 1800).expect("a time");
    let time = |windows: &[cutover::api::DeploymentWindow], at| {
        let n = 20_000;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(gate(std::hint::black_box(windows), None, at));
        }
        started.elapsed() / n
    };
    assert!(!gate(&windows, None, closed).is_open());
    assert!(gate(&windows, None, open).is_open());
    (
        time(&[], closed),
        time(&windows, open),
        time(&windows, closed),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let (canary, noop, noop_reads) = runtime.block_on(writes_per_canary());
    println!(
        "rollout controller, 10 replicas, 4-step canary (setWeight 20, pause 30s, setWeight 60, pause 30s) on the sim:"
    );
    println!("  API writes for the whole canary   {canary:>6}   (goal <= 30)");
    println!("  API writes for a no-op reconcile  {noop:>6}   (must be 0; {noop_reads} reads)");
    println!(
        "  CPU per plan of a steady Rollout  {:>6.2?} (goal <= 50us)",
        plan_cpu()
    );
    let (measurement, judged) = measurement_cpu();
    println!("analysis, excluding the HTTP round trip:");
    println!(
        "  CPU per measurement (parse, 2 CEL conditions, record, verdict) {measurement:>8.2?}"
    );
    println!("  CPU per judge of 20 + 20 points (Mann-Whitney + Hodges-Lehmann) {judged:>8.2?}");
    let (none, open, closed) = window_cpu();
    println!("deployment windows (allow weekdays 9-17 + deny weekend, Europe/Berlin):");
    println!("  CPU per gate, no windows            {none:>8.2?}");
    println!("  CPU per gate, inside a window       {open:>8.2?}");
    println!("  CPU per gate, closed + next opening {closed:>8.2?}");
}
