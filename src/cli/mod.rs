//! The command line: `cutover crd`, `run`, `dev`, `lint` and `simulate`.

pub mod actions;
pub mod convert;
pub mod crd;
pub mod dashboard;
pub mod dev;
pub mod lint;
pub mod plugin;
pub mod positions;
pub mod simulate;
pub mod views;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::controller::{self, Config, config::LogFormat};

/// cutover: progressive delivery, migrations and feature flags for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD with --dir).
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the operator against the cluster of the current kubeconfig.
    Run(Config),
    /// Run an embedded API server with the CRDs and the operator, for kubectl to talk to.
    Dev(dev::DevArgs),
    /// Check manifests against the CRD schemas and the controllers' rules.
    Lint {
        /// YAML files or directories (searched for *.yaml / *.yml); `-` reads stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run a scenario through the controllers on a virtual clock and check its expectations.
    Simulate(simulate::SimulateArgs),
    /// Convert another tool's manifests into cutover manifests.
    #[command(subcommand)]
    Convert(ConvertFrom),
    /// Print the ClusterRole the operator needs (the chart and config/rbac are made from it).
    Rbac {
        /// Leave out reading Secrets (no analysis credentials or addresses from Secrets).
        #[arg(long)]
        no_secrets: bool,
        /// Print only the rules list.
        #[arg(long)]
        rules_only: bool,
    },
}

/// Tools whose manifests convert.
#[derive(Debug, Subcommand)]
pub enum ConvertFrom {
    /// Argo Rollouts: Rollout, AnalysisTemplate and ClusterAnalysisTemplate; other documents
    /// pass through. What cannot be converted is named (exit status 1).
    Argo {
        /// YAML files or directories (searched for *.yaml / *.yml); `-` reads stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crd { dir } => crd::run(dir.as_deref()),
        Command::Lint { paths } => lint::run(&paths),
        Command::Convert(ConvertFrom::Argo { paths }) => convert::run(&paths),
        Command::Run(config) => run_operator(config),
        Command::Dev(args) => dev::main(args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Rbac {
            no_secrets,
            rules_only,
        } => {
            print!("{}", rbac_yaml(!no_secrets, rules_only));
            ExitCode::SUCCESS
        }
    }
}

fn run_operator(config: Config) -> ExitCode {
    let log = (config.log_format, config.log_level.clone());
    run_until_signal(log, move |shutdown| {
        controller::runner::run(config, shutdown)
    })
}

/// Sets up logging and the async runtime, runs `task` until it ends or SIGTERM / Ctrl-C
/// cancels it, and turns its error into one line on stderr and exit code 1.
pub fn run_until_signal<F, Fut, E>(log: (LogFormat, String), task: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    if let Err(e) = crate::telemetry::init_logging(log.0, &log.1) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        controller::runner::cancel_on_signals(shutdown.clone());
        match task(shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", controller::error::one_line(&e));
                ExitCode::FAILURE
            }
        }
    })
}

/// The operator's ClusterRole (or only its rules) as YAML.
pub fn rbac_yaml(secrets: bool, rules_only: bool) -> String {
    let rules = crate::controller::rbac::rules(secrets);
    if rules_only {
        return crate::yaml::to_string(&rules);
    }
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cutover", "labels": {"app.kubernetes.io/name": "cutover"}},
        "rules": rules,
    });
    format!(
        "# Generated by `cutover rbac`: the permissions the controllers use, and no more.\n{}",
        crate::yaml::to_string(&role)
    )
}
