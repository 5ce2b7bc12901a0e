use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::api::RolloutStatus;
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, ANNOTATION_RETRY, Rollout,
    RolloutPhase,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn rollout(steps: serde_json::Value, routed: bool) -> Rollout {
    let mut canary = json!({"steps": steps});
    if routed {
        canary["stableService"] = json!("s");
        canary["canaryService"] = json!("c");
        canary["trafficRouting"] = json!({"gatewayAPI": {"httpRoute": "r"}});
    }
    serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "generation": 2, "uid": "u"},
        "spec": {"replicas": 10, "selector": {"matchLabels": {"app": "web"}}, "strategy": {"canary": canary}}}))
    .unwrap()
}

/// A world the plan acts on: Deployments with replicas and availability, a route, services.
#[derive(Clone)]
struct World {
    rollout: Rollout,
    target: String,
    revisions: Vec<RevisionObserved>,
    route_weight: Option<i32>,
    route_pending: Option<String>,
    route_rules: RouteRulesObserved,
    services: BTreeMap<String, Option<String>>,
    referenced: Option<i32>,
    measurements: Vec<super::super::analysis::Taken>,
    migrations: Vec<MigrationObserved>,
    rollback_requests: Vec<(String, String)>,
    retry_requests: Vec<(String, String)>,
    flag_states: Vec<(String, bool)>,
    freeze: Option<String>,
    required: Vec<Option<RequiredObserved>>,
}

impl World {
    fn new(rollout: Rollout, stable: &str, target: &str) -> Self {
        let mut r = rollout;
        let routed = r
            .spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.traffic_routing.is_some());
        r.status = Some(RolloutStatus {
            stable_revision: Some(stable.into()),
            current_revision: Some(stable.into()),
            phase: RolloutPhase::Healthy,
            ..Default::default()
        });
        let services = if routed {
            BTreeMap::from([
                ("s".to_string(), Some(stable.to_string())),
                ("c".to_string(), Some(stable.to_string())),
            ])
        } else {
            BTreeMap::new()
        };
        Self {
            rollout: r,
            target: target.into(),
            revisions: vec![RevisionObserved {
                revision: stable.into(),
                replicas: 10,
                available: 10,
                role: Some("stable".into()),
                created: Some(at(-100)),
                failure: None,
            }],
            route_weight: routed.then_some(0),
            route_pending: None,
            route_rules: RouteRulesObserved {
                base: routed.then(|| json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "s", "port": 80, "weight": 100}, {"name": "c", "port": 80, "weight": 0}]})),
                managed: Vec::new(),
                mirror_refused: None,
            },
            services,
            referenced: None,
            measurements: Vec::new(),
            migrations: Vec::new(),
            rollback_requests: Vec::new(),
            retry_requests: Vec::new(),
            flag_states: Vec::new(),
            freeze: None,
            required: Vec::new(),
        }
    }

    fn plan(&self, now: Timestamp) -> Plan {
        plan(&Observed {
            rollout: &self.rollout,
            target_revision: self.target.clone(),
            revisions: self.revisions.clone(),
            route_weight: self.route_weight,
            route_pending: self.route_pending.clone(),
            route_rules: self.route_rules.clone(),
            service_revisions: self.services.clone(),
            referenced_replicas: self.referenced,
            measurements: self.measurements.clone(),
            migrations: self.migrations.clone(),
            selector: self
                .rollout
                .spec
                .selector
                .as_ref()
                .map(crate::api::selector::to_string),
            freeze: self.freeze.clone(),
            images: vec![format!("app:{}", self.target)],
            required: self.required.clone(),
            started_by: Some("kubectl-edit".into()),
            now,
        })
    }

    /// Carries out a plan: writes land; pods of scaled-up revisions are available at once
    /// when `instant` (else they stay as they were).
    fn apply(&mut self, plan: &Plan, instant: bool) {
        self.apply_actions(plan, instant);
        self.rollout.status = Some(plan.status.clone());
    }

    fn apply_actions(&mut self, plan: &Plan, instant: bool) {
        for action in &plan.actions {
            match action {
                Action::ApplyRevision {
                    revision,
                    replicas,
                    role,
                } => match self.revisions.iter_mut().find(|r| &r.revision == revision) {
                    Some(r) => {
                        r.replicas = *replicas;
                        r.role = Some(role.as_str().into());
                        r.available = if instant {
                            *replicas
                        } else {
                            r.available.min(*replicas)
                        };
                    }
                    None => self.revisions.push(RevisionObserved {
                        revision: revision.clone(),
                        replicas: *replicas,
                        available: if instant { *replicas } else { 0 },
                        role: Some(role.as_str().into()),
                        created: Some(at(0)),
                        failure: None,
                    }),
                },
                Action::DeleteRevision { revision } => {
                    self.revisions.retain(|r| &r.revision != revision)
                }
                Action::PinService { service, revision } => {
                    self.services
                        .insert(service.clone(), Some(revision.clone()));
                }
                Action::SetRouteWeight { canary } => self.route_weight = Some(*canary),
                Action::SetRouteRules { rules } => self.route_rules.managed = rules.clone(),
                Action::ScaleReferenced { replicas } => self.referenced = Some(*replicas),
                Action::SetFlagState { flag, enabled } => {
                    self.flag_states.push((flag.clone(), *enabled));
                }
                Action::RequestMigrationRollback { migration, request } => {
                    self.rollback_requests
                        .push((migration.clone(), request.clone()));
                    if let Some(m) = self.migrations.iter_mut().find(|m| &m.name == migration) {
                        m.requested_rollback = Some(request.clone());
                    }
                }
                Action::RequestMigrationRetry { migration, request } => {
                    self.retry_requests
                        .push((migration.clone(), request.clone()));
                    if let Some(m) = self.migrations.iter_mut().find(|m| &m.name == migration) {
                        m.requested_retry = Some(request.clone());
                    }
                }
            }
        }
    }

    /// Every pod scaled up so far becomes available.
    fn pods_come_up(&mut self) {
        for r in &mut self.revisions {
            r.available = r.replicas;
        }
    }

    fn annotate(&mut self, key: &str, value: &str) {
        self.rollout
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
    }

    fn replicas(&self, revision: &str) -> i32 {
        self.revisions
            .iter()
            .find(|r| r.revision == revision)
            .map_or(0, |r| r.replicas)
    }

    /// Plans and applies until the plan writes nothing; returns the number of rounds.
    fn settle(&mut self, now: Timestamp, instant: bool) -> usize {
        for round in 0..50 {
            let p = self.plan(now);
            let quiet = p.actions.is_empty() && self.rollout.status.as_ref() == Some(&p.status);
            self.apply(&p, instant);
            if quiet {
                return round;
            }
        }
        panic!("the plan did not settle");
    }

    fn status(&self) -> &RolloutStatus {
        self.rollout.status.as_ref().unwrap()
    }
}

fn steps() -> serde_json::Value {
    json!([{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 50}, {"pause": {}}])
}

#[test]
fn first_revision_becomes_stable_without_steps() {
    let mut r = rollout(steps(), false);
    r.status = None;
    let world = World {
        rollout: r,
        target: "aaa".into(),
        revisions: vec![],
        route_weight: None,
        route_pending: None,
        route_rules: Default::default(),
        services: BTreeMap::new(),
        referenced: None,
        measurements: Vec::new(),
        migrations: Vec::new(),
        rollback_requests: Vec::new(),
        retry_requests: Vec::new(),
        flag_states: Vec::new(),
        freeze: None,
        required: Vec::new(),
    };
    let p = world.plan(at(0));
    assert_eq!(
        p.actions,
        vec![Action::ApplyRevision {
            revision: "aaa".into(),
            replicas: 10,
            role: Role::Stable
        }]
    );
    assert_eq!(p.status.stable_revision.as_deref(), Some("aaa"));
    assert_eq!(
        p.status.phase,
        RolloutPhase::Progressing,
        "not healthy before its pods are available"
    );
}

#[test]
fn a_settled_rollout_writes_nothing() {
    let mut world = World::new(rollout(steps(), false), "old", "old");
    world.settle(at(0), true);
    let p = world.plan(at(5));
    assert!(p.actions.is_empty());
    assert_eq!(Some(&p.status), world.rollout.status.as_ref());
    assert_eq!(p.status.phase, RolloutPhase::Healthy);
}

#[test]
fn without_a_router_the_canary_is_up_before_the_stable_shrinks() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    let p = world.plan(at(0));
    assert!(p.actions.contains(&Action::ApplyRevision {
        revision: "new".into(),
        replicas: 2,
        role: Role::Canary
    }));
    assert!(!p.actions.iter().any(|a| matches!(a, Action::ApplyRevision { revision, replicas, .. } if revision == "old" && *replicas < 10)));
    assert_eq!(p.notes[0].reason, "Started");
    world.apply(&p, false);
    // Canary pods not available yet: the stable keeps all its pods.
    world.settle(at(1), false);
    assert_eq!(world.replicas("old"), 10);
    assert_eq!(world.status().canary_weight, Some(0));
    world
        .revisions
        .iter_mut()
        .for_each(|r| r.available = r.replicas);
    world.settle(at(2), false);
    assert_eq!((world.replicas("old"), world.replicas("new")), (8, 2));
    assert_eq!(world.status().current_step_index, Some(1));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
}

#[test]
fn a_timed_pause_wakes_the_controller_when_it_ends() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), true);
    assert_eq!(world.status().current_step_index, Some(1));
    let p = world.plan(at(10));
    assert_eq!(p.requeue_at, Some(at(60)));
    world.settle(at(60), true);
    assert_eq!(
        world.status().current_step_index,
        Some(3),
        "50 % set, then the manual gate"
    );
    assert_eq!((world.replicas("old"), world.replicas("new")), (5, 5));
}

#[test]
fn the_manual_gate_opens_once_per_promote_request() {
    let mut world = World::new(
        rollout(
            json!([{"pause": {}}, {"setWeight": 30}, {"pause": {}}]),
            false,
        ),
        "old",
        "new",
    );
    world.settle(at(0), true);
    assert_eq!(world.status().current_step_index, Some(0));
    world.annotate(ANNOTATION_PROMOTE, "a");
    world.settle(at(1), true);
    assert_eq!(
        world.status().current_step_index,
        Some(2),
        "past the first gate, waiting at the second"
    );
    world.settle(at(2), true);
    assert_eq!(
        world.status().current_step_index,
        Some(2),
        "the same request does not open the next gate"
    );
    world.annotate(ANNOTATION_PROMOTE, "b");
    world.settle(at(3), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!(world.status().phase, RolloutPhase::Healthy);
    assert_eq!(
        world.replicas("old"),
        0,
        "the old revision is kept at zero for undo"
    );
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), true);
    world.annotate(ANNOTATION_PROMOTE_FULL, "1");
    world.settle(at(1), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!(world.replicas("new"), 10);
}

#[test]
fn a_revision_that_never_becomes_available_aborts_at_the_deadline_or_degrades() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), false);
    let p = world.plan(at(1));
    assert_eq!(p.requeue_at, Some(at(600)));
    world.settle(at(600), false);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(world.replicas("new"), 0);
    assert_eq!(world.replicas("old"), 10);

    let mut r = rollout(steps(), false);
    r.spec.progress_deadline_abort = Some(false);
    let mut world = World::new(r, "old", "new");
    world.settle(at(0), false);
    world.settle(at(600), false);
    assert_eq!(world.status().phase, RolloutPhase::Degraded);
    assert_eq!(
        world.replicas("new"),
        2,
        "marked Degraded only: nothing is rolled back"
    );
}

/// Marks the revision `hash` as its Deployment reports it stuck.
fn stuck(world: &mut World, hash: &str, reason: &str, message: &str) {
    for r in world.revisions.iter_mut().filter(|r| r.revision == hash) {
        r.failure = Some((reason.to_string(), message.to_string()));
    }
}

#[test]
fn a_deployment_refusing_pods_is_reported_at_once_and_once() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), false);
    let quota = "pods \"web-new-x\" is forbidden: exceeded quota: small, requested: pods=1";
    stuck(&mut world, "new", "ReplicaFailure", quota);
    let p = world.plan(at(5));
    let progressing = p
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == cond::PROGRESSING)
        .expect("a Progressing condition");
    assert_eq!(progressing.status, cond::FALSE);
    assert_eq!(progressing.reason, "ReplicaFailure");
    assert!(
        progressing.message.contains("exceeded quota: small"),
        "{progressing:?}"
    );
    assert!(
        p.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("exceeded quota"))
    );
    assert_eq!(
        p.notes
            .iter()
            .filter(|n| n.reason == "ReplicaFailure")
            .count(),
        1,
        "{:?}",
        p.notes
    );
    // Not rolled back for it: the quota may be raised before the deadline.
    assert_ne!(p.status.phase, RolloutPhase::Aborted);
    assert_eq!(p.requeue_at, Some(at(600)), "the deadline still stands");
    world.rollout.status = Some(p.status.clone());
    let again = world.plan(at(6));
    assert!(
        again.notes.iter().all(|n| n.reason != "ReplicaFailure"),
        "announced once: {:?}",
        again.notes
    );
    assert_eq!(
        again.status, p.status,
        "an unchanged cause changes no status"
    );
}

#[test]
fn kubernetes_own_progress_deadline_aborts_or_degrades_at_once() {
    let mut world = World::new(rollout(steps(), false), "old", "new");
    world.settle(at(0), false);
    stuck(
        &mut world,
        "new",
        "ProgressDeadlineExceeded",
        "ReplicaSet \"web-new\" has timed out progressing.",
    );
    world.settle(at(5), false);
    assert_eq!(
        world.status().phase,
        RolloutPhase::Aborted,
        "long before the Rollout's own 600 s"
    );
    assert!(
        world
            .status()
            .message
            .as_deref()
            .is_some_and(|m| m.contains("timed out progressing"))
    );

    let mut r = rollout(steps(), false);
    r.spec.progress_deadline_abort = Some(false);
    let mut world = World::new(r, "old", "new");
    world.settle(at(0), false);
    stuck(&mut world, "new", "ProgressDeadlineExceeded", "timed out");
    world.settle(at(5), false);
    assert_eq!(world.status().phase, RolloutPhase::Degraded);
}

#[test]
fn spec_paused_holds_the_step() {
    let mut r = rollout(steps(), false);
    r.spec.paused = Some(true);
    let mut world = World::new(r, "old", "new");
    world.settle(at(0), true);
    world.settle(at(3600), true);
    assert_eq!(world.status().current_step_index, Some(0));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
}

#[test]
fn old_revisions_past_the_history_limit_are_deleted_oldest_first() {
    let mut r = rollout(steps(), false);
    r.spec.revision_history_limit = Some(1);
    let mut world = World::new(r, "v3", "v3");
    for (i, rev) in ["v1", "v2"].iter().enumerate() {
        world.revisions.push(RevisionObserved {
            revision: rev.to_string(),
            replicas: 0,
            available: 0,
            role: Some("history".into()),
            created: Some(at(-1000 + i as i64)),
            failure: None,
        });
    }
    let p = world.plan(at(0));
    assert!(p.actions.contains(&Action::DeleteRevision {
        revision: "v1".into()
    }));
    assert!(!p.actions.contains(&Action::DeleteRevision {
        revision: "v2".into()
    }));
}

#[test]
fn a_weight_step_waits_until_the_gateway_has_taken_the_route() {
    let mut world = World::new(rollout(steps(), true), "old", "new");
    world.route_pending = Some("gateway \"gw\" has not seen generation 2 of the route yet".into());
    world.settle(at(0), true);
    assert_eq!(world.route_weight, Some(20), "the weight is written");
    assert_eq!(
        world.status().current_step_index,
        Some(0),
        "but the step is not done while the gateway has not taken it"
    );
    let progressing = world
        .status()
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        progressing.contains("waiting for the gateway"),
        "{progressing}"
    );
    world.route_pending = None;
    world.settle(at(1), true);
    assert_eq!(world.status().current_step_index, Some(1));
}

#[test]
fn with_a_router_weight_follows_the_canary_pods_and_abort_removes_it_first() {
    let mut world = World::new(rollout(steps(), true), "old", "new");
    let p = world.plan(at(0));
    assert!(p.actions.contains(&Action::PinService {
        service: "c".into(),
        revision: "new".into()
    }));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SetRouteWeight { .. })),
        "no weight before the canary pods are up"
    );
    world.settle(at(0), true);
    assert_eq!(world.route_weight, Some(20));
    assert_eq!((world.replicas("old"), world.replicas("new")), (10, 2));
    world.annotate(ANNOTATION_ABORT, "x");
    let p = world.plan(at(5));
    assert_eq!(p.status.canary_weight, Some(0));
    assert!(p.actions.contains(&Action::SetRouteWeight { canary: 0 }));
    assert!(!p.actions.iter().any(|a| matches!(a, Action::ApplyRevision { revision, replicas: 0, .. } if revision == "new")),
        "canary pods stay until the abort scale-down delay");
    assert_eq!(p.requeue_at, Some(at(35)));
    world.apply(&p, true);
    world.settle(at(35), true);
    assert_eq!(world.replicas("new"), 0);
}

#[test]
fn a_canary_scale_runs_a_small_weight_on_full_capacity_and_match_undoes_it() {
    let steps = json!([
        {"setCanaryScale": {"replicas": 10}}, {"setWeight": 5}, {"pause": {}},
        {"setCanaryScale": {"matchTrafficWeight": true}}, {"setWeight": 20}, {"pause": {}}
    ]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    // The scale step waits for its pods before the weight step sends them traffic.
    let p = world.plan(at(0));
    assert!(p.actions.contains(&Action::ApplyRevision {
        revision: "new".into(),
        replicas: 10,
        role: Role::Canary
    }));
    assert_eq!(p.status.current_step_index, Some(0));
    world.apply(&p, false);
    assert_eq!(
        world.plan(at(1)).status.current_step_index,
        Some(0),
        "pods not up yet"
    );
    world.pods_come_up();
    world.settle(at(2), true);
    assert_eq!(world.status().current_step_index, Some(2), "at the gate");
    assert_eq!((world.replicas("old"), world.replicas("new")), (10, 10));
    assert_eq!(world.route_weight, Some(5), "5 % of traffic on 10 pods");
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(3), true);
    assert_eq!(world.status().current_step_index, Some(5));
    assert_eq!(world.route_weight, Some(20));
    assert_eq!(world.replicas("new"), 2, "back to the pods 20 % calls for");
    world.annotate(ANNOTATION_ABORT, "x");
    world.settle(at(4), true);
    assert_eq!(world.route_weight, Some(0), "abort takes the traffic first");
    world.settle(at(60), true);
    assert_eq!(world.replicas("new"), 0, "and the pods after the delay");
}

fn rule_names(world: &World) -> Vec<String> {
    world
        .route_rules
        .managed
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn header_and_mirror_routes_hold_from_their_step_until_promotion() {
    let steps = json!([
        {"setCanaryScale": {"replicas": 1}},
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 20}},
        {"pause": {}},
        {"setMirrorRoute": {"name": "shadow"}},
        {"setWeight": 30}, {"pause": {}}
    ]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    // The header step writes its rule and is done only once the route holds it.
    let p = world.plan(at(0));
    world.apply(&p, true);
    let p = world.plan(at(1));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::SetRouteRules { rules } if rules.len() == 1))
    );
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "not done before the route holds it"
    );
    world.settle(at(2), true);
    assert_eq!(world.status().current_step_index, Some(3));
    assert_eq!(
        rule_names(&world),
        ["cutover-header-beta", "cutover-mirror-shadow"]
    );
    assert_eq!(world.route_weight, Some(0), "weights are left to setWeight");
    assert_eq!(world.replicas("new"), 1);
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(3), true);
    assert_eq!(world.status().current_step_index, Some(6));
    assert_eq!(
        rule_names(&world),
        ["cutover-header-beta"],
        "the mirror removed by name"
    );
    assert_eq!(world.route_weight, Some(30));
    world.annotate(ANNOTATION_PROMOTE, "2");
    world.settle(at(4), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert!(
        rule_names(&world).is_empty(),
        "promotion restores the route"
    );
    assert_eq!(world.plan(at(5)).actions, [], "and then writes nothing");
}

#[test]
fn a_mirror_the_gateway_cannot_serve_is_never_written_and_holds_its_step() {
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"setMirrorRoute": {"name": "shadow", "percentage": 20}},
        {"setWeight": 30}, {"pause": {}}
    ]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    world.route_rules.mirror_refused = Some("gateway \"public\" does not list it".into());
    world.settle(at(1), true);
    let status = world.status();
    assert_eq!(
        status.current_step_index,
        Some(1),
        "held at the mirror step"
    );
    assert_eq!(status.phase, RolloutPhase::Paused);
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("mirror route \"shadow\" not written")
                && m.contains("does not list it")),
        "{:?}",
        status.message
    );
    assert_eq!(
        cond::find(&status.conditions, cond::PAUSED).map(|c| c.reason.as_str()),
        Some("MirrorUnsupported")
    );
    assert_eq!(
        rule_names(&world),
        ["cutover-header-beta"],
        "no mirror rule"
    );
    assert_eq!(world.plan(at(2)).actions, [], "held, it writes nothing");
    // A person may go on without the mirror: it stays unwritten.
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(3), true);
    assert_eq!(world.status().current_step_index, Some(3));
    assert_eq!(world.route_weight, Some(30));
    assert_eq!(rule_names(&world), ["cutover-header-beta"]);
}

#[test]
fn a_header_route_waits_for_a_canary_pod_to_answer_it() {
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"pause": {}}
    ]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    let p = world.plan(at(0));
    assert!(
        p.actions.contains(&Action::ApplyRevision {
            revision: "new".into(),
            replicas: 1,
            role: Role::Canary
        }),
        "one pod, though the weight is 0"
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::SetRouteRules { .. })),
        "no route to a canary with no pod up"
    );
    world.apply(&p, false);
    world.settle(at(1), false);
    assert!(rule_names(&world).is_empty());
    assert_eq!(world.status().current_step_index, Some(0));
    world.pods_come_up();
    world.settle(at(2), false);
    assert_eq!(rule_names(&world), ["cutover-header-beta"]);
    assert_eq!(world.status().current_step_index, Some(1));
    assert_eq!((world.replicas("new"), world.route_weight), (1, Some(0)));
}

#[test]
fn an_abort_takes_the_header_route_out_with_the_weight() {
    let steps = json!([
        {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"exact": "1"}}]}},
        {"setWeight": 10}, {"pause": {}}
    ]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    world.settle(at(0), true);
    assert_eq!(rule_names(&world), ["cutover-header-beta"]);
    world.annotate(ANNOTATION_ABORT, "x");
    let p = world.plan(at(1));
    assert!(p.actions.contains(&Action::SetRouteRules { rules: vec![] }));
    assert!(p.actions.contains(&Action::SetRouteWeight { canary: 0 }));
    world.apply(&p, true);
    world.settle(at(60), true);
    assert!(rule_names(&world).is_empty());
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
}

#[test]
fn a_one_pod_canary_before_any_traffic() {
    let steps = json!([{"setCanaryScale": {"replicas": 1}}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]);
    let mut world = World::new(rollout(steps, true), "old", "new");
    world.settle(at(0), true);
    assert_eq!(world.status().current_step_index, Some(1));
    assert_eq!((world.replicas("new"), world.route_weight), (1, Some(0)));
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(1), true);
    assert_eq!(world.status().current_step_index, Some(3));
    assert_eq!(
        (world.replicas("new"), world.route_weight),
        (1, Some(50)),
        "the scale holds until another one is set"
    );
}

proptest! {
    #[test]
    fn invariants_hold_for_any_steps_and_availability(
        weights in proptest::collection::vec(prop_oneof![(0i32..=100).prop_map(Some), Just(None)], 0..6),
        routed in any::<bool>(),
        lagging in any::<bool>(),
        abort_at in proptest::option::of(0usize..6),
        secs in proptest::collection::vec(0i64..200, 6),
    ) {
        let steps: Vec<serde_json::Value> = weights.iter().map(|w| match w {
            Some(w) => json!({"setWeight": w}),
            None => json!({"pause": {"duration": "30s"}}),
        }).collect();
        let mut world = World::new(rollout(json!(steps), routed), "old", "new");
        let mut now = 0;
        // Lagging: pods scaled up in one round become available by the next.
        let round = |world: &mut World, now: i64| {
            if lagging {
                world.pods_come_up();
            }
            world.settle(at(now), !lagging);
        };
        for (i, dt) in secs.iter().enumerate() {
            now += dt;
            if Some(i) == abort_at {
                world.annotate(ANNOTATION_ABORT, "x");
            }
            round(&mut world, now);
            let status = world.status().clone();
            // The weight never exceeds what the steps so far allow.
            let index = status.current_step_index.unwrap_or(0).max(0) as usize;
            let allowed = weights[..(index + 1).min(weights.len())].iter().flatten().copied().max().unwrap_or(0);
            let bound = if index >= weights.len() { 100 } else { allowed };
            prop_assert!(status.canary_weight.unwrap_or(0) <= bound, "weight {:?} above {}", status.canary_weight, bound);
            let promoted = status.stable_revision.as_deref() == Some("new");
            if status.phase == RolloutPhase::Aborted {
                prop_assert!(abort_at.is_some_and(|a| a <= i), "aborted unasked");
                prop_assert!(!promoted);
                prop_assert_eq!(status.canary_weight, Some(0));
                prop_assert_eq!(world.replicas("old"), 10, "abort keeps stable at full scale");
                if routed {
                    prop_assert_eq!(world.route_weight, Some(0));
                }
            } else if promoted {
                prop_assert_eq!(world.replicas("new"), 10, "the promoted revision at full scale");
                prop_assert_eq!(status.phase, RolloutPhase::Healthy);
                if routed {
                    prop_assert_eq!(world.route_weight.unwrap_or(0), 0, "all traffic on the promoted revision");
                }
            } else {
                // Under way: never fewer pods than asked for, and with a router the stable
                // stays at full size so that an abort moves traffic back at once.
                prop_assert!(world.replicas("old") + world.replicas("new") >= 10);
                if routed {
                    prop_assert_eq!(world.replicas("old"), 10);
                    prop_assert!(world.route_weight.unwrap_or(0) <= bound);
                }
            }
            // Settled: a replan writes nothing.
            let again = world.plan(at(now));
            prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
            prop_assert_eq!(Some(&again.status), world.rollout.status.as_ref());
        }
        // Left alone, a rollout nobody aborted finishes, however its pods lag.
        if abort_at.is_none() {
            for _ in 0..weights.len() + 3 {
                now += 60;
                round(&mut world, now);
            }
            let status = world.status();
            prop_assert_eq!(status.stable_revision.as_deref(), Some("new"), "{:?}", status);
            prop_assert_eq!(status.phase, RolloutPhase::Healthy);
            prop_assert_eq!(world.replicas("new"), 10);
        }
    }

    #[test]
    fn scale_and_routes_never_leave_traffic_without_a_pod_nor_stop_a_release(
        steps in proptest::collection::vec(prop_oneof![
            (0i32..=100).prop_map(|w| json!({"setWeight": w})),
            Just(json!({"pause": {"duration": "30s"}})),
            (0i32..=14).prop_map(|n| json!({"setCanaryScale": {"replicas": n}})),
            (0i32..=100).prop_map(|w| json!({"setCanaryScale": {"weight": w}})),
            Just(json!({"setCanaryScale": {"matchTrafficWeight": true}})),
            Just(json!({"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}})),
            Just(json!({"setHeaderRoute": {"name": "h"}})),
            (1i32..=100).prop_map(|p| json!({"setMirrorRoute": {"name": "m", "percentage": p}})),
            Just(json!({"setMirrorRoute": {"name": "m"}})),
        ], 1..7),
        lagging in any::<bool>(),
        secs in proptest::collection::vec(0i64..100, 6),
    ) {
        let count = steps.len();
        let mut world = World::new(rollout(json!(steps), true), "old", "new");
        let mut now = 0;
        for dt in &secs {
            now += dt;
            if lagging {
                world.pods_come_up();
            }
            world.settle(at(now), !lagging);
            let status = world.status().clone();
            if status.stable_revision.as_deref() != Some("new") {
                prop_assert_eq!(world.replicas("old"), 10, "the stable keeps full size");
                prop_assert!(world.replicas("new") <= 10);
                let available = world.revisions.iter().find(|r| r.revision == "new").map_or(0, |r| r.available);
                if world.route_weight.unwrap_or(0) > 0 {
                    prop_assert!(available >= 1, "weight {:?} on no canary pod", world.route_weight);
                }
                let header_route = rule_names(&world).iter().any(|n| n.starts_with("cutover-header-"));
                prop_assert!(!header_route || available >= 1, "a header route to no canary pod");
            }
            let again = world.plan(at(now));
            prop_assert!(again.actions.is_empty(), "{:?}", again.actions);
        }
        for _ in 0..count + 3 {
            now += 60;
            if lagging {
                world.pods_come_up();
            }
            world.settle(at(now), !lagging);
        }
        prop_assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
        prop_assert_eq!(world.replicas("new"), 10);
        prop_assert_eq!(world.route_weight.unwrap_or(0), 0);
        prop_assert!(rule_names(&world).is_empty(), "promotion restores the route");
    }

    #[test]
    fn a_crash_between_status_and_writes_neither_repeats_nor_skips_a_step(
        weights in proptest::collection::vec(1i32..=100, 1..5),
        crash_at in 0i64..12,
    ) {
        // The shell records status before it acts; the operator dies between the two, so
        // the next plan starts from the newer status and the older world.
        let steps: Vec<serde_json::Value> = weights.iter().map(|w| json!({"setWeight": w})).collect();
        let mut world = World::new(rollout(json!(steps), false), "old", "new");
        let mut seen: Vec<String> = Vec::new();
        for round in 0..30 {
            let p = world.plan(at(round));
            for n in p.notes.iter().filter(|n| n.reason == "StepCompleted") {
                if seen.last() != Some(&n.message) {
                    seen.push(n.message.clone());
                }
            }
            if round == crash_at {
                world.rollout.status = Some(p.status.clone());
            } else {
                world.apply(&p, true);
            }
        }
        let expected: Vec<String> = (0..weights.len()).map(|i| format!("step {i} completed")).collect();
        prop_assert_eq!(seen, expected);
        prop_assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    }
}

fn bluegreen(extra: serde_json::Value) -> Rollout {
    let mut bg = json!({"activeService": "active", "previewService": "preview"});
    if let (Some(b), Some(e)) = (bg.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "api", "namespace": "default", "generation": 2, "uid": "u"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}}, "strategy": {"blueGreen": bg}}}))
    .unwrap()
}

fn bg_world(extra: serde_json::Value) -> World {
    let mut world = World::new(bluegreen(extra), "blue", "green");
    world.revisions[0].replicas = 3;
    world.revisions[0].available = 3;
    world.services = BTreeMap::from([
        ("active".to_string(), Some("blue".to_string())),
        ("preview".to_string(), Some("blue".to_string())),
    ]);
    world
}

#[test]
fn bluegreen_previews_then_switches_the_active_service_in_one_write() {
    let mut world = bg_world(json!({"autoPromotionEnabled": false, "scaleDownDelaySeconds": 30}));
    world.settle(at(0), true);
    assert_eq!(
        world.services["active"].as_deref(),
        Some("blue"),
        "active never moves before promotion"
    );
    assert_eq!(world.services["preview"].as_deref(), Some("green"));
    assert_eq!((world.replicas("blue"), world.replicas("green")), (3, 3));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    world.annotate(ANNOTATION_PROMOTE, "1");
    let p = world.plan(at(10));
    let pins: Vec<&Action> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::PinService { service, .. } if service == "active"))
        .collect();
    assert_eq!(
        pins,
        vec![&Action::PinService {
            service: "active".into(),
            revision: "green".into()
        }]
    );
    assert_eq!(
        p.status.phase,
        RolloutPhase::Progressing,
        "not Healthy (nor Ready) before the switch is seen: the status is written first"
    );
    assert!(!p.notes.iter().any(|n| n.reason == "Healthy"));
    world.apply(&p, true);
    let p = world.plan(at(10));
    assert_eq!(p.status.phase, RolloutPhase::Healthy, "the switch seen");
    world.settle(at(10), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("green"));
    assert_eq!(
        world.replicas("blue"),
        3,
        "the old revision stays up for the scale-down delay"
    );
    assert_eq!(world.plan(at(11)).requeue_at, Some(at(40)));
    world.settle(at(40), true);
    assert_eq!(world.replicas("blue"), 0);
    assert_eq!(world.status().phase, RolloutPhase::Healthy);
}

#[test]
fn bluegreen_auto_promotes_after_the_delay() {
    let mut world = bg_world(json!({"autoPromotionSeconds": 60}));
    world.settle(at(0), true);
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    assert_eq!(world.plan(at(1)).requeue_at, Some(at(60)));
    world.settle(at(60), true);
    assert_eq!(world.services["active"].as_deref(), Some("green"));
}

#[test]
fn bluegreen_abort_before_promotion_never_moves_the_active_service() {
    let mut world = bg_world(json!({"autoPromotionEnabled": false}));
    world.settle(at(0), true);
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(1), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(world.services["active"].as_deref(), Some("blue"));
    assert_eq!(world.services["preview"].as_deref(), Some("blue"));
    assert_eq!(world.replicas("green"), 0);
}

#[test]
fn bluegreen_abort_and_undo_within_the_scale_down_delay_switch_back_at_once() {
    let mut world = bg_world(json!({"scaleDownDelaySeconds": 600}));
    world.settle(at(0), true);
    assert_eq!(world.services["active"].as_deref(), Some("green"));
    world.annotate(ANNOTATION_ABORT, "1");
    let p = world.plan(at(5));
    assert!(p.actions.contains(&Action::PinService {
        service: "active".into(),
        revision: "blue".into()
    }));
    world.apply(&p, true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("blue"));
    assert_eq!(world.status().phase, RolloutPhase::Aborted);

    // Undo: the template goes back to the previous revision, still scaled: instant switch.
    let mut world = bg_world(json!({"scaleDownDelaySeconds": 600, "autoPromotionEnabled": false}));
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(0), true);
    assert_eq!(world.services["active"].as_deref(), Some("green"));
    world.target = "blue".into();
    let p = world.plan(at(5));
    assert!(
        p.actions.contains(&Action::PinService {
            service: "active".into(),
            revision: "blue".into()
        }),
        "no gate on the way back"
    );
    world.apply(&p, true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("blue"));
}

fn rolling(strategy: serde_json::Value, replicas: i32) -> World {
    let r: Rollout = serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "w", "namespace": "default", "generation": 2, "uid": "u"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "w"}}, "strategy": {"rolling": strategy}}}))
    .unwrap();
    let mut world = World::new(r, "old", "new");
    world.revisions[0].replicas = replicas;
    world.revisions[0].available = replicas;
    world
}

fn available_total(world: &World) -> i32 {
    world.revisions.iter().map(|r| r.available).sum()
}

#[test]
fn rolling_replaces_in_batches_without_dropping_below_the_floor() {
    let mut world = rolling(json!({"batchSize": 2, "maxUnavailable": 0}), 6);
    let mut min_available = i32::MAX;
    for round in 0..40 {
        let p = world.plan(at(round));
        // New pods become available one round after they are asked for; old ones go at once.
        let before: BTreeMap<String, i32> = world
            .revisions
            .iter()
            .map(|r| (r.revision.clone(), r.replicas))
            .collect();
        world.apply(&p, false);
        for r in world.revisions.iter_mut() {
            let asked_before = before.get(&r.revision).copied().unwrap_or(0);
            r.available = r
                .available
                .max(asked_before.min(r.replicas))
                .min(r.replicas);
        }
        min_available = min_available.min(available_total(&world));
    }
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!((world.replicas("new"), world.replicas("old")), (6, 0));
    assert!(
        min_available >= 6,
        "maxUnavailable 0: never fewer than 6 available, saw {min_available}"
    );
}

#[test]
fn rolling_pauses_between_batches_but_not_after_the_last() {
    let mut world = rolling(json!({"batchSize": "50%", "pause": {}}), 4);
    world.settle(at(0), true);
    assert_eq!((world.replicas("new"), world.replicas("old")), (2, 2));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(1), true);
    assert_eq!(
        world.status().stable_revision.as_deref(),
        Some("new"),
        "no pause after the last batch"
    );
    assert_eq!(world.status().phase, RolloutPhase::Healthy);
}

#[test]
fn rolling_abort_brings_the_old_revision_back_before_removing_the_new() {
    let mut world = rolling(json!({"batchSize": 1, "pause": {}}), 3);
    world.settle(at(0), true);
    assert_eq!((world.replicas("new"), world.replicas("old")), (1, 2));
    world.annotate(ANNOTATION_ABORT, "1");
    let p = world.plan(at(1));
    assert!(p.actions.contains(&Action::ApplyRevision {
        revision: "old".into(),
        replicas: 3,
        role: Role::Stable
    }));
    assert!(!p.actions.iter().any(|a| matches!(a, Action::ApplyRevision { revision, replicas: 0, .. } if revision == "new")),
        "new pods stay until the old ones are back");
    world.apply(&p, true);
    world.settle(at(2), true);
    assert_eq!((world.replicas("new"), world.replicas("old")), (0, 3));
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
}

#[test]
fn an_adopted_deployment_is_scaled_down_only_once_the_rollout_serves() {
    let mut r = rollout(steps(), false);
    r.status = None;
    let mut world = World {
        rollout: r,
        target: "aaa".into(),
        revisions: vec![],
        route_weight: None,
        route_pending: None,
        route_rules: Default::default(),
        services: BTreeMap::new(),
        referenced: Some(10),
        measurements: Vec::new(),
        migrations: Vec::new(),
        rollback_requests: Vec::new(),
        retry_requests: Vec::new(),
        flag_states: Vec::new(),
        freeze: None,
        required: Vec::new(),
    };
    let p = world.plan(at(0));
    assert!(
        !p.actions.contains(&Action::ScaleReferenced { replicas: 0 }),
        "not before the revision's pods are up"
    );
    world.apply(&p, false);
    world.settle(at(1), false);
    assert_eq!(world.referenced, Some(10));
    world
        .revisions
        .iter_mut()
        .for_each(|r| r.available = r.replicas);
    world.settle(at(2), false);
    assert_eq!(world.referenced, Some(0));
}

// ---- analysis ----

use super::super::analysis::{self as runs, Input, Taken};
use crate::analysis::condition::QueryResult;
use crate::api::{AnalysisVerdict, MeasurementOutcome};

fn metric(extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({"name": "errors", "interval": "30s", "count": 3,
        "successCondition": "result < 0.05", "prometheus": {"query": "errors"}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

impl World {
    /// Takes the measurements due at `now` as the shell would, with `value` answering each.
    fn measure(&mut self, now: Timestamp, value: &dyn Fn(&str, Timestamp) -> Input) {
        self.measurements = runs::due(&self.rollout, now)
            .into_iter()
            .map(|d| Taken {
                run: d.run.clone(),
                metric: d.metric.name.clone(),
                due: d.at,
                taken: now,
                input: value(&d.run, now),
            })
            .collect();
    }

    /// Runs the world second by second from `from` to `to`, measuring what falls due.
    fn run(&mut self, from: i64, to: i64, value: &dyn Fn(&str, Timestamp) -> Input) {
        for t in from..=to {
            self.measure(at(t), value);
            self.settle(at(t), true);
            self.measurements.clear();
        }
    }

    fn run_status(&self, name: &str) -> &crate::api::AnalysisRunStatus {
        self.status()
            .analysis
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no run {name}: {:?}", self.status().analysis))
    }
}

fn number(v: f64) -> Input {
    Input::Query(Ok(QueryResult::Number(v)))
}

fn analysis_steps() -> serde_json::Value {
    json!([{"setWeight": 20}, {"analysis": {"metrics": [metric(json!({}))]}}, {"setWeight": 50}])
}

#[test]
fn a_passing_step_analysis_measures_on_its_interval_then_goes_on() {
    let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
    world.run(0, 10, &|_, _| number(0.01));
    let run = world.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Running);
    assert_eq!(run.metrics[0].count, 1, "one measurement at the start");
    let p = world.plan(at(10));
    assert_eq!(
        p.requeue_at,
        Some(at(30)),
        "woken at the next due time, not polled"
    );
    world.run(11, 61, &|_, _| number(0.01));
    let run = world.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    assert_eq!(run.metrics[0].count, 3);
    let due: Vec<i64> = run.metrics[0]
        .measurements
        .iter()
        .map(|m| m.due_at.0.as_second() - T0)
        .collect();
    assert_eq!(due, vec![0, 30, 60], "due times from the start, no drift");
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
}

#[test]
fn a_failing_step_analysis_aborts_and_puts_traffic_back_on_stable() {
    let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
    world.run(0, 40, &|_, t| number(if t >= at(25) { 0.2 } else { 0.01 }));
    let s = world.status();
    assert_eq!(s.phase, RolloutPhase::Aborted);
    assert_eq!(s.stable_revision.as_deref(), Some("old"));
    assert_eq!(world.replicas("old"), 10);
    assert_eq!(world.replicas("new"), 0);
    let run = world.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Failed);
    assert!(
        s.message.as_deref().unwrap().contains("errors"),
        "{:?}",
        s.message
    );
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.reason == "AnalysisFailed"),
        "{:?}",
        s.conditions
    );
}

#[test]
fn an_unreachable_prometheus_pauses_and_never_promotes() {
    let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
    world.run(0, 600, &|_, _| {
        Input::Query(Err("connection refused".into()))
    });
    let s = world.status();
    assert_eq!(s.phase, RolloutPhase::Paused);
    assert_eq!(s.stable_revision.as_deref(), Some("old"));
    let run = world.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Error);
    assert_eq!(
        run.metrics[0].count, 5,
        "limit 4 errors in a row, retried every 10s"
    );
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.reason == "AnalysisError")
    );
    // A person decides: promote skips the step.
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.run(601, 602, &|_, _| {
        Input::Query(Err("connection refused".into()))
    });
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
}

#[test]
fn no_data_is_inconclusive_by_default_and_follows_the_policy() {
    let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
    world.run(0, 5, &|_, _| Input::Query(Ok(QueryResult::Empty)));
    assert_eq!(world.status().phase, RolloutPhase::Paused);
    assert_eq!(
        world.run_status("step-1").verdict,
        AnalysisVerdict::Inconclusive
    );
    let steps =
        json!([{"setWeight": 20}, {"analysis": {"metrics": [metric(json!({"noData": "fail"}))]}}]);
    let mut world = World::new(rollout(steps, false), "old", "new");
    world.run(0, 5, &|_, _| Input::Query(Ok(QueryResult::Empty)));
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
}

#[test]
fn on_error_abort_aborts_where_the_default_pauses() {
    let refused = |_: &str, _: Timestamp| Input::Query(Err("connection refused".into()));
    let steps = |on_error: serde_json::Value| {
        json!([{"setWeight": 20}, {"analysis": {"metrics": [metric(json!({
            "interval": "10s", "consecutiveErrorLimit": 1, "onError": on_error}))]}}])
    };
    let mut aborting = World::new(rollout(steps(json!("Abort")), false), "old", "new");
    aborting.run(0, 60, &refused);
    let s = aborting.status();
    assert_eq!(s.phase, RolloutPhase::Aborted);
    assert_eq!(s.stable_revision.as_deref(), Some("old"));
    assert_eq!(aborting.replicas("old"), 10);
    assert_eq!(aborting.replicas("new"), 0);
    assert_eq!(
        aborting.run_status("step-1").verdict,
        AnalysisVerdict::Error
    );
    assert_eq!(
        aborting.run_status("step-1").metrics[0].count,
        2,
        "one error tolerated, the second decides"
    );
    assert!(
        s.conditions
            .iter()
            .any(|c| c.type_ == "Aborted" && c.reason == "AnalysisError"),
        "{:?}",
        s.conditions
    );
    let mut pausing = World::new(rollout(steps(serde_json::Value::Null), false), "old", "new");
    pausing.run(0, 60, &refused);
    assert_eq!(pausing.status().phase, RolloutPhase::Paused);
    assert_eq!(pausing.replicas("new"), 2, "paused, the canary is kept");
}

#[test]
fn inconclusive_limit_tolerates_that_many_then_pauses() {
    // Five measurements 30 s apart; the first `empty` of them find no data.
    let world_with = |empty: i64| {
        let steps = json!([{"setWeight": 20}, {"analysis": {"metrics": [metric(json!({
            "count": 5, "inconclusiveLimit": 2}))]}}]);
        let mut world = World::new(rollout(steps, false), "old", "new");
        world.run(0, 200, &move |_, t| {
            if t < at(30 * empty) {
                Input::Query(Ok(QueryResult::Empty))
            } else {
                number(0.01)
            }
        });
        world
    };
    let tolerated = world_with(2);
    let run = tolerated.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    assert_eq!(run.metrics[0].inconclusive, 2);
    assert_eq!(tolerated.status().stable_revision.as_deref(), Some("new"));
    let over = world_with(3);
    let run = over.run_status("step-1");
    assert_eq!(run.verdict, AnalysisVerdict::Inconclusive);
    assert_eq!(run.metrics[0].inconclusive, 3, "decided on the third");
    assert_eq!(over.status().phase, RolloutPhase::Paused);
    assert_eq!(over.status().stable_revision.as_deref(), Some("old"));
    assert!(
        over.status()
            .conditions
            .iter()
            .any(|c| c.type_ == "Paused" && c.reason == "AnalysisInconclusive"),
        "{:?}",
        over.status().conditions
    );
}

#[test]
fn a_comparison_with_too_few_samples_follows_no_data() {
    // Four samples each, below the default minimum: the judge has no data.
    let few = |_: &str, _: Timestamp| Input::Compare(Ok((vec![0.5; 4], vec![0.2; 4])));
    let world_with = |no_data: serde_json::Value| {
        let steps = json!([{"setWeight": 20}, {"analysis": {"metrics": [{"name": "latency", "count": 1,
            "noData": no_data, "compare": {"canaryQuery": "c", "stableQuery": "s"}}]}}]);
        let mut world = World::new(rollout(steps, false), "old", "new");
        world.run(0, 5, &few);
        world
    };
    let default = world_with(serde_json::Value::Null);
    let m = &default.run_status("step-1").metrics[0].measurements[0];
    assert_eq!(m.outcome, MeasurementOutcome::Inconclusive);
    assert!(
        m.message.as_deref().unwrap().contains("too few samples"),
        "{m:?}"
    );
    assert_eq!(default.status().phase, RolloutPhase::Paused);
    let failing = world_with(json!("fail"));
    assert_eq!(
        failing.run_status("step-1").metrics[0].measurements[0].outcome,
        MeasurementOutcome::Failed
    );
    assert_eq!(failing.status().phase, RolloutPhase::Aborted);
    let passing = world_with(json!("pass"));
    assert_eq!(
        passing.run_status("step-1").metrics[0].measurements[0].outcome,
        MeasurementOutcome::Successful
    );
    assert_eq!(passing.status().stable_revision.as_deref(), Some("new"));
}

#[test]
fn a_measurement_taken_from_a_stale_status_is_not_counted_twice() {
    let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
    world.run(0, 1, &|_, _| number(0.01));
    // The shell saw the status before the first measurement was recorded.
    let stale = Taken {
        run: "step-1".into(),
        metric: "errors".into(),
        due: world.run_status("step-1").started_at.clone().unwrap().0,
        taken: at(2),
        input: number(0.01),
    };
    world.measurements = vec![stale];
    world.settle(at(2), true);
    assert_eq!(world.run_status("step-1").metrics[0].count, 1);
}

#[test]
fn background_analysis_aborts_at_any_step_and_ends_at_promotion() {
    let bg = |value: f64| {
        let mut r = rollout(
            json!([{"setWeight": 20}, {"pause": {"duration": "2m"}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}]),
            false,
        );
        r.spec.strategy.canary.as_mut().unwrap().analysis = Some(
            serde_json::from_value(
                json!({"startingStep": 1, "metrics": [metric(json!({"count": null}))]}),
            )
            .unwrap(),
        );
        let mut world = World::new(r, "old", "new");
        world.run(0, 400, &move |run, t| {
            assert_eq!(run, runs::BACKGROUND);
            number(if t >= at(90) { value } else { 0.01 })
        });
        world
    };
    let failing = bg(0.3);
    assert_eq!(failing.status().phase, RolloutPhase::Aborted);
    assert_eq!(
        failing.status().current_step_index,
        Some(1),
        "aborted during the pause"
    );
    let healthy = bg(0.01);
    assert_eq!(healthy.status().stable_revision.as_deref(), Some("new"));
    let run = healthy.run_status(runs::BACKGROUND);
    assert_eq!(run.verdict, AnalysisVerdict::Successful);
    assert!(
        run.message.as_deref().unwrap().starts_with("ended"),
        "{:?}",
        run.message
    );
    assert!(
        runs::due(&healthy.rollout, at(10_000)).is_empty(),
        "nothing measured after promotion"
    );
}

#[test]
fn a_comparison_judges_canary_against_stable() {
    let steps = json!([{"setWeight": 20}, {"analysis": {"metrics": [{"name": "latency", "count": 1,
        "compare": {"canaryQuery": "c", "stableQuery": "s"}}]}}]);
    let series =
        |center: f64| -> Vec<f64> { (0..20).map(|i| center + 0.001 * f64::from(i % 5)).collect() };
    let mut slow = World::new(rollout(steps.clone(), false), "old", "new");
    slow.run(0, 5, &|_, _| Input::Compare(Ok((series(0.5), series(0.2)))));
    assert_eq!(slow.status().phase, RolloutPhase::Aborted);
    let value = slow.run_status("step-1").metrics[0].measurements[0]
        .value
        .clone()
        .unwrap();
    assert!(value.starts_with("High: p="), "{value}");
    let mut same = World::new(rollout(steps, false), "old", "new");
    same.run(0, 5, &|_, _| Input::Compare(Ok((series(0.2), series(0.2)))));
    assert_eq!(same.status().stable_revision.as_deref(), Some("new"));
}

#[test]
fn bluegreen_pre_promotion_failure_never_moves_the_active_service() {
    let mut world = bg_world(json!({"prePromotionAnalysis": {"metrics": [metric(json!({}))]}}));
    world.run(0, 60, &|run, _| {
        assert_eq!(run, runs::PRE_PROMOTION);
        number(0.5)
    });
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(world.services["active"].as_deref(), Some("blue"));
    let mut world = bg_world(json!({"prePromotionAnalysis": {"metrics": [metric(json!({}))]}}));
    world.run(0, 30, &|_, _| number(0.01));
    assert_eq!(
        world.services["active"].as_deref(),
        Some("blue"),
        "not before the verdict"
    );
    world.run(31, 61, &|_, _| number(0.01));
    assert_eq!(world.services["active"].as_deref(), Some("green"));
}

#[test]
fn bluegreen_post_promotion_failure_switches_back() {
    let mut world = bg_world(json!({"scaleDownDelaySeconds": 10,
        "postPromotionAnalysis": {"metrics": [metric(json!({}))]}}));
    world.run(0, 20, &|run, _| {
        assert_eq!(run, runs::POST_PROMOTION);
        number(0.01)
    });
    assert_eq!(world.services["active"].as_deref(), Some("green"));
    assert_eq!(
        world.replicas("blue"),
        3,
        "kept past the delay until the verdict"
    );
    world.run(21, 40, &|_, _| number(0.5));
    assert_eq!(world.services["active"].as_deref(), Some("blue"));
    assert_eq!(world.status().stable_revision.as_deref(), Some("blue"));
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
}

#[test]
fn rolling_analysis_between_batches_aborts_on_failure() {
    let mut world = rolling(
        json!({"batchSize": 5, "analysis": {"metrics": [metric(json!({}))]}}),
        10,
    );
    world.run(0, 20, &|run, _| {
        assert_eq!(run, "batch-1");
        number(0.5)
    });
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(world.replicas("old"), 10);
    assert_eq!(world.replicas("new"), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever Prometheus answers, a rollout is promoted only through a successful run:
    /// errors, no data and failures never promote.
    #[test]
    fn only_a_successful_analysis_promotes(
        answers in proptest::collection::vec(0u8..4, 1..12),
    ) {
        let mut world = World::new(rollout(analysis_steps(), false), "old", "new");
        let answers = std::sync::Mutex::new(answers.into_iter().cycle());
        world.run(0, 400, &|_, _| {
            match answers.lock().unwrap().next() {
                Some(0) => number(0.01),
                Some(1) => number(0.5),
                Some(2) => Input::Query(Ok(QueryResult::Empty)),
                _ => Input::Query(Err("timeout".into())),
            }
        });
        let s = world.status();
        let run = world.run_status("step-1");
        if s.stable_revision.as_deref() == Some("new") {
            prop_assert_eq!(run.verdict, AnalysisVerdict::Successful);
            prop_assert_eq!(run.metrics[0].failed, 0);
            prop_assert_eq!(run.metrics[0].inconclusive, 0);
        } else {
            prop_assert!(run.verdict != AnalysisVerdict::Successful || s.phase == RolloutPhase::Progressing);
        }
    }
}

// ---- migration gates ----

use crate::api::MigrationPhase;

fn gated(rollback_on_abort: bool) -> World {
    let mut r = rollout(steps(), false);
    r.spec.migrations = Some(crate::api::MigrationGates {
        before: vec!["expand-a".into(), "expand-b".into()],
        after: vec![],
        rollback_on_abort: Some(rollback_on_abort),
    });
    let mut world = World::new(r, "old", "new");
    world.migrations = ["expand-a", "expand-b"]
        .map(|n| MigrationObserved {
            name: n.into(),
            phase: MigrationPhase::Running,
            ..Default::default()
        })
        .to_vec();
    world
}

fn migration_state(world: &mut World, name: &str, phase: MigrationPhase) {
    let m = world
        .migrations
        .iter_mut()
        .find(|m| m.name == name)
        .unwrap();
    m.phase = phase;
    m.succeeded = phase == MigrationPhase::Succeeded;
    m.failed = phase == MigrationPhase::Failed;
    m.message = format!("{name} is {phase:?}");
}

#[test]
fn the_new_revision_gets_no_pod_until_its_migrations_succeed() {
    let mut world = gated(false);
    world.settle(at(0), true);
    let s = world.status();
    assert_eq!(s.phase, RolloutPhase::Progressing);
    assert_eq!(
        s.message.as_deref(),
        Some("waiting for migrations: expand-a, expand-b")
    );
    assert!(
        s.conditions
            .iter()
            .any(|c| c.reason == "WaitingForMigrations")
    );
    assert_eq!(world.replicas("new"), 0);
    assert_eq!(world.replicas("old"), 10, "stable untouched");
    migration_state(&mut world, "expand-a", MigrationPhase::Succeeded);
    world.settle(at(60), true);
    assert_eq!(world.replicas("new"), 0, "one of two is not enough");
    // A long migration does not eat the progress deadline of the first step.
    migration_state(&mut world, "expand-b", MigrationPhase::Succeeded);
    world.settle(at(3000), true);
    assert_eq!(world.replicas("new"), 2, "20% once both succeeded");
    assert_eq!(world.status().phase, RolloutPhase::Paused);
}

#[test]
fn a_failed_migration_aborts_and_rolls_back_newest_first() {
    let mut world = gated(true);
    migration_state(&mut world, "expand-a", MigrationPhase::Succeeded);
    migration_state(&mut world, "expand-b", MigrationPhase::Failed);
    world.settle(at(0), true);
    let s = world.status().clone();
    assert_eq!(s.phase, RolloutPhase::Aborted);
    assert!(
        s.message
            .as_deref()
            .unwrap()
            .contains("migration expand-b failed")
    );
    assert_eq!(world.replicas("new"), 0, "no new pods");
    assert_eq!(world.replicas("old"), 10);
    assert_eq!(world.rollback_requests.len(), 1);
    assert_eq!(world.rollback_requests[0].0, "expand-b", "newest first");
    let request = world.rollback_requests[0].1.clone();
    // expand-b took the request and rolled back: expand-a is next, once.
    {
        let b = world
            .migrations
            .iter_mut()
            .find(|m| m.name == "expand-b")
            .unwrap();
        b.handled_rollback = Some(request.clone());
        b.requested_rollback = Some(request.clone());
        b.phase = MigrationPhase::RollingBack;
    }
    world.rollback_requests.clear();
    world.settle(at(10), true);
    assert!(world.rollback_requests.is_empty(), "one at a time");
    migration_state(&mut world, "expand-b", MigrationPhase::RolledBack);
    world.settle(at(20), true);
    assert_eq!(
        world.rollback_requests,
        vec![("expand-a".to_string(), request.clone())]
    );
    world.rollback_requests.clear();
    world.settle(at(30), true);
    assert!(world.rollback_requests.is_empty(), "asked once");
}

#[test]
fn a_retry_with_the_migration_still_failed_is_refused() {
    let mut world = gated(false);
    migration_state(&mut world, "expand-a", MigrationPhase::Failed);
    world.settle(at(0), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    world.annotate(crate::api::ANNOTATION_RETRY, "1");
    let p = world.plan(at(5));
    assert!(p.notes.iter().any(|n| n.reason == "RetryRefused"));
    world.apply(&p, true);
    world.settle(at(6), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(world.replicas("new"), 0);
    // Fixed and run again: a new retry goes through once the migrations succeed.
    migration_state(&mut world, "expand-a", MigrationPhase::Running);
    migration_state(&mut world, "expand-b", MigrationPhase::Succeeded);
    world.annotate(crate::api::ANNOTATION_RETRY, "2");
    world.settle(at(7), true);
    assert_eq!(world.status().phase, RolloutPhase::Progressing);
    assert_eq!(world.replicas("new"), 0);
    migration_state(&mut world, "expand-a", MigrationPhase::Succeeded);
    world.settle(at(8), true);
    assert_eq!(world.replicas("new"), 2);
}

#[test]
fn a_retry_after_the_abort_rolled_migrations_back_runs_them_again() {
    let mut world = gated(true);
    migration_state(&mut world, "expand-a", MigrationPhase::Succeeded);
    migration_state(&mut world, "expand-b", MigrationPhase::Succeeded);
    world.settle(at(0), true);
    assert_eq!(world.replicas("new"), 2);
    world.annotate(crate::api::ANNOTATION_ABORT, "1");
    world.settle(at(10), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    // The abort rolled both back; a RolledBack migration gates nothing until it runs again.
    migration_state(&mut world, "expand-a", MigrationPhase::RolledBack);
    migration_state(&mut world, "expand-b", MigrationPhase::RolledBack);
    world.settle(at(20), true);
    assert!(world.retry_requests.is_empty(), "no retry, no rerun");

    world.annotate(crate::api::ANNOTATION_RETRY, "r1");
    world.settle(at(30), true);
    let asked: Vec<&str> = world
        .retry_requests
        .iter()
        .map(|(m, _)| m.as_str())
        .collect();
    assert_eq!(
        asked,
        ["expand-a", "expand-b"],
        "each rolled-back gate runs again"
    );
    assert!(world.retry_requests[0].1.contains("/retry/r1"));
    assert_eq!(world.status().phase, RolloutPhase::Progressing);
    assert_eq!(world.replicas("new"), 0, "no pod before they succeed again");
    world.retry_requests.clear();
    world.settle(at(40), true);
    assert!(world.retry_requests.is_empty(), "asked once per retry");

    migration_state(&mut world, "expand-a", MigrationPhase::Succeeded);
    migration_state(&mut world, "expand-b", MigrationPhase::Succeeded);
    world.settle(at(50), true);
    assert_eq!(world.replicas("new"), 2, "the retried rollout goes on");
}

#[test]
fn contract_migrations_are_released_only_with_no_old_pod_left() {
    let mut world = World::new(rollout(json!([{"setWeight": 50}]), false), "old", "new");
    world.settle(at(0), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    // The old revision is scaled to zero in the same decision; until that is observed...
    world
        .revisions
        .iter_mut()
        .find(|r| r.revision == "old")
        .unwrap()
        .available = 3;
    let p = world.plan(at(1));
    assert_eq!(p.status.contract_revision, None);
    world
        .revisions
        .iter_mut()
        .find(|r| r.revision == "old")
        .unwrap()
        .available = 0;
    world.settle(at(2), true);
    assert_eq!(world.status().contract_revision.as_deref(), Some("new"));
}

#[test]
fn linked_flags_are_enabled_once_on_promotion_and_disabled_once_on_abort() {
    let mut r = rollout(json!([{"setWeight": 50}]), false);
    r.spec.flags = Some(crate::api::FlagLinks {
        enable_on_promotion: vec!["new-checkout".into()],
        disable_on_abort: vec!["new-checkout".into(), "fast-path".into()],
    });
    let mut world = World::new(r, "old", "new");
    world.settle(at(0), true);
    assert_eq!(world.status().stable_revision.as_deref(), Some("new"));
    assert_eq!(world.flag_states, vec![("new-checkout".to_string(), true)]);
    world.settle(at(100), true);
    assert_eq!(
        world.flag_states.len(),
        1,
        "once per promotion: a person's later change stands"
    );
    // The next revision aborts.
    world.target = "newer".into();
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(200), true);
    assert_eq!(world.status().phase, RolloutPhase::Aborted);
    assert_eq!(
        world.flag_states[1..],
        [
            ("new-checkout".to_string(), false),
            ("fast-path".to_string(), false)
        ]
    );
    world.settle(at(300), true);
    assert_eq!(world.flag_states.len(), 3, "once per abort");
}

#[test]
fn a_new_spec_or_an_untaken_request_awaits_the_operator() {
    let mut r = rollout(json!([{"setWeight": 50}]), false);
    r.metadata.generation = Some(3);
    r.status = None;
    assert!(awaits_operator(&r), "never observed");
    let mut status = crate::api::RolloutStatus {
        observed_generation: Some(2),
        ..Default::default()
    };
    r.status = Some(status.clone());
    assert!(awaits_operator(&r), "a newer spec");
    status.observed_generation = Some(3);
    r.status = Some(status.clone());
    assert!(!awaits_operator(&r), "observed, no request");
    for key in [
        ANNOTATION_PROMOTE,
        ANNOTATION_PROMOTE_FULL,
        ANNOTATION_ABORT,
        crate::api::ANNOTATION_RETRY,
    ] {
        let mut asked = r.clone();
        asked.metadata.annotations = Some(BTreeMap::from([(key.to_string(), "7".to_string())]));
        assert!(awaits_operator(&asked), "{key} not yet taken");
        let mut taken = status.clone();
        taken
            .handled_requests
            .insert(key.to_string(), "7".to_string());
        asked.status = Some(taken.clone());
        assert!(!awaits_operator(&asked), "{key} taken");
        taken
            .handled_requests
            .insert(key.to_string(), "6".to_string());
        asked.status = Some(taken);
        assert!(awaits_operator(&asked), "{key} asked again");
    }
    let mut other = r.clone();
    other.metadata.annotations = Some(BTreeMap::from([("team".to_string(), "a".to_string())]));
    assert!(!awaits_operator(&other), "other annotations are routine");
}

fn health(world: &World) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = world
        .status()
        .conditions
        .iter()
        .filter(|c| ["Ready", "Reconciling", "Stalled"].contains(&c.type_.as_str()))
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect();
    v.sort();
    v
}

fn h(type_: &str, status: &str, reason: &str) -> (String, String, String) {
    (type_.into(), status.into(), reason.into())
}

#[test]
fn ready_only_once_fully_promoted_reconciling_on_the_way_stalled_when_aborted() {
    let mut world = World::new(
        rollout(json!([{"setWeight": 20}, {"pause": {}}]), false),
        "old",
        "new",
    );
    world.settle(at(0), true);
    assert_eq!(
        health(&world),
        vec![
            h("Ready", "False", "Paused"),
            h("Reconciling", "True", "Paused")
        ],
        "at the manual gate: under way, not done"
    );
    let conditions = &world.status().conditions;
    assert!(
        conditions.iter().all(|c| c.observed_generation == Some(2)),
        "each condition names the generation it judged"
    );
    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(1), true);
    assert_eq!(
        health(&world),
        vec![
            h("Ready", "False", "Aborted"),
            h("Stalled", "True", "Aborted")
        ],
    );
    world.annotate(ANNOTATION_RETRY, "1");
    world.settle(at(2), true);
    world.annotate(ANNOTATION_PROMOTE, "1");
    world.settle(at(3), true);
    assert_eq!(world.status().phase, RolloutPhase::Healthy);
    assert_eq!(health(&world), vec![h("Ready", "True", "Healthy")]);
}

/// What the shell records for a spec it refuses: Degraded, InvalidSpec, Stalled.
fn mark_invalid(world: &mut World) {
    let mut status = world.status().clone();
    status.phase = RolloutPhase::Degraded;
    let now = Time(at(0));
    cond::set(
        &mut status.conditions,
        cond::ConditionUpdate {
            type_: cond::INVALID_SPEC,
            status: cond::TRUE,
            reason: "InvalidSpec",
            message: "bad".into(),
        },
        Some(2),
        &now,
    );
    let stalled = crate::api::health::Health::Stalled {
        reason: "InvalidSpec",
        message: "bad".into(),
    };
    crate::api::health::record(&mut status.conditions, &stalled, Some(2), &now);
    world.rollout.status = Some(status);
}

#[test]
fn a_spec_fixed_after_it_was_invalid_goes_on_where_it_stood() {
    let mut world = World::new(
        rollout(json!([{"setWeight": 20}, {"pause": {}}]), false),
        "old",
        "new",
    );
    world.settle(at(0), true);
    mark_invalid(&mut world);
    world.settle(at(1), true);
    assert_eq!(
        world.status().phase,
        RolloutPhase::Paused,
        "back at its gate"
    );
    assert_eq!(world.status().current_step_index, Some(1));
    assert!(cond::find(&world.status().conditions, cond::INVALID_SPEC).is_none());
    assert_eq!(health(&world)[0], h("Ready", "False", "Paused"));

    world.annotate(ANNOTATION_ABORT, "1");
    world.settle(at(2), true);
    mark_invalid(&mut world);
    world.settle(at(3), true);
    assert_eq!(
        world.status().phase,
        RolloutPhase::Aborted,
        "an abort is not lost to an invalid spec"
    );
    assert_eq!(world.replicas("new"), 0);
}

#[test]
fn a_service_is_taken_over_only_once_the_first_revision_serves_in_full() {
    // A Deployment adopted by workloadRef (or pods another controller left) serves through
    // the Services, which no revision pins yet.
    let mut world = World::new(rollout(steps(), true), "v1", "v1");
    world.rollout.status = None;
    world.revisions.clear();
    world.services = BTreeMap::from([("s".to_string(), None), ("c".to_string(), None)]);
    world.referenced = Some(10);
    let p = world.plan(at(0));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::ApplyRevision { revision, replicas: 10, .. } if revision == "v1")),
        "{:?}",
        p.actions
    );
    let pins_or_scales = |p: &Plan| {
        p.actions
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::PinService { .. } | Action::ScaleReferenced { .. }
                )
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(pins_or_scales(&p), [], "the old pods keep serving");
    world.apply(&p, false);
    // Half the pods are up: still not.
    world.revisions[0].available = 5;
    let p = world.plan(at(5));
    assert_eq!(pins_or_scales(&p), []);
    world.apply(&p, false);
    world.pods_come_up();
    let p = world.plan(at(10));
    assert_eq!(
        pins_or_scales(&p),
        [
            Action::PinService {
                service: "s".into(),
                revision: "v1".into()
            },
            Action::PinService {
                service: "c".into(),
                revision: "v1".into()
            },
            Action::ScaleReferenced { replicas: 0 },
        ],
        "pinned first, then the adopted Deployment goes"
    );
}

#[path = "plan_window_tests.rs"]
mod windows;

#[path = "plan_requires_tests.rs"]
mod requires;

#[path = "plan_bake_tests.rs"]
mod bake;

#[path = "plan_history_tests.rs"]
mod history;
