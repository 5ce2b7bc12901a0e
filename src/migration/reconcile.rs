//! The I/O shell of the MigrationJob controller: observe the migration, its Jobs, the lock
//! and the Rollouts it contracts for; call the pure plan; record status before creating a
//! Job (server-side apply, named by the spec's hash, so it can never start twice).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, LogParams, Patch, PatchParams},
    runtime::{Controller, controller::Action as Requeue, reflector::ObjectRef, watcher},
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::plan::{self, Action, JobObserved, Lock, Observed, Snapshot};
use crate::{
    api::{
        FIELD_MANAGER, LABEL_MIGRATION, LOG_TAIL_BYTES, MigrationJob, MigrationPhase, Rollout,
        validate,
    },
    controller::{
        Context, Error,
        cache::Cache,
        fair::{FairGate, Urgency},
        reconcile::{error_policy, gated, instrumented, requeue_at, runtime_config},
        shell::{self, Recorded},
    },
};

/// Name of this controller in metrics and logs.
pub const CONTROLLER: &str = "migrationjob";
/// Finalizer that removes running Jobs before a MigrationJob goes.
pub const FINALIZER: &str = "cutover.dev/migration-jobs";
/// Finalizer on each Job a migration runs, held until the Job's result is recorded in the
/// MigrationJob's status: `ttlSecondsAfterFinished` (the TTL controller respects
/// finalizers) can then never remove a finished Job before its result was read, which
/// would make a migration that succeeded look deleted.
pub const JOB_FINALIZER: &str = "cutover.dev/migration-result";

type Guarded = kube::core::DeserializeGuard<MigrationJob>;

/// Whose writes every reconcile's reads wait for: the statuses of all MigrationJobs, as
/// one migration's lock depends on the others' phases.
const EVERYONE: &str = "*";

/// The watch caches a MigrationJob's reconcile reads from.
pub struct Reads {
    /// The MigrationJobs (the controller's own objects).
    migrations: Arc<Cache<Guarded>>,
    /// The Jobs the MigrationJobs own (labelled with their MigrationJob).
    jobs: Arc<Cache<Job>>,
    /// The Rollouts, whose promotion releases contract migrations.
    rollouts: Arc<Cache<RolloutGuarded>>,
    /// The migration Jobs' pods (labelled with their MigrationJob): their restarts, and
    /// which one's log tells a failure.
    pods: Arc<Cache<Pod>>,
    /// Log tails of running Jobs (by `namespace/job`), with the pods' restarts when kept:
    /// kept at each restart and shortly before the deadline, because when the Job fails the
    /// Job controller deletes its pods, and their logs go with them.
    logs: Mutex<HashMap<String, (i32, String)>>,
    /// The Namespaces served, for their freeze.
    namespaces: Arc<Cache<k8s_openapi::api::core::v1::Namespace>>,
}

impl Reads {
    fn kept_log(&self, key: &str) -> Option<(i32, String)> {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn keep_log(&self, key: String, log: Option<(i32, String)>) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        match log {
            Some(log) => logs.insert(key, log),
            None => logs.remove(&key),
        };
    }
}

type RolloutGuarded = kube::core::DeserializeGuard<Rollout>;

/// Runs the MigrationJob controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    ctx.metrics.start(CONTROLLER);
    let client = ctx.client.clone();
    let namespaces = ctx.config.namespaces.clone();
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    // One gate for every namespace's controller: the limit and the turns are global.
    let gate = FairGate::new(usize::from(ctx.config.concurrency));
    let controllers = scopes.into_iter().map(|ns| {
        let (mjs, jobs, rollouts): (Api<Guarded>, Api<Job>, Api<RolloutGuarded>) = match &ns {
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
            ),
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
        };
        let metrics = ctx.metrics.clone();
        let any = watcher::Config::default().any_semantic();
        let (migrations, mj_events) =
            Cache::watch("MigrationJob", mjs, any, (), false, metrics.clone());
        let labelled = watcher::Config::default().labels(LABEL_MIGRATION);
        let (jobs, job_events) = Cache::watch("Job", jobs, labelled, (), false, metrics.clone());
        let (rollouts, rollout_events) = Cache::watch(
            "Rollout",
            rollouts,
            watcher::Config::default(),
            (),
            false,
            metrics.clone(),
        );
        let pods_api: Api<Pod> = match &ns {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        };
        let labelled = watcher::Config::default().labels(LABEL_MIGRATION);
        let (pods, pod_events) = Cache::watch("Pod", pods_api, labelled, (), false, metrics);
        let (namespaces, namespace_events) =
            crate::controller::freeze::watch(&client, ns.as_deref(), ctx.metrics.clone());
        let controller = Controller::for_stream(mj_events, migrations.store());
        let store = controller.store();
        let reads = Arc::new(Reads {
            migrations,
            jobs,
            rollouts,
            pods,
            logs: Mutex::new(HashMap::new()),
            namespaces,
        });
        let ctx = ctx.clone();
        let token = shutdown.clone();
        let reconcile = gated(gate.clone(), controller.store(), urgency, {
            move |mj, ctx| reconcile(mj, ctx, reads.clone())
        });
        controller
            .owns_stream(job_events)
            // A migration's container that restarts (restartPolicy OnFailure) wakes it, so
            // the failed run's log is kept while the kubelet still has it.
            .watches_stream(pod_events, |pod: Pod| {
                let migration = pod.labels().get(LABEL_MIGRATION).cloned();
                let ns = pod.namespace();
                migration.map(|name| {
                    let r = ObjectRef::<Guarded>::new(&name);
                    match &ns {
                        Some(ns) => r.within(ns),
                        None => r,
                    }
                })
            })
            // A Rollout that becomes fully promoted releases the contract migrations it names.
            .watches_stream(rollout_events, |rollout: RolloutGuarded| {
                let ns = rollout.namespace();
                rollout
                    .0
                    .ok()
                    .and_then(|r| r.spec.migrations)
                    .map(|m| m.after)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |name| {
                        let r = ObjectRef::<Guarded>::new(&name);
                        match &ns {
                            Some(ns) => r.within(ns),
                            None => r,
                        }
                    })
            })
            // A freeze lifted starts the migrations it held.
            .watches_stream(
                namespace_events,
                move |n: k8s_openapi::api::core::v1::Namespace| {
                    let ns = Some(n.name_any());
                    store
                        .state()
                        .into_iter()
                        .filter(|g| g.0.as_ref().is_ok_and(|m| m.namespace() == ns))
                        .map(|g| ObjectRef::from_obj(g.as_ref()))
                        .collect::<Vec<_>>()
                },
            )
            .with_config(runtime_config())
            .graceful_shutdown_on(async move { token.cancelled().await })
            .run(reconcile, on_error, ctx)
            .for_each(|_| async {})
    });
    futures::future::join_all(controllers).await;
}

/// A MigrationJob whose spec changed since it was last observed goes ahead.
fn urgency(mj: &Guarded) -> Urgency {
    match &mj.0 {
        Ok(m) if m.metadata.generation != m.status.as_ref().and_then(|s| s.observed_generation) => {
            Urgency::Person
        }
        _ => Urgency::Routine,
    }
}

fn on_error(mj: Arc<Guarded>, error: &Error, ctx: Arc<Context>) -> Requeue {
    error_policy(CONTROLLER, mj.as_ref(), error, &ctx)
}

/// Reconciles one MigrationJob.
pub async fn reconcile(
    guarded: Arc<Guarded>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    match &guarded.0 {
        Ok(mj) => {
            instrumented(CONTROLLER, Arc::new(mj.clone()), ctx, |mj, ctx| {
                reconcile_migration(mj, ctx, reads)
            })
            .await
        }
        Err(invalid) => {
            tracing::warn!(
                migration = %invalid.metadata.name.clone().unwrap_or_default(),
                error = %invalid.error,
                "skipping a MigrationJob that cannot be read"
            );
            Ok(Requeue::await_change())
        }
    }
}

async fn reconcile_migration(
    mj: Arc<MigrationJob>,
    ctx: Arc<Context>,
    reads: Arc<Reads>,
) -> Result<Requeue, Error> {
    let ns = mj.namespace().unwrap_or_default();
    let name = mj.name_any();
    // Reads come from watch caches once they have seen this migration's own last writes.
    let owner = format!("{ns}/{name}");
    let api: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    if mj.meta().deletion_timestamp.is_some() {
        return finalize(&api, &jobs, &reads, &owner, &mj).await;
    }
    let problems: Vec<String> = shell::off_runtime(|| validate::migration(&mj.spec))
        .iter()
        .map(ToString::to_string)
        .collect();
    if !problems.is_empty() {
        return shell::invalid(&api, &mj, mj.status.as_ref(), &ctx, &problems.join("; ")).await;
    }
    if shell::add_finalizer(&api, mj.as_ref(), FINALIZER).await? {
        // The write's own watch event brings the newer version to plan from.
        return Ok(Requeue::await_change());
    }
    let revision = plan::spec_revision(&mj.spec);
    let status = mj.status.clone().unwrap_or_default();
    let job_name = plan::job_name(&name, &revision, status.retries.unwrap_or(0));
    let job_object = reads.jobs.get(&jobs, &owner, &ns, &job_name).await?;
    let rollback_object = match &status.rollback_job_name {
        Some(n) => reads.jobs.get(&jobs, &owner, &ns, n).await?,
        None => None,
    };
    let backup_object = match &mj.spec.backup {
        Some(_) => {
            let n = plan::backup_job_name(&name, &revision, status.retries.unwrap_or(0));
            reads.jobs.get(&jobs, &owner, &ns, &n).await?
        }
        None => None,
    };
    let job = job_object.as_ref().map(observe);
    let rollback_job = rollback_object.as_ref().map(observe);
    let backup_job = backup_object.as_ref().map(observe);
    // A running Job's log is kept after each restart of its container and near its
    // deadline: when the Job fails, the Job controller deletes its pods, and their logs go
    // with them.
    let mut snapshot_at: Option<jiff::Timestamp> = None;
    for j in [&job, &rollback_job, &backup_job].into_iter().flatten() {
        let key = format!("{ns}/{}", j.name);
        let pods = job_pods(&ctx, &reads, &owner, &ns, &j.name).await;
        let restarts = pods.iter().map(restarts_of).max().unwrap_or(0);
        let kept = reads.kept_log(&key).map_or(0, |(r, _)| r);
        let timeout = mj.spec.timeout_seconds();
        match plan::log_snapshot(j, timeout, (restarts, kept), ctx.clock.now()) {
            Snapshot::Now => {
                if let Some(tail) = log_tail(&ctx.client, &ns, pods).await {
                    reads.keep_log(key, Some((restarts, tail)));
                }
            }
            Snapshot::At(due) => snapshot_at = Some(snapshot_at.map_or(due, |s| s.min(due))),
            Snapshot::Never => {}
        }
    }
    let lock = match &mj.spec.lock_key {
        Some(_) => {
            let guarded: Api<Guarded> = Api::namespaced(ctx.client.clone(), &ns);
            let all: Vec<MigrationJob> = reads
                .migrations
                .all(&guarded, EVERYONE, &ns, |_| true)
                .await?
                .into_iter()
                .filter_map(|g| g.0.ok())
                .collect();
            plan::lock_for(&mj, &all)
        }
        None => Lock::Free,
    };
    let held_by_rollout = contract_hold(&ctx, &reads, &owner, &ns, &name).await?;
    let failing = [&job, &rollback_job, &backup_job]
        .into_iter()
        .flatten()
        .find(|j| matches!(&j.finished, Some((false, _, _))))
        .filter(|_| status.phase != MigrationPhase::Failed);
    let failed_log = match failing {
        Some(j) => {
            let pods = job_pods(&ctx, &reads, &owner, &ns, &j.name).await;
            match log_tail(&ctx.client, &ns, pods).await {
                Some(tail) => Some(tail),
                None => reads
                    .kept_log(&format!("{ns}/{}", j.name))
                    .map(|(_, log)| log),
            }
        }
        None => None,
    };
    let observed = Observed {
        migration: &mj,
        revision: revision.clone(),
        job,
        rollback_job,
        lock,
        held_by_rollout,
        backup_job,
        failed_log,
        freeze: crate::controller::freeze::read(&reads.namespaces, &ctx.client, &owner, &ns)
            .await?,
        now: ctx.clock.now(),
    };
    // Off the runtime, as the other controllers plan: a MigrationJob's windows are the
    // author's schedules, whose search for the next opening is bounded but not free.
    let decision = shell::off_runtime(|| plan::plan(&observed));
    // Status first: the Job's name is recorded before it is created.
    // Conditional on the version read, so a stale read never creates a second Job.
    let recorded = shell::apply_status(
        &api,
        mj.as_ref(),
        mj.status.as_ref(),
        &decision.status,
        !decision.notes.is_empty(),
    )
    .await?;
    match &recorded {
        Recorded::Stale => return Ok(Requeue::requeue(shell::STALE_RETRY)),
        // Every migration's lock reads this status: their reads wait for it.
        Recorded::Written(rv) => reads.migrations.wrote_version(EVERYONE, rv),
        Recorded::Unchanged => {}
    }
    // The status now holds what this reconcile saw of its finished Jobs: they may go.
    for finished in [&job_object, &rollback_object]
        .into_iter()
        .flatten()
        .filter(|j| observe(j).finished.is_some())
    {
        if let Some(written) = shell::remove_finalizer(&jobs, finished, JOB_FINALIZER).await? {
            reads.jobs.wrote(&owner, &written);
        }
        reads.keep_log(format!("{ns}/{}", finished.name_any()), None);
    }
    for action in &decision.actions {
        let (job, kind) = match action {
            Action::CreateJob { name } => (name, JobKind::Migrate),
            Action::CreateRollbackJob { name } => (name, JobKind::Rollback),
            Action::CreateBackupJob { name } => (name, JobKind::Backup),
        };
        let body = job_manifest(&mj, job, &revision, kind)?;
        let written = jobs
            .patch(
                job,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await?;
        reads.jobs.wrote(&owner, &written);
    }
    for note in &decision.notes {
        publish(&ctx, &mj, note.reason, &note.message, note.warning).await;
    }
    let due = match (decision.requeue_at, snapshot_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(requeue_at(&ctx.clock, due))
}

fn observe(job: &Job) -> JobObserved {
    let status = job.status.clone().unwrap_or_default();
    let finished = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        .map(|c| {
            (
                c.type_ == "Complete",
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        });
    JobObserved {
        name: job.name_any(),
        active: status.active.unwrap_or(0),
        succeeded: status.succeeded.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
        start: status.start_time.map(|t| t.0),
        completion: status.completion_time.map(|t| t.0),
        finished,
    }
}

/// Why a contract (`after`) migration must wait: a Rollout naming it is not fully promoted
/// with every older revision's pods gone.
async fn contract_hold(
    ctx: &Context,
    reads: &Reads,
    owner: &str,
    ns: &str,
    name: &str,
) -> Result<Option<String>, Error> {
    let rollouts: Api<RolloutGuarded> = Api::namespaced(ctx.client.clone(), ns);
    let list = reads.rollouts.all(&rollouts, owner, ns, |_| true).await?;
    for r in list.into_iter().filter_map(|g| g.0.ok()) {
        let names_it = r
            .spec
            .migrations
            .as_ref()
            .is_some_and(|m| m.after.iter().any(|a| a == name));
        if !names_it {
            continue;
        }
        let status = r.status.clone().unwrap_or_default();
        let caught_up = status.observed_generation == r.metadata.generation;
        let done = caught_up
            && status.contract_revision.is_some()
            && status.contract_revision == status.stable_revision;
        if !done {
            return Ok(Some(format!(
                "waiting for Rollout {} to be fully promoted with no pod of an older revision left",
                r.name_any()
            )));
        }
    }
    Ok(None)
}

/// How often a pod's containers restarted.
fn restarts_of(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The pods of the Job `job`.
async fn job_pods(ctx: &Context, reads: &Reads, owner: &str, ns: &str, job: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    reads
        .pods
        .list(&pods, owner, ns, ("batch.kubernetes.io/job-name", job))
        .await
        .unwrap_or_default()
}

/// Which run of a Job's pods holds the failure: a pod that failed, else the one whose
/// container restarted most (`restartPolicy: OnFailure` restarts inside the pod, which
/// never fails itself), newest first. Pods being deleted — by the Job controller after a
/// deadline or when the Job failed — count: their logs are there until they are gone.
fn failed_run(pods: Vec<Pod>) -> Option<(Pod, bool)> {
    let restarts = restarts_of;
    let terminated = |p: &Pod| -> bool {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
            })
    };
    let pod = pods.into_iter().max_by_key(|p| {
        (
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
            restarts(p),
            p.metadata.creation_timestamp.clone().map(|t| t.0),
        )
    })?;
    // A container restarted and running again: its failed run is the previous one.
    let previous = restarts(&pod) > 0 && !terminated(&pod);
    Some((pod, previous))
}

/// The last bytes of the log of the run of a Job's `pods` that failed (or of its last one).
pub(crate) async fn log_tail(
    client: &kube::Client,
    ns: &str,
    pods_of_job: Vec<Pod>,
) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (pod, previous) = failed_run(pods_of_job)?;
    let params = LogParams {
        tail_lines: Some(50),
        previous,
        ..Default::default()
    };
    let text = match pods.logs(&pod.name_any(), &params).await {
        Ok(text) => text,
        // No previous container kept (its log rotated away): the current one's log.
        Err(_) if previous => {
            let current = LogParams {
                previous: false,
                ..params
            };
            pods.logs(&pod.name_any(), &current).await.ok()?
        }
        Err(_) => return None,
    };
    let start = text.len().saturating_sub(LOG_TAIL_BYTES);
    let start = (start..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    Some(text[start..].trim_end().to_string())
}

/// Which of a migration's Jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    /// The up migration.
    Migrate,
    /// The down migration.
    Rollback,
    /// The backup before the up migration.
    Backup,
}

impl JobKind {
    fn role(self) -> &'static str {
        match self {
            JobKind::Migrate => "migrate",
            JobKind::Rollback => "rollback",
            JobKind::Backup => "backup",
        }
    }
}

fn job_manifest(
    mj: &MigrationJob,
    name: &str,
    revision: &str,
    kind: JobKind,
) -> Result<Value, Error> {
    let owner = mj
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Internal("the MigrationJob has no uid yet".into()))?;
    let source = match kind {
        JobKind::Migrate => &mj.spec.template,
        JobKind::Rollback => mj
            .spec
            .rollback
            .as_ref()
            .map(|r| &r.template)
            .ok_or_else(|| Error::Internal("no rollback template".into()))?,
        JobKind::Backup => mj
            .spec
            .backup
            .as_ref()
            .map(|b| &b.template)
            .ok_or_else(|| Error::Internal("no backup template".into()))?,
    };
    let mut template = serde_json::to_value(source)?;
    let migration = mj.name_any();
    template["metadata"]["labels"][LABEL_MIGRATION] = json!(migration);
    if template.pointer("/spec/restartPolicy").is_none() {
        template["spec"]["restartPolicy"] = json!("Never");
    }
    let mut spec = json!({
        "backoffLimit": mj.spec.backoff_limit(),
        "activeDeadlineSeconds": mj.spec.timeout_seconds(),
        "template": template,
    });
    if let Some(ttl) = mj.spec.ttl_seconds_after_finished {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "labels": {LABEL_MIGRATION: migration, "cutover.dev/migration-revision": revision,
                "cutover.dev/role": kind.role()},
            "ownerReferences": [owner],
            "finalizers": [JOB_FINALIZER],
        },
        "spec": spec,
    }))
}

/// Deletes the migration's running Jobs, then lets the MigrationJob go.
async fn finalize(
    api: &Api<MigrationJob>,
    jobs: &Api<Job>,
    reads: &Reads,
    owner: &str,
    mj: &MigrationJob,
) -> Result<Requeue, Error> {
    if !mj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Requeue::await_change());
    }
    let ns = mj.namespace().unwrap_or_default();
    let owned = reads
        .jobs
        .list(jobs, owner, &ns, (LABEL_MIGRATION, &mj.name_any()))
        .await?;
    for job in owned {
        let running = job.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0;
        let finished = observe(&job).finished.is_some();
        if running || !finished {
            jobs.delete(&job.name_any(), &DeleteParams::background())
                .await?;
            reads.jobs.deleted(owner, &ns, &job.name_any());
        }
        // Nothing is left to record: the Job may go whenever it is deleted.
        if let Some(written) = shell::remove_finalizer(jobs, &job, JOB_FINALIZER).await? {
            reads.jobs.wrote(owner, &written);
        }
    }
    shell::remove_finalizer(api, mj, FINALIZER).await?;
    Ok(Requeue::await_change())
}

async fn publish(ctx: &Context, mj: &MigrationJob, reason: &str, message: &str, warning: bool) {
    shell::publish(ctx, &mj.object_ref(&()), reason, message, warning).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, restarts: i32, running: bool, created: i64) -> Pod {
        let state = if running {
            json!({"running": {}})
        } else {
            json!({"terminated": {"exitCode": 1}})
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": jiff::Timestamp::from_second(created).map(|t| t.to_string()).unwrap_or_default()},
            "status": {"phase": phase, "containerStatuses": [{"name": "m", "image": "i", "imageID": "", "ready": running,
                "restartCount": restarts, "state": state}]}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn a_failed_pod_is_read_as_it_is() {
        let (p, previous) = failed_run(vec![
            pod("ok", "Succeeded", 0, false, 10),
            pod("failed", "Failed", 0, false, 5),
        ])
        .unwrap_or_default();
        assert_eq!((p.name_any().as_str(), previous), ("failed", false));
    }

    #[test]
    fn a_pod_restarting_on_failure_is_read_from_its_previous_run() {
        let (p, previous) = failed_run(vec![
            pod("fresh", "Running", 0, true, 20),
            pod("restarting", "Running", 3, true, 10),
        ])
        .unwrap_or_default();
        assert_eq!((p.name_any().as_str(), previous), ("restarting", true));
    }

    #[test]
    fn a_pod_stopped_after_restarts_is_read_from_its_last_run() {
        let (p, previous) =
            failed_run(vec![pod("stopped", "Running", 2, false, 10)]).unwrap_or_default();
        assert_eq!((p.name_any().as_str(), previous), ("stopped", false));
    }

    #[test]
    fn no_pod_no_log() {
        assert!(failed_run(Vec::new()).is_none());
    }
}
