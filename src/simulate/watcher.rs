//! The runner's view of a simulation: the timeline it writes and the expectations it checks
//! at every look at the cluster.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Entry, RevisionWeight, Scenario, Snapshot, clock, scenario::Expect};
use crate::{
    api::Rollout,
    sim::{Sim, store::Filter},
};

/// What the runner has seen so far, and the expectations' progress.
pub(super) struct Watcher<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) timeline: Vec<Entry>,
    pub(super) last_traffic: BTreeMap<String, (String, Option<i32>, Vec<RevisionWeight>)>,
    pub(super) seen_measurements: BTreeSet<(String, String, String, String)>,
    pub(super) reasons: BTreeMap<String, BTreeSet<String>>,
    pub(super) snapshots: BTreeMap<String, Snapshot>,
    pub(super) migrations: BTreeMap<String, (String, Option<String>)>,
    pub(super) flags: BTreeMap<String, (String, Option<i32>)>,
    pub(super) violations: Vec<(usize, usize, String)>,
    pub(super) satisfied: BTreeSet<usize>,
    pub(super) thresholds: BTreeMap<String, Vec<f64>>,
}

impl<'a> Watcher<'a> {
    pub(super) fn new(scenario: &'a Scenario) -> Self {
        Self {
            scenario,
            timeline: Vec::new(),
            last_traffic: BTreeMap::new(),
            seen_measurements: BTreeSet::new(),
            reasons: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            migrations: BTreeMap::new(),
            flags: BTreeMap::new(),
            violations: Vec::new(),
            satisfied: BTreeSet::new(),
            thresholds: BTreeMap::new(),
        }
    }

    pub(super) fn decision(&mut self, t: u64, event: &Value) {
        let kind = event
            .pointer("/regarding/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = event
            .pointer("/regarding/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reason = event
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind == "Rollout" {
            self.reasons
                .entry(name.to_string())
                .or_default()
                .insert(reason.clone());
        }
        self.timeline.push(Entry::Decision {
            t,
            object: format!("{kind}/{name}"),
            reason,
            message: event
                .get("note")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    }

    pub(super) fn look(&mut self, sim: &Sim, t: u64) {
        let store = sim.store();
        let (Some(rollouts_rt), Some(deployments_rt)) = (
            store.resolve("cutover.dev", "v1alpha1", "rollouts"),
            store.resolve("apps", "v1", "deployments"),
        ) else {
            return;
        };
        if let Some(mj_rt) = store.resolve("cutover.dev", "v1alpha1", "migrationjobs") {
            for mj in store
                .list(&mj_rt, &Filter::default(), None, None)
                .map(|p| p.items)
                .unwrap_or_default()
            {
                let name = crate::sim::store::name_of(&mj);
                let Some(phase) = mj.pointer("/status/phase").and_then(Value::as_str) else {
                    continue;
                };
                let message = mj
                    .pointer("/status/message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let state = (phase.to_string(), message.clone());
                if self.migrations.get(&name).map(|s| &s.0) != Some(&state.0) {
                    self.timeline.push(Entry::Migration {
                        t,
                        migration: name.clone(),
                        phase: phase.to_string(),
                        message,
                    });
                }
                self.migrations.insert(name, state);
            }
        }
        if let Some(ff_rt) = store.resolve("cutover.dev", "v1alpha1", "featureflags") {
            for ff in store
                .list(&ff_rt, &Filter::default(), None, None)
                .map(|p| p.items)
                .unwrap_or_default()
            {
                let name = crate::sim::store::name_of(&ff);
                let Some(phase) = ff.pointer("/status/phase").and_then(Value::as_str) else {
                    continue;
                };
                let percentage = ff
                    .pointer("/status/percentage")
                    .and_then(Value::as_i64)
                    .map(|p| p as i32);
                let state = (phase.to_string(), percentage);
                if self.flags.get(&name) != Some(&state) {
                    self.timeline.push(Entry::Flag {
                        t,
                        flag: name.clone(),
                        phase: phase.to_string(),
                        percentage,
                        message: ff
                            .pointer("/status/message")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    });
                }
                if let Some(spec) = ff.pointer("/spec/rollout/analysis").and_then(|a| {
                    serde_json::from_value::<crate::api::AnalysisSpec>(a.clone()).ok()
                }) {
                    self.thresholds_of(&[&spec]);
                }
                if let Some(run) = ff.pointer("/status/analysis").and_then(|r| {
                    serde_json::from_value::<crate::api::AnalysisRunStatus>(r.clone()).ok()
                }) {
                    self.measurements(t, &name, &run);
                }
                self.flags.insert(name, state);
            }
        }
        let rollouts = store
            .list(&rollouts_rt, &Filter::default(), None, None)
            .map(|p| p.items)
            .unwrap_or_default();
        let deployments = store
            .list(&deployments_rt, &Filter::default(), None, None)
            .map(|p| p.items)
            .unwrap_or_default();
        let images: BTreeMap<(String, String), String> = deployments
            .iter()
            .filter_map(|d| {
                let labels = d.pointer("/metadata/labels")?;
                let rollout = labels.get(crate::api::LABEL_ROLLOUT)?.as_str()?;
                let revision = labels.get(crate::api::LABEL_REVISION)?.as_str()?;
                let image = d
                    .pointer("/spec/template/spec/containers/0/image")?
                    .as_str()?;
                Some((
                    (rollout.to_string(), revision.to_string()),
                    image.to_string(),
                ))
            })
            .collect();
        for value in rollouts {
            let Ok(rollout) = serde_json::from_value::<Rollout>(value) else {
                continue;
            };
            let name = rollout.metadata.name.clone().unwrap_or_default();
            self.collect_thresholds(&rollout);
            let Some(status) = &rollout.status else {
                continue;
            };
            let image = |rev: &str| {
                images
                    .get(&(name.clone(), rev.to_string()))
                    .cloned()
                    .unwrap_or_else(|| "?".into())
            };
            let canary = status.canary_weight.unwrap_or(0);
            let mut weights = Vec::new();
            if let Some(stable) = &status.stable_revision {
                let current = status.current_revision.as_deref().unwrap_or(stable);
                let share = if current != stable { 100 - canary } else { 100 };
                weights.push(RevisionWeight {
                    revision: stable.clone(),
                    image: image(stable),
                    weight: share,
                });
                if current != stable {
                    weights.push(RevisionWeight {
                        revision: current.to_string(),
                        image: image(current),
                        weight: canary,
                    });
                }
            }
            let phase = format!("{:?}", status.phase);
            let step = status.current_step_index;
            let traffic = (phase.clone(), step, weights.clone());
            if self.last_traffic.get(&name) != Some(&traffic) {
                self.last_traffic.insert(name.clone(), traffic);
                self.timeline.push(Entry::Traffic {
                    t,
                    rollout: name.clone(),
                    phase,
                    step,
                    weights,
                });
            }
            for run in &status.analysis {
                self.measurements(t, &name, run);
            }
            let stable_image = status.stable_revision.as_deref().map(image);
            self.snapshots.insert(
                name,
                Snapshot {
                    phase: Some(status.phase),
                    step: status.current_step_index,
                    weight: status.canary_weight,
                    stable_image,
                    message: status.message.clone().unwrap_or_default(),
                },
            );
        }
    }

    /// Timeline entries for the measurements of `run` not seen before.
    fn measurements(&mut self, t: u64, name: &str, run: &crate::api::AnalysisRunStatus) {
        for m in &run.metrics {
            for x in &m.measurements {
                let key = (
                    name.to_string(),
                    run.name.clone(),
                    m.name.clone(),
                    x.due_at.0.to_string(),
                );
                if self.seen_measurements.insert(key) {
                    self.timeline.push(Entry::Measurement {
                        t,
                        rollout: name.to_string(),
                        run: run.name.clone(),
                        metric: m.name.clone(),
                        figures: x
                            .value
                            .as_deref()
                            .and_then(crate::analysis::judge::Figures::parse),
                        value: x.value.clone(),
                        outcome: format!("{:?}", x.outcome),
                        message: x.message.clone(),
                    });
                }
            }
        }
    }

    fn collect_thresholds(&mut self, rollout: &Rollout) {
        let strategy = &rollout.spec.strategy;
        let mut specs = Vec::new();
        if let Some(c) = &strategy.canary {
            specs.extend(c.steps.iter().filter_map(|s| s.analysis.as_ref()));
            specs.extend(c.analysis.as_ref().map(|b| &b.spec));
        }
        if let Some(b) = &strategy.blue_green {
            specs.extend(b.pre_promotion_analysis.iter());
            specs.extend(b.post_promotion_analysis.iter());
        }
        if let Some(r) = &strategy.rolling {
            specs.extend(r.analysis.iter());
        }
        self.thresholds_of(&specs);
    }

    /// The numbers a metric's conditions compare `result` with, for the plot.
    fn thresholds_of(&mut self, specs: &[&crate::api::AnalysisSpec]) {
        let re = regex::Regex::new(
            r"result\s*(?:<=|>=|<|>|==)\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)",
        );
        let Ok(re) = re else { return };
        for spec in specs {
            for m in &spec.metrics {
                let found: Vec<f64> = [&m.success_condition, &m.failure_condition]
                    .into_iter()
                    .flatten()
                    .flat_map(|c| {
                        re.captures_iter(c)
                            .filter_map(|cap| cap[1].parse::<f64>().ok())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let entry = self.thresholds.entry(m.name.clone()).or_default();
                for f in found {
                    if !entry.contains(&f) {
                        entry.push(f);
                    }
                }
            }
        }
    }

    fn holds(&self, x: &Expect) -> (bool, String) {
        let mut migration_ok = true;
        let mut migration_seen = String::new();
        if let (Some(m), Some(p)) = (&x.spec.migration, x.spec.migration_phase) {
            let actual = self
                .migrations
                .get(m)
                .map_or("no status".to_string(), |s| s.0.clone());
            migration_ok = actual == format!("{p:?}");
            migration_seen = format!("MigrationJob {m}: phase {actual}");
        }
        if let Some(f) = &x.spec.flag {
            let actual = self.flags.get(f);
            let phase = actual.map_or("no status".to_string(), |s| s.0.clone());
            let percentage = actual.and_then(|s| s.1);
            if let Some(p) = x.spec.flag_phase
                && format!("{p:?}") != phase
            {
                migration_ok = false;
            }
            if x.spec.flag_percentage.is_some() && x.spec.flag_percentage != percentage {
                migration_ok = false;
            }
            let shown = percentage.map_or("none".to_string(), |p| format!("{p} %"));
            let flag_seen = format!("FeatureFlag {f}: phase {phase}, at {shown}");
            migration_seen = if migration_seen.is_empty() {
                flag_seen
            } else {
                format!("{migration_seen}; {flag_seen}")
            };
        }
        if !x.spec.checks_rollout() {
            return (migration_ok, migration_seen);
        }
        let (rollout_ok, rollout_seen) = self.rollout_holds(x);
        let seen = if migration_seen.is_empty() {
            rollout_seen
        } else {
            format!("{rollout_seen}; {migration_seen}")
        };
        (migration_ok && rollout_ok, seen)
    }

    fn rollout_holds(&self, x: &Expect) -> (bool, String) {
        let name = x
            .spec
            .rollout
            .clone()
            .or_else(|| self.snapshots.keys().next().cloned())
            .unwrap_or_default();
        let Some(s) = self.snapshots.get(&name) else {
            return (false, format!("Rollout {name} has no status yet"));
        };
        let mut ok = true;
        let mut seen = Vec::new();
        let mut check = |field: &str, expected: Option<String>, actual: String| {
            if let Some(e) = expected {
                if e != actual {
                    ok = false;
                }
                seen.push(format!("{field} {actual}"));
            }
        };
        check(
            "phase",
            x.spec.phase.map(|p| format!("{p:?}")),
            s.phase.map_or("none".into(), |p| format!("{p:?}")),
        );
        check(
            "step",
            x.spec.step.map(|v| v.to_string()),
            s.step.map_or("none".into(), |v| v.to_string()),
        );
        check(
            "weight",
            x.spec.weight.map(|v| v.to_string()),
            s.weight.map_or("none".into(), |v| v.to_string()),
        );
        check(
            "stable image",
            x.spec.stable_image.clone(),
            s.stable_image.clone().unwrap_or_else(|| "none".into()),
        );
        if let Some(r) = &x.spec.reason {
            let made = self.reasons.get(&name).is_some_and(|rs| rs.contains(r));
            if !made {
                ok = false;
            }
            seen.push(if made {
                format!("a {r} decision was made")
            } else {
                format!("no {r} decision")
            });
        }
        if let Some(m) = &x.spec.message {
            if !s.message.contains(m.as_str()) {
                ok = false;
            }
            seen.push(format!("message {:?}", s.message));
        }
        (ok, format!("Rollout {name}: {}", seen.join(", ")))
    }

    pub(super) fn check(&mut self, t: u64, end: bool) {
        for x in &self.scenario.expectations {
            if self.satisfied.contains(&x.index) || self.violations.iter().any(|v| v.0 == x.index) {
                continue;
            }
            if x.spec.after.is_some_and(|a| t < a.as_std().as_secs()) {
                continue;
            }
            let (holds, seen) = self.holds(x);
            let violation = if x.spec.never == Some(true) {
                if x.spec.before.is_some_and(|b| t > b.as_std().as_secs()) {
                    continue;
                }
                holds.then(|| {
                    format!(
                        "expected never {}, but at {} {seen}",
                        x.spec.describe(),
                        clock(t)
                    )
                })
            } else if let Some(before) = x.spec.before {
                let limit = before.as_std().as_secs();
                if holds && t <= limit {
                    self.satisfied.insert(x.index);
                    None
                } else if t >= limit {
                    Some(format!(
                        "expected {} before {}, but at {} {seen}",
                        x.spec.describe(),
                        clock(limit),
                        clock(t)
                    ))
                } else {
                    None
                }
            } else if end {
                (!holds).then(|| format!("expected at the end {}, but {seen}", x.spec.describe()))
            } else {
                None
            };
            if let Some(message) = violation {
                self.timeline.push(Entry::Violation {
                    t,
                    expectation: x.index,
                    message: message.clone(),
                });
                self.violations.push((x.index, x.line, message));
            }
        }
        if end {
            self.violations.sort_by_key(|v| v.0);
        }
    }
}
