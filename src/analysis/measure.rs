//! Measurement bookkeeping: the outcome of one measurement, the counts and the last few
//! measurements kept in status, the verdict of a metric and of a run, and when the next
//! measurement falls due. Pure: time is an input.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::condition::{self, QueryResult};
use crate::api::{
    AnalysisVerdict, MEASUREMENTS_KEPT, Measurement, MeasurementOutcome, Metric, MetricStatus,
    NoDataPolicy,
};

/// Delay before an errored measurement is retried (as Argo Rollouts does).
pub const ERROR_RETRY: SignedDuration = SignedDuration::from_secs(10);

/// Classifies one measurement: the query's result (or why it failed) against the metric's
/// conditions and no-data policy. Failure wins over success; neither is Inconclusive.
pub fn classify(
    metric: &Metric,
    result: Result<QueryResult, String>,
) -> (MeasurementOutcome, Option<String>, Option<String>) {
    let result = match result {
        Ok(r) => r,
        Err(message) => return (MeasurementOutcome::Error, None, Some(message)),
    };
    let value = Some(result.render());
    if result.is_no_data() {
        let outcome = match metric.no_data() {
            NoDataPolicy::Inconclusive => MeasurementOutcome::Inconclusive,
            NoDataPolicy::Fail => MeasurementOutcome::Failed,
            NoDataPolicy::Pass => MeasurementOutcome::Successful,
        };
        return (
            outcome,
            value,
            Some(format!(
                "no data: counted as {:?} by noData",
                metric.no_data()
            )),
        );
    }
    let check = |expr: &Option<String>| -> Result<Option<bool>, String> {
        match expr {
            None => Ok(None),
            Some(e) => condition::test(e, &result)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    };
    // A condition over one number that meets several samples cannot decide: that is the
    // query's shape, not the service's health.
    let fails = |message: String| match &result {
        QueryResult::Numbers(ns) => (
            MeasurementOutcome::Inconclusive,
            value.clone(),
            Some(format!(
                "the query returned {} samples where one was expected: aggregate it (sum, avg, max) or write the condition over a list ({message})",
                ns.len()
            )),
        ),
        _ => (MeasurementOutcome::Error, value.clone(), Some(message)),
    };
    let failed = match check(&metric.failure_condition) {
        Ok(f) => f,
        Err(message) => return fails(message),
    };
    let succeeded = match check(&metric.success_condition) {
        Ok(s) => s,
        Err(message) => return fails(message),
    };
    let outcome = match (failed, succeeded) {
        (Some(true), _) => MeasurementOutcome::Failed,
        (_, Some(true)) => MeasurementOutcome::Successful,
        // Only a failure condition, and it does not hold.
        (Some(false), None) => MeasurementOutcome::Successful,
        // Only a success condition, and it does not hold.
        (None, Some(false)) => MeasurementOutcome::Failed,
        (Some(false), Some(false)) | (None, None) => MeasurementOutcome::Inconclusive,
    };
    (outcome, value, None)
}

/// Records a measurement in a metric's status: counts, errors in a row, the last few kept.
pub fn record(status: &mut MetricStatus, measurement: Measurement) {
    status.count += 1;
    match measurement.outcome {
        MeasurementOutcome::Successful => status.successful += 1,
        MeasurementOutcome::Failed => status.failed += 1,
        MeasurementOutcome::Inconclusive => status.inconclusive += 1,
        MeasurementOutcome::Error => status.error += 1,
    }
    if measurement.outcome == MeasurementOutcome::Error {
        status.consecutive_errors += 1;
    } else {
        status.consecutive_errors = 0;
    }
    status.measurements.push(measurement);
    if status.measurements.len() > MEASUREMENTS_KEPT {
        let extra = status.measurements.len() - MEASUREMENTS_KEPT;
        status.measurements.drain(..extra);
    }
}

/// The verdict of one metric: limits passed decide, else done once `count` measurements
/// were taken, else still running.
pub fn verdict(metric: &Metric, status: &MetricStatus) -> AnalysisVerdict {
    if status.failed > metric.failure_limit() {
        AnalysisVerdict::Failed
    } else if status.consecutive_errors > metric.consecutive_error_limit() {
        AnalysisVerdict::Error
    } else if status.inconclusive > metric.inconclusive_limit() {
        AnalysisVerdict::Inconclusive
    } else if metric
        .count
        .is_some_and(|c| status.count - status.error >= c)
    {
        AnalysisVerdict::Successful
    } else {
        AnalysisVerdict::Running
    }
}

/// The verdict of a run: the worst of its metrics; Successful only when all are.
pub fn run_verdict(verdicts: &[AnalysisVerdict]) -> AnalysisVerdict {
    let worst = verdicts
        .iter()
        .copied()
        .max()
        .unwrap_or(AnalysisVerdict::Successful);
    if worst > AnalysisVerdict::Successful {
        // Inconclusive, Error or Failed decides at once, whatever is still running.
        return worst;
    }
    if verdicts.contains(&AnalysisVerdict::Running) {
        AnalysisVerdict::Running
    } else {
        AnalysisVerdict::Successful
    }
}

/// When the next measurement of a metric falls due, if one is still needed. A due time is
/// measured once: the last measurement's due time is kept, so a restart never repeats it.
pub fn next_due(metric: &Metric, status: &MetricStatus, started: Timestamp) -> Option<Timestamp> {
    if verdict(metric, status) != AnalysisVerdict::Running {
        return None;
    }
    let interval =
        SignedDuration::try_from(metric.interval().as_std()).unwrap_or(SignedDuration::MAX);
    match status.measurements.last() {
        None => {
            let delay = metric
                .initial_delay
                .map(|d| SignedDuration::try_from(d.as_std()).unwrap_or(SignedDuration::MAX))
                .unwrap_or_default();
            started.checked_add(delay).ok()
        }
        Some(last) if last.outcome == MeasurementOutcome::Error => {
            last.taken_at.0.checked_add(ERROR_RETRY).ok()
        }
        Some(last) => last.due_at.0.checked_add(interval).ok(),
    }
}

/// A measurement record.
pub fn measurement(
    due: Timestamp,
    taken: Timestamp,
    outcome: (MeasurementOutcome, Option<String>, Option<String>),
) -> Measurement {
    Measurement {
        due_at: Time(due),
        taken_at: Time(taken),
        outcome: outcome.0,
        value: outcome.1,
        message: outcome.2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Duration;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            success_condition: success.map(str::to_string),
            failure_condition: failure.map(str::to_string),
            ..Default::default()
        }
    }

    fn outcome(m: &Metric, r: Result<QueryResult, String>) -> MeasurementOutcome {
        classify(m, r).0
    }

    #[test]
    fn infinities_never_pass_a_condition() {
        let m = metric(Some("result < 0.05"), None);
        for value in [f64::NEG_INFINITY, f64::INFINITY, f64::NAN] {
            assert_eq!(
                outcome(&m, Ok(QueryResult::Number(value))),
                MeasurementOutcome::Inconclusive,
                "{value} follows noData (inconclusive by default)"
            );
            assert_eq!(
                outcome(&m, Ok(QueryResult::Numbers(vec![0.01, value]))),
                MeasurementOutcome::Inconclusive
            );
        }
    }

    #[test]
    fn failure_wins_and_neither_is_inconclusive() {
        let both = metric(Some("result < 0.05"), Some("result > 0.10"));
        assert_eq!(
            outcome(&both, Ok(QueryResult::Number(0.01))),
            MeasurementOutcome::Successful
        );
        assert_eq!(
            outcome(&both, Ok(QueryResult::Number(0.2))),
            MeasurementOutcome::Failed
        );
        assert_eq!(
            outcome(&both, Ok(QueryResult::Number(0.07))),
            MeasurementOutcome::Inconclusive
        );
        let overlapping = metric(Some("result < 1.0"), Some("result > 0.0"));
        assert_eq!(
            outcome(&overlapping, Ok(QueryResult::Number(0.5))),
            MeasurementOutcome::Failed
        );
    }

    #[test]
    fn a_single_condition_decides_both_ways() {
        let success_only = metric(Some("result < 0.05"), None);
        assert_eq!(
            outcome(&success_only, Ok(QueryResult::Number(0.2))),
            MeasurementOutcome::Failed
        );
        let failure_only = metric(None, Some("result > 0.10"));
        assert_eq!(
            outcome(&failure_only, Ok(QueryResult::Number(0.01))),
            MeasurementOutcome::Successful
        );
    }

    #[test]
    fn no_data_follows_the_policy_and_query_errors_are_errors() {
        let mut m = metric(Some("result < 0.05"), None);
        assert_eq!(
            outcome(&m, Ok(QueryResult::Empty)),
            MeasurementOutcome::Inconclusive,
            "default: never a silent pass"
        );
        assert_eq!(
            outcome(&m, Ok(QueryResult::Number(f64::NAN))),
            MeasurementOutcome::Inconclusive
        );
        m.no_data = Some(NoDataPolicy::Fail);
        assert_eq!(
            outcome(&m, Ok(QueryResult::Empty)),
            MeasurementOutcome::Failed
        );
        m.no_data = Some(NoDataPolicy::Pass);
        assert_eq!(
            outcome(&m, Ok(QueryResult::Empty)),
            MeasurementOutcome::Successful
        );
        assert_eq!(
            outcome(&m, Err("connection refused".into())),
            MeasurementOutcome::Error
        );
        let several = outcome(
            &metric(Some("result < 0.05"), None),
            Ok(QueryResult::Numbers(vec![0.01, 0.02])),
        );
        assert_eq!(
            several,
            MeasurementOutcome::Inconclusive,
            "several samples for a one-number condition"
        );
        let over_list = metric(Some("result.all(x, x < 0.05)"), None);
        assert_eq!(
            outcome(&over_list, Ok(QueryResult::Numbers(vec![0.01, 0.02]))),
            MeasurementOutcome::Successful
        );
        let bad = metric(Some("result + 1.0"), None);
        assert_eq!(
            outcome(&bad, Ok(QueryResult::Number(1.0))),
            MeasurementOutcome::Error
        );
    }

    fn status_after(m: &Metric, outcomes: &[MeasurementOutcome]) -> MetricStatus {
        let mut s = MetricStatus {
            name: m.name.clone(),
            ..Default::default()
        };
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        for o in outcomes {
            record(&mut s, measurement(t, t, (*o, None, None)));
        }
        s
    }

    #[test]
    fn limits_turn_outcomes_into_verdicts() {
        use MeasurementOutcome::*;
        let mut m = metric(Some("result < 1.0"), None);
        m.count = Some(3);
        assert_eq!(
            verdict(&m, &status_after(&m, &[Successful, Successful])),
            AnalysisVerdict::Running
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Successful, Successful, Successful])),
            AnalysisVerdict::Successful
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Successful, Failed])),
            AnalysisVerdict::Failed,
            "failureLimit 0"
        );
        m.failure_limit = Some(1);
        assert_eq!(
            verdict(&m, &status_after(&m, &[Failed, Successful])),
            AnalysisVerdict::Running
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Failed, Failed])),
            AnalysisVerdict::Failed
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Inconclusive])),
            AnalysisVerdict::Inconclusive
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Error, Error, Error, Error])),
            AnalysisVerdict::Running,
            "4 errors tolerated"
        );
        assert_eq!(
            verdict(&m, &status_after(&m, &[Error, Error, Error, Error, Error])),
            AnalysisVerdict::Error
        );
        assert_eq!(
            verdict(
                &m,
                &status_after(&m, &[Error, Error, Error, Successful, Error, Error])
            ),
            AnalysisVerdict::Running,
            "a success resets the run of errors"
        );
    }

    #[test]
    fn only_the_last_measurements_are_kept() {
        let m = metric(Some("result < 1.0"), None);
        let s = status_after(&m, &[MeasurementOutcome::Successful; 25]);
        assert_eq!(s.count, 25);
        assert_eq!(s.measurements.len(), MEASUREMENTS_KEPT);
    }

    #[test]
    fn a_run_takes_its_worst_metric() {
        use AnalysisVerdict::*;
        assert_eq!(run_verdict(&[Successful, Successful]), Successful);
        assert_eq!(run_verdict(&[Successful, Running]), Running);
        assert_eq!(
            run_verdict(&[Running, Failed]),
            Failed,
            "a failure ends the run at once"
        );
        assert_eq!(run_verdict(&[Inconclusive, Error]), Error);
        assert_eq!(run_verdict(&[]), Successful);
    }

    #[test]
    fn due_times_follow_initial_delay_interval_and_error_retry() {
        let mut m = metric(Some("result < 1.0"), None);
        m.interval = Some(Duration::from_secs(60));
        m.initial_delay = Some(Duration::from_secs(30));
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let mut s = MetricStatus::default();
        assert_eq!(
            next_due(&m, &s, start),
            Some(start + SignedDuration::from_secs(30))
        );
        let due = start + SignedDuration::from_secs(30);
        record(
            &mut s,
            measurement(
                due,
                due + SignedDuration::from_secs(2),
                (MeasurementOutcome::Successful, None, None),
            ),
        );
        assert_eq!(
            next_due(&m, &s, start),
            Some(due + SignedDuration::from_secs(60)),
            "from the due time: no drift"
        );
        let taken = due + SignedDuration::from_secs(61);
        record(
            &mut s,
            measurement(
                due + SignedDuration::from_secs(60),
                taken,
                (MeasurementOutcome::Error, None, None),
            ),
        );
        assert_eq!(next_due(&m, &s, start), Some(taken + ERROR_RETRY));
        m.count = Some(1);
        assert_eq!(next_due(&m, &s, start), None, "done: no more measurements");
    }
}
