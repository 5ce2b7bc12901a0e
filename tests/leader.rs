//! Leader election with two operator processes against the sim over HTTP: one leads and
//! reconciles, the other stands by; killed, the leader is replaced within 20 s.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use cutover::{controller::Clock, sim::Sim};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Operator {
    child: Child,
    metrics: SocketAddr,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn operator(kubeconfig: &std::path::Path) -> Operator {
    let metrics = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args([
            "run",
            "--leader-elect",
            "--leader-election-namespace",
            "default",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Operator { child, metrics }
}

/// The operator's /metrics text (empty while it does not answer).
fn metrics(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn leads(addr: SocketAddr) -> bool {
    metrics(addr).lines().any(|l| l == "cutover_leader 1")
}

fn reconciles(addr: SocketAddr) -> u64 {
    metrics(addr)
        .lines()
        .filter(|l| l.starts_with("cutover_reconciles_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn holder(sim: &Sim) -> Option<String> {
    let rt = sim.store().resolve("coordination.k8s.io", "v1", "leases")?;
    let lease = sim.store().get(&rt, "default", "cutover-leader").ok()?;
    lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
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

    let mut a = operator(&kubeconfig);
    let b = operator(&kubeconfig);
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
    assert!(holder(sim_ref).is_some());
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
    let killed_at = Instant::now();
    let survivor = if first == 'a' {
        a.child.kill().unwrap();
        a.child.wait().unwrap();
        b.metrics
    } else {
        drop(b);
        a.metrics
    };
    tokio::task::spawn_blocking(move || {
        wait("the standby to lead", Duration::from_secs(25), || {
            leads(survivor).then_some(())
        })
    })
    .await
    .unwrap();
    let took = killed_at.elapsed();
    println!("the standby led {took:?} after the leader was killed");
    assert!(took <= Duration::from_secs(20), "took {took:?}");
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
