//! Benchmarks: `cargo run --release --bin bench -- sim [--requests N]` and
//! `cargo run --release --bin bench -- scale --rollouts N`.
//!
//! `sim`: the sim's HTTP server with one kube client on loopback — GETs per second,
//! server-side-apply PATCHes per second, and watch-event delivery latency after a write.
//! `scale`: N Rollouts through a 4-step canary with analysis on the in-process sim with the
//! virtual clock — wall time, CPU, peak RSS, requests and writes per rollout, lag; with
//! `CUTOVER_BENCH_HEAP_BY_SIDE=1`, the operator's heap and CPU apart from the sim's.
//! `scale --kubeconfig FILE --rollouts N`: the same on a real control plane (see `real`).
//! `burst --rollouts N`: how long one person's change waits behind a burst of N (see
//! `burst`). `hang`: whether one Rollout's hanging Prometheus delays 50 others (see `hang`).
//! `takeover [--runs N]`: how long a standby takes to lead after the leader is killed (see
//! `takeover`). `abort-lag [--runs N]`: how soon a spike in a real Prometheus aborts a
//! canary (see `abort_lag`).

mod abort_lag;
mod burst;
mod hang;
mod heap;
#[path = "../../../tests/support/operator.rs"]
mod operator;
#[path = "../../../tests/support/prometheus.rs"]
mod prometheus;
mod real;
mod takeover;

use std::time::{Duration, Instant};

use cutover::{controller::Clock, sim::Sim};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: heap::Tagging = heap::Tagging;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn client_for(
    addr: std::net::SocketAddr,
) -> Result<kube::Client, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("cutover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kubeconfig");
    cutover::sim::write_kubeconfig(&path, addr)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn bench_sim(requests: usize) -> Result<(), Box<dyn std::error::Error>> {
    let sim = Sim::new(Clock::System);
    let shutdown = CancellationToken::new();
    let (addr, _server) = sim.serve("127.0.0.1:0".parse()?, shutdown.clone()).await?;
    let client = client_for(addr).await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "bench"}, "data": {"n": "0"}}))?;
    api.create(&PostParams::default(), &cm).await?;

    // Warm up the connection pool.
    for _ in 0..100 {
        api.get("bench").await?;
    }
    let started = Instant::now();
    for _ in 0..requests {
        api.get("bench").await?;
    }
    let get_rate = requests as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for i in 0..requests {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("ssa-{}", i % 200)},
            "data": {"n": i.to_string()}});
        api.patch(
            &format!("ssa-{}", i % 200),
            &PatchParams::apply("bench"),
            &Patch::Apply(&applied),
        )
        .await?;
    }
    let ssa_rate = requests as f64 / started.elapsed().as_secs_f64();

    // Watch latency: time from starting a write to the watcher seeing its event.
    // The list's resourceVersion is current; the object's own may be older than the history.
    let listed = api.list(&Default::default()).await?;
    let rv = listed.metadata.resource_version.clone().unwrap_or_default();
    let mut stream = api
        .watch(
            &WatchParams::default()
                .fields("metadata.name=bench")
                .timeout(290),
            &rv,
        )
        .await?
        .boxed();
    let writes = requests.min(2000);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let watcher = tokio::spawn(async move {
        let mut latencies = Vec::new();
        while latencies.len() < writes {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Modified(_))) => {
                    if let Some(sent) = rx.recv().await {
                        latencies.push(sent.elapsed());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    eprintln!("watch ended after {} events", latencies.len());
                    break;
                }
                Err(e) => {
                    eprintln!("watch failed after {} events: {e}", latencies.len());
                    break;
                }
            }
        }
        latencies
    });
    let writer_api = api.clone();
    for i in 0..writes {
        let patch = json!({"data": {"n": format!("w{i}")}});
        let sent = Instant::now();
        tx.send(sent)?;
        writer_api
            .patch("bench", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        // Let the event arrive before the next write, so each latency is one write's.
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let mut latencies = watcher.await?;
    latencies.sort();
    shutdown.cancel();
    println!("sim HTTP on loopback, one client, {requests} requests each:");
    println!("  GET                     {get_rate:>10.0} req/s   (goal >= 5000)");
    println!("  server-side apply PATCH {ssa_rate:>10.0} req/s   (goal >= 1000)");
    println!(
        "  watch event after write p50 {:?}  p99 {:?}  max {:?}  over {} writes (goal p99 <= 5ms)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        latencies.len()
    );
    Ok(())
}

/// Counts the requests and writes an operator makes.
#[derive(Clone)]
struct Counting {
    inner: cutover::sim::SimService,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl tower::Service<http::Request<kube::client::Body>> for Counting {
    type Response =
        <cutover::sim::SimService as tower::Service<http::Request<kube::client::Body>>>::Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        use std::sync::atomic::Ordering;
        self.requests.fetch_add(1, Ordering::Relaxed);
        if req.method() != http::Method::GET {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        use http_body_util::BodyExt;
        let call = heap::Sim(Box::pin(self.inner.call(req)));
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| heap::Sim(Box::pin(body)).boxed_unsync()))
        })
    }
}

/// CPU seconds used by this process (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// A memory figure of this process from /proc (`VmHWM` peak, `VmRSS` now), in MiB.
fn memory_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident memory of this process in MiB.
fn peak_rss_mib() -> f64 {
    memory_mib("VmHWM")
}

/// Resident memory of this process now, in MiB.
fn rss_mib() -> f64 {
    memory_mib("VmRSS")
}

/// N Rollouts through a 4-step canary with analysis on the in-process sim, virtual clock.
async fn bench_scale(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::{Arc, atomic::Ordering};
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000)?);
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim)?;
    sim.prometheus()
        .set_script(cutover::sim::prometheus::MetricScript::parse(
            "metrics:\n  - match: errors\n    value: 0.001\n",
        )?);
    let stop = CancellationToken::new();
    tokio::spawn(heap::Sim(Box::pin(cutover::sim::workload::run(
        sim.store().clone(),
        Default::default(),
        stop.clone(),
    ))));
    let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let client = kube::Client::new(
        Counting {
            inner: sim.service(),
            requests: requests.clone(),
            writes: writes.clone(),
        },
        "default",
    );
    let config = cutover::controller::Config {
        prometheus_url: Some("http://prometheus.sim".into()),
        ..Default::default()
    };
    let ctx = Arc::new(
        cutover::controller::Context::new(
            client,
            config,
            clock.clone(),
            Arc::new(cutover::controller::Metrics::new()),
        )
        .with_prometheus(sim.prometheus_transport()),
    );
    let rollouts_rt = sim
        .store()
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .ok_or("no rollouts")?;
    // 100 Rollouts per namespace, as teams spread them.
    let ns_of = |i: usize| format!("team-{}", i / 100);
    let ns_rt = sim
        .store()
        .resolve("", "v1", "namespaces")
        .ok_or("no namespaces")?;
    for t in 0..n.div_ceil(100) {
        sim.store().create(
            &ns_rt,
            "",
            json!({"metadata": {"name": format!("team-{t}")}}),
            &Default::default(),
        )?;
    }
    let manifest = |i: usize, image: &str| {
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": format!("app-{i}"), "namespace": ns_of(i)},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                    "spec": {"containers": [{"name": "app", "image": image}]}},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 50},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"metrics": [{"name": "errors", "interval": "30s", "count": 2,
                        "successCondition": "result < 0.01", "prometheus": {"query": "errors"}}]}},
                    {"setWeight": 100}]}}}})
    };
    for i in 0..n {
        sim.store().create(
            &rollouts_rt,
            &ns_of(i),
            manifest(i, "app:1"),
            &Default::default(),
        )?;
    }
    let rss_created = rss_mib();
    let operator_created = heap::live(heap::OPERATOR);
    let wall = Instant::now();
    let cpu = cpu_seconds();
    let sim_cpu = heap::sim_cpu_seconds();
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    // Settled: every Rollout Healthy on a stable revision other than `old`.
    let settled = |old: Option<String>| {
        let store = sim.store().clone();
        let rt = rollouts_rt.clone();
        // A namespace at a time, stopping at the first unsettled one: the check itself must
        // not hold every Rollout in memory at once.
        move || {
            (0..n.div_ceil(100)).all(|t| {
                let filter = cutover::sim::store::Filter {
                    namespace: Some(format!("team-{t}")),
                    ..Default::default()
                };
                store
                    .list(&rt, &filter, None, None)
                    .map(|p| {
                        p.items.len() == (n - t * 100).min(100)
                            && p.items.iter().all(|r| {
                                let stable =
                                    r.pointer("/status/stableRevision").and_then(|v| v.as_str());
                                r.pointer("/status/phase").and_then(|v| v.as_str())
                                    == Some("Healthy")
                                    && stable.is_some()
                                    && stable
                                        == r.pointer("/status/currentRevision")
                                            .and_then(|v| v.as_str())
                                    && stable != old.as_deref()
                            })
                    })
                    .unwrap_or(false)
            })
        }
    };
    let first = settled(None);
    while !first() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_first = rss_mib();
    let operator_first = heap::live(heap::OPERATOR);
    let (req0, wr0) = (
        requests.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
    );
    let started_canary = Instant::now();
    let virtual_start = clock.now();
    for i in 0..n {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
        sim.store().patch(
            &rollouts_rt,
            &ns_of(i),
            &format!("app-{i}"),
            cutover::sim::store::PatchKind::Merge,
            &patch,
            cutover::sim::store::Subresource::Main,
            &Default::default(),
        )?;
    }
    // Every Rollout starts from the same template, so one names the old revision for all.
    let old = sim
        .store()
        .get(&rollouts_rt, &ns_of(0), "app-0")?
        .pointer("/status/stableRevision")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let second = settled(old);
    while !second() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rss_end = rss_mib();
    let operator_end = heap::live(heap::OPERATOR);
    let sim_end = heap::live(heap::SIM);
    let virtual_took = clock.now().duration_since(virtual_start);
    let canary_wall = started_canary.elapsed();
    let (req, wr) = (
        requests.load(Ordering::Relaxed) - req0,
        writes.load(Ordering::Relaxed) - wr0,
    );
    // Decision lag: the timed pause (30 s) falls due at the step's start plus 30 s; the
    // decision is the analysis step's start, recorded in its run.
    // A namespace at a time, like the settled check.
    let mut lags: Vec<f64> = Vec::with_capacity(n);
    for t in 0..n.div_ceil(100) {
        let filter = cutover::sim::store::Filter {
            namespace: Some(format!("team-{t}")),
            ..Default::default()
        };
        let page = sim.store().list(&rollouts_rt, &filter, None, None)?;
        lags.extend(page.items.iter().filter_map(|r| {
            let run = r
                .pointer("/status/analysis")?
                .as_array()?
                .iter()
                .find(|a| a["name"] == "step-2")?;
            let analysis_started: jiff::Timestamp = run["startedAt"].as_str()?.parse().ok()?;
            let first_measurement: jiff::Timestamp = run
                .pointer("/metrics/0/measurements/0/takenAt")?
                .as_str()?
                .parse()
                .ok()?;
            // The first measurement is due when the run starts.
            Some(
                first_measurement
                    .duration_since(analysis_started)
                    .as_secs_f64(),
            )
        }));
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lags.get(((lags.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let footprint = sim.store().footprint();
    // Which Events the operator published, by reason, a namespace at a time.
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    // A decision announced twice shows as one (object, reason, message) seen more than once.
    let mut groups: std::collections::HashMap<(String, String, String), usize> = Default::default();
    if let Some(events_rt) = sim.store().resolve("events.k8s.io", "v1", "events") {
        for t in 0..n.div_ceil(100) {
            let filter = cutover::sim::store::Filter {
                namespace: Some(format!("team-{t}")),
                ..Default::default()
            };
            for e in sim.store().list(&events_rt, &filter, None, None)?.items {
                let reason = e["reason"].as_str().unwrap_or_default().to_string();
                let text = |p: &str| e.pointer(p).and_then(|v| v.as_str()).unwrap_or_default();
                *groups
                    .entry((
                        format!(
                            "{}/{}",
                            text("/regarding/namespace"),
                            text("/regarding/name")
                        ),
                        reason.clone(),
                        text("/note").to_string(),
                    ))
                    .or_default() += 1;
                *reasons.entry(reason).or_default() += 1;
            }
        }
    }
    stop.cancel();
    println!(
        "scale: {n} Rollouts, 4-step canary with analysis (2 replicas each), in-process sim, virtual clock"
    );
    println!(
        "  wall time, whole run                {:>10.2?}",
        wall.elapsed()
    );
    println!(
        "  wall time, the canaries             {canary_wall:>10.2?}  ({:.0} virtual s)",
        virtual_took.as_secs_f64()
    );
    let cpu = cpu_seconds() - cpu;
    println!("  CPU seconds                         {cpu:>10.2}");
    if heap::enabled() {
        let sim_cpu = heap::sim_cpu_seconds() - sim_cpu;
        println!(
            "  CPU seconds, operator / sim and bench {:.2} / {sim_cpu:.2}",
            cpu - sim_cpu
        );
    }
    println!(
        "  peak RSS                            {:>10.1} MiB   (goal <= 256 at 5,000)",
        peak_rss_mib()
    );
    println!(
        "  API requests per rollout (canary)   {:>10.1}",
        req as f64 / n as f64
    );
    println!(
        "  API writes per rollout (canary)     {:>10.1}   (goal <= 30)",
        wr as f64 / n as f64
    );
    println!(
        "  measurement lag after falling due   p50 {:.3} s  p99 {:.3} s (virtual; goal p99 <= 1 s) over {}",
        pct(0.5),
        pct(0.99),
        lags.len()
    );
    println!(
        "  RSS after creating / first rollout / canaries {rss_created:.1} / {rss_first:.1} / {rss_end:.1} MiB"
    );
    if heap::enabled() {
        println!(
            "  operator heap then                  {:.1} / {:.1} / {:.1} MiB",
            mib(operator_created),
            mib(operator_first),
            mib(operator_end)
        );
        println!(
            "  peak heap: operator {:.1} MiB, sim and bench {:.1} MiB, together {:.1} MiB",
            mib(heap::peak(heap::OPERATOR)),
            mib(heap::peak(heap::SIM)),
            mib(heap::peak_total())
        );
        println!(
            "  sim and bench heap at the end         {:.1} MiB",
            mib(sim_end)
        );
        println!("  (RSS and CPU include 16 bytes of accounting per heap block)");
    } else {
        println!("  heap by side: run with CUTOVER_BENCH_HEAP_BY_SIDE=1");
    }
    println!("  Events per rollout, by reason:");
    for (reason, count) in &reasons {
        println!("    {reason:<40} {:>8.2}", *count as f64 / n as f64);
    }
    println!(
        "  repeated (object, reason, message) groups {:>4} of {}   (goal 0)",
        groups.values().filter(|n| **n > 1).count(),
        groups.len()
    );
    println!("  sim store at the end:");
    let (mut total, mut total_stored) = (0, 0);
    for (kind, count, bytes, stored) in &footprint.kinds {
        total += bytes;
        total_stored += stored;
        println!(
            "    {kind:<40} {count:>8} objects {:>8.1} MiB JSON {:>8.1} MiB stored",
            *bytes as f64 / 1048576.0,
            *stored as f64 / 1048576.0
        );
    }
    println!(
        "    {:<40} {:>8} events  {:>8.1} MiB stored (past versions only)",
        "watch history",
        footprint.history_events,
        footprint.history_only_bytes as f64 / 1048576.0
    );
    println!(
        "    objects in all {:.1} MiB JSON, {:.1} MiB stored",
        total as f64 / 1048576.0,
        total_stored as f64 / 1048576.0
    );
    Ok(())
}

/// A sim on the real clock with CRDs and quick workloads (pods ready and Jobs done after
/// 200 ms), for the benchmarks that measure wall time; the workloads stop with the guard.
fn live_sim()
-> Result<(Sim, CancellationToken, tokio_util::sync::DropGuard), Box<dyn std::error::Error>> {
    let sim = Sim::new(Clock::System);
    cutover::cli::dev::install_crds(&sim)?;
    let stop = CancellationToken::new();
    sim.start_workloads(
        cutover::sim::workload::WorkloadConfig {
            ready_after: Duration::from_millis(200),
            job_duration: Duration::from_millis(200),
        },
        stop.clone(),
    );
    let guard = stop.clone().drop_guard();
    Ok((sim, stop, guard))
}

/// Creates the namespace `name` in the sim's store.
fn create_namespace(sim: &Sim, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let namespaces = sim
        .store()
        .resolve("", "v1", "namespaces")
        .ok_or("no namespaces")?;
    sim.store().create(
        &namespaces,
        "",
        json!({"metadata": {"name": name}}),
        &Default::default(),
    )?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000usize);
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("sim") | None => runtime.block_on(bench_sim(requests)),
        Some("scale") => {
            let n = args
                .iter()
                .position(|a| a == "--rollouts")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(100usize);
            let flag = |name: &str| {
                args.iter()
                    .position(|a| a == name)
                    .and_then(|i| args.get(i + 1))
                    .map(std::path::PathBuf::from)
            };
            if let Some(kubeconfig) = flag("--kubeconfig") {
                let options = real::Options {
                    kubeconfig,
                    operator_kubeconfig: flag("--operator-kubeconfig"),
                    rollouts: n,
                };
                runtime.block_on(real::bench(options))
            } else {
                // The virtual clock needs a single-threaded runtime with paused time.
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build()
                {
                    // The benchmark's own reads and writes of the store count with the sim; the
                    // controllers it spawns run as tasks of their own, on the operator's side.
                    Ok(rt) => rt.block_on(heap::Sim(Box::pin(bench_scale(n)))),
                    Err(e) => Err(e.into()),
                }
            }
        }
        Some("hang") => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(hang::bench()),
            Err(e) => Err(e.into()),
        },
        Some("burst") => {
            let n = args
                .iter()
                .position(|a| a == "--rollouts")
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1000usize);
            // Two workers, as the operator's pod gets.
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(burst::bench(n)),
                Err(e) => Err(e.into()),
            }
        }
        Some("takeover") => runtime.block_on(takeover::bench(runs)),
        Some("abort-lag") => runtime
            .block_on(abort_lag::bench(runs))
            .map_err(|e| -> Box<dyn std::error::Error> { e }),
        Some(other) => {
            eprintln!(
                "unknown benchmark {other:?}; available: sim, scale, burst, hang, takeover, abort-lag"
            );
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
