//! The verbs that move a Rollout — promote, pause, resume, abort, retry, undo — shared by
//! `kubectl cutover` and its dashboard, made with the caller's own credentials.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use super::plugin::PluginError;
use super::views::images_of;
use crate::api::{
    ANNOTATION_ABORT, ANNOTATION_PROMOTE, ANNOTATION_PROMOTE_FULL, ANNOTATION_RETRY,
    ANNOTATION_TEMPLATE, LABEL_REVISION, LABEL_ROLLOUT, Rollout, RolloutPhase,
};

/// A verb that changes a Rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Past the current pause or analysis step.
    Promote,
    /// Skip every remaining step.
    PromoteFull,
    /// Set spec.paused.
    Pause,
    /// Clear spec.paused.
    Resume,
    /// All traffic back to the stable revision.
    Abort,
    /// Start an aborted rollout over.
    Retry,
    /// Set the template back to the last promoted revision.
    Undo,
}

impl Action {
    /// Every action, in the order a person reads them.
    pub const ALL: [Action; 7] = [
        Action::Promote,
        Action::PromoteFull,
        Action::Pause,
        Action::Resume,
        Action::Abort,
        Action::Retry,
        Action::Undo,
    ];

    /// Its name in URLs and messages, e.g. `promote-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::PromoteFull => "promote-full",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::Retry => "retry",
            Action::Undo => "undo",
        }
    }

    /// The action named `name`, if any.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// Whether `action` applies to the Rollout as it is; `Err` says why not. Undo is decided
/// against its revisions in [`act`].
pub fn applicable(r: &Rollout, action: Action) -> Result<(), String> {
    let name = r.name_any();
    let status = r.status.clone().unwrap_or_default();
    let phase = status.phase;
    match action {
        Action::Promote | Action::PromoteFull => {
            if !matches!(phase, RolloutPhase::Paused | RolloutPhase::Progressing) {
                return Err(format!("rollout {name} is {phase:?}: nothing to promote"));
            }
        }
        Action::Pause => {}
        Action::Resume => {
            if !r.spec.paused.unwrap_or(false) {
                return Err(format!(
                    "rollout {name} is not paused by spec.paused; a step waiting for a person is passed with `promote`"
                ));
            }
        }
        Action::Abort => {
            if phase == RolloutPhase::Aborted || status.stable_revision == status.current_revision {
                return Err(format!(
                    "rollout {name} is {phase:?} with no revision in progress: nothing to abort"
                ));
            }
        }
        Action::Retry => {
            if phase != RolloutPhase::Aborted {
                return Err(format!(
                    "rollout {name} is {phase:?}: only an aborted rollout can be retried"
                ));
            }
        }
        Action::Undo => {}
    }
    Ok(())
}

/// Carries out `action` on Rollout `name` in `ns` as `client`'s user; returns what was done
/// in one line (`rollout web promoted`).
pub async fn act(
    client: &kube::Client,
    ns: &str,
    name: &str,
    action: Action,
) -> Result<String, PluginError> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let r = rollouts
        .get_opt(name)
        .await?
        .ok_or_else(|| PluginError::NotFound {
            kind: "rollout",
            name: name.to_string(),
            namespace: ns.to_string(),
        })?;
    applicable(&r, action).map_err(PluginError::NotApplicable)?;
    Ok(match action {
        Action::Promote => {
            annotate(&rollouts, name, ANNOTATION_PROMOTE).await?;
            format!("rollout {name} promoted")
        }
        Action::PromoteFull => {
            annotate(&rollouts, name, ANNOTATION_PROMOTE_FULL).await?;
            format!("rollout {name} promoted fully")
        }
        Action::Pause => {
            patch(&rollouts, name, json!({"spec": {"paused": true}})).await?;
            format!("rollout {name} paused")
        }
        Action::Resume => {
            patch(&rollouts, name, json!({"spec": {"paused": false}})).await?;
            format!("rollout {name} resumed")
        }
        Action::Abort => {
            annotate(&rollouts, name, ANNOTATION_ABORT).await?;
            format!("rollout {name} aborted")
        }
        Action::Retry => {
            annotate(&rollouts, name, ANNOTATION_RETRY).await?;
            format!("rollout {name} retried")
        }
        Action::Undo => undo_to(client, ns, &r, None).await?,
    })
}

/// Undo, to `to` or the last promoted revision; returns what was done in one line.
pub async fn undo_to(
    client: &kube::Client,
    ns: &str,
    r: &Rollout,
    to: Option<&str>,
) -> Result<String, PluginError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let revision = undo(r, &deployments, to).await?;
    Ok(format!(
        "rollout {} rolled back to revision {revision}",
        r.name_any()
    ))
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

pub(crate) async fn patch(
    api: &Api<Rollout>,
    name: &str,
    body: serde_json::Value,
) -> Result<(), PluginError> {
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
    fn without_stamps_undo_takes_the_newest_other_revision() {
        let revisions = [rev("c", None), rev("b", None), rev("a", None)];
        assert_eq!(undo_target(&revisions, Some("c")), Some(1));
        assert_eq!(undo_target(&revisions, Some("b")), Some(0));
    }

    fn rollout(status: serde_json::Value, paused: bool) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {"paused": paused, "strategy": {"canary": {}}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn each_verb_applies_only_where_it_means_something() {
        let at_gate = rollout(
            json!({"phase": "Paused", "stableRevision": "a", "currentRevision": "b"}),
            false,
        );
        let healthy = rollout(
            json!({"phase": "Healthy", "stableRevision": "a", "currentRevision": "a"}),
            false,
        );
        let aborted = rollout(
            json!({"phase": "Aborted", "stableRevision": "a", "currentRevision": "b"}),
            false,
        );
        let held = rollout(
            json!({"phase": "Paused", "stableRevision": "a", "currentRevision": "b"}),
            true,
        );
        let ok = |r: &Rollout, a| applicable(r, a).is_ok();
        assert!(ok(&at_gate, Action::Promote) && ok(&at_gate, Action::PromoteFull));
        assert!(ok(&at_gate, Action::Abort) && ok(&at_gate, Action::Pause));
        assert!(!ok(&at_gate, Action::Retry) && !ok(&at_gate, Action::Resume));
        assert!(!ok(&healthy, Action::Promote), "nothing to promote");
        assert!(!ok(&healthy, Action::Abort), "nothing in progress");
        assert!(ok(&aborted, Action::Retry) && !ok(&aborted, Action::Abort));
        assert!(ok(&held, Action::Resume));
        assert_eq!(
            applicable(&aborted, Action::Promote).unwrap_err(),
            "rollout web is Aborted: nothing to promote"
        );
        for r in [&at_gate, &healthy, &aborted, &held] {
            assert!(ok(r, Action::Undo), "undo is decided against the revisions");
        }
    }

    #[test]
    fn action_names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("promote-full"), Some(Action::PromoteFull));
        assert_eq!(Action::parse("delete"), None);
    }
}
