//! Analysis runs, whatever they gate: which measurements fall due, recording the ones the
//! shell took (each due time once), the verdict, and what the verdict means. Pure; used by
//! the Rollout and FeatureFlag plans.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    judge::{self, Classification},
    measure,
};
pub use crate::analysis::fetch::Input;
use crate::api::{
    AnalysisRunStatus, AnalysisSpec, AnalysisVerdict, ErrorAction, MeasurementOutcome, Metric,
    MetricStatus, NoDataPolicy,
};

/// A measurement taken by the shell.
#[derive(Clone, Debug, PartialEq)]
pub struct Taken {
    /// Run name.
    pub run: String,
    /// Metric name.
    pub metric: String,
    /// The due time it was taken for.
    pub due: Timestamp,
    /// When it was taken.
    pub taken: Timestamp,
    /// What was fetched.
    pub input: Input,
}

/// A measurement the shell is to take now.
#[derive(Clone, Debug, PartialEq)]
pub struct Due<'a> {
    /// Run name.
    pub run: String,
    /// Revision analysed (the canary revision of its queries).
    pub revision: Option<String>,
    /// The run's spec (its args).
    pub spec: &'a AnalysisSpec,
    /// The metric.
    pub metric: &'a Metric,
    /// Its due time.
    pub at: Timestamp,
}

/// What a run's verdict means for what it gates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Successful: go on.
    Passed,
    /// Still measuring: wait (a wake-up is set for the next measurement).
    Waiting(String),
    /// Inconclusive, or errors past the limit: a person decides (promote or abort).
    Blocked(&'static str, String),
    /// Failed, or errors past the limit of a metric with `onError: Abort`.
    Failed(&'static str, String),
}

/// Classifies one fetched input for a metric.
fn classify(
    metric: &Metric,
    input: &Input,
) -> (MeasurementOutcome, Option<String>, Option<String>) {
    match input {
        Input::Query(result) => measure::classify(metric, result.clone()),
        Input::Compare(Err(message)) => (MeasurementOutcome::Error, None, Some(message.clone())),
        Input::Compare(Ok((canary, stable))) => {
            let Some(compare) = &metric.compare else {
                return (
                    MeasurementOutcome::Error,
                    None,
                    Some("a comparison was taken for a metric without compare".into()),
                );
            };
            let j = judge::judge(compare, canary, stable);
            let value = Some(j.render());
            let outcome = match j.classification {
                Classification::Pass => MeasurementOutcome::Successful,
                Classification::High | Classification::Low => MeasurementOutcome::Failed,
                Classification::NoData => match metric.no_data() {
                    NoDataPolicy::Inconclusive => MeasurementOutcome::Inconclusive,
                    NoDataPolicy::Fail => MeasurementOutcome::Failed,
                    NoDataPolicy::Pass => MeasurementOutcome::Successful,
                },
            };
            let message = match j.classification {
                Classification::High => Some("canary significantly higher than stable".into()),
                Classification::Low => Some("canary significantly lower than stable".into()),
                Classification::NoData => Some(format!(
                    "too few samples to compare: counted as {:?} by noData",
                    metric.no_data()
                )),
                Classification::Pass => None,
            };
            (outcome, value, message)
        }
    }
}

/// A new run named `name` (of `revision`), started at `now`.
pub fn start(name: &str, revision: Option<&str>, now: Timestamp) -> AnalysisRunStatus {
    AnalysisRunStatus {
        name: name.to_string(),
        revision: revision.map(str::to_string),
        started_at: Some(Time(now)),
        verdict: AnalysisVerdict::Running,
        message: None,
        metrics: Vec::new(),
    }
}

/// Records the measurements taken for a running run (only one for the due time still open
/// per metric: one taken from a stale view of the status is dropped, never counted twice),
/// updates its verdicts, and returns when it should be looked at again.
pub fn advance(
    run: &mut AnalysisRunStatus,
    spec: &AnalysisSpec,
    taken: &[Taken],
    now: Timestamp,
) -> Option<Timestamp> {
    if run.verdict != AnalysisVerdict::Running {
        return None;
    }
    let started = run.started_at.as_ref().map_or(now, |t| t.0);
    let mut verdicts = Vec::new();
    let mut wake: Option<Timestamp> = None;
    for metric in &spec.metrics {
        let state = match run.metrics.iter().position(|m| m.name == metric.name) {
            Some(i) => &mut run.metrics[i],
            None => {
                run.metrics.push(MetricStatus {
                    name: metric.name.clone(),
                    ..Default::default()
                });
                let last = run.metrics.len() - 1;
                &mut run.metrics[last]
            }
        };
        let open = measure::next_due(metric, state, started);
        if let Some(t) = taken
            .iter()
            .find(|t| t.run == run.name && t.metric == metric.name && Some(t.due) == open)
        {
            let outcome = classify(metric, &t.input);
            measure::record(state, measure::measurement(t.due, t.taken, outcome));
        }
        state.verdict = measure::verdict(metric, state);
        state.dry_run = metric.dry_run;
        verdicts.push((metric.dry_run, state.verdict));
        if let Some(next) = measure::next_due(metric, state, started) {
            wake = Some(wake.map_or(next, |w: Timestamp| w.min(next)));
        }
    }
    run.verdict = run_verdict(&verdicts);
    run.message = Some(summary(spec, run));
    wake.filter(|_| run.verdict == AnalysisVerdict::Running)
        .map(|at| at.max(now))
}

/// The verdict of a run from its metrics' `(dry run, verdict)`: dry-run metrics never
/// decide, and never hold up a run whose deciding metrics are done. A run of dry-run metrics
/// only ends Successful once they are all done.
fn run_verdict(verdicts: &[(bool, AnalysisVerdict)]) -> AnalysisVerdict {
    let deciding: Vec<AnalysisVerdict> = verdicts
        .iter()
        .filter(|(dry, _)| !dry)
        .map(|(_, v)| *v)
        .collect();
    if deciding.is_empty() && !verdicts.is_empty() {
        let running = verdicts.iter().any(|(_, v)| *v == AnalysisVerdict::Running);
        return if running {
            AnalysisVerdict::Running
        } else {
            AnalysisVerdict::Successful
        };
    }
    measure::run_verdict(&deciding)
}

/// Measurements due at `now` among `runs`: each metric of each running run (whose spec
/// `spec_for` still finds) whose next due time has come.
pub fn due_in<'a>(
    runs: &[AnalysisRunStatus],
    spec_for: impl Fn(&str) -> Option<&'a AnalysisSpec>,
    now: Timestamp,
) -> Vec<Due<'a>> {
    let mut out = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.verdict == AnalysisVerdict::Running)
    {
        let Some(spec) = spec_for(&run.name) else {
            continue;
        };
        let started = run.started_at.as_ref().map_or(now, |t| t.0);
        for metric in &spec.metrics {
            let empty = MetricStatus::default();
            let state = run
                .metrics
                .iter()
                .find(|m| m.name == metric.name)
                .unwrap_or(&empty);
            if let Some(at) = measure::next_due(metric, state, started)
                && at <= now
            {
                out.push(Due {
                    run: run.name.clone(),
                    revision: run.revision.clone(),
                    spec,
                    metric,
                    at,
                });
            }
        }
    }
    out
}

/// What a run's verdict means.
pub fn gate(spec: &AnalysisSpec, run: &AnalysisRunStatus) -> Gate {
    let message = format!(
        "analysis {}: {}",
        run.name,
        run.message.clone().unwrap_or_default()
    );
    match run.verdict {
        AnalysisVerdict::Successful => Gate::Passed,
        AnalysisVerdict::Running => Gate::Waiting(message),
        AnalysisVerdict::Failed => Gate::Failed("AnalysisFailed", message),
        AnalysisVerdict::Inconclusive => Gate::Blocked("AnalysisInconclusive", message),
        AnalysisVerdict::Error => {
            let aborts = run.metrics.iter().any(|m| {
                m.verdict == AnalysisVerdict::Error
                    && !m.dry_run
                    && spec
                        .metrics
                        .iter()
                        .any(|s| s.name == m.name && s.on_error() == ErrorAction::Abort)
            });
            if aborts {
                Gate::Failed("AnalysisError", message)
            } else {
                Gate::Blocked("AnalysisError", message)
            }
        }
    }
}

/// Why a run has its verdict: the deciding metric and its last measurement.
fn summary(spec: &AnalysisSpec, run: &AnalysisRunStatus) -> String {
    // The metric that decided: the worst of those that may decide, dry-run ones last.
    let deciding = run
        .metrics
        .iter()
        .filter(|m| spec.metrics.iter().any(|s| s.name == m.name))
        .max_by_key(|m| (!m.dry_run, m.verdict));
    let Some(m) = deciding else {
        return "no metrics".into();
    };
    let last = m.measurements.last();
    let detail = last
        .map(|l| {
            let mut s = format!("last {:?}", l.outcome);
            if let Some(v) = &l.value {
                s.push_str(&format!(" with {v}"));
            }
            if let Some(msg) = &l.message {
                s.push_str(&format!(" ({msg})"));
            }
            s
        })
        .unwrap_or_else(|| "no measurement yet".into());
    let verdict = match m.verdict {
        AnalysisVerdict::Running => "measuring",
        AnalysisVerdict::Successful => "successful",
        AnalysisVerdict::Inconclusive => "inconclusive",
        AnalysisVerdict::Error => "erroring",
        AnalysisVerdict::Failed => "failed",
    };
    format!(
        "metric {} {verdict} after {} measurements ({} failed, {} inconclusive, {} errors); {detail}",
        m.name, m.count, m.failed, m.inconclusive, m.error
    )
}
