//! `bench scale --kubeconfig FILE --rollouts N`: the scale benchmark on a real control plane
//! (the test bed of `e2e/testbed`, or any cluster with cutover's CRDs). The operator runs as
//! a child process with its own kubeconfig, watching the benchmark's namespaces; its CPU
//! and peak RSS come from /proc, its requests from the apiserver's audit log (the test bed
//! logs the operator's ServiceAccount at Metadata level), and the control plane's CPU from
//! the pids `e2e/cluster/up` recorded.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::{Value, json};

/// What `bench scale` on a real cluster needs.
pub struct Options {
    /// Kubeconfig the benchmark itself uses (an admin).
    pub kubeconfig: PathBuf,
    /// Kubeconfig the operator runs with (default: the test bed's `operator.kubeconfig`
    /// beside `kubeconfig`, else `kubeconfig`).
    pub operator_kubeconfig: Option<PathBuf>,
    /// Rollouts to take through a canary.
    pub rollouts: usize,
}

type BoxError = Box<dyn std::error::Error>;

async fn client(path: &Path) -> Result<Client, BoxError> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(Client::try_from(config)?)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The control plane's processes, from the pids file `e2e/cluster/up` wrote.
fn control_plane(dir: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

/// Requests and writes the operator made so far, as the apiserver's audit log has them.
fn audited(dir: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(dir.join("logs/audit.log")).ok()?;
    let (mut requests, mut writes) = (0, 0);
    for line in text.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["stage"] != "ResponseComplete"
            || event["user"]["username"] != "system:serviceaccount:cutover-system:cutover"
        {
            continue;
        }
        requests += 1;
        if matches!(
            event["verb"].as_str(),
            Some("create" | "update" | "patch" | "delete" | "deletecollection")
        ) {
            writes += 1;
        }
    }
    Some((requests, writes))
}

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rollout(i: usize, image: &str) -> Value {
    json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": format!("app-{i}")},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
            "template": {"metadata": {"labels": {"app": format!("app-{i}")}},
                "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 50}, {"pause": {"duration": "10s"}}, {"setWeight": 100}]}}}})
}

/// Names of the Rollouts of `namespaces` that are Healthy on a revision other than `old`.
async fn settled(
    client: &Client,
    namespaces: &[String],
    old: Option<&str>,
) -> Result<Vec<String>, BoxError> {
    let mut done = Vec::new();
    for ns in namespaces {
        let api: Api<cutover::api::Rollout> = Api::namespaced(client.clone(), ns);
        for r in api.list(&ListParams::default()).await?.items {
            let Some(s) = &r.status else { continue };
            if s.phase == cutover::api::RolloutPhase::Healthy
                && s.stable_revision.is_some()
                && s.stable_revision == s.current_revision
                && s.stable_revision.as_deref() != old
                && s.observed_generation == r.metadata.generation
            {
                done.push(format!(
                    "{ns}/{}",
                    r.metadata.name.clone().unwrap_or_default()
                ));
            }
        }
    }
    Ok(done)
}

/// Runs the benchmark and prints its figures.
pub async fn bench(options: Options) -> Result<(), BoxError> {
    let n = options.rollouts;
    let dir = options
        .kubeconfig
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let operator_kubeconfig = options.operator_kubeconfig.clone().unwrap_or_else(|| {
        let beside = dir.join("operator.kubeconfig");
        if beside.exists() {
            beside
        } else {
            options.kubeconfig.clone()
        }
    });
    let client = client(&options.kubeconfig).await?;
    let run = std::process::id();
    let namespaces: Vec<String> = (0..n.div_ceil(100))
        .map(|t| format!("bench-{run}-{t}"))
        .collect();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in &namespaces {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        ns_api.create(&PostParams::default(), &namespace).await?;
    }
    let ns_of = |i: usize| namespaces[i / 100].clone();
    let cutover = std::env::current_exe()?
        .parent()
        .ok_or("no directory of the bench binary")?
        .join("cutover");
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("bench-operator-{run}.log")))?;
    let operator = Operator(
        Command::new(&cutover)
            .args([
                "run",
                "--log-format",
                "json",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .arg("--namespace")
            .arg(namespaces.join(","))
            .arg("--kubeconfig")
            .arg(&operator_kubeconfig)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", cutover.display()))?,
    );
    let pid = operator.0.id();
    let began = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api: Api<cutover::api::Rollout> = Api::namespaced(client.clone(), &ns_of(i));
            async move {
                let r: cutover::api::Rollout = serde_json::from_value(rollout(i, "app:1"))?;
                api.create(&PostParams::default(), &r).await?;
                Ok::<(), BoxError>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    while settled(&client, &namespaces, None).await?.len() < n {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let first_wall = began.elapsed();
    let old = {
        let api: Api<cutover::api::Rollout> = Api::namespaced(client.clone(), &ns_of(0));
        api.get("app-0")
            .await?
            .status
            .and_then(|s| s.stable_revision)
    };
    // Baselines, then the canaries.
    let cpu0 = cpu_of(pid);
    let plane0: BTreeMap<String, f64> = control_plane(&dir)
        .into_iter()
        .map(|(name, p)| (name, cpu_of(p)))
        .collect();
    let audit0 = audited(&dir);
    let started = Instant::now();
    let mut changed_at = BTreeMap::new();
    for i in 0..n {
        let api: Api<cutover::api::Rollout> = Api::namespaced(client.clone(), &ns_of(i));
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}});
        api.patch(
            &format!("app-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
        changed_at.insert(format!("{}/app-{i}", ns_of(i)), Instant::now());
    }
    let mut healthy_after: BTreeMap<String, Duration> = BTreeMap::new();
    while healthy_after.len() < n {
        for name in settled(&client, &namespaces, old.as_deref()).await? {
            if let Some(at) = changed_at.get(&name) {
                healthy_after.entry(name).or_insert_with(|| at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let canary_wall = started.elapsed();
    let cpu = cpu_of(pid) - cpu0;
    let peak = peak_rss_mib_of(pid);
    let plane: Vec<(String, f64)> = control_plane(&dir)
        .into_iter()
        .map(|(name, p)| {
            let before = plane0.get(&name).copied().unwrap_or(0.0);
            (name, cpu_of(p) - before)
        })
        .collect();
    let audit = match (audit0, audited(&dir)) {
        (Some((r0, w0)), Some((r, w))) => Some((r - r0, w - w0)),
        _ => None,
    };
    let mut lags: Vec<Duration> = healthy_after.into_values().collect();
    lags.sort();
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize];
    drop(operator);
    for ns in &namespaces {
        let _ = ns_api.delete(ns, &DeleteParams::default()).await;
    }
    println!(
        "scale on a real control plane: {n} Rollouts, 3-step canary (2 replicas each, 10 s pause)"
    );
    println!("  first rollout of all, wall          {first_wall:>10.2?}");
    println!("  the canaries, wall                  {canary_wall:>10.2?}");
    println!(
        "  image change -> Healthy             p50 {:.1?}  p99 {:.1?}  (polled every 0.5 s)",
        pct(0.5),
        pct(0.99)
    );
    println!("  operator CPU seconds (canaries)     {cpu:>10.2}");
    println!("  operator peak RSS                   {peak:>10.1} MiB");
    match audit {
        Some((requests, writes)) => {
            println!(
                "  operator requests per rollout       {:>10.1}   (apiserver audit log)",
                requests as f64 / n as f64
            );
            println!(
                "  operator writes per rollout         {:>10.1}",
                writes as f64 / n as f64
            );
        }
        None => println!("  operator requests: no audit log beside the kubeconfig"),
    }
    for (name, seconds) in plane {
        println!("  {name:<34} {seconds:>10.2} CPU s (canaries)");
    }
    Ok(())
}
