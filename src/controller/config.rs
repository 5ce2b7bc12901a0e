//! Operator configuration, from command-line flags with environment fallbacks.

use std::{net::SocketAddr, path::PathBuf};

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Configuration of `cutover run`.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Namespaces to watch (comma-separated or repeated); all namespaces when empty.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "CUTOVER_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Prometheus used by metrics that name no address.
    #[arg(long, env = "CUTOVER_PROMETHEUS_URL", value_parser = parse_http_url)]
    pub prometheus_url: Option<String>,
    /// Hosts Rollouts may name for metric providers and webhooks, besides the
    /// --prometheus-url host (always allowed): host names, `*.domain` or `*`
    /// (comma-separated or repeated).
    #[arg(
        long = "allowed-hosts",
        env = "CUTOVER_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_parser = super::egress::parse_entry
    )]
    pub allowed_hosts: Vec<String>,
    /// Address serving /metrics, /healthz and /readyz (loopback unless told otherwise; the
    /// chart and the kustomize config listen on every address for the scraper).
    #[arg(long, env = "CUTOVER_METRICS_ADDR", default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "CUTOVER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `cutover=debug,kube=info`.
    #[arg(
        long,
        env = "CUTOVER_LOG",
        default_value = "info,kube_client::client::builder=off"
    )]
    pub log_level: String,
    /// Sustained API requests per second the operator may send.
    #[arg(long, env = "CUTOVER_KUBE_QPS", default_value_t = 100.0, value_parser = parse_positive_f64)]
    pub kube_qps: f64,
    /// API requests that may be sent at once above the sustained rate.
    #[arg(long, env = "CUTOVER_KUBE_BURST", default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_burst: u32,
    /// Objects reconciled at once per controller.
    #[arg(long, env = "CUTOVER_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Kubeconfig file; default `$KUBECONFIG`, `~/.kube/config`, or the in-cluster account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use instead of the current one.
    #[arg(long)]
    pub context: Option<String>,
    /// Elect a leader among replicas with a Lease; only the leader reconciles.
    #[arg(long, env = "CUTOVER_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            prometheus_url: None,
            allowed_hosts: Vec::new(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_format: LogFormat::Pretty,
            log_level: "info,kube_client::client::builder=off".into(),
            kube_qps: 100.0,
            kube_burst: 250,
            concurrency: 16,
            kubeconfig: None,
            leader_elect: false,
            leader_election_namespace: None,
            context: None,
        }
    }
}

impl Config {
    /// The hosts analysis and webhooks may reach.
    pub fn egress(&self) -> super::egress::Allowlist {
        super::egress::Allowlist::new(
            self.allowed_hosts.iter().map(String::as_str),
            self.prometheus_url.as_deref(),
        )
    }
}

fn parse_http_url(s: &str) -> Result<String, String> {
    if (s.starts_with("http://") || s.starts_with("https://")) && !s.contains(char::is_whitespace) {
        Ok(s.trim_end_matches('/').to_string())
    } else {
        Err(format!("{s:?} is not an http:// or https:// URL"))
    }
}

fn parse_positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn defaults_and_flags() {
        let c = Cli::try_parse_from(["x"]).unwrap().config;
        assert!(c.namespaces.is_empty());
        assert_eq!((c.kube_qps, c.kube_burst, c.concurrency), (100.0, 250, 16));
        // A bare `cutover run` on a laptop does not serve its metrics to the network.
        assert_eq!(c.metrics_addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        let c = Cli::try_parse_from([
            "x",
            "-n",
            "a,b",
            "--prometheus-url",
            "http://prom:9090/",
            "--log-format",
            "json",
        ])
        .unwrap()
        .config;
        assert_eq!(c.namespaces, vec!["a", "b"]);
        assert_eq!(c.prometheus_url.as_deref(), Some("http://prom:9090"));
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Cli::try_parse_from(["x", "--prometheus-url", "prom:9090"]).is_err());
        assert!(Cli::try_parse_from(["x", "--kube-qps", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--concurrency", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--metrics-addr", "nowhere"]).is_err());
    }
}
