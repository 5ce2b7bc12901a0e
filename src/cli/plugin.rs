//! `kubectl cutover`: the binary installed (or linked) as `kubectl-cutover` drives
//! Rollouts day to day — list, watch, promote, pause, resume, abort, retry, undo, set image —
//! with kubectl's kubeconfig and namespace handling.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use kube::{
    Api,
    api::ListParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use super::actions::{Action, act, patch, undo_to};
use super::views::{revision_rows, status_view, table};
use crate::api::health::Health;
use crate::api::{MigrationJob, Rollout};

/// kubectl cutover: drive cutover Rollouts.
#[derive(Debug, Parser)]
#[command(name = "kubectl cutover", version, about, long_about = None)]
pub struct PluginCli {
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List Rollouts with their phase, step and traffic.
    Get {
        /// One Rollout; all when absent.
        name: Option<String>,
        /// Rollouts of every namespace, with a NAMESPACE column.
        #[arg(short = 'A', long, conflicts_with = "name")]
        all_namespaces: bool,
    },
    /// Show a Rollout's steps, traffic, analysis, migrations and last decision.
    Status {
        /// Rollout name.
        name: String,
        /// Redraw in place as it changes.
        #[arg(long, short = 'w', conflicts_with = "wait")]
        watch: bool,
        /// Block until the rollout is done, printing each decision: exit 0 when Healthy, 1
        /// when Aborted, Degraded or invalid, 2 on timeout.
        #[arg(long)]
        wait: bool,
        /// With --wait: how long to wait (e.g. 90s, 10m); without it, for ever.
        #[arg(long, requires = "wait")]
        timeout: Option<crate::api::Duration>,
    },
    /// Print the deployment log: each release, when, how it ended, why, and who started it.
    History {
        /// Rollout name.
        name: String,
    },
    /// Go past the current pause or analysis step (with --full: skip all remaining steps).
    Promote {
        /// Rollout name.
        name: String,
        /// Skip every remaining step.
        #[arg(long)]
        full: bool,
    },
    /// Pause the Rollout where it is (spec.paused).
    Pause {
        /// Rollout name.
        name: String,
    },
    /// Resume a paused Rollout.
    Resume {
        /// Rollout name.
        name: String,
    },
    /// Abort: all traffic back to the stable revision.
    Abort {
        /// Rollout name.
        name: String,
    },
    /// Retry an aborted Rollout from its first step.
    Retry {
        /// Rollout name.
        name: String,
    },
    /// Roll back the template to an earlier revision (default: the one before the current).
    Undo {
        /// Rollout name.
        name: String,
        /// Revision hash to go back to.
        #[arg(long)]
        to_revision: Option<String>,
    },
    /// Serve a live web dashboard on 127.0.0.1, acting with your own credentials.
    Dashboard(super::dashboard::DashboardArgs),
    /// Change images of the template.
    Set {
        /// What to set.
        #[command(subcommand)]
        what: SetWhat,
    },
}

/// `set` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetWhat {
    /// Set container images: `kubectl cutover set image NAME CONTAINER=IMAGE...`.
    Image {
        /// Rollout name.
        name: String,
        /// `container=image` pairs.
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// A plugin command that cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be used.
    #[error("cannot load the kubeconfig: {0}")]
    Config(String),
    /// The named object does not exist.
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Namespace.
        namespace: String,
    },
    /// The verb does not apply to the Rollout as it is.
    #[error("{0}")]
    NotApplicable(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The dashboard could not serve.
    #[error("dashboard: {0}")]
    Serve(String),
}

/// Exit code of `status` for a rollout that needs a person: Aborted, Degraded or invalid.
pub const EXIT_STALLED: u8 = 1;
/// Exit code of `status --wait` when the timeout passed first.
pub const EXIT_TIMEOUT: u8 = 2;

/// Runs the plugin; errors become one line on stderr and exit code 1.
pub fn main(cli: PluginCli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", crate::controller::error::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn client(cli: &PluginCli) -> Result<(kube::Client, String), PluginError> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..Default::default()
    };
    let config = match &cli.kubeconfig {
        Some(path) => {
            // $KUBECONFIG may list several files; the first is the one read here.
            let first = path
                .to_string_lossy()
                .split(':')
                .next()
                .map(PathBuf::from)
                .unwrap_or_else(|| path.clone());
            let kc =
                Kubeconfig::read_from(&first).map_err(|e| PluginError::Config(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None => kube::Config::from_kubeconfig(&options).await,
    }
    .map_err(|e| PluginError::Config(e.to_string()))?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(|e| PluginError::Config(e.to_string()))?;
    Ok((client, namespace))
}

async fn run(cli: PluginCli) -> Result<u8, PluginError> {
    let (client, ns) = client(&cli).await?;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let get = async |name: &str| -> Result<Rollout, PluginError> {
        rollouts
            .get_opt(name)
            .await?
            .ok_or_else(|| PluginError::NotFound {
                kind: "rollout",
                name: name.to_string(),
                namespace: ns.clone(),
            })
    };
    match &cli.command {
        PluginCommand::Get {
            name,
            all_namespaces,
        } => {
            let items = match name {
                Some(n) => vec![get(n).await?],
                None if *all_namespaces => {
                    Api::<Rollout>::all(client.clone())
                        .list(&ListParams::default())
                        .await?
                        .items
                }
                None => rollouts.list(&ListParams::default()).await?.items,
            };
            print!("{}", table(&items, *all_namespaces));
        }
        PluginCommand::Status {
            name,
            watch,
            wait,
            timeout,
        } => {
            let mjs: Api<MigrationJob> = Api::namespaced(client.clone(), &ns);
            if *wait {
                get(name).await?;
                return wait_for(&rollouts, name, timeout.map(|t| t.as_std())).await;
            }
            loop {
                let r = get(name).await?;
                let mut migrations = Vec::new();
                if let Some(m) = &r.spec.migrations {
                    for n in m.before.iter().chain(&m.after) {
                        let phase = mjs
                            .get_opt(n)
                            .await?
                            .and_then(|mj| mj.status)
                            .map_or("not found".to_string(), |s| format!("{:?}", s.phase));
                        migrations.push((n.clone(), phase));
                    }
                }
                let revisions = revision_rows(&client, &ns, name).await?;
                let text = status_view(&r, &migrations, &revisions);
                if *watch {
                    // Clear the screen and draw again from the top.
                    print!("\x1b[2J\x1b[H{text}");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    print!("{text}");
                    return Ok(match health_of(&r) {
                        Health::Stalled { .. } => EXIT_STALLED,
                        _ => 0,
                    });
                }
            }
        }
        PluginCommand::History { name } => {
            print!("{}", super::views::history_view(&get(name).await?));
        }
        PluginCommand::Promote { name, full } => {
            let action = if *full {
                Action::PromoteFull
            } else {
                Action::Promote
            };
            println!("{}", act(&client, &ns, name, action).await?);
        }
        PluginCommand::Pause { name } => {
            println!("{}", act(&client, &ns, name, Action::Pause).await?)
        }
        PluginCommand::Resume { name } => {
            println!("{}", act(&client, &ns, name, Action::Resume).await?)
        }
        PluginCommand::Abort { name } => {
            println!("{}", act(&client, &ns, name, Action::Abort).await?)
        }
        PluginCommand::Retry { name } => {
            println!("{}", act(&client, &ns, name, Action::Retry).await?)
        }
        PluginCommand::Undo { name, to_revision } => {
            let r = get(name).await?;
            println!(
                "{}",
                undo_to(&client, &ns, &r, to_revision.as_deref()).await?
            );
        }
        PluginCommand::Dashboard(args) => {
            super::dashboard::serve(client.clone(), ns.clone(), args.clone()).await?;
        }
        PluginCommand::Set {
            what: SetWhat::Image { name, images },
        } => {
            let r = get(name).await?;
            let Some(template) = &r.spec.template else {
                return Err(PluginError::NotApplicable(format!(
                    "rollout {name} uses workloadRef: set the image on its Deployment"
                )));
            };
            let mut containers = template.spec.clone().unwrap_or_default().containers;
            for pair in images {
                let (container, image) = pair.split_once('=').ok_or_else(|| {
                    PluginError::Usage(format!("{pair:?} is not CONTAINER=IMAGE"))
                })?;
                let c = containers
                    .iter_mut()
                    .find(|c| c.name == container)
                    .ok_or_else(|| {
                        PluginError::Usage(format!("rollout {name} has no container {container:?}"))
                    })?;
                c.image = Some(image.to_string());
            }
            patch(
                &rollouts,
                name,
                json!({"spec": {"template": {"spec": {"containers": containers}}}}),
            )
            .await?;
            println!("rollout {name} image updated");
        }
    }
    Ok(0)
}

/// A Rollout's health as its status records it; under way while the operator has not yet
/// acted on its current spec or on a request (`retry` right before `status --wait`).
fn health_of(r: &Rollout) -> Health {
    if crate::rollout::plan::awaits_operator(r) {
        return Health::Reconciling {
            reason: "Pending",
            message: "waiting for the operator to act on the current spec and requests".into(),
        };
    }
    crate::api::health::rollout(&r.status.clone().unwrap_or_default())
}

/// One line for a decision, printed when it differs from the previous one.
fn decision_line(r: &Rollout) -> String {
    let status = r.status.clone().unwrap_or_default();
    let step = status
        .current_step_index
        .map(|i| format!(" step {i}"))
        .unwrap_or_default();
    let weight = status
        .canary_weight
        .filter(|w| *w > 0)
        .map(|w| format!(" weight {w}%"))
        .unwrap_or_default();
    let message = status.message.map(|m| format!(": {m}")).unwrap_or_default();
    format!("{:?}{step}{weight}{message}", status.phase)
}

/// `status --wait`: follows the Rollout with a watch until it is done or stalled, or the
/// timeout passes.
async fn wait_for(
    rollouts: &Api<Rollout>,
    name: &str,
    timeout: Option<Duration>,
) -> Result<u8, PluginError> {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(rollouts.clone(), config).applied_objects().boxed();
    let mut last = String::new();
    let follow = async {
        while let Some(event) = stream.next().await {
            let r = match event {
                Ok(r) => r,
                // The watcher retries on its own; a lost connection is not the rollout's verdict.
                Err(error) => {
                    tracing::debug!(%error, "watch interrupted");
                    continue;
                }
            };
            let line = decision_line(&r);
            if line != last {
                println!("{} {line}", jiff::Timestamp::now().strftime("%H:%M:%S"));
                last = line;
            }
            match health_of(&r) {
                Health::Ready { .. } => {
                    println!("rollout {name} is healthy");
                    return Ok(0);
                }
                Health::Stalled { reason, message } => {
                    println!("rollout {name} needs a person: {reason}: {message}");
                    return Ok(EXIT_STALLED);
                }
                Health::Reconciling { .. } => {}
            }
        }
        Err(PluginError::NotApplicable(format!(
            "the watch of rollout {name} ended"
        )))
    };
    match timeout {
        None => follow.await,
        Some(limit) => match tokio::time::timeout(limit, follow).await {
            Ok(result) => result,
            Err(_) => {
                println!(
                    "rollout {name} is not done after {}",
                    crate::api::Duration::from(limit)
                );
                Ok(EXIT_TIMEOUT)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ANNOTATION_RETRY;

    #[test]
    fn an_aborted_rollout_with_a_retry_not_yet_taken_is_under_way() {
        let mut r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "generation": 2},
            "spec": {"strategy": {"canary": {}}},
            "status": {"observedGeneration": 2, "phase": "Aborted"}
        }))
        .unwrap();
        assert!(matches!(health_of(&r), Health::Stalled { .. }));
        r.metadata.annotations = Some([(ANNOTATION_RETRY.to_string(), "1".to_string())].into());
        assert!(matches!(health_of(&r), Health::Reconciling { .. }));
        r.status.as_mut().unwrap().handled_requests =
            [(ANNOTATION_RETRY.to_string(), "1".to_string())].into();
        assert!(
            matches!(health_of(&r), Health::Stalled { .. }),
            "taken, still aborted"
        );
    }
}
