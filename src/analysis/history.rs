//! The record an `AnalysisRun` keeps: every measurement of a run, where the object's status
//! keeps only the last few. Pure: naming, merging and bounding; the shell writes it.

use crate::api::{AnalysisRunStatus, Measurement};

/// Most bytes of measurements one AnalysisRun keeps: far under etcd's 1.5 MiB object limit,
/// whatever the run's metrics and messages (job logs) weigh.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;

/// Longest object name the API server accepts.
const MAX_NAME: usize = 253;

/// Name of the AnalysisRun recording `run` of the object `of`: the object, the revision,
/// the run, and a short hash of when it started, so a run started again (after a retry) is
/// recorded apart from the first attempt.
pub fn run_name(of: &str, run: &AnalysisRunStatus) -> String {
    let started = run.started_at.as_ref().map_or(0, |t| t.0.as_second());
    let key = format!(
        "{}/{}/{}",
        run.name,
        run.revision.as_deref().unwrap_or_default(),
        started
    );
    let hash = &crate::rollout::revision::hash_text(&key)[..5];
    let mut tail = String::new();
    if let Some(revision) = &run.revision {
        tail.push_str(revision);
        tail.push('-');
    }
    tail.push_str(&run.name.to_ascii_lowercase());
    tail.push('-');
    tail.push_str(hash);
    let room = MAX_NAME.saturating_sub(tail.len() + 1);
    let of = of
        .get(..room.min(of.len()))
        .unwrap_or(of)
        .trim_end_matches(['-', '.']);
    format!("{of}-{tail}")
}

/// The record once `run` (as the object's status holds it now) is added to what was
/// recorded: each metric's measurements from both, one per due time (the newer copy wins),
/// oldest first; past [`MAX_RECORD_BYTES`] the oldest of the longest metric go first.
pub fn merge(recorded: Option<&AnalysisRunStatus>, run: &AnalysisRunStatus) -> AnalysisRunStatus {
    let mut out = run.clone();
    // A record of another attempt (same name, another start) is not this run's history.
    let recorded = recorded.filter(|r| r.started_at == run.started_at);
    for metric in &mut out.metrics {
        let mut all: Vec<Measurement> = recorded
            .and_then(|r| r.metrics.iter().find(|m| m.name == metric.name))
            .map(|m| m.measurements.clone())
            .unwrap_or_default();
        for m in &metric.measurements {
            match all.iter_mut().find(|a| a.due_at == m.due_at) {
                Some(a) => *a = m.clone(),
                None => all.push(m.clone()),
            }
        }
        all.sort_by_key(|m| m.due_at.0);
        metric.measurements = all;
    }
    bound(&mut out);
    out
}

fn size(m: &Measurement) -> usize {
    serde_json::to_vec(m).map_or(0, |v| v.len())
}

/// Drops the oldest measurements of the metric holding most until the record fits.
fn bound(run: &mut AnalysisRunStatus) {
    let mut total: usize = run
        .metrics
        .iter()
        .flat_map(|m| &m.measurements)
        .map(size)
        .sum();
    while total > MAX_RECORD_BYTES {
        let Some(longest) = run
            .metrics
            .iter_mut()
            .filter(|m| !m.measurements.is_empty())
            .max_by_key(|m| m.measurements.len())
        else {
            return;
        };
        let dropped = longest.measurements.remove(0);
        total = total.saturating_sub(size(&dropped));
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::{AnalysisVerdict, MeasurementOutcome, MetricStatus};

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + s).unwrap_or_default())
    }

    fn measurement(due: i64, message: &str) -> Measurement {
        Measurement {
            due_at: at(due),
            taken_at: at(due + 1),
            outcome: MeasurementOutcome::Successful,
            value: Some("0.01".into()),
            message: (!message.is_empty()).then(|| message.to_string()),
        }
    }

    fn run(started: i64, dues: &[i64]) -> AnalysisRunStatus {
        AnalysisRunStatus {
            name: "step-1".into(),
            revision: Some("abc".into()),
            started_at: Some(at(started)),
            verdict: AnalysisVerdict::Running,
            message: None,
            metrics: vec![MetricStatus {
                name: "errors".into(),
                count: dues.len() as u32,
                measurements: dues.iter().map(|d| measurement(*d, "")).collect(),
                ..Default::default()
            }],
        }
    }

    fn dues(r: &AnalysisRunStatus) -> Vec<i64> {
        r.metrics[0]
            .measurements
            .iter()
            .map(|m| m.due_at.0.as_second() - 1_800_000_000)
            .collect()
    }

    #[test]
    fn names_tell_object_revision_run_and_attempt_apart() {
        let first = run_name("web", &run(0, &[]));
        assert!(first.starts_with("web-abc-step-1-"), "{first}");
        assert_eq!(first, run_name("web", &run(0, &[])));
        assert_ne!(
            first,
            run_name("web", &run(60, &[])),
            "a retry is recorded apart"
        );
        let mut pre = run(0, &[]);
        pre.name = "prePromotion".into();
        assert!(
            run_name("web", &pre).contains("-prepromotion-"),
            "lowercase"
        );
        let long = run_name(&"w".repeat(300), &run(0, &[]));
        assert!(long.len() <= MAX_NAME, "{}", long.len());
        let mut flag = run(0, &[]);
        flag.revision = None;
        assert!(run_name("banner", &flag).starts_with("banner-step-1-"));
    }

    #[test]
    fn the_record_keeps_every_measurement_once_where_status_keeps_the_last_few() {
        // Status kept measurements 3..=12 (the last ten); the record had 0..=10.
        let recorded = run(0, &(0..=10).collect::<Vec<_>>());
        let now = run(0, &(3..=12).collect::<Vec<_>>());
        let merged = merge(Some(&recorded), &now);
        assert_eq!(dues(&merged), (0..=12).collect::<Vec<_>>());
        // Counts and verdicts are the status's.
        assert_eq!(merged.metrics[0].count, 10);
        // Nothing recorded yet: the status's measurements.
        assert_eq!(dues(&merge(None, &now)), (3..=12).collect::<Vec<_>>());
    }

    #[test]
    fn a_record_of_another_attempt_is_not_merged() {
        let old = run(0, &[0, 1, 2]);
        let retry = run(100, &[100]);
        assert_eq!(dues(&merge(Some(&old), &retry)), vec![100]);
    }

    #[test]
    fn a_record_stays_under_its_byte_bound_dropping_the_oldest_first() {
        let log = "x".repeat(2048);
        let mut big = run(0, &[]);
        big.metrics[0].measurements = (0..400).map(|d| measurement(d, &log)).collect();
        let merged = merge(None, &big);
        let total: usize = merged.metrics[0].measurements.iter().map(size).sum();
        assert!(total <= MAX_RECORD_BYTES, "{total}");
        let kept = dues(&merged);
        assert!(kept.len() > 200 && kept.len() < 400, "{}", kept.len());
        assert_eq!(kept.last(), Some(&399), "the newest stay");
        assert_eq!(kept.first(), Some(&(400 - kept.len() as i64)));
    }
}
