//! `bench takeover [--runs N]`: how long a standby takes to lead after the leader dies.
//!
//! Two `cutover run --leader-elect` processes share the sim over HTTP. The leader is
//! killed with SIGKILL, so it never releases the lease and the standby must wait for it to
//! expire (15 s after the standby last saw it change). The figures are the time from the
//! kill to the standby's `cutover_leader 1`, and how long after the dead leader's last
//! renewal the standby's acquisition is stamped, per run.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use cutover::sim::Sim;
use serde_json::Value;

type BoxError = Box<dyn std::error::Error>;

struct Operator(Child, SocketAddr);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cutover run` as `identity`; its metrics address is read from its JSON log.
fn operator(kubeconfig: &std::path::Path, identity: &str) -> Result<Operator, BoxError> {
    let cutover = std::env::current_exe()?
        .parent()
        .ok_or("no directory of the bench binary")?
        .join("cutover");
    let mut child = Command::new(&cutover)
        .args(["run", "--leader-elect", "--leader-election-namespace"])
        .args(["default", "--log-format", "json", "--metrics-addr"])
        .arg("127.0.0.1:0")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("POD_NAME", identity)
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", cutover.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "serving /metrics, /healthz, /readyz"
                && let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok(Operator(child, addr)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the operator never said where it serves metrics".into())
        }
    }
}

fn leads(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().any(|l| l == "cutover_leader 1")
}

fn lease_time(sim: &Sim, field: &str) -> Result<jiff::Timestamp, BoxError> {
    let rt = sim
        .store()
        .resolve("coordination.k8s.io", "v1", "leases")
        .ok_or("no leases")?;
    let lease = sim.store().get(&rt, "default", "cutover-leader")?;
    Ok(lease["spec"][field]
        .as_str()
        .ok_or("no time in the lease")?
        .parse()?)
}

/// Polls `f` every 50 ms for at most two minutes.
fn until(what: &str, f: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// One kill and takeover; returns (kill to leading, last renewal to acquisition) in seconds.
async fn once(run: usize) -> Result<(f64, f64), BoxError> {
    let (sim, stop, _stop) = super::live_sim()?;
    let (addr, _server) = sim.serve("127.0.0.1:0".parse()?, stop.clone()).await?;
    let kubeconfig = std::env::temp_dir().join(format!(
        "bench-takeover-{}-{run}.kubeconfig",
        std::process::id()
    ));
    cutover::sim::write_kubeconfig(&kubeconfig, addr)?;
    let a = operator(&kubeconfig, "a")?;
    let b = operator(&kubeconfig, "b")?;
    let (a_addr, b_addr) = (a.1, b.1);
    tokio::task::spawn_blocking(move || until("a leader", || leads(a_addr) || leads(b_addr)))
        .await??;
    let (leader, standby) = if leads(a_addr) { (a, b) } else { (b, a) };
    drop(leader);
    let killed = Instant::now();
    let renewed = lease_time(&sim, "renewTime")?;
    let standby_addr = standby.1;
    tokio::task::spawn_blocking(move || until("the standby to lead", || leads(standby_addr)))
        .await??;
    let took = killed.elapsed().as_secs_f64();
    let acquired = lease_time(&sim, "acquireTime")?;
    let _ = std::fs::remove_file(&kubeconfig);
    let after_renewal = acquired.duration_since(renewed).as_secs_f64();
    Ok((took, after_renewal))
}

pub async fn bench(runs: usize) -> Result<(), BoxError> {
    println!("takeover after SIGKILL of the leader (lease 15 s, retry 2 s), {runs} runs");
    let mut took = Vec::new();
    for run in 0..runs {
        let (t, r) = once(run).await?;
        println!(
            "  run {run}: standby led {t:.2} s after the kill; acquired {r:.2} s after the last renewal"
        );
        took.push(t);
    }
    took.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (took.first(), took.last()) {
        println!("  kill to leading: min {min:.2} s, max {max:.2} s");
    }
    Ok(())
}
