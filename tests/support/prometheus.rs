//! A real Prometheus (Debian's `prometheus`, installed by `scripts/test`) scraping a test
//! exporter every second whose counters the caller drives, and the Rollout controller
//! querying it from a sim on the real clock; shared by the tests and the bench binary.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use cutover::{
    api::Rollout,
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use kube::Api;
use tokio_util::sync::{CancellationToken, DropGuard};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error rate of the exporter's requests over 5 s.
pub const ERROR_RATE: &str =
    "sum(rate(http_requests_total{code=\"500\"}[5s])) / sum(rate(http_requests_total[5s]))";

/// Requests served and failed; `error_per_mille` is the share that fails from now on.
pub struct Exporter {
    requests: AtomicU64,
    errors: AtomicU64,
    pub error_per_mille: AtomicU64,
}

/// Starts the exporter: 200 requests a second, 1 % failing until told otherwise.
pub async fn start_exporter() -> Result<(Arc<Exporter>, SocketAddr), BoxError> {
    let exporter = Arc::new(Exporter {
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        error_per_mille: AtomicU64::new(10),
    });
    let traffic = exporter.clone();
    tokio::spawn(async move {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((exporter, addr))
}

/// A running Prometheus (or VictoriaMetrics); killed and its data removed on drop.
pub struct Prometheus {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its data directory.
    pub dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn prometheus_binary() -> Result<PathBuf, BoxError> {
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
        .ok_or_else(|| {
            "prometheus is not installed: scripts/test installs Debian's prometheus package".into()
        })
}

/// The address in Prometheus' `msg="Listening on" address=HOST:PORT` log line.
fn listening_on(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=\"Listening on\"") {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("address="))?
        .parse()
        .ok()
}

/// Starts Prometheus scraping `exporter` every second, on a port it binds itself (read back
/// from its log), and returns once it has enough samples for a 5 s rate.
pub async fn start_prometheus(exporter: SocketAddr) -> Result<Prometheus, BoxError> {
    start_prometheus_until(exporter, "sum(rate(http_requests_total[5s])) > 0").await
}

/// Starts Prometheus scraping `target` every second and returns once `ready` (an instant
/// query) gives a number.
pub async fn start_prometheus_until(
    target: SocketAddr,
    ready: &str,
) -> Result<Prometheus, BoxError> {
    let scrape = format!("  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n");
    start_prometheus_scraping(&scrape, ready).await
}

/// Starts Prometheus with `scrape_configs` (YAML list items) every second and returns once
/// `ready` (an instant query) gives a number.
pub async fn start_prometheus_scraping(
    scrape_configs: &str,
    ready: &str,
) -> Result<Prometheus, BoxError> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cutover-prom-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n{scrape_configs}"
        ),
    )?;
    let mut child = Command::new(prometheus_binary()?)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    // Reads the log to its end so Prometheus never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = listening_on(&line) {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
        .await?
        .map_err(|_| "Prometheus never said where it listens");
    let addr = match addr {
        Ok(addr) => addr,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    };
    let prometheus = Prometheus { child, addr, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if prometheus.query(ready).await.is_some() {
            return Ok(prometheus);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("Prometheus did not become ready with samples".into())
}

impl Prometheus {
    /// The value of an instant query, straight from Prometheus.
    pub async fn query(&self, q: &str) -> Option<f64> {
        use cutover::analysis::prometheus::{Endpoint, HttpTransport, instant};
        let endpoint = Endpoint::new(format!("http://{}", self.addr));
        match instant(&HttpTransport::new(), &endpoint, q, jiff::Timestamp::now()).await {
            Ok(cutover::analysis::condition::QueryResult::Number(v)) => Some(v),
            _ => None,
        }
    }
}

impl Prometheus {
    /// Starts the Rollout controller on a sim with the real clock (pods ready and Jobs done
    /// after 200 ms), this Prometheus its default; it stops when the guard is dropped.
    pub fn operator(&self) -> Result<(Api<Rollout>, DropGuard), BoxError> {
        let sim = Sim::new(Clock::System);
        cutover::cli::dev::install_crds(&sim).map_err(|e| e.to_string())?;
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
            prometheus_url: Some(format!("http://{}", self.addr)),
            ..Config::default()
        };
        let ctx = Context::new(
            client.clone(),
            config,
            Clock::System,
            Arc::new(Metrics::new()),
        );
        tokio::spawn(cutover::rollout::watch::run(Arc::new(ctx), stop.clone()));
        Ok((Api::namespaced(client, "default"), stop.drop_guard()))
    }
}

/// The canary the Prometheus-compatible tests roll: `image`, one step at 25 %, then an
/// analysis step measuring `metric`. (Not every file sharing this module uses it.)
#[allow(dead_code)]
pub fn canary_rollout(image: &str, metric: serde_json::Value) -> Rollout {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 25}, {"analysis": {"metrics": [metric]}}]}}}
    }))
    .expect("a rollout")
}

/// A metric `error-rate` measuring `query` three times 2 s apart, passing under 5 %, with
/// the fields of `extra` added.
#[allow(dead_code)]
pub fn error_rate_metric(query: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::json!({"name": "error-rate", "interval": "2s", "count": 3,
        "successCondition": "result < 0.05", "prometheus": {"query": query}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}
