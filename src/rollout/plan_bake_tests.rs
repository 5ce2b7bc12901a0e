//! The bake after promotion in the Rollout plan.

use super::*;
use crate::api::BakePhase;

fn baked(bake: serde_json::Value) -> World {
    let mut world = World::new(rollout(json!([{"setWeight": 50}]), false), "old", "new");
    world.rollout.spec.bake = Some(serde_json::from_value(bake).expect("a bake"));
    world
}

fn watching() -> serde_json::Value {
    json!({"metrics": [metric(json!({"count": 40}))]})
}

fn errors_from(at_secs: i64) -> impl Fn(&str, Timestamp) -> Input {
    move |_, t| number(if t >= at(at_secs) { 0.2 } else { 0.01 })
}

fn bake(world: &World) -> crate::api::BakeStatus {
    world.status().bake.clone().expect("a bake")
}

#[test]
fn a_promoted_revision_bakes_with_the_previous_one_kept_ready() {
    let mut world = baked(json!({"duration": "10m", "analysis": watching()}));
    world.run(0, 599, &errors_from(1_000_000_000));
    let b = bake(&world);
    assert_eq!((b.revision.as_str(), b.previous.as_str()), ("new", "old"));
    assert_eq!(b.phase, BakePhase::Baking);
    assert_eq!(b.started_at.0, at(0));
    assert_eq!(
        world.status().phase,
        RolloutPhase::Healthy,
        "Healthy while baking"
    );
    assert!(world.revisions.iter().any(|r| r.revision == "old"), "kept");
    assert_eq!(world.replicas("old"), 0, "scaled down, ready to restore");
    assert_eq!(
        world.plan(at(599)).requeue_at.map(|t| t <= at(600)),
        Some(true)
    );
    world.run(600, 601, &errors_from(1_000_000_000));
    assert_eq!(bake(&world).phase, BakePhase::Passed);
    assert_eq!(
        world.run_status("bake").verdict,
        AnalysisVerdict::Successful,
        "the bake's analysis ends with it"
    );
}

#[test]
fn a_failed_bake_scales_the_previous_revision_up_before_switching_back() {
    let mut world = baked(json!({"duration": "2h", "analysis": watching()}));
    world.run(0, 299, &errors_from(300));
    assert_eq!(bake(&world).phase, BakePhase::Baking);
    // The failing measurement at 5 minutes: the previous revision is asked for in full,
    // and nothing else moves while its pods come up.
    world.measure(at(300), &errors_from(300));
    let p = world.plan(at(300));
    world.apply(&p, false);
    let p = world.plan(at(301));
    assert!(p.notes.is_empty() || !p.notes.iter().any(|n| n.reason == "Aborted"));
    assert!(
        p.actions.contains(&Action::ApplyRevision {
            revision: "old".into(),
            replicas: 10,
            role: Role::Previous
        }),
        "{:?}",
        p.actions
    );
    assert_eq!(p.status.stable_revision.as_deref(), Some("new"));
    assert_eq!(p.status.phase, RolloutPhase::Progressing);
    assert!(
        p.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("restoring old: 0 of 10 pods available")),
        "{:?}",
        p.status.message
    );
    world.apply(&p, false);
    assert_eq!(
        world.replicas("new"),
        10,
        "the new revision serves meanwhile"
    );
    // Its pods are up: switch back, as an abort.
    for r in world.revisions.iter_mut() {
        r.available = r.replicas;
    }
    let p = world.plan(at(320));
    assert!(p.notes.iter().any(|n| n.reason == "Aborted"));
    world.apply(&p, true);
    world.settle(at(321), true);
    let s = world.status();
    assert_eq!(s.phase, RolloutPhase::Aborted);
    assert_eq!(s.stable_revision.as_deref(), Some("old"));
    assert_eq!((world.replicas("old"), world.replicas("new")), (10, 0));
    assert_eq!(bake(&world).phase, BakePhase::RolledBack);
    assert!(
        s.message.as_deref().is_some_and(
            |m| m.starts_with("bake of new failed: ") && m.ends_with("rolled back to old")
        ),
        "{:?}",
        s.message
    );
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.reason == "BakeFailed")
    );
}

#[test]
fn a_failed_bake_announces_itself() {
    let mut world = baked(json!({"duration": "1h", "analysis": watching()}));
    world.run(0, 59, &errors_from(60));
    world.measure(at(60), &errors_from(60));
    let p = world.plan(at(60));
    assert!(
        p.notes.iter().any(|n| n.reason == "BakeFailed"),
        "{:?}",
        p.notes
    );
    assert_eq!(
        crate::notify::event_of("BakeFailed"),
        Some(crate::api::NotificationEvent::BakeFailed)
    );
}

#[test]
fn the_verify_window_only_alerts() {
    let mut world = baked(json!({"duration": "2m", "analysis": watching(),
        "verify": {"duration": "30m", "analysis": watching()}}));
    world.run(0, 130, &errors_from(1_000_000_000));
    assert_eq!(bake(&world).phase, BakePhase::Verifying);
    world.run(131, 400, &errors_from(300));
    let b = bake(&world);
    assert_eq!(b.phase, BakePhase::VerifyFailed);
    let s = world.status();
    assert_eq!(s.phase, RolloutPhase::Healthy, "nothing rolled back");
    assert_eq!(s.stable_revision.as_deref(), Some("new"));
}

#[test]
fn a_new_release_during_the_bake_supersedes_it_and_undo_is_no_bake() {
    let mut world = baked(json!({"duration": "1h", "analysis": watching()}));
    world.run(0, 10, &errors_from(1_000_000_000));
    world.target = "newer".into();
    let p = world.plan(at(11));
    assert_eq!(
        p.status.bake.as_ref().map(|b| b.phase),
        Some(BakePhase::Superseded),
        "the new release ends the bake of the one before"
    );
    // Once promoted, the newer revision bakes in turn, over the one it replaced.
    world.run(11, 12, &errors_from(1_000_000_000));
    let b = bake(&world);
    assert_eq!(
        (b.revision.as_str(), b.previous.as_str(), b.phase),
        ("newer", "new", BakePhase::Baking)
    );
    // The first revision has nothing to go back to: no bake.
    let mut first = baked(json!({"duration": "1h"}));
    first.rollout.status = None;
    first.revisions.clear();
    first.settle(at(0), true);
    assert_eq!(first.status().bake, None);
}
