//! Leader election with two operator processes against the sim over HTTP: one leads and
//! reconciles, the other stands by; killed, the leader is replaced once its lease expired.
//! (`bench takeover` measures how long that takes.)

#[path = "support/operator.rs"]
mod support;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use cutover::{controller::Clock, sim::Sim};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use support::{Operator, leads, metrics};

fn operator(kubeconfig: &std::path::Path, identity: &str) -> Operator {
    support::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_cutover")),
        kubeconfig,
        identity,
    )
    .unwrap()
}

fn reconciles(addr: SocketAddr) -> u64 {
    metrics(addr)
        .lines()
        .filter(|l| l.starts_with("cutover_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn lease(sim: &Sim) -> Option<Value> {
    let rt = sim.store().resolve("coordination.k8s.io", "v1", "leases")?;
    sim.store().get(&rt, "default", "cutover-leader").ok()
}

fn holder(sim: &Sim) -> Option<String> {
    lease(sim)?
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A MicroTime field of the lease.
fn lease_time(lease: &Value, field: &str) -> jiff::Timestamp {
    lease["spec"][field]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("lease {field}: {lease}"))
}

fn wait<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_reconciles_and_a_standby_takes_over_when_it_dies() {
    let sim = Sim::new(Clock::System);
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    let _guard = stop.clone().drop_guard();
    sim.start_workloads(Default::default(), stop.clone());
    let (addr, _server) = sim
        .serve("127.0.0.1:0".parse().unwrap(), stop.clone())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("cutover-leader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    cutover::sim::write_kubeconfig(&kubeconfig, addr).unwrap();

    let mut a = operator(&kubeconfig, "a");
    let b = operator(&kubeconfig, "b");
    let (sim_ref, a_addr, b_addr) = (&sim, a.metrics, b.metrics);
    let first = tokio::task::spawn_blocking(move || {
        wait("a leader", Duration::from_secs(30), || {
            match (leads(a_addr), leads(b_addr)) {
                (true, false) => Some('a'),
                (false, true) => Some('b'),
                (true, true) => panic!("two leaders at once"),
                _ => None,
            }
        })
    })
    .await
    .unwrap();
    assert_eq!(holder(sim_ref), Some(first.to_string()));
    // Work for the leader only.
    let rollouts = sim
        .store()
        .resolve("cutover.dev", "v1alpha1", "rollouts")
        .unwrap();
    let rollout = json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}});
    sim.store()
        .create(&rollouts, "default", rollout, &Default::default())
        .unwrap();
    let (leader, standby) = if first == 'a' {
        (a.metrics, b.metrics)
    } else {
        (b.metrics, a.metrics)
    };
    let store = sim.store().clone();
    let rollouts_rt = rollouts.clone();
    tokio::task::spawn_blocking(move || {
        wait("the leader to reconcile", Duration::from_secs(30), || {
            (reconciles(leader) > 0).then_some(())
        });
        // The Rollout done is the leader's whole work done: by then a standby that
        // reconciled anything would show it.
        wait("the Rollout Healthy", Duration::from_secs(60), || {
            let r = store.get(&rollouts_rt, "default", "web").ok()?;
            (r.pointer("/status/phase") == Some(&json!("Healthy"))).then_some(())
        });
        let standby_metrics = metrics(standby);
        assert!(
            standby_metrics.lines().any(|l| l == "cutover_leader 0"),
            "the standby is alive and answers, not leading:\n{standby_metrics}"
        );
        assert_eq!(reconciles(standby), 0, "the standby never reconciles");
    })
    .await
    .unwrap();

    // SIGKILL the leader: no release, the lease has to expire.
    let (survivor, survivor_name) = if first == 'a' {
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        (b.metrics, "b")
    } else {
        drop(b);
        (a.metrics, "a")
    };
    let last = lease(&sim).unwrap();
    let transitions = last["spec"]["leaseTransitions"].as_i64().unwrap_or(0);
    tokio::task::spawn_blocking(move || {
        wait("the standby to lead", Duration::from_secs(120), || {
            leads(survivor).then_some(())
        })
    })
    .await
    .unwrap();
    let taken = lease(&sim).unwrap();
    assert_eq!(taken["spec"]["holderIdentity"], survivor_name);
    assert_eq!(
        taken["spec"]["leaseTransitions"].as_i64(),
        Some(transitions + 1)
    );
    // Never two leaders: the standby took the lease only after the dead leader's last
    // renewal had expired (15 s), however slow the machine was.
    let expired = lease_time(&last, "renewTime") + jiff::SignedDuration::from_secs(15);
    let acquired = lease_time(&taken, "acquireTime");
    assert!(
        acquired >= expired,
        "taken at {acquired}, before the lease renewed at {} expired",
        lease_time(&last, "renewTime")
    );
    let before = reconciles(survivor);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    sim.store()
        .patch(
            &rollouts,
            "default",
            "web",
            cutover::sim::store::PatchKind::Merge,
            &patch,
            cutover::sim::store::Subresource::Main,
            &Default::default(),
        )
        .unwrap();
    tokio::task::spawn_blocking(move || {
        wait(
            "the new leader to reconcile",
            Duration::from_secs(30),
            || (reconciles(survivor) > before).then_some(()),
        )
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
