//! `cutover simulate`: runs a scenario — objects, timed changes, scripted metrics — through
//! the real controllers on the sim with a virtual clock, and reports a timeline and whether
//! the scenario's expectations held.

mod actions;
pub mod plot;
pub mod scenario;
mod watcher;

pub use actions::install_gateway_api;
use actions::{apply, perform};
use watcher::Watcher;

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    api::RolloutPhase,
    controller::{Clock, Config, Context, Metrics},
    sim::{Sim, workload::WorkloadConfig},
};
pub use scenario::{Scenario, ScenarioError};

/// When a simulation starts unless its scenario says (`start:`), a fixed time so that runs
/// are repeatable: 2030-01-01T00:00:00Z.
pub const START: i64 = 1_893_456_000;

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
    let start = scenario.start;
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
