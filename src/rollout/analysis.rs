//! Analysis runs of a Rollout: which measurements fall due (for the shell to take), and
//! how the plan records them and turns a run's verdict into go on, wait, pause or abort.
//!
//! A run is named after what it gates: `step-N` (a canary step), `background`,
//! `prePromotion` / `postPromotion` (blue-green) or `batch-N` (rolling). Its state lives in
//! `status.analysis`, so a restart resumes it: a due time is measured once.

use jiff::Timestamp;

use super::plan::{Ctx, ts};
use crate::analysis::{
    judge::{self, Classification},
    measure,
};
use crate::api::{
    AnalysisRunStatus, AnalysisSpec, AnalysisVerdict, ErrorAction, MeasurementOutcome, Metric,
    MetricStatus, NoDataPolicy, Rollout, RolloutPhase, RolloutSpec,
};

/// Name of the background run of a canary.
pub const BACKGROUND: &str = "background";
/// Name of the blue-green pre-promotion run.
pub const PRE_PROMOTION: &str = "prePromotion";
/// Name of the blue-green post-promotion run.
pub const POST_PROMOTION: &str = "postPromotion";

pub use crate::analysis::fetch::Input;

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

/// The analysis spec a run of this name measures, if the spec still has it.
pub fn spec_for<'a>(spec: &'a RolloutSpec, run: &str) -> Option<&'a AnalysisSpec> {
    let strategy = &spec.strategy;
    if let Some(index) = run.strip_prefix("step-") {
        let i: usize = index.parse().ok()?;
        return strategy.canary.as_ref()?.steps.get(i)?.analysis.as_ref();
    }
    if run.starts_with("batch-") {
        return strategy.rolling.as_ref()?.analysis.as_ref();
    }
    match run {
        BACKGROUND => strategy.canary.as_ref()?.analysis.as_ref().map(|b| &b.spec),
        PRE_PROMOTION => strategy
            .blue_green
            .as_ref()?
            .pre_promotion_analysis
            .as_ref(),
        POST_PROMOTION => strategy
            .blue_green
            .as_ref()?
            .post_promotion_analysis
            .as_ref(),
        _ => None,
    }
}

/// Measurements due at `now`: each metric of each running run whose next due time has come.
pub fn due(rollout: &Rollout, now: Timestamp) -> Vec<Due<'_>> {
    let Some(status) = &rollout.status else {
        return Vec::new();
    };
    if status.phase == RolloutPhase::Aborted {
        return Vec::new();
    }
    let mut out = Vec::new();
    for run in status
        .analysis
        .iter()
        .filter(|r| r.verdict == AnalysisVerdict::Running)
    {
        let Some(spec) = spec_for(&rollout.spec, &run.name) else {
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

/// What a run's verdict means for the rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Gate {
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

/// Runs (or goes on with) the analysis `name` of `revision`: records the measurements the
/// shell took for it, updates verdicts and returns what the rollout should do.
pub(super) fn run(ctx: &mut Ctx<'_>, name: &str, spec: &AnalysisSpec, revision: &str) -> Gate {
    let now = ctx.obs.now;
    ctx.keep_run(name);
    let position = ctx
        .status
        .analysis
        .iter()
        .position(|r| r.name == name && r.revision.as_deref() == Some(revision));
    let index = match position {
        Some(i) => i,
        None => {
            ctx.status.analysis.retain(|r| r.name != name);
            ctx.status.analysis.push(AnalysisRunStatus {
                name: name.to_string(),
                revision: Some(revision.to_string()),
                started_at: Some(ts(now)),
                verdict: AnalysisVerdict::Running,
                message: None,
                metrics: Vec::new(),
            });
            ctx.note(
                "AnalysisStarted",
                format!("analysis {name} of {revision} started"),
            );
            ctx.status.analysis.len() - 1
        }
    };
    let taken: Vec<Taken> = ctx
        .obs
        .measurements
        .iter()
        .filter(|t| t.run == name)
        .cloned()
        .collect();
    let run = &mut ctx.status.analysis[index];
    if run.verdict == AnalysisVerdict::Running {
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
            // Only a measurement for the due time still open is recorded: one taken from a
            // stale view of the status is dropped, never counted twice.
            let open = measure::next_due(metric, state, started);
            if let Some(t) = taken
                .iter()
                .find(|t| t.metric == metric.name && Some(t.due) == open)
            {
                let outcome = classify(metric, &t.input);
                measure::record(state, measure::measurement(t.due, t.taken, outcome));
            }
            state.verdict = measure::verdict(metric, state);
            verdicts.push(state.verdict);
            if let Some(next) = measure::next_due(metric, state, started) {
                wake = Some(wake.map_or(next, |w: Timestamp| w.min(next)));
            }
        }
        run.verdict = measure::run_verdict(&verdicts);
        run.message = Some(summary(spec, run));
        let verdict = run.verdict;
        let message = run.message.clone().unwrap_or_default();
        if let Some(at) = wake.filter(|_| verdict == AnalysisVerdict::Running) {
            ctx.wake_at(at.max(now));
        }
        if verdict != AnalysisVerdict::Running {
            let reason = if verdict == AnalysisVerdict::Successful {
                "AnalysisSuccessful"
            } else {
                "AnalysisStopped"
            };
            ctx.note(reason, format!("analysis {name} of {revision}: {message}"));
        }
    }
    gate(spec, &ctx.status.analysis[index])
}

fn gate(spec: &AnalysisSpec, run: &AnalysisRunStatus) -> Gate {
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
    let deciding = run
        .metrics
        .iter()
        .filter(|m| spec.metrics.iter().any(|s| s.name == m.name))
        .max_by_key(|m| m.verdict);
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

/// A person resumed a blocked run (promote): its inconclusive and error counts start over,
/// so it measures on; its history stays in the kept measurements.
pub(super) fn resume(ctx: &mut Ctx<'_>, name: &str) {
    let now = ctx.obs.now;
    if let Some(run) = ctx.status.analysis.iter_mut().find(|r| r.name == name) {
        for m in &mut run.metrics {
            if matches!(
                m.verdict,
                AnalysisVerdict::Inconclusive | AnalysisVerdict::Error
            ) {
                m.inconclusive = 0;
                m.consecutive_errors = 0;
                m.verdict = AnalysisVerdict::Running;
            }
        }
        if matches!(
            run.verdict,
            AnalysisVerdict::Inconclusive | AnalysisVerdict::Error
        ) {
            run.verdict = AnalysisVerdict::Running;
            run.message = Some("resumed by promote".into());
        }
    }
    ctx.wake_at(now);
}

/// Ends runs the rollout no longer needs (step passed, promoted, aborted): a run still
/// measuring is closed as Successful with a message saying it was ended, as Argo Rollouts
/// terminates runs, and is measured no more.
pub(super) fn end_unneeded(ctx: &mut Ctx<'_>) {
    let keep = ctx.kept_runs().to_vec();
    for run in &mut ctx.status.analysis {
        if run.verdict == AnalysisVerdict::Running && !keep.contains(&run.name) {
            run.verdict = AnalysisVerdict::Successful;
            run.message = Some("ended: no longer needed by the rollout".into());
        }
    }
}
