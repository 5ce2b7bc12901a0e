//! Per-Rollout metrics, as Argo Rollouts users chart them: each Rollout's strategy and
//! phase, canary weight and step, read from the watch cache at each scrape (so a deleted
//! Rollout's series go with it), and analysis verdicts counted as runs end. Labels are
//! bounded to namespace and name.

use std::sync::{Arc, RwLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
};

use crate::api::{AnalysisRunStatus, AnalysisVerdict, Rollout};

/// A Rollout's state as its gauges show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutSample {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Canary`, `BlueGreen`, `Rolling`, or empty while invalid.
    pub strategy: String,
    /// Phase.
    pub phase: String,
    /// Canary weight in percent (0 when none).
    pub weight: i64,
    /// Index of the current step, -1 when no step runs.
    pub step: i64,
}

impl RolloutSample {
    /// The sample of one Rollout as its status records it.
    pub fn of(rollout: &Rollout) -> Self {
        let status = rollout.status.clone().unwrap_or_default();
        Self {
            namespace: rollout.metadata.namespace.clone().unwrap_or_default(),
            name: rollout.metadata.name.clone().unwrap_or_default(),
            strategy: status
                .strategy
                .map(|s| format!("{s:?}"))
                .unwrap_or_default(),
            phase: format!("{:?}", status.phase),
            weight: i64::from(status.canary_weight.unwrap_or(0)),
            step: status.current_step_index.map_or(-1, i64::from),
        }
    }
}

/// Labels of a Rollout's info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    namespace: String,
    name: String,
    strategy: String,
    phase: String,
}

/// Labels naming a Rollout.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Labels of the analysis verdict counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// Namespace.
    pub namespace: String,
    /// Name of the Rollout.
    pub name: String,
    /// `Successful`, `Failed`, `Inconclusive` or `Error`.
    pub verdict: &'static str,
}

type Source = Arc<dyn Fn() -> Vec<RolloutSample> + Send + Sync>;

/// The gauges of every Rollout the operator watches, read at scrape time.
#[derive(Clone, Default)]
pub struct RolloutGauges {
    source: Arc<RwLock<Option<Source>>>,
}

impl std::fmt::Debug for RolloutGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutGauges").finish_non_exhaustive()
    }
}

impl RolloutGauges {
    /// Reads the Rollouts from `source` (the Rollout controller's cache) from now on.
    pub fn read_from(&self, source: impl Fn() -> Vec<RolloutSample> + Send + Sync + 'static) {
        if let Ok(mut slot) = self.source.write() {
            *slot = Some(Arc::new(source));
        }
    }

    fn samples(&self) -> Vec<RolloutSample> {
        let source = self.source.read().ok().and_then(|s| s.clone());
        source.map(|read| read()).unwrap_or_default()
    }
}

impl Collector for RolloutGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = Family::<InfoLabels, Gauge>::default();
        let weight = Family::<RolloutLabels, Gauge>::default();
        let step = Family::<RolloutLabels, Gauge>::default();
        for s in self.samples() {
            let id = RolloutLabels {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
            };
            info.get_or_create(&InfoLabels {
                namespace: s.namespace,
                name: s.name,
                strategy: s.strategy,
                phase: s.phase,
            })
            .set(1);
            weight.get_or_create(&id).set(s.weight);
            step.get_or_create(&id).set(s.step);
        }
        let families = [
            (
                "rollout_info",
                "1 for each Rollout, with its strategy and phase",
                &info as &dyn EncodeMetric,
            ),
            (
                "rollout_canary_weight",
                "The canary's share of traffic in percent",
                &weight,
            ),
            (
                "rollout_step",
                "Index of the step being run, -1 when none",
                &step,
            ),
        ];
        for (name, help, family) in families {
            let metric = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(metric)?;
        }
        Ok(())
    }
}

/// Verdicts of runs that ended between `before` and `after` (a run ends when its verdict
/// leaves Running), so each run is counted once.
pub fn ended_runs(
    before: &[AnalysisRunStatus],
    after: &[AnalysisRunStatus],
) -> Vec<AnalysisVerdict> {
    after
        .iter()
        .filter(|run| run.verdict != AnalysisVerdict::Running)
        .filter(|run| {
            before
                .iter()
                .find(|b| b.name == run.name)
                .is_none_or(|b| b.verdict == AnalysisVerdict::Running)
        })
        .map(|run| run.verdict)
        .collect()
}

/// The name a verdict is counted under.
pub fn verdict_label(verdict: AnalysisVerdict) -> &'static str {
    match verdict {
        AnalysisVerdict::Running => "Running",
        AnalysisVerdict::Successful => "Successful",
        AnalysisVerdict::Inconclusive => "Inconclusive",
        AnalysisVerdict::Error => "Error",
        AnalysisVerdict::Failed => "Failed",
    }
}

/// Counts analysis verdicts per Rollout.
pub type VerdictCounters = Family<VerdictLabels, Counter>;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, verdict: AnalysisVerdict) -> AnalysisRunStatus {
        AnalysisRunStatus {
            name: name.into(),
            verdict,
            ..Default::default()
        }
    }

    #[test]
    fn a_run_is_counted_once_as_it_ends() {
        use AnalysisVerdict::*;
        assert_eq!(ended_runs(&[], &[run("a", Running)]), vec![]);
        assert_eq!(
            ended_runs(&[run("a", Running)], &[run("a", Failed)]),
            vec![Failed]
        );
        assert_eq!(
            ended_runs(&[run("a", Failed)], &[run("a", Failed)]),
            vec![],
            "already counted"
        );
        assert_eq!(
            ended_runs(&[], &[run("a", Successful), run("b", Running)]),
            vec![Successful],
            "started and ended within one decision"
        );
        assert_eq!(
            ended_runs(&[run("a", Failed)], &[run("a", Running)]),
            vec![],
            "retried: running again"
        );
    }

    #[test]
    fn gauges_follow_the_source_at_each_scrape() {
        let gauges = RolloutGauges::default();
        let mut registry = prometheus_client::registry::Registry::with_prefix("cutover");
        registry.register_collector(Box::new(gauges.clone()));
        let render = |r: &prometheus_client::registry::Registry| {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, r).unwrap();
            out
        };
        assert!(!render(&registry).contains("cutover_rollout_info{"));
        let sample = RolloutSample {
            namespace: "shop".into(),
            name: "web".into(),
            strategy: "Canary".into(),
            phase: "Paused".into(),
            weight: 20,
            step: 1,
        };
        gauges.read_from(move || vec![sample.clone()]);
        let text = render(&registry);
        for line in [
            r#"cutover_rollout_info{namespace="shop",name="web",strategy="Canary",phase="Paused"} 1"#,
            r#"cutover_rollout_canary_weight{namespace="shop",name="web"} 20"#,
            r#"cutover_rollout_step{namespace="shop",name="web"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        gauges.read_from(Vec::new);
        assert!(
            !render(&registry).contains("cutover_rollout_info{"),
            "a deleted Rollout's series go"
        );
    }
}
