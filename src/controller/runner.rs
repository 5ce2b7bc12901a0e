//! `cutover run`: connect to the cluster, serve telemetry, run the controllers until
//! SIGTERM.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, client::ClientBuilder};
use tokio_util::sync::CancellationToken;

use super::{Clock, Config, Context, Metrics, error::one_line, leader, ratelimit};
use crate::telemetry::{self, Health};

/// How long the first contact with the API server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the operator could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The kubeconfig (or in-cluster config) could not be loaded.
    #[error("cannot load Kubernetes config: {0}")]
    Config(String),
    /// The API server did not answer.
    #[error("cannot reach the Kubernetes API at {url}: {reason}")]
    Unreachable {
        /// Server URL from the config.
        url: String,
        /// Why.
        reason: String,
    },
    /// This process lost its leader lease.
    #[error("{0}")]
    Leader(String),
    /// The cutover CRDs are not installed.
    #[error(
        "the cutover.dev/v1alpha1 CRDs are not installed: run `cutover crd | kubectl apply --server-side -f -`"
    )]
    CrdsMissing,
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        reason: String,
    },
    /// Logging could not be set up.
    #[error(transparent)]
    Logging(#[from] telemetry::LogInitError),
}

/// Loads the Kubernetes client configuration named by `config`.
pub async fn kube_config(config: &Config) -> Result<kube::Config, RunError> {
    let options = kube::config::KubeConfigOptions {
        context: config.context.clone(),
        ..Default::default()
    };
    let loaded = match &config.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::Config(one_line(&e)))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
        }
        None if config.context.is_some() => kube::Config::from_kubeconfig(&options).await,
        None => {
            return kube::Config::infer()
                .await
                .map_err(|e| RunError::Config(one_line(&e)));
        }
    };
    loaded.map_err(|e| RunError::Config(one_line(&e)))
}

/// Builds a rate-limited client and checks that the API server answers.
pub async fn connect(config: &Config) -> Result<kube::Client, RunError> {
    let kube_config = kube_config(config).await?;
    let url = kube_config.cluster_url.to_string();
    let builder =
        ClientBuilder::try_from(kube_config).map_err(|e| RunError::Config(one_line(&e)))?;
    let client = builder
        .with_layer(&ratelimit::layer(config.kube_qps, config.kube_burst))
        .build();
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(RunError::Unreachable {
            url,
            reason: one_line(&e),
        }),
        Err(_) => Err(RunError::Unreachable {
            url,
            reason: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// Whether the API server serves the cutover.dev/v1alpha1 kinds.
pub async fn crds_installed(client: &kube::Client) -> bool {
    match kube::discovery::group(client, crate::api::GROUP).await {
        Ok(group) => {
            let served: Vec<String> = group
                .recommended_resources()
                .into_iter()
                .map(|(r, _)| r.kind)
                .collect();
            ["Rollout", "MigrationJob", "FeatureFlag"]
                .iter()
                .all(|k| served.iter().any(|s| s == k))
        }
        Err(_) => false,
    }
}

/// The controllers compiled into this binary, each a future that runs until `shutdown`.
pub fn controllers(ctx: Arc<Context>, shutdown: CancellationToken) -> Vec<BoxFuture<'static, ()>> {
    vec![
        Box::pin(crate::rollout::watch::run(ctx.clone(), shutdown.clone())),
        Box::pin(crate::migration::reconcile::run(
            ctx.clone(),
            shutdown.clone(),
        )),
        Box::pin(crate::flag::reconcile::run(ctx, shutdown)),
    ]
}

/// Runs the operator until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let client = connect(&config).await?;
    // Our own token, so that stopping this operator never stops the caller's other tasks.
    let shutdown = shutdown.child_token();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (addr, server) = telemetry::serve(
        config.metrics_addr,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| RunError::Bind {
        addr: config.metrics_addr,
        reason: e.to_string(),
    })?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    if !crds_installed(&client).await {
        shutdown.cancel();
        let _ = server.await;
        return Err(RunError::CrdsMissing);
    }
    let namespaces = if config.namespaces.is_empty() {
        "*".to_string()
    } else {
        config.namespaces.join(",")
    };
    let election = config.leader_elect.then(|| {
        leader::Election::new(
            config
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        )
    });
    let leases: Api<Lease> = Api::namespaced(
        client.clone(),
        election
            .as_ref()
            .map_or("default", |e| e.namespace.as_str()),
    );
    let ctx = Arc::new(Context::new(client, config, Clock::System, metrics.clone()));
    // A standby is healthy and ready: it is waiting, which is its job.
    health.set_ready(true);
    let mut outcome = Ok(());
    if let Some(election) = &election {
        tracing::info!(identity = %election.identity, lease = %election.name, namespace = %election.namespace, "waiting to lead");
        if !leader::acquire(&leases, election, &ctx.clock, &shutdown).await {
            health.set_ready(false);
            shutdown.cancel();
            let _ = server.await;
            return Ok(());
        }
    }
    let reconciling = shutdown.child_token();
    let running = controllers(ctx.clone(), reconciling.clone());
    tracing::info!(controllers = running.len(), %namespaces, "operator started");
    metrics.leader.set(1);
    let any_running = !running.is_empty();
    let all = futures::future::join_all(running);
    let lease_kept = async {
        match &election {
            Some(e) => leader::keep(&leases, e, &ctx.clock, &shutdown).await,
            None => {
                shutdown.cancelled().await;
                Ok(())
            }
        }
    };
    tokio::select! {
        _ = all, if any_running => tracing::warn!("all controllers stopped"),
        kept = lease_kept => {
            if let Err(e) = kept {
                outcome = Err(RunError::Leader(e.to_string()));
            }
        }
    }
    // Stop reconciling before the lease is given up, so two leaders never overlap.
    reconciling.cancel();
    metrics.leader.set(0);
    if let (Some(e), Ok(())) = (&election, &outcome) {
        leader::release(&leases, e).await;
    }
    health.set_ready(false);
    shutdown.cancel();
    let _ = server.await;
    tracing::info!("operator stopped");
    outcome
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(error) => {
                        tracing::error!(%error, "cannot listen for SIGTERM");
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}
