//! Reliability under faults: with errors, conflicts, throttling, delays, dropped watches,
//! expired resourceVersions or operator restarts injected mid-rollout, a migration-gated
//! canary with analysis ends as it would without them — one migration Job, every step once,
//! every measurement once, and promotion only on data.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{MigrationJob, MigrationPhase, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, faults::Faults, prometheus::MetricScript, workload::WorkloadConfig},
};
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Env {
    sim: Sim,
    clock: Clock,
    rollouts: Api<Rollout>,
    operator: CancellationToken,
    /// The operator started with the environment.
    first: CancellationToken,
    _stop: tokio_util::sync::DropGuard,
}

fn start() -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    sim.prometheus().set_script(
        MetricScript::parse("metrics:\n  - match: errors\n    value: 0.001\n").unwrap(),
    );
    let stop = CancellationToken::new();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_secs(2),
            job_duration: Duration::from_secs(20),
        },
        stop.clone(),
    );
    let mut env = Env {
        rollouts: Api::namespaced(sim.client(), "default"),
        operator: stop.child_token(),
        first: CancellationToken::new(),
        clock,
        sim,
        _stop: stop.drop_guard(),
    };
    env.first = env.start_operator();
    env
}

impl Env {
    fn start_operator(&self) -> CancellationToken {
        let token = self.operator.child_token();
        let config = Config {
            prometheus_url: Some("http://prometheus.sim".into()),
            ..Config::default()
        };
        let ctx = Arc::new(
            Context::new(
                self.sim.client(),
                config,
                self.clock.clone(),
                Arc::new(Metrics::new()),
            )
            .with_prometheus(self.sim.prometheus_transport()),
        );
        for c in cutover::controller::runner::controllers(ctx, token.clone()) {
            tokio::spawn(c);
        }
        token
    }

    async fn release(&self) {
        let client = self.sim.client();
        let mjs: Api<MigrationJob> = Api::namespaced(client.clone(), "default");
        let mj: MigrationJob = serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1",
            "kind": "MigrationJob", "metadata": {"name": "expand"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}}))
        .unwrap();
        mjs.create(&PostParams::default(), &mj).await.unwrap();
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                "migrations": {"before": ["expand"]},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 25},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"metrics": [{"name": "errors", "interval": "20s", "count": 3,
                        "successCondition": "result < 0.01", "prometheus": {"query": "errors"}}]}},
                    {"setWeight": 75},
                    {"pause": {"duration": "30s"}}]}}}
        }))
        .unwrap();
        self.rollouts
            .create(&PostParams::default(), &r)
            .await
            .unwrap();
        self.until("the first revision", settled).await;
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
        self.rollouts
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        let mj_patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "m", "image": "m:2"}]}}}});
        mjs.patch("expand", &PatchParams::default(), &Patch::Merge(&mj_patch))
            .await
            .unwrap();
    }

    async fn until(&self, what: &str, check: impl Fn(&Rollout) -> bool) -> Rollout {
        for _ in 0..4000 {
            if let Ok(r) = self.rollouts.get("web").await
                && check(&r)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "timed out waiting for {what}: {:#?}",
            self.rollouts.get("web").await.ok().and_then(|r| r.status)
        );
    }

    /// The end state is the one a fault-free run reaches; `one_pass` when the steps ran
    /// once (a retry runs them again, by design).
    async fn check_outcome(&self, one_pass: bool) {
        let r = self.until("the new revision stable", settled).await;
        let s = r.status.unwrap();
        let image = r.spec.template.unwrap().spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap();
        assert_eq!(image, "web:2");
        // The analysis ran exactly its three measurements, each due time once.
        let run = s
            .analysis
            .iter()
            .find(|a| a.name == "step-2")
            .expect("the step's run");
        let m = &run.metrics[0];
        assert_eq!(m.count, 3, "{m:?}");
        let mut due: Vec<_> = m.measurements.iter().map(|x| x.due_at.0).collect();
        due.dedup();
        assert_eq!(due.len(), 3, "no measurement repeated");
        // One Job per migration revision: two revisions, two Jobs, never a duplicate.
        let jobs: Api<Job> = Api::namespaced(self.sim.client(), "default");
        let list = jobs
            .list(&ListParams::default().labels("cutover.dev/migration=expand"))
            .await
            .unwrap();
        let mut names: Vec<String> = list
            .items
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(list.items.len(), 2, "{names:?}");
        let mjs: Api<MigrationJob> = Api::namespaced(self.sim.client(), "default");
        assert_eq!(
            mjs.get("expand").await.unwrap().status.unwrap().phase,
            MigrationPhase::Succeeded
        );
        if !one_pass {
            return;
        }
        // Every step completed once: no Event for a step was repeated.
        let events = self.events("web");
        for step in 0..5 {
            let note = format!("step {step} completed");
            let same: Vec<&Value> = events.iter().filter(|e| e["note"] == note).collect();
            assert!(same.len() <= 1, "{note}: {same:?}");
            let count = same
                .first()
                .and_then(|e| e.pointer("/series/count"))
                .and_then(Value::as_i64)
                .unwrap_or(1);
            assert_eq!(count, 1, "{note} repeated");
        }
    }

    fn events(&self, rollout: &str) -> Vec<Value> {
        let rt = self
            .sim
            .store()
            .resolve("events.k8s.io", "v1", "events")
            .unwrap();
        self.sim
            .store()
            .list(&rt, &Default::default(), None, None)
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(rollout))
            .collect()
    }
}

fn settled(r: &Rollout) -> bool {
    r.status.as_ref().is_some_and(|s| {
        s.phase == RolloutPhase::Healthy
            && s.stable_revision.is_some()
            && s.stable_revision == s.current_revision
            && s.observed_generation == r.metadata.generation
    })
}

/// Runs the release with `inject` called once the new revision started, then checks with
/// `fired` that the fault took effect: a fault that never fires proves nothing.
async fn with_fault(inject: impl AsyncFnOnce(&Env), fired: impl Fn(&Faults)) {
    let env = start();
    env.release().await;
    inject(&env).await;
    env.check_outcome(true).await;
    fired(env.sim.store().faults());
}

#[tokio::test(start_paused = true)]
async fn server_errors_on_deployment_writes() {
    with_fault(
        async |env: &Env| {
            env.sim
                .store()
                .faults()
                .fail_next(Some("PATCH"), Some("deployments"), 6, 500);
        },
        |f| assert_eq!(f.failed(), 6, "every refused Deployment write was retried"),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn conflicts_on_status_writes() {
    with_fault(
        async |env: &Env| {
            env.sim
                .store()
                .faults()
                .fail_next(Some("PATCH"), Some("rollouts/status"), 5, 409);
            env.sim
                .store()
                .faults()
                .fail_next(Some("PATCH"), Some("migrationjobs/status"), 3, 409);
        },
        |f| assert_eq!(f.failed(), 8, "every conflicting status write was retried"),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn throttled_reads() {
    with_fault(
        async |env: &Env| {
            env.sim
                .store()
                .faults()
                .fail_next(Some("GET"), None, 30, 429);
        },
        |f| assert_eq!(f.failed(), 30, "every throttled read was retried"),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn failed_job_creation_never_starts_a_migration_twice() {
    with_fault(
        async |env: &Env| {
            env.sim
                .store()
                .faults()
                .fail_next(Some("PATCH"), Some("jobs"), 4, 500);
        },
        |f| assert_eq!(f.failed(), 4, "every refused Job creation was retried"),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn slow_responses() {
    with_fault(
        async |env: &Env| {
            env.sim
                .store()
                .faults()
                .delay_responses(Some(Duration::from_millis(300)));
            tokio::time::sleep(Duration::from_secs(40)).await;
            env.sim.store().faults().delay_responses(None);
        },
        |f| assert!(f.delayed() >= 10, "responses were slowed: {}", f.delayed()),
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropped_watches() {
    with_fault(
        async |env: &Env| {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_secs(7)).await;
                env.sim.store().faults().drop_watches();
            }
        },
        |f| {
            assert!(
                f.watches_dropped() >= 4 * 3,
                "each drop ended the controllers' watches: {}",
                f.watches_dropped()
            )
        },
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn expired_resource_versions() {
    with_fault(
        async |env: &Env| {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(11)).await;
                env.sim.store().expire_resource_versions();
            }
        },
        |f| {
            assert!(
                f.resumes_refused() >= 3,
                "each expiry refused a resuming watch: {}",
                f.resumes_refused()
            )
        },
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_operator_restarted_at_every_step_resumes_from_status() {
    let env = start();
    env.release().await;
    let mut current = env.first.clone();
    let mut seen = Vec::new();
    for _ in 0..200 {
        let r = env.rollouts.get("web").await.unwrap();
        if settled(&r) && seen.len() > 2 {
            break;
        }
        let step = r.status.as_ref().and_then(|s| s.current_step_index);
        if seen.last() != Some(&step) {
            seen.push(step);
            // Kill the operator at this step boundary and start a fresh one with nothing
            // in memory: it must go on from the status it recorded.
            current.cancel();
            tokio::time::sleep(Duration::from_millis(100)).await;
            current = env.start_operator();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(seen.len() >= 4, "restarted at several steps: {seen:?}");
    env.check_outcome(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_prometheus_outage_during_analysis_pauses_then_a_retry_promotes_on_data() {
    let env = start();
    // Prometheus answers 503 for the first ten minutes of the sim.
    env.sim.prometheus().set_script(
        MetricScript::parse(
            "metrics:\n  - match: errors\n    value: 0.001\noutages:\n  - {from: 0s, to: 10m}\n",
        )
        .unwrap(),
    );
    env.release().await;
    let paused = env
        .until("a pause on errors", |r| {
            r.status.as_ref().is_some_and(|s| {
                s.phase == RolloutPhase::Paused
                    && s.analysis
                        .iter()
                        .any(|a| a.verdict == cutover::api::AnalysisVerdict::Error)
            })
        })
        .await;
    assert_ne!(
        paused.status.as_ref().unwrap().stable_revision,
        paused.status.as_ref().unwrap().current_revision,
        "never promoted on missing data"
    );
    // Prometheus comes back; a person aborts and retries, and the analysis passes on data.
    tokio::time::sleep(Duration::from_secs(600)).await;
    for (key, value) in [("cutover.dev/abort", "1"), ("cutover.dev/retry", "1")] {
        env.rollouts
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    env.check_outcome(false).await;
}
