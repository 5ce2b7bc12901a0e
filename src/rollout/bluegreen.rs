//! Blue-green planning: the new revision at full size behind the preview Service, the active
//! Service switched in one write, the old revision kept for `scaleDownDelaySeconds` so that
//! an abort or undo switches back at once.

use jiff::SignedDuration;

use super::analysis::{self, Gate};
use super::record::{
    Ctx, Role, abort, abort_or_retry, begin, deadline_aborts, pause, report_serving, retire_old,
    settled_revision, ts,
};
use super::{requires, window};
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, BlueGreenStrategy,
    DEFAULT_SCALE_DOWN_DELAY_SECONDS, RolloutPhase, conditions as cond,
};

/// Plans a blue-green Rollout.
pub(super) fn plan(ctx: &mut Ctx<'_>, bg: &BlueGreenStrategy) {
    let target = ctx.obs.target_revision.clone();
    let replicas = ctx.obs.rollout.spec.replicas();
    // Abort within the scale-down window: the previous revision is still up, switch back.
    let active = ctx.status.stable_revision.clone();
    if active.as_deref() == Some(target.as_str())
        && ctx.request(ANNOTATION_ABORT)
        && let Some(previous) = ctx
            .status
            .previous_revision
            .clone()
            .filter(|p| ctx.available(p) >= replicas)
    {
        ctx.status.stable_revision = Some(previous.clone());
        ctx.status.previous_revision = None;
        ctx.status.scale_down_at = None;
        ctx.pin(&bg.active_service, &previous);
        abort(
            ctx,
            "AbortRequested",
            &format!("aborted by request: active Service back on {previous}"),
        );
        hold_aborted(ctx, bg, &previous, &target, replicas);
        return;
    }
    if let Some(revision) = settled_revision(ctx) {
        serve(ctx, bg, &revision, replicas);
        return;
    }
    let active = active.unwrap_or_default();
    let undo = ctx.status.previous_revision.as_deref() == Some(target.as_str())
        && ctx.available(&target) >= replicas;
    if !undo && (window::start_held(ctx) || requires::start_held(ctx)) {
        hold_start(ctx, bg, &active, replicas);
        return;
    }
    begin(
        ctx,
        &target,
        format!("revision {target} behind the preview Service; {active} stays active"),
    );
    // Undo to the revision still scaled from the last switch: switch back at once.
    if ctx.status.previous_revision.as_deref() == Some(target.as_str())
        && ctx.available(&target) >= replicas
    {
        ctx.note(
            "Undone",
            format!("active Service switched back to {target}"),
        );
        switch(ctx, bg, &active, &target, replicas);
        return;
    }
    let aborted = abort_or_retry(ctx, "aborted by request: the active Service never moved");
    if aborted {
        hold_aborted(ctx, bg, &active, &target, replicas);
        return;
    }
    preview(ctx, bg, &active, &target, replicas);
}

/// One revision serves through both Services; the previous one goes after the delay.
fn serve(ctx: &mut Ctx<'_>, bg: &BlueGreenStrategy, revision: &str, replicas: i32) {
    ctx.apply(revision, replicas, Role::Active);
    ctx.pin(&bg.active_service, revision);
    if let Some(preview) = &bg.preview_service {
        ctx.pin(preview, revision);
    }
    let previous = ctx.status.previous_revision.clone();
    let mut scale_down_at = ctx.status.scale_down_at.as_ref().map(|t| t.0);
    let mut waiting = None;
    if let (Some(spec), Some(prev)) = (&bg.post_promotion_analysis, previous.as_deref())
        && ctx.available(prev) >= replicas
    {
        match analysis::run(ctx, analysis::POST_PROMOTION, spec, revision) {
            Gate::Passed => {}
            Gate::Waiting(message) => waiting = Some((None, message)),
            Gate::Blocked(reason, message) => {
                if ctx.request(ANNOTATION_PROMOTE) {
                    analysis::resume(ctx, analysis::POST_PROMOTION);
                    ctx.note(
                        "AnalysisResumed",
                        "post-promotion analysis resumed by promote",
                    );
                }
                waiting = Some((Some(reason), message));
            }
            Gate::Failed(reason, message) => {
                // Switch back at once: the previous revision is still scaled.
                let prev = prev.to_string();
                ctx.status.stable_revision = Some(prev.clone());
                ctx.status.previous_revision = None;
                ctx.status.scale_down_at = None;
                ctx.pin(&bg.active_service, &prev);
                abort(
                    ctx,
                    reason,
                    &format!("{message}; active Service switched back to {prev}"),
                );
                hold_aborted(ctx, bg, &prev, revision, replicas);
                return;
            }
        }
        if waiting.is_some() {
            // The previous revision stays until the verdict, whatever the delay said.
            scale_down_at = Some(ctx.obs.now + SignedDuration::from_secs(3600));
        }
    }
    match (previous, scale_down_at) {
        (Some(prev), Some(at)) if ctx.obs.now < at => {
            ctx.apply(&prev, replicas, Role::Previous);
            retire_old(ctx, revision, Some(&prev));
            ctx.wake_at(at);
        }
        _ => {
            ctx.status.previous_revision = None;
            ctx.status.scale_down_at = None;
            retire_old(ctx, revision, None);
        }
    }
    let switched = ctx
        .obs
        .service_revisions
        .get(&bg.active_service)
        .cloned()
        .flatten()
        .as_deref()
        == Some(revision);
    match waiting {
        // Recorded before it is acted on: done only once the switch is seen, so Ready never
        // claims the new revision while the active Service still selects the old one.
        None if !switched => {
            let message = format!("switching the active Service to {revision}");
            ctx.status.canary_weight = Some(0);
            ctx.status.phase = RolloutPhase::Progressing;
            ctx.status.message = Some(message.clone());
            ctx.condition(
                cond::PROGRESSING,
                cond::TRUE,
                "SwitchingActiveService",
                message,
            );
        }
        None => report_serving(ctx, revision, replicas),
        Some((None, message)) => {
            ctx.status.canary_weight = Some(0);
            ctx.status.phase = RolloutPhase::Progressing;
            ctx.status.message = Some(message.clone());
            ctx.condition(cond::PROGRESSING, cond::TRUE, "AnalysisRunning", message);
        }
        Some((Some(reason), message)) => {
            ctx.status.canary_weight = Some(0);
            pause(ctx, reason, message);
        }
    }
}

fn hold_aborted(
    ctx: &mut Ctx<'_>,
    bg: &BlueGreenStrategy,
    active: &str,
    target: &str,
    replicas: i32,
) {
    ctx.status.phase = RolloutPhase::Aborted;
    ctx.apply(active, replicas, Role::Active);
    ctx.pin(&bg.active_service, active);
    if let Some(preview) = &bg.preview_service {
        ctx.pin(preview, active);
    }
    ctx.apply(target, 0, Role::Preview);
    retire_old(ctx, active, Some(target));
    ctx.status.canary_weight = Some(0);
    ctx.condition(cond::PAUSED, cond::FALSE, "Aborted", "");
}

/// A new revision waits for a deployment window: the active one keeps serving through
/// both Services, and the one before it stays for the rest of its scale-down delay.
fn hold_start(ctx: &mut Ctx<'_>, bg: &BlueGreenStrategy, active: &str, replicas: i32) {
    ctx.apply(active, replicas, Role::Active);
    ctx.pin(&bg.active_service, active);
    if let Some(preview) = &bg.preview_service {
        ctx.pin(preview, active);
    }
    let previous = ctx.status.previous_revision.clone();
    match (previous, ctx.status.scale_down_at.as_ref().map(|t| t.0)) {
        (Some(prev), Some(at)) if ctx.obs.now < at => {
            ctx.apply(&prev, replicas, Role::Previous);
            retire_old(ctx, active, Some(&prev));
            ctx.wake_at(at);
        }
        _ => {
            ctx.status.previous_revision = None;
            ctx.status.scale_down_at = None;
            retire_old(ctx, active, None);
        }
    }
}

/// The new revision comes up behind the preview Service, then is promoted.
fn preview(ctx: &mut Ctx<'_>, bg: &BlueGreenStrategy, active: &str, target: &str, replicas: i32) {
    ctx.apply(active, replicas, Role::Active);
    ctx.pin(&bg.active_service, active);
    let preview_replicas = bg.preview_replica_count.unwrap_or(replicas).min(replicas);
    // Outside the windows a promote request is left for the hold to refuse.
    let open = ctx.window.is_open();
    let promote_full = open && ctx.request(ANNOTATION_PROMOTE_FULL);
    let promote = open && (ctx.request(ANNOTATION_PROMOTE) || promote_full);
    let promoting = promote || ctx.status.message.as_deref() == Some(PROMOTING);
    let size = if promoting {
        replicas
    } else {
        preview_replicas
    };
    ctx.apply(target, size, Role::Preview);
    if let Some(preview) = &bg.preview_service {
        ctx.pin(preview, target);
    }
    retire_old(ctx, active, Some(target));
    ctx.status.canary_weight = Some(0);
    let available = ctx.available(target);
    if available < size {
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.message = Some(if promoting {
            PROMOTING.to_string()
        } else {
            format!("preview {target}: {available} of {size} pods available")
        });
        if !promoting {
            if deadline_aborts(ctx, target) {
                hold_aborted(ctx, bg, active, target, replicas);
            } else if ctx.status.phase == RolloutPhase::Progressing {
                ctx.condition(
                    cond::PROGRESSING,
                    cond::TRUE,
                    "PreviewScaling",
                    format!("{available} of {size} preview pods available"),
                );
            }
        }
        return;
    }
    if let Some(spec) = &bg.pre_promotion_analysis
        && !promoting
    {
        // A promote request skips the gate, as it skips a canary's analysis step.
        match analysis::run(ctx, analysis::PRE_PROMOTION, spec, target) {
            Gate::Passed => {}
            Gate::Waiting(message) => {
                ctx.status.phase = RolloutPhase::Progressing;
                ctx.status.message = Some(message.clone());
                ctx.condition(cond::PROGRESSING, cond::TRUE, "AnalysisRunning", message);
                return;
            }
            Gate::Blocked(reason, message) => {
                pause(ctx, reason, message);
                return;
            }
            Gate::Failed(reason, message) => {
                abort(ctx, reason, &message);
                hold_aborted(ctx, bg, active, target, replicas);
                return;
            }
        }
    }
    if window::held(ctx, &format!("switching the active Service to {target}")) {
        return;
    }
    if promoting {
        switch(ctx, bg, active, target, replicas);
        return;
    }
    // Ready behind the preview Service: promote now, after a delay, or when a person says.
    if ctx.status.paused_at.is_none() {
        ctx.status.paused_at = Some(ts(ctx.obs.now));
    }
    let ready_since = ctx.status.paused_at.as_ref().map_or(ctx.obs.now, |t| t.0);
    let auto =
        bg.auto_promotion_enabled.unwrap_or(true) && !ctx.obs.rollout.spec.paused.unwrap_or(false);
    if auto {
        let due = ready_since
            + SignedDuration::from_secs(i64::from(bg.auto_promotion_seconds.unwrap_or(0)));
        if ctx.obs.now >= due {
            if preview_replicas < replicas {
                ctx.status.message = Some(PROMOTING.to_string());
                ctx.apply(target, replicas, Role::Preview);
                ctx.status.phase = RolloutPhase::Progressing;
                return;
            }
            switch(ctx, bg, active, target, replicas);
            return;
        }
        ctx.wake_at(due);
        pause(
            ctx,
            "AutoPromotionDelay",
            format!("promoting {target} at {due}"),
        );
    } else {
        pause(
            ctx,
            "ManualGate",
            format!("revision {target} is ready behind the preview Service; waiting for promote"),
        );
    }
}

const PROMOTING: &str = "promoting: scaling the new revision to full size";

/// Switches the active Service to `target` in one write; the old active stays scaled.
fn switch(ctx: &mut Ctx<'_>, bg: &BlueGreenStrategy, old: &str, target: &str, replicas: i32) {
    let delay = i64::from(
        bg.scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS),
    );
    ctx.status.stable_revision = Some(target.to_string());
    ctx.status.previous_revision = Some(old.to_string());
    let at = ctx.obs.now + SignedDuration::from_secs(delay);
    ctx.status.scale_down_at = Some(ts(at));
    ctx.status.paused_at = None;
    ctx.status.message = None;
    ctx.note(
        "Promoted",
        format!("active Service switched to {target}; {old} kept for {delay}s"),
    );
    serve(ctx, bg, target, replicas);
}
