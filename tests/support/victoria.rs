//! A real VictoriaMetrics (Debian's `victoria-metrics`, installed by `scripts/test`)
//! scraping the test exporter, answering the same query API as Prometheus.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use crate::prometheus::{BoxError, Prometheus};

/// The TCP port a process listens on, from `/proc`: VictoriaMetrics binds port 0 when told
/// to but logs the port as given, so the socket itself is looked up.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().to_string();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        if *state != "0A" || !inodes.contains(*inode) {
            return None;
        }
        u16::from_str_radix(local.split(':').nth(1)?, 16).ok()
    })
}

fn victoria_metrics_binary() -> Result<PathBuf, BoxError> {
    let path = PathBuf::from("/usr/bin/victoria-metrics");
    if path.exists() {
        Ok(path)
    } else {
        Err("victoria-metrics is not installed: scripts/test installs Debian's victoria-metrics package".into())
    }
}

/// Starts VictoriaMetrics scraping `exporter` every second on a port it binds itself, and
/// returns once it answers a 5 s rate. It answers Prometheus's query API as Prometheus does.
pub async fn start_victoria_metrics(exporter: SocketAddr) -> Result<Prometheus, BoxError> {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cutover-vm-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("scrape.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{exporter}']\n"
        ),
    )?;
    let mut child = Command::new(victoria_metrics_binary()?)
        .arg(format!("-promscrape.config={}", config.display()))
        .arg(format!("-storageDataPath={}", dir.join("data").display()))
        .arg("-httpListenAddr=127.0.0.1:0")
        // Scraped samples become searchable when flushed from memory, each series on its
        // own; the default hides the last 30 s so a ratio of two series never reads one
        // half-flushed. Scraping one exporter every second, 3 s is enough.
        .arg("-search.latencyOffset=3s")
        .arg("-search.disableCache")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let port = loop {
        if let Some(port) = listening_port(child.id()) {
            break port;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err("VictoriaMetrics never listened".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server = Prometheus {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    while Instant::now() < deadline {
        if server
            .query("sum(rate(http_requests_total[5s])) > 0")
            .await
            .is_some()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("VictoriaMetrics did not become ready with samples".into())
}
