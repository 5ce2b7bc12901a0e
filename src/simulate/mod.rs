//! `cutover simulate`: runs a scenario — objects, timed changes, scripted metrics — through
//! the real controllers on the sim with a virtual clock, and reports a timeline and whether
//! the scenario's expectations held.

pub mod plot;
pub mod scenario;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{Rollout, RolloutPhase},
    controller::{Clock, Config, Context, Metrics},
    sim::{
        Sim,
        store::{Filter, PatchKind, Subresource, WriteOptions},
        workload::WorkloadConfig,
    },
};
use scenario::{Action, Expect, Manifest};
pub use scenario::{Scenario, ScenarioError};

/// When every simulation starts (a fixed time, so runs are repeatable).
pub const START: i64 = 1_893_456_000; // 2030-01-01T00:00:00Z

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Entry {
    /// A change the scenario made.
    #[serde(rename_all = "camelCase")]
    Change {
        /// Seconds from the start.
        t: u64,
        /// What was done.
        description: String,
    },
    /// A Rollout's step, phase or traffic changed.
    #[serde(rename_all = "camelCase")]
    Traffic {
        /// Seconds from the start.
        t: u64,
        /// Rollout name.
        rollout: String,
        /// Phase.
        phase: String,
        /// Current step, if stepping.
        step: Option<i32>,
        /// Traffic percentage per revision.
        weights: Vec<RevisionWeight>,
    },
    /// An analysis measurement was recorded.
    #[serde(rename_all = "camelCase")]
    Measurement {
        /// Seconds from the start.
        t: u64,
        /// Name of the Rollout (or FeatureFlag) measured.
        rollout: String,
        /// Analysis run.
        run: String,
        /// Metric name.
        metric: String,
        /// The value, as recorded.
        value: Option<String>,
        /// A comparison's figures as numbers (canary and stable medians, p, shift...).
        #[serde(skip_serializing_if = "Option::is_none")]
        figures: Option<crate::analysis::judge::Figures>,
        /// Successful, Failed, Inconclusive or Error.
        outcome: String,
        /// Why, if said.
        message: Option<String>,
    },
    /// A decision of a controller (an Event it published).
    #[serde(rename_all = "camelCase")]
    Decision {
        /// Seconds from the start.
        t: u64,
        /// `Kind/name` of the object.
        object: String,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
    /// A MigrationJob's phase changed.
    #[serde(rename_all = "camelCase")]
    Migration {
        /// Seconds from the start.
        t: u64,
        /// MigrationJob name.
        migration: String,
        /// Its phase.
        phase: String,
        /// Its status message.
        message: Option<String>,
    },
    /// A FeatureFlag's phase or percentage changed.
    #[serde(rename_all = "camelCase")]
    Flag {
        /// Seconds from the start.
        t: u64,
        /// FeatureFlag name.
        flag: String,
        /// Its phase.
        phase: String,
        /// Percentage given its rollout variant.
        percentage: Option<i32>,
        /// Its status message.
        message: Option<String>,
    },
    /// An expectation was found violated.
    #[serde(rename_all = "camelCase")]
    Violation {
        /// Seconds from the start.
        t: u64,
        /// The expectation's number in the file.
        expectation: usize,
        /// What went wrong.
        message: String,
    },
}

impl Entry {
    /// Seconds from the start.
    pub fn t(&self) -> u64 {
        match self {
            Self::Change { t, .. }
            | Self::Traffic { t, .. }
            | Self::Measurement { t, .. }
            | Self::Decision { t, .. }
            | Self::Migration { t, .. }
            | Self::Flag { t, .. }
            | Self::Violation { t, .. } => *t,
        }
    }

    /// The entry as one line of text.
    pub fn render(&self) -> String {
        let time = clock(self.t());
        match self {
            Self::Change { description, .. } => format!("{time}  >> {description}"),
            Self::Traffic {
                rollout,
                phase,
                step,
                weights,
                ..
            } => {
                let w = weights
                    .iter()
                    .map(|w| format!("{} ({}) {}%", w.revision, w.image, w.weight))
                    .collect::<Vec<_>>()
                    .join(", ");
                let w = if w.is_empty() {
                    "no revision serves yet".to_string()
                } else {
                    w
                };
                let step = step.map_or(String::new(), |s| format!(" step {s}"));
                format!("{time}  {rollout}: {phase}{step} | {w}")
            }
            Self::Measurement {
                rollout,
                run,
                metric,
                value,
                outcome,
                message,
                ..
            } => {
                let value = value.as_deref().unwrap_or("-");
                let why = message
                    .as_deref()
                    .map_or(String::new(), |m| format!(" ({m})"));
                format!("{time}  {rollout}: {run}/{metric} = {value} -> {outcome}{why}")
            }
            Self::Decision {
                object,
                reason,
                message,
                ..
            } => format!(
                "{time}  {object}: {reason}: {}",
                message.replace('\n', " | ")
            ),
            Self::Migration {
                migration,
                phase,
                message,
                ..
            } => {
                let why = message
                    .as_deref()
                    .map_or(String::new(), |m| format!(": {}", m.replace('\n', " | ")));
                format!("{time}  migration {migration}: {phase}{why}")
            }
            Self::Flag {
                flag,
                phase,
                percentage,
                message,
                ..
            } => {
                let p = percentage.map_or(String::new(), |p| format!(" {p}%"));
                let why = message
                    .as_deref()
                    .map_or(String::new(), |m| format!(": {m}"));
                format!("{time}  flag {flag}: {phase}{p}{why}")
            }
            Self::Violation {
                expectation,
                message,
                ..
            } => format!("{time}  !! expectation {expectation}: {message}"),
        }
    }
}

/// Traffic of one revision.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionWeight {
    /// Revision hash.
    pub revision: String,
    /// Image of its first container.
    pub image: String,
    /// Percentage of traffic.
    pub weight: i32,
}

/// `hh:mm:ss` of a number of seconds.
pub fn clock(t: u64) -> String {
    format!("{:02}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60)
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Simulated seconds.
    pub duration: u64,
    /// Everything that happened, in time order.
    pub timeline: Vec<Entry>,
    /// Expectations that did not hold: (number, line, message), in file order.
    pub violations: Vec<(usize, usize, String)>,
    /// Expectations checked.
    pub expectations: usize,
    /// Metric thresholds found in the conditions, by metric name.
    pub thresholds: BTreeMap<String, Vec<f64>>,
}

/// A Rollout as the expectations see it at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
struct Snapshot {
    phase: Option<RolloutPhase>,
    step: Option<i32>,
    weight: Option<i32>,
    stable_image: Option<String>,
    message: String,
}

/// Runs a scenario to its end on a virtual clock.
pub fn run(scenario: &Scenario) -> Result<Report, ScenarioError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| ScenarioError {
            file: scenario.name.clone(),
            line: 0,
            message: format!("cannot start the runtime: {e}"),
        })?;
    runtime.block_on(simulate(scenario))
}

async fn simulate(scenario: &Scenario) -> Result<Report, ScenarioError> {
    let start = Timestamp::from_second(START).unwrap_or(Timestamp::UNIX_EPOCH);
    let clock = Clock::tokio_at(start);
    let sim = Sim::new(clock.clone());
    let fail = |message: String| ScenarioError {
        file: scenario.name.clone(),
        line: 0,
        message,
    };
    crate::cli::dev::install_crds(&sim).map_err(|e| fail(e.to_string()))?;
    install_gateway_api(&sim).map_err(fail)?;
    sim.prometheus().set_script(scenario.metrics.clone());
    let stop = CancellationToken::new();
    let defaults = WorkloadConfig::default();
    sim.start_workloads(
        WorkloadConfig {
            ready_after: scenario
                .workloads
                .ready_after
                .map_or(defaults.ready_after, |d| d.as_std()),
            job_duration: scenario
                .workloads
                .job_duration
                .map_or(defaults.job_duration, |d| d.as_std()),
        },
        stop.clone(),
    );
    let mut changes = sim.store().subscribe();
    for m in &scenario.objects {
        apply(&sim, m).map_err(|e| fail(format!("{}: {e}", m.origin)))?;
    }
    // Metrics without an address go to the sim's scripted Prometheus; every address is
    // answered by it too, and no request leaves the process, so any host is allowed.
    let config = Config {
        prometheus_url: Some("http://prometheus.sim".into()),
        allowed_hosts: vec!["*".into()],
        ..Config::default()
    };
    let ctx = Context::new(
        sim.client(),
        config,
        clock.clone(),
        Arc::new(Metrics::new()),
    )
    .with_prometheus(sim.prometheus_transport());
    let controllers = tokio::spawn(futures::future::join_all(
        crate::controller::runner::controllers(Arc::new(ctx), stop.clone()),
    ));

    let mut state = Watcher::new(scenario);
    let origin = tokio::time::Instant::now();
    let mut actions = scenario.actions.iter().peekable();
    let mut t = 0;
    loop {
        tokio::time::sleep_until(origin + std::time::Duration::from_secs(t)).await;
        while let Some(a) = actions.next_if(|a| a.at <= t) {
            let description = perform(&sim, &a.action);
            state.timeline.push(Entry::Change { t, description });
            // Let the controllers see the change before the next look.
            tokio::task::yield_now().await;
        }
        // Drain what changed; a lagging receiver means look at everything.
        let mut dirty = t == 0;
        let mut decisions = Vec::new();
        loop {
            match changes.try_recv() {
                Ok(event) => {
                    dirty = true;
                    if event.group == "events.k8s.io" {
                        decisions.push(event.object());
                    }
                }
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => dirty = true,
                Err(_) => break,
            }
        }
        if dirty {
            state.look(&sim, t);
        }
        for d in &decisions {
            state.decision(t, d);
        }
        state.check(t, t >= scenario.duration);
        if t >= scenario.duration {
            break;
        }
        t = (t + scenario.tick).min(scenario.duration);
    }
    stop.cancel();
    let _ = controllers.await;
    Ok(Report {
        name: scenario.name.clone(),
        duration: scenario.duration,
        timeline: state.timeline,
        violations: state.violations,
        expectations: scenario.expectations.len(),
        thresholds: state.thresholds,
    })
}

/// Serves HTTPRoute (a scenario's Gateway API canary needs it) as a minimal CRD.
pub fn install_gateway_api(sim: &Sim) -> Result<(), String> {
    let crd_type = sim
        .store()
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or("the sim serves no CRDs")?;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
        "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
            "names": {"plural": "httproutes", "singular": "httproute", "kind": "HTTPRoute", "listKind": "HTTPRouteList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    sim.store()
        .create(&crd_type, "", crd, &opts())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: Some("cutover-simulate".into()),
        force: true,
        ..Default::default()
    }
}

fn namespace(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

fn apply(sim: &Sim, m: &Manifest) -> Result<(), String> {
    let api_version = m.object["apiVersion"].as_str().unwrap_or_default();
    let kind = m.object["kind"].as_str().unwrap_or_default();
    let (group, version, plural) =
        scenario::resource_type(api_version, kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    let rt = sim
        .store()
        .resolve(&group, &version, &plural)
        .ok_or_else(|| format!("the sim does not serve {kind}"))?;
    let name = m.object["metadata"]["name"].as_str().unwrap_or_default();
    sim.store()
        .patch(
            &rt,
            &namespace(&m.object),
            name,
            PatchKind::Apply,
            &m.object,
            Subresource::Main,
            &opts(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn kind_type(sim: &Sim, kind: &str) -> Option<Arc<crate::sim::resources::ResourceType>> {
    sim.store()
        .types()
        .into_iter()
        .find(|t| t.kind == kind && t.group != "events.k8s.io")
}

fn merge(sim: &Sim, kind: &str, name: &str, patch: &Value) -> Result<(), String> {
    let rt = kind_type(sim, kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    sim.store()
        .patch(
            &rt,
            "default",
            name,
            PatchKind::Merge,
            patch,
            Subresource::Main,
            &opts(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Carries out a scenario action; returns what the timeline says of it.
fn perform(sim: &Sim, action: &Action) -> String {
    let (description, result) = match action {
        Action::Apply(manifests) => {
            let names: Vec<String> = manifests
                .iter()
                .map(|m| {
                    format!(
                        "{}/{}",
                        m.object["kind"].as_str().unwrap_or_default(),
                        m.object["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let result = manifests.iter().try_for_each(|m| apply(sim, m));
            (format!("apply {}", names.join(", ")), result)
        }
        Action::SetImage(s) => {
            let result = set_image(sim, s);
            (format!("set image of {} to {}", s.rollout, s.image), result)
        }
        Action::Annotate { rollout, key } => {
            let value = sim.store().current_rv().to_string();
            let patch = json!({"metadata": {"annotations": {*key: value}}});
            let verb = key.trim_start_matches("cutover.dev/");
            (
                format!("{verb} {rollout}"),
                merge(sim, "Rollout", rollout, &patch),
            )
        }
        Action::Scale(s) => (
            format!("scale {} to {}", s.rollout, s.replicas),
            merge(
                sim,
                "Rollout",
                &s.rollout,
                &json!({"spec": {"replicas": s.replicas}}),
            ),
        ),
        Action::Patch(p) => (
            format!("patch {}/{}", p.kind, p.name),
            merge(sim, &p.kind, &p.name, &p.patch),
        ),
        Action::Delete(d) => {
            let result = kind_type(sim, &d.kind)
                .ok_or_else(|| format!("unknown kind {}", d.kind))
                .and_then(|rt| {
                    sim.store()
                        .delete(
                            &rt,
                            "default",
                            &d.name,
                            crate::sim::store::Propagation::Background,
                            None,
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            (format!("delete {}/{}", d.kind, d.name), result)
        }
    };
    match result {
        Ok(()) => description,
        Err(e) => format!("{description} FAILED: {e}"),
    }
}

fn set_image(sim: &Sim, s: &scenario::SetImage) -> Result<(), String> {
    let rt = kind_type(sim, "Rollout").ok_or("Rollouts are not served")?;
    let current = sim
        .store()
        .get(&rt, "default", &s.rollout)
        .map_err(|e| e.to_string())?;
    let containers = current
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .ok_or("the Rollout has no spec.template (workloadRef Rollouts change their Deployment)")?;
    let mut containers = containers;
    let index = match &s.container {
        Some(name) => containers
            .iter()
            .position(|c| c["name"].as_str() == Some(name))
            .ok_or_else(|| format!("no container {name:?}"))?,
        None => 0,
    };
    let Some(container) = containers.get_mut(index) else {
        return Err("the template has no container".into());
    };
    container["image"] = json!(s.image);
    let mut patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    if let Some(a) = &s.pod_annotations {
        patch["spec"]["template"]["metadata"] = json!({"annotations": a});
    }
    merge(sim, "Rollout", &s.rollout, &patch)
}

/// What the runner has seen so far, and the expectations' progress.
struct Watcher<'a> {
    scenario: &'a Scenario,
    timeline: Vec<Entry>,
    last_traffic: BTreeMap<String, (String, Option<i32>, Vec<RevisionWeight>)>,
    seen_measurements: BTreeSet<(String, String, String, String)>,
    reasons: BTreeMap<String, BTreeSet<String>>,
    snapshots: BTreeMap<String, Snapshot>,
    migrations: BTreeMap<String, (String, Option<String>)>,
    flags: BTreeMap<String, (String, Option<i32>)>,
    violations: Vec<(usize, usize, String)>,
    satisfied: BTreeSet<usize>,
    thresholds: BTreeMap<String, Vec<f64>>,
}

impl<'a> Watcher<'a> {
    fn new(scenario: &'a Scenario) -> Self {
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

    fn decision(&mut self, t: u64, event: &Value) {
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

    fn look(&mut self, sim: &Sim, t: u64) {
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

    fn check(&mut self, t: u64, end: bool) {
        for x in &self.scenario.expectations {
            if self.satisfied.contains(&x.index) || self.violations.iter().any(|v| v.0 == x.index) {
                continue;
            }
            let (holds, seen) = self.holds(x);
            let violation = if x.spec.never == Some(true) {
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
