//! Writing `AnalysisRun` records: each analysis run that changed in a reconcile is written
//! beside its object with its whole measurement history, owned by what it judged so it is
//! garbage-collected with it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::Context;
use crate::{
    analysis::{
        history,
        job::{LABEL_OF, LABEL_RUN},
    },
    api::{AnalysisRun, AnalysisRunStatus, FIELD_MANAGER},
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
