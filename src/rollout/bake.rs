//! The bake after promotion: the new revision is watched for `spec.bake.duration` with the
//! previous one kept (at zero, ready to come back). A failure restores the previous revision
//! — scaled up first, then switched to, so nothing is left without pods — and the release
//! ends Aborted, which rolls back its migrations and flags as an abort does. The verify
//! window after it only alerts.

use jiff::{SignedDuration, Timestamp};

use super::analysis::{self, Gate};
use super::record::{Ctx, Role, abort, ts};
use crate::api::{Bake, BakePhase, BakeStatus, RolloutPhase, conditions as cond};

/// Longest bake or verify window.
pub const MAX_BAKE_SECS: u64 = 168 * 3600;

fn after(start: Timestamp, d: crate::api::Duration) -> Timestamp {
    start
        .checked_add(SignedDuration::try_from(d.as_std()).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// While a failed bake brings the previous revision back: scales it up beside the serving
/// one and, once it can serve in full, switches to it by aborting the release. Returns
/// whether the decision is made (the strategy must not act this time).
pub(super) fn restoring(ctx: &mut Ctx<'_>) -> bool {
    let Some(mut bake) = ctx.status.bake.clone() else {
        return false;
    };
    if bake.phase != BakePhase::Restoring {
        return false;
    }
    let target = ctx.obs.target_revision.clone();
    if target != bake.revision {
        // A person set another template meanwhile: theirs is the next release.
        bake.phase = BakePhase::Superseded;
        ctx.status.bake = Some(bake);
        return false;
    }
    let replicas = ctx.obs.rollout.spec.replicas();
    let previous = bake.previous.clone();
    let why = bake.message.clone().unwrap_or_default();
    if ctx.revision(&previous).is_none() {
        let message = format!(
            "bake of {target} failed: {why}; the Deployment of {previous} is gone, so it cannot \
             be restored: undo by hand"
        );
        ctx.status.message = Some(message.clone());
        ctx.condition(cond::PROGRESSING, cond::FALSE, "RestoreImpossible", message);
        return true;
    }
    ctx.apply(&previous, replicas, Role::Previous);
    let available = ctx.available(&previous);
    if available < replicas {
        let message = format!(
            "bake of {target} failed: {why}; restoring {previous}: {available} of {replicas} \
             pods available"
        );
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(message.clone());
        ctx.condition(cond::PROGRESSING, cond::TRUE, "RestoringPrevious", message);
        return true;
    }
    ctx.status.stable_revision = Some(previous.clone());
    ctx.status.current_revision = Some(target.clone());
    bake.phase = BakePhase::RolledBack;
    ctx.status.bake = Some(bake);
    abort(
        ctx,
        "BakeFailed",
        &format!("bake of {target} failed: {why}; rolled back to {previous}"),
    );
    false
}

/// Starts the bake of a revision promoted by this decision, and goes on with the bake or
/// verify window of the one promoted before.
pub(super) fn watch(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.obs.rollout.spec.bake.clone() else {
        ctx.status.bake = None;
        return;
    };
    start(ctx, &spec);
    let Some(mut bake) = ctx.status.bake.clone() else {
        return;
    };
    let serving = ctx.status.stable_revision.as_deref() == Some(bake.revision.as_str());
    let live = matches!(bake.phase, BakePhase::Baking | BakePhase::Verifying);
    if live && (!serving || ctx.obs.target_revision != bake.revision) {
        bake.phase = BakePhase::Superseded;
        bake.message = Some(format!(
            "ended: revision {} is being rolled out",
            ctx.obs.target_revision
        ));
        ctx.status.bake = Some(bake);
        return;
    }
    let now = ctx.obs.now;
    let started = bake.started_at.0;
    if bake.phase == BakePhase::Baking {
        let end = after(started, spec.duration);
        let gate = spec
            .analysis
            .as_ref()
            .map(|a| analysis::run(ctx, analysis::BAKE, a, &bake.revision));
        match gate {
            Some(Gate::Failed(_, message)) => {
                bake.phase = BakePhase::Restoring;
                bake.message = Some(message.clone());
                ctx.note(
                    "BakeFailed",
                    format!(
                        "bake of {} failed: {message}; restoring {}",
                        bake.revision, bake.previous
                    ),
                );
                ctx.condition(
                    cond::PROGRESSING,
                    cond::TRUE,
                    "BakeFailed",
                    format!("bake of {} failed: {message}", bake.revision),
                );
                ctx.status.bake = Some(bake);
                ctx.wake_at(now);
                return;
            }
            Some(Gate::Blocked(_, message)) => bake.message = Some(message),
            _ => {}
        }
        if now < end {
            ctx.wake_at(end);
            ctx.status.bake = Some(bake);
            return;
        }
        ctx.note(
            "BakePassed",
            format!(
                "{} baked for {} without failing",
                bake.revision, spec.duration
            ),
        );
        bake.phase = match &spec.verify {
            Some(v) if now < after(started, v.duration) => BakePhase::Verifying,
            Some(_) => BakePhase::Verified,
            None => BakePhase::Passed,
        };
    }
    if bake.phase == BakePhase::Verifying
        && let Some(verify) = &spec.verify
    {
        let end = after(started, verify.duration);
        match analysis::run(ctx, analysis::VERIFY, &verify.analysis, &bake.revision) {
            Gate::Failed(_, message) => {
                // An alert only: the release stays, a person decides.
                bake.phase = BakePhase::VerifyFailed;
                bake.message = Some(message.clone());
                ctx.note(
                    "VerifyFailed",
                    format!(
                        "verify of {} failed: {message}; nothing was rolled back: undo with \
                         `kubectl cutover undo` if needed",
                        bake.revision
                    ),
                );
            }
            _ if now >= end => bake.phase = BakePhase::Verified,
            _ => ctx.wake_at(end),
        }
    }
    ctx.status.bake = Some(bake);
}

/// A revision this decision promoted over another one starts its bake; the first revision
/// has nothing to go back to.
fn start(ctx: &mut Ctx<'_>, spec: &Bake) {
    let before = ctx.stable_before();
    let stable = ctx.status.stable_revision.clone();
    let target = ctx.obs.target_revision.clone();
    let (Some(previous), Some(stable)) = (before, stable) else {
        return;
    };
    if previous == stable || stable != target || ctx.status.phase == RolloutPhase::Aborted {
        return;
    }
    if ctx.revision(&previous).is_none() {
        return;
    }
    ctx.note(
        "BakeStarted",
        format!(
            "baking {target} for {}; {previous} is kept ready to come back",
            spec.duration
        ),
    );
    ctx.status.bake = Some(BakeStatus {
        revision: target,
        previous,
        phase: BakePhase::Baking,
        started_at: ts(ctx.obs.now),
        message: None,
    });
}
