//! Rolling planning: the new revision replaces the old in batches, never leaving fewer than
//! `replicas - maxUnavailable` pods available, with an optional pause between batches.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::analysis::{self, Gate};
use super::record::{
    Ctx, Role, abort, abort_or_retry, begin, deadline_aborts, pause, report_serving, retire_old,
    settled_revision,
};
use super::{requires, window};
use crate::api::{ANNOTATION_PROMOTE, RollingStrategy, RolloutPhase, conditions as cond};

/// Resolves a count or a percentage of `replicas` (percentages round up for batches, down
/// for unavailability, as Kubernetes does for maxSurge and maxUnavailable).
pub fn resolve(
    value: Option<&IntOrString>,
    replicas: i32,
    default_percent: i32,
    round_up: bool,
) -> i32 {
    let percent = |p: i32| {
        let exact = f64::from(replicas) * f64::from(p) / 100.0;
        (if round_up {
            exact.ceil()
        } else {
            exact.floor()
        }) as i32
    };
    match value {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse().ok())
            .map_or(percent(default_percent), percent),
        None => percent(default_percent),
    }
    .clamp(0, replicas.max(0))
}

/// Plans a rolling Rollout.
pub(super) fn plan(ctx: &mut Ctx<'_>, rolling: &RollingStrategy) {
    let target = ctx.obs.target_revision.clone();
    let replicas = ctx.obs.rollout.spec.replicas();
    if let Some(revision) = settled_revision(ctx) {
        serve(ctx, &revision, replicas);
        return;
    }
    let stable = ctx.status.stable_revision.clone().unwrap_or_default();
    if window::start_held(ctx) || requires::start_held(ctx) {
        ctx.apply(&stable, replicas, Role::Stable);
        retire_old(ctx, &stable, None);
        return;
    }
    begin(
        ctx,
        &target,
        format!("replacing {stable} with {target} in batches"),
    );
    let aborted = abort_or_retry(
        ctx,
        "aborted by request: the old revision is scaled back up",
    );
    if aborted {
        // Old pods come back before new ones go, so availability holds on the way back too.
        ctx.apply(&stable, replicas, Role::Stable);
        let new = if ctx.available(&stable) >= replicas {
            0
        } else {
            ctx.revision(&target).map_or(0, |r| r.replicas)
        };
        ctx.apply(&target, new, Role::Canary);
        retire_old(ctx, &stable, Some(&target));
        ctx.status.canary_weight = Some(0);
        return;
    }
    let batch = resolve(rolling.batch_size.as_ref(), replicas, 25, true).max(1);
    let max_unavailable = resolve(rolling.max_unavailable.as_ref(), replicas, 0, false);
    let batches = (replicas + batch - 1) / batch.max(1);
    if window::promote_full(ctx) {
        ctx.status.current_step_index = Some(batches);
    }
    loop {
        let index = ctx
            .status
            .current_step_index
            .unwrap_or(0)
            .clamp(0, batches.max(1));
        // Batch `index` (1-based once started) wants `index * batch` new pods.
        let batch_no = (index + 1).min(batches.max(1));
        // Entered while the windows were closed: the pods stay as the last batch left them.
        if window::step_held(ctx, &format!("batch {batch_no} of {batches}")) {
            return;
        }
        let new_target = (batch_no * batch).min(replicas);
        let new_available = ctx.available(&target);
        let old_target = (replicas - new_target)
            .max(replicas - max_unavailable - new_available)
            .min(replicas);
        let old_now = ctx.revision(&stable).map_or(replicas, |r| r.replicas);
        let old_target = if new_available >= new_target {
            replicas - new_target
        } else {
            old_target.min(old_now)
        };
        ctx.apply(&target, new_target, Role::Canary);
        ctx.apply(&stable, old_target, Role::Stable);
        retire_old(ctx, &stable, Some(&target));
        ctx.status.canary_weight = Some(if replicas > 0 {
            new_available.min(replicas) * 100 / replicas
        } else {
            0
        });
        let done = new_available >= new_target
            && ctx
                .revision(&stable)
                .is_some_and(|r| r.replicas == replicas - new_target);
        if !done {
            ctx.status.phase = RolloutPhase::Progressing;
            ctx.status.message = Some(format!(
                "batch {batch_no} of {batches}: {new_available} of {new_target} new pods available"
            ));
            deadline(ctx, &stable, &target, replicas);
            return;
        }
        if new_target >= replicas {
            ctx.status.stable_revision = Some(target.clone());
            ctx.note("Promoted", format!("revision {target} replaced {stable}"));
            serve(ctx, &target, replicas);
            return;
        }
        // Between batches: analysis, then the pause, as configured.
        if let Some(spec) = &rolling.analysis {
            let name = format!("batch-{batch_no}");
            if ctx.request(ANNOTATION_PROMOTE) {
                ctx.note("AnalysisSkipped", format!("{name}: skipped by promote"));
            } else {
                match analysis::run(ctx, &name, spec, &target) {
                    Gate::Passed => {}
                    Gate::Waiting(message) => {
                        ctx.status.phase = RolloutPhase::Progressing;
                        ctx.status.message =
                            Some(format!("after batch {batch_no} of {batches}: {message}"));
                        ctx.condition(cond::PROGRESSING, cond::TRUE, "AnalysisRunning", message);
                        ctx.status.current_step_index = Some(index);
                        return;
                    }
                    Gate::Blocked(reason, message) => {
                        pause(
                            ctx,
                            reason,
                            format!("after batch {batch_no} of {batches}: {message}"),
                        );
                        ctx.status.current_step_index = Some(index);
                        return;
                    }
                    Gate::Failed(reason, message) => {
                        abort(
                            ctx,
                            reason,
                            &format!("after batch {batch_no} of {batches}: {message}"),
                        );
                        // The next decision scales the old revision back up.
                        ctx.wake_at(ctx.obs.now);
                        return;
                    }
                }
            }
        }
        let started = ctx
            .status
            .step_started_at
            .as_ref()
            .map_or(ctx.obs.now, |t| t.0);
        let waited = match rolling.pause.as_ref().map(|p| p.duration) {
            None => true,
            Some(_) if ctx.request(ANNOTATION_PROMOTE) => true,
            Some(Some(d)) => {
                let due =
                    started + SignedDuration::try_from(d.as_std()).unwrap_or(SignedDuration::MAX);
                if ctx.obs.now >= due {
                    true
                } else {
                    ctx.wake_at(due);
                    pause(
                        ctx,
                        "TimedPause",
                        format!("after batch {batch_no} of {batches}: pausing {d}"),
                    );
                    false
                }
            }
            Some(None) => {
                pause(
                    ctx,
                    "ManualGate",
                    format!("after batch {batch_no} of {batches}: waiting for promote"),
                );
                false
            }
        };
        if !waited || ctx.obs.rollout.spec.paused.unwrap_or(false) {
            ctx.status.current_step_index = Some(index);
            return;
        }
        ctx.note(
            "StepCompleted",
            format!("batch {batch_no} of {batches} completed"),
        );
        ctx.status.current_step_index = Some(index + 1);
        let next = (index + 2).min(batches.max(1));
        if window::enter_held(ctx, &format!("batch {next} of {batches}")) {
            return;
        }
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.paused_at = None;
        ctx.status.message = None;
        ctx.condition(cond::PAUSED, cond::FALSE, "Resumed", "");
    }
}

fn serve(ctx: &mut Ctx<'_>, revision: &str, replicas: i32) {
    ctx.apply(revision, replicas, Role::Stable);
    retire_old(ctx, revision, None);
    report_serving(ctx, revision, replicas);
}

fn deadline(ctx: &mut Ctx<'_>, stable: &str, target: &str, replicas: i32) {
    if deadline_aborts(ctx, target) {
        ctx.apply(stable, replicas, Role::Stable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentages() {
        assert_eq!(resolve(Some(&IntOrString::Int(2)), 6, 25, true), 2);
        assert_eq!(
            resolve(Some(&IntOrString::String("25%".into())), 6, 25, true),
            2,
            "1.5 rounds up for batches"
        );
        assert_eq!(
            resolve(Some(&IntOrString::String("25%".into())), 6, 0, false),
            1,
            "1.5 rounds down for unavailability"
        );
        assert_eq!(resolve(None, 10, 25, true), 3);
        assert_eq!(resolve(None, 10, 0, false), 0);
        assert_eq!(
            resolve(Some(&IntOrString::Int(50)), 6, 25, true),
            6,
            "never more than replicas"
        );
    }
}
