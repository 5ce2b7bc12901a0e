//! Prometheus metrics of the operator: reconcile counts, durations and errors per
//! controller, with bounded label sets (never an object name).

use std::sync::Arc;

use super::error::ErrorCategory;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Controller name (`rollout`, `migrationjob`, `featureflag`).
    pub controller: &'static str,
    /// `success` or `error`.
    pub result: &'static str,
}

/// Labels of error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller name.
    pub controller: &'static str,
    /// Error category.
    pub category: &'static str,
}

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Controller name.
    pub controller: &'static str,
}

/// Labels of cache read counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// Kind read (`Deployment`, `Service`, ...).
    pub kind: &'static str,
    /// `cache`, or `api` when the cache had not seen the operator's own last write.
    pub source: &'static str,
}

/// Labels of the build info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Version of the binary.
    pub version: &'static str,
}

/// All metrics the operator exports, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles finished, by controller and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile errors, by controller and category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds, by controller.
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// 1 while this process may act (leader or no election).
    pub leader: Gauge,
    /// Reads of watched kinds, by kind and where they were answered from.
    pub cache_reads: Family<CacheLabels, Counter>,
    /// Each Rollout's info, weight and step gauges, read at scrape time.
    pub rollouts: super::rollout_metrics::RolloutGauges,
    /// Analysis runs ended, by Rollout and verdict.
    pub verdicts: super::rollout_metrics::VerdictCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cutover");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
            });
        let leader = Gauge::default();
        let cache_reads = Family::<CacheLabels, Counter>::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("reconciles", "Reconciles finished", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconcile errors by category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        registry.register("leader", "1 while this process reconciles", leader.clone());
        registry.register(
            "cache_reads",
            "Reads of watched kinds, from the watch cache or the API server",
            cache_reads.clone(),
        );
        registry.register("build_info", "Version of the running binary", build);
        let rollouts = super::rollout_metrics::RolloutGauges::default();
        registry.register_collector(Box::new(rollouts.clone()));
        let verdicts = super::rollout_metrics::VerdictCounters::default();
        registry.register(
            "analysis_verdicts",
            "Analysis runs ended, by Rollout and verdict",
            verdicts.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            reconcile_duration,
            leader,
            cache_reads,
            rollouts,
            verdicts,
        }
    }

    /// Shows `controller`'s reconcile and error counters at zero from its start, so that a
    /// rate or an alert on them has a series before the first error.
    pub fn start(&self, controller: &'static str) {
        // Creating the series is the point; the read guard each call returns is let go.
        for result in ["success", "error"] {
            let _ = self
                .reconciles
                .get_or_create(&ReconcileLabels { controller, result });
        }
        for category in ErrorCategory::ALL {
            let _ = self.errors.get_or_create(&ErrorLabels {
                controller,
                category: category.as_str(),
            });
        }
    }

    /// Records one finished reconcile.
    pub fn observe(&self, controller: &'static str, seconds: f64, error: Option<&'static str>) {
        let result = if error.is_some() { "error" } else { "success" };
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(seconds);
        if let Some(category) = error {
            self.errors
                .get_or_create(&ErrorLabels {
                    controller,
                    category,
                })
                .inc();
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Shared handle to the metrics.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_controller_shows_its_counters_at_zero() {
        let m = Metrics::new();
        assert!(!m.render().contains("cutover_reconcile_errors_total{"));
        m.start("rollout");
        let text = m.render();
        for category in [
            "InvalidSpec",
            "Conflict",
            "Transient",
            "NotFound",
            "Internal",
        ] {
            let line = format!(
                "cutover_reconcile_errors_total{{controller=\"rollout\",category=\"{category}\"}} 0"
            );
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(
            text.contains(r#"cutover_reconciles_total{controller="rollout",result="error"} 0"#)
        );
    }

    #[test]
    fn renders_reconcile_counters_and_histograms_per_controller() {
        let m = Metrics::new();
        m.observe("rollout", 0.002, None);
        m.observe("rollout", 0.004, Some("Conflict"));
        let text = m.render();
        assert!(
            text.contains(r#"cutover_reconciles_total{controller="rollout",result="success"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cutover_reconciles_total{controller="rollout",result="error"} 1"#)
        );
        assert!(text.contains(
            r#"cutover_reconcile_errors_total{controller="rollout",category="Conflict"} 1"#
        ));
        assert!(
            text.contains(r#"cutover_reconcile_duration_seconds_count{controller="rollout"} 2"#)
        );
        assert!(text.contains(&format!(
            r#"cutover_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )));
    }
}
