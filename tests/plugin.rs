//! `kubectl cutover`: the binary linked as `kubectl-cutover`, found and run by the real
//! kubectl, against the sim over HTTP with the controllers running.

use std::{
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use cutover::{
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use kube::{Api, api::PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Env {
    dir: PathBuf,
    rollouts: Api<Rollout>,
    _stop: tokio_util::sync::DropGuard,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Env {
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
    let (addr, _) = sim
        .serve("127.0.0.1:0".parse().unwrap(), stop.clone())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("cutover-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    cutover::sim::write_kubeconfig(&dir.join("kubeconfig"), addr).unwrap();
    // kubectl finds plugins named kubectl-* on PATH.
    let link = dir.join("kubectl-cutover");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cutover"), &link).unwrap();
    let client = sim.client();
    let ctx = Arc::new(Context::new(
        client.clone(),
        Config::default(),
        Clock::System,
        Arc::new(Metrics::new()),
    ));
    for c in cutover::controller::runner::controllers(ctx, stop.clone()) {
        tokio::spawn(c);
    }
    Env {
        dir,
        rollouts: Api::namespaced(client, "default"),
        _stop: stop.drop_guard(),
    }
}

impl Env {
    /// Runs `kubectl cutover ARGS`; returns exit code, stdout, stderr.
    async fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        let path = format!(
            "{}:{}",
            self.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("kubectl");
        cmd.arg("cutover")
            .args(args)
            .env("PATH", path)
            .env("KUBECONFIG", self.dir.join("kubeconfig"));
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn until(&self, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.rollouts.get("web").await
                && check(&r)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.rollouts.get("web").await.ok().and_then(|r| r.status)
        );
    }
}

fn phase(r: &Rollout) -> RolloutPhase {
    r.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn settled(r: &Rollout) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase == RolloutPhase::Healthy && s.stable_revision == s.current_revision
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_drives_a_canary_through_kubectl() {
    let env = start().await;
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .unwrap();
    env.rollouts
        .create(&PostParams::default(), &r)
        .await
        .unwrap();
    let first = env.until("healthy", settled).await;
    let first_revision = first.status.unwrap().stable_revision.unwrap();

    let (code, out, err) = env.kubectl(&["get"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("web ") && l.contains("Healthy")),
        "{out}"
    );
    let (code, out, _) = env.kubectl(&["get", "-n", "elsewhere"]).await;
    assert_eq!(
        (code, out.lines().count()),
        (0, 1),
        "only the header: {out}"
    );
    let (code, out, err) = env.kubectl(&["get", "-A"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAMESPACE   NAME"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("default ") && l.contains(" web ") && l.contains("Healthy")),
        "{out}"
    );

    let (code, _, err) = env.kubectl(&["set", "image", "web", "web=web:2"]).await;
    assert_eq!(code, 0, "{err}");
    env.until("the gate", |r| {
        phase(r) == RolloutPhase::Paused && r.status.as_ref().unwrap().current_step_index == Some(1)
    })
    .await;
    let (code, out, _) = env.kubectl(&["status", "web"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("Rollout web (Canary): Paused"), "{out}");
    assert!(out.contains("[>] 1: pause (until promoted)"), "{out}");
    assert!(out.contains("[x] 0: setWeight 50"), "{out}");
    assert!(out.contains("Steps [##########----------] 1/2"), "{out}");
    assert!(out.contains("(new)     50%"), "{out}");
    // The last decision is the gate, not whichever condition moved last.
    assert!(
        out.contains("Last decision: Paused True (ManualGate"),
        "{out}"
    );
    // The tree: each revision with its role and image, its Deployment and ready pods.
    assert!(out.contains("Revisions\n"), "{out}");
    assert!(out.contains("(canary) web=web:2"), "{out}");
    assert!(out.contains(&format!("({}) web=web:1", "stable")), "{out}");
    assert!(
        out.contains("2/2 ready"),
        "two pods on each side at 50% of 4: {out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains(" pod web-") && l.ends_with("Running, ready"))
            .count()
            == 4,
        "{out}"
    );

    // A verb that does not apply is refused with the reason.
    let (code, _, err) = env.kubectl(&["retry", "web"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("only an aborted rollout can be retried"),
        "{err}"
    );
    let (code, _, err) = env.kubectl(&["promote", "nosuch"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("rollout \"nosuch\" not found in namespace \"default\""),
        "{err}"
    );

    let (code, _, err) = env.kubectl(&["promote", "web"]).await;
    assert_eq!(code, 0, "{err}");
    let promoted = env.until("promoted", settled).await;
    assert_ne!(
        promoted.status.unwrap().stable_revision.unwrap(),
        first_revision
    );
    let (code, _, err) = env.kubectl(&["promote", "web"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("is Healthy: nothing to promote"), "{err}");

    // The deployment log: the release the plugin started, promoted, and who started it.
    let (code, out, err) = env.kubectl(&["history", "web"]).await;
    assert_eq!(code, 0, "{err}");
    let release = out
        .lines()
        .find(|l| l.contains("web:2"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(release.contains("Promoted"), "{out}");
    assert!(release.contains("kubectl-cutover"), "{out}");
    let first = out
        .lines()
        .find(|l| l.starts_with(&first_revision))
        .unwrap_or_else(|| panic!("the first revision is a release too: {out}"));
    assert!(
        first.contains("Promoted") && first.contains("web:1"),
        "{out}"
    );

    // Undo rolls the first revision out again, through the steps.
    let (code, out, err) = env.kubectl(&["undo", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&first_revision), "{out}");
    let undone = env
        .until("the old template rolling out", |r| {
            phase(r) == RolloutPhase::Paused
        })
        .await;
    assert_eq!(
        undone.status.unwrap().current_revision.unwrap(),
        first_revision
    );
    let (code, _, err) = env.kubectl(&["abort", "web"]).await;
    assert_eq!(code, 0, "{err}");
    env.until("aborted", |r| phase(r) == RolloutPhase::Aborted)
        .await;
    let (code, _, err) = env.kubectl(&["retry", "web"]).await;
    assert_eq!(code, 0, "{err}");
    env.until("retried", |r| phase(r) == RolloutPhase::Paused)
        .await;

    let (code, _, err) = env.kubectl(&["pause", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rollouts.get("web").await.unwrap().spec.paused,
        Some(true)
    );
    let (code, _, err) = env.kubectl(&["resume", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        env.rollouts.get("web").await.unwrap().spec.paused,
        Some(false)
    );
    let (code, _, err) = env.kubectl(&["promote", "web", "--full"]).await;
    assert_eq!(code, 0, "{err}");
    let back = env.until("promoted fully", settled).await;
    assert_eq!(
        back.status.unwrap().stable_revision.unwrap(),
        first_revision
    );

    // Abort a release, undo, undo again: the second undo goes to the release promoted
    // before, never to the one just aborted.
    let (code, _, err) = env.kubectl(&["set", "image", "web", "web=web:3"]).await;
    assert_eq!(code, 0, "{err}");
    env.until("web:3 at the gate", |r| phase(r) == RolloutPhase::Paused)
        .await;
    let (code, _, err) = env.kubectl(&["abort", "web"]).await;
    assert_eq!(code, 0, "{err}");
    env.until("aborted", |r| phase(r) == RolloutPhase::Aborted)
        .await;
    let (code, out, err) = env.kubectl(&["undo", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&first_revision) && out.contains("web=web:1"),
        "back to the stable release, named by its image: {out}"
    );
    env.until("settled on web:1", settled).await;
    let (code, out, err) = env.kubectl(&["undo", "web"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("web=web:2"),
        "the release promoted before, not the aborted web:3: {out}"
    );
}
