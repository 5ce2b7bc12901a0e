//! Deployment windows in a Rollout's decision: a new revision starts, and a rollout under
//! way enters its next step, only while the windows are open. What is under way stays as it
//! is; abort, retry and undo are never held.

use super::record::{Ctx, ts};
use crate::api::{ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, RolloutPhase, conditions as cond};

/// Condition reason (Paused and Progressing) of a rollout held by its windows.
pub const REASON: &str = "OutsideWindow";

/// Whether a new revision must wait for a window before it starts; when it must, the
/// rollout is marked held. The caller keeps the stable revision serving.
pub(super) fn start_held(ctx: &mut Ctx<'_>) -> bool {
    let target = ctx.obs.target_revision.clone();
    if ctx.window.is_open() || ctx.status.current_revision.as_deref() == Some(target.as_str()) {
        return false;
    }
    ctx.status.canary_weight = Some(0);
    hold(
        ctx,
        &format!("revision {target} waits for a deployment window"),
    );
    true
}

/// Called where a rollout would enter its next step (`what`, e.g. `step 3`): when the
/// windows are closed, the step is left unstarted and the rollout held. Returns whether
/// it is held.
pub(super) fn enter_held(ctx: &mut Ctx<'_>, what: &str) -> bool {
    if ctx.window.is_open() {
        ctx.status.step_started_at = Some(ts(ctx.obs.now));
        return false;
    }
    ctx.status.step_started_at = None;
    hold(ctx, &format!("{what} waits for a deployment window"));
    true
}

/// Whether the current step was entered while the windows were closed and still may not
/// start; once they open it starts now, its pause counted from here.
pub(super) fn step_held(ctx: &mut Ctx<'_>, what: &str) -> bool {
    if ctx.status.step_started_at.is_some() {
        return false;
    }
    if !ctx.window.is_open() {
        hold(ctx, &format!("{what} waits for a deployment window"));
        return true;
    }
    ctx.status.step_started_at = Some(ts(ctx.obs.now));
    ctx.status.phase = RolloutPhase::Progressing;
    ctx.status.paused_at = None;
    ctx.status.message = None;
    ctx.condition(cond::PAUSED, cond::FALSE, "WindowOpened", "");
    ctx.note(
        "WindowOpened",
        format!("{what} starts: a deployment window is open"),
    );
    false
}

/// Holds `what` (e.g. `switching the active Service to abc`) until a window opens; returns
/// whether it is held.
pub(super) fn held(ctx: &mut Ctx<'_>, what: &str) -> bool {
    if ctx.window.is_open() {
        return false;
    }
    hold(ctx, &format!("{what} waits for a deployment window"));
    true
}

/// Takes a promote-full request: granted while the windows are open, refused (and said so)
/// while they are closed.
pub(super) fn promote_full(ctx: &mut Ctx<'_>) -> bool {
    if !ctx.request(ANNOTATION_PROMOTE_FULL) {
        return false;
    }
    if let Some(why) = ctx.window.message() {
        ctx.note(
            "PromoteRefused",
            format!("promote refused outside the deployment windows: {why}"),
        );
        return false;
    }
    true
}

/// Marks the rollout held by its windows: Paused, why and until when, woken when the next
/// window opens. A promote request is refused, as the windows are the platform's to change.
fn hold(ctx: &mut Ctx<'_>, what: &str) {
    let gate = ctx.window.clone();
    let why = gate.message().unwrap_or_default();
    let opens_at = match gate {
        crate::window::Gate::Closed { opens_at, .. } => opens_at,
        crate::window::Gate::Open => None,
    };
    hold_for(
        ctx,
        Hold {
            reason: REASON,
            event: "WaitingForWindow",
            message: format!("{what}: {why}"),
            refusal: format!("promote refused outside the deployment windows: {why}"),
            until: opens_at,
        },
    );
}

/// A rollout held by something outside it: a window, a Rollout it requires.
pub(super) struct Hold {
    /// Condition reason (Paused and Progressing).
    pub(super) reason: &'static str,
    /// Event reason when the hold begins or its message changes.
    pub(super) event: &'static str,
    /// Status message.
    pub(super) message: String,
    /// Event message for a refused promote request.
    pub(super) refusal: String,
    /// When to look again, if known.
    pub(super) until: Option<jiff::Timestamp>,
}

/// Marks the rollout held: Paused with the hold's reason and message, announced once, woken
/// when it may end. A promote request is refused: the hold is not a person's to step over.
pub(super) fn hold_for(ctx: &mut Ctx<'_>, hold: Hold) {
    let promote = ctx.request(ANNOTATION_PROMOTE);
    let promote_full = ctx.request(ANNOTATION_PROMOTE_FULL);
    if promote || promote_full {
        ctx.note("PromoteRefused", hold.refusal);
    }
    let held_already = ctx.status.phase == RolloutPhase::Paused
        && cond::find(&ctx.status.conditions, cond::PAUSED)
            .is_some_and(|c| c.reason == hold.reason);
    if !held_already {
        ctx.status.paused_at = Some(ts(ctx.obs.now));
    }
    if ctx.status.message.as_deref() != Some(hold.message.as_str()) {
        ctx.note(hold.event, hold.message.clone());
    }
    ctx.status.phase = RolloutPhase::Paused;
    ctx.status.message = Some(hold.message.clone());
    ctx.condition(cond::PAUSED, cond::TRUE, hold.reason, hold.message.clone());
    ctx.condition(cond::PROGRESSING, cond::TRUE, hold.reason, hold.message);
    if let Some(at) = hold.until {
        ctx.wake_at(at);
    }
}
