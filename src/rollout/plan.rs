//! The pure decision of the Rollout controller: what was observed and the time in, the
//! writes to make and the status to record out. No I/O, no clock.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Rollout, RolloutPhase, RolloutStatus, StrategyKind, conditions as cond};

/// Role a revision plays, stamped on its Deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Serves stable traffic.
    Stable,
    /// The revision being rolled out.
    Canary,
    /// Blue-green: behind the active Service.
    Active,
    /// Blue-green: the new revision behind the preview Service.
    Preview,
    /// Blue-green: the revision that served before the switch, kept for instant rollback.
    Previous,
    /// An old revision kept at zero replicas for undo.
    History,
}

impl Role {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Canary => "canary",
            Self::Active => "active",
            Self::Preview => "preview",
            Self::Previous => "previous",
            Self::History => "history",
        }
    }
}

/// A revision's Deployment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionObserved {
    /// Revision hash.
    pub revision: String,
    /// Desired replicas in its spec.
    pub replicas: i32,
    /// Available pods.
    pub available: i32,
    /// Role label on the Deployment.
    pub role: Option<String>,
    /// When it was created (oldest revisions are pruned first).
    pub created: Option<Timestamp>,
}

/// Everything the plan looks at.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Rollout (spec, status, annotations, generation).
    pub rollout: &'a Rollout,
    /// Hash of the pod template the spec asks for.
    pub target_revision: String,
    /// Deployments owned by the Rollout.
    pub revisions: Vec<RevisionObserved>,
    /// Canary weight currently set on the HTTPRoute, when routed.
    pub route_weight: Option<i32>,
    /// Revision each routed Service is pinned to, by Service name.
    pub service_revisions: BTreeMap<String, Option<String>>,
    /// Replicas of the Deployment named by `workloadRef`, when one is adopted.
    pub referenced_replicas: Option<i32>,
    /// Measurements the shell took for the runs that fell due.
    pub measurements: Vec<super::analysis::Taken>,
    /// The MigrationJobs named by `spec.migrations`.
    pub migrations: Vec<MigrationObserved>,
    /// The pods' selector in string form: the Rollout's own, or, with `workloadRef`, the
    /// adopted Deployment's (the scale subresource reports it for an HPA).
    pub selector: Option<String>,
    /// The time of the decision.
    pub now: Timestamp,
}

/// A MigrationJob named by the Rollout, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationObserved {
    /// Its name.
    pub name: String,
    /// Succeeded for its current spec (and its status is of its current generation).
    pub succeeded: bool,
    /// Failed for its current spec.
    pub failed: bool,
    /// Its phase.
    pub phase: crate::api::MigrationPhase,
    /// Its status message.
    pub message: String,
    /// The rollback request it last acted on.
    pub handled_rollback: Option<String>,
    /// The rollback request set on it (its `cutover.dev/rollback` annotation).
    pub requested_rollback: Option<String>,
}

/// A write the shell makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create or update the Deployment of `revision` with `replicas` pods.
    ApplyRevision {
        /// Revision hash.
        revision: String,
        /// Desired pods.
        replicas: i32,
        /// Its role.
        role: Role,
    },
    /// Scale the adopted `workloadRef` Deployment (to 0 once the Rollout serves).
    ScaleReferenced {
        /// Desired pods.
        replicas: i32,
    },
    /// Delete an old revision beyond the history limit.
    DeleteRevision {
        /// Revision hash.
        revision: String,
    },
    /// Pin a Service's selector to a revision.
    PinService {
        /// Service name.
        service: String,
        /// Revision hash.
        revision: String,
    },
    /// Set the HTTPRoute's backend weights: `canary` percent to the canary Service.
    SetRouteWeight {
        /// Canary percentage.
        canary: i32,
    },
    /// Set a FeatureFlag's state (a Rollout's flag links).
    SetFlagState {
        /// FeatureFlag name.
        flag: String,
        /// ENABLED when true, DISABLED when false.
        enabled: bool,
    },
    /// Ask a MigrationJob to run its rollback (the `cutover.dev/rollback` annotation).
    RequestMigrationRollback {
        /// MigrationJob name.
        migration: String,
        /// The request's value, unique to this abort.
        request: String,
    },
}

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// CamelCase reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Writes, in order.
    pub actions: Vec<Action>,
    /// The status to record.
    pub status: RolloutStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// When to look again if nothing changes before.
    pub requeue_at: Option<Timestamp>,
}

pub(super) fn ts(t: Timestamp) -> Time {
    Time(t)
}

pub(super) struct Ctx<'a> {
    pub(super) obs: &'a Observed<'a>,
    pub(super) status: RolloutStatus,
    pub(super) actions: Vec<Action>,
    notes: Vec<Note>,
    requeue_at: Option<Timestamp>,
    generation: Option<i64>,
    /// Analysis runs still needed after this decision.
    kept_runs: Vec<String>,
}

impl Ctx<'_> {
    /// Marks an analysis run as still needed.
    pub(super) fn keep_run(&mut self, name: &str) {
        if !self.kept_runs.iter().any(|n| n == name) {
            self.kept_runs.push(name.to_string());
        }
    }

    /// Analysis runs still needed.
    pub(super) fn kept_runs(&self) -> &[String] {
        &self.kept_runs
    }

    /// Pins `service` to `revision` unless it already is.
    pub(super) fn pin(&mut self, service: &str, revision: &str) {
        if self
            .obs
            .service_revisions
            .get(service)
            .cloned()
            .flatten()
            .as_deref()
            != Some(revision)
        {
            self.actions.push(Action::PinService {
                service: service.to_string(),
                revision: revision.to_string(),
            });
        }
    }

    pub(super) fn revision(&self, hash: &str) -> Option<&RevisionObserved> {
        self.obs.revisions.iter().find(|r| r.revision == hash)
    }

    pub(super) fn available(&self, hash: &str) -> i32 {
        self.revision(hash).map_or(0, |r| r.available)
    }

    pub(super) fn apply(&mut self, revision: &str, replicas: i32, role: Role) {
        let unchanged = self
            .revision(revision)
            .is_some_and(|r| r.replicas == replicas && r.role.as_deref() == Some(role.as_str()));
        if !unchanged {
            self.actions.push(Action::ApplyRevision {
                revision: revision.to_string(),
                replicas,
                role,
            });
        }
    }

    pub(super) fn wake_at(&mut self, t: Timestamp) {
        self.requeue_at = Some(self.requeue_at.map_or(t, |r| r.min(t)));
    }

    pub(super) fn note(&mut self, reason: &'static str, message: impl Into<String>) {
        self.notes.push(Note {
            reason,
            message: message.into(),
        });
    }

    pub(super) fn condition(
        &mut self,
        type_: &'static str,
        status: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        let now = ts(self.obs.now);
        cond::set(
            &mut self.status.conditions,
            cond::ConditionUpdate {
                type_,
                status,
                reason,
                message: message.into(),
            },
            self.generation,
            &now,
        );
    }

    /// Takes a control request made with an annotation, once per new value.
    pub(super) fn request(&mut self, key: &str) -> bool {
        let value = self
            .obs
            .rollout
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key));
        match value {
            Some(v) if self.status.handled_requests.get(key) != Some(v) => {
                self.status
                    .handled_requests
                    .insert(key.to_string(), v.clone());
                true
            }
            _ => false,
        }
    }
}

/// Decides the next writes and the status of a Rollout whose spec passed validation.
pub fn plan(obs: &Observed<'_>) -> Plan {
    let rollout = obs.rollout;
    let mut status = rollout.status.clone().unwrap_or_default();
    status.observed_generation = rollout.metadata.generation;
    status.strategy = rollout.spec.strategy_kind();
    cond::remove(&mut status.conditions, cond::INVALID_SPEC);
    let mut ctx = Ctx {
        obs,
        generation: rollout.metadata.generation,
        status,
        actions: Vec::new(),
        notes: Vec::new(),
        requeue_at: None,
        kept_runs: Vec::new(),
    };
    if migration_gate(&mut ctx) {
        finish(&mut ctx);
        return Plan {
            actions: ctx.actions,
            status: ctx.status,
            notes: ctx.notes,
            requeue_at: ctx.requeue_at,
        };
    }
    let strategy = &rollout.spec.strategy;
    match (
        rollout.spec.strategy_kind(),
        &strategy.canary,
        &strategy.blue_green,
    ) {
        (Some(StrategyKind::Canary), Some(canary), _) => super::canary::plan(&mut ctx, canary),
        (Some(StrategyKind::BlueGreen), _, Some(bg)) => super::bluegreen::plan(&mut ctx, bg),
        (Some(StrategyKind::Rolling), _, _) => {
            if let Some(rolling) = &strategy.rolling {
                super::rolling::plan(&mut ctx, rolling);
            }
        }
        _ => {}
    }
    rollback_migrations(&mut ctx);
    link_flags(&mut ctx);
    finish(&mut ctx);
    Plan {
        actions: ctx.actions,
        status: ctx.status,
        notes: ctx.notes,
        requeue_at: ctx.requeue_at,
    }
}

/// The `before` migrations gate a new revision until it has pods: while any runs the
/// rollout waits (WaitingForMigrations) with the stable revision untouched; a failed one
/// aborts it. Returns whether the decision is made (nothing else to plan).
fn migration_gate(ctx: &mut Ctx<'_>) -> bool {
    let Some(gates) = ctx.obs.rollout.spec.migrations.clone() else {
        return false;
    };
    if gates.before.is_empty() {
        return false;
    }
    let target = ctx.obs.target_revision.clone();
    let stable = ctx.status.stable_revision.clone();
    let has_pods = ctx.revision(&target).is_some_and(|r| r.replicas > 0);
    if stable.as_deref() == Some(target.as_str()) || has_pods {
        return false;
    }
    let aborted_here = ctx.status.phase == RolloutPhase::Aborted
        && ctx.status.current_revision.as_deref() == Some(target.as_str());
    let of = |name: &String| ctx.obs.migrations.iter().find(|m| &m.name == name).cloned();
    let failed = gates.before.iter().filter_map(of).find(|m| m.failed);
    let pending: Vec<String> = gates
        .before
        .iter()
        .filter(|n| !of(n).is_some_and(|m| m.succeeded))
        .cloned()
        .collect();
    if let Some(f) = failed {
        let message = format!("migration {} failed: {}", f.name, f.message);
        if aborted_here {
            if ctx.request(crate::api::ANNOTATION_RETRY) {
                ctx.note(
                    "RetryRefused",
                    format!("{message}; retry or fix the MigrationJob first"),
                );
            }
            // The strategy holds the aborted rollout as it is.
            return false;
        }
        match stable {
            None => {
                // Nothing deployed yet: nothing to fall back to, nothing to abort.
                ctx.status.phase = RolloutPhase::Degraded;
                ctx.status.message = Some(message.clone());
                ctx.condition(cond::PROGRESSING, cond::FALSE, "MigrationFailed", message);
                true
            }
            Some(_) => {
                begin(ctx, &target, format!("rolling out revision {target}"));
                ctx.note("MigrationFailed", message.clone());
                abort(ctx, "MigrationFailed", &message);
                false
            }
        }
    } else if pending.is_empty() {
        false
    } else {
        if aborted_here {
            if !ctx.request(crate::api::ANNOTATION_RETRY) {
                return false;
            }
            // Retried while a migration runs again: wait for it, then start afresh.
            ctx.status.current_revision = stable.clone();
            ctx.status.analysis.clear();
            ctx.condition(
                cond::ABORTED,
                cond::FALSE,
                "Retried",
                "retried; waiting for migrations",
            );
            ctx.note("Retried", "retrying once the migrations succeed");
        }
        let message = format!("waiting for migrations: {}", pending.join(", "));
        if ctx.status.message.as_deref() != Some(message.as_str()) {
            ctx.note("WaitingForMigrations", message.clone());
        }
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(message.clone());
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "WaitingForMigrations",
            message,
        );
        true
    }
}

/// With `rollbackOnAbort`, an aborted rollout asks its `before` migrations to roll back,
/// newest first, one at a time.
fn rollback_migrations(ctx: &mut Ctx<'_>) {
    let Some(gates) = ctx.obs.rollout.spec.migrations.clone() else {
        return;
    };
    if !gates.rollback_on_abort.unwrap_or(false) || ctx.status.phase != RolloutPhase::Aborted {
        return;
    }
    let target = ctx.obs.target_revision.clone();
    let Some(at) = ctx.status.paused_at.as_ref().map(|t| t.0.as_second()) else {
        return;
    };
    let name = ctx.obs.rollout.metadata.name.clone().unwrap_or_default();
    // One value per abort: a second abort of the same revision rolls back again.
    let request = format!("rollout/{name}/{target}/{at}");
    for migration in gates.before.iter().rev() {
        let Some(m) = ctx.obs.migrations.iter().find(|m| &m.name == migration) else {
            continue;
        };
        if m.handled_rollback.as_deref() == Some(request.as_str()) {
            if m.phase == crate::api::MigrationPhase::RollingBack {
                return;
            }
            continue;
        }
        if m.requested_rollback.as_deref() == Some(request.as_str()) {
            // Asked already; waiting for it to act.
            return;
        }
        if m.succeeded || m.failed {
            ctx.actions.push(Action::RequestMigrationRollback {
                migration: m.name.clone(),
                request,
            });
            return;
        }
    }
}

/// Flag links: the flags to enable once a revision is fully promoted, and to disable when a
/// rollout aborts — each once per promotion or abort, so a person's later change stands.
fn link_flags(ctx: &mut Ctx<'_>) {
    let Some(links) = ctx.obs.rollout.spec.flags.clone() else {
        return;
    };
    let target = ctx.obs.target_revision.clone();
    let promoted = ctx.status.phase == RolloutPhase::Healthy
        && ctx.status.stable_revision.as_deref() == Some(target.as_str())
        && ctx.status.current_revision.as_deref() == Some(target.as_str());
    let aborted = ctx.status.phase == RolloutPhase::Aborted;
    let at = ctx.status.paused_at.as_ref().map_or(0, |t| t.0.as_second());
    let todo = [
        (
            promoted,
            "flags/enable",
            target.clone(),
            &links.enable_on_promotion,
            true,
        ),
        (
            aborted,
            "flags/disable",
            format!("{target}/{at}"),
            &links.disable_on_abort,
            false,
        ),
    ];
    for (when, key, id, flags, enabled) in todo {
        if !when || flags.is_empty() || ctx.status.handled_requests.get(key) == Some(&id) {
            continue;
        }
        ctx.status.handled_requests.insert(key.to_string(), id);
        for flag in flags {
            ctx.actions.push(Action::SetFlagState {
                flag: flag.clone(),
                enabled,
            });
        }
        let verb = if enabled { "enabled" } else { "disabled" };
        ctx.note("FlagsSet", format!("{verb} flags {}", flags.join(", ")));
    }
}

/// Whether the progress deadline of a revision that is not yet available has passed. When
/// it has and the spec says abort, the rollout is aborted and `true` tells the caller to
/// hold it there; otherwise it is marked Degraded (or a wake-up is set for the deadline).
pub(super) fn deadline_aborts(ctx: &mut Ctx<'_>, target: &str) -> bool {
    let started = ctx
        .status
        .step_started_at
        .as_ref()
        .map_or(ctx.obs.now, |t| t.0);
    let seconds = ctx.obs.rollout.spec.progress_deadline_seconds();
    let due = started + jiff::SignedDuration::from_secs(i64::from(seconds));
    if ctx.obs.now < due {
        ctx.wake_at(due);
        return false;
    }
    let message = format!("revision {target} did not become available within {seconds}s");
    if ctx.obs.rollout.spec.progress_deadline_abort() {
        abort(ctx, "ProgressDeadlineExceeded", &message);
        return true;
    }
    ctx.status.phase = RolloutPhase::Degraded;
    ctx.status.message = Some(message.clone());
    ctx.condition(
        cond::PROGRESSING,
        cond::FALSE,
        "ProgressDeadlineExceeded",
        message,
    );
    false
}

/// The revision to serve when no rollout is in progress: the first revision of a Rollout
/// (nothing to compare with, so no steps, as Argo Rollouts does), or the template set back
/// to the stable revision. `None` while a new revision is to be rolled out.
pub(super) fn settled_revision(ctx: &mut Ctx<'_>) -> Option<String> {
    let target = ctx.obs.target_revision.clone();
    match ctx.status.stable_revision.clone() {
        None => {
            ctx.status.stable_revision = Some(target.clone());
            ctx.status.current_revision = Some(target.clone());
            ctx.note("Started", format!("first revision {target}"));
            Some(target)
        }
        Some(stable) if stable == target => {
            if ctx.status.current_revision.as_deref() != Some(target.as_str()) {
                ctx.note("Undone", format!("back to the stable revision {target}"));
            }
            ctx.status.current_revision = Some(target.clone());
            Some(target)
        }
        Some(_) => None,
    }
}

/// Starts rolling out `target` if it is new: step 0, the clock of the step, no abort.
pub(super) fn begin(ctx: &mut Ctx<'_>, target: &str, message: impl Into<String>) {
    if ctx.status.current_revision.as_deref() == Some(target) {
        return;
    }
    ctx.status.current_revision = Some(target.to_string());
    ctx.status.analysis.clear();
    ctx.status.current_step_index = Some(0);
    ctx.status.step_started_at = Some(ts(ctx.obs.now));
    ctx.status.paused_at = None;
    ctx.status.phase = RolloutPhase::Progressing;
    ctx.status.message = None;
    cond::remove(&mut ctx.status.conditions, cond::ABORTED);
    ctx.note("Started", message);
}

/// Takes abort and retry requests; returns whether the rollout is (still) aborted.
pub(super) fn abort_or_retry(ctx: &mut Ctx<'_>, abort_message: &str) -> bool {
    let mut aborted = ctx.status.phase == RolloutPhase::Aborted;
    if ctx.request(crate::api::ANNOTATION_ABORT) && !aborted {
        aborted = true;
        abort(ctx, "AbortRequested", abort_message);
    }
    if ctx.request(crate::api::ANNOTATION_RETRY) && aborted {
        aborted = false;
        ctx.status.analysis.clear();
        ctx.status.current_step_index = Some(0);
        ctx.status.step_started_at = Some(ts(ctx.obs.now));
        ctx.status.paused_at = None;
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = None;
        ctx.condition(
            cond::ABORTED,
            cond::FALSE,
            "Retried",
            "retried from the start",
        );
        ctx.note("Retried", "retrying from the start");
    }
    aborted
}

/// Records that one revision serves: Healthy once its pods are available.
pub(super) fn report_serving(ctx: &mut Ctx<'_>, revision: &str, replicas: i32) {
    ctx.status.current_step_index = None;
    ctx.status.step_started_at = None;
    ctx.status.canary_weight = Some(0);
    let available = ctx.available(revision);
    if available >= replicas {
        if ctx.status.phase != RolloutPhase::Healthy {
            ctx.note(
                "Healthy",
                format!("revision {revision} is stable with {available} available pods"),
            );
        }
        ctx.status.phase = RolloutPhase::Healthy;
        ctx.status.message = None;
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "NewRevisionAvailable",
            format!("revision {revision} is available"),
        );
    } else {
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(format!(
            "waiting for revision {revision}: {available} of {replicas} pods available"
        ));
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "RevisionScaling",
            format!("{available} of {replicas} pods available"),
        );
    }
    ctx.condition(cond::PAUSED, cond::FALSE, "NotPaused", "");
    if cond::find(&ctx.status.conditions, cond::ABORTED).is_some() {
        ctx.condition(
            cond::ABORTED,
            cond::FALSE,
            "Stable",
            "the stable revision serves",
        );
    }
}

/// Scales every revision other than `keep` (and `also`) to zero and deletes the oldest past
/// the history limit.
pub(super) fn retire_old(ctx: &mut Ctx<'_>, keep: &str, also: Option<&str>) {
    let limit = ctx.obs.rollout.spec.revision_history_limit() as usize;
    let mut old: Vec<RevisionObserved> = ctx
        .obs
        .revisions
        .iter()
        .filter(|r| r.revision != keep && Some(r.revision.as_str()) != also)
        .cloned()
        .collect();
    old.sort_by_key(|r| std::cmp::Reverse(r.created));
    for (i, r) in old.iter().enumerate() {
        if i >= limit {
            ctx.actions.push(Action::DeleteRevision {
                revision: r.revision.clone(),
            });
        } else {
            ctx.apply(&r.revision, 0, Role::History);
        }
    }
}

pub(super) fn abort(ctx: &mut Ctx<'_>, reason: &'static str, message: &str) {
    ctx.status.phase = RolloutPhase::Aborted;
    ctx.status.message = Some(message.to_string());
    ctx.status.paused_at = Some(ts(ctx.obs.now));
    ctx.condition(cond::ABORTED, cond::TRUE, reason, message);
    ctx.condition(cond::PROGRESSING, cond::FALSE, reason, message);
    ctx.note("Aborted", message);
}

pub(super) fn pause(ctx: &mut Ctx<'_>, reason: &'static str, message: String) {
    if ctx.status.phase != RolloutPhase::Paused {
        ctx.status.paused_at = Some(ts(ctx.obs.now));
        ctx.note("Paused", message.clone());
    }
    ctx.status.phase = RolloutPhase::Paused;
    ctx.status.message = Some(message.clone());
    ctx.condition(cond::PAUSED, cond::TRUE, reason, message);
    ctx.condition(cond::PROGRESSING, cond::TRUE, "RolloutPaused", "paused");
}

fn finish(ctx: &mut Ctx<'_>) {
    super::analysis::end_unneeded(ctx);
    // An adopted Deployment is scaled down only once the stable revision serves in full,
    // so there is no moment without serving pods.
    if let (Some(referenced), Some(stable)) = (
        ctx.obs.referenced_replicas,
        ctx.status.stable_revision.clone(),
    ) && referenced > 0
        && ctx.available(&stable) >= ctx.obs.rollout.spec.replicas()
    {
        ctx.actions.push(Action::ScaleReferenced { replicas: 0 });
    }
    let replicas = ctx.obs.rollout.spec.replicas();
    // Contract migrations may run once only the stable revision has pods.
    let target = ctx.obs.target_revision.as_str();
    let settled = ctx.status.phase == RolloutPhase::Healthy
        && ctx.status.stable_revision.as_deref() == Some(target)
        && ctx.status.current_revision.as_deref() == Some(target)
        && ctx.status.previous_revision.is_none()
        && ctx
            .obs
            .revisions
            .iter()
            .filter(|r| r.revision != target)
            .all(|r| r.replicas == 0 && r.available == 0);
    ctx.status.contract_revision = settled.then(|| target.to_string());
    let total: i32 = ctx.obs.revisions.iter().map(|r| r.replicas).sum();
    let available: i32 = ctx.obs.revisions.iter().map(|r| r.available).sum();
    ctx.status.replicas = Some(total);
    ctx.status.available_replicas = Some(available);
    ctx.status.ready_replicas = Some(available);
    ctx.status.selector = ctx.obs.selector.clone();
    let (status, reason) = if available >= replicas {
        (cond::TRUE, "MinimumReplicasAvailable")
    } else {
        (cond::FALSE, "MinimumReplicasUnavailable")
    };
    ctx.condition(
        cond::AVAILABLE,
        status,
        reason,
        format!("{available} of {replicas} pods available"),
    );
}

/// Whether a person changed the Rollout and waits for the operator to act: a spec it has
/// not yet observed, or a promote, abort or retry request it has not yet taken. Such
/// Rollouts go ahead of routine work.
pub fn awaits_operator(rollout: &Rollout) -> bool {
    let status = rollout.status.as_ref();
    if rollout.metadata.generation != status.and_then(|s| s.observed_generation) {
        return true;
    }
    let annotations = rollout.metadata.annotations.as_ref();
    [
        crate::api::ANNOTATION_PROMOTE,
        crate::api::ANNOTATION_PROMOTE_FULL,
        crate::api::ANNOTATION_ABORT,
        crate::api::ANNOTATION_RETRY,
    ]
    .iter()
    .any(|key| {
        annotations
            .and_then(|a| a.get(*key))
            .is_some_and(|value| status.and_then(|s| s.handled_requests.get(*key)) != Some(value))
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
