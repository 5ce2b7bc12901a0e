//! Canary planning: steps of weight and pauses, the replica arithmetic behind a weight,
//! and pinning Services and route weights when a router sets traffic exactly.

use jiff::SignedDuration;

use super::analysis::{self, Gate};
use super::record::{
    Action, Ctx, Role, abort, abort_or_retry, begin, deadline_aborts, pause, report_serving,
    retire_old, settled_revision,
};
use super::{requires, route_rules, window};
use crate::api::{
    ANNOTATION_PROMOTE, CanaryScale, CanaryStrategy, RolloutPhase, RouteKind, StepAction,
    conditions as cond,
};

/// Replicas of the stable and canary revisions for one weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Pods of the stable revision.
    pub stable: i32,
    /// Pods of the canary revision.
    pub canary: i32,
}

impl Split {
    /// The traffic share of the canary, in percent, when traffic follows pods.
    pub fn weight(&self) -> i32 {
        achieved_weight(self.stable, self.canary)
    }
}

/// Percentage of pods (and so of traffic without a router) that are canary.
pub fn achieved_weight(stable: i32, canary: i32) -> i32 {
    let total = stable.max(0) + canary.max(0);
    if total == 0 {
        return 0;
    }
    ((f64::from(canary.max(0)) * 100.0 / f64::from(total)).round()) as i32
}

/// Without a router: the pods are shared between the revisions so that the canary's share
/// is the closest possible to `weight` without exceeding it — the step's weight is the blast
/// radius a team agreed to. Too few replicas for a small weight give the canary no pod; the
/// status then reports the weight actually achieved.
pub fn split_without_router(replicas: i32, weight: i32) -> Split {
    let replicas = replicas.max(0);
    let weight = weight.clamp(0, 100);
    // Integer arithmetic: floor(replicas * weight / 100) exactly, never above replicas.
    let canary = i32::try_from(i64::from(replicas) * i64::from(weight) / 100).unwrap_or(replicas);
    Split {
        stable: replicas - canary,
        canary,
    }
}

/// With a router: the stable keeps full size (an abort moves traffic back at once) and the
/// canary gets enough pods for its weight (at least one for any weight above 0). A Rollout
/// scaled to zero was scaled down on purpose (an idle environment, an HPA at rest): it gets
/// no canary pod either, and the route's weight then reaches no pod of either side.
pub fn split_with_router(replicas: i32, weight: i32) -> Split {
    let replicas = replicas.max(0);
    let weight = weight.clamp(0, 100);
    // Integer arithmetic: ceil(replicas * weight / 100) exactly, never above replicas.
    let canary =
        i32::try_from((i64::from(replicas) * i64::from(weight) + 99) / 100).unwrap_or(replicas);
    Split {
        stable: replicas,
        canary: if weight > 0 && replicas > 0 {
            canary.max(1)
        } else {
            0
        },
    }
}

/// With a router and a `setCanaryScale` in force: the stable keeps full size and the canary
/// runs the pods the step asked for, never more than `replicas`, and at least one while it
/// has traffic (a weight must reach a pod). `None` is [`split_with_router`].
pub fn split_scaled(replicas: i32, weight: i32, scale: Option<CanaryScale>) -> Split {
    let replicas = replicas.max(0);
    let pods = match scale {
        None | Some(CanaryScale::MatchTrafficWeight) => return split_with_router(replicas, weight),
        Some(CanaryScale::Replicas(n)) => n.clamp(0, replicas),
        // Integer arithmetic: ceil(replicas * w / 100), never above replicas.
        Some(CanaryScale::Weight(w)) => {
            i32::try_from((i64::from(replicas) * i64::from(w.clamp(0, 100)) + 99) / 100)
                .unwrap_or(replicas)
        }
    };
    Split {
        stable: replicas,
        canary: if weight > 0 && replicas > 0 {
            pods.max(1)
        } else {
            pods
        },
    }
}

/// The canary size in force after steps `0..index`: the last `setCanaryScale` among them
/// (`matchTrafficWeight` undoes the ones before).
fn scale_before(canary: &CanaryStrategy, index: usize) -> Option<CanaryScale> {
    canary.steps[..index.min(canary.steps.len())]
        .iter()
        .rev()
        .find_map(|s| match s.action() {
            Some(StepAction::SetCanaryScale(scale)) => Some(scale),
            _ => None,
        })
        .filter(|s| *s != CanaryScale::MatchTrafficWeight)
}

fn routed(canary: &CanaryStrategy) -> bool {
    canary.traffic_routing.is_some()
}

pub(super) fn plan(ctx: &mut Ctx<'_>, canary: &CanaryStrategy) {
    let target = ctx.obs.target_revision.clone();
    let replicas = ctx.obs.rollout.spec.replicas();
    if let Some(revision) = settled_revision(ctx) {
        steady(ctx, canary, &revision, replicas);
        return;
    }
    let stable = ctx.status.stable_revision.clone().unwrap_or_default();
    if window::start_held(ctx) || requires::start_held(ctx) {
        ctx.apply(&stable, replicas, Role::Stable);
        if routed(canary) {
            route(ctx, canary, &stable, &stable, 0, &[]);
        }
        retire_old(ctx, &stable, None);
        return;
    }
    begin(
        ctx,
        &target,
        format!("rolling out revision {target} over stable {stable}"),
    );
    if abort_or_retry(ctx, "aborted by request: all traffic back to stable") {
        hold_aborted(ctx, canary, &stable, &target, replicas);
        return;
    }
    if window::promote_full(ctx) {
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
        route(ctx, canary, revision, revision, 0, &[]);
    }
    retire_old(ctx, revision, None);
    report_serving(ctx, revision, replicas);
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
        route(ctx, canary, stable, target, 0, &[]);
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
        let what = if index >= steps.len() {
            "full promotion".to_string()
        } else {
            format!("step {index}")
        };
        if window::step_held(ctx, &what) {
            // What is under way stays: the weight reached, the background analysis.
            if background(ctx, canary, stable, target, replicas, index, weight) {
                shape(ctx, canary, stable, target, replicas, weight, index);
            }
            return;
        }
        if index >= steps.len() {
            promote(ctx, canary, stable, target, replicas);
            return;
        }
        if !background(ctx, canary, stable, target, replicas, index, weight) {
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
                set_weight(ctx, canary, stable, target, replicas, w, index)
            }
            // A mirror the gateway says it cannot serve is not written: the step holds
            // until the steps change or a person promotes past it.
            Some(StepAction::SetMirrorRoute(m))
                if (m.percentage.is_some() || !m.matches.is_empty())
                    && ctx.obs.route_rules.mirror_refused.is_some()
                    && !ctx.request(ANNOTATION_PROMOTE) =>
            {
                shape(ctx, canary, stable, target, replicas, weight, index);
                let why = ctx
                    .obs
                    .route_rules
                    .mirror_refused
                    .clone()
                    .unwrap_or_default();
                pause(
                    ctx,
                    "MirrorUnsupported",
                    format!("step {index}: mirror route {:?} not written: {why}", m.name),
                );
                false
            }
            // The size or route applies from this step on: it is done once the canary has
            // its pods and the route its rules, as the gateway took them.
            Some(
                StepAction::SetCanaryScale(_)
                | StepAction::SetHeaderRoute(_)
                | StepAction::SetMirrorRoute(_),
            ) => set_weight(ctx, canary, stable, target, replicas, weight, index + 1),
            Some(StepAction::Pause(duration)) => {
                shape(ctx, canary, stable, target, replicas, weight, index);
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
            Some(StepAction::Analysis(spec)) => {
                shape(ctx, canary, stable, target, replicas, weight, index);
                let name = format!("step-{index}");
                if ctx.request(ANNOTATION_PROMOTE) {
                    ctx.note("AnalysisSkipped", format!("{name}: skipped by promote"));
                    true
                } else {
                    match analysis::run(ctx, &name, spec, target) {
                        Gate::Passed => true,
                        Gate::Waiting(message) => {
                            ctx.status.phase = RolloutPhase::Progressing;
                            ctx.status.message = Some(format!("step {index}: {message}"));
                            ctx.condition(
                                cond::PROGRESSING,
                                cond::TRUE,
                                "AnalysisRunning",
                                message,
                            );
                            false
                        }
                        Gate::Blocked(reason, message) => {
                            pause(ctx, reason, format!("step {index}: {message}"));
                            false
                        }
                        Gate::Failed(reason, message) => {
                            abort(ctx, reason, &format!("step {index}: {message}"));
                            hold_aborted(ctx, canary, stable, target, replicas);
                            return;
                        }
                    }
                }
            }
            None => {
                // Validation rejects these before planning; stop rather than pass if one slips by.
                shape(ctx, canary, stable, target, replicas, weight, index);
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
        let next = if index >= steps.len() {
            "full promotion".to_string()
        } else {
            format!("step {index}")
        };
        if window::enter_held(ctx, &next) {
            let weight = weight_before(canary, index);
            shape(ctx, canary, stable, target, replicas, weight, index);
            return;
        }
        ctx.status.phase = RolloutPhase::Progressing;
        ctx.status.paused_at = None;
        ctx.status.message = None;
        ctx.condition(cond::PAUSED, cond::FALSE, "Resumed", "");
    }
}

/// Runs the background analysis from its starting step on. Returns whether the steps may
/// go on: a failure aborts, an inconclusive or erroring run pauses until a person promotes
/// (which resumes it) or aborts.
fn background(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
    index: usize,
    weight: i32,
) -> bool {
    let Some(bg) = &canary.analysis else {
        return true;
    };
    if (index as i32) < bg.starting_step.unwrap_or(0) {
        return true;
    }
    match analysis::run(ctx, analysis::BACKGROUND, &bg.spec, target) {
        Gate::Passed | Gate::Waiting(_) => true,
        Gate::Blocked(reason, message) => {
            if ctx.request(ANNOTATION_PROMOTE) {
                analysis::resume(ctx, analysis::BACKGROUND);
                ctx.note("AnalysisResumed", "background analysis resumed by promote");
                return true;
            }
            shape(ctx, canary, stable, target, replicas, weight, index);
            pause(ctx, reason, message);
            false
        }
        Gate::Failed(reason, message) => {
            abort(ctx, reason, &message);
            hold_aborted(ctx, canary, stable, target, replicas);
            false
        }
    }
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

/// How often a step whose weight is written re-reads the route, if nothing wakes it first.
const ROUTE_RECHECK_SECONDS: i64 = 5;

/// Puts pods and traffic in the shape of `weight` and, routed, of the canary size and the
/// header and mirror routes set by steps `0..scaled_by`; returns whether the shape is
/// reached.
#[allow(clippy::too_many_arguments)]
fn shape(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
    weight: i32,
    scaled_by: usize,
) -> bool {
    if routed(canary) {
        let mut split = split_scaled(replicas, weight, scale_before(canary, scaled_by));
        // A header or mirror route sends requests to the canary whatever its weight: at
        // least one pod answers them.
        let mut routes = route_rules::routes_through(canary, scaled_by);
        if ctx.obs.route_rules.mirror_refused.is_some() {
            routes.retain(|r| !matches!(r, route_rules::ManagedRoute::Mirror { .. }));
        }
        if replicas > 0 && !routes.is_empty() {
            split.canary = split.canary.max(1);
        }
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
        if !ready {
            // New routes wait for the canary's pods; a change or removal does not.
            let present: Vec<&str> = ctx
                .obs
                .route_rules
                .managed
                .iter()
                .filter_map(|r| r["name"].as_str())
                .collect();
            routes.retain(|r| present.contains(&r.rule_name().as_str()));
        }
        let rules_in_place = route(ctx, canary, stable, target, weight_now, &routes);
        ctx.status.canary_weight = Some(weight_now);
        // Written is not routed: the step waits until the route holds the weight and the
        // gateway has taken it. The route's watch wakes the Rollout; the timer is for an
        // API server that did not serve routes when the operator started.
        let routed_now = ctx.obs.route_weight == Some(weight)
            && rules_in_place
            && ctx.obs.route_pending.is_none();
        if ready && weight_now == weight && !routed_now {
            ctx.wake_at(ctx.obs.now + jiff::SignedDuration::from_secs(ROUTE_RECHECK_SECONDS));
        }
        ready && weight_now == weight && routed_now
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

/// Shapes for `weight` (and the canary size set by steps `0..scaled_by`), reporting
/// progress until the shape is reached.
#[allow(clippy::too_many_arguments)]
fn set_weight(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    replicas: i32,
    weight: i32,
    scaled_by: usize,
) -> bool {
    let reached = shape(ctx, canary, stable, target, replicas, weight, scaled_by);
    if reached {
        return true;
    }
    ctx.status.phase = RolloutPhase::Progressing;
    if deadline_aborts(ctx, target) {
        hold_aborted(ctx, canary, stable, target, replicas);
    } else if ctx.status.phase == RolloutPhase::Progressing {
        let message = match &ctx.obs.route_pending {
            Some(why) if routed(canary) => {
                format!("setting weight {weight}: waiting for the gateway: {why}")
            }
            _ => format!("setting weight {weight}"),
        };
        ctx.condition(cond::PROGRESSING, cond::TRUE, "RolloutProgressing", message);
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

/// Pins the routed Services, sets the route weight and makes cutover's rules those of
/// `routes` (none when promoted, aborted or held), writing only what differs. Returns
/// whether the route already holds those rules.
fn route(
    ctx: &mut Ctx<'_>,
    canary: &CanaryStrategy,
    stable: &str,
    target: &str,
    weight: i32,
    routes: &[route_rules::ManagedRoute],
) -> bool {
    let pins = [
        (canary.stable_service.clone(), stable),
        (canary.canary_service.clone(), target),
    ];
    for (service, revision) in pins {
        if let Some(service) = service {
            ctx.pin(&service, revision);
        }
    }
    if ctx.obs.route_weight != Some(weight) {
        ctx.actions.push(Action::SetRouteWeight { canary: weight });
    }
    let wanted = match (
        &ctx.obs.route_rules.base,
        &canary.stable_service,
        &canary.canary_service,
    ) {
        (Some(base), Some(s), Some(c)) => {
            let kind = canary
                .traffic_routing
                .as_ref()
                .map_or(RouteKind::Http, |t| t.gateway_api.route().0);
            route_rules::rules_for(kind, base, s, c, routes)
        }
        // No rule to the stable Service to make them from: reconcile names the problem.
        _ => Vec::new(),
    };
    if wanted == ctx.obs.route_rules.managed {
        return true;
    }
    ctx.actions.push(Action::SetRouteRules { rules: wanted });
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_canary_scale_sizes_the_canary_apart_from_its_weight() {
        use CanaryScale::{Replicas, Weight};
        let cases = [
            (10, 5, Replicas(10), 10, "5 % on full capacity"),
            (10, 50, Replicas(1), 1, "a one-pod canary"),
            (10, 5, Replicas(50), 10, "never above spec.replicas"),
            (10, 0, Replicas(3), 3, "pods before any traffic"),
            (10, 0, Replicas(0), 0, "none asked, none run"),
            (10, 20, Replicas(0), 1, "traffic needs a pod"),
            (10, 0, Weight(25), 3, "25 % of 10, rounded up"),
            (10, 0, Weight(100), 10, "all of them"),
            (0, 50, Replicas(3), 0, "scaled to zero stays so"),
        ];
        for (replicas, weight, scale, canary, why) in cases {
            assert_eq!(
                split_scaled(replicas, weight, Some(scale)).canary,
                canary,
                "{why}"
            );
        }
        assert_eq!(
            split_scaled(10, 30, Some(CanaryScale::Replicas(2))).stable,
            10
        );
        for (r, w) in [(10, 5), (4, 30), (0, 50), (7, 100)] {
            assert_eq!(split_scaled(r, w, None), split_with_router(r, w));
            assert_eq!(
                split_scaled(r, w, Some(CanaryScale::MatchTrafficWeight)),
                split_with_router(r, w)
            );
        }
    }

    #[test]
    fn the_scale_in_force_is_the_last_one_set() {
        let canary: CanaryStrategy = serde_json::from_value(serde_json::json!({"steps": [
            {"setCanaryScale": {"replicas": 4}}, {"setWeight": 5},
            {"setCanaryScale": {"weight": 50}}, {"pause": {}},
            {"setCanaryScale": {"matchTrafficWeight": true}}, {"setWeight": 20}
        ]}))
        .unwrap();
        assert_eq!(scale_before(&canary, 0), None);
        assert_eq!(scale_before(&canary, 1), Some(CanaryScale::Replicas(4)));
        assert_eq!(scale_before(&canary, 2), Some(CanaryScale::Replicas(4)));
        assert_eq!(scale_before(&canary, 3), Some(CanaryScale::Weight(50)));
        assert_eq!(
            scale_before(&canary, 5),
            None,
            "matchTrafficWeight undoes them"
        );
        assert_eq!(scale_before(&canary, 99), None);
    }

    #[test]
    fn argo_example_ten_replicas_at_41_percent() {
        assert_eq!(
            split_without_router(10, 41),
            Split {
                stable: 6,
                canary: 4
            }
        );
        assert_eq!(split_without_router(10, 41).weight(), 40);
    }

    #[test]
    fn the_canary_never_gets_more_than_its_weight() {
        let split = |r, w| split_without_router(r, w);
        assert_eq!(
            split(3, 10),
            Split {
                stable: 3,
                canary: 0
            }
        );
        assert_eq!(
            split(20, 5),
            Split {
                stable: 19,
                canary: 1
            }
        );
        assert_eq!(
            split(4, 95),
            Split {
                stable: 1,
                canary: 3
            }
        );
        assert_eq!(
            split(1, 50),
            Split {
                stable: 1,
                canary: 0
            }
        );
        assert_eq!(
            split(5, 0),
            Split {
                stable: 5,
                canary: 0
            }
        );
        assert_eq!(
            split(5, 100),
            Split {
                stable: 0,
                canary: 5
            }
        );
        assert_eq!(
            split(0, 50),
            Split {
                stable: 0,
                canary: 0
            }
        );
    }

    #[test]
    fn router_keeps_stable_at_full_size() {
        assert_eq!(
            split_with_router(10, 5),
            Split {
                stable: 10,
                canary: 1
            }
        );
        assert_eq!(
            split_with_router(4, 30),
            Split {
                stable: 4,
                canary: 2
            }
        );
        assert_eq!(
            split_with_router(4, 0),
            Split {
                stable: 4,
                canary: 0
            }
        );
        assert_eq!(
            split_with_router(4, 100),
            Split {
                stable: 4,
                canary: 4
            }
        );
    }

    #[test]
    fn router_gives_a_rollout_scaled_to_zero_no_canary_pod() {
        for weight in [0, 1, 50, 100] {
            assert_eq!(
                split_with_router(0, weight),
                Split {
                    stable: 0,
                    canary: 0
                },
                "weight {weight}"
            );
        }
    }

    proptest! {
        #[test]
        fn without_router_pods_are_conserved_and_weight_is_closest(replicas in prop_oneof![0i32..200, Just(i32::MAX)], weight in 0i32..=100) {
            let split = split_without_router(replicas, weight);
            prop_assert_eq!(split.stable + split.canary, replicas);
            prop_assert!(split.stable >= 0 && split.canary >= 0);
            // Shares compared exactly, as hundredths of pods.
            let asked = i64::from(replicas) * i64::from(weight);
            let share = |c: i32| i64::from(c) * 100;
            prop_assert!(share(split.canary) <= asked, "never above the step's weight");
            // No split that stays within the weight is closer to it.
            prop_assert!(split.canary == replicas || share(split.canary + 1) > asked);
        }

        #[test]
        fn with_router_canary_never_exceeds_stable_size(replicas in prop_oneof![0i32..200, Just(i32::MAX)], weight in 0i32..=100) {
            let split = split_with_router(replicas, weight);
            prop_assert_eq!(split.stable, replicas);
            prop_assert!(split.canary <= replicas);
            prop_assert_eq!(split.canary == 0, weight == 0 || replicas == 0);
            // Enough pods for the weight: the canary's share of a full-size stable.
            prop_assert!(i64::from(split.canary) * 100 >= i64::from(replicas) * i64::from(weight));
        }
    }
}
