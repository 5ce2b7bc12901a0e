//! Benchmarks: `cargo run --release --bin bench -- sim [--requests N]`.
//!
//! `sim`: the sim's HTTP server with one kube client on loopback — GETs per second,
//! server-side-apply PATCHes per second, and watch-event delivery latency after a write.

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

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000usize);
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
        Some(other) => {
            eprintln!("unknown benchmark {other:?}; available: sim");
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
