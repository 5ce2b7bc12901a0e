use serde_json::json;

use super::*;
use crate::analysis::{condition::QueryResult, run::Input};
use crate::api::AnalysisVerdict;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn flag(extra: serde_json::Value) -> FeatureFlag {
    let mut spec = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
        "defaultVariant": "off", "output": {"configMap": {"name": "flags"}},
        "rollout": {"variant": "on", "steps": [5, 25, 100], "interval": "10m"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
        "metadata": {"name": "new-checkout", "namespace": "default", "generation": 1},
        "spec": spec}),
    )
    .unwrap()
}

struct World {
    flag: FeatureFlag,
    conflict: Option<String>,
    freeze: Option<String>,
}

impl World {
    fn step(&mut self, now: Timestamp, value: Option<f64>) -> Plan {
        let measurements = match value {
            Some(v) => due(&self.flag, now)
                .into_iter()
                .map(|d| Taken {
                    run: d.run.clone(),
                    metric: d.metric.name.clone(),
                    due: d.at,
                    taken: now,
                    input: Input::Query(Ok(QueryResult::Number(v))),
                })
                .collect(),
            None => Vec::new(),
        };
        let p = plan(&Observed {
            flag: &self.flag,
            conflict_with: self.conflict.clone(),
            freeze: self.freeze.clone(),
            measurements,
            now,
        });
        self.flag.status = Some(p.status.clone());
        p
    }

    fn run(&mut self, from: i64, to: i64, value: f64) {
        for t in from..=to {
            self.step(at(t), Some(value));
        }
    }

    fn status(&self) -> &FeatureFlagStatus {
        self.flag.status.as_ref().unwrap()
    }

    fn bump(&mut self) {
        self.flag.metadata.generation = Some(self.flag.metadata.generation.unwrap_or(1) + 1);
    }
}

#[test]
fn the_percentage_steps_up_every_interval_and_then_serves() {
    let mut w = World {
        flag: flag(json!({})),
        conflict: None,
        freeze: None,
    };
    let p = w.step(at(0), None);
    assert_eq!(w.status().percentage, Some(5));
    assert_eq!(w.status().phase, FlagPhase::Progressing);
    assert_eq!(
        p.requeue_at,
        Some(at(600)),
        "woken at the end of the interval"
    );
    w.step(at(599), None);
    assert_eq!(w.status().percentage, Some(5));
    w.step(at(600), None);
    assert_eq!(w.status().percentage, Some(25));
    w.step(at(1200), None);
    assert_eq!(w.status().percentage, Some(100));
    assert_eq!(w.status().phase, FlagPhase::Serving);
    assert!(
        w.step(at(5000), None).notes.is_empty(),
        "a served flag stays quiet"
    );
}

fn analysed() -> World {
    World {
        flag: flag(
            json!({"rollout": {"variant": "on", "steps": [5, 25, 100], "interval": "10m",
            "analysis": {"metrics": [{"name": "errors", "interval": "1m",
                "successCondition": "result < 0.01", "prometheus": {"query": "e"}}]}}}),
        ),
        conflict: None,
        freeze: None,
    }
}

#[test]
fn a_passing_analysis_lets_the_flag_advance() {
    let mut w = analysed();
    w.run(0, 1300, 0.001);
    assert_eq!(w.status().percentage, Some(100));
    assert_eq!(w.status().phase, FlagPhase::Serving);
    assert!(due(&w.flag, at(2000)).is_empty(), "no analysis once served");
}

#[test]
fn a_failed_analysis_is_the_kill_switch() {
    let mut w = analysed();
    w.run(0, 700, 0.001);
    assert_eq!(w.status().percentage, Some(25));
    w.run(701, 800, 0.2);
    let s = w.status().clone();
    assert_eq!(s.percentage, Some(0));
    assert_eq!(s.phase, FlagPhase::RolledBack);
    assert_eq!(s.last_verdict, Some(AnalysisVerdict::Failed));
    let progressing = cond::find(&s.conditions, cond::PROGRESSING).unwrap();
    assert_eq!(progressing.reason, "AnalysisFailed");
    // It stays off, even when the metric recovers, until the spec changes.
    w.run(801, 3000, 0.001);
    assert_eq!(w.status().percentage, Some(0));
    w.bump();
    w.step(at(3001), Some(0.001));
    assert_eq!(w.status().percentage, Some(5), "a new spec starts over");
}

#[test]
fn disabling_the_flag_takes_the_variant_to_zero_at_once() {
    let mut w = World {
        flag: flag(json!({})),
        conflict: None,
        freeze: None,
    };
    w.step(at(0), None);
    w.step(at(600), None);
    assert_eq!(w.status().percentage, Some(25));
    w.flag.spec.state = FlagState::Disabled;
    w.bump();
    let p = w.step(at(601), None);
    assert_eq!(w.status().percentage, Some(0));
    assert_eq!(w.status().phase, FlagPhase::RolledBack);
    assert!(
        p.notes
            .iter()
            .any(|n| n.reason == "KillSwitch" && n.warning)
    );
    w.flag.spec.state = FlagState::Enabled;
    w.bump();
    w.step(at(700), None);
    assert_eq!(
        w.status().percentage,
        Some(5),
        "enabled again: from the first step"
    );
}

#[test]
fn a_flag_whose_key_is_taken_is_in_conflict_and_not_served() {
    let mut w = World {
        flag: flag(json!({})),
        conflict: Some("old-checkout".into()),
        freeze: None,
    };
    let p = w.step(at(0), None);
    let s = w.status();
    let c = cond::find(&s.conditions, cond::CONFLICT).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "KeyInUse"));
    assert!(c.message.contains("old-checkout"));
    assert!(p.notes.iter().any(|n| n.reason == "Conflict"));
    w.conflict = None;
    w.step(at(1), None);
    assert!(cond::find(&w.status().conditions, cond::CONFLICT).is_none());
    assert_eq!(w.status().percentage, Some(5));
}

#[test]
fn a_flag_mid_rollout_whose_key_is_taken_stops_and_starts_over_when_served_again() {
    let mut w = analysed();
    w.run(0, 700, 0.001);
    assert_eq!(w.status().percentage, Some(25));
    assert_eq!(w.status().phase, FlagPhase::Progressing);
    // An older flag now claims the key.
    w.conflict = Some("old-checkout".into());
    let p = w.step(at(701), Some(0.001));
    let s = w.status().clone();
    assert_eq!(s.phase, FlagPhase::Pending);
    assert_eq!(s.percentage, None, "not served: no percentage");
    assert_eq!(s.current_step_index, None);
    let ready = cond::find(&s.conditions, cond::READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Conflict")
    );
    assert!(p.notes.iter().any(|n| n.reason == "Conflict" && n.warning));
    assert_ne!(
        s.analysis.as_ref().map(|r| r.verdict),
        Some(AnalysisVerdict::Running),
        "no analysis of traffic it does not get"
    );
    assert!(due(&w.flag, at(5000)).is_empty());
    // Hours in conflict bake nothing.
    w.run(702, 9000, 0.001);
    assert_eq!(w.status().percentage, None);
    assert!(
        w.step(at(9001), None).notes.is_empty(),
        "one Conflict Event, not one per reconcile"
    );
    // Served again: from the first step, with a fresh analysis.
    w.conflict = None;
    let p = w.step(at(9002), Some(0.001));
    let s = w.status();
    assert_eq!(s.percentage, Some(5));
    assert_eq!(s.phase, FlagPhase::Progressing);
    assert!(cond::find(&s.conditions, cond::CONFLICT).is_none());
    assert!(p.notes.iter().any(|n| n.reason == "RolloutStarted"));
    assert_eq!(
        s.analysis.as_ref().map(|r| (r.name.as_str(), r.verdict)),
        Some(("step-0", AnalysisVerdict::Running))
    );
}

#[test]
fn a_smoke_test_still_running_holds_the_step_past_its_interval() {
    use crate::analysis::job::JobResult;
    let mut w = World {
        flag: flag(
            json!({"rollout": {"variant": "on", "steps": [5, 25, 100], "interval": "10m",
            "analysis": {"metrics": [{"name": "smoke", "count": 1, "initialDelay": "9m",
                "job": {"spec": {"template": {"spec": {"containers": [{"name": "s", "image": "curl"}]}}}}}]}}}),
        ),
        conflict: None,
        freeze: None,
    };
    w.step(at(0), None);
    let job = |result: JobResult, now: i64, w: &World| -> Vec<Taken> {
        due(&w.flag, at(now))
            .into_iter()
            .map(|d| Taken {
                run: d.run.clone(),
                metric: d.metric.name.clone(),
                due: d.at,
                taken: at(now),
                input: Input::Job(Ok(result.clone())),
            })
            .collect()
    };
    let running = JobResult::Running { job: "j".into() };
    let observe = |w: &mut World, now: i64, taken: Vec<Taken>| {
        let p = plan(&Observed {
            flag: &w.flag,
            conflict_with: None,
            freeze: None,
            measurements: taken,
            now: at(now),
        });
        w.flag.status = Some(p.status.clone());
        p
    };
    // The Job started at 9m and runs past the step's 10 minutes.
    let taken = job(running.clone(), 540, &w);
    assert_eq!(taken.len(), 1);
    observe(&mut w, 540, taken);
    let taken = job(running, 660, &w);
    let p = observe(&mut w, 660, taken);
    assert_eq!(w.status().percentage, Some(5), "held");
    let message = w.status().message.clone().unwrap_or_default();
    assert!(
        message.ends_with("held until the step's smoke test finishes"),
        "{message}"
    );
    assert_eq!(
        p.requeue_at,
        Some(at(660) + crate::analysis::run::JOB_POLL),
        "polled, not spun"
    );
    // It completes: measured, and the step moves on.
    let complete = JobResult::Finished {
        job: "j".into(),
        succeeded: true,
        reason: None,
        log: None,
    };
    let taken = job(complete, 670, &w);
    let p = observe(&mut w, 670, taken);
    assert_eq!(w.status().percentage, Some(25));
    assert_eq!(w.status().current_step_index, Some(1));
    // The status now holds step 1's run; step 0's, as it ended, goes to its record.
    assert_eq!(p.replaced_runs.len(), 1);
    let ended = &p.replaced_runs[0];
    assert_eq!(
        (ended.name.as_str(), ended.verdict),
        ("step-0", AnalysisVerdict::Successful)
    );
    assert_eq!(ended.metrics[0].measurements.len(), 1);
}

/// T0 is Friday 2027-01-15 08:00 UTC.
fn flag_windows(windows: serde_json::Value) -> World {
    World {
        flag: flag(json!({"windows": windows})),
        conflict: None,
        freeze: None,
    }
}

#[test]
fn a_flag_rollout_starts_only_in_a_window_and_steps_only_in_one() {
    // Allowed 08:00-08:15 and from 09:00.
    let mut w = flag_windows(json!([
        {"kind": "Allow", "schedule": "0 8 * * *", "duration": "15m"},
        {"kind": "Allow", "schedule": "0 9 * * *", "duration": "8h"}
    ]));
    w.step(at(0), None);
    assert_eq!(w.status().percentage, Some(5));
    // The 10-minute step ends at 08:10, inside the window: 25 %.
    w.step(at(600), None);
    assert_eq!(w.status().percentage, Some(25));
    // Its interval ends at 08:20, outside: held at 25 % until 09:00, and said why.
    let p = w.step(at(1200), None);
    assert_eq!(w.status().percentage, Some(25));
    assert_eq!(w.status().phase, FlagPhase::Progressing);
    assert_eq!(
        w.status().message.as_deref(),
        Some(
            "held at 25 %: step 3 waits for a deployment window: outside every allow window; \
             the next window opens at 2027-01-15T09:00:00Z"
        )
    );
    assert_eq!(p.requeue_at, Some(at(3600)));
    assert_eq!(p.notes[0].reason, "WaitingForWindow");
    assert!(w.step(at(1300), None).notes.is_empty(), "said once");
    w.step(at(3600), None);
    assert_eq!(w.status().percentage, Some(100));
    assert_eq!(w.status().phase, FlagPhase::Serving);
}

#[test]
fn a_frozen_flag_does_not_start_but_its_kill_switch_works() {
    let mut w = flag_windows(json!([]));
    w.freeze = Some("incident 4711".into());
    let p = w.step(at(0), None);
    assert_eq!(w.status().phase, FlagPhase::Pending);
    assert_eq!(w.status().percentage, Some(0));
    assert_eq!(p.requeue_at, None);
    assert!(
        w.status()
            .message
            .as_deref()
            .is_some_and(|m| m.ends_with("the namespace is frozen: incident 4711"))
    );
    w.freeze = None;
    w.step(at(10), None);
    assert_eq!(w.status().percentage, Some(5));
    // Frozen mid-rollout: the kill switch still takes the variant to 0 %.
    w.freeze = Some("incident 4712".into());
    w.flag.spec.state = FlagState::Disabled;
    w.bump();
    w.step(at(20), None);
    assert_eq!(w.status().percentage, Some(0));
    assert_eq!(w.status().phase, FlagPhase::RolledBack);
}
