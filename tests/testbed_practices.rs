//! Runbook practices the operator carries out, on the real control plane: config that
//! rolls out like code (a ConfigMap edited with `kubectl` becomes a new revision with its
//! own copy, an abort serves the old copy again, and the copies go with their revisions
//! through Kubernetes' garbage collector), and the backup before a migration.

#[path = "support/testbed.rs"]
mod testbed;

use std::time::Duration;

use cutover::api::{MigrationJob, MigrationPhase, Rollout, RolloutPhase, RolloutStatus};
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::ConfigMap};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use testbed::eventually;

const LIMIT: Duration = Duration::from_secs(120);

async fn status_where(
    api: &Api<Rollout>,
    what: &str,
    ok: impl Fn(&RolloutStatus) -> bool,
) -> RolloutStatus {
    eventually(what, LIMIT, async || {
        let r = api.get("web").await.ok()?;
        let s = r.status?;
        (s.observed_generation == r.metadata.generation && ok(&s)).then_some(s)
    })
    .await
}

/// The ConfigMap the pods of `revision` read, and its LOG_LEVEL.
async fn served_config(
    deploys: &Api<Deployment>,
    maps: &Api<ConfigMap>,
    revision: &str,
) -> (String, String) {
    let d = deploys
        .get(&format!("web-{revision}"))
        .await
        .expect("the revision's Deployment");
    let read = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env_from)
        .and_then(|e| e.into_iter().next())
        .and_then(|e| e.config_map_ref)
        .map(|r| r.name)
        .expect("the pods read a ConfigMap");
    let cm = maps.get(&read).await.expect("the copy exists");
    let level = cm
        .data
        .and_then(|d| d.get("LOG_LEVEL").cloned())
        .unwrap_or_default();
    (read, level)
}

#[tokio::test]
async fn a_config_change_rolls_out_as_a_revision_and_an_abort_serves_the_old_config() {
    let bed = testbed::shared();
    let ns = bed.namespace("config").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "web-config"}, "data": {"LOG_LEVEL": "info"}}),
    )
    .expect("a ConfigMap");
    maps.create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "configRollout": true, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1",
                    "envFrom": [{"configMapRef": {"name": "web-config"}}]}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}}
    }))
    .expect("a rollout");
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let first = status_where(&api, "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    let stable = first.stable_revision.expect("stable");
    assert_eq!(
        served_config(&deploys, &maps, &stable).await,
        (format!("web-config-{stable}"), "info".to_string()),
        "{}",
        op.log_tail()
    );

    // Only the ConfigMap changes, with kubectl: a new revision, through the canary.
    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "patch",
        "configmap",
        "web-config",
        "--type=merge",
        "-p",
        r#"{"data":{"LOG_LEVEL":"debug"}}"#,
    ]);
    let canary = status_where(&api, "the config's canary at its gate", |s| {
        s.phase == RolloutPhase::Paused && s.current_revision.as_deref() != Some(stable.as_str())
    })
    .await;
    let new = canary.current_revision.expect("current");
    assert_eq!(canary.canary_weight, Some(50));
    assert_eq!(
        served_config(&deploys, &maps, &new).await,
        (format!("web-config-{new}"), "debug".to_string())
    );
    assert_eq!(
        served_config(&deploys, &maps, &stable).await.1,
        "info",
        "the stable pods keep the old config"
    );

    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "annotate",
        "rollouts.cutover.dev",
        "web",
        "cutover.dev/abort=1",
    ]);
    let aborted = status_where(&api, "Aborted", |s| s.phase == RolloutPhase::Aborted).await;
    assert_eq!(aborted.stable_revision.as_deref(), Some(stable.as_str()));
    eventually("the config's canary scaled away", LIMIT, async || {
        let d = deploys.get(&format!("web-{new}")).await.ok()?;
        (d.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    assert_eq!(served_config(&deploys, &maps, &stable).await.1, "info");

    // Copies go with their revisions: deleting the Rollout deletes its Deployments, and
    // Kubernetes' garbage collector the copies they own; the ConfigMap itself stays.
    api.delete("web", &Default::default())
        .await
        .expect("deleted");
    eventually("the copies collected", LIMIT, async || {
        let list = maps.list(&ListParams::default()).await.ok()?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .filter(|n| n.starts_with("web-config"))
            .collect();
        (names == ["web-config"]).then_some(())
    })
    .await;
}

fn backed_up_migration(backup_annotations: serde_json::Value) -> MigrationJob {
    serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "MigrationJob",
        "metadata": {"name": "add-column"},
        "spec": {"requireRollback": true,
            "backup": {"template": {"metadata": {"annotations": backup_annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "dump", "image": "postgres:16",
                    "command": ["pg_dump", "--format=custom", "--file=/backup/orders.dump"]}]}}},
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": "migrate:1", "args": ["up"]}]}},
            "rollback": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": "migrate:1", "args": ["down"]}]}}}}
    }))
    .expect("a migration")
}

async fn phase_of(api: &Api<MigrationJob>, phase: MigrationPhase) -> MigrationJob {
    eventually(&format!("migration {phase:?}"), LIMIT, async || {
        let m = api.get("add-column").await.ok()?;
        (m.status.as_ref()?.phase == phase).then_some(m)
    })
    .await
}

async fn jobs_by_role(jobs: &Api<Job>, role: &str) -> usize {
    jobs.list(&ListParams::default().labels(&format!("cutover.dev/role={role}")))
        .await
        .map(|l| l.items.len())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_migration_runs_only_after_its_backup_succeeded() {
    let bed = testbed::shared();
    let ns = bed.namespace("backup").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<MigrationJob> = Api::namespaced(client.clone(), &ns.name);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    let failing = json!({"sim.cutover.dev/fail-attempts": "always",
        "sim.cutover.dev/log": "pg_dump: error: connection to server failed"});
    api.create(&PostParams::default(), &backed_up_migration(failing))
        .await
        .expect("created");
    let failed = phase_of(&api, MigrationPhase::Failed).await;
    let message = failed.status.and_then(|s| s.message).unwrap_or_default();
    assert!(
        message.starts_with("backup Job add-column-bk-"),
        "{message}\n{}",
        op.log_tail()
    );
    assert!(message.contains("the migration did not run"), "{message}");
    assert!(
        message.contains("pg_dump: error: connection to server failed"),
        "{message}"
    );
    assert_eq!(
        jobs_by_role(&jobs, "migrate").await,
        0,
        "no migration without a backup"
    );

    // The backup fixed and the migration retried: a new backup, then the migration.
    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "patch",
        "migrationjobs.cutover.dev",
        "add-column",
        "--type=merge",
        "-p",
        r#"{"spec":{"backup":{"template":{"metadata":{"annotations":null}}}}}"#,
    ]);
    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "annotate",
        "migrationjobs.cutover.dev",
        "add-column",
        "cutover.dev/retry=1",
    ]);
    let done = phase_of(&api, MigrationPhase::Succeeded).await;
    let status = done.status.expect("status");
    assert_eq!(status.backed_up_revision, status.revision);
    assert_eq!(jobs_by_role(&jobs, "backup").await, 2);
    assert_eq!(jobs_by_role(&jobs, "migrate").await, 1);

    // requireRollback: a migration without a down Job is refused.
    let mut careless = backed_up_migration(json!({}));
    careless.metadata.name = Some("no-down".into());
    careless.spec.rollback = None;
    api.create(&PostParams::default(), &careless)
        .await
        .expect("stored");
    eventually("InvalidSpec", LIMIT, async || {
        let m = api.get("no-down").await.ok()?;
        let c = m
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "InvalidSpec" && c.status == "True")?;
        c.message.contains("requireRollback").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_failed_bake_restores_the_previous_revision_and_the_log_says_so() {
    let bed = testbed::shared();
    let ns = bed.namespace("bake").await;
    let op = bed.operator(&ns.name, &[]);
    let client = bed.admin().await;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns.name);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    // The bake's smoke test fails: the node agent fails its pod, with a log line.
    let smoke = json!({"metrics": [{"name": "smoke", "count": 1, "job": {"spec": {"template": {
        "metadata": {"annotations": {"sim.cutover.dev/duration": "1s",
            "sim.cutover.dev/fail-attempts": "always",
            "sim.cutover.dev/log": "GET /checkout 500"}},
        "spec": {"containers": [{"name": "smoke", "image": "curlimages/curl:8",
            "args": ["http://$(CUTOVER_SERVICE)/checkout"]}]}}}}}]});
    let r: Rollout = serde_json::from_value(json!({
        "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]}},
            "bake": {"duration": "1h", "analysis": smoke},
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}}}
    }))
    .expect("a rollout");
    api.create(&PostParams::default(), &r)
        .await
        .expect("created");
    let first = status_where(&api, "Healthy", |s| s.phase == RolloutPhase::Healthy).await;
    let old = first.stable_revision.expect("stable");
    bed.kubectl_ok(&[
        "-n",
        &ns.name,
        "patch",
        "rollouts.cutover.dev",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"web:2"}]}}}}"#,
    ]);
    let undone = status_where(&api, "rolled back by its bake", |s| {
        s.phase == RolloutPhase::Aborted
    })
    .await;
    assert_eq!(
        undone.stable_revision.as_deref(),
        Some(old.as_str()),
        "{}",
        op.log_tail()
    );
    let new = undone.current_revision.clone().expect("current");
    let bake = undone.bake.clone().expect("the bake");
    assert_eq!(
        (bake.revision.as_str(), bake.previous.as_str(), bake.phase),
        (
            new.as_str(),
            old.as_str(),
            cutover::api::BakePhase::RolledBack
        )
    );
    assert!(
        undone
            .conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.status == "True" && c.reason == "BakeFailed"),
        "{:?}",
        undone.conditions
    );
    // The previous revision serves in full again; the baked one is scaled away.
    eventually("the previous revision restored", LIMIT, async || {
        let replicas = |d: Deployment| d.spec.and_then(|s| s.replicas);
        let old_d = replicas(deploys.get(&format!("web-{old}")).await.ok()?);
        let new_d = replicas(deploys.get(&format!("web-{new}")).await.ok()?);
        (old_d == Some(2) && new_d == Some(0)).then_some(())
    })
    .await;
    // The deployment log: who released it, and that its bake undid it, with why.
    let release = undone.history.last().cloned().expect("a release");
    assert_eq!(release.revision, new);
    assert_eq!(release.result, cutover::api::ReleaseResult::RolledBack);
    assert_eq!(release.started_by.as_deref(), Some("kubectl-patch"));
    assert!(
        release
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("GET /checkout 500")),
        "{release:?}"
    );
    let described = bed.kubectl_ok(&["-n", &ns.name, "describe", "rollouts.cutover.dev", "web"]);
    assert!(described.contains("BakeFailed"), "{described}");
}
