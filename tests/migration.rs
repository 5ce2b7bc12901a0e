//! The MigrationJob controller and migration gates, through the real controllers and
//! kube::Client against the sim and its Job simulator, on the virtual clock.

use std::{sync::Arc, time::Duration};

use cutover::{
    api::{MigrationJob, MigrationPhase, Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Env {
    sim: Sim,
    clock: Clock,
    mjs: Api<MigrationJob>,
    jobs: Api<Job>,
    rollouts: Api<Rollout>,
    deployments: Api<Deployment>,
    operator: CancellationToken,
    _stop: tokio_util::sync::DropGuard,
}

fn start() -> Env {
    let clock = Clock::tokio_at(jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let sim = Sim::new(clock.clone());
    cutover::cli::dev::install_crds(&sim).unwrap();
    let stop = CancellationToken::new();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: Duration::from_secs(2),
            job_duration: Duration::from_secs(30),
        },
        stop.clone(),
    );
    let client = sim.client();
    let env = Env {
        mjs: Api::namespaced(client.clone(), "default"),
        jobs: Api::namespaced(client.clone(), "default"),
        rollouts: Api::namespaced(client.clone(), "default"),
        deployments: Api::namespaced(client.clone(), "default"),
        operator: stop.child_token(),
        clock,
        sim,
        _stop: stop.drop_guard(),
    };
    env.start_operator();
    env
}

impl Env {
    fn start_operator(&self) -> CancellationToken {
        let token = self.operator.child_token();
        let ctx = Arc::new(Context::new(
            self.sim.client(),
            Config::default(),
            self.clock.clone(),
            Arc::new(Metrics::new()),
        ));
        for c in cutover::controller::runner::controllers(ctx, token.clone()) {
            tokio::spawn(c);
        }
        token
    }

    async fn create(
        &self,
        name: &str,
        extra: serde_json::Value,
        pod_annotations: serde_json::Value,
    ) {
        let mut spec = json!({"template": {"metadata": {"annotations": pod_annotations},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "migrate:1"}]}}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let mj: MigrationJob = serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1",
            "kind": "MigrationJob", "metadata": {"name": name}, "spec": spec}))
        .unwrap();
        self.mjs.create(&PostParams::default(), &mj).await.unwrap();
    }

    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        for _ in 0..2400 {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("timed out waiting for {what}");
    }

    async fn phase_of(&self, name: &str) -> MigrationPhase {
        self.mjs
            .get(name)
            .await
            .unwrap()
            .status
            .map(|s| s.phase)
            .unwrap_or_default()
    }

    async fn until_phase(&self, name: &str, phase: MigrationPhase) -> MigrationJob {
        self.until(&format!("{name} {phase:?}"), async || {
            let mj = self.mjs.get(name).await.ok()?;
            (mj.status.as_ref()?.phase == phase).then_some(mj)
        })
        .await
    }

    async fn jobs_of(&self, name: &str) -> Vec<Job> {
        self.jobs
            .list(&ListParams::default().labels(&format!("cutover.dev/migration={name}")))
            .await
            .unwrap()
            .items
    }
}

#[tokio::test(start_paused = true)]
async fn a_migration_runs_once_and_never_again() {
    let env = start();
    env.create(
        "add-column",
        json!({"ttlSecondsAfterFinished": 60}),
        json!({}),
    )
    .await;
    let mj = env
        .until_phase("add-column", MigrationPhase::Succeeded)
        .await;
    let s = mj.status.unwrap();
    assert_eq!(s.duration.as_deref(), Some("30s"));
    assert_eq!(s.attempts, Some(1));
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    let jobs = env.jobs_of("add-column").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].spec.as_ref().unwrap().ttl_seconds_after_finished,
        Some(60)
    );
    assert_eq!(jobs[0].spec.as_ref().unwrap().backoff_limit, Some(0));
    // The Job goes after its TTL; the migration is still done and is not run again.
    env.until("the Job's TTL", async || {
        env.jobs_of("add-column").await.is_empty().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert!(env.jobs_of("add-column").await.is_empty());
    assert_eq!(env.phase_of("add-column").await, MigrationPhase::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_failing_migration_reports_the_log_tail_and_a_timeout_its_reason() {
    let env = start();
    env.create(
        "broken",
        json!({"backoffLimit": 1}),
        json!({"sim.cutover.dev/fail-attempts": "always",
            "sim.cutover.dev/log": "applying 0042_add_email.sql\nERROR: column \"email\" already exists"}),
    )
    .await;
    env.create(
        "slow",
        json!({"timeoutSeconds": 60}),
        json!({"sim.cutover.dev/duration": "10m"}),
    )
    .await;
    let broken = env
        .until_phase("broken", MigrationPhase::Failed)
        .await
        .status
        .unwrap();
    let message = broken.message.unwrap();
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(
        message.contains("column \"email\" already exists"),
        "{message}"
    );
    assert_eq!(broken.attempts, Some(2), "backoffLimit 1: two pods");
    let ready = broken
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "BackoffLimitExceeded")
    );
    let slow = env
        .until_phase("slow", MigrationPhase::Failed)
        .await
        .status
        .unwrap();
    let ready = slow.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "DeadlineExceeded");
    // Failed stays failed: no new Job without a retry or a new spec.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(env.jobs_of("broken").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn migrations_sharing_a_lock_run_one_at_a_time_in_creation_order() {
    let env = start();
    env.create("first", json!({"lockKey": "orders-db"}), json!({}))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.create("second", json!({"lockKey": "orders-db"}), json!({}))
        .await;
    let waiting = env
        .until_phase("second", MigrationPhase::Waiting)
        .await
        .status
        .unwrap();
    assert_eq!(waiting.lock_holder.as_deref(), Some("first"));
    assert!(env.jobs_of("second").await.is_empty());
    assert_eq!(env.phase_of("first").await, MigrationPhase::Running);
    env.until_phase("second", MigrationPhase::Succeeded).await;
    let first_end = env
        .mjs
        .get("first")
        .await
        .unwrap()
        .status
        .unwrap()
        .completion_time
        .unwrap()
        .0;
    let second_start = env
        .mjs
        .get("second")
        .await
        .unwrap()
        .status
        .unwrap()
        .start_time
        .unwrap()
        .0;
    assert!(
        second_start >= first_end,
        "never at once: {first_end} then {second_start}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_operator_restart_while_the_job_runs_starts_no_second_job() {
    let env = start();
    env.create("long", json!({}), json!({"sim.cutover.dev/duration": "5m"}))
        .await;
    env.until_phase("long", MigrationPhase::Running).await;
    env.until("the Job", async || {
        (!env.jobs_of("long").await.is_empty()).then_some(())
    })
    .await;
    env.operator.cancel();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // A fresh operator, with nothing in memory.
    let env = Env {
        operator: CancellationToken::new(),
        ..env
    };
    env.start_operator();
    env.until_phase("long", MigrationPhase::Succeeded).await;
    assert_eq!(env.jobs_of("long").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn deleting_a_migration_removes_its_running_job() {
    let env = start();
    env.create(
        "doomed",
        json!({}),
        json!({"sim.cutover.dev/duration": "1h"}),
    )
    .await;
    env.until("the Job", async || {
        (!env.jobs_of("doomed").await.is_empty()).then_some(())
    })
    .await;
    let mj = env.mjs.get("doomed").await.unwrap();
    assert!(
        mj.metadata
            .finalizers
            .unwrap()
            .contains(&"cutover.dev/migration-jobs".to_string())
    );
    env.mjs
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    env.until("the MigrationJob gone", async || {
        env.mjs
            .get_opt("doomed")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    env.until("the Job gone", async || {
        env.jobs_of("doomed").await.is_empty().then_some(())
    })
    .await;
}

fn gated_rollout(image: &str, before: &[&str], after: &[&str]) -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}},
            "migrations": {"before": before, "after": after, "rollbackOnAbort": true},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1m"}}]}}}
    }))
    .unwrap()
}

impl Env {
    async fn images(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self
            .deployments
            .list(&ListParams::default().labels("cutover.dev/rollout=web"))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|d| {
                let spec = d.spec.unwrap();
                (
                    spec.template.spec.unwrap().containers[0]
                        .image
                        .clone()
                        .unwrap(),
                    spec.replicas.unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        out
    }

    async fn rollout_phase(&self) -> Option<RolloutPhase> {
        self.rollouts.get("web").await.ok()?.status.map(|s| s.phase)
    }

    async fn set_migration_image(&self, name: &str, image: &str, annotations: serde_json::Value) {
        let patch = json!({"spec": {"template": {"metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "m", "image": image}]}}}});
        self.mjs
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_expand_migration_aborts_with_no_new_pods_and_runs_its_rollback() {
    let env = start();
    let rollback = json!({"rollback": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "m", "image": "migrate:1", "args": ["down"]}]}}}});
    env.create("expand", rollback, json!({})).await;
    env.rollouts
        .create(
            &PostParams::default(),
            &gated_rollout("web:1", &["expand"], &[]),
        )
        .await
        .unwrap();
    env.until("web:1 healthy", async || {
        (env.rollout_phase().await == Some(RolloutPhase::Healthy)).then_some(())
    })
    .await;
    assert_eq!(env.images().await, vec![("web:1".to_string(), 4)]);
    // The next release: a new migration that fails, and a new image.
    env.set_migration_image(
        "expand",
        "migrate:2",
        json!({"sim.cutover.dev/fail-attempts": "always",
        "sim.cutover.dev/log": "ERROR: deadlock detected"}),
    )
    .await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let waiting = env
        .until("WaitingForMigrations", async || {
            let s = env.rollouts.get("web").await.ok()?.status?;
            s.conditions
                .iter()
                .any(|c| c.reason == "WaitingForMigrations")
                .then_some(s)
        })
        .await;
    assert!(waiting.message.unwrap().contains("expand"));
    env.until("abort", async || {
        (env.rollout_phase().await == Some(RolloutPhase::Aborted)).then_some(())
    })
    .await;
    let r = env.rollouts.get("web").await.unwrap().status.unwrap();
    assert!(r.message.unwrap().contains("deadlock detected"));
    let images = env.images().await;
    assert!(
        images
            .iter()
            .all(|(image, replicas)| image == "web:1" || *replicas == 0),
        "no pod of web:2: {images:?}"
    );
    assert!(
        images.contains(&("web:1".to_string(), 4)),
        "stable untouched: {images:?}"
    );
    env.until_phase("expand", MigrationPhase::RolledBack).await;
    let rollback_jobs: Vec<Job> = env
        .jobs_of("expand")
        .await
        .into_iter()
        .filter(|j| j.metadata.labels.as_ref().unwrap()["cutover.dev/role"] == "rollback")
        .collect();
    assert_eq!(rollback_jobs.len(), 1, "the rollback ran once");
}

#[tokio::test(start_paused = true)]
async fn a_contract_migration_waits_until_no_old_pod_is_left() {
    let env = start();
    env.create("contract", json!({}), json!({})).await;
    env.rollouts
        .create(
            &PostParams::default(),
            &gated_rollout("web:1", &[], &["contract"]),
        )
        .await
        .unwrap();
    env.until_phase("contract", MigrationPhase::Succeeded).await;
    // The next release: new code, and a contract migration that old code must never meet.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    env.rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    env.set_migration_image("contract", "migrate:2", json!({}))
        .await;
    let mut saw_pending = false;
    for _ in 0..2400 {
        let mj = env.mjs.get("contract").await.unwrap();
        let status = mj.status.unwrap_or_default();
        let current = status.revision == Some(cutover::migration::plan::spec_revision(&mj.spec));
        if current && status.phase == MigrationPhase::Pending {
            saw_pending = true;
            assert!(status.message.unwrap_or_default().contains("Rollout web"));
        }
        if current
            && matches!(
                status.phase,
                MigrationPhase::Running | MigrationPhase::Succeeded
            )
        {
            let images = env.images().await;
            assert!(
                images
                    .iter()
                    .all(|(image, replicas)| image == "web:2" || *replicas == 0),
                "the contract migration started while web:1 still had pods: {images:?}"
            );
            if status.phase == MigrationPhase::Succeeded {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(saw_pending, "it waited for the rollout");
    assert_eq!(env.phase_of("contract").await, MigrationPhase::Succeeded);
    let r = env.rollouts.get("web").await.unwrap().status.unwrap();
    assert_eq!(r.contract_revision, r.stable_revision);
}
