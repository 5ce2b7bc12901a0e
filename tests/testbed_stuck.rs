//! Kubernetes acting behind the operator's back, on the real control plane:
//! - a ResourceQuota leaves no room for the canary's pod, the Deployment reports
//!   `ReplicaFailure`, and the Rollout says so in its status and a Warning Event at once,
//!   naming the quota, instead of waiting for its progress deadline;
//! - the TTL controller deletes a migration's finished Job while the operator is down, and
//!   the result is still read when it comes back;
//! - a migration restarting on failure inside one pod, or stopped by its deadline (which
//!   deletes its pod), still reports its log.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{MigrationJob, MigrationPhase, Rollout, RolloutPhase};
use k8s_openapi::api::{batch::v1::Job, core::v1::ResourceQuota, events::v1::Event};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use testbed::eventually;

/// Generous bound for one state change on a loaded 2-core machine; only a failure waits it.
const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn a_quota_that_blocks_the_canary_is_reported_at_once() {
    let bed = testbed::shared();
    let ns = bed.namespace("quota").await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "small"}, "spec": {"hard": {"pods": "2"}}
    }))
    .expect("a quota");
    Api::<ResourceQuota>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &quota)
        .await
        .expect("quota created");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            // The Rollout's own deadline is far away: the report must not wait for it.
            "progressDeadlineSeconds": 3600,
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .expect("a rollout");
    rollouts
        .create(&PostParams::default(), &r)
        .await
        .expect("created");
    eventually("web Healthy on two pods", LIMIT, async || {
        let s = rollouts.get("web").await.ok()?.status?;
        (s.phase == RolloutPhase::Healthy && s.available_replicas == Some(2)).then_some(())
    })
    .await;
    // The canary's pod comes up before the stable shrinks: a third pod, over the quota.
    let image = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}});
    rollouts
        .patch("web", &PatchParams::default(), &Patch::Merge(&image))
        .await
        .expect("image changed");
    let message = eventually(
        "ReplicaFailure in the Rollout's status",
        LIMIT,
        async || {
            let s = rollouts.get("web").await.ok()?.status?;
            let c = s
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Progressing" && c.reason == "ReplicaFailure")?;
            Some(c.message)
        },
    )
    .await;
    assert!(
        message.contains("exceeded quota") && message.contains("small"),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warned = eventually("a Warning Event naming the quota", LIMIT, async || {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ReplicaFailure"))
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    let r = rollouts.get("web").await.expect("the rollout");
    let status = r.status.expect("status");
    assert_eq!(
        status.phase,
        RolloutPhase::Progressing,
        "not rolled back for it"
    );
    assert_ne!(status.stable_revision, status.current_revision);
}

#[tokio::test]
async fn a_job_removed_by_its_ttl_while_the_operator_is_down_still_counts_as_succeeded() {
    let bed = testbed::shared();
    let ns = bed.namespace("ttl").await;
    let mut first = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let migrations: Api<MigrationJob> = Api::namespaced(client.clone(), &ns.name);
    let mj: MigrationJob = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": "expand"},
        "spec": {"ttlSecondsAfterFinished": 0,
            "template": {"metadata": {"annotations": {"sim.cutover.dev/duration": "4s"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}
    }))
    .expect("a migration");
    migrations
        .create(&PostParams::default(), &mj)
        .await
        .expect("created");
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let job_name = eventually("the migration's Job runs", LIMIT, async || {
        let name = migrations.get("expand").await.ok()?.status?.job_name?;
        jobs.get_opt(&name).await.ok()??;
        Some(name)
    })
    .await;
    // Down while the Job runs, completes, and its TTL of 0 s asks for its deletion.
    first.kill();
    eventually(
        "the TTL controller deletes the finished Job",
        LIMIT,
        async || {
            let job = jobs.get_opt(&job_name).await.ok()?;
            match job {
                // Held by the finalizer until the result is recorded.
                Some(j) => j.metadata.deletion_timestamp.map(|_| ()),
                None => panic!("the Job went before its result was recorded"),
            }
        },
    )
    .await;
    let _second = bed.operator(&ns.name, &[]);
    let status = eventually("the migration recorded as Succeeded", LIMIT, async || {
        let s = migrations.get("expand").await.ok()?.status?;
        matches!(s.phase, MigrationPhase::Succeeded | MigrationPhase::Failed).then_some(s)
    })
    .await;
    assert_eq!(status.phase, MigrationPhase::Succeeded, "{status:?}");
    eventually("then the Job goes", LIMIT, async || {
        jobs.get_opt(&job_name).await.ok()?.is_none().then_some(())
    })
    .await;
}

/// Runs the migration `expand` with `spec` in a namespace of its own until it fails, and
/// returns the status message.
async fn failure_message(prefix: &str, spec: serde_json::Value) -> String {
    let bed = testbed::shared();
    let ns = bed.namespace(prefix).await;
    let _op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let migrations: Api<MigrationJob> = Api::namespaced(client.clone(), &ns.name);
    let mj: MigrationJob = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob", "metadata": {"name": "expand"},
        "spec": spec
    }))
    .expect("a migration");
    migrations
        .create(&PostParams::default(), &mj)
        .await
        .expect("created");
    let status = eventually("the migration fails", LIMIT, async || {
        let s = migrations.get("expand").await.ok()?.status?;
        (s.phase == MigrationPhase::Failed).then_some(s)
    })
    .await;
    status.message.unwrap_or_default()
}

/// A migration that fails with `restartPolicy: OnFailure` restarts inside one pod, which
/// never reaches `Failed` and is deleted by the Job controller as the Job fails; its
/// failure's log is the container's previous run, kept at the restart.
#[tokio::test]
async fn a_migration_failing_on_failure_restarts_reports_its_log() {
    let message = failure_message(
        "onfailure",
        json!({"backoffLimit": 1,
            "template": {"metadata": {"annotations": {
                    "sim.cutover.dev/duration": "2s", "sim.cutover.dev/fail-attempts": "always",
                    "sim.cutover.dev/log": "applying 0042_add_email.sql\nERROR: column \"email\" already exists"}},
                "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "m", "image": "m:1"}]}}}),
    )
    .await;
    assert!(
        message.contains("column \"email\" already exists"),
        "the failed run's log is in the message: {message}"
    );
}

/// A migration stopped by its deadline: the Job controller deletes its pod — and the log —
/// the moment the deadline passes, so the log kept shortly before it is reported.
#[tokio::test]
async fn a_migration_stopped_by_its_deadline_reports_its_log() {
    let message = failure_message(
        "deadline",
        json!({"timeoutSeconds": 6,
            "template": {"metadata": {"annotations": {
                    "sim.cutover.dev/duration": "120s",
                    "sim.cutover.dev/log": "applying 0043_backfill.sql\nwaiting for lock on table orders"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}),
    )
    .await;
    assert!(message.contains("DeadlineExceeded"), "{message}");
    assert!(
        message.contains("waiting for lock on table orders"),
        "the log kept before the deadline is in the message: {message}"
    );
}
