//! `kubectl cutover`: the binary installed (or linked) as `kubectl-cutover` drives
//! Rollouts day to day — list, watch, promote, pause, resume, abort, retry, undo, set image —
//! with kubectl's kubeconfig and namespace handling.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use super::views::{images_of, revision_rows, status_view, table};
use crate::api::health::Health;
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, ANNOTATION_RETRY,
    ANNOTATION_TEMPLATE, LABEL_REVISION, LABEL_ROLLOUT, MigrationJob, Rollout, RolloutPhase,
};

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
            let r = get(name).await?;
            let phase = phase_of(&r);
            if !matches!(phase, RolloutPhase::Paused | RolloutPhase::Progressing) {
                return Err(PluginError::NotApplicable(format!(
                    "rollout {name} is {phase:?}: nothing to promote"
                )));
            }
            let key = if *full {
                ANNOTATION_PROMOTE_FULL
            } else {
                ANNOTATION_PROMOTE
            };
            annotate(&rollouts, name, key).await?;
            println!(
                "rollout {name} promoted{}",
                if *full { " fully" } else { "" }
            );
        }
        PluginCommand::Pause { name } => {
            get(name).await?;
            patch(&rollouts, name, json!({"spec": {"paused": true}})).await?;
            println!("rollout {name} paused");
        }
        PluginCommand::Resume { name } => {
            let r = get(name).await?;
            if !r.spec.paused.unwrap_or(false) {
                return Err(PluginError::NotApplicable(format!(
                    "rollout {name} is not paused by spec.paused; a step waiting for a person is passed with `promote`"
                )));
            }
            patch(&rollouts, name, json!({"spec": {"paused": false}})).await?;
            println!("rollout {name} resumed");
        }
        PluginCommand::Abort { name } => {
            let r = get(name).await?;
            let phase = phase_of(&r);
            let status = r.status.clone().unwrap_or_default();
            if phase == RolloutPhase::Aborted || status.stable_revision == status.current_revision {
                return Err(PluginError::NotApplicable(format!(
                    "rollout {name} is {phase:?} with no revision in progress: nothing to abort"
                )));
            }
            annotate(&rollouts, name, ANNOTATION_ABORT).await?;
            println!("rollout {name} aborted");
        }
        PluginCommand::Retry { name } => {
            let r = get(name).await?;
            let phase = phase_of(&r);
            if phase != RolloutPhase::Aborted {
                return Err(PluginError::NotApplicable(format!(
                    "rollout {name} is {phase:?}: only an aborted rollout can be retried"
                )));
            }
            annotate(&rollouts, name, ANNOTATION_RETRY).await?;
            println!("rollout {name} retried");
        }
        PluginCommand::Undo { name, to_revision } => {
            let r = get(name).await?;
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let revision = undo(&r, &deployments, to_revision.as_deref()).await?;
            println!("rollout {name} rolled back to revision {revision}");
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

fn phase_of(r: &Rollout) -> RolloutPhase {
    r.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

async fn annotate(api: &Api<Rollout>, name: &str, key: &str) -> Result<(), PluginError> {
    // A new value each time: the controller acts on each value once.
    let value = jiff::Timestamp::now().as_millisecond().to_string();
    patch(
        api,
        name,
        json!({"metadata": {"annotations": {key: value}}}),
    )
    .await
}

/// Field manager of the plugin's writes, as kubectl names its own (`kubectl-edit`): the
/// deployment log names it as who started a release.
pub const FIELD_MANAGER: &str = "kubectl-cutover";

async fn patch(api: &Api<Rollout>, name: &str, body: serde_json::Value) -> Result<(), PluginError> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch(name, &params, &Patch::Merge(&body)).await?;
    Ok(())
}

/// Sets the template back to an earlier revision's, read from that revision's Deployment.
async fn undo(
    r: &Rollout,
    deployments: &Api<Deployment>,
    to: Option<&str>,
) -> Result<String, PluginError> {
    let name = r.name_any();
    if r.spec.template.is_none() {
        return Err(PluginError::NotApplicable(format!(
            "rollout {name} uses workloadRef: undo its Deployment instead"
        )));
    }
    let current = r.status.as_ref().and_then(|s| s.current_revision.clone());
    let mut owned = deployments
        .list(&ListParams::default().labels(&format!("{LABEL_ROLLOUT}={name}")))
        .await?
        .items;
    owned.sort_by_key(|d| std::cmp::Reverse(d.metadata.creation_timestamp.clone().map(|t| t.0)));
    let revision_of = |d: &Deployment| d.labels().get(LABEL_REVISION).cloned();
    let target = match to {
        Some(rev) => owned
            .into_iter()
            .find(|d| revision_of(d).as_deref() == Some(rev))
            .ok_or_else(|| {
                PluginError::NotApplicable(format!("rollout {name} has no revision {rev}"))
            })?,
        None => {
            let revisions: Vec<(Option<String>, Option<jiff::Timestamp>)> = owned
                .iter()
                .map(|d| (revision_of(d), promoted_at(d)))
                .collect();
            let pick = undo_target(&revisions, current.as_deref()).ok_or_else(|| {
                PluginError::NotApplicable(format!(
                    "rollout {name} has no earlier promoted revision; name one with --to-revision"
                ))
            })?;
            owned.swap_remove(pick)
        }
    };
    let revision = revision_of(&target).unwrap_or_default();
    if Some(&revision) == current.as_ref() {
        return Err(PluginError::NotApplicable(format!(
            "rollout {name} already runs revision {revision}"
        )));
    }
    // The template as the Rollout wrote it: the Deployment's own carries the apiserver's
    // defaults and would hash to a new revision.
    let written = target
        .annotations()
        .get(ANNOTATION_TEMPLATE)
        .and_then(|t| serde_json::from_str::<k8s_openapi::api::core::v1::PodTemplateSpec>(t).ok());
    let mut template = match written {
        Some(t) => t,
        None => target.spec.map(|s| s.template).unwrap_or_default(),
    };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(LABEL_REVISION);
        labels.remove(LABEL_ROLLOUT);
    }
    let api: Api<Rollout> = Api::namespaced(
        deployments.clone().into_client(),
        &r.namespace().unwrap_or_default(),
    );
    let images = images_of(&template);
    patch(&api, &name, json!({"spec": {"template": template}})).await?;
    Ok(format!("{revision} ({images})"))
}

/// When a revision's Deployment last started serving, as the operator stamped it.
fn promoted_at(d: &Deployment) -> Option<jiff::Timestamp> {
    d.labels()
        .get(crate::api::LABEL_PROMOTED_AT)
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
}

/// The revision `undo` goes back to, by index into `revisions` (revision, when it was last
/// promoted; newest Deployment first): the last promoted one other than `current`. Without
/// any stamp (Deployments from before stamps were kept), the newest other revision.
pub fn undo_target(
    revisions: &[(Option<String>, Option<jiff::Timestamp>)],
    current: Option<&str>,
) -> Option<usize> {
    let others = || {
        revisions
            .iter()
            .enumerate()
            .filter(|(_, (rev, _))| rev.as_deref() != current)
    };
    if revisions.iter().any(|(_, at)| at.is_some()) {
        others()
            .filter_map(|(i, (_, at))| at.map(|at| (i, at)))
            .max_by_key(|(_, at)| *at)
            .map(|(i, _)| i)
    } else {
        others().map(|(i, _)| i).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(s).unwrap())
    }

    fn rev(r: &str, t: Option<jiff::Timestamp>) -> (Option<String>, Option<jiff::Timestamp>) {
        (Some(r.to_string()), t)
    }

    #[test]
    fn undo_goes_to_the_last_promoted_revision_never_an_aborted_one() {
        // Newest Deployment first: 1.2.0 was aborted, 1.1.0 then 1.0.0 were promoted.
        let revisions = [rev("v12", None), rev("v11", at(20)), rev("v10", at(10))];
        assert_eq!(
            undo_target(&revisions, Some("v12")),
            Some(1),
            "back to 1.1.0"
        );
        assert_eq!(
            undo_target(&revisions, Some("v11")),
            Some(2),
            "again: 1.0.0, not the aborted 1.2.0"
        );
        assert_eq!(undo_target(&revisions, Some("v10")), Some(1));
        let only_aborted = [rev("v12", None), rev("v11", at(20))];
        assert_eq!(undo_target(&only_aborted, Some("v11")), None);
        // Re-promoted later, an older revision is the newer release.
        let repromoted = [rev("v12", at(5)), rev("v11", at(30))];
        assert_eq!(undo_target(&repromoted, Some("v12")), Some(1));
        assert_eq!(undo_target(&repromoted, Some("v11")), Some(0));
    }

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

    #[test]
    fn without_stamps_undo_takes_the_newest_other_revision() {
        let revisions = [rev("c", None), rev("b", None), rev("a", None)];
        assert_eq!(undo_target(&revisions, Some("c")), Some(1));
        assert_eq!(undo_target(&revisions, Some("b")), Some(0));
    }
}
