//! The pure decision of the Rollout controller: what was observed and the time in, the
//! writes to make and the status to record out. No I/O, no clock.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::canary::{achieved_weight, split_with_router, split_without_router};
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, ANNOTATION_RETRY,
    CanaryStrategy, Rollout, RolloutPhase, RolloutStatus, StepAction, StrategyKind,
    conditions as cond,
};

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
    /// The time of the decision.
    pub now: Timestamp,
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
}

impl Ctx<'_> {
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
    };
    let strategy = &rollout.spec.strategy;
    match (
        rollout.spec.strategy_kind(),
        &strategy.canary,
        &strategy.blue_green,
    ) {
        (Some(StrategyKind::Canary), Some(canary), _) => plan_canary(&mut ctx, canary),
        (Some(StrategyKind::BlueGreen), _, Some(bg)) => super::bluegreen::plan(&mut ctx, bg),
        (Some(StrategyKind::Rolling), _, _) => {
            if let Some(rolling) = &strategy.rolling {
                super::rolling::plan(&mut ctx, rolling);
            }
        }
        _ => {}
    }
    finish(&mut ctx);
    Plan {
        actions: ctx.actions,
        status: ctx.status,
        notes: ctx.notes,
        requeue_at: ctx.requeue_at,
    }
}

fn routed(canary: &CanaryStrategy) -> bool {
    canary.traffic_routing.is_some()
}

fn plan_canary(ctx: &mut Ctx<'_>, canary: &CanaryStrategy) {
    let target = ctx.obs.target_revision.clone();
    let replicas = ctx.obs.rollout.spec.replicas();
    let Some(stable) = ctx.status.stable_revision.clone() else {
        // First revision: nothing to compare with, so no steps (as Argo Rollouts does).
        ctx.status.stable_revision = Some(target.clone());
        ctx.status.current_revision = Some(target.clone());
        ctx.note("Started", format!("first revision {target}"));
        steady(ctx, canary, &target, replicas);
        return;
    };
    if stable == target {
        if ctx.status.current_revision.as_deref() != Some(target.as_str()) {
            ctx.note("Undone", format!("back to the stable revision {target}"));
        }
        ctx.status.current_revision = Some(target.clone());
        steady(ctx, canary, &target, replicas);
        return;
    }
    if ctx.status.current_revision.as_deref() != Some(target.as_str()) {
        ctx.status.current_revision = Some(target.clone());
        ctx.status.current_step_index = Some(0);
        ctx.status.step_started_at = Some(ts(ctx.obs.now));
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = None;
        cond::remove(&mut ctx.status.conditions, cond::ABORTED);
        ctx.note(
            "Started",
            format!("rolling out revision {target} over stable {stable}"),
        );
    }
    let mut aborted = ctx.status.phase == RolloutPhase::Aborted;
    if ctx.request(ANNOTATION_ABORT) && !aborted {
        aborted = true;
        abort(
            ctx,
            "AbortRequested",
            "aborted by request: all traffic back to stable",
        );
    }
    if ctx.request(ANNOTATION_RETRY) && aborted {
        aborted = false;
        ctx.status.current_step_index = Some(0);
        ctx.status.step_started_at = Some(ts(ctx.obs.now));
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = None;
        ctx.condition(cond::ABORTED, cond::FALSE, "Retried", "retried from step 0");
        ctx.note("Retried", "retrying from step 0");
    }
    if aborted {
        hold_aborted(ctx, canary, &stable, &target, replicas);
        return;
    }
    if ctx.request(ANNOTATION_PROMOTE_FULL) {
        ctx.status.current_step_index = Some(canary.steps.len() as i32);
        ctx.note("PromotedFull", "remaining steps skipped by request");
    }
    run_steps(ctx, canary, &stable, &target, replicas);
}

/// One revision serves; older ones are kept at zero up to the history limit.
fn steady(ctx: &mut Ctx<'_>, canary: &CanaryStrategy, revision: &str, replicas: i32) {
    ctx.apply(revision, replicas, Role::Stable);
    // Traffic is pinned to the serving revision before the others shrink.
    if routed(canary) {
        route(ctx, canary, revision, revision, 0);
    }
    retire_old(ctx, revision, None);
    report_serving(ctx, revision, replicas);
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

fn hold_aborted(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
) {
    ctx.status.phase = RolloutPhase::Aborted;
    ctx.apply(stable, replicas, Role::Stable);
    if routed(canary) {
        // Traffic leaves the canary first; its pods go after the scale-down delay.
        route(ctx, canary, stable, target, 0);
        let delay = i64::from(
            canary
                .abort_scale_down_delay_seconds
                .unwrap_or(crate::api::DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS),
        );
        let since = ctx.status.paused_at.as_ref().map_or(ctx.obs.now, |t| t.0);
        let due = since + SignedDuration::from_secs(delay);
        if ctx.obs.now >= due {
            ctx.apply(target, 0, Role::Canary);
        } else {
            ctx.wake_at(due);
        }
    } else {
        ctx.apply(target, 0, Role::Canary);
    }
    retire_old(ctx, stable, Some(target));
    ctx.status.canary_weight = Some(0);
    ctx.condition(cond::PAUSED, cond::FALSE, "Aborted", "");
}

/// Runs steps from the current one for as long as they complete at once.
fn run_steps(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
) {
    let steps = &canary.steps;
    let mut index = ctx.status.current_step_index.unwrap_or(0).max(0) as usize;
    let spec_paused = ctx.obs.rollout.spec.paused.unwrap_or(false);
    loop {
        let weight = weight_before(canary, index);
        if index >= steps.len() {
            promote(ctx, canary, stable, target, replicas);
            return;
        }
        let action = steps[index].action();
        let started = ctx
            .status
            .step_started_at
            .as_ref()
            .map_or(ctx.obs.now, |t| t.0);
        let done = match action {
            Some(StepAction::SetWeight(w)) => {
                set_weight(ctx, canary, stable, target, replicas, w, started)
            }
            Some(StepAction::Pause(duration)) => {
                shape(ctx, canary, stable, target, replicas, weight);
                match duration {
                    _ if ctx.request(ANNOTATION_PROMOTE) => true,
                    Some(d) => {
                        let due = started
                            + SignedDuration::try_from(d.as_std()).unwrap_or(SignedDuration::MAX);
                        if ctx.obs.now >= due {
                            true
                        } else {
                            ctx.wake_at(due);
                            pause(ctx, "TimedPause", format!("step {index}: pausing {d}"));
                            false
                        }
                    }
                    None => {
                        pause(
                            ctx,
                            "ManualGate",
                            format!("step {index}: waiting for promote"),
                        );
                        false
                    }
                }
            }
            Some(StepAction::Analysis(_)) | None => {
                // Validation rejects these before planning; stop rather than pass if one slips by.
                shape(ctx, canary, stable, target, replicas, weight);
                abort(
                    ctx,
                    "StepUnsupported",
                    &format!("step {index} cannot be run by this version of cutover"),
                );
                hold_aborted(ctx, canary, stable, target, replicas);
                return;
            }
        };
        if !done || spec_paused {
            if spec_paused {
                pause(ctx, "PausedBySpec", "spec.paused is true".to_string());
            }
            ctx.status.current_step_index = Some(index as i32);
            return;
        }
        ctx.note("StepCompleted", format!("step {index} completed"));
        index += 1;
        ctx.status.current_step_index = Some(index as i32);
        ctx.status.step_started_at = Some(ts(ctx.obs.now));
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.paused_at = None;
        ctx.status.message = None;
        ctx.condition(cond::PAUSED, cond::FALSE, "Resumed", "");
    }
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

/// The weight in force before step `index` (the last setWeight before it).
fn weight_before(canary: &CanaryStrategy, index: usize) -> i32 {
    canary.steps[..index.min(canary.steps.len())]
        .iter()
        .rev()
        .find_map(|s| match s.action() {
            Some(StepAction::SetWeight(w)) => Some(w),
            _ => None,
        })
        .unwrap_or(0)
}

/// Puts pods and traffic in the shape of `weight`; returns whether the shape is reached.
fn shape(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
    weight: i32,
) -> bool {
    if routed(canary) {
        let split = split_with_router(replicas, weight);
        ctx.apply(stable, split.stable, Role::Stable);
        ctx.apply(target, split.canary, Role::Canary);
        // Weight goes to the canary only once its pods are up.
        let ready = ctx.available(target) >= split.canary;
        let current = ctx.obs.route_weight.unwrap_or(0);
        let weight_now = if ready || weight < current {
            weight
        } else {
            current
        };
        route(ctx, canary, stable, target, weight_now);
        ctx.status.canary_weight = Some(weight_now);
        ready && weight_now == weight
    } else {
        let split = split_without_router(replicas, weight);
        let canary_up = ctx.available(target) >= split.canary;
        // Stable shrinks only once the canary pods that replace its capacity are available.
        let stable_now = ctx.revision(stable).map_or(replicas, |r| r.replicas);
        let stable_target = if canary_up {
            split.stable
        } else {
            split.stable.max(stable_now)
        };
        ctx.apply(stable, stable_target, Role::Stable);
        ctx.apply(target, split.canary, Role::Canary);
        let achieved = achieved_weight(
            ctx.available(stable).min(stable_target),
            ctx.available(target),
        );
        ctx.status.canary_weight = Some(achieved);
        // Reached once the stable's scale-down has been written and observed.
        canary_up
            && ctx
                .revision(stable)
                .is_some_and(|r| r.replicas == split.stable)
    }
}

#[allow(clippy::too_many_arguments)]
fn set_weight(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
    weight: i32,
    started: Timestamp,
) -> bool {
    let reached = shape(ctx, canary, stable, target, replicas, weight);
    if reached {
        return true;
    }
    ctx.status.phase = RolloutPhase::Progressing;
    let deadline = started
        + SignedDuration::from_secs(i64::from(ctx.obs.rollout.spec.progress_deadline_seconds()));
    if ctx.obs.now >= deadline {
        let message = format!(
            "revision {target} did not become available within {}s",
            ctx.obs.rollout.spec.progress_deadline_seconds()
        );
        if ctx.obs.rollout.spec.progress_deadline_abort() {
            abort(ctx, "ProgressDeadlineExceeded", &message);
            hold_aborted(ctx, canary, stable, target, replicas);
        } else {
            ctx.status.phase = RolloutPhase::Degraded;
            ctx.status.message = Some(message.clone());
            ctx.condition(
                cond::PROGRESSING,
                cond::FALSE,
                "ProgressDeadlineExceeded",
                message,
            );
        }
    } else {
        ctx.wake_at(deadline);
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "RolloutProgressing",
            format!("setting weight {weight}"),
        );
    }
    false
}

fn promote(ctx: &mut Ctx<'_>, canary: &CanaryStrategy, stable: &str, target: &str, replicas: i32) {
    ctx.apply(target, replicas, Role::Canary);
    if routed(canary) {
        ctx.apply(stable, replicas, Role::Stable);
    }
    if ctx.available(target) < replicas {
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(format!(
            "promoting {target}: {} of {replicas} pods available",
            ctx.available(target)
        ));
        ctx.condition(
            cond::PROGRESSING,
            cond::TRUE,
            "Promoting",
            "scaling the new revision to full size",
        );
        if routed(canary) {
            let w = ctx.obs.route_weight.unwrap_or(0);
            ctx.status.canary_weight = Some(w);
        }
        return;
    }
    ctx.status.stable_revision = Some(target.to_string());
    ctx.note("Promoted", format!("revision {target} is now stable"));
    // Traffic moves to the new stable before the old one shrinks.
    steady(ctx, canary, target, replicas);
}

/// Pins the routed Services and sets the route weight, writing only what differs.
fn route(ctx: &mut Ctx<'_>, canary: &CanaryStrategy, stable: &str, target: &str, weight: i32) {
    let pins = [
        (canary.stable_service.clone(), stable),
        (canary.canary_service.clone(), target),
    ];
    for (service, revision) in pins {
        if let Some(service) = service
            && ctx
                .obs
                .service_revisions
                .get(&service)
                .cloned()
                .flatten()
                .as_deref()
                != Some(revision)
        {
            ctx.actions.push(Action::PinService {
                service,
                revision: revision.to_string(),
            });
        }
    }
    if ctx.obs.route_weight != Some(weight) {
        ctx.actions.push(Action::SetRouteWeight { canary: weight });
    }
}

fn finish(ctx: &mut Ctx<'_>) {
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
    let total: i32 = ctx.obs.revisions.iter().map(|r| r.replicas).sum();
    let available: i32 = ctx.obs.revisions.iter().map(|r| r.available).sum();
    ctx.status.replicas = Some(total);
    ctx.status.available_replicas = Some(available);
    ctx.status.ready_replicas = Some(available);
    ctx.status.selector = ctx
        .obs
        .rollout
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        });
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
