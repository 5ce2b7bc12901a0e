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
use crate::analysis::job::JobResult;
use crate::api::{
    AnalysisRunStatus, AnalysisSpec, AnalysisVerdict, ErrorAction, MeasurementOutcome, Metric,
    MetricStatus, NoDataPolicy,
};

/// How often a running job metric's Job is looked at.
pub const JOB_POLL: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

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
        Input::Job(Err(message)) => (MeasurementOutcome::Error, None, Some(message.clone())),
        Input::Job(Ok(JobResult::Running { job })) => (
            MeasurementOutcome::Error,
            None,
            Some(format!("job {job} is still running")),
        ),
        Input::Job(Ok(JobResult::Finished {
            job,
            succeeded,
            reason,
            log,
        })) => {
            let mut message = match (succeeded, reason) {
                (true, _) => format!("job {job} complete"),
                (false, Some(reason)) => format!("job {job} failed ({reason})"),
                (false, None) => format!("job {job} failed"),
            };
            if let Some(log) = log.as_deref().filter(|l| !l.is_empty()) {
                message.push_str("; log: ");
                message.push_str(log);
            }
            let (outcome, value) = if *succeeded {
                (MeasurementOutcome::Successful, "Complete")
            } else {
                (MeasurementOutcome::Failed, "Failed")
            };
            (outcome, Some(value.to_string()), Some(message))
        }
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
        let mut running_job = false;
        if let Some(t) = taken
            .iter()
            .find(|t| t.run == run.name && t.metric == metric.name && Some(t.due) == open)
        {
            // A Job still running has not measured yet: the due time stays open.
            if matches!(t.input, Input::Job(Ok(JobResult::Running { .. }))) {
                running_job = true;
            } else {
                let outcome = classify(metric, &t.input);
                measure::record(state, measure::measurement(t.due, t.taken, outcome));
            }
        }
        state.verdict = measure::verdict(metric, state);
        state.dry_run = metric.dry_run;
        verdicts.push((metric.dry_run, state.verdict));
        if let Some(next) = measure::next_due(metric, state, started) {
            let next = if running_job {
                next.max(now + JOB_POLL)
            } else {
                next
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{JobMetric, Metric};

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            metrics: vec![Metric {
                name: "smoke".into(),
                count: Some(1),
                job: Some(JobMetric::default()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap_or_default()
    }

    fn taken(due: i64, now: i64, result: JobResult) -> Taken {
        Taken {
            run: "step-1".into(),
            metric: "smoke".into(),
            due: at(due),
            taken: at(now),
            input: Input::Job(Ok(result)),
        }
    }

    #[test]
    fn a_running_job_measures_nothing_yet_and_is_looked_at_again_soon() {
        let spec = spec();
        let mut run = start("step-1", Some("abc"), at(100));
        let running = JobResult::Running {
            job: "web-smoke-x".into(),
        };
        let wake = advance(
            &mut run,
            &spec,
            &[taken(100, 100, running.clone())],
            at(100),
        );
        assert_eq!(wake, Some(at(100) + JOB_POLL), "polled, not at once");
        assert_eq!(run.verdict, AnalysisVerdict::Running);
        assert!(run.metrics[0].measurements.is_empty());
        // Still running later: the due time stays the first one, so the Job stays the same.
        let wake = advance(&mut run, &spec, &[taken(100, 130, running)], at(130));
        assert_eq!(wake, Some(at(130) + JOB_POLL));
        let due = due_in(std::slice::from_ref(&run), |_| Some(&spec), at(131));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].at, at(100));
    }

    #[test]
    fn a_complete_job_succeeds_and_a_failed_one_fails_with_its_log() {
        let spec = spec();
        let mut ok = start("step-1", Some("abc"), at(100));
        let complete = JobResult::Finished {
            job: "web-smoke-x".into(),
            succeeded: true,
            reason: None,
            log: Some("GET /healthz 200".into()),
        };
        assert_eq!(
            advance(&mut ok, &spec, &[taken(100, 140, complete)], at(140)),
            None
        );
        assert_eq!(ok.verdict, AnalysisVerdict::Successful);
        let m = &ok.metrics[0].measurements[0];
        assert_eq!(m.value.as_deref(), Some("Complete"));
        assert_eq!(
            m.message.as_deref(),
            Some("job web-smoke-x complete; log: GET /healthz 200")
        );
        assert_eq!(gate(&spec, &ok), Gate::Passed);

        let mut bad = start("step-1", Some("abc"), at(100));
        let failed = JobResult::Finished {
            job: "web-smoke-y".into(),
            succeeded: false,
            reason: Some("BackoffLimitExceeded".into()),
            log: Some("503".into()),
        };
        advance(&mut bad, &spec, &[taken(100, 140, failed)], at(140));
        assert_eq!(bad.verdict, AnalysisVerdict::Failed);
        assert_eq!(
            bad.metrics[0].measurements[0].message.as_deref(),
            Some("job web-smoke-y failed (BackoffLimitExceeded); log: 503")
        );
        assert!(matches!(
            gate(&spec, &bad),
            Gate::Failed("AnalysisFailed", _)
        ));
    }

    #[test]
    fn a_job_that_cannot_be_created_is_an_error_retried_with_a_new_job() {
        let spec = spec();
        let mut run = start("step-1", Some("abc"), at(100));
        let error = Taken {
            input: Input::Job(Err("creating Job web-smoke-x: forbidden".into())),
            ..taken(100, 100, JobResult::Running { job: String::new() })
        };
        let wake = advance(&mut run, &spec, &[error], at(100));
        let m = &run.metrics[0];
        assert_eq!(m.measurements[0].outcome, MeasurementOutcome::Error);
        assert_eq!(m.consecutive_errors, 1);
        assert_eq!(run.verdict, AnalysisVerdict::Running, "errors are retried");
        let retry = wake.unwrap_or_default();
        assert!(retry > at(100), "a later due time, so a Job of its own");
    }
}
