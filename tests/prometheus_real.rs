//! Analysis against a real Prometheus (Debian's `prometheus`, installed by `scripts/test`)
//! scraping a test exporter every second whose counters the test drives. The operator runs
//! on the sim in real time and queries Prometheus over HTTP like it would in a cluster.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use cutover::{
    api::{AnalysisVerdict, MeasurementOutcome, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Requests served and failed, in thousandths of the request rate.
struct Exporter {
    requests: AtomicU64,
    errors: AtomicU64,
    error_per_mille: AtomicU64,
}

async fn start_exporter() -> (Arc<Exporter>, SocketAddr) {
    let exporter = Arc::new(Exporter {
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        error_per_mille: AtomicU64::new(10),
    });
    let traffic = exporter.clone();
    tokio::spawn(async move {
        // 200 requests a second, a share of them failing.
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            traffic.requests.fetch_add(10, Ordering::SeqCst);
            let per_mille = traffic.error_per_mille.load(Ordering::SeqCst);
            traffic
                .errors
                .fetch_add(10 * per_mille / 1000, Ordering::SeqCst);
        }
    });
    let state = exporter.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = state.clone();
            async move {
                let total = s.requests.load(Ordering::SeqCst);
                let errors = s.errors.load(Ordering::SeqCst);
                format!(
                    "# TYPE http_requests_total counter\n\
                     http_requests_total{{code=\"200\"}} {}\n\
                     http_requests_total{{code=\"500\"}} {errors}\n",
                    total - errors.min(total)
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (exporter, addr)
}

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn prometheus_binary() -> PathBuf {
    ["prometheus", "/usr/bin/prometheus"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("prometheus is not installed: scripts/test installs Debian's prometheus package")
}

async fn start_prometheus(exporter: SocketAddr) -> Prometheus {
    let dir = std::env::temp_dir().join(format!(
        "cutover-prom-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )
    .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prometheus = Prometheus {
        child,
        addr,
        _dir: TempDir(dir),
    };
    // Ready, and with enough samples for a 5s rate.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(v) = query(&prometheus, "sum(rate(http_requests_total[5s]))").await
            && v > 0.0
        {
            return prometheus;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Prometheus did not become ready with samples");
}

/// The value of an instant query, straight from Prometheus.
async fn query(p: &Prometheus, q: &str) -> Option<f64> {
    let endpoint = cutover::analysis::prometheus::Endpoint::new(format!("http://{}", p.addr));
    let transport = cutover::analysis::prometheus::HttpTransport::new();
    match cutover::analysis::prometheus::instant(&transport, &endpoint, q, jiff::Timestamp::now())
        .await
    {
        Ok(cutover::analysis::condition::QueryResult::Number(v)) => Some(v),
        _ => None,
    }
}

const ERROR_RATE: &str =
    "sum(rate(http_requests_total{code=\"500\"}[5s])) / sum(rate(http_requests_total[5s]))";

struct Operator {
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

fn start_operator(prometheus: &Prometheus) -> Operator {
    let sim = Sim::new(Clock::System);
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_millis(200),
            job_duration: Duration::from_millis(200),
        },
        stop.clone(),
    );
    let client = sim.client();
    let config = Config {
        prometheus_url: Some(format!("http://{}", prometheus.addr)),
        ..Config::default()
    };
    let ctx = Context::new(
        client.clone(),
        config,
        Clock::System,
        Arc::new(Metrics::new()),
    );
    tokio::spawn(cutover::rollout::watch::run(Arc::new(ctx), stop.clone()));
    Operator {
        rollouts: Api::namespaced(client, "default"),
        _stop: stop.drop_guard(),
    }
}

fn rollout(image: &str, metric: serde_json::Value) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}]}}}
    }))
    .unwrap()
}

fn metric(query: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({"name": "error-rate", "interval": "2s", "count": 3,
        "successCondition": "result < 0.05", "prometheus": {"query": query}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

impl Operator {
    async fn roll(&self, metric: serde_json::Value) {
        self.rollouts
            .create(&PostParams::default(), &rollout("web:1", metric))
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
    let (_exporter, exporter_addr) = start_exporter().await;
    let prometheus = start_prometheus(exporter_addr).await;
    let operator = start_operator(&prometheus);
    operator.roll(metric(ERROR_RATE, json!({}))).await;
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
async fn an_error_spike_aborts_within_two_intervals() {
    let (exporter, exporter_addr) = start_exporter().await;
    let prometheus = start_prometheus(exporter_addr).await;
    let operator = start_operator(&prometheus);
    operator
        .roll(metric(ERROR_RATE, json!({"interval": "3s", "count": 1000})))
        .await;
    operator
        .until("analysis running", Duration::from_secs(30), |r| {
            run_verdict(r) == Some(AnalysisVerdict::Running)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    exporter.error_per_mille.store(300, Ordering::SeqCst);
    // The moment the failing value is visible in Prometheus.
    let deadline = Instant::now() + Duration::from_secs(30);
    let visible = loop {
        if query(&prometheus, ERROR_RATE)
            .await
            .is_some_and(|v| v >= 0.05)
        {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the spike never showed in Prometheus"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let r = operator
        .until("abort", Duration::from_secs(30), |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == RolloutPhase::Aborted)
        })
        .await;
    let lag = visible.elapsed();
    println!("abort lag after the failing sample was visible: {lag:?} (interval 3s)");
    assert!(
        lag <= Duration::from_secs(6),
        "aborted {lag:?} after the spike was visible: more than two intervals"
    );
    let s = r.status.unwrap();
    assert_ne!(s.stable_revision, s.current_revision);
    let run = s.analysis.iter().find(|a| a.name == "step-1").unwrap();
    assert_eq!(run.verdict, AnalysisVerdict::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_prometheus_gives_errors_then_a_pause_never_a_promotion() {
    let (_exporter, exporter_addr) = start_exporter().await;
    let mut prometheus = start_prometheus(exporter_addr).await;
    let operator = start_operator(&prometheus);
    operator
        .roll(metric(
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
    let (_exporter, exporter_addr) = start_exporter().await;
    let prometheus = start_prometheus(exporter_addr).await;
    let operator = start_operator(&prometheus);
    operator
        .roll(metric("sum(rate(not_exported_total[5s]))", json!({})))
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
