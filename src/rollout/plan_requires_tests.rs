//! Environment promotion in the Rollout plan: production follows staging.

use super::*;
use crate::api::{Requirement, conditions as cond};

const HOUR: i64 = 3600;

fn prod() -> World {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.rollout.spec.requires = vec![Requirement {
        rollout: "staging/web".into(),
        healthy_for: "1h".parse().expect("a duration"),
    }];
    world
}

fn staging(images: &[&str], since: i64) -> Option<RequiredObserved> {
    Some(RequiredObserved {
        phase: RolloutPhase::Healthy,
        stable_images: images.iter().map(|s| s.to_string()).collect(),
        stable_since: Some(at(since)),
    })
}

#[test]
fn production_waits_for_stagings_hour_then_starts() {
    let mut world = prod();
    world.required = vec![staging(&["app:old"], -HOUR * 24)];
    let p = world.plan(at(0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyRevision { revision, .. } if revision == "new"))
    );
    assert_eq!(p.status.phase, RolloutPhase::Paused);
    assert_eq!(
        p.status.message.as_deref(),
        Some(
            "revision new waits: Rollout staging/web does not serve app:new as its stable revision yet"
        )
    );
    assert_eq!(
        p.requeue_at,
        Some(at(30)),
        "looked at again: staging may be elsewhere"
    );
    world.apply(&p, true);
    // Staging promotes the same image at minute 10: production waits for its hour.
    world.required = vec![staging(&["app:new"], 600)];
    let p = world.plan(at(700));
    assert!(
        p.status.message.as_deref().is_some_and(|m| m.ends_with(
            "Rollout staging/web has served these images for 1m40s of 1h; ready at 2027-01-15T09:10:00Z"
        )),
        "{:?}",
        p.status.message
    );
    assert_eq!(p.requeue_at, Some(at(600 + HOUR)));
    let reason = cond::find(&p.status.conditions, cond::PAUSED).map(|c| c.reason.clone());
    assert_eq!(reason.as_deref(), Some("WaitingForRequirement"));
    world.apply(&p, true);
    world.settle(at(600 + HOUR), true);
    assert_eq!(world.status().current_revision.as_deref(), Some("new"));
    assert_eq!((world.replicas("old"), world.replicas("new")), (8, 2));
}

#[test]
fn a_healthy_rollout_records_its_stable_images_and_since_when() {
    let mut world = World::new(rollout(json!([{"setWeight": 50}]), false), "old", "new");
    world.settle(at(0), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!(world.status().stable_images, vec!["app:new".to_string()]);
    assert_eq!(world.status().stable_since, Some(Time(at(0))));
    // Unchanged images keep their time.
    world.settle(at(100), true);
    assert_eq!(world.status().stable_since, Some(Time(at(0))));
}

#[test]
fn a_requirement_never_holds_an_abort_or_a_release_under_way() {
    let mut world = prod();
    world.required = vec![staging(&["app:new"], -2 * HOUR)];
    world.settle(at(0), true);
    assert_eq!(world.status().current_revision.as_deref(), Some("new"));
    // Staging moves on (or is undone) while production rolls out: production goes on.
    world.required = vec![staging(&["app:newer"], 0)];
    world.settle(at(60), true);
    assert_eq!(
        world.status().current_step_index,
        Some(3),
        "past the timed pause"
    );
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(70), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
}
