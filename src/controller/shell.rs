//! I/O every controller shell does the same way: record status, mark a spec invalid, publish
//! an Event, add and remove a finalizer, take the analysis measurements that fell due.

use std::fmt::Debug;

use k8s_openapi::{
    api::core::v1::ObjectReference,
    apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time},
};
use k8s_openapi::{
    api::events::v1::Event,
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::controller::Action,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::{Context, Error};
use crate::{
    analysis::{
        fetch::{Fetcher, Subject},
        run::{Due, Input, Taken},
    },
    api::{FIELD_MANAGER, GROUP, VERSION, conditions as cond},
};

/// How a status write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The status was already what the plan decided and nothing is to be announced: nothing
    /// was sent.
    Unchanged,
    /// The API server took the write; carries the object's resourceVersion after it.
    Written(String),
    /// The object changed since it was read (a cache behind the API server, or another
    /// writer): nothing was written, so nothing the plan decided may be acted on or announced.
    Stale,
}

/// Writes `status` of `obj` with server-side apply, conditional on the resourceVersion `obj`
/// was read at, so a decision made from a stale read is refused instead of recorded twice.
/// Nothing is sent when `status` equals `current`, unless the caller is `announcing` a
/// decision: then the (no-op) write still confirms the read was current.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
    announcing: bool,
) -> Result<Recorded, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) && !announcing {
        return Ok(Recorded::Unchanged);
    }
    let mut body = json!({"apiVersion": format!("{GROUP}/{VERSION}"), "kind": K::kind(&()),
        "status": status});
    if let Some(rv) = obj.resource_version() {
        body["metadata"] = json!({"resourceVersion": rv});
    }
    match api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(written) => Ok(Recorded::Written(
            written.resource_version().unwrap_or_default(),
        )),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!(kind = %K::kind(&()), object = %obj.name_any(), "status read was stale; waiting for the newer version");
            Ok(Recorded::Stale)
        }
        Err(e) => Err(e.into()),
    }
}

/// When to look again at an object whose status write found its read stale: soon, though
/// the watch event bringing the newer version usually wakes it first.
pub const STALE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The parts of a kind's status that record a spec the operator refuses to act on.
pub trait InvalidSpecStatus {
    /// Conditions, observed generation and message.
    fn invalid_parts(&mut self) -> (&mut Vec<Condition>, &mut Option<i64>, &mut Option<String>);

    /// Marks the phase as one a person must act on, where the kind's phases have one.
    fn mark_invalid(&mut self) {}
}

impl InvalidSpecStatus for crate::api::RolloutStatus {
    fn invalid_parts(&mut self) -> (&mut Vec<Condition>, &mut Option<i64>, &mut Option<String>) {
        (
            &mut self.conditions,
            &mut self.observed_generation,
            &mut self.message,
        )
    }

    // As Argo Rollouts shows it: `kubectl get` reads Degraded, the message says why.
    fn mark_invalid(&mut self) {
        self.phase = crate::api::RolloutPhase::Degraded;
    }
}

impl InvalidSpecStatus for crate::api::MigrationJobStatus {
    fn invalid_parts(&mut self) -> (&mut Vec<Condition>, &mut Option<i64>, &mut Option<String>) {
        (
            &mut self.conditions,
            &mut self.observed_generation,
            &mut self.message,
        )
    }
}

impl InvalidSpecStatus for crate::api::FeatureFlagStatus {
    fn invalid_parts(&mut self) -> (&mut Vec<Condition>, &mut Option<i64>, &mut Option<String>) {
        (
            &mut self.conditions,
            &mut self.observed_generation,
            &mut self.message,
        )
    }
}

/// Records that `obj`'s spec is invalid: the `InvalidSpec` condition and message in its
/// status (written only if they changed), an Event the first time, and no further action
/// until the spec changes.
pub async fn invalid<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    ctx: &Context,
    message: &str,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: InvalidSpecStatus + Default + Clone + Serialize + PartialEq,
{
    let generation = obj.meta().generation;
    let mut status = current.cloned().unwrap_or_default();
    status.mark_invalid();
    let now = Time(ctx.clock.now());
    let (conditions, observed, status_message) = status.invalid_parts();
    let changed = cond::set(
        conditions,
        cond::ConditionUpdate {
            type_: cond::INVALID_SPEC,
            status: cond::TRUE,
            reason: "InvalidSpec",
            message: message.to_string(),
        },
        generation,
        &now,
    );
    let stalled = crate::api::health::Health::Stalled {
        reason: "InvalidSpec",
        message: message.to_string(),
    };
    crate::api::health::record(conditions, &stalled, generation, &now);
    *observed = generation;
    *status_message = Some(message.to_string());
    match apply_status(api, obj, current, &status, changed).await? {
        Recorded::Stale => return Ok(Action::requeue(STALE_RETRY)),
        Recorded::Written(_) if changed => {
            publish(ctx, &obj.object_ref(&()), "InvalidSpec", message, true).await;
        }
        _ => {}
    }
    Ok(Action::await_change())
}

/// Publishes an Event about `reference`; a failure is logged, never fails the reconcile.
///
/// Each decision is its own Event, created once: kube's recorder would fold distinct
/// decisions with one reason into a series showing only the first note, and keeps every
/// Event it sent in a cache it scans on each publish.
pub async fn publish(
    ctx: &Context,
    reference: &ObjectReference,
    reason: &str,
    message: &str,
    warning: bool,
) {
    // Each decision is also one info line, for whoever reads the operator's log.
    tracing::info!(
        kind = reference.kind.as_deref().unwrap_or_default(),
        namespace = reference.namespace.as_deref().unwrap_or_default(),
        name = reference.name.as_deref().unwrap_or_default(),
        reason,
        note = message,
        warning,
        "decision"
    );
    let event = event_for(ctx, reference, reason, message, warning);
    let namespace = reference.namespace.as_deref().unwrap_or("default");
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), namespace);
    if let Err(error) = api.create(&PostParams::default(), &event).await {
        tracing::warn!(%error, object = ?reference.name, %reason, "could not publish event");
    }
}

/// The events.k8s.io/v1 Event recording one decision about `reference`.
fn event_for(
    ctx: &Context,
    reference: &ObjectReference,
    reason: &str,
    message: &str,
    warning: bool,
) -> Event {
    use std::sync::atomic::{AtomicU64, Ordering};
    // Names must be unique even for two Events within one clock tick.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let now = ctx.clock.now();
    let object: String = reference
        .name
        .as_deref()
        .unwrap_or("object")
        .chars()
        .take(200)
        .collect();
    let suffix =
        (now.as_nanosecond() as u64).wrapping_add(SEQUENCE.fetch_add(1, Ordering::Relaxed));
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{object}.{suffix:x}")),
            namespace: reference.namespace.clone(),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        reason: Some(reason.chars().take(128).collect()),
        // The API server's limits: 1 kB of note, 128 characters of action.
        note: Some(cut_bytes(message, NOTE_BYTES).to_string()),
        action: Some(reason.chars().take(128).collect()),
        regarding: Some(reference.clone()),
        reporting_controller: Some(super::context::REPORTER.into()),
        reporting_instance: Some(ctx.reporting_instance.clone()),
        ..Default::default()
    }
}

/// The most bytes of an Event's note the API server accepts.
pub const NOTE_BYTES: usize = 1024;

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
pub fn cut_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Adds `finalizer` unless present, with a JSON patch that appends without replacing other
/// controllers' finalizers; says whether it wrote (the object then has a newer version).
pub async fn add_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    if obj.finalizers().iter().any(|f| f == finalizer) {
        return Ok(false);
    }
    let add = if obj.meta().finalizers.is_none() {
        json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})
    } else {
        json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})
    };
    // Adding the whole list would replace one another controller added since this read:
    // the `test` of the version read makes that a refused patch instead.
    let ops = match obj.resource_version() {
        Some(rv) => json!([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}, add]),
        None => json!([add]),
    };
    json_patch_of(api, obj, ops).await?;
    Ok(true)
}

/// Removes `finalizer` if present, returning the object as written; the `test` operation
/// makes a concurrent change of the list a conflict instead of removing someone else's
/// finalizer.
pub async fn remove_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str) -> Result<Option<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let Some(index) = obj.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(None);
    };
    let ops = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
    ]);
    json_patch_of(api, obj, ops).await.map(Some)
}

async fn json_patch_of<K>(api: &Api<K>, obj: &K, ops: serde_json::Value) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let patch: json_patch::Patch = serde_json::from_value(ops)?;
    Ok(api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await?)
}

/// Takes the measurements that fell due, all at once; `subject` gives each one's
/// `rollout.*` placeholder values, and `owner` owns the Jobs of job metrics.
pub async fn take_measurements(
    ctx: &Context,
    namespace: &str,
    owner: Option<&OwnerReference>,
    due: &[Due<'_>],
    subject: impl Fn(&Due<'_>) -> Subject,
) -> Vec<Taken> {
    if due.is_empty() {
        return Vec::new();
    }
    let now = ctx.clock.now();
    let fetcher = Fetcher {
        client: &ctx.client,
        transport: ctx.prometheus.as_ref(),
        default_url: ctx.config.prometheus_url.as_deref(),
        namespace,
        egress: &ctx.egress,
        web: ctx.web(),
    };
    let fetches = due.iter().map(|d| {
        let subject = subject(d);
        let fetcher = &fetcher;
        async move {
            let input = match (&d.metric.job, owner) {
                (None, _) => fetcher.fetch(d.metric, &d.spec.args, &subject, now).await,
                (Some(_), Some(owner)) => {
                    let m = crate::analysis::job::Measurement {
                        owner,
                        namespace,
                        run: &d.run,
                        revision: d.revision.as_deref().unwrap_or_default(),
                        metric: &d.metric.name,
                        due: d.at,
                    };
                    fetcher.fetch_job(d.metric, &d.spec.args, &subject, &m).await
                }
                (Some(_), None) => Input::Job(Err("the object has no uid yet".into())),
            };
            let outcome = match &input {
                Input::Query(Err(e)) | Input::Compare(Err(e)) | Input::Job(Err(e)) => e.as_str(),
                _ => "ok",
            };
            tracing::debug!(object = %subject.name, run = %d.run, metric = %d.metric.name, %outcome, "measured");
            Taken {
                run: d.run.clone(),
                metric: d.metric.name.clone(),
                due: d.at,
                taken: ctx.clock.now(),
                input,
            }
        }
    });
    futures::future::join_all(fetches).await
}

/// Runs CPU work that may wait on the condition evaluator (validating a spec, planning with
/// measurements to classify) without holding up the runtime: on the multi-threaded runtime
/// the worker hands its other tasks over first. A single-threaded runtime (tests, the
/// virtual clock of `simulate`) runs it in place.
pub fn off_runtime<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_cut_to_the_byte_limit_on_a_character_boundary() {
        assert_eq!(cut_bytes("short", NOTE_BYTES), "short");
        let ascii = "a".repeat(2000);
        assert_eq!(cut_bytes(&ascii, NOTE_BYTES).len(), NOTE_BYTES);
        // 3-byte characters: 1024 is not a boundary, so the cut falls back to 1023.
        let wide = "€".repeat(400);
        let cut = cut_bytes(&wide, NOTE_BYTES);
        assert_eq!(cut.len(), 1023);
        assert!(cut.chars().all(|c| c == '€'));
        // 4-byte characters: 1024 is a boundary.
        let emoji = "🚀".repeat(300);
        assert_eq!(cut_bytes(&emoji, NOTE_BYTES).len(), 1024);
    }
}
