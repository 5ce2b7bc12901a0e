//! What every reconcile gets: the client, configuration, clock, metrics, the Events'
//! reporting identity and per-object backoff.

use std::sync::Arc;

use super::{Backoff, Clock, Config, Metrics};

/// Name under which the operator reports Events.
pub const REPORTER: &str = "cutover";

/// Shared state of all controllers in one process.
pub struct Context {
    /// Kubernetes client (rate limited).
    pub client: kube::Client,
    /// Operator configuration.
    pub config: Config,
    /// Source of `now` for plans.
    pub clock: Clock,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    /// `reportingInstance` of the Events this process publishes (its pod, or the controller).
    pub reporting_instance: String,
    /// Per-object error backoff.
    pub backoff: Backoff,
    /// How analysis reaches Prometheus.
    pub prometheus: Arc<dyn crate::analysis::prometheus::Transport>,
    /// The hosts analysis and webhooks may reach, from the configuration.
    pub egress: super::egress::Allowlist,
    /// Webhook sender, started on first use (it needs the runtime).
    notifier: std::sync::OnceLock<crate::notify::Notifier>,
    /// Client of web metrics, made on first use (it loads the system's roots).
    web: std::sync::OnceLock<crate::analysis::web::WebClient>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: kube::Client, config: Config, clock: Clock, metrics: Arc<Metrics>) -> Self {
        let reporting_instance = std::env::var("POD_NAME")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| REPORTER.into());
        Self {
            client,
            egress: config.egress(),
            config,
            clock,
            metrics,
            reporting_instance,
            backoff: Backoff::default(),
            prometheus: Arc::new(crate::analysis::prometheus::HttpTransport::new()),
            notifier: std::sync::OnceLock::new(),
            web: std::sync::OnceLock::new(),
        }
    }

    /// The client of web metrics.
    pub fn web(&self) -> &crate::analysis::web::WebClient {
        self.web.get_or_init(crate::analysis::web::WebClient::new)
    }

    /// The webhook sender.
    pub fn notifier(&self) -> &crate::notify::Notifier {
        self.notifier.get_or_init(crate::notify::Notifier::start)
    }

    /// The same context with analysis sent through `transport` (the sim's in-process one).
    pub fn with_prometheus(
        mut self,
        transport: Arc<dyn crate::analysis::prometheus::Transport>,
    ) -> Self {
        self.prometheus = transport;
        self
    }
}
