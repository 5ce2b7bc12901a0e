//! The deployment log in the Rollout plan.

use super::*;
use crate::api::{MAX_HISTORY, ReleaseResult};

fn log(world: &World) -> Vec<(String, ReleaseResult)> {
    world
        .status()
        .history
        .iter()
        .map(|e| (e.revision.clone(), e.result))
        .collect()
}

#[test]
fn a_release_is_logged_from_its_start_to_its_promotion() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), true);
    let entry = world.status().history.last().cloned().expect("an entry");
    assert_eq!(entry.revision, "new");
    assert_eq!(entry.images, vec!["app:new".to_string()]);
    assert_eq!(entry.result, ReleaseResult::Progressing);
    assert_eq!(entry.started_at.0, at(0));
    assert_eq!(entry.started_by.as_deref(), Some("kubectl-edit"));
    world.settle(at(60), true);
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(90), true);
    let entry = world.status().history.last().cloned().expect("an entry");
    assert_eq!(entry.result, ReleaseResult::Promoted);
    assert_eq!(entry.ended_at.map(|t| t.0), Some(at(90)));
    assert_eq!(world.status().history.len(), 1);
    // Nothing changes: nothing more is logged.
    let p = world.plan(at(100));
    assert_eq!(p.status.history, world.status().history);
}

#[test]
fn an_abort_says_why_and_a_retry_is_a_release_of_its_own() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), true);
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(5), true);
    let entry = world.status().history.last().cloned().expect("an entry");
    assert_eq!(entry.result, ReleaseResult::Aborted);
    assert_eq!(
        entry.reason.as_deref(),
        Some("aborted by request: all traffic back to stable")
    );
    world.annotate(ANNOTATION_RETRY, "1");
    world.settle(at(10), true);
    assert_eq!(
        log(&world),
        vec![
            ("new".to_string(), ReleaseResult::Aborted),
            ("new".to_string(), ReleaseResult::Progressing)
        ]
    );
}

#[test]
fn a_newer_template_supersedes_the_release_under_way_and_undo_logs_nothing() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), true);
    world.target = "newer".into();
    world.settle(at(5), true);
    assert_eq!(
        log(&world),
        vec![
            ("new".to_string(), ReleaseResult::Superseded),
            ("newer".to_string(), ReleaseResult::Progressing)
        ]
    );
    // Back to the stable revision: it serves at once, and no release is logged for it.
    world.target = "old".into();
    world.settle(at(10), true);
    assert_eq!(
        log(&world).last(),
        Some(&("newer".to_string(), ReleaseResult::Superseded))
    );
}

#[test]
fn the_log_keeps_the_last_releases() {
    let mut world = World::new(rollout(json!([{"setWeight": 50}]), false), "old", "r0");
    for i in 0..(MAX_HISTORY + 3) {
        world.target = format!("r{i}");
        world.settle(at(i as i64 * 10), true);
    }
    let h = &world.status().history;
    assert_eq!(h.len(), MAX_HISTORY);
    assert_eq!(h.last().map(|e| e.revision.as_str()), Some("r12"));
    assert!(
        h.iter().all(|e| e.result == ReleaseResult::Promoted),
        "{h:?}"
    );
    assert_eq!(h[0].revision, "r3");
}

#[test]
fn a_failed_bake_marks_its_release_rolled_back() {
    let mut world = World::new(rollout(json!([{"setWeight": 50}]), false), "old", "new");
    world.rollout.spec.bake = Some(
        serde_json::from_value(json!({"duration": "1h", "analysis": {"metrics": [
            {"name": "errors", "interval": "30s", "count": 10, "successCondition": "result < 0.05",
             "prometheus": {"query": "errors"}}]}}))
        .expect("a bake"),
    );
    world.run(0, 100, &|_, t| {
        Input::Query(Ok(QueryResult::Number(if t >= at(60) {
            0.2
        } else {
            0.01
        })))
    });
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    let entry = world.status().history.last().cloned().expect("an entry");
    assert_eq!(
        (entry.revision.as_str(), entry.result),
        ("new", ReleaseResult::RolledBack)
    );
    assert!(entry.reason.is_some_and(|r| r.contains("errors")));
    assert_eq!(world.status().history.len(), 1);
}
