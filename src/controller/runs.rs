//! Writing `AnalysisRun` records: each analysis run that changed in a reconcile is written
//! beside its object with its whole measurement history, owned by what it judged so it is
//! garbage-collected with it.

use k8s_openapi::{api::batch::v1::Job, apimachinery::pkg::apis::meta::v1::OwnerReference};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use serde_json::json;

use super::Context;
use crate::{
    analysis::{
        history,
        job::{self, LABEL_OF, LABEL_RUN},
    },
    api::{AnalysisRun, AnalysisRunStatus, AnalysisSpec, AnalysisVerdict, FIELD_MANAGER},
};

/// The object whose runs are recorded.
pub struct Subject<'a> {
    /// `Rollout` or `FeatureFlag`.
    pub kind: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
}

/// Writes the records of the runs in `after` that differ from `before`; `owner` gives the
/// owner of each run's record (the revision it judged, else the object). A record that
/// cannot be written is logged: the decision state is the object's status, and the next
/// change writes the record again with what the status still holds.
pub async fn record(
    ctx: &Context,
    subject: &Subject<'_>,
    before: &[AnalysisRunStatus],
    after: &[AnalysisRunStatus],
    owner: impl Fn(&AnalysisRunStatus) -> Option<OwnerReference>,
) {
    for run in after.iter().filter(|r| !before.contains(r)) {
        let Some(owner) = owner(run) else { continue };
        if let Err(e) = record_one(ctx, subject, run, &owner).await {
            tracing::warn!(object = %subject.name, namespace = %subject.namespace, run = %run.name, error = %e, "analysis run not recorded");
        }
    }
}

async fn record_one(
    ctx: &Context,
    subject: &Subject<'_>,
    run: &AnalysisRunStatus,
    owner: &OwnerReference,
) -> Result<(), kube::Error> {
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), subject.namespace);
    let name = history::run_name(subject.name, run);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let existing = api.get_opt(&name).await?;
    if existing.is_none() {
        let mut labels = json!({LABEL_RUN: run.name});
        if subject.name.len() <= 63 {
            labels[LABEL_OF] = json!(subject.name);
        }
        let object = json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
            "spec": {"of": {"kind": subject.kind, "name": subject.name}, "run": run.name,
                "revision": run.revision},
        });
        api.patch(&name, &params, &Patch::Apply(&object)).await?;
    }
    let record = history::merge(existing.as_ref().and_then(|e| e.status.as_ref()), run);
    let status =
        json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "AnalysisRun", "status": record});
    api.patch_status(&name, &params, &Patch::Apply(&status))
        .await?;
    Ok(())
}

/// Names of the runs measuring in `before` that `after` ended or dropped.
pub fn ended<'a>(before: &'a [AnalysisRunStatus], after: &[AnalysisRunStatus]) -> Vec<&'a str> {
    before
        .iter()
        .filter(|b| b.verdict == AnalysisVerdict::Running)
        .filter(|b| {
            !after.iter().any(|a| {
                a.name == b.name
                    && a.revision == b.revision
                    && a.verdict == AnalysisVerdict::Running
            })
        })
        .map(|b| b.name.as_str())
        .collect()
}

/// Stops the job metrics' Jobs still running for runs that ended in this reconcile: a
/// smoke test of a canary that was aborted or promoted decides nothing any more, and would
/// go on sending it requests until its deadline. `analyses` are the object's (templates
/// resolved): without a job metric among them there is nothing to look for.
pub async fn stop_jobs<'a>(
    ctx: &Context,
    subject: &Subject<'_>,
    analyses: impl IntoIterator<Item = &'a AnalysisSpec>,
    before: &[AnalysisRunStatus],
    after: &[AnalysisRunStatus],
) {
    let has_jobs = analyses
        .into_iter()
        .any(|a| a.metrics.iter().any(|m| m.job.is_some()));
    // Jobs are found by the object's label, which a name over 63 characters cannot be:
    // theirs end at their deadline.
    if !has_jobs || subject.name.len() > 63 {
        return;
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), subject.namespace);
    for run in ended(before, after) {
        let selector = format!("{LABEL_OF}={},{LABEL_RUN}={run}", subject.name);
        let jobs = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(e) => {
                tracing::warn!(object = %subject.name, namespace = %subject.namespace, run, error = %e, "analysis Jobs not listed");
                continue;
            }
        };
        for j in jobs.iter().filter(|j| job::state(j).is_none()) {
            match api.delete(&j.name_any(), &DeleteParams::background()).await {
                Ok(_) => {
                    tracing::info!(job = %j.name_any(), namespace = %subject.namespace, run, "analysis Job stopped: its run ended")
                }
                Err(e) => {
                    tracing::warn!(job = %j.name_any(), namespace = %subject.namespace, run, error = %e, "analysis Job not stopped")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, revision: &str, verdict: AnalysisVerdict) -> AnalysisRunStatus {
        AnalysisRunStatus {
            name: name.into(),
            revision: Some(revision.into()),
            verdict,
            ..Default::default()
        }
    }

    #[test]
    fn a_run_ends_when_it_stops_measuring_or_is_dropped() {
        use AnalysisVerdict::*;
        let before = [
            run("step-1", "a", Running),
            run("background", "a", Running),
            run("step-3", "a", Running),
            run("old", "a", Successful),
        ];
        let after = [
            run("step-1", "a", Failed),
            run("background", "a", Running),
            run("old", "a", Successful),
        ];
        assert_eq!(ended(&before, &after), ["step-1", "step-3"]);
        // The same run name for another revision is another run.
        assert_eq!(
            ended(
                &[run("step-1", "a", Running)],
                &[run("step-1", "b", Running)]
            ),
            ["step-1"]
        );
        assert!(ended(&before, &before).is_empty(), "nothing changed");
    }
}
