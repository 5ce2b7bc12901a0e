//! The pure decision of the MigrationJob controller: the migration, its Jobs, the lock and
//! the time in; the Job to create and the status to record out.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    ANNOTATION_MIGRATION_RETRY, ANNOTATION_ROLLBACK, MigrationJob, MigrationJobSpec,
    MigrationJobStatus, MigrationPhase, conditions as cond,
};
use crate::rollout::revision::hash_text;

/// Longest Job name: Job names become pod labels, which are at most 63 characters.
const MAX_JOB_NAME: usize = 63;

/// The revision of a migration: a hash of what it runs (template, timeout, retries). The
/// lock, TTL and rollback do not change what the migration does, so they are left out.
pub fn spec_revision(spec: &MigrationJobSpec) -> String {
    let text =
        serde_json::to_string(&(&spec.template, spec.timeout_seconds(), spec.backoff_limit()))
            .unwrap_or_default();
    hash_text(&text)
}

fn bounded(prefix: &str, suffix: &str) -> String {
    let room = MAX_JOB_NAME.saturating_sub(suffix.len() + 1);
    let prefix: String = prefix.chars().take(room).collect();
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

/// Name of the Job running `revision` (and its `retries`-th retry).
pub fn job_name(migration: &str, revision: &str, retries: i32) -> String {
    if retries == 0 {
        bounded(migration, revision)
    } else {
        bounded(migration, &format!("{revision}-{retries}"))
    }
}

/// Name of the backup Job taken before `revision` (and its `retries`-th retry) runs.
pub fn backup_job_name(migration: &str, revision: &str, retries: i32) -> String {
    bounded(migration, &format!("bk-{revision}-{retries}"))
}

/// Name of the rollback Job for one rollback request.
pub fn rollback_job_name(migration: &str, revision: &str, request: &str) -> String {
    bounded(
        migration,
        &format!("rb-{}", hash_text(&format!("{revision}/{request}"))),
    )
}

/// A Job as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobObserved {
    /// Its name.
    pub name: String,
    /// Pods running.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// When it started.
    pub start: Option<Timestamp>,
    /// When it completed.
    pub completion: Option<Timestamp>,
    /// `Some((complete, reason, message))` once it finished.
    pub finished: Option<(bool, String, String)>,
}

/// Who holds the lock of this migration's `lockKey`, if anyone else does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Free (or no lock key).
    Free,
    /// Held by, or promised first to, this other MigrationJob.
    HeldBy(String),
}

/// Everything the plan looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The MigrationJob.
    pub migration: &'a MigrationJob,
    /// Its current spec revision.
    pub revision: String,
    /// The Job of the current revision and retry, if it exists.
    pub job: Option<JobObserved>,
    /// The Job of the current rollback request, if it exists.
    pub rollback_job: Option<JobObserved>,
    /// The lock.
    pub lock: Lock,
    /// Why the migration must not start yet (a Rollout it contracts for is not done).
    pub held_by_rollout: Option<String>,
    /// The backup Job of the current revision and retry, if it exists.
    pub backup_job: Option<JobObserved>,
    /// The tail of the last failed pod's log, when a Job failed.
    pub failed_log: Option<String>,
    /// Why the MigrationJob's Namespace is frozen (its `cutover.dev/freeze` annotation).
    pub freeze: Option<String>,
    /// The time of the decision.
    pub now: Timestamp,
}

/// A Job to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create the migration Job.
    CreateJob {
        /// Its name.
        name: String,
    },
    /// Create the backup Job.
    CreateBackupJob {
        /// Its name.
        name: String,
    },
    /// Create the rollback Job.
    CreateRollbackJob {
        /// Its name.
        name: String,
    },
}

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// CamelCase reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
    /// A warning rather than normal.
    pub warning: bool,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Jobs to create.
    pub actions: Vec<Action>,
    /// Status to record.
    pub status: MigrationJobStatus,
    /// Events.
    pub notes: Vec<Note>,
    /// When to look again if nothing changes.
    pub requeue_at: Option<Timestamp>,
}

/// Seconds a waiting migration looks at the lock again; the holder finishing also wakes it.
pub const LOCK_RECHECK_SECONDS: i64 = 5;

struct Ctx<'a> {
    obs: &'a Observed<'a>,
    status: MigrationJobStatus,
    actions: Vec<Action>,
    notes: Vec<Note>,
    requeue_at: Option<Timestamp>,
}

impl Ctx<'_> {
    fn note(&mut self, reason: &'static str, message: impl Into<String>, warning: bool) {
        self.notes.push(Note {
            reason,
            message: message.into(),
            warning,
        });
    }

    fn ready(&mut self, status: &'static str, reason: &'static str, message: impl Into<String>) {
        cond::set(
            &mut self.status.conditions,
            cond::ConditionUpdate {
                type_: cond::READY,
                status,
                reason,
                message: message.into(),
            },
            self.obs.migration.metadata.generation,
            &Time(self.obs.now),
        );
    }

    fn request(&self, key: &str) -> Option<String> {
        self.obs
            .migration
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    }
}

fn duration_text(from: Timestamp, to: Timestamp) -> String {
    let secs = to.duration_since(from).as_secs().max(0);
    match (secs / 3600, (secs / 60) % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// Decides the next Job and the status of a MigrationJob whose spec passed validation.
pub fn plan(obs: &Observed<'_>) -> Plan {
    let mj = obs.migration;
    let mut status = mj.status.clone().unwrap_or_default();
    status.observed_generation = mj.metadata.generation;
    cond::remove(&mut status.conditions, cond::INVALID_SPEC);
    let mut ctx = Ctx {
        obs,
        status,
        actions: Vec::new(),
        notes: Vec::new(),
        requeue_at: None,
    };
    decide(&mut ctx);
    let health = crate::api::health::migration(&ctx.status);
    crate::api::health::record_progress(
        &mut ctx.status.conditions,
        &health,
        obs.migration.metadata.generation,
        &Time(obs.now),
    );
    Plan {
        actions: ctx.actions,
        status: ctx.status,
        notes: ctx.notes,
        requeue_at: ctx.requeue_at,
    }
}

fn decide(ctx: &mut Ctx<'_>) {
    let obs = ctx.obs;
    let name = obs.migration.metadata.name.clone().unwrap_or_default();
    let revision = obs.revision.clone();
    // A new spec starts over: a new Job, whatever happened to the old one.
    if ctx.status.revision.as_deref() != Some(revision.as_str()) {
        let first = ctx.status.revision.is_none();
        ctx.status.revision = Some(revision.clone());
        ctx.status.retries = None;
        ctx.status.attempts = None;
        ctx.status.start_time = None;
        ctx.status.completion_time = None;
        ctx.status.duration = None;
        ctx.status.message = None;
        ctx.status.phase = MigrationPhase::Pending;
        if !first {
            ctx.note("SpecChanged", format!("new revision {revision}"), false);
        }
    }
    if rollback(ctx, &name, &revision) {
        return;
    }
    if let Some(request) = ctx.request(ANNOTATION_MIGRATION_RETRY)
        && ctx.status.handled_retry.as_deref() != Some(request.as_str())
    {
        ctx.status.handled_retry = Some(request);
        if matches!(
            ctx.status.phase,
            MigrationPhase::Failed | MigrationPhase::RolledBack
        ) {
            ctx.status.retries = Some(ctx.status.retries.unwrap_or(0) + 1);
            ctx.status.succeeded_revision = None;
            ctx.status.phase = MigrationPhase::Pending;
            ctx.status.attempts = None;
            ctx.status.start_time = None;
            ctx.status.completion_time = None;
            ctx.status.duration = None;
            ctx.status.message = None;
            ctx.note(
                "Retried",
                format!("running revision {revision} again"),
                false,
            );
        }
    }
    if ctx.status.succeeded_revision.as_deref() == Some(revision.as_str()) {
        // Done for this spec: never rerun, even when the Job is gone.
        ctx.status.phase = MigrationPhase::Succeeded;
        ctx.status.lock_holder = None;
        ctx.ready(
            cond::TRUE,
            "Succeeded",
            format!("revision {revision} succeeded"),
        );
        return;
    }
    if matches!(
        ctx.status.phase,
        MigrationPhase::Failed | MigrationPhase::RolledBack
    ) {
        // Terminal for this spec until a retry or a new spec.
        return;
    }
    let job = ctx.status.job_name_for(&name, &revision);
    ctx.status.job_name = Some(job.clone());
    // A Job of another retry of this revision is not this run's.
    match obs.job.clone().filter(|j| j.name == job) {
        Some(j) => follow(ctx, &revision, &j),
        None if ctx.status.phase == MigrationPhase::Running && ctx.status.start_time.is_some() => {
            let message = format!("Job {job} disappeared while running");
            fail(ctx, "JobDeleted", message);
        }
        None => {
            if let Some(why) = &obs.held_by_rollout {
                ctx.status.phase = MigrationPhase::Pending;
                ctx.status.message = Some(why.clone());
                ctx.ready(cond::FALSE, "WaitingForRollout", why.clone());
                return;
            }
            // A migration not yet started waits for a window; one started runs to its end,
            // and a rollback never waits.
            let window =
                crate::window::gate(&obs.migration.spec.windows, obs.freeze.as_deref(), obs.now);
            if let Some(why) = window.message() {
                let message = format!("waiting for a deployment window: {why}");
                if ctx.status.message.as_deref() != Some(message.as_str()) {
                    ctx.note("WaitingForWindow", message.clone(), false);
                }
                ctx.status.phase = MigrationPhase::Pending;
                ctx.status.message = Some(message.clone());
                ctx.ready(cond::FALSE, "OutsideWindow", message);
                if let crate::window::Gate::Closed {
                    opens_at: Some(at), ..
                } = window
                {
                    ctx.requeue_at = Some(ctx.requeue_at.map_or(at, |r| r.min(at)));
                }
                return;
            }
            match &obs.lock {
                Lock::HeldBy(holder) => {
                    if ctx.status.phase != MigrationPhase::Waiting
                        || ctx.status.lock_holder.as_deref() != Some(holder)
                    {
                        ctx.note(
                            "WaitingForLock",
                            format!("lock held by MigrationJob {holder}"),
                            false,
                        );
                    }
                    ctx.status.phase = MigrationPhase::Waiting;
                    ctx.status.lock_holder = Some(holder.clone());
                    let message = format!("waiting for MigrationJob {holder} to release the lock");
                    ctx.status.message = Some(message.clone());
                    ctx.ready(cond::FALSE, "WaitingForLock", message);
                    ctx.requeue_at =
                        Some(obs.now + jiff::SignedDuration::from_secs(LOCK_RECHECK_SECONDS));
                }
                Lock::Free => {
                    if backing_up(ctx, &name, &revision) {
                        return;
                    }
                    ctx.actions.push(Action::CreateJob { name: job.clone() });
                    ctx.status.phase = MigrationPhase::Running;
                    ctx.status.lock_holder = None;
                    ctx.status.message = Some(format!("Job {job} created"));
                    ctx.ready(
                        cond::FALSE,
                        "Running",
                        format!("Job {job} runs revision {revision}"),
                    );
                    ctx.note(
                        "Started",
                        format!("Job {job} runs revision {revision}"),
                        false,
                    );
                }
            }
        }
    }
}

impl MigrationJobStatus {
    fn job_name_for(&self, migration: &str, revision: &str) -> String {
        job_name(migration, revision, self.retries.unwrap_or(0))
    }
}

/// Follows the migration Job to its end.
fn follow(ctx: &mut Ctx<'_>, revision: &str, j: &JobObserved) {
    ctx.status.lock_holder = None;
    ctx.status.attempts = Some((j.active + j.failed + j.succeeded).max(1));
    if let Some(start) = j.start {
        ctx.status.start_time = Some(Time(start));
    }
    match &j.finished {
        Some((true, _, _)) => {
            let end = j.completion.unwrap_or(ctx.obs.now);
            ctx.status.completion_time = Some(Time(end));
            if let Some(start) = j.start {
                ctx.status.duration = Some(duration_text(start, end));
            }
            ctx.status.succeeded_revision = Some(revision.to_string());
            ctx.status.phase = MigrationPhase::Succeeded;
            let message = format!(
                "revision {revision} succeeded{}",
                ctx.status
                    .duration
                    .as_deref()
                    .map_or(String::new(), |d| format!(" in {d}"))
            );
            ctx.status.message = Some(message.clone());
            ctx.ready(cond::TRUE, "Succeeded", message.clone());
            ctx.note("Succeeded", message, false);
        }
        Some((false, reason, job_message)) => {
            let end = ctx.obs.now;
            ctx.status.completion_time = Some(Time(end));
            if let Some(start) = j.start {
                ctx.status.duration = Some(duration_text(start, end));
            }
            let reason: &'static str = match reason.as_str() {
                "DeadlineExceeded" => "DeadlineExceeded",
                "BackoffLimitExceeded" => "BackoffLimitExceeded",
                _ => "JobFailed",
            };
            let mut message = format!("Job {} failed: {reason}: {job_message}", j.name);
            if let Some(log) = &ctx.obs.failed_log {
                message.push_str("; last log lines:\n");
                message.push_str(log);
            }
            fail(ctx, reason, message);
        }
        None => {
            ctx.status.phase = MigrationPhase::Running;
            let message = format!(
                "Job {} running (attempt {})",
                j.name,
                ctx.status.attempts.unwrap_or(1)
            );
            ctx.status.message = Some(message.clone());
            ctx.ready(cond::FALSE, "Running", message);
        }
    }
}

/// The backup before the migration: started, followed, and required to succeed. Returns
/// whether it is still to be done (or failed), so the migration must not start yet.
fn backing_up(ctx: &mut Ctx<'_>, name: &str, revision: &str) -> bool {
    if ctx.obs.migration.spec.backup.is_none()
        || ctx.status.backed_up_revision.as_deref() == Some(revision)
    {
        return false;
    }
    let job = backup_job_name(name, revision, ctx.status.retries.unwrap_or(0));
    ctx.status.backup_job_name = Some(job.clone());
    let observed = ctx.obs.backup_job.clone().filter(|j| j.name == job);
    let running = |ctx: &mut Ctx<'_>| {
        let message = format!("backing up before revision {revision}: Job {job}");
        ctx.status.phase = MigrationPhase::Running;
        ctx.status.message = Some(message.clone());
        ctx.ready(cond::FALSE, "BackingUp", message);
    };
    match observed {
        None => {
            ctx.actions
                .push(Action::CreateBackupJob { name: job.clone() });
            ctx.note(
                "BackupStarted",
                format!("Job {job} backs up before revision {revision} runs"),
                false,
            );
            running(ctx);
            true
        }
        Some(j) => match j.finished {
            None => {
                running(ctx);
                true
            }
            Some((true, _, _)) => {
                ctx.status.backed_up_revision = Some(revision.to_string());
                ctx.note("BackedUp", format!("backup Job {job} succeeded"), false);
                false
            }
            Some((false, reason, job_message)) => {
                let mut message = format!(
                    "backup Job {job} failed: {reason}: {job_message}; the migration did not run"
                );
                if let Some(log) = &ctx.obs.failed_log {
                    message.push_str("; last log lines:\n");
                    message.push_str(log);
                }
                fail(ctx, "BackupFailed", message);
                true
            }
        },
    }
}

fn fail(ctx: &mut Ctx<'_>, reason: &'static str, message: String) {
    ctx.status.phase = MigrationPhase::Failed;
    ctx.status.message = Some(message.clone());
    ctx.ready(cond::FALSE, reason, message.clone());
    ctx.note("MigrationFailed", message, true);
}

/// Handles rollback requests and a running rollback; returns whether it decided.
fn rollback(ctx: &mut Ctx<'_>, name: &str, revision: &str) -> bool {
    if let Some(request) = ctx.request(ANNOTATION_ROLLBACK)
        && ctx.status.handled_rollback.as_deref() != Some(request.as_str())
    {
        ctx.status.handled_rollback = Some(request.clone());
        if ctx.obs.migration.spec.rollback.is_none() {
            ctx.note(
                "RollbackUnavailable",
                "rollback requested, but the MigrationJob has no rollback template",
                true,
            );
        } else if ctx.status.phase == MigrationPhase::Running {
            // Rolling back a migration still running would race it; it runs to its end first.
            ctx.note(
                "RollbackRefused",
                "rollback requested while the migration runs; request it again once it ended",
                true,
            );
        } else {
            let job = rollback_job_name(name, revision, &request);
            ctx.status.rollback_job_name = Some(job.clone());
            ctx.status.phase = MigrationPhase::RollingBack;
            ctx.note(
                "RollingBack",
                format!("rollback Job {job} requested"),
                false,
            );
        }
    }
    if ctx.status.phase != MigrationPhase::RollingBack {
        return false;
    }
    let job = ctx.status.rollback_job_name.clone().unwrap_or_default();
    match ctx.obs.rollback_job.clone().filter(|j| j.name == job) {
        None => {
            // Creating by name is idempotent: a Job already created is not created again.
            ctx.actions
                .push(Action::CreateRollbackJob { name: job.clone() });
            let message = format!("rollback Job {job} running");
            ctx.status.message = Some(message.clone());
            ctx.ready(cond::FALSE, "RollingBack", message);
        }
        Some(j) => match &j.finished {
            None => {
                let message = format!("rollback Job {job} running");
                ctx.status.message = Some(message.clone());
                ctx.ready(cond::FALSE, "RollingBack", message);
            }
            Some((true, _, _)) => {
                ctx.status.phase = MigrationPhase::RolledBack;
                ctx.status.succeeded_revision = None;
                let message = format!("rolled back by Job {job}");
                ctx.status.message = Some(message.clone());
                ctx.ready(cond::FALSE, "RolledBack", message.clone());
                ctx.note("RolledBack", message, false);
            }
            Some((false, reason, job_message)) => {
                let mut message = format!("rollback Job {job} failed: {reason}: {job_message}");
                if let Some(log) = &ctx.obs.failed_log {
                    message.push_str("; last log lines:\n");
                    message.push_str(log);
                }
                fail(ctx, "RollbackFailed", message);
            }
        },
    }
    true
}

/// When to keep a copy of a running Job's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// Now: its deadline is close or past.
    Now,
    /// At this time, shortly before its deadline.
    At(Timestamp),
    /// Never: it is not running.
    Never,
}

/// When to keep a copy of the log of `job`, which runs with a deadline of `timeout_seconds`
/// from its start, its pods' containers having restarted `restarts` times where the copy
/// kept was taken after `kept_restarts`: after each restart (the failed run's log is the
/// previous container's), and shortly before the deadline, because the Job controller
/// deletes the pods — and their logs with them — the moment it passes. A tenth of the
/// timeout ahead, at least 1 s and at most 10 s, and never earlier than half way.
pub fn log_snapshot(
    job: &JobObserved,
    timeout_seconds: i64,
    (restarts, kept_restarts): (i32, i32),
    now: Timestamp,
) -> Snapshot {
    let Some(start) = job.start else {
        return Snapshot::Never;
    };
    if job.finished.is_some() || job.active == 0 {
        return Snapshot::Never;
    }
    if restarts > kept_restarts {
        return Snapshot::Now;
    }
    if timeout_seconds <= 0 {
        return Snapshot::Never;
    }
    let ahead = (timeout_seconds / 10).clamp(1, 10).min(timeout_seconds / 2);
    let due = start + jiff::SignedDuration::from_secs(timeout_seconds - ahead);
    if now >= due {
        Snapshot::Now
    } else {
        Snapshot::At(due)
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

/// Who holds (or is promised) the lock of `me`'s `lockKey` among the MigrationJobs of its
/// namespace: one running or rolling back, else the oldest one waiting to run before it —
/// first come, first served by creation time.
pub fn lock_for(me: &MigrationJob, others: &[MigrationJob]) -> Lock {
    let Some(key) = me.spec.lock_key.as_deref() else {
        return Lock::Free;
    };
    let my_name = me.metadata.name.clone().unwrap_or_default();
    let order = |m: &MigrationJob| {
        (
            m.metadata.creation_timestamp.as_ref().map(|t| t.0),
            m.metadata.name.clone().unwrap_or_default(),
        )
    };
    let mine = order(me);
    let rivals = others.iter().filter(|o| {
        o.spec.lock_key.as_deref() == Some(key)
            && o.metadata.name.as_deref() != Some(my_name.as_str())
            && o.metadata.namespace == me.metadata.namespace
            && o.metadata.deletion_timestamp.is_none()
    });
    let mut queue: Vec<&MigrationJob> = Vec::new();
    for o in rivals {
        let status = o.status.clone().unwrap_or_default();
        match status.phase {
            MigrationPhase::Running | MigrationPhase::RollingBack => {
                return Lock::HeldBy(o.metadata.name.clone().unwrap_or_default());
            }
            MigrationPhase::Pending | MigrationPhase::Waiting => {
                let waits_for_rollout = cond::find(&status.conditions, cond::READY)
                    .is_some_and(|c| c.reason == "WaitingForRollout");
                let done =
                    status.succeeded_revision.as_deref() == Some(spec_revision(&o.spec).as_str());
                if !waits_for_rollout && !done && order(o) < mine {
                    queue.push(o);
                }
            }
            _ => {}
        }
    }
    queue
        .into_iter()
        .min_by_key(|o| order(o))
        .map_or(Lock::Free, |o| {
            Lock::HeldBy(o.metadata.name.clone().unwrap_or_default())
        })
}
