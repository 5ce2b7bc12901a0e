//! What the Rollout controller reads before it plans, beyond its own caches' objects: the
//! Rollouts a Rollout requires, the MigrationJobs it names, its Deployments' progress, and
//! the ConfigMaps of `configRollout` (with the copies it writes for a revision).

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{
    config,
    plan::{MigrationObserved, RequiredObserved},
    reconcile::{Guarded, Reads},
};
use crate::{
    api::{
        ANNOTATION_MIGRATION_RETRY, ANNOTATION_ROLLBACK, FIELD_MANAGER, LABEL_REVISION,
        LABEL_ROLLOUT, MigrationJob, MigrationPhase, Rollout,
    },
    controller::{Context, Error},
};

/// A Rollout `req` names, as the watch cache has it: only Rollouts of the namespaces this
/// operator serves are seen.
pub(super) fn required(
    store: &kube::runtime::reflector::Store<Guarded>,
    req: &crate::api::Requirement,
    namespace: &str,
) -> Option<RequiredObserved> {
    let (ns, name) = req.target(namespace);
    let found = store.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))?;
    let rollout = found.0.as_ref().ok()?;
    let status = rollout.status.clone().unwrap_or_default();
    Some(RequiredObserved {
        phase: status.phase,
        stable_images: status.stable_images,
        stable_since: status.stable_since.map(|t| t.0),
    })
}

/// The MigrationJobs the Rollout names; a missing one is a problem of the spec.
pub(super) async fn observe_migrations(
    ctx: &Context,
    reads: &Reads,
    owner: &str,
    rollout: &Rollout,
    problems: &mut Vec<String>,
) -> Result<Vec<MigrationObserved>, Error> {
    let Some(gates) = &rollout.spec.migrations else {
        return Ok(Vec::new());
    };
    let ns = rollout.namespace().unwrap_or_default();
    let ns = ns.as_str();
    let mjs: Api<MigrationJob> = Api::namespaced(ctx.client.clone(), ns);
    let mut out = Vec::new();
    for (list, field) in [(&gates.before, "before"), (&gates.after, "after")] {
        for name in list {
            let Some(mj) = reads.migrations.get(&mjs, owner, ns, name).await? else {
                problems.push(format!(
                    "MigrationJob {name:?} (spec.migrations.{field}) does not exist in namespace {ns:?}"
                ));
                continue;
            };
            let status = mj.status.clone().unwrap_or_default();
            let revision = crate::migration::plan::spec_revision(&mj.spec);
            let current = status.observed_generation == mj.metadata.generation;
            out.push(MigrationObserved {
                name: name.clone(),
                succeeded: current
                    && status.succeeded_revision.as_deref() == Some(revision.as_str()),
                failed: current
                    && status.phase == MigrationPhase::Failed
                    && status.revision.as_deref() == Some(revision.as_str()),
                phase: status.phase,
                message: status.message.clone().unwrap_or_default(),
                handled_rollback: status.handled_rollback.clone(),
                requested_rollback: mj.annotations().get(ANNOTATION_ROLLBACK).cloned(),
                requested_retry: mj.annotations().get(ANNOTATION_MIGRATION_RETRY).cloned(),
            });
        }
    }
    Ok(out)
}

/// Why a Deployment cannot make progress, by its own conditions: pods refused (a quota, an
/// admission policy: `ReplicaFailure`) or Kubernetes' progress deadline passed.
pub(super) fn failure(d: &Deployment) -> Option<(String, String)> {
    let conditions = d.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find_map(|c| {
        let stuck = (c.type_ == "ReplicaFailure" && c.status == "True")
            || (c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded"));
        stuck.then(|| {
            let reason = if c.type_ == "ReplicaFailure" {
                "ReplicaFailure"
            } else {
                "ProgressDeadlineExceeded"
            };
            (reason.to_string(), c.message.clone().unwrap_or_default())
        })
    })
}

/// Pods of a revision's Deployment that are available, as far as its status can tell.
pub(super) fn available(d: &Deployment) -> i32 {
    let Some(status) = &d.status else { return 0 };
    let available = status.available_replicas.unwrap_or(0);
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        // The Deployment controller has not caught up with the last write, so the count is
        // of before it: a scale-down leaves at most the new size, a scale-up has added no
        // pod yet. Reading 0 instead made a canary step's weight 100% while the stable's
        // scale-down was unobserved.
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        return available.min(desired);
    }
    available
}

/// The ConfigMaps `template` reads, for `spec.configRollout`; a missing one is a problem.
pub(super) async fn read_config(
    ctx: &Context,
    reads: &Reads,
    owner: &str,
    ns: &str,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    problems: &mut Vec<String>,
) -> Result<Vec<ConfigMap>, Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = Vec::new();
    for name in config::references(template) {
        match reads.config_maps.get(&api, owner, ns, &name).await? {
            Some(cm) => found.push(cm),
            None => problems.push(format!(
                "ConfigMap {name:?} (read by spec.template, with spec.configRollout) does not \
                 exist in namespace {ns:?}"
            )),
        }
    }
    Ok(found)
}

/// Copies the ConfigMaps of `revision` as `<name>-<revision>`, owned by its Deployment so
/// that they go with it; a copy already as it should be is not written again.
#[allow(clippy::too_many_arguments)]
pub(super) async fn copy_config(
    ctx: &Context,
    reads: &Reads,
    owner: &str,
    ns: &str,
    rollout: &str,
    revision: &str,
    maps: &[ConfigMap],
    deployment: &Deployment,
) -> Result<(), Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let Some(owned_by) = super::reconcile::revision_owner(deployment) else {
        return Ok(());
    };
    for cm in maps {
        let source = cm.metadata.name.clone().unwrap_or_default();
        let copy = config::copy_name(&source, revision);
        let current = reads.config_maps.get(&api, owner, ns, &copy).await?;
        let same = current.as_ref().is_some_and(|c| {
            c.data == cm.data
                && c.binary_data == cm.binary_data
                && c.owner_references().iter().any(|o| o.uid == owned_by.uid)
        });
        if same {
            continue;
        }
        let desired = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": copy,
                "labels": {LABEL_ROLLOUT: rollout, LABEL_REVISION: revision},
                "annotations": {"cutover.dev/copy-of": source},
                "ownerReferences": [owned_by]},
            "data": cm.data.clone().unwrap_or_default(),
            "binaryData": cm.binary_data.clone().unwrap_or_default(),
        });
        let written = api
            .patch(
                &copy,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
        reads.config_maps.wrote(owner, &written);
    }
    Ok(())
}
