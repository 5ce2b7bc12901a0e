//! Deployment windows in the Rollout plan. T0 is Friday 2027-01-15 08:00 UTC.

use super::*;
use crate::api::{DeploymentWindow, WindowKind, conditions as cond};

const HOUR: i64 = 3600;

fn window(kind: WindowKind, schedule: &str, duration: &str) -> DeploymentWindow {
    DeploymentWindow {
        kind,
        schedule: schedule.into(),
        duration: duration.parse().expect("a duration"),
        time_zone: None,
    }
}

/// Closed from T0 for an hour.
fn deny_first_hour() -> Vec<DeploymentWindow> {
    vec![window(WindowKind::Deny, "0 8 * * FRI", "1h")]
}

fn with_windows(mut world: World, windows: Vec<DeploymentWindow>) -> World {
    world.rollout.spec.windows = windows;
    world
}

fn paused_reason(world: &World) -> Option<String> {
    cond::find(&world.status().conditions, cond::PAUSED)
        .filter(|c| c.status == cond::TRUE)
        .map(|c| c.reason.clone())
}

#[test]
fn a_new_revision_waits_for_the_window_then_starts_when_it_opens() {
    let mut world = with_windows(
        World::new(rollout(steps(), false), "old", "new"),
        deny_first_hour(),
    );
    let p = world.plan(at(0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyRevision { revision, .. } if revision == "new")),
        "no pod of the new revision: {:?}",
        p.actions
    );
    assert_eq!(p.status.phase, RolloutPhase::Paused);
    assert_eq!(
        p.status.message.as_deref(),
        Some(
            "revision new waits for a deployment window: deny window \"0 8 * * FRI\" (1h, UTC) \
             is open; the next window opens at 2027-01-15T09:00:00Z"
        )
    );
    assert_eq!(p.requeue_at, Some(at(HOUR)), "woken when the window opens");
    assert_eq!(
        p.notes.iter().map(|n| n.reason).collect::<Vec<_>>(),
        vec!["WaitingForWindow"]
    );
    world.apply(&p, true);
    assert_eq!(paused_reason(&world).as_deref(), Some("OutsideWindow"));
    // Held, nothing changes: nothing is written, nothing announced again.
    let again = world.plan(at(600));
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    assert_eq!(Some(&again.status), world.rollout.status.as_ref());
    assert!(again.notes.is_empty());
    assert_eq!(world.status().current_revision.as_deref(), Some("old"));
    // The window opens: the rollout starts at step 0.
    world.settle(at(HOUR), true);
    assert_eq!(world.status().current_revision.as_deref(), Some("new"));
    assert_eq!((world.replicas("old"), world.replicas("new")), (8, 2));
    assert_eq!(world.status().current_step_index, Some(1));
    assert_eq!(paused_reason(&world).as_deref(), Some("TimedPause"));
}

#[test]
fn a_rollout_under_way_finishes_its_step_and_holds_at_the_next() {
    // Open now; a deny window from T0 + 30 s for an hour.
    let mut world = with_windows(
        World::new(rollout(steps(), false), "old", "new"),
        vec![window(WindowKind::Deny, "1 8 * * FRI", "1h")],
    );
    world.settle(at(0), true);
    assert_eq!(world.status().current_step_index, Some(1), "20 %, pausing");
    // The one-minute pause ends inside the deny window: step 2 (50 %) is not entered.
    world.settle(at(90), true);
    assert_eq!(world.status().current_step_index, Some(2));
    assert_eq!((world.replicas("old"), world.replicas("new")), (8, 2));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    assert!(
        world.status().step_started_at.is_none(),
        "step 2 not started"
    );
    assert!(
        world
            .status()
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("step 2 waits for a deployment window")),
        "{:?}",
        world.status().message
    );
    // A promote does not get past the window; it is refused, loudly.
    world.annotate(ANNOTATION_PROMOTE_FULL, "1");
    let p = world.plan(at(120));
    assert!(p.notes.iter().any(|n| n.reason == "PromoteRefused"));
    world.apply(&p, true);
    world.settle(at(130), true);
    assert_eq!(world.replicas("new"), 2);
    // The window closes at 09:01: step 2 starts then, and the manual gate after it holds.
    let p = world.plan(at(HOUR + 60));
    assert!(p.notes.iter().any(|n| n.reason == "WindowOpened"));
    world.settle(at(HOUR + 60), true);
    assert_eq!((world.replicas("old"), world.replicas("new")), (5, 5));
    assert_eq!(world.status().current_step_index, Some(3));
    assert_eq!(paused_reason(&world).as_deref(), Some("ManualGate"));
}

#[test]
fn a_timed_pause_after_a_hold_counts_from_when_its_step_starts() {
    let mut world = with_windows(
        World::new(
            rollout(
                json!([{"setWeight": 20}, {"pause": {"duration": "10m"}}]),
                false,
            ),
            "old",
            "new",
        ),
        vec![window(WindowKind::Allow, "0 9 * * *", "8h")],
    );
    world.settle(at(0), true);
    assert_eq!(world.status().current_revision.as_deref(), Some("old"));
    world.settle(at(HOUR), true);
    assert_eq!(world.status().current_step_index, Some(1));
    assert_eq!(world.plan(at(HOUR + 1)).requeue_at, Some(at(HOUR + 600)));
}

#[test]
fn abort_and_undo_are_never_held() {
    let mut world = with_windows(
        World::new(rollout(steps(), false), "old", "new"),
        vec![window(WindowKind::Deny, "1 8 * * FRI", "1h")],
    );
    world.settle(at(0), true);
    world.settle(at(90), true);
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(100), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!((world.replicas("old"), world.replicas("new")), (10, 0));
    // The template set back to the stable revision: served at once.
    world.target = "old".into();
    world.settle(at(110), true);
    assert_eq!(world.status().phase, RolloutPhase::Healthy);
    assert_eq!(world.status().current_revision.as_deref(), Some("old"));
}

#[test]
fn a_namespace_freeze_holds_until_it_is_lifted() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.freeze = Some("year-end freeze".into());
    let p = world.plan(at(0));
    assert_eq!(
        p.status.message.as_deref(),
        Some(
            "revision new waits for a deployment window: the namespace is frozen: year-end freeze"
        )
    );
    assert_eq!(
        p.requeue_at, None,
        "a freeze has no end: its lifting wakes the Rollout"
    );
    world.apply(&p, true);
    world.settle(at(10), true);
    assert_eq!(world.replicas("new"), 0);
    world.freeze = None;
    world.settle(at(20), true);
    assert_eq!(world.replicas("new"), 2);
}

#[test]
fn bluegreen_previews_but_switches_only_in_a_window() {
    // Auto-promotion at once; the window closes at 08:01 and opens at 09:00.
    let mut world = bg_world(json!({"scaleDownDelaySeconds": 30}));
    world.rollout.spec.windows = vec![window(WindowKind::Allow, "0 9 * * *", "23h1m")];
    // 08:00 is the last minute of yesterday's window: the preview starts...
    let p = world.plan(at(0));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyRevision { revision, .. } if revision == "green"))
    );
    world.apply(&p, false);
    // ... and is ready after the window closed: no switch.
    world
        .revisions
        .iter_mut()
        .for_each(|r| r.available = r.replicas);
    world.settle(at(120), true);
    assert_eq!(world.services["active"].as_deref(), Some("blue"));
    assert_eq!(world.services["preview"].as_deref(), Some("green"));
    assert_eq!(paused_reason(&world).as_deref(), Some("OutsideWindow"));
    assert!(
        world
            .status()
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("switching the active Service to green waits")),
        "{:?}",
        world.status().message
    );
    world.settle(at(HOUR), true);
    assert_eq!(world.services["active"].as_deref(), Some("green"));
}

#[test]
fn bluegreen_undo_within_the_scale_down_delay_is_not_held() {
    let mut world = bg_world(json!({"scaleDownDelaySeconds": 600}));
    world.settle(at(0), true);
    assert_eq!(world.services["active"].as_deref(), Some("green"));
    world.rollout.spec.windows = vec![window(WindowKind::Deny, "* * * * *", "1h")];
    world.target = "blue".into();
    world.settle(at(10), true);
    assert_eq!(world.services["active"].as_deref(), Some("blue"));
}

#[test]
fn rolling_holds_between_batches() {
    let mut world = rolling(json!({"batchSize": 2}), 4);
    world.rollout.spec.windows = vec![window(WindowKind::Deny, "1 8 * * FRI", "1h")];
    world.settle(at(0), true);
    assert_eq!(
        world.status().stable_revision.as_deref(),
        Some("new"),
        "all in the window"
    );
    let mut world = rolling(json!({"batchSize": 2, "pause": {"duration": "1m"}}), 4);
    world.rollout.spec.windows = vec![window(WindowKind::Deny, "1 8 * * FRI", "1h")];
    world.settle(at(0), true);
    assert_eq!((world.replicas("new"), world.replicas("old")), (2, 2));
    world.settle(at(90), true);
    assert_eq!(
        (world.replicas("new"), world.replicas("old")),
        (2, 2),
        "the second batch waits"
    );
    assert_eq!(paused_reason(&world).as_deref(), Some("OutsideWindow"));
    world.settle(at(HOUR + 60), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!((world.replicas("new"), world.replicas("old")), (4, 0));
}
