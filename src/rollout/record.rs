//! What the Rollout planners record as they decide: the observed world they read, and the
//! verbs that write the decision (actions, status, conditions, notes, the next wake-up).
//! Below the strategies: `plan` dispatches, `canary`, `bluegreen` and `rolling` decide, and
//! this module records.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Rollout, RolloutPhase, RolloutStatus, conditions as cond};

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
    /// Why its Deployment cannot make progress, as the Deployment says: the reason
    /// (`ReplicaFailure`, `ProgressDeadlineExceeded`) and its message.
    pub failure: Option<(String, String)>,
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
    /// Why the gateway may not route by the route's weights yet (see
    /// `route::pending`); `None` once it has taken the route as written.
    pub route_pending: Option<String>,
    /// The HTTPRoute's rules cutover reads and writes, when routed.
    pub route_rules: RouteRulesObserved,
    /// Revision each routed Service is pinned to, by Service name.
    pub service_revisions: BTreeMap<String, Option<String>>,
    /// Replicas of the Deployment named by `workloadRef`, when one is adopted.
    pub referenced_replicas: Option<i32>,
    /// Measurements the shell took for the runs that fell due.
    pub measurements: Vec<crate::analysis::run::Taken>,
    /// The MigrationJobs named by `spec.migrations`.
    pub migrations: Vec<MigrationObserved>,
    /// The pods' selector in string form: the Rollout's own, or, with `workloadRef`, the
    /// adopted Deployment's (the scale subresource reports it for an HPA).
    pub selector: Option<String>,
    /// Why the Rollout's Namespace is frozen (its `cutover.dev/freeze` annotation).
    pub freeze: Option<String>,
    /// Images of the target revision, in container order.
    pub images: Vec<String>,
    /// The Rollouts `spec.requires` names, in its order, as observed (`None`: not found).
    pub required: Vec<Option<RequiredObserved>>,
    /// Who last changed the template (a field manager), when a release may start now.
    pub started_by: Option<String>,
    /// The time of the decision.
    pub now: Timestamp,
}

/// The rules of a routed canary's HTTPRoute the plan works from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteRulesObserved {
    /// The author's rule to the stable Service, header and mirror rules are made from.
    pub base: Option<serde_json::Value>,
    /// cutover's header and mirror rules, in order.
    pub managed: Vec<serde_json::Value>,
    /// Why a mirror route must not be written: a gateway of the route says it cannot
    /// mirror. Looked up only while the Rollout has a mirror step and no mirror rule.
    pub mirror_refused: Option<String>,
}

/// A Rollout another one requires, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequiredObserved {
    /// Its phase.
    pub phase: RolloutPhase,
    /// Images of its stable revision, once Healthy.
    pub stable_images: Vec<String>,
    /// Since when.
    pub stable_since: Option<Timestamp>,
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
    /// The retry request set on it (its `cutover.dev/retry` annotation).
    pub requested_retry: Option<String>,
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
    /// Make cutover's header and mirror rules on the HTTPRoute these (none restores the
    /// route to its author's rules).
    SetRouteRules {
        /// The rules, first in the route.
        rules: Vec<serde_json::Value>,
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
    /// Ask a rolled-back MigrationJob to run again (the `cutover.dev/retry` annotation).
    RequestMigrationRetry {
        /// MigrationJob name.
        migration: String,
        /// The request's value, unique to this retry of the Rollout.
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

/// A decision being made: what was observed, and what has been decided so far.
pub(super) struct Ctx<'a> {
    pub(super) obs: &'a Observed<'a>,
    pub(super) status: RolloutStatus,
    pub(super) actions: Vec<Action>,
    notes: Vec<Note>,
    requeue_at: Option<Timestamp>,
    generation: Option<i64>,
    /// Analysis runs still needed after this decision.
    kept_runs: Vec<String>,
    /// Whether the deployment windows let the rollout start or go on now.
    pub(super) window: crate::window::Gate,
}

impl<'a> Ctx<'a> {
    /// A decision starting from `status`, about the Rollout of `obs`.
    pub(super) fn new(obs: &'a Observed<'a>, status: RolloutStatus) -> Self {
        Self {
            obs,
            generation: obs.rollout.metadata.generation,
            status,
            actions: Vec::new(),
            notes: Vec::new(),
            requeue_at: None,
            kept_runs: Vec::new(),
            window: crate::window::gate(&obs.rollout.spec.windows, obs.freeze.as_deref(), obs.now),
        }
    }

    /// The decision made.
    pub(super) fn into_plan(self) -> Plan {
        Plan {
            actions: self.actions,
            status: self.status,
            notes: self.notes,
            requeue_at: self.requeue_at,
        }
    }
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
        let current = self.obs.service_revisions.get(service).cloned().flatten();
        if current.as_deref() == Some(revision) {
            return;
        }
        // Taking a Service over: until now its own selector picks whatever pods match it
        // (an adopted Deployment's, or those another controller left behind). It is pinned
        // once this revision can serve in full, so there is no moment without serving pods.
        if current.is_none() && self.available(revision) < self.obs.rollout.spec.replicas() {
            return;
        }
        self.actions.push(Action::PinService {
            service: service.to_string(),
            revision: revision.to_string(),
        });
    }

    /// The stable revision as recorded before this decision.
    pub(super) fn stable_before(&self) -> Option<String> {
        self.obs
            .rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_revision.clone())
    }

    pub(super) fn revision(&self, hash: &str) -> Option<&RevisionObserved> {
        self.obs.revisions.iter().find(|r| r.revision == hash)
    }

    pub(super) fn available(&self, hash: &str) -> i32 {
        self.revision(hash).map_or(0, |r| r.available)
    }

    pub(super) fn apply(&mut self, revision: &str, replicas: i32, role: Role) {
        // One plan may pass through several shapes (a step that completes at once, then the
        // next): only the last size of a revision is written, or its pods would be removed
        // and made again within one reconcile.
        self.actions
            .retain(|a| !matches!(a, Action::ApplyRevision { revision: r, .. } if r == revision));
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

/// Whether the progress deadline of a revision that is not yet available has passed. When
/// it has and the spec says abort, the rollout is aborted and `true` tells the caller to
/// hold it there; otherwise it is marked Degraded (or a wake-up is set for the deadline).
pub(super) fn deadline_aborts(ctx: &mut Ctx<'_>, target: &str) -> bool {
    // Kubernetes' own progress deadline on the revision's Deployment counts at once; the
    // Rollout's own comes from when the step started.
    let message = match ctx.revision(target).and_then(|r| r.failure.clone()) {
        Some((reason, cause)) if reason == "ProgressDeadlineExceeded" => {
            format!("revision {target} cannot progress: {reason}: {cause}")
        }
        _ => {
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
            format!("revision {target} did not become available within {seconds}s")
        }
    };
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
    from_the_first_step(ctx);
    cond::remove(&mut ctx.status.conditions, cond::ABORTED);
    let summary = super::announce::summary(
        &ctx.obs.rollout.spec,
        &ctx.status.stable_images,
        &ctx.obs.images,
    );
    ctx.note("Started", format!("{}; {summary}", message.into()));
}

/// Puts the rollout at its first step, progressing, with no analysis or pause behind it.
fn from_the_first_step(ctx: &mut Ctx<'_>) {
    ctx.status.analysis.clear();
    ctx.status.current_step_index = Some(0);
    ctx.status.step_started_at = Some(ts(ctx.obs.now));
    ctx.status.paused_at = None;
    ctx.status.phase = RolloutPhase::Progressing;
    ctx.status.message = None;
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
        from_the_first_step(ctx);
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

/// While the revision being rolled out waits for pods its Deployment cannot create (a
/// quota, an admission policy), says so now, naming the cause, instead of at the progress
/// deadline; announced once per cause. The deadline still stands: the cause may be fixed.
pub(super) fn report_refused_pods(ctx: &mut Ctx<'_>) {
    if ctx.status.phase != RolloutPhase::Progressing {
        return;
    }
    let target = ctx.obs.target_revision.clone();
    let Some((reason, cause)) = ctx.revision(&target).and_then(|r| r.failure.clone()) else {
        return;
    };
    if reason != "ReplicaFailure" {
        return;
    }
    let message = format!("revision {target} cannot create pods: {cause}");
    // Against the status as recorded: the strategy has just set Progressing anew, and
    // putting the recorded condition back keeps its transition time, so an unchanged
    // cause writes nothing.
    let recorded = ctx
        .obs
        .rollout
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .find(|c| {
            c.type_ == cond::PROGRESSING && c.reason == "ReplicaFailure" && c.message == message
        })
        .cloned();
    ctx.status.message = Some(message.clone());
    match recorded {
        Some(condition) => {
            match ctx
                .status
                .conditions
                .iter_mut()
                .find(|c| c.type_ == cond::PROGRESSING)
            {
                Some(current) => *current = condition,
                None => ctx.status.conditions.push(condition),
            }
        }
        None => {
            ctx.note("ReplicaFailure", message.clone());
            ctx.condition(cond::PROGRESSING, cond::FALSE, "ReplicaFailure", message);
        }
    }
}
