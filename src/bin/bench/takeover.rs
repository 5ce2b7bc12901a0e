//! `bench takeover [--runs N]`: how long a standby takes to lead after the leader dies.
//!
//! Two `cutover run --leader-elect` processes share the sim over HTTP. The leader is
//! killed with SIGKILL, so it never releases the lease and the standby must wait for it to
//! expire (15 s after the standby last saw it change). The figures are the time from the
//! kill to the standby's `cutover_leader 1`, and how long after the dead leader's last
//! renewal the standby's acquisition is stamped, per run.

use std::time::{Duration, Instant};

use cutover::sim::Sim;

use super::operator::{Operator, leads};

type BoxError = Box<dyn std::error::Error>;

fn operator(kubeconfig: &std::path::Path, identity: &str) -> Result<Operator, BoxError> {
    let cutover = std::env::current_exe()?
        .parent()
        .ok_or("no directory of the bench binary")?
        .join("cutover");
    Ok(super::operator::start(&cutover, kubeconfig, identity)?)
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
    let (a_addr, b_addr) = (a.metrics, b.metrics);
    tokio::task::spawn_blocking(move || until("a leader", || leads(a_addr) || leads(b_addr)))
        .await??;
    let (leader, standby) = if leads(a_addr) { (a, b) } else { (b, a) };
    drop(leader);
    let killed = Instant::now();
    let renewed = lease_time(&sim, "renewTime")?;
    let standby_addr = standby.metrics;
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
