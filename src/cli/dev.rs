//! `cutover dev`: the sim over HTTP with the CRDs installed, plus the operator, in one
//! process — a cluster to try cutover on with a real `kubectl`.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use tokio_util::sync::CancellationToken;

use crate::{
    api,
    controller::{self, Clock, Config},
    sim::{self, Sim, store::WriteOptions},
};

/// Options of `cutover dev`.
#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// Address the API server listens on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "cutover-dev.kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Metric script for the scripted Prometheus (format: docs/sim.md); without it, a
    /// built-in one answers every example's queries with healthy values.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Serve only the API server (and workload simulator); run operators separately.
    #[arg(long)]
    pub api_only: bool,
    /// Address of the operator's /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub metrics_addr: SocketAddr,
}

/// Why `cutover dev` stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The kubeconfig could not be written.
    #[error("cannot write {path}: {reason}")]
    Kubeconfig {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The metric script could not be read.
    #[error("cannot use {path}: {reason}")]
    Scenario {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A CRD could not be installed.
    #[error("cannot install CRD: {0}")]
    Crd(String),
    /// The operator stopped with an error.
    #[error(transparent)]
    Operator(#[from] controller::runner::RunError),
}

/// Installs the cutover CRDs into the sim.
pub fn install_crds(sim: &Sim) -> Result<(), DevError> {
    let store = sim.store();
    let crd_type = store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| DevError::Crd("the sim serves no CRDs".into()))?;
    for crd in api::crds() {
        let value = serde_json::to_value(&crd).map_err(|e| DevError::Crd(e.to_string()))?;
        store
            .create(
                &crd_type,
                "",
                value,
                &WriteOptions {
                    field_manager: Some("cutover".into()),
                    ..Default::default()
                },
            )
            .map_err(|e| DevError::Crd(e.to_string()))?;
    }
    Ok(())
}

/// The scripted Prometheus's rules without `--scenario`: every example's queries healthy.
pub const DEFAULT_METRICS: &str = include_str!("dev-metrics.yaml");

/// Runs the dev environment until `shutdown`.
pub async fn run(args: DevArgs, shutdown: CancellationToken) -> Result<(), DevError> {
    let sim = Sim::new(Clock::System);
    install_crds(&sim)?;
    let (path, text) = match &args.scenario {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| DevError::Scenario {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            (path.display().to_string(), text)
        }
        None => ("(built in)".to_string(), DEFAULT_METRICS.to_string()),
    };
    let script = sim::prometheus::MetricScript::parse(&text).map_err(|e| DevError::Scenario {
        path,
        reason: e.to_string(),
    })?;
    sim.prometheus().set_script(script);
    let workloads = sim.start_workloads(Default::default(), shutdown.clone());
    let (addr, server) = sim
        .serve(args.listen, shutdown.clone())
        .await
        .map_err(|e| DevError::Listen {
            addr: args.listen,
            reason: e.to_string(),
        })?;
    sim::write_kubeconfig(&args.kubeconfig, addr).map_err(|e| DevError::Kubeconfig {
        path: args.kubeconfig.display().to_string(),
        reason: e.to_string(),
    })?;
    let kubeconfig = args.kubeconfig.display().to_string();
    println!("cutover dev: API server on http://{addr}, kubeconfig {kubeconfig}");
    println!("  kubectl --kubeconfig {kubeconfig} apply --server-side -f examples/canary.yaml");
    println!("  kubectl --kubeconfig {kubeconfig} get cutover");
    println!("  Prometheus (scripted): http://{addr}/prometheus");
    println!("cutover dev ready");
    let operator = if args.api_only {
        None
    } else {
        let config = Config {
            kubeconfig: Some(args.kubeconfig.clone()),
            metrics_addr: args.metrics_addr,
            prometheus_url: Some(format!("http://{addr}/prometheus")),
            ..Config::default()
        };
        let token = shutdown.clone();
        Some(tokio::spawn(async move {
            controller::runner::run(config, token).await
        }))
    };
    shutdown.cancelled().await;
    let _ = server.await;
    let _ = workloads.await;
    if let Some(operator) = operator {
        match operator.await {
            Ok(result) => result?,
            Err(e) => tracing::error!(error = %e, "operator task failed"),
        }
    }
    Ok(())
}

/// Entry point of `cutover dev`.
pub fn main(args: DevArgs) -> ExitCode {
    let log = (
        crate::controller::config::LogFormat::Pretty,
        "info,kube_client::client::builder=off".to_string(),
    );
    super::run_until_signal(log, move |shutdown| run(args, shutdown))
}
