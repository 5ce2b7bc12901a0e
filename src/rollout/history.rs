//! The deployment log: each release a Rollout makes, when it started and ended, how, why,
//! and who changed the template — kept in `status.history`, the last `MAX_HISTORY`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

use super::record::{Ctx, ts};
use crate::api::{BakePhase, MAX_HISTORY, Release, ReleaseResult, RolloutPhase};

/// Records in the log what this decision did to the release of the target revision.
pub(super) fn record(ctx: &mut Ctx<'_>) {
    let target = ctx.obs.target_revision.clone();
    let now = ts(ctx.obs.now);
    let phase = ctx.status.phase;
    let stable = ctx.status.stable_revision.clone();
    let current = ctx.status.current_revision.clone();
    // A bake that failed undoes a release that had been promoted.
    if let Some(bake) = ctx.status.bake.clone()
        && bake.phase == BakePhase::RolledBack
    {
        if let Some(entry) = ctx
            .status
            .history
            .iter_mut()
            .rev()
            .find(|e| e.revision == bake.revision)
            && entry.result == ReleaseResult::Promoted
        {
            entry.result = ReleaseResult::RolledBack;
            entry.reason = bake.message.clone();
            entry.ended_at = Some(now.clone());
        }
        if current.as_deref() == Some(bake.revision.as_str()) {
            return;
        }
    }
    let open_for_target = ctx
        .status
        .history
        .last()
        .is_some_and(|e| e.revision == target && e.result == ReleaseResult::Progressing);
    let before = ctx.stable_before();
    // The first revision of a Rollout is a release too, with no steps.
    let first = before.is_none() && stable.as_deref() == Some(target.as_str());
    let under_way = first
        || (current.as_deref() == Some(target.as_str()) && stable.as_deref() != Some(&target));
    let promoted = stable.as_deref() == Some(target.as_str())
        && current.as_deref() == Some(target.as_str())
        && phase == RolloutPhase::Healthy;
    if under_way && !open_for_target {
        let retried = ctx
            .status
            .history
            .last()
            .is_some_and(|e| e.revision == target && e.result == ReleaseResult::Aborted);
        if !retried || phase != RolloutPhase::Aborted {
            begin(ctx, &target, now.clone());
        }
    }
    if promoted && !open_for_target && !first {
        if before.as_deref() == Some(target.as_str()) {
            // The template set back to the revision that serves (undo): no release, and
            // the one under way ends.
            supersede(
                ctx,
                Some(format!("the template was set back to {target}")),
                &now,
            );
        } else {
            // Promoted within one decision (no steps, or the first revision): a release
            // that started and ended now.
            begin(ctx, &target, now.clone());
        }
    }
    let message = ctx.status.message.clone();
    let Some(entry) = ctx.status.history.last_mut() else {
        return;
    };
    if entry.revision != target || entry.result != ReleaseResult::Progressing {
        return;
    }
    if promoted {
        entry.result = ReleaseResult::Promoted;
        entry.ended_at = Some(now);
    } else if phase == RolloutPhase::Aborted {
        entry.result = ReleaseResult::Aborted;
        entry.reason = message;
        entry.ended_at = Some(now);
    }
}

/// Ends the release still open, if one is, as superseded.
fn supersede(
    ctx: &mut Ctx<'_>,
    reason: Option<String>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    if let Some(open) = ctx
        .status
        .history
        .last_mut()
        .filter(|e| e.result == ReleaseResult::Progressing)
    {
        open.result = ReleaseResult::Superseded;
        open.reason = reason;
        open.ended_at = Some(now.clone());
    }
}

/// Opens the release of `target`, closing one still open as superseded.
fn begin(
    ctx: &mut Ctx<'_>,
    target: &str,
    now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) {
    supersede(ctx, None, &now);
    ctx.status.history.push(Release {
        revision: target.to_string(),
        images: ctx.obs.images.clone(),
        started_at: now,
        ended_at: None,
        result: ReleaseResult::Progressing,
        reason: None,
        started_by: ctx.obs.started_by.clone(),
    });
    let excess = ctx.status.history.len().saturating_sub(MAX_HISTORY);
    ctx.status.history.drain(..excess);
}

/// Who last changed `spec.template`, as the API server recorded it: the field manager of
/// the newest write that set a field under it; between writes of the same second (the
/// API server keeps seconds), the one that owns an image, as a changed field moves to
/// whoever changed it.
pub fn template_manager(managed: &[ManagedFieldsEntry]) -> Option<String> {
    fn owns_image(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k == "f:image" || owns_image(v)),
            _ => false,
        }
    }
    managed
        .iter()
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .filter_map(|m| {
            let template = m.fields_v1.as_ref()?.0.get("f:spec")?.get("f:template")?;
            Some((m.time.as_ref().map(|t| t.0), owns_image(template), m))
        })
        .max_by_key(|(time, image, _)| (*time, *image))
        .and_then(|(_, _, m)| m.manager.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_newest_writer_of_the_template_started_it() {
        let managed: Vec<ManagedFieldsEntry> = serde_json::from_value(json!([
            {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2030-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {}, "f:replicas": {}}}},
            {"manager": "argocd-controller", "operation": "Apply", "time": "2030-01-02T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {}}}}},
            {"manager": "kubectl-scale", "operation": "Update", "time": "2030-01-03T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "cutover", "operation": "Apply", "time": "2030-01-04T00:00:00Z",
             "subresource": "status", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}
        ]))
        .expect("entries");
        assert_eq!(
            template_manager(&managed).as_deref(),
            Some("argocd-controller")
        );
        assert_eq!(template_manager(&managed[2..]), None);
    }
}
